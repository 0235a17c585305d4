//! Synthetic fleet traces from documented parameters, seeded and
//! deterministic.
//!
//! **Every default below is an assumption** (plausible office figures, not
//! measurements); fit them to a fleet's logs before trusting the numbers.
//!
//! The day of a desktop's user: on weekdays (days 0-4 of each week, the
//! trace starting on a Monday) they arrive around `arrive_h`, leave around
//! `leave_h`, and in between take a lunch break, meetings and short breaks,
//! each an idle period; nights and weekends are idle, and a user is away a
//! whole weekday with probability `absent_p`. Breaks that overlap merge.
//! Stretches without activity shorter than `min_idle_ms` are not idle
//! periods (the VM stays home; the desktop idles under every policy).
//!
//! A VM's requests in an idle period follow [`crate::synth_vm`]: a stable
//! hot set of pages, touched period after period, plus cold pages.

use serde::{Deserialize, Serialize};

use crate::synth_vm::Vm;
use crate::trace::{DesktopTrace, FleetTrace, IdlePeriod, Span, DAY_MS};

const MIN: f64 = 60_000.0;
const HOUR: f64 = 3_600_000.0;

/// Parameters of a synthetic fleet; the defaults are assumptions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthParams {
    /// Seed of the whole trace.
    pub seed: u64,
    /// Number of desktops.
    pub desktops: u32,
    /// Number of days (the first is a Monday).
    pub days: u32,
    /// Mean arrival hour (9.0), uniform +- `arrive_jitter_h` (0.75).
    pub arrive_h: f64,
    /// Arrival jitter, hours.
    pub arrive_jitter_h: f64,
    /// Mean leaving hour (17.5), uniform +- `leave_jitter_h` (1.0).
    pub leave_h: f64,
    /// Leaving jitter, hours.
    pub leave_jitter_h: f64,
    /// Probability a user is away a whole weekday (0.05).
    pub absent_p: f64,
    /// Lunch starts uniform in 11:30-13:30 and lasts uniform 30-75 min.
    pub lunch: bool,
    /// Mean meetings a day (1.5, Poisson), each 30, 60 or 90 min (uniform).
    pub meetings_per_day: f64,
    /// Mean short breaks a day (2, Poisson), each 10 min + Exp(mean 12 min).
    pub breaks_per_day: f64,
    /// Mean of a short break beyond its first 10 minutes, minutes.
    pub break_extra_mean_min: f64,
    /// Shortest idle period, ms (10 min: the idle detector's threshold).
    pub min_idle_ms: u64,
    /// Pages of guest memory (1 Mi pages: 4 GiB, the full-migration
    /// baseline's VM size).
    pub vm_pages: u32,
    /// Pages of each VM's hot set (4096: 16 MiB, 0.4 % of its memory).
    pub hot_pages: u32,
    /// Mean length of a run of consecutive pages in the hot set (16).
    pub hot_run_mean_pages: f64,
    /// Skew of the runs' popularity (2; 1 is uniform), see [`crate::synth_vm`].
    pub hot_skew: f64,
    /// Accesses in the burst when the VM arrives on the server (2048).
    pub arrival_accesses: u32,
    /// Duration of that burst, ms (20 s).
    pub burst_ms: u64,
    /// Timer bursts an hour after it (12: one every 5 min, Poisson).
    pub timer_bursts_per_hour: f64,
    /// Mean accesses of a timer burst beyond its first (3, Poisson).
    pub timer_extra_accesses: f64,
    /// A timer burst's accesses fall within this many ms (1 s).
    pub timer_spread_ms: u64,
    /// Mean pages of a hot access (8): consecutive pages of one run from a
    /// uniform page of it, clipped to the run's end.
    pub access_mean_pages: f64,
    /// Probability that an access is cold (0.1): one uniform page of guest
    /// memory instead of the hot set.
    pub cold_p: f64,
}

impl Default for SynthParams {
    fn default() -> Self {
        Self {
            seed: 1,
            desktops: 100,
            days: 30,
            arrive_h: 9.0,
            arrive_jitter_h: 0.75,
            leave_h: 17.5,
            leave_jitter_h: 1.0,
            absent_p: 0.05,
            lunch: true,
            meetings_per_day: 1.5,
            breaks_per_day: 2.0,
            break_extra_mean_min: 12.0,
            min_idle_ms: 600_000,
            vm_pages: 1 << 20,
            hot_pages: 4096,
            hot_run_mean_pages: 16.0,
            hot_skew: 2.0,
            arrival_accesses: 2048,
            burst_ms: 20_000,
            timer_bursts_per_hour: 12.0,
            timer_extra_accesses: 3.0,
            timer_spread_ms: 1_000,
            access_mean_pages: 8.0,
            cold_p: 0.1,
        }
    }
}

/// A small seeded generator (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Exponential with mean `mean`.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Poisson with mean `mean` (Knuth's method, for small means).
    pub fn poisson(&mut self, mean: f64) -> u32 {
        let (limit, mut k, mut p) = ((-mean).exp(), 0, 1.0);
        loop {
            p *= self.unit();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
}

/// Generates a fleet trace from `params`.
pub fn generate(params: &SynthParams) -> FleetTrace {
    let ids: Vec<u32> = (0..params.desktops).collect();
    let desktops = crate::par::map(&ids, |_, &d| {
        let seed = params.seed ^ u64::from(d).wrapping_mul(0xd134_2543_de82_ef95);
        desktop(params, &mut Rng::new(seed))
    });
    FleetTrace {
        days: params.days,
        length_ms: None,
        desktops,
    }
}

/// One desktop: activity intervals, then idle periods with requests.
fn desktop(p: &SynthParams, rng: &mut Rng) -> DesktopTrace {
    let mut activity = Vec::new();
    for day in 0..u64::from(p.days) {
        if day % 7 >= 5 || rng.unit() < p.absent_p {
            continue;
        }
        let base = day * DAY_MS;
        let at = |h: f64| base + (h * HOUR) as u64;
        let arrive = p.arrive_h + rng.range(-p.arrive_jitter_h, p.arrive_jitter_h);
        let leave = p.leave_h + rng.range(-p.leave_jitter_h, p.leave_jitter_h);
        let (start, end) = (at(arrive), at(leave.max(arrive + 1.0)));
        let mut breaks = Vec::new();
        if p.lunch {
            let s = at(rng.range(11.5, 13.5));
            breaks.push((s, s + rng.range(30.0 * MIN, 75.0 * MIN) as u64));
        }
        for _ in 0..rng.poisson(p.meetings_per_day) {
            let s = start + rng.range(0.0, (end - start) as f64) as u64;
            breaks.push((s, s + (30 * (1 + rng.next_u64() % 3)) * 60_000));
        }
        for _ in 0..rng.poisson(p.breaks_per_day) {
            let s = start + rng.range(0.0, (end - start) as f64) as u64;
            let len = 10.0 * MIN + rng.exp(p.break_extra_mean_min * MIN);
            breaks.push((s, s + len as u64));
        }
        breaks.sort_unstable();
        let mut t = start;
        for (s, e) in breaks {
            if s > t && s < end {
                activity.push(Span {
                    start_ms: t,
                    end_ms: s,
                });
            }
            t = t.max(e);
        }
        if t < end {
            activity.push(Span {
                start_ms: t,
                end_ms: end,
            });
        }
    }
    let mut vm = Vm::new(p, rng);
    let wall = u64::from(p.days) * DAY_MS;
    let mut idle = Vec::new();
    let mut t = 0;
    for a in activity.iter().chain(std::iter::once(&Span {
        start_ms: wall,
        end_ms: wall,
    })) {
        if a.start_ms >= t + p.min_idle_ms {
            let span = Span {
                start_ms: t,
                end_ms: a.start_ms,
            };
            idle.push(IdlePeriod {
                span,
                requests: vm.requests(p, rng, span.len_ms()),
            });
        }
        t = a.end_ms;
    }
    DesktopTrace { activity, idle }
}

#[cfg(test)]
#[path = "synth_tests.rs"]
mod tests;
