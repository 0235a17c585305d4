//! `cargo xtask demo`: the whole story, with a summary and a JSON report.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use jettison_demo::{
    report, round_trip, Binaries, Cluster, ClusterOptions, GuestImage, Phases, Progress,
};
use jettison_power_model::PrefetchConfig;

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
    /// Pages fetched per miss on the server (a neighbourhood prefetch);
    /// overridden by `--prefetch`.
    #[arg(long)]
    fetch_pages: Option<u32>,
    /// The server's prefetch policy, as in its configuration: `none`, or
    /// e.g. `{ combined = { pages = 64, max_pages = 8192, periods = 4 } }`.
    /// Default: that (the server's default) when the desktop sleeps, `none`
    /// otherwise. A demo's server starts without recorded working sets, so
    /// its one period fetches no working set.
    #[arg(long, value_parser = parse_prefetch)]
    prefetch: Option<PrefetchConfig>,
    /// Wakes for page misses resume every device (no selective resume).
    #[arg(long)]
    full_resume: bool,
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
    /// The operations demo: a real Prometheus scrapes both daemons for the
    /// whole run and is asked through its HTTP API; at the end a real
    /// headless Chromium loads the dashboard, takes its screenshot
    /// (`dashboard.png` beside the report) and its page is checked. The
    /// report's `ops` gives what they saw.
    #[arg(long)]
    ops: bool,
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
        fetch_pages: args.fetch_pages.unwrap_or(1),
        prefetch: match (args.prefetch, args.fetch_pages) {
            (Some(p), _) => Some(p),
            (None, Some(_)) => None,
            (None, None) if args.loopback || args.no_sleep => Some(PrefetchConfig::None),
            (None, None) => Some(jettison_server::config::default_prefetch()),
        },
        selective_resume: !args.full_resume,
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
    let dashboard = show_dashboard(&cluster);
    let mut ops = if args.ops {
        Some(start_ops(&cluster).await?)
    } else {
        None
    };
    let progress = Progress::on_stdout();
    let rt = round_trip(&cluster, &phases, &progress).await;
    progress.finish();
    let rt = rt?;
    let ops_report = match ops.as_mut() {
        Some(o) => Some(ops_report(o, &cluster, &out.join("dashboard.png")).await),
        None => None,
    };
    drop(ops);
    let run_dir = cluster.dir.clone();
    drop(dashboard);
    cluster.stop_daemons();
    // The agent's own trace files, replayed over the idle periods.
    let trace = rt
        .power
        .as_ref()
        .map(|_| jettison_demo::replay::trace_section(&run_dir.join("agent-state/trace")));
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
        let pages = u32::try_from(args.memory_mib * 256)?;
        value["replay"] = jettison_demo::replay::report(
            rec,
            pages,
            &opts.prefetch(),
            opts.selective_resume,
            &out.join("trace.json"),
        )?;
    }
    match trace {
        Some(Ok(t)) => value["trace"] = t,
        Some(Err(e)) => value["trace"] = serde_json::json!({ "error": format!("{e:#}") }),
        None => {}
    }
    if let Some(r) = ops_report {
        value["ops"] = match r {
            Ok(r) => serde_json::to_value(r)?,
            Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
        };
    }
    let path = out.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&value)?)?;
    println!("\n{}", report::summary(&value));
    if let Some(o) = value.get("ops") {
        println!("{}", jettison_demo::ops::summary(o));
    }
    println!("report: {}\nlogs:   {}", path.display(), run_dir.display());
    let promises = report::Promises {
        images_compared: !args.no_verify,
        sleep: phases.user_return,
        ops: args.ops,
    };
    let broken = promises.broken(&value);
    anyhow::ensure!(
        broken.is_empty(),
        "the run broke its promises:\n  {}",
        broken.join("\n  ")
    );
    Ok(())
}

/// A prefetch policy as in the server's configuration (`none` may be bare).
fn parse_prefetch(s: &str) -> Result<PrefetchConfig, String> {
    #[derive(serde::Deserialize)]
    struct T {
        prefetch: PrefetchConfig,
    }
    let value = if s.trim_start().starts_with('{') {
        s.to_owned()
    } else {
        format!("\"{}\"", s.trim())
    };
    let p = toml::from_str::<T>(&format!("prefetch = {value}"))
        .map_err(|e| e.to_string())?
        .prefetch;
    p.validate()?;
    Ok(p)
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

/// Shows the server's dashboard on this machine's loopback while the demo
/// runs: port 9471 (the server's default), or a free one if it is taken.
fn show_dashboard(cluster: &Cluster) -> Option<jettison_testbed::Forwarder> {
    use jettison_demo::observe::DASHBOARD_PORT;
    let at = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let forwarder = match cluster.dashboard_forwarder(at(DASHBOARD_PORT)) {
        Ok(f) => f,
        Err(e) => {
            println!("  (port {DASHBOARD_PORT} is taken: {e}; using a free port)");
            cluster.dashboard_forwarder(at(0)).ok().flatten()
        }
    };
    let addr = forwarder
        .as_ref()
        .map_or(cluster.server_metrics, |f| f.local_addr());
    println!("  dashboard: http://{addr}/ (metrics: http://{addr}/metrics), while the demo runs");
    forwarder
}

/// Starts the operations demo's Prometheus on the run's daemons.
async fn start_ops(cluster: &Cluster) -> anyhow::Result<jettison_demo::ops::Ops> {
    let ops = jettison_demo::ops::Ops::start(cluster, &cluster.dir).await?;
    println!(
        "  prometheus: http://{}/ scraping both daemons every {} s, while the demo runs",
        ops.prometheus_addr(),
        jettison_demo::ops::prometheus::SCRAPE_INTERVAL_S
    );
    Ok(ops)
}

/// What Prometheus and Chromium saw at the end of the run: the VM home on
/// an awake desktop, after faults served while it was away.
async fn ops_report(
    ops: &mut jettison_demo::ops::Ops,
    cluster: &Cluster,
    png: &std::path::Path,
) -> anyhow::Result<jettison_demo::ops::OpsReport> {
    let expect = jettison_demo::ops::dashboard_page::Expect {
        desktop: "desktop".into(),
        vm: cluster.vm.clone(),
        runs: "home".into(),
        power: "awake".into(),
        min_faults: 1,
        latency_row: false,
    };
    ops.report(&expect, png).await
}
