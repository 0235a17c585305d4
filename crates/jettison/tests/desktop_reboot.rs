//! A desktop that loses power while its VM is away does not lose the VM
//! (issue 12): before its first sleep the agent copies the VM's memory to
//! its disk; after a reboot (the agent killed while frozen, its `/dev/shm`
//! file gone, a fresh agent) the new agent puts the memory file back, the
//! server's guest goes on fetching from it, and the VM comes home with its
//! checks passing.

mod common;

use std::time::Duration;

use jettison_demo::scenario::{digest_server_view, migrate, reintegrate};
use jettison_demo::ClusterOptions;
use jettison_power_model::PrefetchConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_away_vm_survives_a_reboot_of_its_desktop() {
    let mut cluster = common::ready_cluster_with(ClusterOptions {
        memory_mib: 256,
        lan: true,
        power: true,
        prefetch: Some(PrefetchConfig::Neighbourhood { pages: 64 }),
        ..ClusterOptions::default()
    })
    .await;
    migrate(&cluster).await.unwrap();
    common::wait_log(
        &cluster,
        "agent",
        "memory made durable on disk",
        1,
        Duration::from_secs(120),
    )
    .await;
    common::wait_log(
        &cluster,
        "agent",
        "asleep (frozen)",
        1,
        Duration::from_secs(60),
    )
    .await;
    let want = std::fs::read(&cluster.mem_path).unwrap();

    cluster.reboot_desktop().unwrap();
    cluster.wait_ready(true).await.unwrap();
    common::wait_log(
        &cluster,
        "agent",
        "put back from its durable copy",
        1,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        std::fs::read(&cluster.mem_path).unwrap() == want,
        "the memory file came back as it was"
    );

    // The guest on the server goes on (its fetches are served again), and
    // comes home with the server's view of its memory.
    let hb = common::last_heartbeat(&cluster);
    let checks = common::console(&cluster).checks;
    common::next_heartbeat(&cluster, hb, Duration::from_secs(120)).await;
    let summary = common::checks_after(&cluster, checks, Duration::from_secs(240)).await;
    assert_eq!(summary.check_failures, 0, "{summary:?}");
    let (server_digest, _) = digest_server_view(&cluster).await.unwrap();
    let r = reintegrate(&cluster, true).await.unwrap();
    assert_eq!(r.image_digest.as_deref(), Some(server_digest.as_str()));
    let checks = common::console(&cluster).checks;
    let summary = common::checks_after(&cluster, checks, Duration::from_secs(240)).await;
    assert_eq!(summary.check_failures, 0, "at home: {summary:?}");
}
