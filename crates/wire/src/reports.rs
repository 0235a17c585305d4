//! What the daemons report to the operator about moves and VMs.

use serde::{Deserialize, Serialize};

use crate::stats::VmMemStats;

/// Timings and sizes of a partial migration, as measured by the agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrateReport {
    /// VM name.
    pub vm: String,
    /// From the stop on the desktop to the guest running on the server.
    pub latency_ms: f64,
    /// Size of the CPU and device state stream.
    pub device_state_bytes: u64,
    /// Time spent pulling the device state out of the desktop's QEMU.
    pub save_ms: f64,
    /// Time the server took to load the state and resume the guest.
    pub restore_ms: f64,
    /// Bytes of the memory file resident on the desktop at migration time.
    pub desktop_resident_bytes: u64,
    /// Bytes sent to the server in this exchange (framing included).
    pub bytes_sent: u64,
}

/// Timings and sizes of a reintegration, as measured by the agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReintegrateReport {
    /// VM name.
    pub vm: String,
    /// From the stop on the server to the guest running on the desktop,
    /// excluding `verify_ms`.
    pub latency_ms: f64,
    /// Pages the guest wrote while consolidated, all sent home.
    pub dirty_pages: u64,
    /// Disk blocks (4 KiB) the guest wrote while consolidated, all sent home.
    pub dirty_disk_blocks: u64,
    /// The server's disk counters, if the VM has a disk.
    pub remote_disk: Option<VmMemStats>,
    /// Size of the CPU and device state stream.
    pub device_state_bytes: u64,
    /// Bytes the server sent home in this exchange (framing included).
    pub bytes_sent: u64,
    /// The server's counters for the consolidated period.
    pub remote: VmMemStats,
    /// Seconds the VM ran on the server.
    pub remote_seconds: f64,
    /// BLAKE3 of the desktop's memory file after the dirty pages were written
    /// and before the VM resumed, when asked for.
    pub image_digest: Option<String>,
    /// Time spent computing `image_digest`.
    pub verify_ms: f64,
}

/// Where a VM is and what it has cost so far, for `jettison status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmStatus {
    /// VM name.
    pub vm: String,
    /// Human-readable state ("running", "consolidated", ...).
    pub state: String,
    /// Host the VM runs on.
    pub host: String,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Lazy-memory counters, on the server.
    pub memory: Option<VmMemStats>,
}
