//! The daemons' Prometheus metrics and the server's dashboard, scraped
//! over real sockets from real daemons on test hosts while a real guest is
//! consolidated, its desktop sleeps, is woken by a page miss and by its
//! user: the counters move with real fetches, wakes and TLS refusals, and
//! the dashboard shows the fleet row of the VM (also through the demo's
//! forwarder on this machine's loopback).

mod common;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use jettison_demo::observe::{http_get, Daemon, HttpReply};
use jettison_demo::scenario::power_record;
use jettison_demo::{Cluster, ClusterOptions};
use jettison_power_model::PrefetchConfig;

fn scrape(cluster: &Cluster, daemon: Daemon) -> String {
    let r = cluster.http_get(daemon, "/metrics").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        r.content_type
    );
    assert!(r.body.ends_with("# EOF\n"), "{}", r.body);
    r.body
}

/// The value of the sample `series` (name and labels, as encoded), if any.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn must(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("{series} missing in\n{text}"))
}

fn page(cluster: &Cluster, path: &str) -> HttpReply {
    let r = cluster.http_get(Daemon::Server, path).unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_fetches_wakes_and_refusals_and_the_dashboard_shows_the_fleet() {
    let opts = ClusterOptions {
        memory_mib: 256,
        lan: true,
        power: true,
        prefetch: Some(PrefetchConfig::Neighbourhood { pages: 64 }),
        ..ClusterOptions::default()
    };
    let cluster = common::ready_cluster_with(opts).await;
    let lan = cluster.lan().unwrap();

    // Before any move: nothing fetched, an empty fleet.
    let before = scrape(&cluster, Daemon::Server);
    assert_eq!(must(&before, "jettison_server_pages_fetched_total"), 0.0);
    assert_eq!(must(&before, "jettison_server_vms_consolidated"), 0.0);
    assert!(page(&cluster, "/")
        .body
        .contains("no desktop has brought a VM here yet"));

    // A plaintext client on the server's port is refused in the handshake.
    let addr: std::net::SocketAddr = cluster.server_addr.parse().unwrap();
    lan.desktop(0)
        .run_in(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let _ = std::io::Read::read(&mut s, &mut [0u8; 16]);
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while value(
        &scrape(&cluster, Daemon::Server),
        "jettison_tls_refusals_total{reason=\"not_tls\"}",
    ) != Some(1.0)
    {
        assert!(Instant::now() < deadline, "the refusal was not counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    common::migrate_until_asleep(&cluster).await;
    common::wait_log(
        &cluster,
        "agent",
        "asleep (frozen)",
        1,
        Duration::from_secs(30),
    )
    .await;
    let away = scrape(&cluster, Daemon::Server);
    let fetched = must(&away, "jettison_server_pages_fetched_total");
    assert!(fetched > 0.0, "the guest ran on the server");
    assert_eq!(
        must(&away, "jettison_server_fetched_bytes_total"),
        fetched * 4096.0
    );
    assert!(must(&away, "jettison_server_fault_service_seconds_count") > 0.0);
    assert_eq!(must(&away, "jettison_server_vms_consolidated"), 1.0);
    assert_eq!(must(&away, "jettison_server_desktops_asleep"), 1.0);

    // A page the server lacks: a real fetch after a real wake.
    let lazy = std::fs::File::open(cluster.lazy_file()).unwrap();
    let last = (256u64 << 20) / 4096 - 1;
    tokio::task::spawn_blocking(move || lazy.read_exact_at(&mut [0u8; 4096], last * 4096))
        .await
        .unwrap()
        .unwrap();
    let woken = scrape(&cluster, Daemon::Server);
    assert!(
        must(&woken, "jettison_server_pages_fetched_total") > fetched,
        "the miss fetched a page"
    );
    assert!(
        must(
            &woken,
            "jettison_server_desktop_wakes_total{desktop=\"desktop\",cause=\"page_miss\"}"
        ) >= 1.0
    );
    assert!(
        must(
            &woken,
            "jettison_server_fault_service_seconds_bucket{le=\"+Inf\"}"
        ) > must(
            &away,
            "jettison_server_fault_service_seconds_bucket{le=\"+Inf\"}"
        )
    );

    // The dashboard: the fleet row of the VM, its timeline, the JSON.
    let html = page(&cluster, "/").body;
    let row = format!("<td>{}</td><td>server ({})</td>", cluster.vm, "server");
    assert!(html.contains("<td rowspan=\"1\">desktop</td>"), "{html}");
    assert!(html.contains(&row), "{row} missing in {html}");
    assert!(html.contains("src=\"/timeline/desktop\""));
    let json: serde_json::Value =
        serde_json::from_str(&page(&cluster, "/api/dashboard").body).unwrap();
    assert_eq!(json["desktops"][0]["desktop"], "desktop");
    assert_eq!(json["desktops"][0]["vms"][0]["vm"], cluster.vm.as_str());
    assert_eq!(json["desktops"][0]["vms"][0]["runs"], "server");
    assert!(json["faults"].as_u64().unwrap() > 0);
    assert_eq!(json["latency"][0]["vm"], cluster.vm.as_str());
    let svg = page(&cluster, "/timeline/desktop");
    assert_eq!(svg.content_type.as_deref(), Some("image/svg+xml"));
    assert!(
        svg.body.starts_with("<svg") && svg.body.contains("page miss"),
        "{}",
        &svg.body[..200.min(svg.body.len())]
    );
    assert_eq!(
        cluster
            .http_get(Daemon::Server, "/timeline/nobody")
            .unwrap()
            .status,
        404
    );

    // The same page through the demo's forwarder on this machine's loopback.
    let fwd = cluster
        .dashboard_forwarder("127.0.0.1:0".parse().unwrap())
        .unwrap()
        .unwrap();
    let via = http_get(fwd.local_addr(), "/").unwrap();
    assert_eq!(via.status, 200);
    assert!(via.body.contains(&row), "{}", via.body);
    drop(fwd);

    // The user comes back: the VM comes home; the agent, awake, reports
    // its sleep, its wakes by reason and what it served.
    cluster.user_returns().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while power_record(&cluster)
        .await
        .unwrap()
        .reintegrations
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the VM did not come home");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let agent = scrape(&cluster, Daemon::Agent);
    let served = must(&agent, "jettison_agent_pages_served_total");
    assert!(
        served >= must(&woken, "jettison_server_pages_fetched_total"),
        "{agent}"
    );
    assert_eq!(
        must(&agent, "jettison_agent_served_bytes_total"),
        served * 4096.0
    );
    assert!(must(&agent, "jettison_agent_asleep_seconds_total") > 0.0);
    assert!(must(&agent, "jettison_agent_wakes_total{reason=\"page_miss\"}") >= 1.0);
    // The user's return is a wake if it found the desktop asleep, else the
    // rest of a selective resume: the series is there either way.
    assert!(value(&agent, "jettison_agent_wakes_total{reason=\"user_return\"}").is_some());
    assert!(must(&agent, "jettison_agent_energy_used_watt_hours_total") > 0.0);
    assert!(value(&agent, "jettison_agent_energy_saved_watt_hours").is_some());
    assert_eq!(must(&agent, "jettison_agent_vms_away"), 0.0);

    let home = scrape(&cluster, Daemon::Server);
    assert_eq!(must(&home, "jettison_server_vms_consolidated"), 0.0);
    let json: serde_json::Value =
        serde_json::from_str(&page(&cluster, "/api/dashboard").body).unwrap();
    assert_eq!(json["desktops"][0]["vms"][0]["runs"], "home");
    assert!(!json["days"].as_array().unwrap().is_empty());
}
