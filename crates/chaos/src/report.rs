//! The JSON report of a chaos run: `quick`, `total`, `passed`, one row per
//! case (`cases`), and the restart figures: `checkpoint` (`downtime_ms`
//! `p50` and `p99`, `bytes` per checkpoint `mean` and `total`, `count`,
//! over every checkpoint the servers took), `server_restart`
//! (`guests_stopped`: guests that lost work across a planned restart,
//! `max_pause_ms`), `host_crash` (`work_lost_s`, `recovery_s`) and
//! `desktop_reboot` (`vm_survived`); `null` where no case measured it.

use serde_json::{json, Value};

use crate::run::Outcome;
use jettison_bench::stats::summarize;

/// The report of these outcomes.
pub fn build(outcomes: &[Outcome], quick: bool) -> Value {
    let by = |fault: &'static str| outcomes.iter().filter(move |o| o.fault == fault);
    let checkpoints: Vec<(f64, u64)> = outcomes
        .iter()
        .flat_map(|o| o.checkpoints.clone())
        .collect();
    let downtimes: Vec<f64> = checkpoints.iter().map(|c| c.0).collect();
    let downtime = (!downtimes.is_empty()).then(|| summarize(&downtimes));
    let bytes: u64 = checkpoints.iter().map(|c| c.1).sum();
    let restarts: Vec<&Outcome> = by("stop_server").collect();
    let crashes: Vec<&Outcome> = by("host_crash").collect();
    let reboots: Vec<&Outcome> = by("reboot_desktop").collect();
    let max = |v: Vec<f64>| v.into_iter().reduce(f64::max);
    json!({
        "quick": quick,
        "total": outcomes.len(),
        "passed": outcomes.iter().filter(|o| o.passed).count(),
        "cases": outcomes,
        "checkpoint": {
            "count": checkpoints.len(),
            "downtime_ms": {
                "p50": downtime.as_ref().map(|d| d.p50),
                "p99": downtime.as_ref().map(|d| d.p99),
            },
            "bytes": {
                "total": bytes,
                "mean": (!checkpoints.is_empty()).then(|| bytes / checkpoints.len() as u64),
            },
        },
        "server_restart": (!restarts.is_empty()).then(|| json!({
            "guests_stopped": restarts.iter().filter(|o| lost_work(o)).count(),
            "max_pause_ms": max(restarts.iter().filter_map(|o| o.restart_pause_ms).collect()),
        })),
        "host_crash": (!crashes.is_empty()).then(|| json!({
            "work_lost_s": max(crashes.iter().filter_map(|o| o.work_lost_s).collect()),
            "recovery_s": max(crashes.iter().filter_map(|o| o.recovery_s).collect()),
        })),
        "desktop_reboot": (!reboots.is_empty()).then(|| json!({
            "vm_survived": reboots.iter().all(|o| o.passed),
        })),
    })
}

/// Whether a guest lost work across a planned restart: it did not come
/// back, rolled back, failed its checks or lost a disk write.
fn lost_work(o: &Outcome) -> bool {
    !o.recovered || o.rolled_back || o.guest_check_failures > 0 || o.disk_writes_lost != Some(0)
}

/// One line per case, for the terminal.
pub fn summary(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    for o in outcomes {
        s += &format!(
            "{:<5} {:<36} copies {} at {:<8} checks failed {} resets {} rolled back {:<5} disk writes lost {}/{} {:>5.0} s {}\n",
            if o.passed { "ok" } else { "FAIL" },
            o.name,
            o.copies_running,
            o.runs_at.map(|s| format!("{s:?}")).unwrap_or_else(|| "-".into()),
            o.guest_check_failures,
            o.connection_resets,
            o.rolled_back,
            o.disk_writes_lost.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            o.disk_writes_checked,
            o.seconds,
            o.detail
        );
    }
    let passed = outcomes.iter().filter(|o| o.passed).count();
    s += &format!("{passed} passed, {} failed\n", outcomes.len() - passed);
    s
}
