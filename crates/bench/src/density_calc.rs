//! The density run's arithmetic (pure): what the kernel's files say
//! (`memory.stat`, `/proc/<pid>/smaps`, `/proc/<pid>/stat`), and what the
//! samples of one consolidation window make per VM.

use serde::Serialize;

const MIB: f64 = (1u64 << 20) as f64;

/// A cgroup's memory, from its `memory.stat` (the hierarchical `total_*`
/// counters), bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CgroupMemory {
    /// Anonymous memory (`total_rss`).
    pub rss: u64,
    /// Page cache, shmem included (`total_cache`).
    pub cache: u64,
    /// Of the cache, shmem and tmpfs (`total_shmem`).
    pub shmem: u64,
    /// Of the cache, mapped into a process (`total_mapped_file`).
    pub mapped_file: u64,
}

impl CgroupMemory {
    /// Parses `memory.stat`; `None` when a counter is missing.
    pub fn parse(stat: &str) -> Option<CgroupMemory> {
        let get = |k: &str| {
            stat.lines().find_map(|l| {
                let (key, v) = l.split_once(' ')?;
                (key == k).then(|| v.trim().parse::<u64>().ok())?
            })
        };
        Some(CgroupMemory {
            rss: get("total_rss")?,
            cache: get("total_cache")?,
            shmem: get("total_shmem")?,
            mapped_file: get("total_mapped_file")?,
        })
    }

    /// What the group holds in memory: anonymous memory plus page cache.
    pub fn held(&self) -> u64 {
        self.rss + self.cache
    }
}

/// A process's proportional set size (PSS), bytes: mappings of the guest's
/// memory file apart from the rest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pss {
    /// PSS of mappings whose path contains the guest memory file's name.
    pub guest: u64,
    /// PSS of every other mapping (QEMU's own memory).
    pub other: u64,
}

/// Splits `/proc/<pid>/smaps` by mapping: those whose path contains
/// `guest_file` against the rest.
pub fn split_pss(smaps: &str, guest_file: &str) -> Pss {
    let mut pss = Pss::default();
    let mut in_guest = false;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping header: range perms offset dev inode [path].
            in_guest = words.nth(4).is_some_and(|p| p.contains(guest_file));
        } else if first == "Pss:" {
            let kb: u64 = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            if in_guest {
                pss.guest += kb * 1024;
            } else {
                pss.other += kb * 1024;
            }
        }
    }
    pss
}

/// CPU time (user + system) of a process, clock ticks, from
/// `/proc/<pid>/stat`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    // The command may hold spaces and parentheses: fields count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    Some(f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?)
}

/// Where the server's memory of one window went, summed over the VMs,
/// bytes, at the window's end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breakdown {
    /// QEMU's own memory: PSS of every mapping but the guest's memory.
    pub qemu: u64,
    /// The guest's memory resident on the server: page cache of the lazy
    /// memory files (partial) or the shmem files (full).
    pub guest_memory: u64,
    /// Page cache of the replica files.
    pub replica_cache: u64,
    /// Disk blocks of the replica files (on disk, not in memory).
    pub replica_disk: u64,
    /// The server daemon's PSS (partial only).
    pub daemon: u64,
}

/// What one window measured.
#[derive(Clone, Debug, Default)]
pub struct Window {
    /// VMs consolidated.
    pub vms: usize,
    /// Window length, seconds of wall time.
    pub seconds: f64,
    /// The cgroup's CPU time over the window, ns.
    pub cpu_ns: u64,
    /// Of it, the server daemon's, ns.
    pub daemon_cpu_ns: u64,
    /// The cgroup's memory, sampled through the window.
    pub samples: Vec<CgroupMemory>,
    /// At the window's end.
    pub breakdown: Breakdown,
}

/// Per VM, MiB, the breakdown.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BreakdownPerVm {
    /// QEMU's own memory (PSS).
    pub qemu: f64,
    /// Guest memory resident on the server (page cache).
    pub guest_memory: f64,
    /// Replica page cache.
    pub replica_cache: f64,
    /// Daemon PSS / VMs.
    pub daemon: f64,
    /// Replica disk blocks (disk, not memory).
    pub replica_disk: f64,
}

/// One mode's result per VM: the JSON's `density.partial` or `density.full`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModeResult {
    /// VMs measured together.
    pub vms: usize,
    /// Window, seconds.
    pub window_s: f64,
    /// Mean over the window of the cgroup's memory (anonymous + page
    /// cache) / VMs, MiB.
    pub mem_mib_per_vm: f64,
    /// The largest sample / VMs, MiB.
    pub mem_mib_per_vm_max: f64,
    /// The cgroup's CPU time / wall time / VMs, percent of one core.
    pub cpu_pct_per_vm: f64,
    /// Of it, the daemon's share.
    pub daemon_cpu_pct_per_vm: f64,
    /// Where the memory is, per VM, MiB (PSS and page cache at the end).
    pub breakdown_mib_per_vm: BreakdownPerVm,
    /// The last cgroup sample / VMs, MiB: anonymous, cache, of it shmem.
    pub cgroup_mib_per_vm: [f64; 3],
    /// Memory samples taken.
    pub samples: usize,
}

impl Window {
    /// Per VM. `None` without VMs, samples or time.
    pub fn per_vm(&self) -> Option<ModeResult> {
        let last = *self.samples.last()?;
        if self.vms == 0 || self.seconds <= 0.0 {
            return None;
        }
        let n = self.vms as f64;
        let per = |b: u64| b as f64 / MIB / n;
        let mean =
            self.samples.iter().map(|s| s.held() as f64).sum::<f64>() / self.samples.len() as f64;
        let max = self.samples.iter().map(CgroupMemory::held).max()?;
        let pct = |ns: u64| 100.0 * ns as f64 / 1e9 / self.seconds / n;
        let b = &self.breakdown;
        Some(ModeResult {
            vms: self.vms,
            window_s: self.seconds,
            mem_mib_per_vm: mean / MIB / n,
            mem_mib_per_vm_max: per(max),
            cpu_pct_per_vm: pct(self.cpu_ns),
            daemon_cpu_pct_per_vm: pct(self.daemon_cpu_ns),
            breakdown_mib_per_vm: BreakdownPerVm {
                qemu: per(b.qemu),
                guest_memory: per(b.guest_memory),
                replica_cache: per(b.replica_cache),
                daemon: per(b.daemon),
                replica_disk: per(b.replica_disk),
            },
            cgroup_mib_per_vm: [per(last.rss), per(last.cache), per(last.shmem)],
            samples: self.samples.len(),
        })
    }
}

/// The JSON's `density`: both modes on the same guests, and the ratios the
/// simulator takes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Density {
    /// Guest memory, MiB.
    pub memory_mib: u64,
    /// Disk of each guest, MiB.
    pub disk_mib: u64,
    /// `tcg` or `kvm`.
    pub accel: String,
    /// Partial migration: the VMs on the server with lazy memory.
    pub partial: ModeResult,
    /// Full migration (precopy): the same VMs with all their memory.
    pub full: ModeResult,
    /// `full.mem_mib_per_vm / partial.mem_mib_per_vm`: how many more VMs
    /// partial migration fits by memory.
    pub mem_ratio_full_over_partial: f64,
    /// `full.cpu_pct_per_vm / partial.cpu_pct_per_vm`.
    pub cpu_ratio_full_over_partial: f64,
}

impl Density {
    /// Both modes and their ratios.
    pub fn new(
        memory_mib: u64,
        disk_mib: u64,
        accel: &str,
        partial: ModeResult,
        full: ModeResult,
    ) -> Density {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Density {
            memory_mib,
            disk_mib,
            accel: accel.to_string(),
            mem_ratio_full_over_partial: ratio(full.mem_mib_per_vm, partial.mem_mib_per_vm),
            cpu_ratio_full_over_partial: ratio(full.cpu_pct_per_vm, partial.cpu_pct_per_vm),
            partial,
            full,
        }
    }

    /// The JSON file: `{"meta": ..., "density": ...}`.
    pub fn to_json(&self, meta: &std::collections::BTreeMap<String, String>) -> serde_json::Value {
        serde_json::json!({ "meta": meta, "density": self })
    }
}

#[cfg(test)]
#[path = "density_calc_tests.rs"]
mod tests;
