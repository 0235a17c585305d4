//! The operations demo's tools on real daemons: a real Prometheus (Debian's
//! `prometheus`, its own configuration, storage and port) scrapes both
//! daemons on their test hosts through forwarders and is asked through its
//! HTTP API, and a real headless Chromium (Debian's `chromium`) loads the
//! server's dashboard while a real guest is consolidated: its screenshot is
//! drawn and its page names the desktop, the VM and where it runs. Neither
//! tool may be missing here: `cargo xtask setup` installs both.

mod common;

use std::collections::BTreeSet;

use jettison_demo::observe::{http_get, Daemon};
use jettison_demo::ops::dashboard_page::Expect;
use jettison_demo::ops::Ops;
use jettison_demo::scenario::migrate;
use jettison_demo::ClusterOptions;

/// The sample names of a scrape, as Prometheus stores them (OpenMetrics'
/// `_created` samples are not kept as series).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .filter(|n| n.starts_with("jettison_") && !n.ends_with("_created"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_both_daemons_and_chromium_shows_the_consolidated_vm() {
    let opts = ClusterOptions {
        memory_mib: 256,
        lan: true,
        ..ClusterOptions::default()
    };
    let cluster = common::ready_cluster_with(opts).await;
    // Dropped before the cluster: Prometheus stops, forwarders close.
    let mut ops = Ops::start(&cluster, &cluster.dir)
        .await
        .expect("the operations tools start (prometheus and chromium installed)");
    let prometheus_addr = ops.prometheus_addr();
    migrate(&cluster).await.unwrap();

    let png = cluster.dir.join("dashboard.png");
    let away = Expect {
        desktop: "desktop".into(),
        vm: cluster.vm.clone(),
        runs: "server (server)".into(),
        // No power backend: the desktop stays awake while its VM is away.
        power: "awake".into(),
        min_faults: 1,
        latency_row: true,
    };
    let r = ops.report(&away, &png).await.unwrap();

    // Prometheus: both targets up, scraped at least twice, series of both.
    let jobs: BTreeSet<&str> = r
        .prometheus
        .targets
        .iter()
        .map(|t| t.job.as_str())
        .collect();
    assert_eq!(
        jobs,
        BTreeSet::from(["jettison-agent", "jettison-server"]),
        "{r:?}"
    );
    assert!(r.prometheus.targets.iter().all(|t| t.health == "up"));
    assert!(r.prometheus.successful_scrapes.values().all(|&n| n >= 2.0));
    assert!(r.prometheus.series_by_job.values().all(|&n| n > 0));
    assert_eq!(
        r.metrics_samples,
        r.prometheus.series_by_job.values().sum::<usize>()
    );
    assert_eq!(r.prometheus.vms_consolidated_max, 1.0);
    assert!(r.prometheus.pages_fetched > 0.0);

    // What Prometheus holds is what the server serves: every sample name of
    // a direct scrape is among its series, and the gauge agrees.
    let direct = cluster.http_get(Daemon::Server, "/metrics").unwrap().body;
    let p = ops.prometheus();
    let held: BTreeSet<String> = p
        .query_by(
            "count by (__name__) ({__name__=~\"jettison_.+\", job=\"jettison-server\"})",
            "__name__",
        )
        .unwrap()
        .into_keys()
        .collect();
    let served = sample_names(&direct);
    assert!(served.len() > 10, "{direct}");
    let missing: Vec<_> = served.difference(&held).collect();
    assert!(missing.is_empty(), "not in Prometheus: {missing:?}");
    assert_eq!(
        p.query("jettison_server_vms_consolidated").unwrap(),
        Some(1.0)
    );

    // Chromium: a drawn screenshot, the page showing the VM on the server.
    assert_eq!(r.dashboard_png, png.display().to_string());
    assert!(png.is_file());
    assert!(r.dashboard.screenshot.colours >= 16, "{r:?}");
    assert!(r.dashboard.checks_passed.len() >= 8, "{r:?}");
    assert!(r
        .dashboard
        .fleet
        .iter()
        .any(|row| row.vm == cluster.vm && row.runs == "server (server)"));

    // A page that does not show what the run expects is a clear failure.
    let home = Expect {
        runs: "home".into(),
        ..away
    };
    let e = format!("{:#}", ops.report(&home, &png).await.unwrap_err());
    assert!(
        e.contains("does not show the run") && e.contains("runs on \"home\""),
        "{e}"
    );

    // Dropping it stops Prometheus.
    drop(ops);
    assert!(
        http_get(prometheus_addr, "/-/ready").is_err(),
        "prometheus still answers"
    );
}
