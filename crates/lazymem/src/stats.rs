//! Per-VM counters, the fault latency histogram and the fetch order record.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use jettison_wire::{LatencySummary, VmMemStats};

/// Told of every fault, fetch, retry and replica hit of every VM of a
/// mount, as they happen (the server's Prometheus metrics): see
/// [`crate::LazyMemMount::with_observer`]. Called with the VM's counters'
/// lock held: keep it short and never block.
pub trait MemObserver: Send + Sync + std::fmt::Debug + 'static {
    /// A fault (a read of an absent page) of `vm` was served in `service`.
    fn fault(&self, vm: &str, service: Duration);
    /// `pages` pages (`bytes` bytes) of `vm` arrived from its source.
    fn fetched(&self, vm: &str, pages: u64, bytes: u64);
    /// A fetch of `vm` failed and is retried.
    fn retry(&self, vm: &str);
    /// A read of `vm` was served from the replica.
    fn replica_hit(&self, vm: &str);
}

/// Mutable statistics of one VM (behind one mutex; updates are rare and short).
#[derive(Debug)]
pub(crate) struct Stats {
    inner: Mutex<Inner>,
    /// The VM's name and the mount's observer, if any.
    observer: Option<(String, Arc<dyn MemObserver>)>,
}

#[derive(Debug)]
struct Inner {
    faults: u64,
    replica_hits: u64,
    pages_fetched: u64,
    bytes_fetched: u64,
    fetch_retries: u64,
    /// Fault service time in microseconds (READ arrival to reply, misses only).
    latency_us: Histogram<u64>,
    /// Page numbers in the order they arrived from the source.
    fetched: Vec<u64>,
}

impl Stats {
    pub(crate) fn new(observer: Option<(String, Arc<dyn MemObserver>)>) -> Self {
        // 3 significant digits, auto-resizing: no sample is ever rejected.
        let mut latency_us = Histogram::new(3).expect("3 significant digits is valid");
        latency_us.auto(true);
        Self {
            inner: Mutex::new(Inner {
                faults: 0,
                replica_hits: 0,
                pages_fetched: 0,
                bytes_fetched: 0,
                fetch_retries: 0,
                latency_us,
                fetched: Vec::new(),
            }),
            observer,
        }
    }

    fn observe(&self, f: impl FnOnce(&str, &dyn MemObserver)) {
        if let Some((vm, o)) = &self.observer {
            f(vm, &**o);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn replica_hit(&self) {
        self.lock().replica_hits += 1;
        self.observe(|vm, o| o.replica_hit(vm));
    }

    /// Records one serviced fault (a READ that needed the source).
    pub(crate) fn fault(&self, service: Duration) {
        let mut s = self.lock();
        s.faults += 1;
        let us = u64::try_from(service.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // Cannot fail with auto-resize on.
        let _ = s.latency_us.record(us);
        self.observe(|vm, o| o.fault(vm, service));
    }

    pub(crate) fn retry(&self) {
        self.lock().fetch_retries += 1;
        self.observe(|vm, o| o.retry(vm));
    }

    /// Records pages received from the source, `first..first+count`.
    pub(crate) fn fetched(&self, first: u64, count: u64, bytes: u64) {
        let mut s = self.lock();
        s.pages_fetched += count;
        s.bytes_fetched += bytes;
        s.fetched.extend(first..first + count);
        self.observe(|vm, o| o.fetched(vm, count, bytes));
    }

    pub(crate) fn fetched_pages(&self) -> Vec<u64> {
        self.lock().fetched.clone()
    }

    pub(crate) fn snapshot(&self, dirty_pages: u64) -> VmMemStats {
        let s = self.lock();
        let h = &s.latency_us;
        let fault_latency_us = if h.is_empty() {
            LatencySummary::default()
        } else {
            LatencySummary {
                count: h.len(),
                p50: h.value_at_quantile(0.50),
                p90: h.value_at_quantile(0.90),
                p99: h.value_at_quantile(0.99),
                max: h.max(),
                mean: h.mean(),
            }
        };
        VmMemStats {
            faults: s.faults,
            replica_hits: s.replica_hits,
            pages_fetched: s.pages_fetched,
            bytes_fetched: s.bytes_fetched,
            dirty_pages,
            fetch_retries: s.fetch_retries,
            fault_latency_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary() {
        let s = Stats::new(None);
        assert_eq!(s.snapshot(0).fault_latency_us, LatencySummary::default());
        for ms in 1..=100 {
            s.fault(Duration::from_millis(ms));
        }
        s.fetched(7, 3, 3 * 4096);
        s.replica_hit();
        s.retry();
        let snap = s.snapshot(5);
        assert_eq!(snap.faults, 100);
        assert_eq!(snap.fault_latency_us.count, 100);
        assert!((49_900..=50_100).contains(&snap.fault_latency_us.p50));
        assert!(snap.fault_latency_us.max >= 100_000);
        assert_eq!((snap.pages_fetched, snap.bytes_fetched), (3, 3 * 4096));
        assert_eq!(
            (snap.replica_hits, snap.fetch_retries, snap.dirty_pages),
            (1, 1, 5)
        );
        assert_eq!(s.fetched_pages(), vec![7, 8, 9]);
    }

    /// Sums what it is told, per event kind.
    #[derive(Debug, Default)]
    struct Sums(Mutex<(Vec<String>, u64, u64, u64, u64)>);

    impl MemObserver for Sums {
        fn fault(&self, vm: &str, _: Duration) {
            let mut s = self.0.lock().unwrap();
            s.0.push(vm.into());
            s.1 += 1;
        }
        fn fetched(&self, _: &str, pages: u64, bytes: u64) {
            let mut s = self.0.lock().unwrap();
            s.2 += pages;
            s.3 += bytes;
        }
        fn retry(&self, _: &str) {
            self.0.lock().unwrap().4 += 1;
        }
        fn replica_hit(&self, _: &str) {}
    }

    #[test]
    fn the_observer_hears_each_event_with_its_vm() {
        let sums = Arc::new(Sums::default());
        let s = Stats::new(Some(("desk-1".into(), sums.clone())));
        s.fault(Duration::from_millis(2));
        s.fetched(0, 4, 4 * 4096);
        s.fetched(9, 1, 4096);
        s.retry();
        let seen = sums.0.lock().unwrap();
        assert_eq!(
            (seen.0.clone(), seen.1, seen.2, seen.3, seen.4),
            (vec!["desk-1".to_string()], 1, 5, 5 * 4096, 1)
        );
    }
}
