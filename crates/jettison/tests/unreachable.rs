//! The desktop's state server goes away while its VM runs on the server:
//! faulting accesses wait and retry (with a log line), never get a zero page,
//! and carry on once the agent is back.

mod common;

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use jettison_demo::scenario::{digest_server_view, migrate, reintegrate, server_stats};

/// Non-zero pages of the desktop's memory file, spread over the file.
fn nonzero_pages(path: &std::path::Path, want: usize) -> Vec<(u64, Vec<u8>)> {
    let file = std::fs::File::open(path).unwrap();
    let pages = file.metadata().unwrap().len() / 4096;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    // Walk from the top of memory down, where the workload's fill sits and
    // the guest is least likely to have touched yet.
    let mut p = pages - 1;
    while out.len() < want && p > 0 {
        file.read_exact_at(&mut buf, p * 4096).unwrap();
        if buf.iter().any(|&b| b != 0) {
            out.push((p, buf.clone()));
            p = p.saturating_sub(97);
        } else {
            p -= 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_wait_for_an_unreachable_desktop_and_never_see_zeros() {
    let mut cluster = common::ready_cluster(256).await;
    migrate(&cluster).await.unwrap();
    let expected = nonzero_pages(&cluster.mem_path, 32);
    assert_eq!(expected.len(), 32, "the guest filled its memory");

    cluster.kill_agent();
    let lazy = cluster.lazy_file();
    let reader = std::thread::spawn(move || {
        let file = std::fs::File::open(lazy).unwrap();
        let mut got = Vec::new();
        for (p, _) in &expected {
            let mut buf = vec![0u8; 4096];
            file.read_exact_at(&mut buf, p * 4096).unwrap();
            got.push((*p, buf, Instant::now()));
        }
        (expected, got)
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !reader.is_finished(),
        "reads of absent pages must wait while the desktop is unreachable"
    );
    let stats = server_stats(&cluster).await.unwrap();
    assert!(stats.fetch_retries > 0, "{stats:?}");
    assert!(
        cluster.daemon_log("server").contains("retrying in"),
        "the server logs the retries"
    );

    let back = Instant::now();
    cluster.start_agent().unwrap();
    cluster.wait_ready(true).await.unwrap();
    let (expected, got) = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    for ((p, want), (q, have, at)) in expected.iter().zip(&got) {
        assert_eq!(p, q);
        assert!(
            have == want,
            "page {p} differs from the desktop's (zero page: {})",
            have.iter().all(|&b| b == 0)
        );
        let _ = at;
    }
    assert!(
        got.iter().any(|(_, _, at)| *at >= back),
        "some read completed only after the agent came back"
    );

    // The guest carries on, and comes home intact to the restarted agent.
    let hb = common::last_heartbeat(&cluster);
    common::next_heartbeat(&cluster, hb + 2, Duration::from_secs(60)).await;
    let (server_digest, _) = digest_server_view(&cluster).await.unwrap();
    let r = reintegrate(&cluster, true).await.unwrap();
    assert_eq!(r.image_digest.as_deref(), Some(server_digest.as_str()));
    let checks = common::console(&cluster).checks;
    let s = common::checks_after(&cluster, checks, Duration::from_secs(120)).await;
    assert_eq!((s.check_failures, s.corrupt_lines), (0, 0), "{s:?}");
}
