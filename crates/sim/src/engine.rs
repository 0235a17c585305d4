//! The simulation: pure functions over a [`FleetTrace`].
//!
//! Per desktop and idle period, the VM's requests (plus the user's return,
//! which ends the period) cut the period into gaps; a sleep policy is asked
//! at each gap's start (and when it asks to be asked again) whether to sleep.
//! A gap of `g` ms slept from `t` ms after its start costs
//! `P_i t + E_s + E_r + P_s max(0, g - t - L_s - L_r)`, awake `P_i g`: the
//! resume is charged as if it ended at the request. An online policy really
//! wakes on the request, which then waits `L_r` (counted in
//! [`Outcome::delayed_requests`]); that real schedule costs `(P_i - P_s) L_r`
//! less per wake, so the model is conservative for online policies and
//! exact for the oracle, which can wake ahead. Consolidated VMs pay the
//! server's share per VM for the whole period. One policy instance serves a
//! desktop for the whole trace, so adaptive policies learn across periods.
//!
//! Baselines: always on (the desktop idles), plain sleep (sleeps at once, no
//! consolidation, no network presence), full migration (LiteGreen-style:
//! all VM memory over a shared link while the desktop idles, `k` desktops
//! going idle in the same minute sharing the link; then sleep; a migration
//! that cannot pay off, or finish, is not made; the way back is not
//! charged, which favours it). Outside idle periods every scheme costs the
//! same: active power while the user works, idle power otherwise.

use std::collections::{BTreeMap, HashMap};

use jettison_power::policy::{BreakEven, FixedTimeout, Oracle, SkiRental};
use jettison_power::{break_even_ms, Decision, PowerProfile, SleepPolicy};
use serde::{Deserialize, Serialize};

use crate::trace::{FleetTrace, IdlePeriod, Span, DAY_MS};

/// Idle-period classes of [`Outcome::savings_by_idle_bucket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Bucket {
    /// Under 30 min (idle periods start at 10 min).
    #[serde(rename = "10-30m")]
    Short,
    /// 30 to 60 min.
    #[serde(rename = "30-60m")]
    Medium,
    /// An hour or more, not overnight.
    #[serde(rename = "1h+")]
    Long,
    /// Touching 00:00-06:00 of any day, or longer than 8 h.
    #[serde(rename = "overnight")]
    Overnight,
}

impl Bucket {
    /// The class of `span`.
    pub fn of(span: Span) -> Self {
        let night = (span.start_ms / DAY_MS..=span.end_ms / DAY_MS)
            .any(|d| span.start_ms < d * DAY_MS + DAY_MS / 4 && span.end_ms > d * DAY_MS);
        match span.len_ms() {
            _ if night => Self::Overnight,
            l if l > 8 * 3_600_000 => Self::Overnight,
            l if l < 1_800_000 => Self::Short,
            l if l < 3_600_000 => Self::Medium,
            _ => Self::Long,
        }
    }
}

/// An online sleep policy to simulate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicySpec {
    /// [`FixedTimeout`] after this many ms.
    FixedTimeout(u64),
    /// [`BreakEven`] with its default weight.
    BreakEven,
    /// [`SkiRental`], seeded per desktop from this seed.
    SkiRental(u64),
}

impl PolicySpec {
    /// Its name in reports.
    pub fn name(&self) -> String {
        match self {
            Self::FixedTimeout(ms) => format!("fixed-timeout-{}s", ms / 1000),
            Self::BreakEven => "break-even".into(),
            Self::SkiRental(_) => "ski-rental".into(),
        }
    }

    fn build(&self, profile: &PowerProfile, desktop: u64) -> Box<dyn SleepPolicy> {
        match self {
            Self::FixedTimeout(ms) => Box::new(FixedTimeout { timeout_ms: *ms }),
            Self::BreakEven => Box::new(BreakEven::new(profile)),
            Self::SkiRental(seed) => Box::new(SkiRental::new(profile, seed ^ desktop)),
        }
    }
}

/// The full-migration baseline's link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FullMigration {
    /// Bytes of VM memory sent (4 GiB).
    pub vm_bytes: u64,
    /// The shared link, bits per second (1 Gbit/s).
    pub link_bps: f64,
    /// Migrations starting within the same window share the link (1 min).
    pub window_ms: u64,
}

impl Default for FullMigration {
    fn default() -> Self {
        Self {
            vm_bytes: 4 << 30,
            link_bps: 1e9,
            window_ms: 60_000,
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// The power model.
    pub profile: PowerProfile,
    /// The online policies.
    pub policies: Vec<PolicySpec>,
    /// The full-migration baseline.
    pub full_migration: FullMigration,
}

/// One scheme's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Joules over the whole trace, all desktops, server share included.
    pub energy_j: f64,
    /// Of which the server's share for consolidated VMs.
    pub server_j: f64,
    /// Saved against always-on over the whole trace, percent.
    pub savings_pct: f64,
    /// Saved against always-on within each class of idle periods, percent.
    pub savings_by_idle_bucket: BTreeMap<Bucket, f64>,
    /// Times a desktop went to sleep.
    pub sleeps: u64,
    /// Requests that found their desktop asleep and waited for a resume.
    pub delayed_requests: u64,
    /// Per bucket, joules spent in idle periods (for the percentages).
    #[serde(skip)]
    by_bucket_j: BTreeMap<Bucket, f64>,
}

/// The simulation's result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Joules with every desktop left on.
    pub always_on_j: f64,
    /// Idle periods per class.
    pub idle_periods: BTreeMap<Bucket, u64>,
    /// Online policies, by [`PolicySpec::name`].
    pub policies: BTreeMap<String, Outcome>,
    /// The offline optimum ([`Oracle`]).
    pub oracle: Outcome,
    /// Plain sleep, without consolidation.
    pub plain_sleep: Outcome,
    /// Full migration.
    pub full_migration: Outcome,
}

/// Desktop joules of a gap of `gap` ms, slept from `sleep_at` ms if any.
fn gap_j(p: &PowerProfile, gap: u64, sleep_at: Option<u64>) -> f64 {
    let d = &p.desktop;
    match sleep_at {
        None => d.idle_w * gap as f64 / 1000.0,
        Some(t) => {
            let l = p.suspend.latency_ms + p.resume.latency_ms;
            let asleep = gap.saturating_sub(t + l);
            (d.idle_w * t as f64 + d.asleep_w * asleep as f64) / 1000.0
                + p.suspend.energy_j
                + p.resume.energy_j
        }
    }
}

/// Runs `policy` over `period`; adds desktop joules, sleeps and delays.
fn run_period(
    p: &PowerProfile,
    policy: &mut dyn SleepPolicy,
    period: &IdlePeriod,
    out: &mut Outcome,
) -> f64 {
    let base = period.span.start_ms;
    policy.on_request(base);
    let ends = period
        .requests
        .iter()
        .map(|r| base + u64::from(r.offset_ms));
    let (mut s, mut joules) = (base, 0.0);
    for (i, b) in ends.chain([period.span.end_ms]).enumerate() {
        if b <= s {
            continue;
        }
        let mut now = s;
        let sleep_at = loop {
            match policy.decide(now, s) {
                Decision::Sleep => break Some(now - s),
                Decision::StayAwake { recheck_in_ms } => {
                    now = now.saturating_add(recheck_in_ms.max(1));
                    if now >= b {
                        break None;
                    }
                }
            }
        };
        joules += gap_j(p, b - s, sleep_at);
        if sleep_at.is_some() {
            out.sleeps += 1;
            out.delayed_requests += u64::from(i < period.requests.len());
        }
        policy.on_request(b);
        s = b;
    }
    joules
}

/// Simulates `trace` under `config`.
pub fn simulate(trace: &FleetTrace, config: &SimConfig) -> Report {
    let p = &config.profile;
    let (pi, server_w) = (p.desktop.idle_w, p.server.watts_per_vm());
    let mut r = Report::default();
    let names: Vec<String> = config.policies.iter().map(PolicySpec::name).collect();
    for n in &names {
        r.policies.entry(n.clone()).or_default();
    }
    let fm = &config.full_migration;
    let mut starts: HashMap<u64, u64> = HashMap::new();
    for pe in trace.desktops.iter().flat_map(|d| &d.idle) {
        *starts
            .entry(pe.span.start_ms / fm.window_ms.max(1))
            .or_default() += 1;
    }
    let be = break_even_ms(p).unwrap_or(u64::MAX);
    let l = p.suspend.latency_ms + p.resume.latency_ms;
    let mut idle_base = BTreeMap::<Bucket, f64>::new();
    let mut outside_j = 0.0;
    for (di, desk) in trace.desktops.iter().enumerate() {
        let active: u64 = desk.activity.iter().map(Span::len_ms).sum();
        let idle: u64 = desk.idle.iter().map(|i| i.span.len_ms()).sum();
        let other = trace.wall_ms().saturating_sub(active + idle);
        outside_j += (p.desktop.active_w * active as f64 + pi * other as f64) / 1000.0;
        let mut online: Vec<_> = config
            .policies
            .iter()
            .map(|s| s.build(p, di as u64))
            .collect();
        for pe in &desk.idle {
            let (len, b) = (pe.span.len_ms(), Bucket::of(pe.span));
            *r.idle_periods.entry(b).or_default() += 1;
            *idle_base.entry(b).or_default() += pi * len as f64 / 1000.0;
            let server_j = server_w * len as f64 / 1000.0;
            for (pol, name) in online.iter_mut().zip(&names) {
                let o = r.policies.get_mut(name).expect("registered");
                let j = run_period(p, pol.as_mut(), pe, o) + server_j;
                add(o, b, j, server_j);
            }
            let times = pe
                .requests
                .iter()
                .map(|q| pe.span.start_ms + u64::from(q.offset_ms));
            let mut oracle = Oracle::new(p, times.chain([pe.span.end_ms]).collect());
            let j = run_period(p, &mut oracle, pe, &mut r.oracle) + server_j;
            r.oracle.delayed_requests = 0;
            add(&mut r.oracle, b, j, server_j);
            r.plain_sleep.sleeps += 1;
            add(&mut r.plain_sleep, b, gap_j(p, len, Some(0)), 0.0);
            let k = starts[&(pe.span.start_ms / fm.window_ms.max(1))] as f64;
            let mig = (k * fm.vm_bytes as f64 * 8.0 / fm.link_bps * 1000.0).ceil() as u64;
            if len >= mig.saturating_add(be.max(l)) {
                r.full_migration.sleeps += 1;
                let j = pi * mig as f64 / 1000.0 + gap_j(p, len - mig, Some(0)) + server_j;
                add(&mut r.full_migration, b, j, server_j);
            } else {
                add(&mut r.full_migration, b, pi * len as f64 / 1000.0, 0.0);
            }
        }
    }
    r.always_on_j = outside_j + idle_base.values().sum::<f64>();
    let all =
        r.policies
            .values_mut()
            .chain([&mut r.oracle, &mut r.plain_sleep, &mut r.full_migration]);
    for o in all {
        o.energy_j += outside_j;
        o.savings_pct = pct(r.always_on_j, o.energy_j);
        o.savings_by_idle_bucket = o
            .by_bucket_j
            .iter()
            .map(|(b, &j)| (*b, pct(idle_base[b], j)))
            .collect();
    }
    r
}

fn add(o: &mut Outcome, b: Bucket, j: f64, server_j: f64) {
    o.energy_j += j;
    o.server_j += server_j;
    *o.by_bucket_j.entry(b).or_default() += j;
}

fn pct(base: f64, j: f64) -> f64 {
    if base > 0.0 {
        100.0 * (base - j) / base
    } else {
        0.0
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
