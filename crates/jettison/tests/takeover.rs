//! A restart of the agent stops no guest, on test hosts with real parts:
//! (a) after SIGTERM (`on_stop = "leave"`) and (b) after SIGKILL, the new
//! agent takes over the QEMU running at home (the same process, managed,
//! running, never paused for long: the chat peer sees no reset and no long
//! heartbeat gap, the guest's memory checker no failure), and the VM then
//! migrates and comes home with it; (c) restarted while the VM is away, it
//! serves the server's guest its pages again (no failure) and brings the VM
//! home afterwards.

mod common;

use std::time::{Duration, Instant};

use jettison_demo::procs::qemu_pids;
use jettison_demo::scenario::{migrate, reintegrate, server_stats};
use jettison_demo::{Cluster, ClusterOptions};
use jettison_wire::Message;

/// The agent's word for the VM (`home (running)`, `consolidated`...).
async fn agent_state(cluster: &Cluster) -> String {
    match cluster.agent_request(Message::OpStatus).await.unwrap() {
        Message::OpStatusReply { vms, .. } => vms[0].state.clone(),
        other => panic!("unexpected reply {other:?}"),
    }
}

/// The chat peer's counters for the guest (zeros until it has said hello).
fn chat(cluster: &Cluster) -> jettison_peer::ClientStats {
    cluster
        .peer_status()
        .unwrap()
        .clients
        .get(&cluster.vm)
        .cloned()
        .unwrap_or_default()
}

/// Waits until the guest's chat client has sent a heartbeat after `after`.
async fn chat_heartbeat_after(cluster: &Cluster, after: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = chat(cluster);
        if c.last_hb > after {
            return c.last_hb;
        }
        assert!(
            Instant::now() < deadline,
            "no chat heartbeat after {after}: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Restarts the agent after stopping it with `stop` (SIGTERM or SIGKILL),
/// the guest left without an agent for `gap`; checks that the new agent
/// took over the same QEMU and that the guest kept running and talking.
async fn restart_at_home(cluster: &mut Cluster, how: &str, gap: Duration) {
    let needle = format!("/{}.", cluster.vm);
    let pids = qemu_pids(&needle);
    assert_eq!(pids.len(), 1, "one QEMU for the VM: {pids:?}");
    let hb = chat(cluster).last_hb;
    let checks = common::console(cluster).checks;
    let log_before = cluster.daemon_log("agent").len();
    match how {
        "SIGTERM" => {
            let st = cluster.stop_agent().expect("the agent ran");
            assert!(st.success(), "agent exit on SIGTERM: {st}");
        }
        _ => cluster.kill_agent(),
    }
    tokio::time::sleep(gap).await;
    assert_eq!(
        qemu_pids(&needle),
        pids,
        "the guest outlives the agent ({how})"
    );
    let hb_alone = chat_heartbeat_after(cluster, hb).await;
    let t = Instant::now();
    cluster.start_agent().unwrap();
    cluster.wait_ready(true).await.unwrap();
    let state = agent_state(cluster).await;
    eprintln!(
        "{how}: agent back in {:?}, says {state:?}; chat heartbeat {hb_alone} while it was gone",
        t.elapsed()
    );
    assert_eq!(state, "home (running)", "managed at home after {how}");
    let log = cluster.daemon_log("agent");
    let since = &log[log_before.min(log.len())..];
    assert!(
        since.contains("took over the VM running at home"),
        "{}",
        jettison_demo::procs::tail(since)
    );
    if let Some(line) = since.lines().find(|l| l.contains("QEMU taken over")) {
        eprintln!("{how}: {line}");
    }
    assert_eq!(qemu_pids(&needle), pids, "the same QEMU, no second one");
    // The console is tapped again, the checker runs and finds nothing wrong.
    let s = common::checks_after(cluster, checks, Duration::from_secs(120)).await;
    assert_eq!((s.check_failures, s.corrupt_lines), (0, 0), "{s:?}");
    let c = chat(cluster);
    assert_eq!((c.resets, c.connected, c.hb_lost), (0, true, 0), "{c:?}");
    // A second request sees the same (the take-over is stable), and
    // `jettison start` does not start a second QEMU.
    match cluster
        .agent_request(Message::OpStart {
            vm: cluster.vm.clone(),
        })
        .await
    {
        Err(e) => assert!(
            format!("{e:#}").contains("already running at home"),
            "{e:#}"
        ),
        Ok(r) => panic!("started a running VM: {r:?}"),
    }
    assert_eq!(qemu_pids(&needle), pids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_takes_over_its_guests_and_stops_none() {
    let mut cluster = common::ready_cluster_with(ClusterOptions {
        memory_mib: 256,
        lan: true,
        agent_on_stop: "leave".into(),
        ..ClusterOptions::default()
    })
    .await;
    cluster
        .wait_console("JTS NET connected", Duration::from_secs(60))
        .await
        .unwrap();
    let first = chat(&cluster).last_hb;
    chat_heartbeat_after(&cluster, first + 3).await;
    let gap_at_start = chat(&cluster).max_hb_gap_ms;

    // (a) SIGTERM, (b) SIGKILL: the guest runs on, the new agent takes over.
    restart_at_home(&mut cluster, "SIGTERM", Duration::from_secs(3)).await;
    restart_at_home(&mut cluster, "SIGKILL", Duration::from_secs(3)).await;
    let gap_restarts = chat(&cluster).max_hb_gap_ms;
    eprintln!(
        "longest chat heartbeat gap: {gap_at_start} ms before the restarts, {gap_restarts} ms after both"
    );
    assert!(gap_restarts < 5_000, "the guest paused: {gap_restarts} ms");

    // The adopted QEMU migrates and the VM comes home.
    let m = migrate(&cluster).await.unwrap();
    assert!(m.device_state_bytes < 1 << 20);
    let hb = chat(&cluster).last_hb;
    chat_heartbeat_after(&cluster, hb + 3).await;
    reintegrate(&cluster, false).await.unwrap();
    assert_eq!(agent_state(&cluster).await, "home (running)");

    let gap_round_trip = chat(&cluster).max_hb_gap_ms;

    // (c) Restarted while the VM is away: the server's guest keeps
    // fetching pages, and the VM comes home afterwards.
    migrate(&cluster).await.unwrap();
    let hb = chat(&cluster).last_hb;
    chat_heartbeat_after(&cluster, hb + 3).await;
    let gap_away = chat(&cluster).max_hb_gap_ms;
    let before = server_stats(&cluster).await.unwrap();
    let checks = common::console(&cluster).checks;
    cluster.kill_agent();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.start_agent().unwrap();
    cluster.wait_ready(true).await.unwrap();
    // At start-up the agent checks its away VMs with the server (`busy:
    // checking with the server` meanwhile).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = agent_state(&cluster).await;
        if state == "consolidated" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {state:?} after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let hb = chat(&cluster).last_hb;
    chat_heartbeat_after(&cluster, hb + 5).await;
    let s = common::checks_after(&cluster, checks, Duration::from_secs(120)).await;
    assert_eq!((s.check_failures, s.corrupt_lines), (0, 0), "{s:?}");
    let after = server_stats(&cluster).await.unwrap();
    eprintln!(
        "away across the agent's restart: {} pages fetched before, {} after ({} retries)",
        before.pages_fetched, after.pages_fetched, after.fetch_retries
    );
    assert!(
        after.pages_fetched > before.pages_fetched,
        "the server's guest fetched pages from the restarted agent: {before:?} {after:?}"
    );
    let gap_restart_away = chat(&cluster).max_hb_gap_ms;
    eprintln!(
        "longest chat heartbeat gap: {gap_round_trip} ms after a round trip, {gap_away} ms \
         after the second migration, {gap_restart_away} ms after the agent's restart while away"
    );
    // The gap is a maximum over the whole run: the restart made a longer
    // one only if it grew.
    assert!(
        gap_restart_away == gap_away || gap_restart_away < 5_000,
        "the server's guest stalled across the agent's restart: {gap_restart_away} ms"
    );
    reintegrate(&cluster, false).await.unwrap();
    assert_eq!(agent_state(&cluster).await, "home (running)");
    let c = chat(&cluster);
    eprintln!("chat after everything: {c:?}");
    assert_eq!((c.connections, c.resets, c.hb_lost), (1, 0, 0), "{c:?}");
    let s = common::checks_after(
        &cluster,
        common::console(&cluster).checks,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!((s.check_failures, s.corrupt_lines), (0, 0), "{s:?}");
}
