//! Figures computed at each scrape from a daemon's live state (the VMs
//! here, a desktop's power timeline), encoded as constant counters and
//! gauges: a [`Snapshot`] registered as a collector calls its closure on
//! every scrape.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// Whether a sample is a counter (only ever grows in the process's life)
/// or a gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Cumulative: encoded with `_total`.
    Counter,
    /// A value now.
    Gauge,
}

/// One sample of a metric family: samples of one family share `name`,
/// `help`, `unit` and `kind`, and come one after the other.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The name without `jettison_`'s prefix rules applied: the full name
    /// less unit and `_total` (e.g. `jettison_agent_asleep`).
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Its unit (`seconds`, `bytes`, `watt_hours`), appended to the name.
    pub unit: Option<&'static str>,
    /// Counter or gauge.
    pub kind: Kind,
    /// Its labels.
    pub labels: Vec<(&'static str, String)>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// A sample without labels.
    pub fn new(
        name: &'static str,
        help: &'static str,
        unit: Option<&'static str>,
        kind: Kind,
        value: f64,
    ) -> Self {
        Sample {
            name,
            help,
            unit,
            kind,
            labels: Vec::new(),
            value,
        }
    }

    /// The same with a label.
    pub fn label(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.labels.push((key, value.into()));
        self
    }
}

type Source = Box<dyn Fn() -> Vec<Sample> + Send + Sync>;

/// A collector whose samples a closure computes at each scrape.
pub struct Snapshot {
    source: Source,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot").finish_non_exhaustive()
    }
}

impl Snapshot {
    /// A collector of the samples `source` returns.
    pub fn new(source: impl Fn() -> Vec<Sample> + Send + Sync + 'static) -> Self {
        Snapshot {
            source: Box::new(source),
        }
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let samples = (self.source)();
        let mut i = 0;
        while i < samples.len() {
            let first = &samples[i];
            let end = samples[i..]
                .iter()
                .position(|s| s.name != first.name)
                .map_or(samples.len(), |n| i + n);
            let unit = first.unit.map(|u| Unit::Other(u.to_owned()));
            let kind = match first.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
            };
            let mut family =
                encoder.encode_descriptor(first.name, first.help, unit.as_ref(), kind)?;
            if end == i + 1 && first.labels.is_empty() {
                // No labels: no `{}` after the name.
                match first.kind {
                    Kind::Counter => ConstCounter::new(first.value.max(0.0)).encode(family)?,
                    Kind::Gauge => ConstGauge::new(first.value).encode(family)?,
                }
                i = end;
                continue;
            }
            for s in &samples[i..end] {
                let labels: Vec<(&str, &str)> =
                    s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let m = family.encode_family(&labels)?;
                match first.kind {
                    Kind::Counter => ConstCounter::new(s.value.max(0.0)).encode(m)?,
                    Kind::Gauge => ConstGauge::new(s.value).encode(m)?,
                }
            }
            i = end;
        }
        Ok(())
    }
}

/// A timeline's wakes counted by the `reason` label both daemons use:
/// `page_miss`, `user_return`, `other`.
pub fn wakes_by_reason(
    wakes: &[(u64, jettison_power_model::WakeReason)],
) -> [(&'static str, usize); 3] {
    use jettison_power_model::WakeReason;
    let mut n = [0usize; 3];
    for (_, r) in wakes {
        n[match r {
            WakeReason::PageMiss => 0,
            WakeReason::UserReturn => 1,
            WakeReason::Other(_) => 2,
        }] += 1;
    }
    [("page_miss", n[0]), ("user_return", n[1]), ("other", n[2])]
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn samples_are_encoded_as_families() {
        let mut r = Registry::default();
        r.register_collector(Box::new(Snapshot::new(|| {
            vec![
                Sample::new(
                    "jettison_agent_asleep",
                    "Time asleep",
                    Some("seconds"),
                    Kind::Counter,
                    12.5,
                ),
                Sample::new("jettison_agent_wakes", "Wakes", None, Kind::Counter, 2.0)
                    .label("reason", "page_miss"),
                Sample::new("jettison_agent_wakes", "Wakes", None, Kind::Counter, 1.0)
                    .label("reason", "user_return"),
                Sample::new(
                    "jettison_server_vms_consolidated",
                    "VMs",
                    None,
                    Kind::Gauge,
                    3.0,
                ),
            ]
        })));
        let text = crate::encode(&r).unwrap();
        for line in [
            "# TYPE jettison_agent_asleep_seconds counter",
            "# UNIT jettison_agent_asleep_seconds seconds",
            "jettison_agent_asleep_seconds_total 12.5",
            "# TYPE jettison_agent_wakes counter",
            "jettison_agent_wakes_total{reason=\"page_miss\"} 2.0",
            "jettison_agent_wakes_total{reason=\"user_return\"} 1.0",
            "# TYPE jettison_server_vms_consolidated gauge",
            "jettison_server_vms_consolidated 3.0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        assert_eq!(
            text.matches("# TYPE jettison_agent_wakes ").count(),
            1,
            "{text}"
        );
    }

    #[test]
    fn wakes_are_counted_by_their_label() {
        use jettison_power_model::WakeReason;
        let wakes = [
            (1, WakeReason::PageMiss),
            (2, WakeReason::PageMiss),
            (3, WakeReason::Other("power button".into())),
        ];
        assert_eq!(
            super::wakes_by_reason(&wakes),
            [("page_miss", 2), ("user_return", 0), ("other", 1)]
        );
    }
}
