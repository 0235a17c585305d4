//! Across test hosts (desktop, server, office peer on one LAN): the guest's
//! chat connection to the peer is the same TCP connection before, during and
//! after both moves, its mail polls go on, and a file it writes to its disk
//! while on the server is at home afterwards.

mod common;

use std::time::Duration;

use jettison_demo::scenario::{migrate, reintegrate};
use jettison_demo::ClusterOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_survive_both_moves_and_disk_writes_come_home() {
    let opts = ClusterOptions {
        memory_mib: 256,
        lan: true,
        disk_mib: Some(32),
        ..ClusterOptions::default()
    };
    let mut cluster = common::ready_cluster_with(opts).await;
    cluster
        .wait_console("JTS NET connected", Duration::from_secs(60))
        .await
        .unwrap();
    cluster
        .wait_console("JTS DISK writes=1 ", Duration::from_secs(60))
        .await
        .unwrap();

    let m = migrate(&cluster).await.unwrap();
    assert!(m.device_state_bytes < 1 << 20);
    // Long enough on the server for heartbeats and at least one disk write.
    let hb = common::last_heartbeat(&cluster);
    common::next_heartbeat(&cluster, hb + 8, Duration::from_secs(90)).await;
    let r = reintegrate(&cluster, false).await.unwrap();
    let disk = r.remote_disk.as_ref().expect("disk counters");
    assert!(
        disk.bytes_fetched > 0 && disk.bytes_fetched < 32 << 20,
        "{disk:?}"
    );
    assert!(
        r.dirty_disk_blocks > 0,
        "the guest wrote to its disk on the server"
    );
    // Wait for a disk write at home, so the guest's last checksum covers
    // the file as it is on the desktop's image.
    let home_writes = || {
        cluster.console_logs()[0]
            .matches("JTS DISK writes=")
            .count()
    };
    let before = home_writes();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while home_writes() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "no disk write at home after the return"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let status = cluster.peer_status().unwrap();
    let me = status
        .clients
        .get(&cluster.vm)
        .expect("the peer knows the guest");
    assert_eq!(
        (me.connections, me.resets),
        (1, 0),
        "one chat connection, never reset: {me:?}"
    );
    assert!(me.connected, "{me:?}");
    assert_eq!(me.hb_lost, 0, "{me:?}");
    assert!(me.max_hb_gap_ms < 10_000, "{me:?}");
    assert!(me.mail_polls >= 2, "{me:?}");

    // The mail cache on the desktop's disk image holds what the guest wrote
    // on the server, and matches the guest's own checksum.
    let logs = cluster.console_logs();
    cluster.stop_daemons();
    let image = cluster.disk_path.clone().unwrap();
    let check = jettison_demo::disk::check(&image, &logs[0], &logs[1]).unwrap();
    assert!(check.writes_on_server > 0, "{check:?}");
    assert!(check.holds_server_writes, "{check:?}");
    assert!(check.checksum_matches, "{check:?}");
}
