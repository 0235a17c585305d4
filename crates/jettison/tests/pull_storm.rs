//! Against wake storms, on test hosts (real daemons, real QEMU under TCG,
//! emulated power): the guest scans its memory in pieces (one piece every
//! few seconds, `jettison.scan_every_s`), so while its VM is consolidated
//! and its desktop asleep each piece misses pages the server lacks and
//! wakes the desktop. With the server's `[pull]` policy over a budget of one
//! wake, the second wake pulls the rest of the VM's memory; the desktop
//! sleeps again and the scan wakes it no more. The same run without the pull
//! is the comparison. Prints wakes, the scan's delay, and the pull's bytes
//! and duration for both (`--nocapture`).

mod common;

use std::time::{Duration, Instant};

use jettison_agent::power::PowerRecord;
use jettison_demo::scenario::power_record;
use jettison_demo::scenario::server_stats;
use jettison_demo::{Cluster, ClusterOptions};
use jettison_power_model::{HostState, PrefetchConfig, WakeReason};

const MEMORY_MIB: u64 = 256;
/// How long each run watches the consolidated VM after the desktop's first
/// sleep.
const OBSERVE: Duration = Duration::from_secs(180);
const RATE: u64 = 20_000_000;

/// What one run measured.
#[derive(Debug, Default)]
struct Outcome {
    /// Wakes of the desktop the server made while the VM was away.
    wakes: usize,
    /// Sleeps of the desktop while the VM was away.
    sleeps: usize,
    /// Scan pieces while away, and their time (ms): total and longest.
    pieces: usize,
    scan_ms: u64,
    scan_max_ms: u64,
    /// From the server's "pull done" line.
    pulled_bytes: Option<u64>,
    pull_ms: Option<u64>,
    /// Wakes, sleeps and scan pieces when the pull ended.
    at_pull_done: Option<(usize, usize, usize)>,
}

fn options(pull: &str) -> ClusterOptions {
    ClusterOptions {
        memory_mib: MEMORY_MIB,
        lan: true,
        power: true,
        prefetch: Some(PrefetchConfig::Neighbourhood { pages: 64 }),
        guest_args: vec![
            "jettison.scan_every_s=15".into(),
            "jettison.scan_mib=8".into(),
        ],
        server_pull: Some(pull.into()),
        ..ClusterOptions::default()
    }
}

/// `key=<number>` in `line`.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.trim_matches('"').parse().ok())
}

/// The scan pieces printed so far (their ms), over both hosts' consoles.
fn scan_pieces(cluster: &Cluster) -> Vec<u64> {
    cluster
        .console_logs()
        .iter()
        .flat_map(|l| l.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|l| l.contains("JTS SCAN "))
        .filter_map(|l| field(&l, "ms"))
        .collect()
}

/// Runs the VM away for [`OBSERVE`] with the server's `[pull]` body `pull`.
/// The desktop's energy from its first sleep while its VM was away to its
/// user's return, Wh: the user comes back (the agent answers only when
/// awake), and its power record's timeline is metered up to each end.
async fn desktop_wh_away(cluster: &Cluster) -> f64 {
    cluster.user_returns().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // the agent answers once awake, and records the return at its
        // next tick
        if let Some(wh) = power_record(cluster).await.ok().and_then(|r| wh_away(&r)) {
            return wh;
        }
        assert!(
            Instant::now() < deadline,
            "no user return in the power record"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// [`desktop_wh_away`] from one power record, once it shows the return.
fn wh_away(rec: &PowerRecord) -> Option<f64> {
    let t = &rec.timeline;
    let start = t.events.iter().find(|e| e.1 == HostState::Asleep)?.0;
    let end = t
        .wakes
        .iter()
        .rev()
        .find(|w| w.1 == WakeReason::UserReturn && w.0 > start)
        .map(|w| w.0)
        .or_else(|| {
            t.events
                .iter()
                .find(|e| e.0 > start && e.1 == HostState::Active)
                .map(|e| e.0)
        })?;
    let until = |cut: u64| {
        let mut t = t.clone();
        t.events.retain(|e| e.0 <= cut);
        t.wakes.retain(|w| w.0 <= cut);
        t.service_wakes.retain(|&w| w <= cut);
        t.rest_resumes.retain(|&w| w <= cut);
        jettison_power_model::meter(&t, &rec.profile, cut)
            .unwrap()
            .desktop_j
    };
    Some((until(end) - until(start)) / 3600.0)
}

async fn run(pull: &str) -> (Cluster, Outcome) {
    let cluster = common::ready_cluster_with(options(pull)).await;
    common::migrate_until_asleep(&cluster).await;
    let pieces_before = scan_pieces(&cluster).len();
    let started = Instant::now();
    let mut out = Outcome::default();
    while started.elapsed() < OBSERVE {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let log = cluster.daemon_log("server");
        out.wakes = log.matches("desktop woke up").count();
        out.sleeps = log.matches("desktop goes to sleep").count();
        if out.at_pull_done.is_none() {
            if let Some(line) = log.lines().find(|l| l.contains("pull done")) {
                out.pulled_bytes = field(line, "bytes");
                out.pull_ms = field(line, "ms");
                let pieces = scan_pieces(&cluster).len();
                out.at_pull_done = Some((out.wakes, out.sleeps, pieces));
            }
        }
    }
    let pieces: Vec<u64> = scan_pieces(&cluster).split_off(pieces_before);
    out.pieces = pieces.len();
    out.scan_ms = pieces.iter().sum();
    out.scan_max_ms = pieces.iter().copied().max().unwrap_or(0);
    (cluster, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_while_away_is_pulled_once_instead_of_waking_the_desktop_again_and_again() {
    let with = format!(
        "max_wakes = 1\nwindow_ms = 600000\nalways_when_over_budget = true\nrate_bytes_per_s = {RATE}\n"
    );
    let ((cluster, pulled), (plain_cluster, plain)) =
        tokio::join!(run(&with), run("enabled = false\n"));
    for (what, o) in [("with the pull", &pulled), ("without the pull", &plain)] {
        println!(
            "pull storm, {what}: {} wakes and {} sleeps in {} s away; scan: {} pieces, {} ms in all, \
             longest {} ms; pulled {:?} bytes in {:?} ms ({o:?})",
            o.wakes,
            o.sleeps,
            OBSERVE.as_secs(),
            o.pieces,
            o.scan_ms,
            o.scan_max_ms,
            o.pulled_bytes,
            o.pull_ms
        );
    }

    // the pull happened, at the budget's second wake, and is logged
    let log = cluster.daemon_log("server");
    let decision = log
        .lines()
        .find(|l| l.contains("wake storm: pulling"))
        .unwrap_or_else(|| panic!("no pull decision:\n{}", jettison_demo::procs::tail(&log)));
    assert_eq!(field(decision, "wakes"), Some(2), "{decision}");
    let (wakes_then, sleeps_then, pieces_then) = pulled.at_pull_done.expect("the pull ended");
    let bytes = pulled.pulled_bytes.unwrap();
    assert!(bytes > 0 && bytes <= MEMORY_MIB << 20, "{bytes}");

    // every page of the VM is on the server now
    let stats = server_stats(&cluster).await.unwrap();
    let pages = (MEMORY_MIB << 20) / 4096;
    assert!(
        stats.pages_fetched + stats.dirty_pages >= pages,
        "pages absent after the pull: {stats:?}"
    );

    // the desktop slept after the pull, and the scan went on without a wake
    assert!(
        pulled.wakes == wakes_then,
        "woken after the pull: {} wakes then, {} at the end",
        wakes_then,
        pulled.wakes
    );
    assert!(
        scan_pieces(&cluster).len() >= pieces_then + 3,
        "the scan went on for at least three pieces after the pull ({} while away)",
        pulled.pieces
    );
    assert!(
        pulled.sleeps > sleeps_then,
        "the desktop slept again after the pull ({sleeps_then} sleeps then, {} at the end)",
        pulled.sleeps
    );

    // without the pull, the same scan woke the desktop more often
    assert!(
        plain.wakes > pulled.wakes,
        "without the pull {} wakes, with it {}",
        plain.wakes,
        pulled.wakes
    );
    assert!(plain.pulled_bytes.is_none());

    // and cost the desktop more energy (its own, from its recorded
    // timeline; the server's share is not in it): the user comes back to
    // both desktops now
    let (with_wh, without_wh) =
        tokio::join!(desktop_wh_away(&cluster), desktop_wh_away(&plain_cluster));
    println!(
        "pull storm: the desktop used {with_wh:.3} Wh from its first sleep to its user's return with \
         the pull, {without_wh:.3} Wh without"
    );
    assert!(
        with_wh < without_wh,
        "{with_wh} Wh with the pull, {without_wh} without"
    );
}
