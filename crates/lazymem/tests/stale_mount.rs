//! A daemon killed with its filesystem mounted leaves a dead mount behind;
//! the next mount at the same place must clear it and come back cleanly.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{init_tracing, TestSource};
use jettison_lazymem::{LazyMemError, LazyMemMount, MountOptions, PAGE_SIZE};
use nix::mount::{umount2, MntFlags};

const CHILD_ENV: &str = "JETTISON_LAZYMEM_STALE_CHILD";

fn mounted_at(path: &Path) -> usize {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = path.to_str().unwrap();
    info.lines()
        .filter(|l| l.split(' ').nth(4) == Some(want))
        .count()
}

/// Detaches whatever is still mounted at the path when the test ends, so a
/// failing test leaves no dead mount behind.
struct DetachOnDrop(PathBuf);

impl Drop for DetachOnDrop {
    fn drop(&mut self) {
        while mounted_at(&self.0) > 0 && umount2(&self.0, MntFlags::MNT_DETACH).is_ok() {}
    }
}

/// Not a test on its own: when run as a child by `stale_mount_is_cleared`,
/// mounts with a VM and dies by SIGKILL, like a killed daemon.
#[test]
#[ignore = "helper, not a test: run as a child process by stale_mount_is_cleared"]
fn child_mount_then_die() {
    let mountpoint = std::env::var_os(CHILD_ENV).expect("run only by stale_mount_is_cleared");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mountpoint = PathBuf::from(mountpoint);
    let mount =
        LazyMemMount::mount(&mountpoint, rt.handle().clone(), MountOptions::default()).unwrap();
    let src = TestSource::new(4 * PAGE_SIZE);
    let replica = mountpoint.with_extension("child-replica");
    mount.add_vm("vm", 4 * PAGE_SIZE, &replica, src).unwrap();
    let _ = std::fs::read(mount.file_path("vm")).unwrap();
    nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL).unwrap();
    unreachable!("SIGKILL did not kill us");
}

#[test]
fn stale_mount_is_cleared() {
    init_tracing();
    let dir = tempfile::Builder::new()
        .prefix("lazymem-stale-")
        .tempdir()
        .unwrap();
    let mountpoint = dir.path().join("mnt");
    let _guard = DetachOnDrop(mountpoint.clone());

    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_mount_then_die",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &mountpoint)
        .status()
        .unwrap();
    assert!(!status.success(), "the child should have been killed");
    assert_eq!(mounted_at(&mountpoint), 1, "the killed child left no mount");
    let err = std::fs::read_dir(&mountpoint).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(nix::libc::ENOTCONN));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mount =
        LazyMemMount::mount(&mountpoint, rt.handle().clone(), MountOptions::default()).unwrap();
    assert_eq!(
        mounted_at(&mountpoint),
        1,
        "stale mount still there under the new one"
    );
    // A live mount is never cleared: a second daemon is refused.
    let second = LazyMemMount::mount(&mountpoint, rt.handle().clone(), MountOptions::default());
    assert!(
        matches!(second, Err(LazyMemError::Mount { .. })),
        "{second:?}"
    );

    let src = TestSource::new(4 * PAGE_SIZE);
    let vm = mount
        .add_vm(
            "vm",
            4 * PAGE_SIZE,
            &dir.path().join("vm.replica"),
            src.clone(),
        )
        .unwrap();
    assert!(std::fs::read(mount.file_path("vm")).unwrap() == *src.data);
    assert_eq!(vm.stats().pages_fetched, 4);
    mount.unmount().unwrap();
    assert_eq!(mounted_at(&mountpoint), 0);

    // And a clean remount at the same place works too.
    let mount =
        LazyMemMount::mount(&mountpoint, rt.handle().clone(), MountOptions::default()).unwrap();
    assert_eq!(std::fs::read_dir(mount.mountpoint()).unwrap().count(), 0);
    drop(mount);
    assert_eq!(mounted_at(&mountpoint), 0);
}
