//! `jettison simulate`: the fleet simulator (crate `jettison-sim`) over a
//! synthetic fleet or a recorded trace, every (sleep policy x prefetch x
//! resume) combination side by side with the offline oracle, plain sleep
//! and full migration.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use jettison_sim::config::DEFAULT_WORKING_SET;
use jettison_sim::{
    generate, simulate, summary, PolicySpec, PowerProfile, PrefetchConfig, SelectiveResume,
    SimConfig, SynthParams,
};

/// Options of `jettison simulate`.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Simulate a synthetic office fleet (documented parameters in jettison-sim's `synth`).
    #[arg(long, conflicts_with = "trace")]
    synthetic: bool,
    /// A recorded fleet trace (JSON) instead.
    #[arg(long)]
    trace: Option<PathBuf>,
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
    let profile = match &args.profile {
        Some(path) => load_profile(path)?,
        None => PowerProfile::default(),
    };
    let prefetch = args
        .prefetch
        .iter()
        .map(|p| parse_prefetch(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let trace = match (&args.trace, args.synthetic) {
        (Some(path), _) => jettison_sim::io::load_trace(path)
            .with_context(|| format!("loading {}", path.display()))?,
        (None, true) => {
            anyhow::ensure!(
                args.desktops > 0 && args.days > 0,
                "--desktops and --days must be at least 1"
            );
            generate(&SynthParams {
                seed: args.seed,
                desktops: args.desktops,
                days: args.days,
                ..SynthParams::default()
            })
        }
        (None, false) => bail!("say what to simulate: --synthetic, or --trace PATH"),
    };
    let config = SimConfig {
        profile,
        policies: vec![
            PolicySpec::FixedTimeout(60_000),
            PolicySpec::BreakEven,
            PolicySpec::SkiRental(args.seed),
        ],
        prefetch,
        selective_resume: match args.selective_resume {
            Resume::Off => SelectiveResume::Off,
            Resume::On => SelectiveResume::On,
            Resume::Both => SelectiveResume::Both,
        },
        ..SimConfig::default()
    };
    let started = std::time::Instant::now();
    let mut report = simulate(&trace, &config);
    report.best_with_equal_share = equal_share(&trace, &config, &report);
    let took = started.elapsed();
    print!("{}", summary::console(&report, args.all));
    println!(
        "(savings against the desktop left on; GiB over the network; plain sleep breaks the background \
         applications' network presence; simulated in {took:.2?})"
    );
    if let Some(path) = &args.markdown {
        let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
        let mut page = summary::markdown(&report, &command);
        if let Some(plot) = &args.plot {
            // Linked by name when the figure sits beside the page.
            let link = if plot.parent() == path.parent() {
                plot.file_name()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| plot.clone())
            } else {
                plot.clone()
            };
            page += &format!(
                "\n![Energy saved by idle-period length]({})\n",
                link.display()
            );
        }
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
        println!("tables: {}", path.display());
    }
    if let Some(path) = &args.plot {
        crate::simulate_plot::write(&report, path)?;
        println!("plot: {}", path.display());
    }
    if let Some(path) = &args.json {
        jettison_sim::io::save(path, &report)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("report: {}", path.display());
    }
    Ok(())
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
    let policy = config.policies.iter().find(|p| p.name() == best.policy)?;
    let prefetch = config
        .prefetch_configs()
        .into_iter()
        .find(|c| jettison_sim::prefetch_name(c) == best.prefetch)?;
    let mut profile = config.profile.clone();
    profile.server.partial_vms_per_server = profile.server.vms_per_server;
    let again = SimConfig {
        profile,
        policies: vec![policy.clone()],
        prefetch: vec![prefetch],
        selective_resume: if best.selective_resume {
            SelectiveResume::On
        } else {
            SelectiveResume::Off
        },
        ..config.clone()
    };
    simulate(trace, &again).policies.into_values().next()
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
