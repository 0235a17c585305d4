//! The power part of the demo's report: how long the desktop slept while its
//! VM was away, why it woke, what it served while asleep (nothing, if all is
//! well), the energy against the desktop left on, and the timeline figure.

use std::path::Path;

use jettison_agent::power::PowerRecord;
use jettison_power_model::{HostState, Placement, WakeReason};
use serde_json::{json, Value};

/// `(start, end)` of the VM's first stay on the server, ms on the timeline clock.
pub fn consolidated_period(rec: &PowerRecord) -> Option<(u64, u64)> {
    let events = rec.timeline.vms.values().next()?;
    let start = events.iter().find(|(_, p)| *p == Placement::Server)?.0;
    let end = events
        .iter()
        .find(|(t, p)| *t > start && *p == Placement::Desktop)
        .map(|e| e.0)
        .unwrap_or(rec.now_ms);
    Some((start, end))
}

fn overlap(a: (u64, u64), b: (u64, u64)) -> u64 {
    a.1.min(b.1).saturating_sub(a.0.max(b.0))
}

/// The `power` and `energy` sections; draws the figure to `plot`.
pub fn build(rec: &PowerRecord, plot: &Path) -> anyhow::Result<(Value, Value)> {
    let until = rec.now_ms.max(rec.timeline.last_ms().unwrap_or(0));
    let intervals = rec.timeline.intervals(until);
    let asleep: Vec<(u64, u64)> = intervals
        .iter()
        .filter(|(s, _, _)| *s == HostState::Asleep)
        .map(|&(_, a, b)| (a, b))
        .collect();
    let period = consolidated_period(rec).unwrap_or((0, 0));
    let asleep_ms: u64 = asleep.iter().map(|&i| overlap(i, period)).sum();
    let span = period.1.saturating_sub(period.0);
    let fetches_while_asleep = rec
        .served
        .iter()
        .filter(|f| asleep.iter().any(|&(a, b)| f.t_ms >= a && f.t_ms < b))
        .count();
    let wake_log: Vec<Value> = rec
        .timeline
        .wakes
        .iter()
        .map(|(t, r)| json!({ "t_s": *t as f64 / 1000.0, "reason": reason(r), "while_consolidated": *t >= period.0 && *t <= period.1 }))
        .collect();
    let energy = jettison_power_model::meter(&rec.timeline, &rec.profile, until)?;
    crate::timeline_plot::draw(rec, until, plot)?;
    let power = json!({
        "asleep_fraction": if span == 0 { 0.0 } else { asleep_ms as f64 / span as f64 },
        "consolidated_s": span as f64 / 1000.0,
        "asleep_s": asleep_ms as f64 / 1000.0,
        "sleeps": asleep.iter().filter(|&&i| overlap(i, period) > 0).count(),
        "wakes": rec.timeline.wakes.len(),
        // Wakes by a magic packet: the emulated NIC wakes only for those.
        "wol_wakes": rec.timeline.wakes.iter().filter(|(_, r)| *r == WakeReason::PageMiss).count(),
        "wake_log": wake_log,
        "fetches_served": rec.served.len(),
        "fetches_while_asleep": fetches_while_asleep,
        "profile": rec.profile,
    });
    let energy = json!({
        "baseline_wh": energy.baseline_j / 3600.0,
        "jettison_wh": energy.total_j / 3600.0,
        "desktop_wh": energy.desktop_j / 3600.0,
        "server_share_wh": energy.server_j / 3600.0,
        "savings_pct": energy.savings_percent,
        "wall_s": energy.wall_ms as f64 / 1000.0,
        "plot": plot.display().to_string(),
    });
    Ok((power, energy))
}

/// A wake reason in words.
pub fn reason(r: &WakeReason) -> String {
    jettison_plot::recorded::wake_label(r)
}
