//! Taking over a running QEMU (`Qemu::adopt`): one launched and detached
//! (as a stopped daemon leaves it) is found through its QMP socket, is the
//! same process, keeps running untouched, and is then managed as if
//! launched here: status, console, output log, exit watch, quit, kill on
//! drop. Nothing answering is `None`; another VM's QEMU is refused and left
//! alone. Needs the test guest (`cargo xtask guest`, or `JETTISON_GUEST_DIR`).

mod common;

use std::time::{Duration, Instant};

use jettison_qemu::{Qemu, QemuError, QmpClient, RunState};

/// Kills the QEMU the test left running, also when it fails.
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("State:"))
                .map(|s| !s.trim().starts_with('Z'))
        })
        .unwrap_or(false)
}

async fn heartbeat(console: &mut tokio::sync::broadcast::Receiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            match console.recv().await {
                Ok(l) if l.contains("JTS HB") => break l,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("console closed: {e}"),
            }
        }
    })
    .await
    .expect("a heartbeat on the console")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_qemu_is_taken_over_and_managed() {
    common::init_tracing();
    let dir = common::shm_dir("adopt");
    let opts = common::options(dir.path(), "adopted");
    let mut guard = KillOnDrop(None);

    // Nobody there yet: nothing to take over.
    assert!(Qemu::adopt(&opts).await.unwrap().is_none());

    let vm = Qemu::launch(&common::guest(128), &opts).await.unwrap();
    let mut console = vm.subscribe_console();
    heartbeat(&mut console).await;
    let pid = vm.detach().unwrap();
    guard.0 = Some(pid);

    // Another VM's options (same run dir, other memory file) are refused,
    // and the QEMU is left alone.
    let wrong = jettison_qemu::LaunchOptions {
        mem_path: dir.path().join("other.mem"),
        ..opts.clone()
    };
    match Qemu::adopt(&wrong).await {
        Err(QemuError::NotAdoptable { why, .. }) => {
            assert!(why.contains("guest memory"), "{why}")
        }
        other => panic!("adopted with the wrong memory file: {other:?}"),
    }
    assert!(alive(pid));

    let t = Instant::now();
    let vm = Qemu::adopt(&opts).await.unwrap().expect("QEMU answers");
    eprintln!("taken over in {:?}", t.elapsed());
    assert_eq!(vm.pid(), Some(pid), "the same process");
    assert!(!vm.options().incoming);
    assert_eq!(vm.status().await.unwrap(), RunState::Running, "untouched");
    let mut console = vm.subscribe_console();
    let hb = heartbeat(&mut console).await;
    eprintln!("console after the take-over: {hb}");
    let log = std::fs::read_to_string(opts.console_log.as_ref().unwrap()).unwrap();
    assert!(log.contains(&hb), "the console log goes on");

    // QEMU's output goes to its log file, followed after the take-over.
    vm.qmp()
        .execute_raw(
            "human-monitor-command",
            serde_json::json!({ "command-line": "log int" }),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    vm.qmp()
        .execute_raw(
            "human-monitor-command",
            serde_json::json!({ "command-line": "log none" }),
        )
        .await
        .unwrap();
    assert!(!vm.stderr_tail().is_empty(), "QEMU's output is in its log");

    // Pause and resume as for a launched one; the exit is seen.
    vm.stop().await.unwrap();
    assert_eq!(vm.status().await.unwrap(), RunState::Paused);
    vm.cont().await.unwrap();
    let mut exit = vm.exit_handle();
    let st = tokio::time::timeout(Duration::from_secs(15), vm.quit())
        .await
        .expect("quit returns")
        .unwrap();
    assert!(st.success(), "{st}");
    tokio::time::timeout(Duration::from_secs(5), exit.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!alive(pid));
    guard.0 = None;
    assert!(Qemu::adopt(&opts).await.unwrap().is_none(), "gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_qemu_dies_with_its_value_and_an_unexpected_exit_is_seen() {
    common::init_tracing();
    let dir = common::shm_dir("adopt-drop");
    let opts = common::options(dir.path(), "adopted2");
    let mut guard = KillOnDrop(None);
    let pid = Qemu::launch(&common::bios_only(32), &opts)
        .await
        .unwrap()
        .detach()
        .unwrap();
    guard.0 = Some(pid);

    // An exit nobody asked for is reported (status unknown: not our child).
    let vm = Qemu::adopt(&opts).await.unwrap().unwrap();
    let mut exit = vm.exit_handle();
    {
        let qmp = vm.qmp();
        let _ = qmp.execute(&jettison_qemu::qmp::Quit {}).await;
    }
    let r = tokio::time::timeout(Duration::from_secs(5), exit.wait())
        .await
        .expect("the exit is seen");
    assert!(r.is_err(), "unexpected exit: {r:?}");
    assert!(vm.has_exited());
    drop(vm);

    // Dropping an adopted QEMU kills it, as for a launched one; detaching
    // it again does not.
    let pid = Qemu::launch(&common::bios_only(32), &opts)
        .await
        .unwrap()
        .detach()
        .unwrap();
    guard.0 = Some(pid);
    let vm = Qemu::adopt(&opts).await.unwrap().unwrap();
    assert_eq!(vm.detach(), Some(pid));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(alive(pid), "a detached adopted QEMU lives on");
    let vm = Qemu::adopt(&opts).await.unwrap().unwrap();
    let mut exit = vm.exit_handle();
    drop(vm);
    tokio::time::timeout(Duration::from_secs(5), exit.wait())
        .await
        .expect("killed when dropped")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(pid));
    guard.0 = None;
    // The QMP socket no longer answers.
    assert!(QmpClient::connect(&opts.qmp_socket(), "x").await.is_err());
}
