//! `jettison simulate --plot`: the savings by idle-period length of the
//! best online combinations, the oracle and the baselines, as a grouped bar
//! chart (PNG or SVG by the file's extension).

use std::path::Path;

use anyhow::Context;
use jettison_plot::{render_bars, BarChart, BarSeries};
use jettison_sim::{Bucket, Outcome, Report};

const BUCKETS: [(Bucket, &str); 4] = [
    (Bucket::Short, "10-30 min"),
    (Bucket::Medium, "30-60 min"),
    (Bucket::Long, "over 1 h"),
    (Bucket::Overnight, "overnight"),
];

/// The chart's series: each scheme's savings per idle-period class, then
/// over the whole trace.
pub fn chart(r: &Report) -> BarChart {
    let series = |name: String, o: &Outcome| BarSeries {
        name,
        values: BUCKETS
            .iter()
            .map(|(b, _)| o.savings_by_idle_bucket.get(b).copied().unwrap_or(0.0))
            .chain([o.savings_pct])
            .collect(),
    };
    let mut out = Vec::new();
    for selective in [true, false] {
        if let Some((name, o)) = r.best_online(selective) {
            out.push(series(format!("best: {name}"), o));
        }
    }
    out.push(series("oracle".into(), &r.oracle));
    out.push(series("full migration".into(), &r.full_migration));
    out.push(series("plain sleep (no presence)".into(), &r.plain_sleep));
    BarChart {
        title: "Energy saved against desktops left on, by idle-period length".into(),
        y_label: "% saved".into(),
        groups: BUCKETS
            .iter()
            .map(|(_, n)| (*n).to_string())
            .chain(["whole trace".to_string()])
            .collect(),
        series: out,
    }
}

/// Draws [`chart`] of `r` to `path`.
pub fn write(r: &Report, path: &Path) -> anyhow::Result<()> {
    render_bars(&chart(r), path, 1400, 700).with_context(|| format!("drawing {}", path.display()))
}
