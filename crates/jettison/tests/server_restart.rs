//! The server restarts under a consolidated VM (issue 12): a planned stop
//! (SIGTERM) checkpoints the guest paused and the next process resumes it
//! with nothing lost; a crash of the server's host (SIGKILL of the daemon
//! and of the guest's QEMU, and the loss of everything its last checkpoint
//! does not cover) rolls the guest back to that checkpoint, memory and disk
//! together. In both, the guest's own checks pass and it comes home with
//! the pages it wrote, after which the server keeps no copy of its memory
//! or disk (no lazy file, replica or checkpoint).

mod common;

use std::time::Duration;

use jettison_demo::procs::{qemu_pids, tail};
use jettison_demo::scenario::{digest_server_view, migrate, reintegrate};
use jettison_demo::{Cluster, ClusterOptions};

/// The `paused_ms` the restarted server logged for its resumed VM.
fn paused_ms(log: &str) -> f64 {
    log.lines()
        .filter(|l| l.contains("resumed from its last checkpoint"))
        .filter_map(|l| l.split("paused_ms=").nth(1))
        .filter_map(|s| s.split_whitespace().next())
        .filter_map(|s| s.parse().ok())
        .next_back()
        .expect("a paused_ms in the server log")
}

/// After the restart: the guest runs on, its checks pass, and it comes home
/// with the server's view of its memory.
async fn runs_on_and_comes_home(cluster: &Cluster) {
    let hb = common::last_heartbeat(cluster);
    let checks = common::console(cluster).checks;
    common::next_heartbeat(cluster, hb, Duration::from_secs(120)).await;
    let summary = common::checks_after(cluster, checks, Duration::from_secs(180)).await;
    assert_eq!(summary.check_failures, 0, "{summary:?}");
    assert_eq!(summary.corrupt_lines, 0, "{summary:?}");
    let checkpoints = cluster
        .dir
        .join("server-state/checkpoints")
        .join(&cluster.vm);
    assert!(
        checkpoints.join("manifest.json").is_file(),
        "a checkpoint on the server"
    );
    let (server_digest, _) = digest_server_view(cluster).await.unwrap();
    let r = reintegrate(cluster, true).await.unwrap();
    assert_eq!(r.image_digest.as_deref(), Some(server_digest.as_str()));
    nothing_left_on_the_server(cluster).await;
    let checks = common::console(cluster).checks;
    let summary = common::checks_after(cluster, checks, Duration::from_secs(180)).await;
    assert_eq!(summary.check_failures, 0, "at home: {summary:?}");
}

/// The server's QEMU of `vm` runs as a user of its own (not root), under
/// QEMU's sandbox (a seccomp filter), in a mount namespace of its own.
fn server_qemu_is_confined(vm: &str) {
    let pids = qemu_pids(&format!("server-run/{vm}/"));
    assert_eq!(pids.len(), 1, "one server QEMU of {vm}: {pids:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", pids[0])).unwrap();
    let field = |name: &str| -> Vec<u32> {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let uids = field("Uid:");
    assert!(
        uids.iter().all(|&u| u != 0),
        "server QEMU runs as root: {uids:?}"
    );
    assert_eq!(field("Seccomp:"), [2], "server QEMU without its sandbox");
    assert!(field("Groups:").is_empty(), "server QEMU kept groups");
    // In a mount namespace of its own: not the host's /etc.
    let root = std::path::PathBuf::from(format!("/proc/{}/root", pids[0]));
    assert!(root.join("usr").is_dir() && !root.join("etc").exists());
}

/// Once the VM is home, the server keeps no copy of its memory or disk:
/// no lazy file, no replica, no checkpoint.
async fn nothing_left_on_the_server(cluster: &Cluster) {
    let vm = &cluster.vm;
    let copies = [
        cluster.mount_dir.join(format!("{vm}.mem")),
        cluster.mount_dir.join(format!("{vm}.disk.mem")),
        cluster.dir.join("replica").join(format!("{vm}.replica")),
        cluster
            .dir
            .join("replica")
            .join(format!("{vm}.disk.replica")),
        cluster.dir.join("server-state/checkpoints").join(vm),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<_> = copies.iter().filter(|p| p.exists()).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left on the server once the VM is home: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_restart_of_the_server_resumes_the_guest() {
    let mut cluster = common::ready_cluster_with(ClusterOptions {
        memory_mib: 256,
        disk_mib: Some(16),
        ..ClusterOptions::default()
    })
    .await;
    let before = common::next_heartbeat(&cluster, 0, Duration::from_secs(30)).await;
    migrate(&cluster).await.unwrap();
    common::next_heartbeat(&cluster, before + 3, Duration::from_secs(60)).await;
    server_qemu_is_confined(&cluster.vm);

    let status = cluster.stop_server().expect("the server was running");
    assert!(status.success(), "server exit on SIGTERM: {status}");
    let log = cluster.daemon_log("server");
    assert!(
        log.contains("checkpointed and paused"),
        "server log:\n{}",
        tail(&log)
    );
    let vm = cluster.vm.clone();
    assert!(
        qemu_pids(&format!("server-run/{vm}/")).is_empty(),
        "the stopped server's QEMU quit"
    );
    cluster.start_server().unwrap();
    cluster.wait_ready(false).await.unwrap();
    common::wait_log(
        &cluster,
        "server",
        "resumed from its last checkpoint",
        1,
        Duration::from_secs(60),
    )
    .await;
    let pause = paused_ms(&cluster.daemon_log("server"));
    eprintln!("the guest stood still {pause:.0} ms across the planned restart");
    runs_on_and_comes_home(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_crash_rolls_the_guest_back_to_its_last_checkpoint() {
    let mut cluster = common::ready_cluster_with(ClusterOptions {
        memory_mib: 256,
        disk_mib: Some(16),
        checkpoint_interval_s: Some(5),
        ..ClusterOptions::default()
    })
    .await;
    let before = common::next_heartbeat(&cluster, 0, Duration::from_secs(30)).await;
    migrate(&cluster).await.unwrap();
    common::wait_log(
        &cluster,
        "server",
        "why=\"periodic\"",
        1,
        Duration::from_secs(120),
    )
    .await;
    // The host crashes: every process of the server host dies, and what the
    // last complete checkpoint does not cover is gone (the replicas).
    let vm = cluster.vm.clone();
    cluster.kill_server();
    for pid in qemu_pids(&format!("server-run/{vm}/")) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let replicas = cluster.dir.join("replica");
    for entry in std::fs::read_dir(&replicas).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let hb_at_crash = common::last_heartbeat(&cluster);
    cluster.start_server().unwrap();
    cluster.wait_ready(false).await.unwrap();
    common::wait_log(
        &cluster,
        "server",
        "resumed from its last checkpoint",
        1,
        Duration::from_secs(60),
    )
    .await;
    let lost = paused_ms(&cluster.daemon_log("server"));
    eprintln!(
        "rolled back: {lost:.0} ms between the checkpoint and the resume (heartbeat {before} at \
         migration, {hb_at_crash} at the crash)"
    );
    runs_on_and_comes_home(&cluster).await;
}
