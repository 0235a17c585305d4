//! jettison's Prometheus metrics: the metric families of both daemons
//! ([`ServerMetrics`], [`AgentMetrics`]), the figures computed at each scrape
//! ([`Snapshot`]), the process-wide count of TLS refusals by reason
//! ([`tls_refused`]), and the HTTP listener that serves them as OpenMetrics
//! text on `GET /metrics` ([`serve`], which also serves the routes a daemon
//! adds, such as the server's dashboard).
//!
//! Names follow Prometheus' conventions: every metric starts with
//! `jettison_`, carries its unit (`_seconds`, `_bytes`, `_watt_hours`), and
//! counters end in `_total` (the encoder adds it to the names registered
//! here). The full list is in `docs/runbook.md`.
//!
//! Each daemon has a `[metrics]` section: absent, nothing is served; present,
//! the listener binds `listen`, by default on loopback ([`SERVER_PORT`],
//! [`AGENT_PORT`]), so that no port opens on the network unless the
//! operator says so.
#![forbid(unsafe_code)]

mod agent;
mod http;
mod server;
mod snapshot;
mod tls;

use std::net::{Ipv4Addr, SocketAddr};

pub use agent::AgentMetrics;
pub use http::{bind, encode, serve, MetricsError};
pub use prometheus_client::registry::Registry;
pub use server::{fault_buckets, ServerMetrics};
pub use snapshot::{wakes_by_reason, Kind, Sample, Snapshot};
pub use tls::{tls_refusals, tls_refused};

/// The server's default metrics (and dashboard) port, on loopback.
pub const SERVER_PORT: u16 = 9471;
/// The agent's default metrics port, on loopback.
pub const AGENT_PORT: u16 = 9472;

/// A daemon's `[metrics]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where the HTTP listener binds (default: `127.0.0.1` and the daemon's
    /// port, [`SERVER_PORT`] or [`AGENT_PORT`]).
    pub listen: Option<SocketAddr>,
}

impl MetricsConfig {
    /// The address to bind: `listen`, or loopback at `default_port`.
    pub fn address(&self, default_port: u16) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, default_port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_address_is_loopback() {
        let c: MetricsConfig = toml::from_str("").unwrap();
        assert_eq!(c.address(SERVER_PORT).to_string(), "127.0.0.1:9471");
        let c: MetricsConfig = toml::from_str("listen = \"0.0.0.0:9100\"").unwrap();
        assert_eq!(c.address(SERVER_PORT).to_string(), "0.0.0.0:9100");
        assert!(toml::from_str::<MetricsConfig>("port = 1").is_err());
    }
}
