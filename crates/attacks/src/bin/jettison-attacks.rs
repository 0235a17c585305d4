//! `cargo xtask attacks [--quick] [--strict] --json PATH`: the attack suite
//! on test hosts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use jettison_attacks::run::{self, Options};
use jettison_demo::{Binaries, GuestImage};

/// Attacks a server holding another desktop's VM, as a second desktop and
/// as an unauthenticated host, and reports what each attack achieved.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Fewer flood connections and shorter windows.
    #[arg(long)]
    quick: bool,
    /// Fail when any attack was not refused or left the victim damaged.
    #[arg(long)]
    strict: bool,
    /// Where the JSON report goes.
    #[arg(long, default_value = "target/jettison-attacks/report.json")]
    json: PathBuf,
    /// The wire fuzz test's output to read `fuzz.inputs` and `fuzz.panics` from.
    #[arg(long)]
    fuzz_log: Option<PathBuf>,
    /// Connections the flood holds (default 2,000; 200 with --quick).
    #[arg(long)]
    connections: Option<u32>,
    /// Seconds the flood holds them, and the baseline's length (60; 15).
    #[arg(long)]
    hold_s: Option<u64>,
    /// Accelerator (tcg here; kvm on real hardware).
    #[arg(long, default_value = "tcg")]
    accel: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let out_dir = args
        .json
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let work_root = out_dir.join("runs");
    std::fs::create_dir_all(&work_root)
        .with_context(|| format!("creating {}", work_root.display()))?;
    let (connections, hold, capacity_tries) = Options::sizes(args.quick);
    let opts = Options {
        bins: Binaries::beside_current_exe()?,
        image: GuestImage::locate()?,
        work_root: work_root.canonicalize()?,
        accel: args.accel.clone(),
        quick: args.quick,
        connections: args.connections.unwrap_or(connections),
        hold: args.hold_s.map(Duration::from_secs).unwrap_or(hold),
        capacity_tries,
        fuzz_log: args.fuzz_log.clone(),
    };
    let report = run::run(&opts).await?;
    std::fs::write(&args.json, serde_json::to_string_pretty(&report.to_json())?)?;
    print!("\n{}", report.table());
    println!("report: {}", args.json.display());
    if args.strict {
        let unrefused = report.unrefused();
        let damaged = report.attacks.iter().filter(|r| !r.victim_intact).count();
        anyhow::ensure!(
            unrefused.is_empty() && damaged == 0,
            "{} attacks not refused ({}), {damaged} left the victim damaged",
            unrefused.len(),
            unrefused.join(", ")
        );
    }
    Ok(())
}
