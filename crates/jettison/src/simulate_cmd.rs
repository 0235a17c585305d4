//! `jettison simulate`: the fleet simulator (crate `jettison-sim`) over a
//! synthetic fleet or a recorded trace, every (sleep policy x prefetch x
//! resume) combination side by side with the offline oracle, plain sleep
//! and full migration; with `--sweeps`, sensitivity sweeps with 95 %
//! confidence intervals ([`simulate_sweeps`]).

#[path = "simulate_sweeps.rs"]
mod simulate_sweeps;

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use jettison_sim::config::DEFAULT_WORKING_SET;
use jettison_sim::{
    generate, rank, simulate, summary, PolicySpec, PowerProfile, PrefetchConfig, SelectiveResume,
    SimConfig, SynthParams,
};

/// Options of `jettison simulate`.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Simulate a synthetic office fleet (documented parameters in jettison-sim's `synth`).
    #[arg(long, conflicts_with = "trace")]
    synthetic: bool,
    /// A recorded trace instead: a fleet trace (one JSON file), or a
    /// desktop agent's trace files (JSON lines, oldest first; a directory
    /// stands for its files), replayed with every combination and, over
    /// the idle periods, with the agent's own settings against its
    /// recorded timeline.
    #[arg(long, num_args = 1..)]
    trace: Vec<PathBuf>,
    /// Desktops of the synthetic fleet.
    #[arg(long, default_value_t = 100)]
    desktops: u32,
    /// Days of the synthetic fleet (the first is a Monday).
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Seed of the synthetic fleet.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A power profile (TOML, see jettison-power-model's `profile`) instead of the defaults.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Prefetch policies, comma-separated: none, neighbourhood-PAGES,
    /// working-set[-MAX_PAGES-PERIODS], combined-PAGES[-MAX_PAGES-PERIODS]
    /// (working sets default to 8192 pages from 4 periods).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "none,neighbourhood-64,working-set,combined-64"
    )]
    prefetch: Vec<String>,
    /// Wakes that serve pages resume only the CPU, memory and NIC: off, on, or both side by side.
    #[arg(long, value_enum, default_value_t = Resume::Both)]
    selective_resume: Resume,
    /// Print every combination, not the best sleep policy of each prefetch policy and resume.
    #[arg(long)]
    all: bool,
    /// Write the full report here (JSON).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the savings tables and findings, next to the paper's figures, here (Markdown).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Draw the savings by idle-period length here (PNG, or SVG for any other extension).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Draw the energy-against-delay Pareto plot here (PNG, or SVG).
    #[arg(long)]
    pareto: Option<PathBuf>,
    /// Seeds of the synthetic fleet (SEED, SEED+1, ...) behind the 95 %
    /// confidence intervals (Student's t: two seeds give wide ones); the
    /// tables show the first. Each seed adds about a default run's time.
    #[arg(long, default_value_t = 2)]
    seeds: u32,
    /// The delay budget: largest p99 stall of a miss, ms.
    #[arg(long, default_value_t = 1_000)]
    budget_stall_p99_ms: u64,
    /// The delay budget: most wakes by a miss per idle hour.
    #[arg(long, default_value_t = 4.0)]
    budget_wakes_per_hour: f64,
    /// Also sweep the server share, the power profile and the synthetic
    /// model's parameters one at a time, over --sweep-seeds seeds, for the
    /// combination the crossover is computed for (a `sweeps` section in the
    /// JSON and the Markdown; with --plot, one figure per sweep beside it).
    #[arg(long)]
    sweeps: bool,
    /// Seeds of each sweep point (95 % intervals need two or more).
    #[arg(long, default_value_t = 5)]
    sweep_seeds: u32,
    /// Also simulate the hybrid against wake storms: the same combination
    /// as the sweeps, without and with the server's pull of the rest of a
    /// VM's memory, on the synthetic model and with nightly scans, over
    /// --seeds seeds (a `storms` section in the JSON and the Markdown).
    #[arg(long)]
    storms: bool,
    /// The density benchmark's report (`cargo xtask bench --density --json
    /// PATH`): partially migrated VMs per server from its measured ratio to
    /// fully migrated ones, instead of the profile's assumption.
    #[arg(long)]
    density: Option<PathBuf>,
    /// With --density: which server resource fills first. `both`: memory
    /// and CPU together (the smaller ratio; conservative); `memory`: CPU
    /// never fills (idle guests under KVM).
    #[arg(long, value_enum, default_value_t = DensityBinding::Both, requires = "density")]
    density_binding: DensityBinding,
}

/// `--density-binding`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum DensityBinding {
    Both,
    Memory,
}

/// The profile's `partial_vms_per_server` from the density benchmark's
/// report at `path`.
fn apply_density(
    profile: &mut PowerProfile,
    path: &std::path::Path,
    binding: DensityBinding,
) -> anyhow::Result<jettison_sim::density::DensityUsed> {
    use jettison_sim::density::{Binding, DensityUsed, MeasuredDensity};
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the density report {}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let m =
        MeasuredDensity::from_report(&json).with_context(|| format!("in {}", path.display()))?;
    let binding = match binding {
        DensityBinding::Both => Binding::Both,
        DensityBinding::Memory => Binding::Memory,
    };
    let server = &mut profile.server;
    let was = server.partial_vms_per_server;
    server.partial_vms_per_server = m.partial_vms_per_server(server.vms_per_server, binding);
    let used = DensityUsed {
        source: path.display().to_string(),
        measured: m,
        binding,
        partial_vms_per_server: server.partial_vms_per_server,
        vms_per_server: server.vms_per_server,
    };
    eprintln!("server share {} (instead of {was})", used.sentence());
    Ok(used)
}

/// `--selective-resume`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Resume {
    Off,
    On,
    Both,
}

/// Parses a prefetch policy's name as `prefetch_name` writes it.
fn parse_prefetch(text: &str) -> anyhow::Result<PrefetchConfig> {
    let bad = || {
        anyhow::anyhow!(
            "--prefetch {text:?}: use none, neighbourhood-PAGES, working-set[-MAX_PAGES-PERIODS] \
             or combined-PAGES[-MAX_PAGES-PERIODS]"
        )
    };
    let (kind, rest) = match text.trim() {
        "none" => return Ok(PrefetchConfig::None),
        t => ["neighbourhood", "working-set", "combined"]
            .into_iter()
            .find_map(|k| t.strip_prefix(k).map(|r| (k, r)))
            .ok_or_else(bad)?,
    };
    let nums: Vec<u32> = match rest.strip_prefix('-') {
        None if rest.is_empty() => Vec::new(),
        None => return Err(bad()),
        Some(r) => r
            .split('-')
            .map(|n| n.parse().map_err(|_| bad()))
            .collect::<anyhow::Result<_>>()?,
    };
    let (max_pages, periods) = DEFAULT_WORKING_SET;
    let config = match (kind, nums.as_slice()) {
        ("neighbourhood", &[pages]) => PrefetchConfig::Neighbourhood { pages },
        ("working-set", &[]) => PrefetchConfig::WorkingSet { max_pages, periods },
        ("working-set", &[max_pages, periods]) => PrefetchConfig::WorkingSet { max_pages, periods },
        ("combined", &[pages]) => PrefetchConfig::Combined {
            pages,
            max_pages,
            periods,
        },
        ("combined", &[pages, max_pages, periods]) => PrefetchConfig::Combined {
            pages,
            max_pages,
            periods,
        },
        _ => return Err(bad()),
    };
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("--prefetch {text:?}: {e}"))?;
    Ok(config)
}

fn load_profile(path: &std::path::Path) -> anyhow::Result<PowerProfile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the power profile {}", path.display()))?;
    PowerProfile::from_toml(&text).with_context(|| format!("in {}", path.display()))
}

/// Runs the simulation and prints a table.
pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let mut profile = match &args.profile {
        Some(path) => load_profile(path)?,
        None => PowerProfile::default(),
    };
    let density = match &args.density {
        Some(path) => Some(apply_density(&mut profile, path, args.density_binding)?),
        None => None,
    };
    let prefetch = args
        .prefetch
        .iter()
        .map(|p| parse_prefetch(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let params = SynthParams {
        seed: args.seed,
        desktops: args.desktops,
        days: args.days,
        ..SynthParams::default()
    };
    let synth = |seed: u64| {
        generate(&SynthParams {
            seed,
            ..params.clone()
        })
    };
    let mut replay = None;
    let trace = match (args.trace.as_slice(), args.synthetic) {
        ([path], _) if !jettison_sim::trace_files::is_trace_file(path) => {
            jettison_sim::io::load_trace(path)
                .with_context(|| format!("loading {}", path.display()))?
        }
        ([_, ..], _) => {
            let (trace, diff) = load_recorded(&args.trace)?;
            replay = Some(diff);
            trace
        }
        ([], true) => {
            anyhow::ensure!(
                args.desktops > 0 && args.days > 0 && args.seeds > 0 && args.sweep_seeds > 0,
                "--desktops, --days, --seeds and --sweep-seeds must be at least 1"
            );
            synth(args.seed)
        }
        ([], false) => bail!("say what to simulate: --synthetic, or --trace PATH..."),
    };
    anyhow::ensure!(
        !args.sweeps || args.synthetic,
        "--sweeps varies the synthetic fleet's parameters: use it with --synthetic"
    );
    anyhow::ensure!(
        args.budget_wakes_per_hour.is_finite() && args.budget_wakes_per_hour >= 0.0,
        "--budget-wakes-per-hour must be a number of at least 0"
    );
    let config = SimConfig {
        profile,
        policies: vec![
            PolicySpec::FixedTimeout(60_000),
            PolicySpec::BreakEvenTimeout,
            PolicySpec::BreakEven,
            PolicySpec::SkiRental(args.seed),
        ],
        prefetch,
        selective_resume: match args.selective_resume {
            Resume::Off => SelectiveResume::Off,
            Resume::On => SelectiveResume::On,
            Resume::Both => SelectiveResume::Both,
        },
        // the agent's memory copy before a first sleep, for the synthetic VM
        durable_copy_ms: if args.synthetic {
            params.durable_copy_ms()
        } else {
            0
        },
        ..SimConfig::default()
    };
    let started = std::time::Instant::now();
    let mut report = simulate(&trace, &config);
    report.best_with_equal_share = equal_share(&trace, &config, &report);
    report.replay = replay;
    if args.trace.is_empty() && args.seeds > 1 {
        let more: Vec<jettison_sim::Report> = (1..u64::from(args.seeds))
            .map(|i| simulate(&synth(args.seed.wrapping_add(i)), &config))
            .collect();
        let all: Vec<&jettison_sim::Report> = std::iter::once(&report).chain(&more).collect();
        let mut main = report.clone();
        rank::fill_savings_ci95(&mut main, &all);
        report = main;
    }
    let budget = rank::DelayBudget {
        stall_p99_ms: args.budget_stall_p99_ms,
        wakes_per_idle_hour: args.budget_wakes_per_hour,
    };
    let pick = rank::best_under_budget(&report, budget);
    let basis = pick
        .combination
        .as_ref()
        .and_then(|k| report.policies.get_key_value(k))
        .or_else(|| {
            report
                .best_online(true)
                .and_then(|x| report.policies.get_key_value(x.0))
        })
        .map(|(k, o)| (k.clone(), o.clone()));
    report.density = density;
    report.crossover_partial_vms_per_server = basis.as_ref().and_then(|(_, o)| {
        rank::crossover_partial_vms_per_server(
            &report,
            o,
            f64::from(config.profile.server.partial_vms_per_server),
        )
    });
    report.best_under_budget = Some(pick);
    let took = started.elapsed();
    if args.sweeps {
        let (key, o) = basis.as_ref().context("no online combination to sweep")?;
        let one = config_of(&config, o).context("the combination to sweep is not configured")?;
        let started = std::time::Instant::now();
        report.sweeps = Some(simulate_sweeps::run(&params, one, key, args.sweep_seeds));
        eprintln!("sweeps done in {:.0?}", started.elapsed());
    }
    if args.storms {
        anyhow::ensure!(
            args.synthetic,
            "--storms varies the synthetic fleet: use it with --synthetic"
        );
        let (_, o) = basis
            .as_ref()
            .context("no online combination for --storms")?;
        let one = config_of(&config, o).context("the combination is not configured")?;
        let started = std::time::Instant::now();
        let pull = jettison_sim::PullConfig::default();
        report.storms = Some(jettison_sim::storms::evaluate(
            &params, &one, &pull, args.seeds,
        ));
        eprintln!("storms done in {:.0?}", started.elapsed());
    }
    let sweep_plots = match (&report.sweeps, &args.plot) {
        (Some(sweeps), Some(plot)) => simulate_sweeps::write_plots(sweeps, plot)?,
        _ => Vec::new(),
    };
    print!("{}", summary::console(&report, args.all));
    let storms_md = match (&report.storms, &basis) {
        (Some(rows), Some((key, _))) => Some(jettison_sim::storms::markdown(
            rows,
            key,
            &jettison_sim::PullConfig::default(),
            &params,
        )),
        _ => None,
    };
    if let Some(md) = &storms_md {
        print!("{md}");
    }
    if let Some(r) = &report.replay {
        println!("{}", summary::replay_line(r));
    }
    println!(
        "(savings against the desktop left on; GiB over the network; plain sleep breaks the background \
         applications' network presence; simulated in {took:.2?})"
    );
    if let Some(path) = &args.markdown {
        let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
        let mut page = summary::markdown(&report, &command);
        page += &jettison_sim::evaluation::markdown(&report, &config);
        // Linked by name when the figure sits beside the page.
        let link = |plot: &PathBuf| -> PathBuf {
            if plot.parent() == path.parent() {
                plot.file_name()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| plot.clone())
            } else {
                plot.clone()
            }
        };
        if let Some(r) = &report.replay {
            page += &format!("\n{}.\n", summary::replay_line(r));
        }
        if args.trace.is_empty() {
            page += &jettison_sim::model_summary::parameters_markdown(&params);
        }
        if let Some(sweeps) = &report.sweeps {
            let plots = |key: &str| {
                sweep_plots
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, p)| link(p).display().to_string())
            };
            page += &jettison_sim::model_summary::sweeps_markdown(sweeps, &plots);
        }
        if let Some(md) = &storms_md {
            page += md;
        }
        if let Some(plot) = &args.plot {
            page += &format!(
                "\n![Energy saved by idle-period length]({})\n",
                link(plot).display()
            );
        }
        if let Some(plot) = &args.pareto {
            page += &format!(
                "\n![Energy saved against p99 stall per miss]({})\n",
                link(plot).display()
            );
        }
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
        println!("tables: {}", path.display());
    }
    if let Some(path) = &args.plot {
        crate::simulate_plot::write(&report, path)?;
        println!("plot: {}", path.display());
    }
    for (_, path) in &sweep_plots {
        println!("sweep plot: {}", path.display());
    }
    if let Some(path) = &args.pareto {
        crate::simulate_plot::write_pareto(&report, path)?;
        println!("pareto: {}", path.display());
    }
    if let Some(path) = &args.json {
        jettison_sim::io::save(path, &report)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("report: {}", path.display());
    }
    Ok(())
}

/// A desktop agent's trace files: the fleet trace of the run they record
/// and its replay over the idle periods with the agent's settings.
fn load_recorded(
    paths: &[PathBuf],
) -> anyhow::Result<(jettison_sim::FleetTrace, jettison_sim::replay::ReplayDiff)> {
    let read = jettison_sim::trace_files::read_files(paths)?;
    if read.torn_lines > 0 {
        eprintln!(
            "{} torn last line(s) skipped (a write cut short)",
            read.torn_lines
        );
    }
    let run = jettison_sim::recorded::assemble(&read.records).context("the agent's trace files")?;
    if run.settings_changed {
        eprintln!("the agent's settings changed during the trace: replaying the first ones");
    }
    Ok(jettison_sim::replay::replay_run(&run)?)
}

/// The best online combination of `report` simulated again with a
/// partially migrated VM charged a fully migrated one's server share.
fn equal_share(
    trace: &jettison_sim::FleetTrace,
    config: &SimConfig,
    report: &jettison_sim::Report,
) -> Option<jettison_sim::Outcome> {
    let (_, best) = report
        .policies
        .iter()
        .min_by(|a, b| a.1.energy_j.total_cmp(&b.1.energy_j))?;
    let mut again = config_of(config, best)?;
    again.profile.server.partial_vms_per_server = again.profile.server.vms_per_server;
    simulate(trace, &again).policies.into_values().next()
}

/// `config` reduced to the one combination of `o` (its sleep policy,
/// prefetch policy and resume).
fn config_of(config: &SimConfig, o: &jettison_sim::Outcome) -> Option<SimConfig> {
    let policy = config.policies.iter().find(|p| p.name() == o.policy)?;
    let prefetch = config
        .prefetch_configs()
        .into_iter()
        .find(|c| jettison_sim::prefetch_name(c) == o.prefetch)?;
    Some(SimConfig {
        policies: vec![policy.clone()],
        prefetch: vec![prefetch],
        selective_resume: if o.selective_resume {
            SelectiveResume::On
        } else {
            SelectiveResume::Off
        },
        ..config.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jettison_sim::prefetch_name;

    #[test]
    fn prefetch_names_round_trip() {
        for name in [
            "none",
            "neighbourhood-64",
            "working-set",
            "working-set-100-2",
            "combined-8",
            "combined-8-100-2",
        ] {
            assert_eq!(prefetch_name(&parse_prefetch(name).unwrap()), name);
        }
        assert_eq!(
            parse_prefetch("working-set-8192-4").unwrap(),
            parse_prefetch("working-set").unwrap()
        );
        for bad in [
            "",
            "sometimes",
            "neighbourhood",
            "neighbourhood-3",
            "working-set-1-0",
            "none-4",
            "combined-8-1",
        ] {
            assert!(parse_prefetch(bad).is_err(), "{bad}");
        }
    }
}
