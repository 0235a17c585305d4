//! The synthetic fleet's parameters, each with its source: the one place
//! where the synthetic model's numbers live. [`SynthParams::documented`]
//! lists them with their sources for `docs/simulation.md` (a test keeps
//! the list and the struct in step).
//!
//! Sources are cited only where we read them; everything else is marked
//! **assumed**. Fit the assumed ones to a fleet's logs before trusting the
//! numbers (`jettison simulate --sweeps` shows how much each one matters).

use serde::{Deserialize, Serialize};

/// Bytes in a GiB.
const GIB: u64 = 1 << 30;

/// Parameters of a synthetic fleet; see [`SynthParams::documented`] for
/// each default's source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthParams {
    /// Seed of the whole trace.
    pub seed: u64,
    /// Number of desktops.
    pub desktops: u32,
    /// Number of days (the first is a Monday).
    pub days: u32,
    /// Mean arrival hour, uniform +- `arrive_jitter_h`.
    pub arrive_h: f64,
    /// Arrival jitter, hours.
    pub arrive_jitter_h: f64,
    /// Mean leaving hour, uniform +- `leave_jitter_h`.
    pub leave_h: f64,
    /// Leaving jitter, hours.
    pub leave_jitter_h: f64,
    /// Probability a user is away a whole weekday.
    pub absent_p: f64,
    /// Lunch starts uniform in 11:30-13:30 and lasts uniform 30-75 min.
    pub lunch: bool,
    /// Mean meetings a day (Poisson), each 30, 60 or 90 min (uniform).
    pub meetings_per_day: f64,
    /// Mean other absences from the desk a day (Poisson), at uniform times
    /// of the working day, each Pareto-distributed (heavy-tailed).
    pub absences_per_day: f64,
    /// Scale of an absence's Pareto distribution (its shortest), ms.
    pub absence_min_ms: u64,
    /// Shape of an absence's Pareto distribution (`P(X > x) =
    /// (absence_min_ms / x)^shape`).
    pub absence_shape: f64,
    /// Longest absence, ms (the distribution is cut there).
    pub absence_max_ms: u64,
    /// Idle detection: the agent decides the user is away, and moves the
    /// VM, after this long without input (its `away_after_s`), ms. An idle
    /// period starts then; shorter absences move nothing.
    pub away_after_ms: u64,
    /// Making the VM's memory durable before the desktop's first sleep of a
    /// period (the agent copies it to disk), ms per GiB of guest memory.
    pub durable_ms_per_gib: u64,
    /// Pages of guest memory (4 KiB pages).
    pub vm_pages: u32,
    /// Pages of each VM's hot set.
    pub hot_pages: u32,
    /// Mean length of a run of consecutive pages in the hot set.
    pub hot_run_mean_pages: f64,
    /// Skew of the runs' popularity (1 is uniform), see [`crate::synth_vm`].
    pub hot_skew: f64,
    /// Share of the hot set's runs replaced per day (the working set
    /// drifts): each run is replaced by a fresh one with probability
    /// `1 - exp(-rate x days)` between two periods.
    pub hot_drift_per_day: f64,
    /// Accesses in the burst when the VM arrives on the server.
    pub arrival_accesses: u32,
    /// Duration of that burst, ms.
    pub burst_ms: u64,
    /// Timer bursts an hour after it (Poisson).
    pub timer_bursts_per_hour: f64,
    /// Mean accesses of a timer burst beyond its first (Poisson).
    pub timer_extra_accesses: f64,
    /// A timer burst's accesses fall within this many ms.
    pub timer_spread_ms: u64,
    /// Mean pages of a hot access: consecutive pages of one run from a
    /// uniform page of it, clipped to the run's end.
    pub access_mean_pages: f64,
    /// Probability that an access is cold: one uniform page of guest
    /// memory instead of the hot set.
    pub cold_p: f64,
    /// Probability that an idle period of at least `scan_min_period_ms`
    /// holds a scan (a nightly virus scan, an indexer, an update): the wake
    /// storm that partial migration meets worst. 0 in the default model;
    /// `jettison simulate --storms` sets it.
    pub scan_p: f64,
    /// Shortest idle period that may hold a scan, ms.
    pub scan_min_period_ms: u64,
    /// Bursts of a scan.
    pub scan_bursts: u32,
    /// Time between a scan's bursts, ms.
    pub scan_interval_ms: u64,
    /// Cold pages (uniform in guest memory) of each burst.
    pub scan_burst_pages: u32,
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
            absences_per_day: 10.0,
            absence_min_ms: 60_000,
            absence_shape: 1.3,
            absence_max_ms: 4 * 3_600_000,
            away_after_ms: 600_000,
            durable_ms_per_gib: 4_800,
            vm_pages: 1 << 20,
            hot_pages: 4096,
            hot_run_mean_pages: 16.0,
            hot_skew: 2.0,
            hot_drift_per_day: 0.1,
            arrival_accesses: 2048,
            burst_ms: 20_000,
            timer_bursts_per_hour: 12.0,
            timer_extra_accesses: 3.0,
            timer_spread_ms: 1_000,
            access_mean_pages: 8.0,
            cold_p: 0.1,
            scan_p: 0.0,
            scan_min_period_ms: 2 * 3_600_000,
            scan_bursts: 40,
            scan_interval_ms: 90_000,
            scan_burst_pages: 256,
        }
    }
}

/// One parameter of [`SynthParams::documented`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamDoc {
    /// The field's name.
    pub name: &'static str,
    /// Its value, with its unit.
    pub value: String,
    /// What it is.
    pub meaning: &'static str,
    /// Where its value comes from: a source we read, a measurement, or
    /// "assumed".
    pub source: &'static str,
}

const ASSUMED: &str = "assumed";
const RUN: &str = "a setting of the run (`--desktops`, `--days`, `--seed`)";
const OFFICE: &str = "assumed (an office day; no published schedule fitted)";
const PARETO: &str = "form: a Pareto tail per workstation, `F(x) = 1 - a x^-b` (US patent 8,949,172, IBM, claim 7, \
     patentable.app/patents/8949172); workstations' idle-period distributions differ markedly (31 \
     workstations over five months, NYU technical report TR1998-761, \
     cs.nyu.edu/web/Research/TechReports/TR1998-761/TR1998-761.html). The values are assumed, not fitted";
const AWAY: &str = "the agent's own rule (`away_after_s`, example 600 in crates/agent/src/power.rs); the same \
     10 minutes as Windows' idle condition for scheduled tasks (\"The Definition Of Idle In Windows\", \
     ghacks.net/2010/11/09/the-definition-of-idle-in-windows/)";
const DURABLE: &str = "measured on this machine (debug build): about 125 MiB written and 1.2 s before the first \
     sleep for a 256 MiB guest (crates/agent/src/memory_copy.rs), scaled linearly with guest memory";
const VM_SIZE: &str = "assumed (the full-migration baseline's 4 GiB VM)";
const HOT: &str = "this project's benchmark: about 19 MB of fetched pages for a 4 GiB VM after a move \
     (crates/power-model/src/profile.rs); the paper moves state \"under an order of magnitude\" of the VM's \
     memory (Bila et al., ACM TOCS 2015, dl.acm.org/doi/10.1145/2699683)";

impl SynthParams {
    /// Milliseconds the agent spends making a VM's memory durable before
    /// its desktop's first sleep of a period (`durable_ms_per_gib` x the
    /// guest memory).
    pub fn durable_copy_ms(&self) -> u64 {
        let bytes = u64::from(self.vm_pages) * 4096;
        (u128::from(self.durable_ms_per_gib) * u128::from(bytes) / u128::from(GIB)) as u64
    }

    /// Every parameter, its value and its source, in the struct's order.
    pub fn documented(&self) -> Vec<ParamDoc> {
        let min = |ms: u64| format!("{:.1} min", ms as f64 / 60_000.0);
        let row = |name, value: String, meaning, source| ParamDoc {
            name,
            value,
            meaning,
            source,
        };
        vec![
            row("seed", self.seed.to_string(), "seed of the trace", RUN),
            row("desktops", self.desktops.to_string(), "desktops", RUN),
            row(
                "days",
                self.days.to_string(),
                "days, the first a Monday",
                RUN,
            ),
            row(
                "arrive_h",
                format!("{} h", self.arrive_h),
                "mean arrival hour",
                OFFICE,
            ),
            row(
                "arrive_jitter_h",
                format!("{} h", self.arrive_jitter_h),
                "arrival jitter (uniform +-)",
                OFFICE,
            ),
            row(
                "leave_h",
                format!("{} h", self.leave_h),
                "mean leaving hour",
                OFFICE,
            ),
            row(
                "leave_jitter_h",
                format!("{} h", self.leave_jitter_h),
                "leaving jitter (uniform +-)",
                OFFICE,
            ),
            row(
                "absent_p",
                self.absent_p.to_string(),
                "probability of a whole weekday away",
                OFFICE,
            ),
            row(
                "lunch",
                self.lunch.to_string(),
                "lunch at 11:30-13:30 for 30-75 min (uniform)",
                OFFICE,
            ),
            row(
                "meetings_per_day",
                self.meetings_per_day.to_string(),
                "meetings a day (Poisson), 30, 60 or 90 min",
                OFFICE,
            ),
            row(
                "absences_per_day",
                self.absences_per_day.to_string(),
                "other absences a day (Poisson)",
                ASSUMED,
            ),
            row(
                "absence_min_ms",
                min(self.absence_min_ms),
                "Pareto scale of an absence",
                PARETO,
            ),
            row(
                "absence_shape",
                self.absence_shape.to_string(),
                "Pareto shape of an absence",
                "as `absence_min_ms`",
            ),
            row(
                "absence_max_ms",
                min(self.absence_max_ms),
                "longest absence",
                ASSUMED,
            ),
            row(
                "away_after_ms",
                min(self.away_after_ms),
                "idle detection: the VM moves after this long without input",
                AWAY,
            ),
            row(
                "durable_ms_per_gib",
                format!(
                    "{:.1} s/GiB ({:.1} s for this VM)",
                    self.durable_ms_per_gib as f64 / 1000.0,
                    self.durable_copy_ms() as f64 / 1000.0
                ),
                "making memory durable before the first sleep of a period",
                DURABLE,
            ),
            row(
                "vm_pages",
                format!(
                    "{} ({} MiB)",
                    self.vm_pages,
                    u64::from(self.vm_pages) * 4 / 1024
                ),
                "guest memory, 4 KiB pages",
                VM_SIZE,
            ),
            row(
                "hot_pages",
                format!(
                    "{} ({} MiB)",
                    self.hot_pages,
                    u64::from(self.hot_pages) * 4 / 1024
                ),
                "pages of the hot set",
                HOT,
            ),
            row(
                "hot_run_mean_pages",
                self.hot_run_mean_pages.to_string(),
                "mean run of consecutive hot pages",
                ASSUMED,
            ),
            row(
                "hot_skew",
                self.hot_skew.to_string(),
                "popularity skew of the hot runs",
                ASSUMED,
            ),
            row(
                "hot_drift_per_day",
                self.hot_drift_per_day.to_string(),
                "share of the hot set replaced per day",
                ASSUMED,
            ),
            row(
                "arrival_accesses",
                self.arrival_accesses.to_string(),
                "accesses in the arrival burst",
                ASSUMED,
            ),
            row(
                "burst_ms",
                format!("{} s", self.burst_ms / 1000),
                "length of the arrival burst",
                ASSUMED,
            ),
            row(
                "timer_bursts_per_hour",
                self.timer_bursts_per_hour.to_string(),
                "timer bursts an hour (Poisson)",
                "assumed (heartbeats and polls of the guest's background services)",
            ),
            row(
                "timer_extra_accesses",
                self.timer_extra_accesses.to_string(),
                "accesses of a timer burst beyond its first",
                ASSUMED,
            ),
            row(
                "timer_spread_ms",
                format!("{} s", self.timer_spread_ms as f64 / 1000.0),
                "a timer burst's spread",
                ASSUMED,
            ),
            row(
                "access_mean_pages",
                self.access_mean_pages.to_string(),
                "mean pages of a hot access",
                ASSUMED,
            ),
            row(
                "cold_p",
                self.cold_p.to_string(),
                "probability an access is cold (a uniform page)",
                ASSUMED,
            ),
            row(
                "scan_p",
                self.scan_p.to_string(),
                "probability a long idle period holds a scan (wake storm)",
                "assumed (0 in the default model; `--storms` sets 0.5)",
            ),
            row(
                "scan_min_period_ms",
                min(self.scan_min_period_ms),
                "shortest idle period that may hold a scan",
                ASSUMED,
            ),
            row(
                "scan_bursts",
                self.scan_bursts.to_string(),
                "bursts of a scan",
                ASSUMED,
            ),
            row(
                "scan_interval_ms",
                format!("{} s", self.scan_interval_ms as f64 / 1000.0),
                "time between a scan's bursts",
                ASSUMED,
            ),
            row(
                "scan_burst_pages",
                self.scan_burst_pages.to_string(),
                "cold pages of a scan burst",
                ASSUMED,
            ),
        ]
    }
}
