//! Synthetic fleet traces from documented parameters, seeded and
//! deterministic. The parameters and their sources are in
//! [`crate::synth_params`]; most are assumptions.
//!
//! The day of a desktop's user: on weekdays (days 0-4 of each week, the
//! trace starting on a Monday) they arrive around `arrive_h`, leave around
//! `leave_h`, and in between take a lunch break, meetings and other
//! absences from the desk, the latter heavy-tailed (Pareto: many of a few
//! minutes, a few of hours); nights and weekends are away, and a user is
//! away a whole weekday with probability `absent_p`. Absences that overlap
//! merge.
//!
//! **Idle detection is the agent's, not an oracle's.** The agent decides
//! the user is away after `away_after_ms` without input and only then
//! moves the VM: an idle period starts `away_after_ms` after the user left
//! and ends when they come back, so an absence shorter than that moves
//! nothing (the desktop idles under every scheme), and one just longer
//! makes a period of seconds, a migration that cannot pay (the user
//! returns right after the move; [`crate::Outcome::wasted_migrations`]).
//!
//! A VM's requests in an idle period follow [`crate::synth_vm`]: a hot set
//! of pages, touched period after period and drifting over days, plus cold
//! pages.

use crate::synth_vm::Vm;
use crate::trace::{DesktopTrace, FleetTrace, IdlePeriod, Span, DAY_MS};

pub use crate::synth_params::{ParamDoc, SynthParams};

const MIN: f64 = 60_000.0;
const HOUR: f64 = 3_600_000.0;

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

    /// Pareto (type I) with scale `min` and shape `shape`: `P(X > x) =
    /// (min / x)^shape` for `x >= min` (heavy-tailed; the mean
    /// `shape min / (shape - 1)` is finite for `shape > 1` only).
    pub fn pareto(&mut self, min: f64, shape: f64) -> f64 {
        min * (1.0 - self.unit()).powf(-1.0 / shape)
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
        for _ in 0..rng.poisson(p.absences_per_day) {
            let s = start + rng.range(0.0, (end - start) as f64) as u64;
            breaks.push((s, s + absence_ms(p, rng)));
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
    let (mut t, mut last_start) = (0, None::<u64>);
    for a in activity.iter().chain(std::iter::once(&Span {
        start_ms: wall,
        end_ms: wall,
    })) {
        // the agent moves the VM once the user has been away long enough
        let detected = t + p.away_after_ms;
        if a.start_ms > detected {
            let span = Span {
                start_ms: detected,
                end_ms: a.start_ms,
            };
            if let Some(prev) = last_start {
                vm.drift(p, rng, detected - prev);
            }
            last_start = Some(detected);
            idle.push(IdlePeriod {
                span,
                requests: vm.requests(p, rng, span.len_ms()),
            });
        }
        t = a.end_ms;
    }
    DesktopTrace { activity, idle }
}

/// One absence from the desk: Pareto, cut at `absence_max_ms`, ms.
pub(crate) fn absence_ms(p: &SynthParams, rng: &mut Rng) -> u64 {
    let x = rng.pareto(p.absence_min_ms.max(1) as f64, p.absence_shape.max(0.01));
    x.min(p.absence_max_ms as f64) as u64
}

#[cfg(test)]
#[path = "synth_tests.rs"]
mod tests;
