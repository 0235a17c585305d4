//! The whole round trip on a real 512 MiB guest: device state only out,
//! memory on demand, dirty pages home, memory images equal.

mod common;

use std::time::Duration;

use jettison_demo::scenario::{digest_server_view, migrate, reintegrate, server_stats};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_moves_device_state_out_and_dirty_pages_home() {
    let cluster = common::ready_cluster(512).await;
    let memory = 512u64 << 20;
    let before = common::next_heartbeat(&cluster, 0, Duration::from_secs(30)).await;

    let m = migrate(&cluster).await.unwrap();
    assert!(
        m.device_state_bytes > 0 && m.device_state_bytes < 1 << 20,
        "device state {} bytes",
        m.device_state_bytes
    );
    assert!(
        m.desktop_resident_bytes > memory / 3,
        "the guest filled its memory: {} resident",
        m.desktop_resident_bytes
    );

    // The guest keeps running on the server.
    let on_server = common::next_heartbeat(&cluster, before + 5, Duration::from_secs(60)).await;
    let stats = server_stats(&cluster).await.unwrap();
    assert!(
        stats.pages_fetched > 0,
        "the guest touched memory on the server"
    );
    assert!(
        stats.pages_fetched * 4096 < m.desktop_resident_bytes / 2,
        "fetched {} pages of {} resident bytes",
        stats.pages_fetched,
        m.desktop_resident_bytes
    );

    let (server_digest, _) = digest_server_view(&cluster).await.unwrap();
    let r = reintegrate(&cluster, true).await.unwrap();
    assert_eq!(
        r.image_digest.as_deref(),
        Some(server_digest.as_str()),
        "desktop image differs from the server's view"
    );
    assert!(r.dirty_pages > 0);
    let bound = r.dirty_pages * 4096 + r.device_state_bytes;
    // Framing: a few bytes per page, plus the frame headers and counters.
    assert!(
        r.bytes_sent >= bound && r.bytes_sent <= bound + 16 * r.dirty_pages + 8192,
        "sent {} for bound {bound}",
        r.bytes_sent
    );

    // And keeps running at home (heartbeats, and a full integrity check
    // after the return), with no corruption seen anywhere.
    let checks = common::console(&cluster).checks;
    common::next_heartbeat(&cluster, on_server + 3, Duration::from_secs(60)).await;
    let summary = common::checks_after(&cluster, checks, Duration::from_secs(120)).await;
    assert_eq!(summary.check_failures, 0, "{summary:?}");
    assert_eq!(summary.corrupt_lines, 0, "{summary:?}");
}
