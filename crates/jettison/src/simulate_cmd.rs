//! `jettison simulate`: the fleet simulator (crate `jettison-sim`) over a
//! synthetic fleet or a recorded trace, every sleep policy side by side with
//! the offline oracle, plain sleep and full migration.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use jettison_sim::{generate, simulate, PolicySpec, SimConfig, SynthParams};

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
    /// Write the full report here (JSON).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs the simulation and prints a table.
pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
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
        policies: vec![
            PolicySpec::FixedTimeout(60_000),
            PolicySpec::BreakEven,
            PolicySpec::SkiRental(args.seed),
        ],
        ..SimConfig::default()
    };
    let started = std::time::Instant::now();
    let report = simulate(&trace, &config);
    let took = started.elapsed();
    println!(
        "{:<24} {:>9} {:>8} {:>8} {:>8} {:>10}",
        "scheme", "saved %", "10-30m", "30-60m", "1h+", "overnight"
    );
    let rows = report.policies.iter().map(|(n, o)| (n.as_str(), o)).chain([
        ("oracle", &report.oracle),
        ("full migration", &report.full_migration),
        ("plain sleep", &report.plain_sleep),
    ]);
    for (name, o) in rows {
        let b: Vec<String> = o
            .savings_by_idle_bucket
            .values()
            .map(|v| format!("{v:>8.1}"))
            .collect();
        println!("{name:<24} {:>9.1} {}", o.savings_pct, b.join(" "));
    }
    println!("(plain sleep breaks the background applications' network presence; simulated in {took:.2?})");
    if let Some(path) = &args.json {
        jettison_sim::io::save(path, &report)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("report: {}", path.display());
    }
    Ok(())
}
