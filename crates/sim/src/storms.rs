//! The hybrid against wake storms, evaluated (`jettison simulate
//! --storms`): one combination simulated with and without the pull policy
//! ([`jettison_power_model::PullPolicy`]), on the default synthetic model
//! and on the same model with nightly scans ([`SynthParams::scan_p`]),
//! over several seeds. Pure: traces are generated and simulated here.

use jettison_power_model::{PullCharge, PullConfig};
use serde::{Deserialize, Serialize};

use crate::rank::{ci95, Ci95};
use crate::report::Outcome;
use crate::{generate, simulate, SimConfig, SynthParams};

/// The scan probability of the storm model: half the long idle periods.
pub const STORM_SCAN_P: f64 = 0.5;

/// One model with or without the pull, averaged over the seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StormRow {
    /// `default`, or `storms` (scans in half the idle periods of 2 h or more).
    pub model: String,
    /// Whether the server pulls against wake storms, and what a pulled VM
    /// is charged: `no`, `full-vm`, `partial` ([`PullCharge`]).
    pub pull: String,
    /// Savings against always-on, percent (mean over the seeds).
    pub savings_pct: f64,
    /// Its 95 % confidence interval (two seeds or more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savings_ci95: Option<Ci95>,
    /// Wakes by a miss per idle hour (mean).
    pub wakes_per_idle_hour: f64,
    /// p99 stall of a miss, ms (mean over the seeds).
    pub stall_p99_ms: f64,
    /// Longest stall of a miss, ms (over the seeds).
    pub stall_max_ms: u64,
    /// Pulls (mean per seed).
    pub pulls: f64,
    /// GiB over the network (mean per seed).
    pub network_gib: f64,
}

/// The combination `one` (a configuration of one sleep policy, prefetch
/// policy and resume) on each model, without a pull and with a pull of
/// `pull` under each [`PullCharge`], over `seeds` seeds from `params.seed`.
pub fn evaluate(
    params: &SynthParams,
    one: &SimConfig,
    pull: &PullConfig,
    seeds: u32,
) -> Vec<StormRow> {
    let models = [
        ("default", params.clone()),
        (
            "storms",
            SynthParams {
                scan_p: STORM_SCAN_P,
                ..params.clone()
            },
        ),
    ];
    let mut rows = Vec::new();
    for (name, model) in models {
        let traces: Vec<_> = (0..u64::from(seeds.max(1)))
            .map(|i| {
                generate(&SynthParams {
                    seed: model.seed.wrapping_add(i),
                    ..model.clone()
                })
            })
            .collect();
        let charged = |charge| PullConfig {
            charge,
            ..pull.clone()
        };
        for (label, with) in [
            ("no", None),
            ("full-vm", Some(charged(PullCharge::FullVm))),
            ("partial", Some(charged(PullCharge::Partial))),
        ] {
            let config = SimConfig {
                pull: with,
                ..one.clone()
            };
            let outcomes: Vec<Outcome> = traces
                .iter()
                .filter_map(|t| simulate(t, &config).policies.into_values().next())
                .collect();
            rows.push(row(name, label, &outcomes));
        }
    }
    rows
}

fn row(model: &str, pull: &str, outcomes: &[Outcome]) -> StormRow {
    let n = outcomes.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Outcome) -> f64| outcomes.iter().map(f).sum::<f64>() / n;
    let savings: Vec<f64> = outcomes.iter().map(|o| o.savings_pct).collect();
    let stall = |o: &Outcome| o.stall_ms.as_ref().map_or(0.0, |s| s.p99 as f64);
    StormRow {
        model: model.into(),
        pull: pull.into(),
        savings_pct: mean(&|o| o.savings_pct),
        savings_ci95: ci95(&savings),
        wakes_per_idle_hour: mean(&|o| o.wakes_per_idle_hour),
        stall_p99_ms: mean(&stall),
        stall_max_ms: outcomes
            .iter()
            .filter_map(|o| o.stall_ms.as_ref().map(|s| s.max))
            .max()
            .unwrap_or(0),
        pulls: mean(&|o| o.pulls as f64),
        network_gib: mean(&|o| o.network_bytes as f64 / (1u64 << 30) as f64),
    }
}

/// The rows as a Markdown section.
pub fn markdown(
    rows: &[StormRow],
    combination: &str,
    pull: &PullConfig,
    params: &SynthParams,
) -> String {
    let mut s = format!(
        "\n## Against wake storms: the pull\n\nThe combination `{combination}`, without and with \
         the pull policy (`jettison_power_model::PullPolicy`: over {} wakes within {} min, the \
         server pulls the rest of the VM's memory at {} MB/s when the wakes it spares cost more \
         than the pull and the server's larger share). A pulled VM is charged a fully migrated VM's \
         server share from the pull to the period's end (`full-vm`, as if the whole VM sat in the \
         server's memory), or the partial share unchanged (`partial`: the pulled pages sit in the \
         replica on disk); the density measurement decides which is nearer. `storms`: the same \
         synthetic model with a scan ({} bursts of {} cold pages, {} s apart) in half the idle \
         periods of {} min or more.\n\n\
         | model | pull | saved % (95 % CI) | wakes / idle h | p99 stall ms | max stall ms | pulls | GiB |\n\
         |---|---|---|---|---|---|---|---|\n",
        pull.max_wakes,
        pull.window_ms / 60_000,
        pull.rate_bytes_per_s / 1_000_000,
        params.scan_bursts,
        params.scan_burst_pages,
        params.scan_interval_ms / 1000,
        params.scan_min_period_ms / 60_000,
    );
    for r in rows {
        let ci = r
            .savings_ci95
            .as_ref()
            .map_or(String::new(), |c| format!(" ({:.1}-{:.1})", c.lo, c.hi));
        s += &format!(
            "| {} | {} | {:.1}{ci} | {:.2} | {:.0} | {} | {:.1} | {:.1} |\n",
            r.model,
            r.pull,
            r.savings_pct,
            r.wakes_per_idle_hour,
            r.stall_p99_ms,
            r.stall_max_ms,
            r.pulls,
            r.network_gib,
        );
    }
    s
}

#[cfg(test)]
#[path = "storms_tests.rs"]
mod tests;
