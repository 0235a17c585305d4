//! The simulation's result: per scheme, energy, savings (overall and by
//! idle-period class), sleeps and wakes, fetches and network bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::delay::{Return, ReturnLatency, StallMs, Stalls};
use crate::rank::Ci95;
use crate::trace::{Span, DAY_MS};

/// Idle-period classes of [`Outcome::savings_by_idle_bucket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Bucket {
    /// Under 10 min: the user came back soon after the agent moved the VM
    /// (idle detection waits `away_after_s` first).
    #[serde(rename = "under-10m")]
    Brief,
    /// 10 to 30 min.
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
            l if l < 600_000 => Self::Brief,
            l if l < 1_800_000 => Self::Short,
            l if l < 3_600_000 => Self::Medium,
            _ => Self::Long,
        }
    }
}

/// One scheme's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Outcome {
    /// The sleep policy (`oracle` for the offline optimum; empty for the
    /// baselines).
    pub policy: String,
    /// The prefetch policy (`none` for the baselines).
    pub prefetch: String,
    /// Whether wakes that serve pages resume the service devices only.
    pub selective_resume: bool,
    /// Joules over the whole trace, all desktops, server share included.
    pub energy_j: f64,
    /// Of which the server's share for consolidated VMs.
    pub server_j: f64,
    /// Saved against always-on over the whole trace, percent.
    pub savings_pct: f64,
    /// Saved against always-on within idle periods (every class), percent.
    pub savings_idle_pct: f64,
    /// Saved against always-on within idle periods of 10 minutes or more
    /// (the paper's class), percent.
    pub savings_10m_plus_pct: f64,
    /// Saved against always-on within each class of idle periods, percent.
    pub savings_by_idle_bucket: BTreeMap<Bucket, f64>,
    /// Times a desktop went to sleep; each ends in one wake, by a miss or at
    /// the user's return.
    pub sleeps: u64,
    /// Misses that found their desktop asleep and waited for a resume (the
    /// wakes to serve pages; the oracle too wakes at the requests).
    pub delayed_requests: u64,
    /// Wakes by a miss (the other sleeps end at the user's return).
    pub page_wakes: u64,
    /// Migrations that saved nothing: the VM moved (or started to), and the
    /// user came back before the desktop slept (partial migration; full
    /// migration: before its migration had finished, or before its sleep
    /// could pay for itself). Plain sleep has none.
    pub wasted_migrations: u64,
    /// Wakes by a miss per hour of idle periods.
    pub wakes_per_idle_hour: f64,
    /// The per-miss stall, ms, zeros included (online combinations only;
    /// [`crate::delay`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_ms: Option<StallMs>,
    /// From the user's return until the desktop is usable, s
    /// ([`crate::delay`]); not for the oracles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_latency_s: Option<ReturnLatency>,
    /// The 95 % confidence interval of `savings_pct` over the seeds
    /// simulated (filled by [`crate::rank::fill_savings_ci95`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savings_ci95: Option<Ci95>,
    /// Fetch events: misses, each a request to the desktop.
    pub fetches: u64,
    /// Pages that crossed the network, prefetched ones included.
    pub pages_fetched: u64,
    /// Bytes over the network: pages fetched x 4 KiB, plus the device state
    /// of every move ([`crate::fetch::DEVICE_STATE_BYTES`], twice per
    /// consolidated period, once per full migration). Dirty pages going home
    /// are not counted: traces do not record guest writes. Full migration
    /// counts its way out only, like its energy.
    pub network_bytes: u64,
    /// Pulls of the rest of a VM's memory against a wake storm
    /// ([`jettison_power_model::PullPolicy`]; only with
    /// [`crate::SimConfig::pull`]).
    #[serde(default)]
    pub pulls: u64,
    /// Per bucket, joules spent in idle periods (for the percentages).
    #[serde(skip)]
    pub(crate) by_bucket_j: BTreeMap<Bucket, f64>,
    /// Every miss's stall.
    #[serde(skip)]
    pub(crate) stalls: Stalls,
    /// Every return, before the link is shared.
    #[serde(skip)]
    pub(crate) returns: Vec<Return>,
}

impl Outcome {
    pub(crate) fn named(policy: &str, prefetch: &str, selective_resume: bool) -> Self {
        Self {
            policy: policy.into(),
            prefetch: prefetch.into(),
            selective_resume,
            ..Self::default()
        }
    }

    pub(crate) fn add(&mut self, b: Bucket, j: f64, server_j: f64) {
        self.energy_j += j;
        self.server_j += server_j;
        *self.by_bucket_j.entry(b).or_default() += j;
    }

    /// Joules spent within idle periods, server share included.
    pub fn idle_j(&self) -> f64 {
        self.by_bucket_j.values().sum()
    }

    /// Adds `other`'s counts and joules (one desktop's) to this one.
    pub(crate) fn absorb(&mut self, other: &Self) {
        self.energy_j += other.energy_j;
        self.server_j += other.server_j;
        self.sleeps += other.sleeps;
        self.delayed_requests += other.delayed_requests;
        self.page_wakes += other.page_wakes;
        self.wasted_migrations += other.wasted_migrations;
        self.stalls.absorb(&other.stalls);
        self.returns.extend_from_slice(&other.returns);
        self.fetches += other.fetches;
        self.pages_fetched += other.pages_fetched;
        self.network_bytes += other.network_bytes;
        self.pulls += other.pulls;
        for (b, j) in &other.by_bucket_j {
            *self.by_bucket_j.entry(*b).or_default() += j;
        }
    }

    /// Adds the joules spent outside idle periods and computes the
    /// percentages against always-on (`always_on_j` overall, `idle_base` per
    /// bucket).
    pub(crate) fn finish(
        &mut self,
        outside_j: f64,
        always_on_j: f64,
        idle_base: &BTreeMap<Bucket, f64>,
    ) {
        self.energy_j += outside_j;
        self.savings_pct = pct(always_on_j, self.energy_j);
        self.savings_idle_pct = pct(idle_base.values().sum(), self.by_bucket_j.values().sum());
        let over = |m: &BTreeMap<Bucket, f64>| -> f64 {
            m.iter()
                .filter(|(b, _)| **b != Bucket::Brief)
                .map(|(_, j)| j)
                .sum()
        };
        self.savings_10m_plus_pct = pct(over(idle_base), over(&self.by_bucket_j));
        self.savings_by_idle_bucket = self
            .by_bucket_j
            .iter()
            .map(|(b, &j)| (*b, pct(idle_base[b], j)))
            .collect();
    }
}

fn pct(base: f64, j: f64) -> f64 {
    if base > 0.0 {
        100.0 * (base - j) / base
    } else {
        0.0
    }
}

/// The simulation's result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// Joules with every desktop left on.
    pub always_on_j: f64,
    /// Idle periods per class.
    pub idle_periods: BTreeMap<Bucket, u64>,
    /// Milliseconds of idle periods, all desktops.
    pub idle_ms: u64,
    /// Requests in the trace (pages the VMs used, first touch per period).
    pub requests: u64,
    /// Online combinations, keyed `POLICY[+PREFETCH][+selective]`
    /// ([`crate::PolicySpec::name`], [`crate::prefetch_name`]; no prefetch
    /// and full resumes leave the policy's name alone).
    pub policies: BTreeMap<String, Outcome>,
    /// The offline optimum of each prefetch policy and resume, keyed
    /// `PREFETCH[+selective]`.
    pub oracles: BTreeMap<String, Outcome>,
    /// The lowest-energy entry of `oracles`: it bounds every online
    /// combination's energy.
    pub oracle: Outcome,
    /// Plain sleep, without consolidation.
    pub plain_sleep: Outcome,
    /// Full migration.
    pub full_migration: Outcome,
    /// The best online combination again, its VMs charged the server share
    /// of a fully migrated VM (`server.vms_per_server`) instead of a
    /// partially migrated one's: what the margin over full migration
    /// depends on. Filled by the caller (`jettison simulate`), not by
    /// [`crate::simulate`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_with_equal_share: Option<Outcome>,
    /// The online combination saving the most within a delay budget
    /// ([`crate::rank::best_under_budget`]); filled by the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_under_budget: Option<crate::rank::BudgetPick>,
    /// `partial_vms_per_server` at which that combination (or, with none
    /// within the budget, the best online one) saves as much as full
    /// migration ([`crate::rank::crossover_partial_vms_per_server`]);
    /// filled by the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crossover_partial_vms_per_server: Option<f64>,
    /// The measured density behind the profile's `partial_vms_per_server`
    /// (`jettison simulate --density`); `None` when it is the profile's
    /// assumption. Filled by the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub density: Option<crate::density::DensityUsed>,
    /// The sensitivity sweeps ([`crate::sweep`]); filled by the caller
    /// (`jettison simulate --sweeps`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweeps: Option<Vec<crate::sweep::Sweep>>,
    /// The hybrid against wake storms, with and without ([`crate::storms`]);
    /// filled by the caller (`jettison simulate --storms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storms: Option<Vec<crate::storms::StormRow>>,
    /// A recorded trace replayed with the agent's own settings against
    /// its recorded timeline, over the idle periods
    /// ([`crate::replay::replay_idle`]); filled by the caller (`jettison
    /// simulate --trace` on an agent's trace files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<crate::replay::ReplayDiff>,
}

impl Report {
    /// The online combination with the lowest energy, among those with or
    /// without selective resume.
    pub fn best_online(&self, selective_resume: bool) -> Option<(&str, &Outcome)> {
        self.policies
            .iter()
            .filter(|(_, o)| o.selective_resume == selective_resume)
            .min_by(|a, b| a.1.energy_j.total_cmp(&b.1.energy_j))
            .map(|(k, o)| (k.as_str(), o))
    }

    /// The oracle of the same prefetch policy and resume as `o`.
    pub fn oracle_of(&self, o: &Outcome) -> Option<&Outcome> {
        self.oracles
            .values()
            .find(|x| x.prefetch == o.prefetch && x.selective_resume == o.selective_resume)
    }
}
