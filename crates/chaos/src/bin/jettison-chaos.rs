//! `cargo xtask chaos [--quick] --json PATH`: the crash matrix of the
//! handover on real test hosts.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use jettison_chaos::{cases, report, restarts, run};
use jettison_demo::{Binaries, GuestImage};

/// Runs real migrations and reintegrations with a fault injected at each
/// persisted step or message, and reports how each ended.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Only the quick subset (every fault once).
    #[arg(long)]
    quick: bool,
    /// Only the cases whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Where the JSON report goes.
    #[arg(long, default_value = "target/jettison-chaos/report.json")]
    json: PathBuf,
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
    let setup = run::Setup {
        bins: Binaries::beside_current_exe()?,
        image: GuestImage::locate()?,
        work_root: work_root.canonicalize()?,
        accel: args.accel.clone(),
    };
    let matches = |name: &str| args.only.as_ref().is_none_or(|o| name.contains(o.as_str()));
    let handovers: Vec<_> = cases::select(args.quick)
        .into_iter()
        .filter(|c| matches(c.name))
        .collect();
    let restart_cases: Vec<_> = restarts::select(args.quick)
        .into_iter()
        .filter(|c| matches(c.name))
        .collect();
    let total = handovers.len() + restart_cases.len();
    anyhow::ensure!(total > 0, "no case matches {:?}", args.only);
    println!(
        "jettison chaos: {total} cases, logs in {}",
        work_root.display()
    );
    let mut outcomes = Vec::new();
    for case in &handovers {
        println!(
            "  [{}/{total}] {} ({:?} during {:?} at {})",
            outcomes.len() + 1,
            case.name,
            case.fault,
            case.op,
            case.step
        );
        let o = run::run_case(&setup, case).await;
        print_outcome(&o);
        outcomes.push(o);
    }
    for case in &restart_cases {
        println!(
            "  [{}/{total}] {} ({:?} while consolidated)",
            outcomes.len() + 1,
            case.name,
            case.fault
        );
        let o = restarts::run_case(&setup, case).await;
        print_outcome(&o);
        outcomes.push(o);
    }
    let value = report::build(&outcomes, args.quick);
    std::fs::write(&args.json, serde_json::to_string_pretty(&value)?)?;
    print!("\n{}", report::summary(&outcomes));
    println!("report: {}", args.json.display());
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    anyhow::ensure!(failed == 0, "{failed} of {} cases failed", outcomes.len());
    Ok(())
}

fn print_outcome(o: &run::Outcome) {
    println!(
        "        {}: {} copies running, rolled back {}, disk writes lost {}/{}, {:.0} s {}",
        if o.passed { "ok" } else { "FAILED" },
        o.copies_running,
        o.rolled_back,
        o.disk_writes_lost
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into()),
        o.disk_writes_checked,
        o.seconds,
        o.detail
    );
}
