//! A real Prometheus (Debian's `prometheus`) of a run's own: its own
//! configuration and storage in a temporary directory, its own port on this
//! machine's loopback; started by the run and stopped (its files removed)
//! when dropped, also when the run fails. Never one already running.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use super::prometheus_api::{self, ScrapeTarget, SeriesCount, TargetHealth};
use crate::observe::http_get;
use crate::procs::{spawn_logged, stop_child, tail};

/// Seconds between scrapes.
pub const SCRAPE_INTERVAL_S: u32 = 2;

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
    /// Configuration and TSDB; removed after the process stops.
    dir: Option<tempfile::TempDir>,
}

impl Prometheus {
    /// Starts `prometheus` scraping `targets`, its output in `log`, and
    /// waits until it says it is ready (`/-/ready`).
    pub async fn start(targets: &[ScrapeTarget], log: &Path) -> anyhow::Result<Prometheus> {
        let bin = which::which("prometheus").context(
            "prometheus not found: install the Debian package `prometheus` (`cargo xtask setup` as root)",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("jettison-prometheus-")
            .tempdir()?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            prometheus_api::config_yaml(targets, SCRAPE_INTERVAL_S),
        )?;
        let addr = SocketAddr::from(([127, 0, 0, 1], crate::setup::free_port()?));
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"));
        let child = spawn_logged(cmd, log)?;
        let mut p = Prometheus {
            child: Some(child),
            addr,
            log: log.to_owned(),
            dir: Some(dir),
        };
        p.wait_ready(Duration::from_secs(90)).await?;
        Ok(p)
    }

    /// Where its web interface and API listen.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn exited(&mut self) -> anyhow::Result<()> {
        if let Some(c) = self.child.as_mut() {
            if let Some(status) = c.try_wait()? {
                bail!(
                    "prometheus exited ({status}); its log ({}):\n{}",
                    self.log.display(),
                    tail(&std::fs::read_to_string(&self.log).unwrap_or_default())
                );
            }
        }
        Ok(())
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.exited()?;
            match http_get(self.addr, "/-/ready") {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(_) | Err(_) if Instant::now() < deadline => {}
                Ok(r) => bail!(
                    "prometheus not ready after {timeout:?}: {} {}",
                    r.status,
                    r.body
                ),
                Err(e) => bail!("prometheus not ready after {timeout:?}: {e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// GETs an API path with these query parameters; gives its `data`.
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let r = http_get(self.addr, &format!("{path}?{query}"))?;
        prometheus_api::data(&r.body).with_context(|| format!("GET {path} ({})", r.status))
    }

    /// The active targets and their health.
    pub fn targets(&self) -> anyhow::Result<Vec<TargetHealth>> {
        prometheus_api::targets(&self.api("/api/v1/targets", &[("state", "active")])?)
    }

    /// An instant query, its samples by `label`.
    pub fn query_by(
        &self,
        expr: &str,
        label: &str,
    ) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
        prometheus_api::vector_by(&self.api("/api/v1/query", &[("query", expr)])?, label)
    }

    /// An instant query of one sample (`None`: no sample).
    pub fn query(&self, expr: &str) -> anyhow::Result<Option<f64>> {
        prometheus_api::single(&self.api("/api/v1/query", &[("query", expr)])?)
    }

    /// The series it holds that match `selector`.
    pub fn series(&self, selector: &str) -> anyhow::Result<SeriesCount> {
        prometheus_api::count_series(&self.api("/api/v1/series", &[("match[]", selector)])?)
    }

    /// Waits until every target's last scrape succeeded and each job has
    /// had at least `scrapes` successful scrapes; gives the targets and the
    /// successful scrapes per job. Fails with the targets' errors.
    pub async fn wait_scraped(
        &mut self,
        scrapes: u32,
        timeout: Duration,
    ) -> anyhow::Result<(Vec<TargetHealth>, std::collections::BTreeMap<String, f64>)> {
        let deadline = Instant::now() + timeout;
        loop {
            self.exited()?;
            let targets = self.targets()?;
            // `up` is 1 for each successful scrape, 0 for a failed one.
            let ok = self.query_by("sum by (job) (sum_over_time(up[1d]))", "job")?;
            let all_up = !targets.is_empty() && targets.iter().all(|t| t.health == "up");
            let enough = targets
                .iter()
                .all(|t| ok.get(&t.job).copied().unwrap_or(0.0) >= f64::from(scrapes));
            if all_up && enough {
                return Ok((targets, ok));
            }
            if Instant::now() >= deadline {
                let states: Vec<String> = targets
                    .iter()
                    .map(|t| {
                        format!(
                            "{} at {}: {} ({} successful scrapes){}",
                            t.job,
                            t.url,
                            t.health,
                            ok.get(&t.job).copied().unwrap_or(0.0),
                            if t.last_error.is_empty() {
                                String::new()
                            } else {
                                format!(", last error: {}", t.last_error)
                            }
                        )
                    })
                    .collect();
                bail!(
                    "prometheus did not scrape every daemon {scrapes} times with the last scrape up within {timeout:?}: {}",
                    if states.is_empty() { "no targets".into() } else { states.join("; ") }
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        stop_child(&mut self.child);
        // The TSDB goes once the process that wrote it has stopped.
        drop(self.dir.take());
    }
}
