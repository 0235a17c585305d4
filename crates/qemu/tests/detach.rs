//! What ties a QEMU's life to its owner: a detached QEMU keeps running
//! after its `Qemu` value is gone and after the process that launched it
//! exited (its output goes to a log file, and it ignores `SIGPIPE`
//! anyway), and can then be quit
//! through its QMP socket; an owned one dies with its value or its runtime.
//! `shutdown` presses the power button and quits a guest that ignores it,
//! or returns as soon as QEMU exits by itself.
//! Needs the test guest (`cargo xtask guest`, or `JETTISON_GUEST_DIR`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jettison_qemu::{Qemu, QmpClient, RunState, Shutdown};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Where the launching child process works (set by the parent test).
const CHILD_DIR_ENV: &str = "JETTISON_QEMU_DETACH_DIR";
/// The file in that directory where the child writes QEMU's pid.
const PID_FILE: &str = "qemu.pid";
const VM: &str = "detached";

/// Kills (and reaps) the QEMU the test left running, also when it fails.
struct KillOnDrop(Option<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let pid = Pid::from_raw(pid);
            if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok() {
                let _ = waitpid(pid, None);
            }
        }
    }
}

/// A field of `/proc/<pid>/status` (e.g. `PPid`).
fn status_field(pid: i32, field: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: i32) -> bool {
    status_field(pid, "State").is_some_and(|s| !s.starts_with('Z'))
}

/// Waits until the serial console shows a heartbeat (`JTS HB`) line.
async fn heartbeat_on(serial: &Path) -> String {
    let stream = tokio::net::UnixStream::connect(serial)
        .await
        .expect("connect to the serial socket");
    let mut lines = BufReader::new(stream).lines();
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            match lines.next_line().await.expect("read serial") {
                Some(l) if l.contains("JTS HB") => break l,
                Some(_) => {}
                None => panic!("the serial console closed"),
            }
        }
    })
    .await
    .expect("a heartbeat on the serial console")
}

/// Run by [`detached_qemu_outlives_its_value_and_its_parent`] in a child
/// process: launches the guest, sees it run, detaches QEMU, checks that it
/// still answers once its `Qemu` value is gone, and exits.
#[tokio::test]
#[ignore = "run as a child process by detached_qemu_outlives_its_value_and_its_parent"]
async fn child_launch_and_detach() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV).map(PathBuf::from) else {
        return;
    };
    common::init_tracing();
    let opts = common::options(&dir, VM);
    let vm = Qemu::launch(&common::guest(128), &opts).await.unwrap();
    let mut console = vm.subscribe_console();
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            match console.recv().await {
                Ok(l) if l.contains("JTS HB") => break,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("console closed: {e}"),
            }
        }
    })
    .await
    .expect("the guest runs");
    let pid = vm.detach().expect("QEMU's pid");
    std::fs::write(dir.join(PID_FILE), pid.to_string()).unwrap();
    // The `Qemu` value is gone; QEMU is not.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(alive(pid as i32), "QEMU died with its Qemu value");
    let qmp = QmpClient::connect(&opts.qmp_socket(), VM).await.unwrap();
    let status = qmp
        .execute(&jettison_qemu::qmp::QueryStatus {})
        .await
        .unwrap();
    assert_eq!(status.status, RunState::Running);
    // Returning ends the runtime (the supervisor task with it), then the
    // process.
}

#[test]
fn detached_qemu_outlives_its_value_and_its_parent() {
    common::init_tracing();
    let dir = common::shm_dir("detach");
    // QEMU is reparented to us when the child exits, so that we can see it
    // was not killed and reap it at the end.
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let mut guard = KillOnDrop(None);
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_launch_and_detach",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .status()
        .unwrap();
    let pid = std::fs::read_to_string(dir.path().join(PID_FILE))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    guard.0 = pid;
    assert!(status.success(), "the child failed: {status}");
    let pid = pid.expect("the child wrote QEMU's pid");
    let me = std::process::id().to_string();

    // Alive, reparented to us (its parent exited without killing it), in
    // its own process group, and ignoring SIGPIPE (its output is a file, but
    // a pipe of a dead reader would not kill it either).
    assert!(alive(pid), "QEMU died with its parent");
    assert_eq!(status_field(pid, "PPid").as_deref(), Some(me.as_str()));
    assert_eq!(
        nix::unistd::getpgid(Some(Pid::from_raw(pid))).unwrap(),
        Pid::from_raw(pid),
        "QEMU leads its own process group"
    );
    let ignored = u64::from_str_radix(&status_field(pid, "SigIgn").unwrap(), 16).unwrap();
    assert!(ignored & (1 << (13 - 1)) != 0, "SIGPIPE is not ignored");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let opts = common::options(dir.path(), VM);
        let qmp = QmpClient::connect(&opts.qmp_socket(), VM).await.unwrap();
        // Make QEMU write to its stderr (its log file, which nobody follows
        // any more): interrupt logging writes a line per guest interrupt.
        let hmp = |cmd: &str| {
            qmp.execute_raw(
                "human-monitor-command",
                serde_json::json!({ "command-line": cmd }),
            )
        };
        hmp("log int").await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        hmp("log none").await.unwrap();
        let status = qmp
            .execute(&jettison_qemu::qmp::QueryStatus {})
            .await
            .unwrap();
        assert_eq!(status.status, RunState::Running);
        // The guest itself still runs.
        let hb = heartbeat_on(&opts.serial_socket()).await;
        eprintln!("after the parent's exit: {hb}");
        // And it can be quit through its QMP socket.
        let _ = qmp.execute(&jettison_qemu::qmp::Quit {}).await;
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let exited = loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)).unwrap() {
            WaitStatus::StillAlive if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => break other,
        }
    };
    assert_eq!(
        exited,
        WaitStatus::Exited(Pid::from_raw(pid), 0),
        "QEMU quit"
    );
    guard.0 = None;
}

#[test]
fn an_owned_qemu_dies_with_its_value_or_its_runtime() {
    common::init_tracing();
    let dir = common::shm_dir("owned");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, b) = rt.block_on(async {
        let a = Qemu::launch(
            &common::bios_only(32),
            &common::options(dir.path(), "own-a"),
        )
        .await
        .unwrap();
        let b = Qemu::launch(
            &common::bios_only(32),
            &common::options(dir.path(), "own-b"),
        )
        .await
        .unwrap();
        (a, b)
    });
    let (pid_a, pid_b) = (a.pid().unwrap() as i32, b.pid().unwrap() as i32);
    // Dropping the value kills QEMU.
    rt.block_on(async {
        let mut exit = a.exit_handle();
        drop(a);
        let st = tokio::time::timeout(Duration::from_secs(10), exit.wait())
            .await
            .expect("QEMU exits when its value is dropped")
            .unwrap();
        assert!(!st.success(), "killed: {st}");
    });
    assert!(!alive(pid_a));
    // The end of the runtime kills it too, even if the value is never
    // dropped (its supervisor task goes with the runtime).
    std::mem::forget(b);
    drop(rt);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid_b) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid_b), "QEMU outlived the runtime that owned it");
}

#[tokio::test]
async fn shutdown_presses_the_power_button_then_quits_a_guest_that_ignores_it() {
    common::init_tracing();
    let dir = common::shm_dir("pwr");
    // SeaBIOS with nothing to boot does not handle the ACPI power button.
    let vm = Qemu::launch(&common::bios_only(32), &common::options(dir.path(), "pwr"))
        .await
        .unwrap();
    let mut events = vm.qmp().subscribe();
    let started = Instant::now();
    let outcome = vm.shutdown(Duration::from_secs(2)).await.unwrap();
    let waited = started.elapsed();
    assert!(
        matches!(outcome, Shutdown::Quit(st) if st.success()),
        "{outcome:?}"
    );
    assert!(
        waited >= Duration::from_secs(2),
        "quit before the timeout: {waited:?}"
    );
    let mut seen = Vec::new();
    while let Ok(ev) = events.try_recv() {
        seen.push(ev.event);
    }
    assert!(
        seen.iter().any(|e| e == "POWERDOWN"),
        "no POWERDOWN event: {seen:?}"
    );
}

/// The other outcome of `shutdown`: QEMU exits by itself while it waits.
/// (The test guest has no ACPI power-button handler, so the exit here is
/// the guest kernel rebooting with `-no-reboot`: no root filesystem, panic,
/// `panic=-1`.)
#[tokio::test]
async fn shutdown_returns_when_qemu_exits_by_itself() {
    common::init_tracing();
    let dir = common::shm_dir("pwroff");
    let spec = jettison_qemu::MachineSpec {
        memory_mib: 128,
        cpus: 1,
        kernel: Some(common::guest_kernel()),
        append: Some("console=ttyS0 panic=-1".into()),
        ..Default::default()
    };
    let opts = jettison_qemu::LaunchOptions {
        extra_args: vec!["-no-reboot".into()],
        ..common::options(dir.path(), "pwroff")
    };
    let vm = Qemu::launch(&spec, &opts).await.unwrap();
    let started = Instant::now();
    let outcome = vm.shutdown(Duration::from_secs(120)).await.unwrap();
    assert!(
        matches!(outcome, Shutdown::PoweredOff(st) if st.success()),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(100),
        "waited the whole timeout"
    );
}
