//! A full disk under the replicas (root: a loop-mounted ext4 of 64 MiB).
//! With `reserve_replicas` a VM's replica blocks are allocated when it is
//! added, so a disk filled afterwards by something else never fails its
//! page stores or writes, and a VM that does not fit is refused when added,
//! leaving no replica behind. Without it (sparse replicas) the same full
//! disk fails the VM's next fault: what the reservation prevents.

mod common;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{drop_caches, Fixture, TestSource};
use jettison_lazymem::{MountOptions, PAGE_SIZE};
use jettison_testbed::LoopFs;

/// VM size: 8 MiB, a good part of the 64 MiB filesystem.
const PAGES: u64 = 2048;

/// Writes a file of 1 MiB blocks on `dir` until the filesystem is full.
fn fill(dir: &Path) -> std::fs::File {
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0x5au8; 1 << 20];
    loop {
        if let Err(e) = f.write_all(&block).and_then(|()| f.sync_all()) {
            assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC: {e}");
            break;
        }
    }
    // Whatever is left below a block goes too.
    let small = vec![0x5au8; 4096];
    while f.write_all(&small).and_then(|()| f.sync_all()).is_ok() {}
    f
}

fn loopfs(tag: &str) -> Option<LoopFs> {
    if !jettison_testbed::is_root() {
        eprintln!("skipped: needs root (loop mount)");
        return None;
    }
    Some(LoopFs::create(tag, 64).unwrap())
}

#[test]
fn a_reserved_replica_keeps_working_on_a_full_disk() {
    let Some(disk) = loopfs("reserved") else {
        return;
    };
    let fx = Fixture::new(MountOptions {
        reserve_replicas: true,
        ..MountOptions::default()
    });
    let src = TestSource::new(PAGES * PAGE_SIZE);
    let replica = disk.path().join("vm-full.replica");
    let vm = fx
        .mount
        .add_vm("vm-full", PAGES * PAGE_SIZE, &replica, src.clone())
        .unwrap();
    let _filler = fill(disk.path());

    // Another VM no longer fits: refused now, its replica gone.
    let other = disk.path().join("vm-late.replica");
    let err = fx
        .mount
        .add_vm("vm-late", PAGES * PAGE_SIZE, &other, src.clone())
        .unwrap_err();
    assert!(err.to_string().contains("reserving"), "{err}");
    assert!(!other.exists(), "the refused VM's replica was kept");
    assert!(fx.mount.vm("vm-late").is_none());

    // The running VM: half its pages fetched (stored in the replica), the
    // other half written by the guest, all of it flushed and read back.
    let path = fx.mount.file_path("vm-full");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut buf = vec![0u8; PAGE_SIZE as usize];
    for p in (0..PAGES).step_by(2) {
        file.read_exact_at(&mut buf, p * PAGE_SIZE).unwrap();
        assert_eq!(buf, src.page(p), "page {p}");
    }
    for p in (1..PAGES).step_by(2) {
        file.write_all_at(&[p as u8 | 1; PAGE_SIZE as usize], p * PAGE_SIZE)
            .unwrap();
    }
    file.sync_all().expect("the VM's writes reach its replica");
    drop_caches();
    for p in 0..PAGES {
        file.read_exact_at(&mut buf, p * PAGE_SIZE).unwrap();
        if p % 2 == 0 {
            assert_eq!(buf, src.page(p), "page {p}");
        } else {
            assert!(buf.iter().all(|&b| b == p as u8 | 1), "page {p}");
        }
    }
    assert_eq!(vm.dirty_pages().len() as u64, PAGES / 2);
    drop(file);
    fx.mount.remove_vm("vm-full").unwrap();
}

#[test]
fn a_sparse_replica_fails_on_a_full_disk() {
    let Some(disk) = loopfs("sparse") else {
        return;
    };
    let fx = Fixture::new(MountOptions::default());
    let src = TestSource::new(PAGES * PAGE_SIZE);
    let replica = disk.path().join("vm-sparse.replica");
    fx.mount
        .add_vm("vm-sparse", PAGES * PAGE_SIZE, &replica, src.clone())
        .unwrap();
    let _filler = fill(disk.path());
    let file = std::fs::File::open(fx.mount.file_path("vm-sparse")).unwrap();
    let mut buf = vec![0u8; PAGE_SIZE as usize];
    let failed = (0..PAGES).any(|p| file.read_exact_at(&mut buf, p * PAGE_SIZE).is_err());
    assert!(failed, "a sparse replica stored pages on a full disk");
    drop(file);
    fx.mount.remove_vm("vm-sparse").unwrap();
}
