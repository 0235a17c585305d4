//! The suite from start to end: a cluster of test hosts with the victim
//! consolidated, a fault-latency baseline, the authenticated attacks, the
//! flood with its fault latency, the victim brought home, taken again for
//! the name collisions and brought home once more, then its disk checked.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use jettison_demo::{scenario, Binaries, Cluster, ClusterOptions, GuestImage};
use jettison_testbed::Host;
use jettison_wire::{Message, Role, PAGE_SIZE};

use crate::authed::Ctx;
use crate::conn::on_host;
use crate::flood::{self, Target};
use crate::footprint::ServerPlaces;
use crate::machine::boot_file;
use crate::probe::{self, Probe};
use crate::report::{Flood, Fuzz, Report, Row, Window};
use crate::{limits, suite, victim};

/// How the suite runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The daemons.
    pub bins: Binaries,
    /// The test guest.
    pub image: GuestImage,
    /// Where the cluster keeps its files (kept, for the logs).
    pub work_root: PathBuf,
    /// `tcg` or `kvm`.
    pub accel: String,
    /// The quick variant.
    pub quick: bool,
    /// Connections the flood holds at once.
    pub connections: u32,
    /// How long it holds them (and the baseline window's length).
    pub hold: Duration,
    /// Prepares tried in a row for the capacity limits.
    pub capacity_tries: u32,
    /// The wire fuzz test's output, if it ran.
    pub fuzz_log: Option<PathBuf>,
}

impl Options {
    /// The full suite's sizes, or the quick one's.
    pub fn sizes(quick: bool) -> (u32, Duration, u32) {
        if quick {
            (200, Duration::from_secs(15), 4)
        } else {
            (2_000, Duration::from_secs(60), 12)
        }
    }
}

const MEMORY_MIB: u64 = 256;
/// The server's `max_vms`: the victim and two more.
const SERVER_MAX_VMS: usize = 3;

/// Runs the suite; an error means it could not run to the end.
pub async fn run(o: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    limits::raise_own_nofile();
    // One log event per fault on the server (see `probe`).
    std::env::set_var(
        "RUST_LOG",
        format!("info,{}=debug", jettison_lazymem::FAULT_LATENCY_TARGET),
    );
    let opts = ClusterOptions {
        memory_mib: MEMORY_MIB,
        fill_pct: 10,
        accel: o.accel.clone(),
        work_root: o.work_root.clone(),
        keep: true,
        lan: true,
        disk_mib: Some(16),
        disk_interval_s: Some(2),
        extra_desktops: vec!["desktop2".into()],
        // Room for the victim and the capacity attack's first prepares:
        // the limit must be met within its tries.
        server_limits: Some(format!("max_vms = {SERVER_MAX_VMS}\n")),
        ..ClusterOptions::default()
    };
    // The daemons start with systemd's default soft limit of open files.
    let mut cluster = limits::with_default_nofile(Cluster::start(&o.bins, &o.image, &opts)).await?;
    println!("jettison attacks: logs in {}", cluster.dir.display());
    cluster
        .wait_console("JTS READY", Duration::from_secs(300))
        .await?;
    cluster
        .wait_console("JTS DISK writes=", Duration::from_secs(60))
        .await?;
    scenario::migrate(&cluster).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!("  victim {} consolidated", cluster.vm);
    let mut ctx = context(&cluster, o)?;
    // The server reaches the state server a prepare advertises.
    let stub = crate::state_stub::start(&ctx.attacker, ctx.tls.clone())?;
    let mut report = Report {
        quick: o.quick,
        ..Report::default()
    };

    println!("  baseline: probing faults for {:?}", o.hold);
    report.baseline = fault_window(&cluster, 0, o.hold, async {}).await;
    report.attacks = suite::run(&cluster, &ctx).await;

    println!(
        "  flood: {} connections for {:?} from the peer host",
        o.connections, o.hold
    );
    let (window, fl) = flood_window(&cluster, o).await?;
    report.slowloris = window;
    report.flood = fl;

    println!("  bringing the victim home");
    let home = victim::come_home(&cluster).await;
    report
        .homecomings
        .push(format!("after the attacks and the flood: {}", home.detail));
    for r in &mut report.attacks {
        r.came_home(home.ok);
    }

    let mut last: Vec<Row> = match scenario::migrate(&cluster).await {
        Ok(_) => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            ctx = context(&cluster, o)?;
            suite::collisions(&cluster, &ctx).await
        }
        Err(e) => [
            "name-same-as-victim",
            "name-collision-victims-disk",
            "name-collision-disk-of-own-vm",
        ]
        .iter()
        .map(|n| {
            suite::not_run(
                n,
                &format!("the victim could not be consolidated again: {e:#}"),
            )
        })
        .collect(),
    };
    if victim::running_on_server(&cluster).await {
        let home = victim::come_home(&cluster).await;
        report
            .homecomings
            .push(format!("after the name collisions: {}", home.detail));
        for r in &mut last {
            r.came_home(home.ok);
        }
    }
    cluster.stop_daemons();
    let disk = victim::disk_intact(&cluster);
    report.homecomings.push(format!(
        "at the end (charged to the collisions): {}",
        disk.detail
    ));
    for r in &mut last {
        r.came_home(disk.ok);
    }
    report.attacks.extend(last);
    report.fuzz = match &o.fuzz_log {
        Some(p) => crate::fuzz::parse(&std::fs::read_to_string(p).unwrap_or_default()),
        None => Fuzz {
            status: "not run".into(),
            ..Fuzz::default()
        },
    };
    stub.abort();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn lan_hosts(cluster: &Cluster) -> anyhow::Result<(Host, Host, Host)> {
    let lan = cluster.lan().context("the suite needs test hosts")?;
    Ok((
        lan.server().clone(),
        lan.desktop(0).clone(),
        lan.peer().clone(),
    ))
}

/// The attacks' context, with the victim's items and record as they are now.
fn context(cluster: &Cluster, o: &Options) -> anyhow::Result<Ctx> {
    let (server, _, peer) = lan_hosts(cluster)?;
    let places = ServerPlaces::of(server, &cluster.dir, &cluster.mount_dir);
    let digest = |p: &std::path::Path| -> anyhow::Result<serde_json::Value> {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        Ok(boot_file(
            &p.display().to_string(),
            &blake3::hash(&bytes).to_hex(),
        ))
    };
    Ok(Ctx {
        attacker: peer,
        tls: cluster.tls_as("desktop2", "server")?,
        tls_to_desktop: cluster.tls_as("desktop2", "desktop")?,
        server_addr: cluster.server_addr.clone(),
        state_addr: cluster.state_addr.clone(),
        vm: cluster.vm.clone(),
        victim_items: places.snapshot()?,
        places,
        record: std::fs::read(victim::record_path(cluster)).context("the victim's record")?,
        kernel: digest(&o.image.kernel)?,
        initrd: digest(&o.image.initrd)?,
        scratch: cluster.dir.clone(),
        capacity_tries: o.capacity_tries,
    })
}

/// Probes faults for `hold` while `during` runs; the window's figures.
async fn fault_window(
    cluster: &Cluster,
    from: u64,
    hold: Duration,
    during: impl std::future::Future<Output = ()>,
) -> Window {
    let log = cluster.dir.join("server.log");
    let offset = probe::log_len(&log);
    let pages = (MEMORY_MIB << 20) / PAGE_SIZE;
    let probe = Probe::start(cluster.lazy_file(), pages, from);
    let t = Instant::now();
    tokio::join!(tokio::time::sleep(hold), during);
    let secs = t.elapsed().as_secs_f64();
    let lat = probe.finish();
    let server = probe::fault_latencies(&probe::log_since(&log, offset), &cluster.vm);
    probe::window(secs, &lat, &server)
}

/// The flood's targets: every listening TCP port of the server and the
/// desktop, each with the identity a legitimate client has there.
fn targets(cluster: &Cluster) -> anyhow::Result<Vec<Target>> {
    let (server, desktop, _) = lan_hosts(cluster)?;
    let mut out = Vec::new();
    for (host, legit) in [
        (
            server,
            (cluster.tls_as("desktop", "server")?, "server", Role::Agent),
        ),
        (
            desktop,
            (
                cluster.tls_as("server", "desktop")?,
                "desktop",
                Role::Server,
            ),
        ),
    ] {
        let table = host.run_in(|| std::fs::read_to_string("/proc/thread-self/net/tcp"))??;
        for addr in flood::listening(&table, host.ip) {
            let jettison = [&cluster.server_addr, &cluster.state_addr]
                .iter()
                .any(|a| **a == addr.to_string());
            out.push(Target {
                addr,
                legit: jettison.then(|| (legit.0.clone(), legit.1.to_string(), legit.2)),
            });
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "no listening port found on the server or the desktop"
    );
    Ok(out)
}

async fn flood_window(cluster: &Cluster, o: &Options) -> anyhow::Result<(Window, Flood)> {
    let targets = targets(cluster)?;
    let (_, _, peer) = lan_hosts(cluster)?;
    let names: Vec<String> = targets.iter().map(|t| t.addr.to_string()).collect();
    let logs = ["server", "agent"].map(|d| cluster.dir.join(format!("{d}.log")));
    let offsets = logs.clone().map(|l| probe::log_len(&l));
    let (n, hold) = (o.connections, o.hold);
    let counts = Arc::new(std::sync::Mutex::new(None));
    let slot = counts.clone();
    let during = async move {
        let c = on_host(&peer, move || async move {
            Ok(flood::run(targets, n, hold).await)
        })
        .await;
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
    };
    // The probe walks on from where the baseline stopped: fresh pages.
    let window = fault_window(cluster, 100_000, hold, during).await;
    let c = counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .context("the flood did not run")??;
    let alive = cluster.server_request(Message::OpStatus).await.is_ok()
        && cluster.agent_request(Message::OpStatus).await.is_ok();
    let accept_errors = logs
        .iter()
        .zip(offsets)
        .map(|(l, off)| {
            probe::log_since(l, off)
                .lines()
                .filter(|l| l.contains("accept failed"))
                .count() as u64
        })
        .sum();
    use std::sync::atomic::Ordering::Relaxed;
    let fl = Flood {
        targets: names,
        connections: n,
        opened: c.opened.load(Relaxed),
        connect_failures: c.connect_failures.load(Relaxed),
        closed_by_server: c.closed_by_server.load(Relaxed),
        legit_handshakes_ok: c.legit_ok.load(Relaxed),
        legit_handshakes_tried: c.legit_tried.load(Relaxed),
        daemons_alive: alive,
        accept_errors,
    };
    Ok((window, fl))
}
