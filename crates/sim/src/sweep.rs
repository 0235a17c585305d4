//! Sensitivity sweeps (`jettison simulate --sweeps`): one combination's
//! savings against full migration's as one input varies, over several
//! seeds, each point with its 95 % confidence interval
//! ([`crate::rank::ci95`]). The inputs: the server share of a partially
//! migrated VM (no new simulation: [`crate::rank::savings_with_share`],
//! with the crossover against full migration per seed), the power profile
//! (idle and asleep power, the resume's latency and energy, the share of
//! the resume that selective resume needs), and the synthetic model (cold
//! pages x0.1 to x10, timer bursts, the hot set's size, idle detection's
//! delay). Pure: traces are generated and simulated here.

use jettison_power_model::profile::{DeviceCost, Transition};
use jettison_power_model::PowerProfile;
use serde::{Deserialize, Serialize};

use crate::rank::{ci95, crossover_partial_vms_per_server, savings_with_share, Ci95};
use crate::report::{Outcome, Report};
use crate::{generate, simulate, FleetTrace, SimConfig, SynthParams};

/// An input a sweep varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Knob {
    /// `server.partial_vms_per_server`.
    PartialVmsPerServer,
    /// `desktop.idle_w` (`active_w` raised to it if below).
    IdleW,
    /// `desktop.asleep_w`.
    AsleepW,
    /// `resume.latency_ms`, its energy and every device's share scaled
    /// with it (the same average power).
    ResumeMs,
    /// The share of the resume (latency and energy) in the devices a wake
    /// for pages resumes with selective resume (CPU, memory, NIC).
    ServiceShare,
    /// `cold_p`, as a multiple of the default's.
    ColdRate,
    /// `timer_bursts_per_hour`, as a multiple of the default's.
    TimerRate,
    /// `hot_pages`.
    HotPages,
    /// `away_after_ms`, in minutes.
    AwayAfterMin,
}

impl Knob {
    /// Every knob, with the values swept.
    pub fn all() -> Vec<(Knob, Vec<f64>)> {
        vec![
            (
                Knob::PartialVmsPerServer,
                vec![10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 270.0],
            ),
            (Knob::IdleW, vec![40.0, 60.0, 80.0, 110.0]),
            (Knob::AsleepW, vec![1.0, 3.0, 6.0, 13.0]),
            (Knob::ResumeMs, vec![2_300.0, 3_000.0, 5_000.0, 8_000.0]),
            (Knob::ServiceShare, vec![0.2, 0.35, 0.5, 0.75, 1.0]),
            (Knob::ColdRate, vec![0.1, 0.3, 1.0, 3.0, 10.0]),
            (Knob::TimerRate, vec![0.25, 0.5, 1.0, 2.0, 4.0]),
            (Knob::HotPages, vec![1024.0, 4096.0, 16384.0, 65536.0]),
            (Knob::AwayAfterMin, vec![2.0, 5.0, 10.0, 20.0]),
        ]
    }

    /// The key in reports and file names.
    pub fn key(self) -> &'static str {
        match self {
            Knob::PartialVmsPerServer => "partial_vms_per_server",
            Knob::IdleW => "idle_w",
            Knob::AsleepW => "asleep_w",
            Knob::ResumeMs => "resume_ms",
            Knob::ServiceShare => "service_share",
            Knob::ColdRate => "cold_rate",
            Knob::TimerRate => "timer_rate",
            Knob::HotPages => "hot_pages",
            Knob::AwayAfterMin => "away_after_min",
        }
    }

    /// What the x axis shows.
    pub fn label(self) -> &'static str {
        match self {
            Knob::PartialVmsPerServer => "partially migrated VMs per server",
            Knob::IdleW => "desktop idle power (W)",
            Knob::AsleepW => "desktop asleep power (W)",
            Knob::ResumeMs => "resume latency (ms, energy at the same average power)",
            Knob::ServiceShare => "share of the resume needed to serve pages",
            Knob::ColdRate => "cold-page rate (x the default)",
            Knob::TimerRate => "timer-burst rate (x the default)",
            Knob::HotPages => "hot-set pages",
            Knob::AwayAfterMin => "idle detection: minutes without input before the move",
        }
    }

    /// Where the swept values come from.
    pub fn source(self) -> &'static str {
        match self {
            Knob::PartialVmsPerServer => "unmeasured (default 90, full migration's 30)",
            Knob::IdleW | Knob::AsleepW => {
                "around the defaults; 110 W on and 13 W in low power are Oasis' settings (EuroSys'16, \
                 via /work/shared/DESIGN.md)"
            }
            Knob::ResumeMs => {
                "3-5 s to resume from S3 (Nedevschi et al., NSDI'09, as summarised at \
                 everythingisdata.wordpress.com/2009/11/18/skilled-in-the-art-of-being-idle/); 2.3 s in \
                 Oasis (via DESIGN.md); 8 s a slow machine (assumed)"
            }
            Knob::ServiceShare => "assumed (the default profile's split is illustrative: 50 %)",
            Knob::ColdRate | Knob::TimerRate | Knob::HotPages => "the synthetic model's assumptions",
            Knob::AwayAfterMin => "the agent's `away_after_s` (default 10 min)",
        }
    }

    /// The default's value on this knob's scale.
    pub fn default_value(self, params: &SynthParams, profile: &PowerProfile) -> f64 {
        match self {
            Knob::PartialVmsPerServer => f64::from(profile.server.partial_vms_per_server),
            Knob::IdleW => profile.desktop.idle_w,
            Knob::AsleepW => profile.desktop.asleep_w,
            Knob::ResumeMs => profile.resume.latency_ms as f64,
            Knob::ServiceShare => service_share(profile),
            Knob::ColdRate | Knob::TimerRate => 1.0,
            Knob::HotPages => f64::from(params.hot_pages),
            Knob::AwayAfterMin => params.away_after_ms as f64 / 60_000.0,
        }
    }

    /// Whether the knob changes the trace (else one trace per seed serves).
    fn changes_trace(self) -> bool {
        matches!(
            self,
            Knob::ColdRate | Knob::TimerRate | Knob::HotPages | Knob::AwayAfterMin
        )
    }

    /// `params` and `profile` with this knob at `v`.
    pub fn apply(self, v: f64, params: &mut SynthParams, profile: &mut PowerProfile) {
        match self {
            Knob::PartialVmsPerServer => {
                profile.server.partial_vms_per_server = v.round().max(1.0) as u32
            }
            Knob::IdleW => {
                profile.desktop.idle_w = v;
                profile.desktop.active_w = profile.desktop.active_w.max(v);
                profile.desktop.asleep_w = profile.desktop.asleep_w.min(v);
            }
            Knob::AsleepW => {
                profile.desktop.asleep_w = v;
                profile.desktop.idle_w = profile.desktop.idle_w.max(v);
            }
            Knob::ResumeMs => {
                let latency_ms = v.round() as u64;
                let energy_j = profile.resume.average_w() * v / 1000.0;
                let (l0, e0) = (profile.resume.latency_ms as f64, profile.resume.energy_j);
                let all = |_: &DeviceCost| true;
                rescale(&mut profile.devices, all, latency_ms, energy_j, l0, e0);
                profile.resume = Transition {
                    latency_ms,
                    energy_j,
                };
            }
            Knob::ServiceShare => {
                let (l, e) = (profile.resume.latency_ms, profile.resume.energy_j);
                let svc = service(profile);
                let (sl, se) = (svc.latency_ms as f64, svc.energy_j);
                let share = v.clamp(0.0, 1.0);
                let ls = (l as f64 * share).round() as u64;
                let is_svc = |c: &DeviceCost| PowerProfile::SERVICE_DEVICES.contains(&c.device);
                rescale(&mut profile.devices, is_svc, ls, e * share, sl, se);
                let rest = |c: &DeviceCost| !is_svc(c);
                let (rl, re) = (l as f64 - sl, e - se);
                rescale(
                    &mut profile.devices,
                    rest,
                    l - ls,
                    e * (1.0 - share),
                    rl,
                    re,
                );
            }
            Knob::ColdRate => params.cold_p = (params.cold_p * v).min(1.0),
            Knob::TimerRate => params.timer_bursts_per_hour *= v,
            Knob::HotPages => params.hot_pages = v.round() as u32,
            Knob::AwayAfterMin => params.away_after_ms = (v * 60_000.0).round() as u64,
        }
    }
}

/// The service devices' resume (the selective resume's).
fn service(p: &PowerProfile) -> Transition {
    p.selective_resume(&PowerProfile::SERVICE_DEVICES)
}

/// The share of the resume's latency in the service devices.
fn service_share(p: &PowerProfile) -> f64 {
    if p.resume.latency_ms == 0 || p.devices.is_empty() {
        return 1.0;
    }
    service(p).latency_ms as f64 / p.resume.latency_ms as f64
}

/// Scales the devices `pick` chooses, whose latencies and energies add up
/// to `l0` and `e0`, so that they add up to `latency_ms` and `energy_j`
/// exactly (the last takes the rounding; equal shares if they were all 0).
fn rescale(
    devices: &mut [DeviceCost],
    pick: impl Fn(&DeviceCost) -> bool,
    latency_ms: u64,
    energy_j: f64,
    l0: f64,
    e0: f64,
) {
    let idx: Vec<usize> = (0..devices.len()).filter(|&i| pick(&devices[i])).collect();
    let n = idx.len() as f64;
    let (mut l_left, mut e_left) = (latency_ms, energy_j);
    for (k, &i) in idx.iter().enumerate() {
        let d = &mut devices[i];
        if k + 1 == idx.len() {
            d.latency_ms = l_left;
            d.energy_j = e_left.max(0.0);
            break;
        }
        let lf = if l0 > 0.0 {
            d.latency_ms as f64 / l0
        } else {
            1.0 / n
        };
        let ef = if e0 > 0.0 { d.energy_j / e0 } else { 1.0 / n };
        d.latency_ms = ((latency_ms as f64 * lf).round() as u64).min(l_left);
        d.energy_j = (energy_j * ef).min(e_left);
        l_left -= d.latency_ms;
        e_left -= d.energy_j;
    }
}

/// One point of a sweep: the value and, over the seeds, the savings of the
/// combination and of full migration with their intervals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// The knob's value.
    pub value: f64,
    /// Whether it is the default's.
    pub default: bool,
    /// The combination's savings over the trace, percent.
    pub savings: Ci95,
    /// Full migration's.
    pub full_migration: Ci95,
    /// The combination's wakes by a miss per idle hour (mean).
    pub wakes_per_idle_hour: f64,
    /// The combination's p99 stall per miss, ms (mean over the seeds).
    pub stall_p99_ms: f64,
    /// The combination's wasted migrations, percent of idle periods (mean).
    pub wasted_pct: f64,
}

/// A sweep of one knob.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// What varies.
    pub knob: Knob,
    /// Its key ([`Knob::key`]).
    pub key: String,
    /// What the axis shows.
    pub label: String,
    /// Where the values come from.
    pub source: String,
    /// The combination swept (the same key as in `policies`).
    pub combination: String,
    /// The points, in the order swept.
    pub points: Vec<SweepPoint>,
    /// For the server share: the `partial_vms_per_server` at which the
    /// combination saves as much as full migration, over the seeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crossover: Option<Ci95>,
}

/// The mean and its interval over `xs` (the interval collapses to the
/// mean with one seed).
fn stat(xs: &[f64]) -> Ci95 {
    ci95(xs).unwrap_or_else(|| {
        let mean = xs.iter().sum::<f64>() / xs.len().max(1) as f64;
        Ci95 {
            mean,
            lo: mean,
            hi: mean,
            seeds: xs.len() as u32,
        }
    })
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (n, s) = xs.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

/// A point from one report per seed; `savings` of each seed's outcome
/// given by `pick`.
fn point(value: f64, default: bool, runs: &[(&Report, &Outcome, f64)]) -> SweepPoint {
    let periods = |r: &Report| r.idle_periods.values().sum::<u64>().max(1) as f64;
    SweepPoint {
        value,
        default,
        savings: stat(&runs.iter().map(|x| x.2).collect::<Vec<_>>()),
        full_migration: stat(
            &runs
                .iter()
                .map(|x| x.0.full_migration.savings_pct)
                .collect::<Vec<_>>(),
        ),
        wakes_per_idle_hour: mean(runs.iter().map(|x| x.1.wakes_per_idle_hour)),
        stall_p99_ms: mean(
            runs.iter()
                .map(|x| x.1.stall_ms.map_or(0.0, |s| s.p99 as f64)),
        ),
        wasted_pct: mean(
            runs.iter()
                .map(|x| 100.0 * x.1.wasted_migrations as f64 / periods(x.0)),
        ),
    }
}

/// What to sweep: the synthetic model, the seeds, and the one combination
/// (a [`SimConfig`] with one policy, one prefetch policy and one resume,
/// whose report key is `combination`).
#[derive(Clone, Debug)]
pub struct Plan {
    /// The model at its defaults (its seed the first).
    pub params: SynthParams,
    /// Seeds: `params.seed`, +1, ...
    pub seeds: u32,
    /// The combination's configuration.
    pub config: SimConfig,
    /// Its key in reports.
    pub combination: String,
    /// The knobs and their values ([`Knob::all`] by default).
    pub knobs: Vec<(Knob, Vec<f64>)>,
}

impl Plan {
    fn trace(&self, params: &SynthParams, seed: u32) -> FleetTrace {
        generate(&SynthParams {
            seed: params.seed.wrapping_add(u64::from(seed)),
            ..params.clone()
        })
    }

    fn config(&self, params: &SynthParams, profile: PowerProfile) -> SimConfig {
        SimConfig {
            profile,
            durable_copy_ms: params.durable_copy_ms(),
            ..self.config.clone()
        }
    }

    /// Runs every sweep; `progress` is told each knob as it starts.
    pub fn run(&self, mut progress: impl FnMut(Knob)) -> Vec<Sweep> {
        let base_traces: Vec<FleetTrace> = (0..self.seeds)
            .map(|s| self.trace(&self.params, s))
            .collect();
        let base_config = self.config(&self.params, self.config.profile.clone());
        let base: Vec<Report> = base_traces
            .iter()
            .map(|t| simulate(t, &base_config))
            .collect();
        let mut out = Vec::new();
        for (knob, values) in &self.knobs {
            progress(*knob);
            let default = knob.default_value(&self.params, &self.config.profile);
            let mut points = Vec::new();
            let mut crossover = None;
            if *knob == Knob::PartialVmsPerServer {
                let n0 = f64::from(self.config.profile.server.partial_vms_per_server);
                let runs: Vec<(&Report, &Outcome)> = base
                    .iter()
                    .filter_map(|r| r.policies.get(&self.combination).map(|o| (r, o)))
                    .collect();
                for &v in values {
                    let with: Vec<(&Report, &Outcome, f64)> = runs
                        .iter()
                        .map(|&(r, o)| (r, o, savings_with_share(o, r.always_on_j, n0, v)))
                        .collect();
                    points.push(point(v, v == default, &with));
                }
                let xs: Vec<f64> = runs
                    .iter()
                    .filter_map(|&(r, o)| crossover_partial_vms_per_server(r, o, n0))
                    .collect();
                crossover = (!xs.is_empty()).then(|| stat(&xs));
            } else {
                for &v in values {
                    let (mut params, mut profile) =
                        (self.params.clone(), self.config.profile.clone());
                    knob.apply(v, &mut params, &mut profile);
                    let config = self.config(&params, profile);
                    let reports: Vec<Report> = if v == default {
                        base.clone()
                    } else {
                        (0..self.seeds)
                            .map(|s| {
                                if knob.changes_trace() {
                                    simulate(&self.trace(&params, s), &config)
                                } else {
                                    simulate(&base_traces[s as usize], &config)
                                }
                            })
                            .collect()
                    };
                    let runs: Vec<(&Report, &Outcome, f64)> = reports
                        .iter()
                        .filter_map(|r| {
                            r.policies
                                .get(&self.combination)
                                .map(|o| (r, o, o.savings_pct))
                        })
                        .collect();
                    points.push(point(v, v == default, &runs));
                }
            }
            out.push(Sweep {
                knob: *knob,
                key: knob.key().to_string(),
                label: knob.label().to_string(),
                source: knob.source().to_string(),
                combination: self.combination.clone(),
                points,
                crossover,
            });
        }
        out
    }
}

#[cfg(test)]
#[path = "sweep_tests.rs"]
mod tests;
