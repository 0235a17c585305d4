//! Stopping the agent with `on_stop = "leave"` (the default) leaves the
//! guest running at home: its QEMU outlives the agent. A new agent on the
//! same configuration takes that QEMU over (no second one); it sees that
//! QEMU die, after which `jettison start` boots the VM again; a
//! consolidated VM is not started at home. (`takeover.rs` checks the
//! take-over on test hosts: chat, SIGKILL, migration, a VM away.)

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use jettison_demo::procs::qemu_pids;
use jettison_demo::scenario::migrate;
use jettison_demo::ClusterOptions;
use jettison_qemu::qmp::QueryStatus;
use jettison_qemu::{QmpClient, RunState};
use jettison_wire::{ErrorCode, Message};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Runs `jettison --agent-socket <socket> <args>`; gives (success, output).
fn jettison(socket: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jettison"))
        .arg("--agent-socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run jettison");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Waits until `f` holds, or fails with `what`.
async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The first heartbeat on the guest's serial socket with a sequence number
/// above `after` (read directly: no agent taps the console any more).
async fn heartbeat_on_serial(serial: &Path, after: u64) -> u64 {
    let stream = tokio::net::UnixStream::connect(serial)
        .await
        .expect("connect to the guest's serial socket");
    let mut lines = BufReader::new(stream).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("serial open");
            let seq = line
                .split("seq=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(seq) = seq.filter(|&s| s > after) {
                break seq;
            }
        }
    })
    .await
    .expect("a heartbeat on the serial console")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_agent_leaves_the_guest_running_at_home() {
    let mut cluster = common::ready_cluster_with(ClusterOptions {
        memory_mib: 256,
        agent_on_stop: "leave".into(),
        ..ClusterOptions::default()
    })
    .await;
    let vm = cluster.vm.clone();
    let needle = format!("/{vm}.");
    let pids = qemu_pids(&needle);
    assert_eq!(pids.len(), 1, "one QEMU for the VM: {pids:?}");
    let qemu = pids[0];
    let before = common::next_heartbeat(&cluster, 0, Duration::from_secs(30)).await;
    let run = cluster.agent_run_dir();
    let qmp_socket = run.join(format!("{vm}.qmp"));

    // SIGTERM: the agent exits cleanly and leaves its QEMU running.
    let status = cluster.stop_agent().expect("the agent was running");
    assert!(status.success(), "agent exit on SIGTERM: {status}");
    let log = cluster.daemon_log("agent");
    assert!(
        log.contains("leaving the VM running at home"),
        "agent log:\n{}",
        jettison_demo::procs::tail(&log)
    );
    assert_eq!(qemu_pids(&needle), vec![qemu], "the same QEMU still runs");
    {
        let qmp = QmpClient::connect(&qmp_socket, &vm)
            .await
            .expect("QEMU answers on its QMP socket");
        let state = qmp.execute(&QueryStatus {}).await.unwrap().status;
        assert_eq!(state, RunState::Running);
    }
    let seq = heartbeat_on_serial(&run.join(format!("{vm}.serial")), before).await;
    eprintln!("guest heartbeat {seq} after the agent stopped (last seen before: {before})");

    // A new agent on the same configuration takes the QEMU over: no second
    // QEMU, the VM is managed at home.
    cluster.start_agent().unwrap();
    cluster.wait_ready(true).await.unwrap();
    wait_until(
        "the new agent takes the QEMU over",
        Duration::from_secs(20),
        || {
            cluster
                .daemon_log("agent")
                .contains("took over the VM running at home")
        },
    )
    .await;
    assert_eq!(qemu_pids(&needle), vec![qemu], "no second QEMU");
    match cluster.agent_request(Message::OpStatus).await.unwrap() {
        Message::OpStatusReply { vms, .. } => {
            assert_eq!(vms[0].state, "home (running)", "{:?}", vms[0])
        }
        other => panic!("unexpected reply {other:?}"),
    }
    let (ok, out) = jettison(&cluster.agent_socket, &["start", &vm]);
    assert!(
        !ok && out.contains("already running at home"),
        "jettison start: {out}"
    );
    assert_eq!(qemu_pids(&needle), vec![qemu], "still no second QEMU");

    // The new agent watches the QEMU it took over: killed, it is seen gone,
    // and `jettison start` boots the VM again (a cold boot).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(qemu),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("the old QEMU exits", Duration::from_secs(10), || {
        qemu_pids(&needle).is_empty()
    })
    .await;
    wait_until(
        "the agent sees the QEMU it took over exit",
        Duration::from_secs(10),
        || {
            cluster
                .daemon_log("agent")
                .contains("QEMU exited unexpectedly (taken over")
        },
    )
    .await;
    let (ok, out) = jettison(&cluster.agent_socket, &["start", &vm]);
    assert!(ok, "jettison start: {out}");
    let pids = qemu_pids(&needle);
    assert!(pids.len() == 1 && pids[0] != qemu, "a new QEMU: {pids:?}");
    wait_until("the guest boots again", Duration::from_secs(300), || {
        cluster.console_logs()[0].matches("JTS READY").count() >= 2
    })
    .await;
    let (ok, out) = jettison(&cluster.agent_socket, &["start", &vm]);
    assert!(!ok && out.contains("already running at home"), "{out}");

    // A consolidated VM is not started at home.
    migrate(&cluster).await.unwrap();
    match cluster
        .agent_request(Message::OpStart { vm: vm.clone() })
        .await
    {
        Err(e) => {
            let e = format!("{e:#}");
            assert!(
                e.contains(&format!("{:?}", ErrorCode::WrongState))
                    && e.contains("consolidated on")
                    && e.contains("jettison reintegrate"),
                "{e}"
            );
        }
        Ok(reply) => panic!("a consolidated VM was started: {reply:?}"),
    }
    let at_home = format!("{}/{vm}.", run.display());
    wait_until("the desktop's QEMU quits", Duration::from_secs(10), || {
        qemu_pids(&at_home).is_empty()
    })
    .await;
    // Teardown (the cluster's drop) stops the daemons and kills any QEMU
    // of this run that is left, also when an assertion above failed.
}
