use super::*;

const STAT: &str =
    "cache 10\nrss 20\nshmem 0\nmapped_file 0\ntotal_cache 4194304\ntotal_rss 2097152\n\
                    total_rss_huge 0\ntotal_shmem 1048576\ntotal_mapped_file 3145728\n";

#[test]
fn memory_stat_takes_the_hierarchical_totals() {
    let m = CgroupMemory::parse(STAT).unwrap();
    assert_eq!(
        m,
        CgroupMemory {
            rss: 2 << 20,
            cache: 4 << 20,
            shmem: 1 << 20,
            mapped_file: 3 << 20,
        }
    );
    assert_eq!(m.held(), 6 << 20);
    assert_eq!(CgroupMemory::parse("total_rss 1\n"), None);
}

const SMAPS: &str = "\
55d0-55d2 r--p 00000000 fe:00 247282                     /usr/bin/qemu-system-x86_64
Rss:                   8 kB
Pss:                   4 kB
Pss_Dirty:             4 kB
VmFlags: rd mr mw me
7f00-7f80 rw-s 00000000 00:2a 12                         /srv/mnt/vm1.mem
Rss:                1024 kB
Pss:                1000 kB
Shared_Clean:          0 kB
7f80-7f90 rw-p 00000000 00:00 0
Pss:                  20 kB
7f90-7fa0 rw-s 00000000 00:2a 13                         /srv/mnt/vm1.mem (deleted)
Pss:                   6 kB
";

#[test]
fn pss_splits_guest_memory_from_qemu_own() {
    let p = split_pss(SMAPS, "/vm1.mem");
    assert_eq!(p.guest, 1006 * 1024);
    assert_eq!(p.other, 24 * 1024);
    // Another VM's file is not this guest's memory.
    assert_eq!(split_pss(SMAPS, "/vm2.mem").guest, 0);
}

#[test]
fn cpu_ticks_add_user_and_system_after_the_command() {
    let stat = "6371 (qemu (x) y) S 6368 6368 30890 0 -1 4194304 98 0 0 0 250 31 0 0 20 0 1 0";
    assert_eq!(cpu_ticks(stat), Some(281));
    assert_eq!(cpu_ticks("12 (x) S 1"), None);
}

fn window() -> Window {
    let mib = 1u64 << 20;
    let s = |held_mib: u64| CgroupMemory {
        rss: held_mib * mib / 2,
        cache: held_mib * mib / 2,
        shmem: 0,
        mapped_file: 0,
    };
    Window {
        vms: 4,
        seconds: 600.0,
        // 60 s of CPU over 600 s for 4 VMs: 2.5 % of a core each.
        cpu_ns: 60_000_000_000,
        daemon_cpu_ns: 12_000_000_000,
        samples: vec![s(400), s(480), s(440)],
        breakdown: Breakdown {
            qemu: 160 * mib,
            guest_memory: 200 * mib,
            replica_cache: 40 * mib,
            replica_disk: 1152 * mib,
            daemon: 20 * mib,
        },
    }
}

#[test]
fn per_vm_divides_by_vms_and_time() {
    let r = window().per_vm().unwrap();
    assert_eq!(r.vms, 4);
    assert!((r.mem_mib_per_vm - 110.0).abs() < 1e-9, "{r:?}");
    assert!((r.mem_mib_per_vm_max - 120.0).abs() < 1e-9);
    assert!((r.cpu_pct_per_vm - 2.5).abs() < 1e-9);
    assert!((r.daemon_cpu_pct_per_vm - 0.5).abs() < 1e-9);
    let b = &r.breakdown_mib_per_vm;
    assert_eq!(
        (
            b.qemu,
            b.guest_memory,
            b.replica_cache,
            b.daemon,
            b.replica_disk
        ),
        (40.0, 50.0, 10.0, 5.0, 288.0)
    );
    assert_eq!(r.cgroup_mib_per_vm, [55.0, 55.0, 0.0]);
    assert_eq!(r.samples, 3);
}

#[test]
fn per_vm_needs_vms_samples_and_time() {
    let mut w = window();
    w.vms = 0;
    assert!(w.per_vm().is_none());
    let mut w = window();
    w.samples.clear();
    assert!(w.per_vm().is_none());
    let mut w = window();
    w.seconds = 0.0;
    assert!(w.per_vm().is_none());
}

#[test]
fn json_has_the_issue_keys_and_the_ratios() {
    let partial = window().per_vm().unwrap();
    let mut w = window();
    w.samples = vec![CgroupMemory {
        rss: 0,
        cache: (4 * 330) << 20,
        shmem: (4 * 300) << 20,
        mapped_file: 0,
    }];
    w.cpu_ns *= 2;
    let full = w.per_vm().unwrap();
    let d = Density::new(256, 32, "tcg", partial, full);
    assert!((d.mem_ratio_full_over_partial - 3.0).abs() < 1e-9);
    assert!((d.cpu_ratio_full_over_partial - 2.0).abs() < 1e-9);
    let j = d.to_json(&Default::default());
    for mode in ["partial", "full"] {
        for key in ["mem_mib_per_vm", "cpu_pct_per_vm"] {
            assert!(
                j["density"][mode][key].is_f64(),
                "density.{mode}.{key} missing in {j}"
            );
        }
    }
    assert_eq!(j["density"]["full"]["mem_mib_per_vm"], 330.0);
    assert_eq!(
        j["density"]["partial"]["breakdown_mib_per_vm"]["daemon"],
        5.0
    );
}

#[test]
fn ratios_of_nothing_are_zero() {
    let d = Density::new(256, 32, "tcg", ModeResult::default(), ModeResult::default());
    assert_eq!(d.mem_ratio_full_over_partial, 0.0);
    assert_eq!(d.cpu_ratio_full_over_partial, 0.0);
}
