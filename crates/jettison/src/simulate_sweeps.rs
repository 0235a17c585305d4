//! `jettison simulate --sweeps`: the sensitivity sweeps of `jettison-sim`
//! ([`jettison_sim::sweep`]) for the combination the crossover is computed
//! for, and one figure per sweep (a line chart with 95 % intervals).

use std::path::{Path, PathBuf};

use anyhow::Context;
use jettison_plot::{render_lines, LineChart, LinePoint, LineSeries};
use jettison_sim::rank::Ci95;
use jettison_sim::sweep::{Knob, Plan, Sweep};
use jettison_sim::{SimConfig, SynthParams};

/// Runs every sweep of `combination` (a [`SimConfig`] with that one
/// combination) over `seeds` seeds of `params`, telling progress on
/// standard error.
pub fn run(params: &SynthParams, config: SimConfig, combination: &str, seeds: u32) -> Vec<Sweep> {
    let plan = Plan {
        params: params.clone(),
        seeds,
        config,
        combination: combination.to_string(),
        knobs: Knob::all(),
    };
    let started = std::time::Instant::now();
    plan.run(|k| eprintln!("sweeping {} ({:.0?} so far)", k.key(), started.elapsed()))
}

/// The file of `key`'s figure next to `plot`: `<stem>-sweep-<key>.<ext>`.
pub fn plot_path(plot: &Path, key: &str) -> PathBuf {
    let stem = plot
        .file_stem()
        .map_or("simulation".into(), |s| s.to_string_lossy().into_owned());
    let ext = plot
        .extension()
        .map_or("png".into(), |e| e.to_string_lossy().into_owned());
    plot.with_file_name(format!("{stem}-sweep-{key}.{ext}"))
}

fn value_label(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// The figure of one sweep: the combination's and full migration's savings
/// with their intervals, the default's value marked.
pub fn chart(sw: &Sweep) -> LineChart {
    let pt = |c: &Ci95| {
        Some(LinePoint {
            y: c.mean,
            lo: c.lo.min(c.mean),
            hi: c.hi.max(c.mean),
        })
    };
    LineChart {
        title: format!("Energy saved as {} varies (95 % CI over seeds)", sw.key),
        x_label: sw.label.clone(),
        y_label: "% saved over the trace".into(),
        categories: sw.points.iter().map(|p| value_label(p.value)).collect(),
        series: vec![
            LineSeries {
                name: format!("partial: {}", sw.combination),
                points: sw.points.iter().map(|p| pt(&p.savings)).collect(),
            },
            LineSeries {
                name: "full migration".into(),
                points: sw.points.iter().map(|p| pt(&p.full_migration)).collect(),
            },
        ],
        marked: sw.points.iter().position(|p| p.default),
    }
}

/// Draws every sweep's figure next to `plot`; returns (key, file).
pub fn write_plots(sweeps: &[Sweep], plot: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for sw in sweeps {
        let path = plot_path(plot, &sw.key);
        render_lines(&chart(sw), &path, 1200, 650)
            .with_context(|| format!("drawing {}", path.display()))?;
        out.push((sw.key.clone(), path));
    }
    Ok(out)
}
