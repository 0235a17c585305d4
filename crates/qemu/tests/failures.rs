//! QEMU dying and failing to start: clear errors, no hangs.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jettison_qemu::{LaunchOptions, Qemu, QemuError};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[tokio::test]
async fn sigkill_is_reported_and_pending_call_fails() {
    common::init_tracing();
    let dir = common::shm_dir("kill");
    let vm = Qemu::launch(&common::bios_only(32), &common::options(dir.path(), "kill"))
        .await
        .unwrap();
    let pid = Pid::from_raw(vm.pid().unwrap() as i32);
    // Freeze QEMU so that a call is really pending, then kill it.
    kill(pid, Signal::SIGSTOP).unwrap();
    let t = Instant::now();
    let (res, _) = tokio::join!(vm.status(), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        kill(pid, Signal::SIGKILL).unwrap();
    });
    let took = t.elapsed();
    let err = res.expect_err("call must fail");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        matches!(err, QemuError::Exited { .. } | QemuError::Disconnected(_)),
        "{err:?}"
    );
    eprintln!("pending call failed after {took:?}: {err}");
    let st = tokio::time::timeout(Duration::from_secs(5), vm.wait_exit())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.signal(), Some(9), "{st}");
    assert!(vm.has_exited());
    // Later calls fail at once.
    let t = Instant::now();
    assert!(vm.cont().await.is_err());
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn missing_binary_is_a_spawn_error() {
    common::init_tracing();
    let dir = common::shm_dir("nobin");
    let opts = LaunchOptions {
        binary: PathBuf::from("/nonexistent/qemu-system-x86_64"),
        ..common::options(dir.path(), "nobin")
    };
    let err = Qemu::launch(&common::bios_only(16), &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, QemuError::Spawn { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/qemu-system-x86_64"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_argument_reports_qemu_stderr() {
    common::init_tracing();
    let dir = common::shm_dir("badarg");
    let opts = LaunchOptions {
        extra_args: vec!["-no-such-option".into()],
        ..common::options(dir.path(), "badarg")
    };
    let err = Qemu::launch(&common::bios_only(16), &opts)
        .await
        .unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(matches!(err, QemuError::LaunchFailed { .. }), "{err:?}");
    assert!(text.contains("-no-such-option"), "{text}");
    assert!(text.contains("exit status: 1"), "{text}");
}

#[tokio::test]
async fn wrong_memory_file_size_is_refused() {
    common::init_tracing();
    let dir = common::shm_dir("memsz");
    let opts = common::options(dir.path(), "memsz");
    std::fs::write(&opts.mem_path, vec![0u8; 4096]).unwrap();
    let err = Qemu::launch(&common::bios_only(16), &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, QemuError::MemFile { .. }), "{err:?}");
    assert_eq!(std::fs::metadata(&opts.mem_path).unwrap().len(), 4096);
}

#[tokio::test]
async fn failed_incoming_migration_is_an_error() {
    common::init_tracing();
    let dir = common::shm_dir("badin");
    let opts = LaunchOptions {
        incoming: true,
        ..common::options(dir.path(), "badin")
    };
    let vm = Qemu::launch(&common::bios_only(16), &opts).await.unwrap();
    vm.set_migration_timeout(Duration::from_secs(10));
    let err = vm
        .migrate_in(b"this is not a migration stream")
        .await
        .unwrap_err();
    eprintln!("garbage stream: {err}");
    assert!(
        matches!(err, QemuError::Migration(_) | QemuError::Exited { .. }),
        "{err:?}"
    );
}
