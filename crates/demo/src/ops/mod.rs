//! The operations demo (`jettison-demo --ops`): the tools an administrator
//! already runs, pointed at a run's daemons. A real Prometheus scrapes both
//! daemons' `/metrics` for the whole run (through forwarders from this
//! machine's loopback into the test hosts) and is asked through its HTTP
//! API; a real headless Chromium loads the server's dashboard, takes its
//! screenshot and gives the DOM it built, which is checked against the run.
//! Everything it starts is stopped, and its temporary files removed, when
//! [`Ops`] is dropped, also when the run fails.

pub mod chromium;
pub mod dashboard_page;
pub mod prometheus;
pub mod prometheus_api;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use jettison_testbed::Forwarder;
use serde::Serialize;
use serde_json::Value;

use crate::observe::Daemon;
use crate::Cluster;
use dashboard_page::{Expect, FleetRow};
use prometheus::{Prometheus, SCRAPE_INTERVAL_S};
use prometheus_api::{ScrapeTarget, TargetHealth};

/// The series the report counts.
pub const JETTISON_SERIES: &str = "{__name__=~\"jettison_.+\"}";

/// Prometheus and the forwarders it scrapes through, for one run.
#[derive(Debug)]
pub struct Ops {
    prometheus: Prometheus,
    /// The server's HTTP listener (metrics and dashboard) from here.
    server_http: SocketAddr,
    log_dir: PathBuf,
    /// Dropped after Prometheus (fields drop in order).
    _forwarders: Vec<Forwarder>,
}

/// What the operations demo reports (`ops` in the report).
#[derive(Debug, Clone, Serialize)]
pub struct OpsReport {
    /// The `jettison_*` series Prometheus holds at the end.
    pub metrics_samples: usize,
    /// The dashboard's screenshot.
    pub dashboard_png: String,
    /// What Prometheus saw.
    pub prometheus: PrometheusSeen,
    /// What Chromium showed.
    pub dashboard: DashboardSeen,
}

/// What Prometheus saw of the run.
#[derive(Debug, Clone, Serialize)]
pub struct PrometheusSeen {
    /// Seconds between scrapes.
    pub scrape_interval_s: u32,
    /// Each daemon's target at the end (all up).
    pub targets: Vec<TargetHealth>,
    /// Successful scrapes per job over the run.
    pub successful_scrapes: BTreeMap<String, f64>,
    /// `jettison_*` series per job.
    pub series_by_job: BTreeMap<String, usize>,
    /// Distinct `jettison_*` metric names.
    pub metric_names: usize,
    /// The most VMs consolidated at once, over the run.
    pub vms_consolidated_max: f64,
    /// The server's pages fetched at the end.
    pub pages_fetched: f64,
}

/// What the dashboard showed in Chromium.
#[derive(Debug, Clone, Serialize)]
pub struct DashboardSeen {
    /// The screenshot's size and colours.
    pub screenshot: chromium::Picture,
    /// The fleet table.
    pub fleet: Vec<FleetRow>,
    /// The checks of what the page shows, all passed.
    pub checks_passed: Vec<String>,
}

/// Where Prometheus reaches `daemon`'s listener: through a forwarder into
/// its test host on a LAN, directly on loopback.
fn reach(cluster: &Cluster, daemon: Daemon) -> anyhow::Result<(SocketAddr, Option<Forwarder>)> {
    let at = SocketAddr::from(([127, 0, 0, 1], 0));
    Ok(match cluster.http_forwarder(daemon, at)? {
        Some(f) => (f.local_addr(), Some(f)),
        None => (cluster.metrics_addr(daemon), None),
    })
}

impl Ops {
    /// Checks that Chromium is there, and starts Prometheus scraping both
    /// daemons of `cluster`; logs go to `log_dir`.
    pub async fn start(cluster: &Cluster, log_dir: &Path) -> anyhow::Result<Ops> {
        chromium::locate()?;
        let mut forwarders = Vec::new();
        let mut targets = Vec::new();
        let mut server_http = None;
        for (daemon, job) in [
            (Daemon::Server, "jettison-server"),
            (Daemon::Agent, "jettison-agent"),
        ] {
            let (addr, fwd) = reach(cluster, daemon)?;
            forwarders.extend(fwd);
            targets.push(ScrapeTarget {
                job: job.into(),
                addr,
            });
            if daemon == Daemon::Server {
                server_http = Some(addr);
            }
        }
        let prometheus = Prometheus::start(&targets, &log_dir.join("prometheus.log")).await?;
        Ok(Ops {
            prometheus,
            server_http: server_http.context("no server target")?,
            log_dir: log_dir.to_owned(),
            _forwarders: forwarders,
        })
    }

    /// Prometheus's web interface and API.
    pub fn prometheus_addr(&self) -> SocketAddr {
        self.prometheus.addr()
    }

    /// The run's Prometheus, to ask it more.
    pub fn prometheus(&self) -> &Prometheus {
        &self.prometheus
    }

    /// The dashboard's address from this machine.
    pub fn dashboard_url(&self) -> String {
        format!("http://{}/", self.server_http)
    }

    /// Asks Prometheus what it holds once every daemon was scraped, then
    /// loads the dashboard in Chromium (screenshot into `png`) and checks it
    /// against `expect`. Any failed check is an error naming what was shown.
    pub async fn report(&mut self, expect: &Expect, png: &Path) -> anyhow::Result<OpsReport> {
        let prometheus = self.prometheus_seen().await?;
        let metrics_samples = prometheus.series_by_job.values().sum();
        let url = self.dashboard_url();
        let log = self.log_dir.join("chromium.log");
        chromium::screenshot(&url, png, &log).await?;
        let screenshot = chromium::picture(png)?;
        anyhow::ensure!(
            (screenshot.width, screenshot.height) == chromium::WINDOW,
            "the screenshot is {}x{}, not the window's {:?}",
            screenshot.width,
            screenshot.height,
            chromium::WINDOW
        );
        // Text, tables and a figure use many; an empty page one or two.
        anyhow::ensure!(
            screenshot.colours >= 16,
            "the screenshot {} is blank ({} colours)",
            png.display(),
            screenshot.colours
        );
        let shown = dashboard_page::read(&chromium::dom(&url, &log).await?);
        let checked = dashboard_page::check(&shown, expect);
        if !checked.failed.is_empty() {
            bail!(
                "the dashboard at {url} does not show the run:\n  {}",
                checked.failed.join("\n  ")
            );
        }
        Ok(OpsReport {
            metrics_samples,
            dashboard_png: png.display().to_string(),
            prometheus,
            dashboard: DashboardSeen {
                screenshot,
                fleet: shown.fleet,
                checks_passed: checked.passed,
            },
        })
    }

    async fn prometheus_seen(&mut self) -> anyhow::Result<PrometheusSeen> {
        let p = &mut self.prometheus;
        let (targets, successful_scrapes) = p.wait_scraped(2, Duration::from_secs(90)).await?;
        let series = p.series(JETTISON_SERIES)?;
        for t in &targets {
            anyhow::ensure!(
                series.by_job.get(&t.job).copied().unwrap_or(0) > 0,
                "prometheus holds no jettison_* series of {} ({})",
                t.job,
                t.url
            );
        }
        let vms_consolidated_max = p
            .query("max(max_over_time(jettison_server_vms_consolidated[1d]))")?
            .unwrap_or(0.0);
        anyhow::ensure!(
            vms_consolidated_max >= 1.0,
            "prometheus never saw a VM consolidated on the server"
        );
        let pages_fetched = p
            .query("max(jettison_server_pages_fetched_total)")?
            .unwrap_or(0.0);
        anyhow::ensure!(
            pages_fetched > 0.0,
            "prometheus saw no page fetched by the server"
        );
        Ok(PrometheusSeen {
            scrape_interval_s: SCRAPE_INTERVAL_S,
            targets,
            successful_scrapes,
            series_by_job: series.by_job,
            metric_names: series.names,
            vms_consolidated_max,
            pages_fetched,
        })
    }
}

/// The report's `ops` for the terminal.
pub fn summary(ops: &Value) -> String {
    if let Some(e) = ops["error"].as_str() {
        return format!("ops               FAILED: {e}\n");
    }
    let p = &ops["prometheus"];
    let n = |v: &Value| v.as_f64().unwrap_or(0.0);
    let per_job = |key: &str| -> String {
        p[key]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(job, v)| format!("{job} {}", n(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    format!(
        "ops               Prometheus holds {} jettison_* series ({}; {} metrics), every target up \
         after {} successful scrapes ({} s apart), saw {} VM consolidated\n                  \
         dashboard in Chromium: {} checks passed, screenshot {}\n",
        ops["metrics_samples"],
        per_job("series_by_job"),
        p["metric_names"],
        per_job("successful_scrapes"),
        p["scrape_interval_s"],
        n(&p["vms_consolidated_max"]),
        ops["dashboard"]["checks_passed"]
            .as_array()
            .map_or(0, Vec::len),
        ops["dashboard_png"].as_str().unwrap_or("?"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_summary_gives_the_figures_or_the_failure() {
        let v = json!({
            "metrics_samples": 57,
            "dashboard_png": "/o/dashboard.png",
            "prometheus": {
                "scrape_interval_s": 2,
                "series_by_job": { "jettison-agent": 20, "jettison-server": 37 },
                "successful_scrapes": { "jettison-agent": 80.0, "jettison-server": 95.0 },
                "metric_names": 30,
                "vms_consolidated_max": 1.0,
            },
            "dashboard": { "checks_passed": ["a", "b"] },
        });
        let s = summary(&v);
        assert!(
            s.contains(
                "holds 57 jettison_* series (jettison-agent 20, jettison-server 37; 30 metrics)"
            ),
            "{s}"
        );
        assert!(
            s.contains(
                "after jettison-agent 80, jettison-server 95 successful scrapes (2 s apart)"
            ),
            "{s}"
        );
        assert!(
            s.contains("2 checks passed, screenshot /o/dashboard.png"),
            "{s}"
        );
        let f = summary(&json!({ "error": "prometheus not found" }));
        assert_eq!(f, "ops               FAILED: prometheus not found\n");
    }
}
