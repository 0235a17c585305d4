//! The desktop agent's metrics that move with events: pages and bytes its
//! state server served. Its power figures (seconds asleep, wakes by reason,
//! energy) come from its power record at each scrape, as a
//! [`crate::Snapshot`] the agent registers beside them.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::{Registry, Unit};

/// The agent's event-driven metrics (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct AgentMetrics {
    /// `jettison_agent_pages_served_total`.
    pub pages_served: Counter,
    /// `jettison_agent_served_bytes_total`.
    pub bytes_served: Counter,
}

impl AgentMetrics {
    /// Registers the families in `registry`, with the process's TLS
    /// refusals.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "jettison_agent_pages_served",
            "Pages the state server sent to the consolidation server",
            self.pages_served.clone(),
        );
        registry.register_with_unit(
            "jettison_agent_served",
            "Bytes the state server sent to the consolidation server",
            Unit::Bytes,
            self.bytes_served.clone(),
        );
        crate::tls::register(registry);
    }

    /// The state server sent `pages` pages, `bytes` bytes.
    pub fn served(&self, pages: u64, bytes: u64) {
        self.pages_served.inc_by(pages);
        self.bytes_served.inc_by(bytes);
    }
}
