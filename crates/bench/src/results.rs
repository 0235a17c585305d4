//! What a benchmark run measured (the JSON file), and the ratios derived
//! from it. Pure data.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::faults::Touch;
use crate::full::FullResult;
use crate::stats::Summary;

/// One guest size on one link: the three ways of moving it, measured on the
/// same guest in the same run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MigrationRow {
    /// Guest memory.
    pub memory_mib: u64,
    /// Link rate.
    pub link_mbit: u32,
    /// Jettison: stop on the desktop to the guest running on the server.
    pub jettison_ms: f64,
    /// Jettison: device state bytes (the only state that moves).
    pub jettison_bytes: u64,
    /// QEMU precopy, desktop to server.
    pub precopy: FullResult,
    /// QEMU postcopy, desktop to server.
    pub postcopy: FullResult,
    /// `precopy.latency_ms / jettison_ms`.
    pub speedup_vs_precopy: f64,
    /// `postcopy.latency_ms / jettison_ms` (postcopy's guest runs early,
    /// then faults over the link until `postcopy.total_ms`).
    pub speedup_vs_postcopy: f64,
}

/// The way back for the same guest.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReintegrationRow {
    /// Guest memory.
    pub memory_mib: u64,
    /// Link rate.
    pub link_mbit: u32,
    /// Pages the guest wrote while consolidated, percent of its memory.
    pub dirty_pct: f64,
    /// Jettison: stop on the server to the guest running at home.
    pub jettison_ms: f64,
    /// Jettison: bytes the server sent home.
    pub jettison_bytes: u64,
    /// QEMU precopy of the whole VM from the server back to the desktop.
    pub full: FullResult,
    /// `full.latency_ms / jettison_ms`.
    pub speedup_vs_full: f64,
}

/// Many desktops migrating at once over the shared link.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConcurrentRow {
    /// Desktops migrating together.
    pub desktops: usize,
    /// Guest memory of each.
    pub memory_mib: u64,
    /// Link rate.
    pub link_mbit: u32,
    /// Jettison migration latency per VM, ms.
    pub jettison_ms: Summary,
    /// Jettison reintegration latency per VM, ms.
    pub jettison_back_ms: Summary,
    /// Precopy latency per VM, ms.
    pub precopy_ms: Summary,
    /// Bytes all jettison migrations moved.
    pub jettison_bytes: u64,
    /// Bytes all precopy migrations moved.
    pub precopy_bytes: u64,
}

/// Fault service with the desktop awake.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Faults {
    /// Guest memory.
    pub memory_mib: u64,
    /// Link rate.
    pub link_mbit: u32,
    /// Single 4 KiB reads of random distinct pages, as the reader saw them.
    pub latency_us: Summary,
    /// The server's own fault histogram for the whole consolidated period
    /// so far (FUSE arrival to reply, misses only; the guest's own faults
    /// included).
    pub server_latency_us: Summary,
    /// Misses the server counted during the sample.
    pub server_faults: u64,
    /// Where a fault's time goes (see BENCHMARKS.md).
    pub breakdown_us: BTreeMap<String, f64>,
    /// A region touched in order.
    pub sequential: Touch,
    /// A region touched in random order.
    pub random: Touch,
}

/// A guest's memory touched with the server's neighbourhood prefetch.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PrefetchTouch {
    /// Guest memory.
    pub memory_mib: u64,
    /// Pages fetched per miss (an aligned group).
    pub pages_per_miss: u32,
    /// A region touched in order.
    pub sequential: Touch,
    /// A region touched in random order.
    pub random: Touch,
}

/// Server memory per consolidated VM.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerMemory {
    /// Guest memory.
    pub memory_mib: u64,
    /// Pages fetched so far, bytes.
    pub fetched_bytes: u64,
    /// The server daemon's resident memory (all its VMs).
    pub daemon_rss_bytes: u64,
    /// The consolidated VM's QEMU resident memory.
    pub qemu_rss_bytes: u64,
    /// Disk blocks the replica file holds (all of the VM's memory: it is
    /// allocated whole when the VM arrives).
    pub replica_bytes: u64,
    /// Page cache holding the memory file.
    pub page_cache_bytes: u64,
    /// `(qemu_rss + fetched) / memory`: what the server holds of the VM.
    pub fraction_of_vm: f64,
}

/// Everything a run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BenchResults {
    /// When, where, how.
    pub meta: BTreeMap<String, String>,
    /// Per size and link.
    pub migration: Vec<MigrationRow>,
    /// Per size and link.
    pub reintegration: Vec<ReintegrationRow>,
    /// Per number of desktops.
    pub concurrent: Vec<ConcurrentRow>,
    /// Fault service.
    pub faults: Option<Faults>,
    /// Touch throughput with a neighbourhood prefetch.
    pub prefetch_touch: Option<PrefetchTouch>,
    /// Per size.
    pub server_memory: Vec<ServerMemory>,
}

/// One target of the issue, checked against a run.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// What is measured.
    pub name: String,
    /// The bound, as text.
    pub target: String,
    /// The measured value.
    pub measured: f64,
    /// Whether the bound holds.
    pub met: bool,
}

impl BenchResults {
    /// The JSON summary keys: per memory size (MiB, at the fastest link),
    /// `speedup_vs_precopy` and `bytes` of migration and `speedup_vs_full`
    /// of reintegration.
    pub fn by_size(&self) -> serde_json::Value {
        let fastest = self
            .migration
            .iter()
            .map(|r| r.link_mbit)
            .max()
            .unwrap_or(0);
        let mut mig_speed = serde_json::Map::new();
        let mut mig_bytes = serde_json::Map::new();
        for r in self.migration.iter().filter(|r| r.link_mbit == fastest) {
            mig_speed.insert(r.memory_mib.to_string(), r.speedup_vs_precopy.into());
            mig_bytes.insert(r.memory_mib.to_string(), r.jettison_bytes.into());
        }
        let mut back = serde_json::Map::new();
        for r in self.reintegration.iter().filter(|r| r.link_mbit == fastest) {
            back.insert(r.memory_mib.to_string(), r.speedup_vs_full.into());
        }
        serde_json::json!({
            "link_mbit": fastest,
            "migration": { "speedup_vs_precopy": mig_speed, "bytes": mig_bytes },
            "reintegration": { "speedup_vs_full": back },
        })
    }

    /// The issue's targets against this run.
    pub fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let mut add = |name: String, target: &str, measured: f64, met: bool| {
            t.push(Target {
                name,
                target: target.into(),
                measured,
                met,
            })
        };
        for r in &self.migration {
            if r.memory_mib == 4096 && r.link_mbit == 1000 {
                let s = r.speedup_vs_precopy;
                add(
                    "migration.speedup_vs_precopy 4 GiB 1 Gbit/s".into(),
                    ">= 50",
                    s,
                    s >= 50.0,
                );
            }
            let b = r.jettison_bytes as f64;
            let name = format!(
                "migration.bytes {} MiB {} Mbit/s",
                r.memory_mib, r.link_mbit
            );
            add(name, "<= 1 MiB", b, b <= 1_048_576.0);
        }
        if let Some(f) = &self.faults {
            let (p50, p99) = (f.latency_us.p50, f.latency_us.p99);
            add("faults.latency_us.p50".into(), "<= 200", p50, p50 <= 200.0);
            add(
                "faults.latency_us.p99".into(),
                "<= 2000",
                p99,
                p99 <= 2000.0,
            );
        }
        for r in self.reintegration.iter().filter(|r| r.dirty_pct < 5.0) {
            let s = r.speedup_vs_full;
            let name = format!(
                "reintegration.speedup_vs_full {} MiB {} Mbit/s ({:.1}% dirty)",
                r.memory_mib, r.link_mbit, r.dirty_pct
            );
            add(name, ">= 20", s, s >= 20.0);
        }
        t
    }

    /// The JSON file: the measurements, the summary keys and the targets.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("results serialize");
        let summary = self.by_size();
        let obj = v.as_object_mut().expect("an object");
        obj.insert("summary".into(), summary.clone());
        obj.insert(
            "targets".into(),
            serde_json::to_value(self.targets()).expect("targets"),
        );
        // The issue's keys at the top level, next to the rows.
        let mig = obj
            .get_mut("migration")
            .map(std::mem::take)
            .unwrap_or_default();
        obj.insert(
            "migration".into(),
            serde_json::json!({
                "rows": mig,
                "speedup_vs_precopy": summary["migration"]["speedup_vs_precopy"],
                "bytes": summary["migration"]["bytes"],
            }),
        );
        let back = obj
            .get_mut("reintegration")
            .map(std::mem::take)
            .unwrap_or_default();
        obj.insert(
            "reintegration".into(),
            serde_json::json!({
                "rows": back,
                "speedup_vs_full": summary["reintegration"]["speedup_vs_full"],
            }),
        );
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mib: u64, mbit: u32, speedup: f64, bytes: u64) -> MigrationRow {
        MigrationRow {
            memory_mib: mib,
            link_mbit: mbit,
            speedup_vs_precopy: speedup,
            jettison_bytes: bytes,
            ..Default::default()
        }
    }

    #[test]
    fn json_carries_the_issue_keys_and_targets() {
        let r = BenchResults {
            migration: vec![
                row(256, 1000, 10.0, 300_000),
                row(4096, 1000, 60.0, 400_000),
                row(4096, 100, 600.0, 2_000_000),
            ],
            reintegration: vec![ReintegrationRow {
                memory_mib: 4096,
                link_mbit: 1000,
                dirty_pct: 1.0,
                speedup_vs_full: 19.0,
                ..Default::default()
            }],
            faults: Some(Faults {
                latency_us: crate::stats::summarize(&[100.0, 150.0, 3000.0]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = r.to_json();
        assert_eq!(v["migration"]["speedup_vs_precopy"]["4096"], 60.0);
        assert_eq!(v["migration"]["bytes"]["256"], 300_000);
        assert_eq!(v["migration"]["rows"].as_array().unwrap().len(), 3);
        assert_eq!(v["reintegration"]["speedup_vs_full"]["4096"], 19.0);
        assert_eq!(v["faults"]["latency_us"]["p50"], 150.0);
        let t = r.targets();
        let met = |prefix: &str| t.iter().find(|x| x.name.starts_with(prefix)).unwrap().met;
        assert!(met("migration.speedup_vs_precopy 4 GiB"));
        assert!(!met("migration.bytes 4096 MiB 100 Mbit"));
        assert!(met("faults.latency_us.p50"));
        assert!(!met("faults.latency_us.p99"));
        assert!(!met("reintegration.speedup_vs_full"));
    }
}
