//! `cargo xtask demo`: the whole story, with a summary and a JSON report.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use jettison_demo::{report, round_trip, Binaries, Cluster, ClusterOptions, GuestImage, Phases};

/// Boots a guest on a desktop agent, migrates it partially to a consolidation
/// server, lets it run there on memory fetched on demand, brings it home with
/// its dirty pages, and reports what was measured.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512)]
    memory_mib: u64,
    /// Share of guest memory the workload fills with data, percent.
    #[arg(long, default_value_t = 50)]
    fill_pct: u32,
    /// Seconds at home before migrating.
    #[arg(long, default_value_t = 5)]
    home_s: u64,
    /// Seconds on the server.
    #[arg(long, default_value_t = 120)]
    remote_s: u64,
    /// Seconds at home after reintegration.
    #[arg(long, default_value_t = 5)]
    after_s: u64,
    /// Accelerator (tcg here; kvm on real hardware).
    #[arg(long, default_value = "tcg")]
    accel: String,
    /// Pages fetched per miss on the server (neighbourhood prefetch); default:
    /// 64 when the desktop sleeps (fewer wakes), 1 otherwise.
    #[arg(long)]
    fetch_pages: Option<u32>,
    /// Where the report and the run's logs go.
    #[arg(long, default_value = "target/jettison-demo")]
    out: PathBuf,
    /// Run both daemons on loopback instead of separate test hosts (no NIC,
    /// no office services).
    #[arg(long)]
    loopback: bool,
    /// Size of the VM's disk image in MiB (0: no disk).
    #[arg(long, default_value_t = 64)]
    disk_mib: u64,
    /// Skip the memory-image comparison (and the pause on the server it
    /// takes), e.g. to measure presence without that pause.
    #[arg(long)]
    no_verify: bool,
    /// Keep the desktop awake while its VM is away (no power backend); the
    /// operator then brings the VM home instead of the user's return.
    #[arg(long)]
    no_sleep: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let image = GuestImage::locate()?;
    let bins = Binaries::beside_current_exe()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let out = args.out.canonicalize()?;
    let runs = out.join("runs");
    std::fs::create_dir_all(&runs)?;
    let opts = ClusterOptions {
        memory_mib: args.memory_mib,
        fill_pct: args.fill_pct,
        accel: args.accel.clone(),
        fetch_pages: args
            .fetch_pages
            .unwrap_or(if args.loopback || args.no_sleep {
                1
            } else {
                64
            }),
        work_root: runs,
        keep: true,
        lan: !args.loopback,
        disk_mib: (args.disk_mib > 0).then_some(args.disk_mib),
        power: !args.loopback && !args.no_sleep,
        // The user stops typing when the agent starts; the guest boots
        // meanwhile, then runs at home for about `home_s`.
        away_after_s: Some(20 + args.home_s),
        ..ClusterOptions::default()
    };
    let phases = Phases {
        home: Duration::from_secs(args.home_s),
        remote: Duration::from_secs(args.remote_s),
        after: Duration::from_secs(args.after_s),
        verify: !args.no_verify,
        user_return: !args.loopback && !args.no_sleep,
        ..Phases::default()
    };
    println!(
        "jettison demo: {} MiB guest under {}, logs in {}",
        args.memory_mib,
        args.accel,
        out.join("runs").display()
    );
    let mut cluster = Cluster::start(&bins, &image, &opts).await?;
    let hosts = if opts.lan {
        "desktop, server and office hosts"
    } else {
        "desktop agent and server (loopback)"
    };
    println!("  {hosts} up (run {})", cluster.vm);
    let progress = |msg: &str| println!("  .. {msg}");
    let rt = round_trip(&cluster, &phases, &progress).await?;
    let run_dir = cluster.dir.clone();
    cluster.stop_daemons();
    let disk = match &cluster.disk_path {
        Some(image) => {
            let logs = cluster.console_logs();
            Some(jettison_demo::disk::check(
                image,
                &lines_after(&logs[0], rt.inspection.1),
                &logs[1],
            )?)
        }
        None => None,
    };
    drop(cluster);
    // Every connection between the hosts is mutual TLS (the daemons refuse to start without it).
    let mut value = report::build(&opts, &rt, disk.as_ref(), true);
    if let Some(rec) = &rt.power {
        let (power, energy) = jettison_demo::power_report::build(rec, &out.join("timeline.png"))?;
        value["power"] = power;
        value["energy"] = energy;
    }
    let path = out.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&value)?)?;
    println!("\n{}", report::summary(&value));
    println!("report: {}\nlogs:   {}", path.display(), run_dir.display());
    anyhow::ensure!(
        args.no_verify || value["integrity"]["images_equal"] == true,
        "memory images differ across reintegration"
    );
    anyhow::ensure!(
        value["integrity"]["guest_check_failures"] == 0,
        "the guest's integrity checker reported failures"
    );
    if let Some(d) = &disk {
        anyhow::ensure!(
            d.checksum_matches && d.holds_server_writes,
            "the mail cache at home does not match: {d:?}"
        );
    }
    if let Some(p) = &rt.presence {
        anyhow::ensure!(
            p.resets == 0 && p.connections == 1,
            "the chat connection did not survive: {p:?}"
        );
    }
    if let Some(p) = value.get("power") {
        anyhow::ensure!(
            p["fetches_while_asleep"] == 0,
            "a page was served by a sleeping desktop"
        );
    }
    Ok(())
}

/// The console lines logged after host time `ms`.
fn lines_after(log: &str, ms: u64) -> String {
    log.lines()
        .filter(|l| {
            l.split(' ')
                .next()
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|t| t > ms)
        })
        .map(|l| format!("{l}\n"))
        .collect()
}
