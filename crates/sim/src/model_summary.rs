//! The synthetic model's parameters and the sensitivity sweeps as Markdown
//! sections of `docs/simulation.md`. Pure string building.

use std::fmt::Write as _;

use crate::sweep::Sweep;
use crate::SynthParams;

/// The parameter table: every field of [`SynthParams`], its value and its
/// source ([`SynthParams::documented`]).
pub fn parameters_markdown(params: &SynthParams) -> String {
    let mut s = String::from(
        "\n## The synthetic model\n\nEvery parameter of the synthetic fleet, from \
         `SynthParams::documented` (`crates/sim/src/synth_params.rs`, kept in step with the struct by a \
         test). A source is cited only where we read it; \"assumed\" means no published or measured \
         figure stands behind the value. The sweeps below show how much the assumed ones matter.\n\n\
         | parameter | value | meaning | source |\n|---|---|---|---|\n",
    );
    for p in params.documented() {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} |",
            p.name, p.value, p.meaning, p.source
        );
    }
    s
}

fn ci(c: &crate::rank::Ci95) -> String {
    if c.seeds > 1 {
        format!("{:.1} ({:.1}-{:.1})", c.mean, c.lo, c.hi)
    } else {
        format!("{:.1}", c.mean)
    }
}

/// The sweeps section: per sweep, each point's savings of the combination
/// and of full migration with their 95 % intervals, and its delays.
/// `plots` names each sweep's figure (by key), linked when given.
pub fn sweeps_markdown(sweeps: &[Sweep], plots: &dyn Fn(&str) -> Option<String>) -> String {
    let mut s = String::from("\n## Sensitivity\n\n");
    let Some(first) = sweeps.first() else {
        return s + "No sweep was run (`--sweeps`).\n";
    };
    let seeds = first.points.first().map_or(0, |p| p.savings.seeds);
    let _ = writeln!(
        s,
        "One input at a time varies around the defaults; the rest stay put. The combination is \
         {}, the one the crossover is computed for; each point is the mean over {seeds} seeds with its 95 % \
         confidence interval (Student's t), savings over the whole trace against the desktops left on. \
         The default's row is in bold.\n",
        first.combination
    );
    for sw in sweeps {
        let _ = writeln!(s, "### {}\n\nValues: {}.\n", sw.label, sw.source);
        if let Some(x) = &sw.crossover {
            let _ = writeln!(
                s,
                "Partial migration saves as much as full migration at {} partially migrated VMs per server \
                 (95 % CI over the seeds; full migration's VMs: 30 per server).\n",
                ci(x)
            );
        }
        s += "| value | partial saves (%) | full migration saves (%) | wakes per idle h | p99 stall (s) | wasted migrations (% of periods) |\n\
              |---|---|---|---|---|---|\n";
        for p in &sw.points {
            let v = if p.value.fract() == 0.0 {
                format!("{:.0}", p.value)
            } else {
                format!("{}", p.value)
            };
            let v = if p.default { format!("**{v}**") } else { v };
            let _ = writeln!(
                s,
                "| {v} | {} | {} | {:.1} | {:.2} | {:.1} |",
                ci(&p.savings),
                ci(&p.full_migration),
                p.wakes_per_idle_hour,
                p.stall_p99_ms / 1000.0,
                p.wasted_pct
            );
        }
        if let Some(link) = plots(&sw.key) {
            let _ = writeln!(s, "\n![{}]({link})", sw.label);
        }
        s.push('\n');
    }
    s
}
