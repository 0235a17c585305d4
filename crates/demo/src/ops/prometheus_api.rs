//! Prometheus as text and JSON (pure: no I/O): the configuration of a run's
//! own Prometheus, and the answers of its HTTP API (`/api/v1/targets`,
//! `/api/v1/series`, `/api/v1/query`) read into what the run reports.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::{bail, Context};
use serde_json::Value;

/// One daemon's metrics listener, scraped as a job of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    /// The job's name (`jettison-server`, `jettison-agent`).
    pub job: String,
    /// Where Prometheus reaches its `/metrics`.
    pub addr: SocketAddr,
}

/// The configuration file (YAML): every target scraped every `interval_s`
/// seconds (the scrape timeout as long, since a sleeping desktop's agent
/// does not answer), nothing else (no rules, no alerting).
pub fn config_yaml(targets: &[ScrapeTarget], interval_s: u32) -> String {
    let mut s = format!(
        "global:\n  scrape_interval: {interval_s}s\n  scrape_timeout: {interval_s}s\nscrape_configs:\n"
    );
    for t in targets {
        s += &format!(
            "  - job_name: \"{}\"\n    metrics_path: \"/metrics\"\n    static_configs:\n      - targets: [\"{}\"]\n",
            t.job, t.addr
        );
    }
    s
}

/// The `data` of an API answer, or its error (`status` is `error`).
pub fn data(body: &str) -> anyhow::Result<Value> {
    let v: Value = serde_json::from_str(body)
        .with_context(|| format!("not a Prometheus API answer: {body:.200}"))?;
    match v["status"].as_str() {
        Some("success") => Ok(v["data"].clone()),
        Some("error") => bail!(
            "Prometheus API error ({}): {}",
            v["errorType"].as_str().unwrap_or("?"),
            v["error"].as_str().unwrap_or("?")
        ),
        _ => bail!("no status in the Prometheus API answer: {body:.200}"),
    }
}

/// One active target as `/api/v1/targets` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TargetHealth {
    /// Its job.
    pub job: String,
    /// The URL scraped.
    pub url: String,
    /// `up`, `down` or `unknown` (not scraped yet).
    pub health: String,
    /// The last scrape's error, empty if none.
    pub last_error: String,
}

/// The active targets in the `data` of `/api/v1/targets`.
pub fn targets(data: &Value) -> anyhow::Result<Vec<TargetHealth>> {
    let active = data["activeTargets"]
        .as_array()
        .context("no activeTargets in the targets answer")?;
    active
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().map(str::to_owned);
            Ok(TargetHealth {
                job: t["labels"]["job"]
                    .as_str()
                    .or(t["scrapePool"].as_str())
                    .context("a target without a job")?
                    .to_owned(),
                url: s("scrapeUrl").unwrap_or_default(),
                health: s("health").context("a target without health")?,
                last_error: s("lastError").unwrap_or_default(),
            })
        })
        .collect()
}

/// What the `data` of `/api/v1/series` holds: the number of series, per
/// job, and the distinct metric names.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SeriesCount {
    /// Every series.
    pub series: usize,
    /// Series per job.
    pub by_job: BTreeMap<String, usize>,
    /// Distinct metric names (`__name__`).
    pub names: usize,
}

/// Counts the label sets of a series answer.
pub fn count_series(data: &Value) -> anyhow::Result<SeriesCount> {
    let sets = data.as_array().context("a series answer is a list")?;
    let mut names = std::collections::BTreeSet::new();
    let mut by_job = BTreeMap::new();
    for set in sets {
        names.insert(
            set["__name__"]
                .as_str()
                .context("a series without a name")?,
        );
        let job = set["job"].as_str().unwrap_or("").to_owned();
        *by_job.entry(job).or_insert(0) += 1;
    }
    Ok(SeriesCount {
        series: sets.len(),
        by_job,
        names: names.len(),
    })
}

/// An instant vector (the `data` of `/api/v1/query`) as (one label's value,
/// sample value) pairs, e.g. per `job`.
pub fn vector_by(data: &Value, label: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    anyhow::ensure!(
        data["resultType"] == "vector",
        "not an instant vector: {:.200}",
        data.to_string()
    );
    let result = data["result"]
        .as_array()
        .context("a vector without result")?;
    result
        .iter()
        .map(|s| {
            let key = s["metric"][label].as_str().unwrap_or("").to_owned();
            // [ <unix time>, "<value>" ]
            let v = s["value"][1]
                .as_str()
                .context("a sample without a value")?
                .parse::<f64>()
                .context("a sample value that is not a number")?;
            Ok((key, v))
        })
        .collect()
}

/// The one sample of an instant vector (`None` if it is empty, e.g. a
/// series Prometheus never saw).
pub fn single(data: &Value) -> anyhow::Result<Option<f64>> {
    let v = vector_by(data, "__name__")?;
    // Counted on the answer: samples without the label share one key.
    let n = data["result"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(n <= 1, "{n} samples where one was expected");
    Ok(v.into_values().next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_config_scrapes_each_target_as_its_job() {
        let t = [
            ScrapeTarget {
                job: "jettison-server".into(),
                addr: "127.0.0.1:4001".parse().unwrap(),
            },
            ScrapeTarget {
                job: "jettison-agent".into(),
                addr: "127.0.0.1:4002".parse().unwrap(),
            },
        ];
        let y = config_yaml(&t, 2);
        assert!(y.starts_with("global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n"));
        assert!(y.contains(
            "  - job_name: \"jettison-server\"\n    metrics_path: \"/metrics\"\n    static_configs:\n      - targets: [\"127.0.0.1:4001\"]\n"
        ), "{y}");
        assert!(y.contains("job_name: \"jettison-agent\""));
        assert!(y.contains("[\"127.0.0.1:4002\"]"));
        assert_eq!(y.matches("job_name").count(), 2);
    }

    #[test]
    fn an_error_answer_is_an_error_with_its_reason() {
        let e = data(r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad_data") && e.contains("parse error"), "{e}");
        assert!(data("<html>").is_err());
        assert!(data("{}").is_err());
        assert_eq!(
            data(r#"{"status":"success","data":[1]}"#).unwrap(),
            json!([1])
        );
    }

    #[test]
    fn targets_give_job_health_and_error() {
        let d = json!({ "activeTargets": [
            { "labels": { "job": "jettison-server", "instance": "127.0.0.1:1" },
              "scrapePool": "jettison-server", "scrapeUrl": "http://127.0.0.1:1/metrics",
              "lastError": "", "health": "up" },
            { "labels": { "job": "jettison-agent" }, "scrapeUrl": "http://127.0.0.1:2/metrics",
              "lastError": "context deadline exceeded", "health": "down" },
        ], "droppedTargets": [] });
        let t = targets(&d).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].job, "jettison-server");
        assert_eq!(t[0].health, "up");
        assert_eq!(t[1].health, "down");
        assert_eq!(t[1].last_error, "context deadline exceeded");
        assert!(targets(&json!({})).is_err());
        assert!(targets(&json!({ "activeTargets": [{ "labels": {} }] })).is_err());
    }

    #[test]
    fn series_are_counted_per_job_and_name() {
        let d = json!([
            { "__name__": "jettison_tls_refusals_total", "job": "jettison-server", "reason": "not_tls" },
            { "__name__": "jettison_tls_refusals_total", "job": "jettison-agent", "reason": "not_tls" },
            { "__name__": "jettison_server_vms_consolidated", "job": "jettison-server" },
        ]);
        let c = count_series(&d).unwrap();
        assert_eq!(c.series, 3);
        assert_eq!(c.names, 2);
        assert_eq!(c.by_job["jettison-server"], 2);
        assert_eq!(c.by_job["jettison-agent"], 1);
        assert_eq!(count_series(&json!([])).unwrap(), SeriesCount::default());
        assert!(count_series(&json!([{ "job": "x" }])).is_err());
        assert!(count_series(&json!({})).is_err());
    }

    #[test]
    fn vectors_are_read_by_label_and_single_samples_alone() {
        let d = json!({ "resultType": "vector", "result": [
            { "metric": { "job": "jettison-server" }, "value": [1700000000.5, "41"] },
            { "metric": { "job": "jettison-agent" }, "value": [1700000000.5, "2.5"] },
        ]});
        let v = vector_by(&d, "job").unwrap();
        assert_eq!(v["jettison-server"], 41.0);
        assert_eq!(v["jettison-agent"], 2.5);
        assert!(single(&d).is_err(), "two samples are not one");
        let one =
            json!({ "resultType": "vector", "result": [{ "metric": {}, "value": [1, "7"] }] });
        assert_eq!(single(&one).unwrap(), Some(7.0));
        let none = json!({ "resultType": "vector", "result": [] });
        assert_eq!(single(&none).unwrap(), None);
        assert!(vector_by(&json!({ "resultType": "matrix", "result": [] }), "job").is_err());
        let bad =
            json!({ "resultType": "vector", "result": [{ "metric": {}, "value": [1, "x"] }] });
        assert!(single(&bad).is_err());
    }
}
