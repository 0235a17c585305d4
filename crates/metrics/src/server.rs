//! The consolidation server's metrics that move with events: the fault
//! service histogram, pages and bytes fetched, fetch retries and replica
//! hits (fed by the lazy memory filesystem), pulls and their bytes. Its figures of the moment
//! (VMs consolidated, desktops asleep, checkpoint ages, wakes, energy) are
//! a [`crate::Snapshot`] the server registers beside them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// The fault service histogram's buckets, in seconds: 100 µs doubling up
/// to about 52 s (a fault that waits for a desktop's wake takes seconds).
pub fn fault_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 20)
}

/// The server's event-driven metrics (cheap to clone: handles on shared
/// atomics).
#[derive(Debug, Clone)]
pub struct ServerMetrics {
    /// `jettison_server_fault_service_seconds`: time from a FUSE read of an
    /// absent page to its reply (misses only).
    pub fault_service: Histogram,
    /// `jettison_server_pages_fetched_total`.
    pub pages_fetched: Counter,
    /// `jettison_server_fetched_bytes_total`.
    pub bytes_fetched: Counter,
    /// `jettison_server_fetch_retries_total`: failed fetches retried.
    pub fetch_retries: Counter,
    /// `jettison_server_replica_hits_total`: reads served from the replica.
    pub replica_hits: Counter,
    /// `jettison_server_pulls_total`: pulls of a VM's whole memory started
    /// against a wake storm (the `[pull]` policy).
    pub pulls: Counter,
    /// `jettison_server_pulled_bytes_total`: bytes those pulls fetched.
    pub pulled_bytes: Counter,
    /// Faults served and their total service time, µs, for the dashboard
    /// (the histogram's count and sum, which it does not show).
    faults: Arc<(AtomicU64, AtomicU64)>,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics {
            fault_service: Histogram::new(fault_buckets()),
            pages_fetched: Counter::default(),
            bytes_fetched: Counter::default(),
            fetch_retries: Counter::default(),
            replica_hits: Counter::default(),
            pulls: Counter::default(),
            pulled_bytes: Counter::default(),
            faults: Arc::default(),
        }
    }
}

impl ServerMetrics {
    /// Registers the families in `registry`, with the process's TLS
    /// refusals.
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "jettison_server_fault_service",
            "Time from a guest's read of a page the server lacked to its reply",
            Unit::Seconds,
            self.fault_service.clone(),
        );
        registry.register(
            "jettison_server_pages_fetched",
            "Pages fetched from desktops' state servers",
            self.pages_fetched.clone(),
        );
        registry.register_with_unit(
            "jettison_server_fetched",
            "Bytes fetched from desktops' state servers",
            Unit::Bytes,
            self.bytes_fetched.clone(),
        );
        registry.register(
            "jettison_server_fetch_retries",
            "Fetches that failed and were retried",
            self.fetch_retries.clone(),
        );
        registry.register(
            "jettison_server_replica_hits",
            "Reads of pages the server had (from its replica)",
            self.replica_hits.clone(),
        );
        registry.register(
            "jettison_server_pulls",
            "Pulls of a VM's whole memory started against a wake storm",
            self.pulls.clone(),
        );
        registry.register_with_unit(
            "jettison_server_pulled",
            "Bytes fetched by pulls of whole memories",
            Unit::Bytes,
            self.pulled_bytes.clone(),
        );
        crate::tls::register(registry);
    }

    /// One fault served in `service`.
    pub fn fault(&self, service: Duration) {
        self.fault_service.observe(service.as_secs_f64());
        let us = u64::try_from(service.as_micros()).unwrap_or(u64::MAX);
        self.faults.0.fetch_add(1, Ordering::Relaxed);
        self.faults.1.fetch_add(us, Ordering::Relaxed);
    }

    /// Faults served so far, and their mean service time (zero if none).
    pub fn faults(&self) -> (u64, Duration) {
        let n = self.faults.0.load(Ordering::Relaxed);
        let us = self.faults.1.load(Ordering::Relaxed);
        (n, Duration::from_micros(us.checked_div(n).unwrap_or(0)))
    }

    /// `pages` pages (`bytes` bytes) arrived from a desktop.
    pub fn fetched(&self, pages: u64, bytes: u64) {
        self.pages_fetched.inc_by(pages);
        self.bytes_fetched.inc_by(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode;

    #[test]
    fn the_text_carries_units_totals_and_buckets() {
        let m = ServerMetrics::default();
        let mut r = Registry::default();
        m.register(&mut r);
        m.fault(Duration::from_micros(150));
        m.fault(Duration::from_millis(3));
        m.fetched(3, 3 * 4096);
        m.fetch_retries.inc();
        m.pulls.inc();
        m.pulled_bytes.inc_by(8192);
        crate::tls_refused("unknown_ca");
        let text = encode(&r).unwrap();
        for line in [
            "# TYPE jettison_server_fault_service_seconds histogram",
            "# UNIT jettison_server_fault_service_seconds seconds",
            "jettison_server_fault_service_seconds_count 2",
            "jettison_server_fault_service_seconds_bucket{le=\"0.0001\"} 0",
            "jettison_server_fault_service_seconds_bucket{le=\"0.0002\"} 1",
            "jettison_server_fault_service_seconds_bucket{le=\"+Inf\"} 2",
            "jettison_server_pages_fetched_total 3",
            "jettison_server_fetched_bytes_total 12288",
            "jettison_server_fetch_retries_total 1",
            "jettison_server_replica_hits_total 0",
            "jettison_server_pulls_total 1",
            "jettison_server_pulled_bytes_total 8192",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with("jettison_tls_refusals_total{reason=\"unknown_ca\"} ")),
            "{text}"
        );
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("jettison_server_fault_service_seconds_sum "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 0.00315).abs() < 1e-9, "{sum}");
        assert_eq!(m.faults(), (2, Duration::from_micros(1575)));
    }
}
