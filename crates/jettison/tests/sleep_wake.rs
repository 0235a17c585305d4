//! The desktop sleeps while its VM is away (emulated power: its agent is
//! frozen), the server wakes it with a real magic packet when the VM needs a
//! page it lacks, and the user's return wakes it and brings the VM home.

mod common;

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use jettison_demo::scenario::{migrate, power_record};
use jettison_demo::ClusterOptions;
use jettison_power_model::{HostState, PrefetchConfig, WakeReason};

/// A cluster with power whose VM is consolidated, once the server has heard
/// that the desktop goes to sleep (the working set is on the server).
async fn consolidated_until_sleep() -> jettison_demo::Cluster {
    let opts = ClusterOptions {
        memory_mib: 256,
        lan: true,
        power: true,
        prefetch: Some(PrefetchConfig::Neighbourhood { pages: 64 }),
        ..ClusterOptions::default()
    };
    let cluster = common::ready_cluster_with(opts).await;
    migrate(&cluster).await.unwrap();
    common::wait_log(
        &cluster,
        "server",
        "desktop goes to sleep",
        1,
        Duration::from_secs(120),
    )
    .await;
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_sleeps_and_is_woken_by_page_misses_and_the_user() {
    let cluster = consolidated_until_sleep().await;
    common::wait_log(
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
    common::wait_log(
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

/// A miss while the desktop is still suspending (it has announced its sleep
/// but is not frozen yet) is served only after a real resume, and the wake
/// it causes is the one that serves it: no fetch is served while suspending,
/// and no second, empty sleep cycle follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_during_the_suspend_is_served_after_the_resume() {
    let cluster = consolidated_until_sleep().await;
    // The suspend takes the profile's 3 s: read now, while it runs.
    let desktop = std::fs::File::open(&cluster.mem_path).unwrap();
    let lazy = std::fs::File::open(cluster.lazy_file()).unwrap();
    let page = (256u64 << 20) / 4096 - 2;
    let (mut want, mut got) = (vec![0u8; 4096], vec![0u8; 4096]);
    desktop.read_exact_at(&mut want, page * 4096).unwrap();
    let read = tokio::task::spawn_blocking(move || {
        lazy.read_exact_at(&mut got, page * 4096).map(|()| got)
    });
    let got = read.await.unwrap().unwrap();
    assert_eq!(got, want, "the page came from the desktop, not zeros");
    let rec = power_record(&cluster).await.unwrap();
    let tl = &rec.timeline;
    let intervals = tl.intervals(rec.now_ms);
    let ours = rec
        .served
        .iter()
        .find(|f| {
            f.file == jettison_wire::FileKind::Memory
                && (f.first_page..f.first_page + f.pages).contains(&page)
        })
        .expect("our page was served");
    let state_at = |t: u64| {
        intervals
            .iter()
            .find(|(_, a, b)| (*a..*b).contains(&t))
            .map(|(s, _, _)| *s)
    };
    for f in &rec.served {
        let s = state_at(f.t_ms);
        assert!(
            !matches!(s, Some(HostState::Suspending | HostState::Asleep)),
            "fetch served at {} ms while {s:?}: {:?}",
            f.t_ms,
            tl.events
        );
    }
    // The first sleep and the wake after it; our fetch served after that
    // wake, and no wake is an empty cycle: each page-miss wake serves a
    // fetch before the desktop sleeps again.
    let suspends: Vec<u64> = tl
        .events
        .iter()
        .filter(|e| e.1 == HostState::Suspending)
        .map(|e| e.0)
        .collect();
    let first = suspends[0];
    let wake = tl
        .wakes
        .iter()
        .find(|w| w.0 > first)
        .expect("a wake after the sleep");
    assert_eq!(wake.1, WakeReason::PageMiss);
    assert!(
        ours.t_ms > wake.0,
        "served at {} ms, woken at {} ms",
        ours.t_ms,
        wake.0
    );
    for w in tl.wakes.iter().filter(|w| w.1 == WakeReason::PageMiss) {
        let next = suspends
            .iter()
            .find(|&&t| t > w.0)
            .copied()
            .unwrap_or(u64::MAX);
        assert!(
            rec.served.iter().any(|f| f.t_ms > w.0 && f.t_ms < next),
            "the wake at {} ms served nothing before the next sleep at {next} ms: {:?}",
            w.0,
            tl.events
        );
    }
}
