//! The benchmark scenarios, each on a fresh fleet of test hosts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::future::try_join_all;
use jettison_demo::{Binaries, GuestImage};
use jettison_qemu::MachineSpec;
use tracing::info;

use crate::faults::{self, Rng, Touch, PAGE};
use crate::fleet::{Fleet, FleetSpec};
use crate::full::{self, Destination, FullResult, Mode};
use crate::memory::server_memory;
use crate::results::{
    ConcurrentRow, Faults, MigrationRow, PrefetchTouch, ReintegrationRow, ServerMemory,
};
use crate::shape::shape_lan;
use crate::stats::{ratio, summarize};

/// Settings shared by the scenarios.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The daemons.
    pub bins: Binaries,
    /// The guest image.
    pub image: GuestImage,
    /// `tcg` or `kvm`.
    pub accel: String,
    /// Share of each guest's memory filled with non-zero data.
    pub fill_pct: u32,
    /// Where runs keep their files.
    pub work_root: PathBuf,
    /// Random single-page reads in the fault test.
    pub fault_samples: usize,
    /// Pages touched in order, and again in random order.
    pub touch_pages: u64,
}

/// Port of the full migrations' destinations.
const MIGRATION_PORT: u16 = 7600;

/// Boot and fill allowance per GiB of guest (TCG is slow).
fn ready_timeout(memory_mib: u64, desktops: usize) -> Duration {
    Duration::from_secs(120 + 60 * memory_mib.div_ceil(1024) * desktops as u64)
}

impl Settings {
    fn fleet_spec(&self, desktops: usize, memory_mib: u64, fetch_pages: u32) -> FleetSpec {
        FleetSpec {
            desktops,
            memory_mib,
            fill_pct: self.fill_pct,
            accel: self.accel.clone(),
            fetch_pages,
            work_root: self.work_root.clone(),
            devices: None,
            boot_batch: 0,
            replica_in_shm: false,
        }
    }

    fn machine(&self, fleet: &Fleet, i: usize, memory_mib: u64) -> MachineSpec {
        MachineSpec {
            memory_mib,
            kernel: Some(self.image.kernel.clone()),
            initrd: Some(self.image.initrd.clone()),
            append: Some(format!(
                "{} jettison.fill_pct={} jettison.id={}",
                self.image.cmdline, self.fill_pct, fleet.desktops[i].vm
            )),
            ..MachineSpec::default()
        }
    }
}

/// What one guest size measured on one link.
#[derive(Debug, Default)]
pub struct SizeOutcome {
    /// The way out.
    pub migration: MigrationRow,
    /// The way back.
    pub reintegration: ReintegrationRow,
    /// Fault service, when asked for.
    pub faults: Option<Faults>,
    /// Touches with a neighbourhood prefetch, when asked for.
    pub prefetch_touch: Option<PrefetchTouch>,
    /// Server memory while consolidated.
    pub memory: ServerMemory,
}

/// What a size run measures while the VM is consolidated, besides its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extra {
    /// Nothing more.
    None,
    /// Single faults (one page per miss) and touches.
    Faults,
    /// Touches with this many pages fetched per miss.
    PrefetchTouch(u32),
}

/// One guest of `memory_mib` on a `link_mbit` LAN: jettison out, `extra`,
/// jettison home; then precopy out, precopy home, postcopy out, all on the
/// same guest.
pub async fn one_size(
    s: &Settings,
    memory_mib: u64,
    link_mbit: u32,
    extra: Extra,
) -> anyhow::Result<SizeOutcome> {
    info!(memory_mib, link_mbit, ?extra, "size run: booting");
    let group = match extra {
        Extra::PrefetchTouch(p) => p,
        _ => 1,
    };
    let spec = s.fleet_spec(1, memory_mib, group);
    let fleet = Fleet::start(&s.bins, &s.image, &spec).await?;
    shape_lan(&fleet.lan, link_mbit)?;
    fleet.wait_filled(ready_timeout(memory_mib, 1)).await?;
    let out = fleet.migrate(0).await?;
    info!(
        ms = out.latency_ms,
        bytes = out.device_state_bytes,
        "jettison out"
    );
    // The guest settles on the server before its memory is measured.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let memory = server_memory(&fleet, 0, memory_mib).await?;
    let faults = if extra == Extra::Faults {
        Some(measure_faults(s, &fleet, memory_mib, link_mbit).await?)
    } else {
        None
    };
    let prefetch_touch = match extra {
        Extra::PrefetchTouch(pages_per_miss) => {
            let (sequential, random) = touches(s, &fleet, memory_mib).await?;
            Some(PrefetchTouch {
                memory_mib,
                pages_per_miss,
                sequential,
                random,
            })
        }
        _ => None,
    };
    let back = fleet.reintegrate(0).await?;
    info!(
        ms = back.latency_ms,
        dirty = back.dirty_pages,
        "jettison home"
    );
    let spec = s.machine(&fleet, 0, memory_mib);
    let fulls = full_round_trip(&fleet, &spec).await?;
    let [pre, pre_back, post] = fulls;
    let total_pages = memory_mib * (1 << 20) / PAGE;
    Ok(SizeOutcome {
        migration: MigrationRow {
            memory_mib,
            link_mbit,
            jettison_ms: out.latency_ms,
            jettison_bytes: out.device_state_bytes,
            speedup_vs_precopy: ratio(pre.latency_ms, out.latency_ms),
            speedup_vs_postcopy: ratio(post.latency_ms, out.latency_ms),
            precopy: pre,
            postcopy: post,
        },
        reintegration: ReintegrationRow {
            memory_mib,
            link_mbit,
            dirty_pct: 100.0 * back.dirty_pages as f64 / total_pages as f64,
            jettison_ms: back.latency_ms,
            jettison_bytes: back.bytes_sent,
            speedup_vs_full: ratio(pre_back.latency_ms, back.latency_ms),
            full: pre_back,
        },
        faults,
        prefetch_touch,
        memory,
    })
}

/// Precopy desktop -> server, precopy server -> desktop, postcopy desktop
/// -> server, each from the guest where the previous one left it.
async fn full_round_trip(fleet: &Fleet, spec: &MachineSpec) -> anyhow::Result<[FullResult; 3]> {
    let d = &fleet.desktops[0];
    let run_dir = fleet.server_dir.join("full");
    std::fs::create_dir_all(&run_dir)?;
    let srv = full::netns_wrapper(&run_dir, &fleet.lan.server().netns)?;
    let desk = full::netns_wrapper(&run_dir, &fleet.lan.desktop(0).netns)?;
    let home = d.bench_monitor(&fleet.lan.desktop(0).netns).await?;
    let (srv_ip, desk_ip) = (fleet.lan.server().ip, fleet.lan.desktop(0).ip);
    let name = |n: &str| format!("{}.{n}", d.vm);
    let a = Destination::start(
        spec,
        &name("pre"),
        &run_dir,
        &srv,
        MIGRATION_PORT,
        Mode::Precopy,
    )
    .await?;
    let pre = full::migrate(&home, &a, srv_ip, Mode::Precopy).await?;
    info!(ms = pre.latency_ms, bytes = pre.bytes, "precopy out");
    let b = Destination::start(
        spec,
        &name("back"),
        &run_dir,
        &desk,
        MIGRATION_PORT,
        Mode::Precopy,
    )
    .await?;
    let back = full::migrate(a.qemu.qmp(), &b, desk_ip, Mode::Precopy).await?;
    info!(ms = back.latency_ms, bytes = back.bytes, "precopy home");
    a.discard().await;
    let c = Destination::start(
        spec,
        &name("post"),
        &run_dir,
        &srv,
        MIGRATION_PORT + 1,
        Mode::Postcopy,
    )
    .await?;
    let post = full::migrate(b.qemu.qmp(), &c, srv_ip, Mode::Postcopy).await?;
    info!(
        ms = post.latency_ms,
        total_ms = post.total_ms,
        bytes = post.bytes,
        "postcopy out"
    );
    b.discard().await;
    c.discard().await;
    Ok([pre, back, post])
}

/// Single-page reads of random pages, then a region in order and one at
/// random, on the consolidated VM's memory file.
async fn measure_faults(
    s: &Settings,
    fleet: &Fleet,
    memory_mib: u64,
    link_mbit: u32,
) -> anyhow::Result<Faults> {
    let file = fleet.lazy_file(0);
    let pages = memory_mib * (1 << 20) / PAGE;
    let mut rng = Rng::new(0x6a65_7474);
    // Random distinct pages from the top half (the regions below are touched next).
    let mut sample: Vec<u64> = (pages / 2..pages).collect();
    rng.shuffle(&mut sample);
    sample.truncate(s.fault_samples);
    let before = fleet.server_status().await?;
    let lat = tokio::task::spawn_blocking(move || faults::read_pages(&file, &sample)).await??;
    let after = fleet.server_status().await?;
    let stats = |v: &[jettison_wire::VmStatus]| {
        v.first().and_then(|s| s.memory.clone()).unwrap_or_default()
    };
    let (b, a) = (stats(&before), stats(&after));
    let (seq, rand) = touches(s, fleet, memory_mib).await?;
    let d = &fleet.desktops[0];
    let rtts = crate::rtt::fetch_round_trips(
        &fleet.lan.server().netns,
        &fleet.tls_dir,
        d.state_addr.clone(),
        d.vm.clone(),
        (0..s.fault_samples as u64).map(|i| i * 7 % pages).collect(),
    )?;
    let rtt = summarize(&rtts);
    let tcp = summarize(&crate::rtt::tcp_round_trips(
        &fleet.lan.desktop(0).netns,
        &fleet.lan.server().netns,
        fleet.lan.desktop(0).ip,
        s.fault_samples,
    )?);
    let h = &a.fault_latency_us;
    let client = summarize(&lat);
    // Medians do not subtract exactly; these split the typical fault.
    let breakdown_us = BTreeMap::from([
        ("1_fault_as_read_p50".to_string(), client.p50),
        ("2_state_server_round_trip_p50".to_string(), rtt.p50),
        ("3_of_which_tcp_p50".to_string(), tcp.p50),
        (
            "4_of_which_tls_wire_and_agent_p50".to_string(),
            rtt.p50 - tcp.p50,
        ),
        (
            "5_fuse_kernel_and_server_daemon_p50".to_string(),
            client.p50 - rtt.p50,
        ),
        ("6_state_server_round_trip_p99".to_string(), rtt.p99),
    ]);
    Ok(Faults {
        memory_mib,
        link_mbit,
        latency_us: client,
        server_latency_us: crate::stats::Summary {
            count: h.count as usize,
            p50: h.p50 as f64,
            p90: h.p90 as f64,
            p99: h.p99 as f64,
            max: h.max as f64,
            mean: h.mean,
        },
        server_faults: a.faults.saturating_sub(b.faults),
        breakdown_us,
        sequential: seq,
        random: rand,
    })
}

/// A region touched in order from page 0, then the next one in random order.
async fn touches(s: &Settings, fleet: &Fleet, memory_mib: u64) -> anyhow::Result<(Touch, Touch)> {
    let file = fleet.lazy_file(0);
    let touch = s.touch_pages.min(memory_mib * (1 << 20) / PAGE / 4);
    let f = file.clone();
    let seq = tokio::task::spawn_blocking(move || faults::touch(&f, 0, touch, None)).await??;
    let mut rng = Rng::new(0x5eed);
    let rand =
        tokio::task::spawn_blocking(move || faults::touch(&file, touch, touch, Some(&mut rng)))
            .await??;
    Ok((seq, rand))
}

/// `n` desktops with guests of `memory_mib` migrating at once, with
/// jettison (out and home), then with precopy.
pub async fn concurrent(
    s: &Settings,
    counts: &[usize],
    memory_mib: u64,
    link_mbit: u32,
) -> anyhow::Result<Vec<ConcurrentRow>> {
    let most = counts.iter().copied().max().unwrap_or(1);
    info!(
        desktops = most,
        memory_mib, link_mbit, "concurrent run: booting"
    );
    let fleet = Fleet::start(&s.bins, &s.image, &s.fleet_spec(most, memory_mib, 1)).await?;
    shape_lan(&fleet.lan, link_mbit)?;
    fleet.wait_filled(ready_timeout(memory_mib, most)).await?;
    let run_dir = fleet.server_dir.join("full");
    std::fs::create_dir_all(&run_dir)?;
    let srv = full::netns_wrapper(&run_dir, &fleet.lan.server().netns)?;
    let mut rows = Vec::new();
    for (round, &n) in counts.iter().enumerate() {
        let outs = try_join_all((0..n).map(|i| fleet.migrate(i))).await?;
        let backs = try_join_all((0..n).map(|i| fleet.reintegrate(i))).await?;
        let mut dests = Vec::new();
        let mut sources = Vec::new();
        for i in 0..n {
            let d = &fleet.desktops[i];
            let spec = s.machine(&fleet, i, memory_mib);
            let name = format!("{}.c{round}", d.vm);
            let port = MIGRATION_PORT + 10 + i as u16;
            dests
                .push(Destination::start(&spec, &name, &run_dir, &srv, port, Mode::Precopy).await?);
            sources.push(d.bench_monitor(&fleet.lan.desktop(i).netns).await?);
        }
        let ip = fleet.lan.server().ip;
        let pres = try_join_all(
            sources
                .iter()
                .zip(&dests)
                .map(|(src, dst)| full::migrate(src, dst, ip, Mode::Precopy)),
        )
        .await?;
        for (src, dst) in sources.iter().zip(dests) {
            dst.discard().await;
            // The guest carries on at home, as before the precopy.
            src.execute_raw("cont", serde_json::Value::Null).await?;
        }
        let ms = |v: Vec<f64>| summarize(&v);
        rows.push(ConcurrentRow {
            desktops: n,
            memory_mib,
            link_mbit,
            jettison_ms: ms(outs.iter().map(|r| r.latency_ms).collect()),
            jettison_back_ms: ms(backs.iter().map(|r| r.latency_ms).collect()),
            precopy_ms: ms(pres.iter().map(|r| r.latency_ms).collect()),
            jettison_bytes: outs.iter().map(|r| r.device_state_bytes).sum(),
            precopy_bytes: pres.iter().map(|r| r.bytes).sum(),
        });
        info!(n, "concurrent round done");
    }
    Ok(rows)
}
