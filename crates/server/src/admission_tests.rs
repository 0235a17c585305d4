//! Every refusal of the admission, and its ledger.

use super::*;

fn desc(memory_mib: u64, cpus: u32, disk_bytes: Option<u64>) -> MachineDesc {
    MachineDesc {
        memory_mib,
        cpus,
        kernel: None,
        initrd: None,
        append: None,
        nic_mac: None,
        disk_bytes,
    }
}

fn roomy() -> std::io::Result<Vec<Filesystem>> {
    Ok(vec![Filesystem {
        path: "/r".into(),
        available: u64::MAX / 4,
        replicas: true,
    }])
}

fn limits() -> Limits {
    Limits {
        max_total_memory_mib: Some(1024),
        ..Limits::default()
    }
}

#[test]
fn huge_memory_and_cpus_are_refused_with_the_limit() {
    let a = Admission::new(Limits::default());
    let err = a.check_machine("vm", &desc(1 << 40, 1, None)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Refusal::PerVm { limit: 65536, .. }), "{text}");
    assert!(text.contains("1099511627776 MiB of memory"), "{text}");
    assert!(text.contains("max_vm_memory_mib"), "{text}");
    let err = a.check_machine("vm", &desc(256, 10_000, None)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("10000 vCPUs") && text.contains("at most 64"),
        "{text}"
    );
    assert!(text.contains("max_vm_cpus"), "{text}");
    // At the limits exactly: admitted.
    let u = a.check_machine("vm", &desc(65536, 64, None)).unwrap();
    assert_eq!(u.replica_bytes, 65536 << 20);
}

#[test]
fn nonsense_sizes_are_refused() {
    let a = Admission::new(Limits::default());
    for d in [
        desc(0, 1, None),
        desc(64, 0, None),
        desc(64, 1, Some(0)),
        desc(64, 1, Some(4097)),
    ] {
        let err = a.check_machine("vm", &d).unwrap_err();
        assert!(matches!(err, Refusal::Invalid { .. }), "{d:?}: {err}");
    }
    let unlimited = Admission::new(Limits {
        max_vm_memory_mib: u64::MAX,
        ..Limits::default()
    });
    let err = unlimited
        .check_machine("vm", &desc(u64::MAX, 1, None))
        .unwrap_err();
    assert!(err.to_string().contains("overflow"), "{err}");
    let u = a.check_machine("vm", &desc(64, 1, Some(1 << 20))).unwrap();
    assert_eq!(u.replica_bytes, (64 << 20) + (1 << 20));
}

#[test]
fn the_number_of_vms_is_bounded_and_counts_vms_being_prepared() {
    let a = Admission::new(Limits {
        max_vms: 2,
        ..limits()
    });
    let u = a.check_machine("a", &desc(16, 1, None)).unwrap();
    let t1 = a.reserve("a", u, roomy).unwrap();
    let t2 = a.reserve("b", u, roomy).unwrap();
    // Neither kept yet (both still being prepared): a third is refused.
    let err = a.reserve("c", u, roomy).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no room for VM c: VMs: 2 in use + 1 asked > limit 2 (`max_vms`)"
    );
    t1.keep();
    drop(t2); // b's prepare failed: its room is free again
    assert_eq!(a.in_use().0, 1);
    let t3 = a.reserve("c", u, roomy).unwrap();
    t3.keep();
    // a leaves: d fits.
    a.release("a");
    a.reserve("d", u, roomy).unwrap().keep();
    assert_eq!(a.in_use().0, 2);
}

#[test]
fn the_same_vm_cannot_be_entered_twice() {
    let a = Admission::new(limits());
    let u = a.check_machine("a", &desc(16, 1, None)).unwrap();
    let _t = a.reserve("a", u, roomy).unwrap();
    assert_eq!(
        a.reserve("a", u, roomy).unwrap_err(),
        Refusal::Busy("a".into())
    );
}

#[test]
fn total_memory_is_bounded() {
    let a = Admission::new(limits());
    let u = a.check_machine("a", &desc(768, 1, None)).unwrap();
    a.reserve("a", u, roomy).unwrap().keep();
    let u = a.check_machine("b", &desc(512, 1, None)).unwrap();
    let err = a.reserve("b", u, roomy).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no room for VM b: MiB of guest memory: 768 in use + 512 asked > limit 1024 \
         (`max_total_memory_mib`)"
    );
    let u = a.check_machine("b", &desc(256, 1, None)).unwrap();
    a.reserve("b", u, roomy).unwrap().keep();
}

#[test]
fn total_replica_bytes_are_bounded_disk_included() {
    let a = Admission::new(Limits {
        max_total_replica_mib: 100,
        ..limits()
    });
    let u = a.check_machine("a", &desc(64, 1, Some(16 << 20))).unwrap();
    a.reserve("a", u, roomy).unwrap().keep();
    let u = a.check_machine("b", &desc(16, 1, Some(8 << 20))).unwrap();
    let err = a.reserve("b", u, roomy).unwrap_err();
    assert!(
        matches!(
            err,
            Refusal::Full {
                used: 83886080,
                asked: 25165824,
                limit: 104857600,
                setting: "max_total_replica_mib",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn free_space_counts_what_is_promised_and_what_is_kept_free() {
    let a = Admission::new(Limits {
        min_free_mib: 10,
        ..limits()
    });
    let disk = |available: u64| {
        move || {
            Ok(vec![
                Filesystem {
                    path: "/replicas".into(),
                    available,
                    replicas: true,
                },
                Filesystem {
                    path: "/state".into(),
                    available: 20 << 20,
                    replicas: false,
                },
            ])
        }
    };
    let u = a.check_machine("a", &desc(64, 1, None)).unwrap();
    // 64 MiB + 10 MiB kept free do not fit in 73 MiB.
    let err = a.reserve("a", u, disk(73 << 20)).unwrap_err();
    assert!(
        matches!(
            err,
            Refusal::Disk {
                pending: 0,
                asked: 67108864,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("/replicas"), "{err}");
    let ta = a.reserve("a", u, disk(74 << 20)).unwrap();
    // a is not allocated yet: b must fit beside what a was promised.
    let err = a.reserve("b", u, disk(137 << 20)).unwrap_err();
    assert!(
        matches!(
            err,
            Refusal::Disk {
                pending: 67108864,
                ..
            }
        ),
        "{err}"
    );
    let tb = a.reserve("b", u, disk(138 << 20)).unwrap();
    // Once allocated, a's space is in the filesystem's figure, not pending.
    ta.keep();
    tb.keep();
    let tc = a.reserve("c", u, disk(74 << 20)).unwrap();
    drop(tc);
    // The state filesystem needs min_free_mib too.
    let state_full = || {
        Ok(vec![
            Filesystem {
                path: "/replicas".into(),
                available: 1 << 40,
                replicas: true,
            },
            Filesystem {
                path: "/state".into(),
                available: 9 << 20,
                replicas: false,
            },
        ])
    };
    let err = a.reserve("d", u, state_full).unwrap_err();
    assert!(err.to_string().contains("/state"), "{err}");
    let err = a
        .reserve("e", u, || Err(std::io::Error::other("statvfs failed")))
        .unwrap_err();
    assert!(err.to_string().contains("statvfs failed"), "{err}");
    assert_eq!(a.in_use().0, 2);
}

#[test]
fn a_restored_vm_is_counted_without_the_checks() {
    let a = Admission::new(Limits {
        max_vms: 1,
        ..limits()
    });
    let u = a.check_machine("a", &desc(16, 1, None)).unwrap();
    a.reserve("a", u, roomy).unwrap().keep();
    a.reserve_restored("b", u).keep();
    assert_eq!(a.in_use().0, 2);
    assert!(a.reserve("c", u, roomy).is_err());
}

/// The real probe on this machine: one filesystem for both directories,
/// another when they differ.
#[test]
fn the_probe_reads_statvfs() {
    let dir = tempfile::tempdir().unwrap();
    let fs = probe(dir.path(), dir.path()).unwrap();
    assert_eq!(fs.len(), 1);
    assert!(fs[0].replicas && fs[0].available > 0);
    assert!(probe(&dir.path().join("missing"), dir.path()).is_err());
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        assert_eq!(probe(dir.path(), shm).unwrap().len(), 2);
    }
}

/// The real probe on a small filesystem (root: a loop-mounted ext4 of 64
/// MiB) filled by something else: a VM that fitted before no longer does.
#[test]
fn a_real_filesystem_filled_by_something_else_refuses_a_vm() {
    if !jettison_testbed::is_root() {
        eprintln!("skipped: needs root (loop mount)");
        return;
    }
    let disk = jettison_testbed::LoopFs::create("admit", 64).unwrap();
    let (replicas, state) = (disk.path().join("replicas"), disk.path().join("state"));
    std::fs::create_dir_all(&replicas).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let a = Admission::new(Limits {
        min_free_mib: 4,
        ..limits()
    });
    let u = a.check_machine("vm", &desc(32, 1, None)).unwrap();
    let probe_here = || probe(&replicas, &state);
    drop(a.reserve("vm", u, probe_here).unwrap());
    let mut f = std::fs::File::create(disk.path().join("filler")).unwrap();
    std::io::Write::write_all(&mut f, &vec![7u8; 40 << 20]).unwrap();
    f.sync_all().unwrap();
    let err = a.reserve("vm", u, probe_here).unwrap_err();
    assert!(matches!(err, Refusal::Disk { .. }), "{err}");
    assert!(err.to_string().contains("replicas"), "{err}");
    assert_eq!(std::fs::read_dir(&replicas).unwrap().count(), 0);
    assert_eq!(a.in_use().0, 0);
}
