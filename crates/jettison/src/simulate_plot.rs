//! `jettison simulate --plot`: the savings by idle-period length of the
//! best online combinations, the oracle and the baselines, as a grouped bar
//! chart (PNG or SVG by the file's extension).

use std::path::Path;

use anyhow::Context;
use jettison_plot::{render_bars, BarChart, BarSeries};
use jettison_sim::{Bucket, Outcome, Report};

const BUCKETS: [(Bucket, &str); 5] = [
    (Bucket::Brief, "under 10 min"),
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

/// The energy-against-delay plot: every online combination's savings
/// against its p99 stall per miss, the Pareto front (savings, p99 stall,
/// wakes per idle hour) in colour and labelled, the budget's stall limit
/// dashed.
pub fn pareto_chart(r: &Report) -> jettison_plot::ScatterChart {
    let front: Vec<&str> = jettison_sim::rank::pareto_front(r)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let points = r
        .policies
        .iter()
        .filter_map(|(k, o)| {
            let s = o.stall_ms?;
            let on = front.contains(&k.as_str());
            Some(jettison_plot::ScatterPoint {
                label: format!("{k} ({:.1}/h)", o.wakes_per_idle_hour),
                x: s.p99 as f64 / 1000.0,
                y: o.savings_pct,
                front: on,
            })
        })
        .collect();
    jettison_plot::ScatterChart {
        title: "Energy saved against delay (Pareto front in blue, with wakes per idle hour)".into(),
        x_label: "p99 stall per miss (s)".into(),
        y_label: "% saved over the trace".into(),
        points,
        x_limit: r
            .best_under_budget
            .as_ref()
            .map(|b| b.budget.stall_p99_ms as f64 / 1000.0),
    }
}

/// Draws [`pareto_chart`] of `r` to `path`.
pub fn write_pareto(r: &Report, path: &Path) -> anyhow::Result<()> {
    jettison_plot::render_scatter(&pareto_chart(r), path, 1400, 800)
        .with_context(|| format!("drawing {}", path.display()))
}
