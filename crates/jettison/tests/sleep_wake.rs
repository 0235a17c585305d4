//! The desktop sleeps while its VM is away (emulated power: its agent is
//! frozen), the server wakes it with a real magic packet when the VM needs a
//! page it lacks, and the user's return wakes it and brings the VM home.

mod common;

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use jettison_demo::scenario::{migrate, power_record};
use jettison_demo::ClusterOptions;
use jettison_power::{HostState, PrefetchConfig, WakeReason};

async fn wait_log(
    cluster: &jettison_demo::Cluster,
    which: &str,
    needle: &str,
    count: usize,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    while cluster.daemon_log(which).matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "{which} log never said {needle:?} {count} times"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_sleeps_and_is_woken_by_page_misses_and_the_user() {
    let opts = ClusterOptions {
        memory_mib: 256,
        lan: true,
        power: true,
        prefetch: Some(PrefetchConfig::Neighbourhood { pages: 64 }),
        ..ClusterOptions::default()
    };
    let cluster = common::ready_cluster_with(opts).await;
    migrate(&cluster).await.unwrap();

    // Once the working set is on the server, the desktop goes to sleep.
    wait_log(
        &cluster,
        "server",
        "desktop goes to sleep",
        1,
        Duration::from_secs(120),
    )
    .await;
    wait_log(
        &cluster,
        "agent",
        "asleep (frozen)",
        1,
        Duration::from_secs(30),
    )
    .await;

    // A page the server lacks: the read waits for a real wake, then gets the
    // desktop's bytes.
    let desktop = std::fs::File::open(&cluster.mem_path).unwrap();
    let lazy = std::fs::File::open(cluster.lazy_file()).unwrap();
    let page = (256u64 << 20) / 4096 - 1;
    let (mut want, mut got) = (vec![0u8; 4096], vec![0u8; 4096]);
    desktop.read_exact_at(&mut want, page * 4096).unwrap();
    let read = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        lazy.read_exact_at(&mut got, page * 4096)
            .map(|()| (got, started.elapsed()))
    });
    let (got, took) = read.await.unwrap().unwrap();
    assert_eq!(got, want, "the page came from the desktop");
    assert!(
        took >= Duration::from_secs(2),
        "the read waited for the resume ({took:?})"
    );
    wait_log(
        &cluster,
        "server",
        "desktop woke up",
        1,
        Duration::from_secs(10),
    )
    .await;

    // The user comes back: the VM comes home without an operator.
    cluster.user_returns().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let record = loop {
        let r = power_record(&cluster).await.unwrap();
        if !r.reintegrations.is_empty() {
            break r;
        }
        assert!(Instant::now() < deadline, "the VM did not come home");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        record
            .timeline
            .wakes
            .iter()
            .any(|(_, r)| *r == WakeReason::PageMiss),
        "{:?}",
        record.timeline.wakes
    );
    assert!(record
        .timeline
        .events
        .iter()
        .any(|(_, s)| *s == HostState::Asleep));
    // Selective resume (the cluster's default): every page-miss wake
    // resumed the service devices only, every user wake all of them.
    for (t, why) in &record.timeline.wakes {
        let service = record.timeline.service_wakes.contains(t);
        assert_eq!(
            service,
            *why == WakeReason::PageMiss,
            "wake at {t} ms: {why}"
        );
    }
    // No page was ever served by a frozen host.
    let until = record.now_ms;
    let asleep: Vec<(u64, u64)> = record
        .timeline
        .intervals(until)
        .into_iter()
        .filter(|(s, _, _)| *s == HostState::Asleep)
        .map(|(_, a, b)| (a, b))
        .collect();
    assert!(record
        .served
        .iter()
        .all(|f| !asleep.iter().any(|&(a, b)| f.t_ms >= a && f.t_ms < b)));
    let s = common::console(&cluster);
    assert_eq!((s.check_failures, s.corrupt_lines), (0, 0), "{s:?}");
}
