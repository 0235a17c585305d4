//! Each VM's file belongs to the user its QEMU runs as: a process of another
//! unprivileged user cannot open it, so one escaped QEMU cannot read
//! another VM's memory (real FUSE, run as root).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use common::{Fixture, TestSource};
use jettison_lazymem::{MountOptions, PAGE_SIZE};

/// Unprivileged ids with no account: nothing else runs as them.
const UID_A: u32 = 3_951_001;
const UID_B: u32 = 3_951_002;

/// Reads the first page of `file` as `uid`:`uid`; the error text on failure.
fn read_as(uid: u32, file: &Path) -> Result<(), String> {
    let out = Command::new("dd")
        .arg(format!("if={}", file.display()))
        .args(["of=/dev/null", "bs=4096", "count=1"])
        .uid(uid)
        .gid(uid)
        .output()
        .expect("dd runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_vm_file_opens_for_its_own_user_only() {
    let fx = Fixture::new(MountOptions::default());
    // The test's temporary directory must be traversable by the two users.
    std::fs::set_permissions(fx.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let src_a = TestSource::new(16 * PAGE_SIZE);
    let src_b = TestSource::new(16 * PAGE_SIZE);
    fx.add("own-a", &src_a).set_owner(UID_A, UID_A);
    let b = fx.add("own-b", &src_b);
    b.set_owner(UID_B, UID_B);
    let (file_a, file_b) = (fx.mount.file_path("own-a"), fx.mount.file_path("own-b"));

    let meta = std::fs::metadata(&file_b).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (UID_B, UID_B));
    assert_eq!(meta.mode() & 0o777, 0o600);

    read_as(UID_A, &file_a).expect("its own user reads VM a's file");
    let refused = read_as(UID_A, &file_b).expect_err("VM b's file refused to VM a's user");
    assert!(refused.contains("Permission denied"), "{refused}");
    assert_eq!(src_b.calls(), 0, "no page of VM b was fetched");
    assert_eq!(b.stats().faults, 0, "no page of VM b was read");
    read_as(UID_B, &file_b).expect("its own user reads VM b's file");
    // Root (the daemon, an operator) still reads every file.
    std::fs::read(&file_a).unwrap();
}
