//! The agent's Prometheus metrics: pages and bytes its state server served
//! (counted as they go), and at each scrape, from its power record, the
//! seconds asleep, the wakes by reason and the estimated energy used and
//! saved (the power model's meter over its timeline and profile).

use std::sync::{Arc, Weak};

use jettison_metrics::{Kind, Registry, Sample, Snapshot};

use crate::power::Power;
use crate::vm::Placement;
use crate::Agent;

/// The power figures since the agent started (none without `[power]`).
pub(crate) fn power_samples(power: &Power) -> Vec<Sample> {
    let rec = power.record();
    let Ok(e) = jettison_power_model::meter(&rec.timeline, &rec.profile, rec.now_ms) else {
        return Vec::new();
    };
    let mut out = vec![
        Sample::new(
            "jettison_agent_asleep",
            "Time this desktop spent asleep since the agent started",
            Some("seconds"),
            Kind::Counter,
            e.time.asleep_ms as f64 / 1000.0,
        ),
        Sample::new(
            "jettison_agent_energy_used",
            "Energy this desktop used since the agent started, estimated with its power profile",
            Some("watt_hours"),
            Kind::Counter,
            e.desktop_j / 3600.0,
        ),
        Sample::new(
            "jettison_agent_energy_saved",
            "Energy saved since the agent started against the desktop left on (its VMs' share \
             of the server counted), estimated with its power profile",
            Some("watt_hours"),
            Kind::Gauge,
            (e.baseline_j - e.total_j) / 3600.0,
        ),
    ];
    for (reason, n) in jettison_metrics::wakes_by_reason(&rec.timeline.wakes) {
        out.push(
            Sample::new(
                "jettison_agent_wakes",
                "Wakes of this desktop, by reason",
                None,
                Kind::Counter,
                n as f64,
            )
            .label("reason", reason),
        );
    }
    out
}

fn samples(agent: &Agent) -> Vec<Sample> {
    let away = agent
        .slots
        .values()
        .filter(|s| {
            s.placement
                .try_lock()
                .is_ok_and(|p| matches!(*p, Placement::Away { .. }))
        })
        .count();
    let mut out = vec![Sample::new(
        "jettison_agent_vms_away",
        "VMs of this desktop consolidated on the server",
        None,
        Kind::Gauge,
        away as f64,
    )];
    if let Some(p) = &agent.power {
        out.extend(power_samples(p));
    }
    out
}

/// The agent's registry: its served pages and bytes, the TLS refusals and
/// the figures computed from `agent` at each scrape (held weakly).
pub(crate) fn registry(agent: &Arc<Agent>) -> Registry {
    let mut r = Registry::default();
    agent.metrics.register(&mut r);
    let weak: Weak<Agent> = Arc::downgrade(agent);
    r.register_collector(Box::new(Snapshot::new(move || {
        weak.upgrade().map(|a| samples(&a)).unwrap_or_default()
    })));
    r
}
