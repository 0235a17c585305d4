//! The density run in small, for real: two 256 MiB guests with a NIC and a
//! disk consolidated by partial migration for a minute, then moved whole by
//! QEMU precopy for a minute, measured through the bench's own cgroups.
//! Checks that the figures are of the right kind (not their size: this
//! machine is shared) and that the cgroups are gone afterwards.

use std::time::Duration;

mod common;

use jettison_bench::density::{density, DensitySpec};

fn our_cgroups() -> Vec<String> {
    let tag = format!("-{}-", std::process::id());
    ["memory", "cpuacct"]
        .iter()
        .flat_map(|c| std::fs::read_dir(format!("/sys/fs/cgroup/{c}")).unwrap())
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("jettison-bench-") && n.contains(&tag))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_idle_guests_partial_against_precopy() {
    let work = common::work_dir("density-test");
    let settings = common::settings(&work, 0, 0);
    let spec = DensitySpec {
        vms: 2,
        memory_mib: 256,
        disk_mib: 16,
        window: Duration::from_secs(60),
        parallel: 2,
    };
    let d = density(&settings, &spec).await;
    if std::env::var_os("JETTISON_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    assert!(our_cgroups().is_empty(), "left behind: {:?}", our_cgroups());
    let d = d.unwrap();
    let (p, f) = (&d.partial, &d.full);
    for m in [p, f] {
        assert_eq!(m.vms, 2, "{m:?}");
        assert!(m.window_s >= 60.0, "{m:?}");
        assert!(m.samples >= 2, "{m:?}");
        assert!(m.cpu_pct_per_vm > 0.0 && m.cpu_pct_per_vm < 200.0, "{m:?}");
        assert!(
            m.mem_mib_per_vm > 0.0 && m.mem_mib_per_vm <= m.mem_mib_per_vm_max,
            "{m:?}"
        );
        assert!(m.breakdown_mib_per_vm.qemu > 0.0, "{m:?}");
    }
    // Precopy holds the whole filled guest (most of 256 MiB is data) in shmem.
    assert!(f.breakdown_mib_per_vm.guest_memory > 100.0, "{f:?}");
    assert!(f.cgroup_mib_per_vm[2] > 100.0, "{f:?}");
    assert_eq!(f.breakdown_mib_per_vm.daemon, 0.0);
    assert_eq!(f.daemon_cpu_pct_per_vm, 0.0);
    // Partial migration: a daemon, replicas of memory and disk, and only
    // the touched part of the guest on the server.
    let pb = &p.breakdown_mib_per_vm;
    assert!(pb.daemon > 0.0 && pb.replica_disk >= 256.0, "{p:?}");
    assert!(pb.guest_memory < 256.0, "{p:?}");
    assert!(p.daemon_cpu_pct_per_vm <= p.cpu_pct_per_vm, "{p:?}");
    assert!(d.mem_ratio_full_over_partial > 1.0, "{d:?}");
    let j = d.to_json(&Default::default());
    assert!(j["density"]["partial"]["mem_mib_per_vm"].is_f64());
}
