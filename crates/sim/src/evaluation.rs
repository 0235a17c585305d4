//! The delay side of a [`Report`] as text: the headline sentences on delay,
//! the ranking under the delay budget, every combination's delays, and the
//! policies' competitive bounds. Pure string building.

use std::fmt::Write as _;

use jettison_power_model::bound::competitive_bound;
use jettison_power_model::policy::policy_profile;

use crate::report::{Outcome, Report};
use crate::SimConfig;

/// `61.2 % (60.8-61.6)` or `61.2 %` without an interval.
pub fn savings(o: &Outcome) -> String {
    match o.savings_ci95 {
        Some(c) => format!("{:.1} % (95 % CI {:.1}-{:.1})", o.savings_pct, c.lo, c.hi),
        None => format!("{:.1} %", o.savings_pct),
    }
}

/// `p99 0.00 s, 1.2 wakes/idle h`.
fn delay(o: &Outcome) -> String {
    let stall = o
        .stall_ms
        .map_or("-".into(), |s| format!("{:.2} s", s.p99 as f64 / 1000.0));
    format!(
        "p99 stall per miss {stall}, {:.1} wakes per idle hour",
        o.wakes_per_idle_hour
    )
}

/// The page's headline: what partial migration saves (with its
/// interval), the delay it costs, against full migration, and what the
/// comparison rests on (the server share: measured or assumed, and the
/// crossover). `None` without online combinations.
pub fn headline(r: &Report) -> Option<String> {
    let (name, best) = r
        .policies
        .iter()
        .max_by(|a, b| a.1.savings_pct.total_cmp(&b.1.savings_pct))?;
    let fm = &r.full_migration;
    let budget = match r
        .best_under_budget
        .as_ref()
        .and_then(|p| p.combination.as_ref())
    {
        Some(k) => format!("within the delay budget, {k} saves {}", {
            r.policies.get(k).map_or("-".into(), savings)
        }),
        None => "no combination stays within the delay budget".into(),
    };
    let back = fm.return_latency_s.map_or(String::new(), |l| {
        format!(
            ", and its returns keep the desktop unusable for a p50 of {:.0} s and a p99 of {:.0} s",
            l.p50, l.p99
        )
    });
    let share = match (&r.density, r.crossover_partial_vms_per_server) {
        (Some(d), Some(x)) => format!(
            "Which of the two saves more rests on the server share of a partially migrated VM: partial \
             migration saves more once a server holds {x:.1} of them per {} fully migrated ones. Measured \
             here under TCG a server holds {} by the smaller of the memory and CPU ratios, and {:.0} by \
             memory alone (CPU never filling, as with idle guests under KVM, not measured here); \
             these figures use {}.",
            d.vms_per_server,
            (f64::from(d.vms_per_server) * d.measured.ratio(crate::density::Binding::Both)).round(),
            f64::from(d.vms_per_server) * d.measured.memory_ratio(),
            d.partial_vms_per_server,
        ),
        (None, Some(x)) => format!(
            "Which of the two saves more rests on the server share of a partially migrated VM: partial \
             migration saves more once a server holds {x:.1} of them per 30 fully migrated ones; \
             these figures assume 90, unmeasured (`jettison simulate --density` takes a measurement)."
        ),
        _ => String::new(),
    };
    Some(format!(
        "**Headline.** Partial migration ({name}) saves {} of the fleet's energy (desktops, and their VMs' share of the servers) against the \
         desktops left on; its delay: {}, and {budget}. Full migration saves {}{back}. {share} Everything else \
         rests on the synthetic model and the power profile below, each parameter with its source or marked \
         assumed; the sweeps show how far each moves the result.",
        savings(best),
        delay(best),
        savings(fm),
    ))
}

/// The headline sentences on delay, savings with their intervals.
pub fn findings(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((k, o)) = r
        .policies
        .iter()
        .max_by(|a, b| a.1.savings_pct.total_cmp(&b.1.savings_pct))
    {
        out.push(format!(
            "Most energy, whatever the delay: {k}, {}, at {}.",
            savings(o),
            delay(o)
        ));
    }
    if let Some(pick) = &r.best_under_budget {
        let b = pick.budget;
        let within = format!(
            "p99 stall at most {:.1} s and at most {} wakes per idle hour",
            b.stall_p99_ms as f64 / 1000.0,
            b.wakes_per_idle_hour
        );
        match pick.combination.as_ref().and_then(|k| r.policies.get_key_value(k)) {
            Some((k, o)) => out.push(format!(
                "Best within the delay budget ({within}; {} of {} combinations qualify): {k}, {}, at {}.",
                pick.admitted,
                r.policies.len(),
                savings(o),
                delay(o)
            )),
            None => out.push(format!(
                "No combination stays within the delay budget ({within})."
            )),
        }
    }
    let fm = &r.full_migration;
    if let Some(l) = fm.return_latency_s {
        out.push(format!(
            "Full migration saves {}; bringing the VMs home costs a p50 of {:.0} s and a p99 of {:.0} s \
             before the desktop is usable (every morning's returns share one link).",
            savings(fm),
            l.p50,
            l.p99
        ));
    }
    if let Some(x) = r.crossover_partial_vms_per_server {
        // the same basis as `jettison simulate`: the pick, or the best online
        let basis = r
            .best_under_budget
            .as_ref()
            .and_then(|p| p.combination.clone())
            .or_else(|| r.best_online(true).map(|(k, _)| k.to_string()))
            .unwrap_or_default();
        let share = match &r.density {
            Some(d) => format!("The share used here is {}.", d.sentence()),
            None => "The default profile assumes 90, unmeasured.".into(),
        };
        out.push(format!(
            "Partial migration ({basis}) saves as much as full migration at {x:.1} partially migrated VMs \
             per server, against 30 fully migrated ones; below that, full migration saves more. {share}"
        ));
    }
    out
}

fn cell_s(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// The delay sections of the Markdown page.
pub fn markdown(r: &Report, config: &SimConfig) -> String {
    let mut s = String::from("\n## Delay\n\n");
    s += "Every combination's savings (with the 95 % confidence interval over the seeds simulated, \
          when there are several), the stall of each miss (zeros included: a miss served awake waits \
          nothing; one that finds the desktop asleep waits for the resume to end), wakes by a miss per \
          hour of idle periods, and the return latency: from the user's return until the desktop is \
          usable, i.e. its resume (the full resume if asleep, the rest of the devices after a wake for \
          pages with selective resume), then the VM's way home over the server's 1 Gbit/s link \
          (partial: the pages it fetched, an upper bound of the pages it dirtied, and its device \
          state; full: all its memory). Returns from overnight periods share the link as if \
          everyone arrived at 9 am at once, other returns with those of the same minute; a \
          return ends when its group's bytes have crossed (fair sharing). These are modelling \
          assumptions, not measurements.\n\n";
    if let Some(p) = &r.best_under_budget {
        let _ = writeln!(
            s,
            "Budget: p99 stall at most {} ms and at most {} wakes per idle hour (`--budget-stall-p99-ms`, \
             `--budget-wakes-per-hour`).\n",
            p.budget.stall_p99_ms, p.budget.wakes_per_idle_hour
        );
    }
    s += "| combination | saved | stall p50 / p99 / max (s) | wakes per idle h | return p50 / p99 (s) | within budget |\n\
          |---|---|---|---|---|---|\n";
    let admitted = |o: &Outcome| {
        r.best_under_budget
            .as_ref()
            .is_some_and(|p| p.budget.admits(o))
    };
    let rows = r.policies.iter().map(|(k, o)| (k.clone(), o)).chain([
        ("full migration".to_string(), &r.full_migration),
        ("plain sleep".to_string(), &r.plain_sleep),
    ]);
    for (name, o) in rows {
        let stall = o.stall_ms.map_or("-".into(), |x| {
            format!(
                "{:.2} / {:.2} / {:.2}",
                x.p50 as f64 / 1e3,
                x.p99 as f64 / 1e3,
                x.max as f64 / 1e3
            )
        });
        let ret = o.return_latency_s.map_or("-".into(), |l| {
            format!("{} / {}", cell_s(Some(l.p50)), cell_s(Some(l.p99)))
        });
        let ok = if admitted(o) { "yes" } else { "no" };
        let _ = writeln!(
            s,
            "| {name} | {} | {stall} | {:.1} | {ret} | {ok} |",
            savings(o),
            o.wakes_per_idle_hour
        );
    }
    s += &bounds(config);
    s
}

/// The bounds section: each policy's ratio and additive term, with and
/// without selective resume.
fn bounds(config: &SimConfig) -> String {
    let mut s = String::from(
        "\n## Competitive bounds\n\nWhat each policy guarantees in this model, per idle period, \
         against the per-period oracle: `ON <= ratio x OPT + additive`, both above the asleep floor \
         (asleep watts x the period), derived in `crates/power-model/src/bound.rs`. The classic 2 and \
         e/(e-1) assume a decision at any instant and a request served where it comes; with a \
         250 ms tick and misses that wait for the resume, a cycle can spill its resume into the next \
         gaps, which costs the factor `1 + (L_s + L_r) / B*`. Break-even sleeps at once only after \
         two long gaps in a row in the same period, which adds `(1 + tau/B*) / 2` to the timeout's \
         ratio; ski rental's is in expectation. Tested against the oracle over random and adversarial \
         miss sequences (`crates/sim/src/bound_tests.rs`), and the oracle against brute force.\n\n\
         | policy | ratio (full resume) | additive (J) | ratio (selective) | additive (J) |\n|---|---|---|---|---|\n",
    );
    for spec in config.distinct_policies() {
        let mut cells = Vec::new();
        for selective in [false, true] {
            let prof = policy_profile(&config.profile, selective);
            let b = spec.bounded(&prof).and_then(|bp| {
                competitive_bound(&config.profile, selective, config.decision_tick_ms, bp)
            });
            match b {
                Some(b) => {
                    cells.push(format!("{:.2}", b.ratio));
                    cells.push(format!("{:.0}", b.additive_j));
                }
                None => cells.extend(["none".to_string(), "-".to_string()]),
            }
        }
        let _ = writeln!(s, "| {} | {} |", spec.name(), cells.join(" | "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{generate, rank, simulate, PolicySpec, SynthParams};

    #[test]
    fn sections_name_every_combination_and_the_budget() {
        let trace = generate(&SynthParams {
            desktops: 2,
            days: 3,
            ..SynthParams::default()
        });
        let config = SimConfig {
            policies: vec![PolicySpec::BreakEven, PolicySpec::BreakEvenTimeout],
            ..SimConfig::default()
        };
        let mut r = simulate(&trace, &config);
        r.best_under_budget = Some(rank::best_under_budget(&r, rank::DelayBudget::default()));
        let md = markdown(&r, &config);
        for k in [
            "| break-even |",
            "| timeout-at-break-even |",
            "| full migration |",
        ] {
            assert!(md.contains(k), "{k} in {md}");
        }
        assert!(md.contains("Budget: p99 stall at most 1000 ms"));
        assert!(md.contains("## Competitive bounds"));
        let f = findings(&r);
        assert!(f.iter().any(|l| l.starts_with("Most energy")), "{f:?}");
        assert!(f.iter().any(|l| l.contains("delay budget")), "{f:?}");
    }

    #[test]
    fn the_headline_names_savings_delay_and_the_share_it_rests_on() {
        let trace = generate(&SynthParams {
            desktops: 2,
            days: 3,
            ..SynthParams::default()
        });
        let config = SimConfig {
            policies: vec![PolicySpec::BreakEven],
            ..SimConfig::default()
        };
        let mut r = simulate(&trace, &config);
        assert!(headline(&Report::default()).is_none());
        r.crossover_partial_vms_per_server = Some(31.0);
        let assumed = headline(&r).unwrap();
        for k in [
            "saves",
            "p99 stall",
            "Full migration saves",
            "31.0",
            "assume 90, unmeasured",
        ] {
            assert!(assumed.contains(k), "{k} in {assumed}");
        }
        let json = serde_json::json!({"density": {
            "partial": {"mem_mib_per_vm": 100.0, "cpu_pct_per_vm": 4.0},
            "full": {"mem_mib_per_vm": 300.0, "cpu_pct_per_vm": 3.0},
        }});
        r.density = Some(crate::density::DensityUsed {
            source: "d.json".into(),
            measured: crate::density::MeasuredDensity::from_report(&json).unwrap(),
            binding: crate::density::Binding::Both,
            partial_vms_per_server: 23,
            vms_per_server: 30,
        });
        let measured = headline(&r).unwrap();
        assert!(measured.contains("holds 23 by the smaller"), "{measured}");
        assert!(measured.contains("and 90 by memory alone"), "{measured}");
        assert!(!measured.contains("unmeasured"), "{measured}");
    }
}
