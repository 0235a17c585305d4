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
    jail: false,
};
const B: Confinement = Confinement {
    uid: 3_952_002,
    gid: 3_952_002,
    jail: false,
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

/// The QEMU process of VM `name` (under `bwrap`, a child of the launched
/// process).
fn qemu_pid_of(name: &str) -> u32 {
    let needle = format!("-name\0{name}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                c.starts_with(common::QEMU.as_bytes())
                    && String::from_utf8_lossy(&c).contains(&needle)
            })
        })
        .unwrap_or_else(|| panic!("no QEMU process of {name}"))
}

#[tokio::test]
async fn a_jailed_qemu_sees_only_its_own_files() {
    common::init_tracing();
    let dir = common::shm_dir("jailed");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = common::bios_only(64);
    let jailed = Confinement {
        jail: true,
        ..Confinement {
            uid: 3_952_003,
            gid: 3_952_003,
            jail: false,
        }
    };
    let opts = confined(dir.path(), "cfj", jailed);
    let vm = Qemu::launch(&spec, &opts).await.unwrap();
    let pid = qemu_pid_of("cfj");
    assert_eq!(uid_and_seccomp(pid), (jailed.uid, 2));
    // Its root is the jail's: /usr and its own files, not the host's /etc.
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    assert!(root.join("usr/bin").is_dir());
    assert!(!root.join("etc").exists(), "the host's /etc is visible");
    assert!(!root.join("root").exists(), "the host's /root is visible");
    let inside = root.join(opts.mem_path.strip_prefix("/").unwrap());
    assert!(inside.is_file(), "its memory file is visible");
    let sibling = dir.path().join("other.mem");
    std::fs::write(&sibling, b"another VM's").unwrap();
    assert!(
        !root.join(sibling.strip_prefix("/").unwrap()).exists(),
        "a file beside its own is visible"
    );
    vm.stop().await.unwrap();
    assert!(!vm.migrate_out().await.unwrap().is_empty());
    vm.quit().await.unwrap();
}

#[tokio::test]
async fn killing_a_jailed_qemu_kills_qemu_not_only_its_jailer() {
    common::init_tracing();
    let dir = common::shm_dir("jailkill");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let c = Confinement {
        uid: 3_952_004,
        gid: 3_952_004,
        jail: true,
    };
    let vm = Qemu::launch(&common::bios_only(64), &confined(dir.path(), "cfk", c))
        .await
        .unwrap();
    let pid = qemu_pid_of("cfk");
    vm.kill().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "QEMU {pid} outlived its kill"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
