//! A consolidated VM whose server's disk fills up runs on unharmed (issue
//! 13, capacity): its replicas were allocated whole when it arrived, so the
//! pages it fetches and writes later need no new space. The server's
//! replicas live on a small loop-mounted filesystem, which the test fills
//! with another file while the guest runs there; the guest's own checks
//! pass, and it comes home with the server's view of its memory. A VM that
//! does not fit the disk at all is refused before anything is made.

mod common;

use std::io::Write;
use std::time::Duration;

use jettison_demo::scenario::{digest_server_view, migrate, reintegrate};
use jettison_demo::ClusterOptions;
use jettison_testbed::LoopFs;

/// Fills the filesystem of `dir` with one file until it refuses a byte.
fn fill(dir: &std::path::Path) -> u64 {
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let chunk = vec![0x5a_u8; 1 << 20];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC expected: {e}");
                break;
            }
        }
    }
    let _ = f.sync_all();
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_harms_no_running_vm_and_refuses_new_ones() {
    // Dropped last: after the cluster's daemons are gone.
    let disk = LoopFs::create("full-disk", 400).expect("a loop filesystem (root)");
    let cluster = common::ready_cluster_with(ClusterOptions {
        memory_mib: 256,
        disk_mib: Some(16),
        server_replica_dir: Some(disk.path().to_owned()),
        server_limits: Some("min_free_mib = 8\n".into()),
        ..ClusterOptions::default()
    })
    .await;
    let before = common::next_heartbeat(&cluster, 0, Duration::from_secs(30)).await;
    migrate(&cluster).await.unwrap();
    common::next_heartbeat(&cluster, before + 2, Duration::from_secs(60)).await;

    let filled = fill(disk.path());
    assert!(filled > 0, "the filler took the free space");
    let checks = common::console(&cluster).checks;
    let hb = common::last_heartbeat(&cluster);
    common::next_heartbeat(&cluster, hb + 5, Duration::from_secs(120)).await;
    let summary = common::checks_after(&cluster, checks, Duration::from_secs(180)).await;
    assert_eq!(summary.check_failures, 0, "on a full disk: {summary:?}");
    assert_eq!(summary.corrupt_lines, 0, "on a full disk: {summary:?}");

    let (server_digest, _) = digest_server_view(&cluster).await.unwrap();
    let r = reintegrate(&cluster, true).await.unwrap();
    assert_eq!(r.image_digest.as_deref(), Some(server_digest.as_str()));
    let checks = common::console(&cluster).checks;
    let summary = common::checks_after(&cluster, checks, Duration::from_secs(180)).await;
    assert_eq!(summary.check_failures, 0, "at home: {summary:?}");

    // With the disk still full, the next move is refused, and says why.
    let err = migrate(&cluster).await.unwrap_err().to_string();
    assert!(err.contains("no room"), "{err}");
    let left: Vec<_> = std::fs::read_dir(disk.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "filler" && n != "lost+found")
        .collect();
    assert!(left.is_empty(), "a refused VM left replicas: {left:?}");
    let hb = common::last_heartbeat(&cluster);
    common::next_heartbeat(&cluster, hb, Duration::from_secs(60)).await;
    drop(cluster);
}
