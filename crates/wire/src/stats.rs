//! Counters that travel in status replies and reports.

use serde::{Deserialize, Serialize};

/// Per-VM counters of the server's lazy memory filesystem.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VmMemStats {
    /// FUSE reads that needed at least one page from the desktop (misses).
    pub faults: u64,
    /// FUSE reads served entirely from the local replica.
    pub replica_hits: u64,
    /// Distinct pages fetched from the desktop (never counts a page twice).
    pub pages_fetched: u64,
    /// Payload bytes received from the desktop's state server.
    pub bytes_fetched: u64,
    /// Pages written by the guest while consolidated (known at writeback).
    pub dirty_pages: u64,
    /// Fetch attempts that failed and were retried.
    pub fetch_retries: u64,
    /// Fault service latency (FUSE read arrival to reply, misses only).
    pub fault_latency_us: LatencySummary,
}

/// A latency distribution summarised in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
}
