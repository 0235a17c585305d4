//! A confined QEMU (`LaunchOptions::confine`) runs as its own user under
//! QEMU's sandbox, in a run directory of its own, and still migrates out
//! and in (real QEMU, run as root).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use jettison_qemu::{Confinement, LaunchOptions, Qemu, RunState};

/// Unprivileged ids with no account: nothing else runs as them.
const A: Confinement = Confinement {
    uid: 3_952_001,
    gid: 3_952_001,
};
const B: Confinement = Confinement {
    uid: 3_952_002,
    gid: 3_952_002,
};

/// `(uid, seccomp mode)` of a running process, from `/proc`.
fn uid_and_seccomp(pid: u32) -> (u32, u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u32 {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("Uid:"), field("Seccomp:"))
}

fn confined(dir: &std::path::Path, name: &str, c: Confinement) -> LaunchOptions {
    LaunchOptions {
        run_dir: dir.join(format!("run-{name}")),
        confine: Some(c),
        ..common::options(dir, name)
    }
}

#[tokio::test]
async fn a_confined_qemu_runs_as_its_user_sandboxed_and_migrates() {
    common::init_tracing();
    let dir = common::shm_dir("confined");
    // Its users must reach their run directories and memory files.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = common::bios_only(64);
    let opts_a = confined(dir.path(), "cfa", A);
    let a = Qemu::launch(&spec, &opts_a).await.unwrap();

    let (uid, seccomp) = uid_and_seccomp(a.pid().unwrap());
    assert_eq!(uid, A.uid, "QEMU runs as its own user");
    assert_eq!(seccomp, 2, "QEMU's sandbox (a seccomp filter) is on");
    let run = std::fs::metadata(&opts_a.run_dir).unwrap();
    assert_eq!((run.uid(), run.mode() & 0o777), (A.uid, 0o700));
    assert_eq!(std::fs::metadata(&opts_a.mem_path).unwrap().uid(), A.uid);

    // Out through the daemon's socket, which QEMU reaches as its user...
    a.stop().await.unwrap();
    let state = a.migrate_out().await.unwrap();
    assert!(!state.is_empty());
    a.quit().await.unwrap();

    // ...and in, into a QEMU of another user on the same (handed over) file.
    std::os::unix::fs::chown(&opts_a.mem_path, Some(B.uid), Some(B.gid)).unwrap();
    let opts_b = LaunchOptions {
        incoming: true,
        mem_path: opts_a.mem_path.clone(),
        ..confined(dir.path(), "cfb", B)
    };
    let b = Qemu::launch(&spec, &opts_b).await.unwrap();
    b.migrate_in(&state).await.unwrap();
    assert_eq!(uid_and_seccomp(b.pid().unwrap()).0, B.uid);
    b.cont().await.unwrap();
    assert_eq!(b.status().await.unwrap(), RunState::Running);
    b.quit().await.unwrap();
}
