//! The server's Prometheus metrics and its HTTP listener (with the
//! dashboard): the lazy memory filesystem's events feed
//! [`ServerMetrics`] and the fleet view through [`Observer`]; the figures
//! of the moment are computed at each scrape from the server ([`samples`]).

use std::sync::{Arc, Weak};
use std::time::Duration;

use jettison_handover::ServerState;
use jettison_metrics::{Kind, Registry, Sample, ServerMetrics, Snapshot};
use jettison_power_model::HostState;

use crate::fleet::Fleet;
use crate::Server;

/// Forwards the memory filesystem's events to the metrics and the fleet
/// view.
#[derive(Debug)]
pub(crate) struct Observer {
    pub(crate) metrics: ServerMetrics,
    pub(crate) fleet: Arc<Fleet>,
}

impl jettison_lazymem::MemObserver for Observer {
    fn fault(&self, _vm: &str, service: Duration) {
        self.metrics.fault(service);
    }
    fn fetched(&self, vm: &str, pages: u64, bytes: u64) {
        self.metrics.fetched(pages, bytes);
        self.fleet.fetched(vm, pages, crate::fleet::now_ms());
    }
    fn retry(&self, _vm: &str) {
        self.metrics.fetch_retries.inc();
    }
    fn replica_hit(&self, _vm: &str) {
        self.metrics.replica_hits.inc();
    }
}

/// The figures of the moment: VMs consolidated, checkpoint ages, desktops
/// asleep, their wakes by reason and their estimated energy.
fn samples(server: &Server) -> Vec<Sample> {
    let now = crate::fleet::now_ms();
    let mut running = 0u32;
    let mut ages = Vec::new();
    for (vm, slot) in server.handovers.slots() {
        // A guest busy in a step is skipped this time, never waited for.
        let Ok(g) = slot.try_lock() else { continue };
        if g.handover == ServerState::Running {
            running += 1;
        }
        if let Some(at) = g.last_checkpoint_ms {
            ages.push((vm, now.saturating_sub(at) as f64 / 1000.0));
        }
    }
    ages.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = vec![Sample::new(
        "jettison_server_vms_consolidated",
        "VMs running on this server",
        None,
        Kind::Gauge,
        f64::from(running),
    )];
    for (vm, age) in ages {
        out.push(
            Sample::new(
                "jettison_server_checkpoint_age",
                "Time since each VM's last complete checkpoint",
                Some("seconds"),
                Kind::Gauge,
                age,
            )
            .label("vm", vm),
        );
    }
    let desktops = server.handovers.fleet.desktops();
    let asleep = desktops
        .values()
        .filter(|d| d.state() == HostState::Asleep)
        .count();
    out.push(Sample::new(
        "jettison_server_desktops_asleep",
        "Desktops asleep as this server knows them (announced, not woken since)",
        None,
        Kind::Gauge,
        asleep as f64,
    ));
    for (name, d) in &desktops {
        for (reason, n) in jettison_metrics::wakes_by_reason(&d.timeline.wakes) {
            out.push(
                Sample::new(
                    "jettison_server_desktop_wakes",
                    "Wakes of each desktop seen by this server, by cause (page_miss: this \
                     server woke it for a page; user_return: it came back by itself)",
                    None,
                    Kind::Counter,
                    n as f64,
                )
                .label("desktop", name.clone())
                .label("cause", reason),
            );
        }
    }
    let profile = jettison_power_model::PowerProfile::default();
    for (name, d) in &desktops {
        let one = std::collections::BTreeMap::from([(name.clone(), d.clone())]);
        let saved: f64 = crate::fleet::energy_per_day(&one, &profile, now)
            .iter()
            .map(crate::fleet::DayEnergy::saved_wh)
            .sum();
        out.push(
            Sample::new(
                "jettison_server_desktop_energy_saved",
                "Energy each desktop saved since this server first saw it, estimated from \
                 this server's view with the default power profile",
                Some("watt_hours"),
                Kind::Gauge,
                saved,
            )
            .label("desktop", name.clone()),
        );
    }
    out
}

/// The server's registry: its event metrics, the TLS refusals and the
/// figures computed from `server` at each scrape (held weakly: the
/// listener never keeps the server alive).
pub(crate) fn registry(metrics: &ServerMetrics, server: Weak<Server>) -> Registry {
    let mut r = Registry::default();
    metrics.register(&mut r);
    r.register_collector(Box::new(Snapshot::new(move || {
        server.upgrade().map(|s| samples(&s)).unwrap_or_default()
    })));
    r
}
