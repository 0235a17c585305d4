//! The density run (issue 15, item 5): `n` idle guests with a NIC and a
//! disk consolidated on one server, first by partial migration, then the
//! same guests moved whole by QEMU precopy, each for a window. The server's
//! processes of each mode (the daemon and its QEMUs; the precopy QEMUs) run
//! in a cgroup of the bench's own: its memory accounting charges every page
//! once (anonymous memory, the lazy files' page cache, shmem), and its CPU
//! time is what they consumed, whatever else loads the machine. The
//! replicas sit on tmpfs (this machine's disk is shared and nearly full):
//! they stand for disk blocks and are subtracted from the group's memory. The breakdown comes from PSS (`/proc/<pid>/smaps`)
//! and the page cache of each file (`fincore`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use jettison_demo::procs::qemu_pids;
use jettison_demo::GuestImage;
use jettison_qemu::MachineSpec;
use tracing::info;

use crate::cgroup::BenchCgroup;
use crate::density_calc::{cpu_ticks, split_pss, Breakdown, CgroupMemory, Density, Window};
use crate::fleet::{Fleet, FleetSpec};
use crate::full::{Destination, Mode};
use crate::memory::page_cache_bytes;
use crate::run::Settings;

/// What the density run consolidates, and for how long.
#[derive(Debug, Clone)]
pub struct DensitySpec {
    /// Guests (one desktop each).
    pub vms: usize,
    /// Memory of each guest, MiB.
    pub memory_mib: u64,
    /// Disk of each guest, MiB.
    pub disk_mib: u64,
    /// The measured window of each mode.
    pub window: Duration,
    /// Guests booting at once, and migrations at once.
    pub parallel: usize,
}

/// Port of the first precopy destination (one port per VM).
const PORT: u16 = 7700;

/// Both modes on the same guests.
pub async fn density(s: &Settings, d: &DensitySpec) -> anyhow::Result<Density> {
    anyhow::ensure!(
        d.vms > 0 && d.parallel > 0,
        "at least one VM, one at a time"
    );
    let spec = FleetSpec {
        desktops: d.vms,
        memory_mib: d.memory_mib,
        fill_pct: s.fill_pct,
        accel: s.accel.clone(),
        fetch_pages: 1,
        work_root: s.work_root.clone(),
        devices: Some(d.disk_mib),
        boot_batch: d.parallel,
        // This machine's disk is shared and nearly full: replicas go to
        // tmpfs, charged to no measured group (they stand for disk blocks).
        replica_in_shm: true,
    };
    info!(vms = d.vms, memory_mib = d.memory_mib, "density: booting");
    let fleet = &Fleet::start(&s.bins, &s.image, &spec).await?;
    // Idle guests: filled, their workload's timers running.
    fleet
        .wait_filled(Duration::from_secs(300 + 120 * d.parallel as u64))
        .await?;
    let partial = partial_window(fleet, d).await?;
    each(d, "home", |i| async move {
        fleet.reintegrate(i).await.map(drop)
    })
    .await?;
    let full = full_window(fleet, d, &s.image).await?;
    Ok(Density::new(
        d.memory_mib,
        d.disk_mib,
        &s.accel,
        partial,
        full,
    ))
}

/// Runs `f` for every VM, `d.parallel` at a time, logging progress.
async fn each<F, Fut>(d: &DensitySpec, what: &str, f: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut done = 0;
    let mut stream = std::pin::pin!(futures::stream::iter(0..d.vms)
        .map(f)
        .buffer_unordered(d.parallel));
    while let Some(r) = stream.next().await {
        r.with_context(|| format!("density: {what}"))?;
        done += 1;
        info!(done, of = d.vms, "density: {what}");
    }
    Ok(())
}

async fn partial_window(
    fleet: &Fleet,
    d: &DensitySpec,
) -> anyhow::Result<crate::density_calc::ModeResult> {
    // The daemon joins before the arrivals, so its QEMUs (its children)
    // start in the group and everything they and it allocate is charged
    // there, the replicas too (subtracted from each sample: on tmpfs here,
    // they stand for a real server's disk blocks).
    let group = BenchCgroup::create("partial")?;
    let daemon = fleet.server_pid().context("no server daemon")?;
    group.add(daemon)?;
    each(d, "partial migration", |i| async move {
        fleet.migrate(i).await.map(drop)
    })
    .await?;
    let mut qemus = Vec::new();
    for i in 0..d.vms {
        let lazy = fleet.lazy_file(i);
        let pid = *qemu_pids(&lazy.display().to_string())
            .first()
            .with_context(|| format!("no server QEMU for {}", lazy.display()))?;
        let pid = u32::try_from(pid)?;
        anyhow::ensure!(group.contains(pid), "server QEMU {pid} outside the cgroup");
        qemus.push((pid, format!("/{}.mem", fleet.desktops[i].vm)));
    }
    let run = fleet.server_dir.join("server-run");
    let m = Measured {
        group: &group,
        daemon: Some(daemon),
        consoles: (fleet.desktops.iter())
            .map(|x| run.join(format!("{}.console", x.vm)))
            .collect(),
        qemus,
        guest_files: files_in(&fleet.mount_dir)?,
        replica_files: files_in(&fleet.replica_dir)?,
    };
    m.window(d).await
}

async fn full_window(
    fleet: &Fleet,
    d: &DensitySpec,
    image: &GuestImage,
) -> anyhow::Result<crate::density_calc::ModeResult> {
    let group = BenchCgroup::create("full")?;
    let run_dir = fleet.server_dir.join("density-full");
    std::fs::create_dir_all(&run_dir)?;
    let wrapper = cgroup_wrapper(&run_dir, &fleet.lan.server().netns, &group)?;
    let server = fleet.lan.server();
    let dests = futures::stream::iter(0..d.vms)
        .map(|i| {
            let (run_dir, wrapper) = (&run_dir, &wrapper);
            async move {
                let x = &fleet.desktops[i];
                let (mac, disk) = x.devices.clone().context("guest without devices")?;
                let tap = format!("dfull{i}");
                server.add_tap(&tap)?;
                let spec = MachineSpec {
                    memory_mib: d.memory_mib,
                    kernel: Some(image.kernel.clone()),
                    initrd: Some(image.initrd.clone()),
                    append: Some(x.append.clone()),
                    nic_mac: Some(mac.parse::<jettison_wire::MacAddr>().context("guest MAC")?),
                    disk_bytes: Some(d.disk_mib << 20),
                    ..MachineSpec::default()
                };
                let name = format!("{}.full", x.vm);
                let console = run_dir.join(format!("{name}.console"));
                let port = PORT + u16::try_from(i)?;
                let dest = Destination::start_with(
                    &spec,
                    &name,
                    run_dir,
                    wrapper,
                    port,
                    Mode::Precopy,
                    |o| {
                        o.tap = Some(tap);
                        o.disk_path = Some(disk);
                        o.console_log = Some(console.clone());
                    },
                )
                .await?;
                let home = x.bench_monitor(&fleet.lan.desktop(i).netns).await?;
                crate::full::migrate(&home, &dest, server.ip, Mode::Precopy).await?;
                info!(vm = %x.vm, "density: precopy done");
                Ok::<_, anyhow::Error>((dest, console))
            }
        })
        .buffer_unordered(d.parallel)
        .try_collect::<Vec<_>>()
        .await?;
    let mut qemus = Vec::new();
    for (dest, _) in &dests {
        let pid = dest.qemu.pid().context("precopy QEMU exited")?;
        anyhow::ensure!(group.contains(pid), "precopy QEMU {pid} outside the cgroup");
        let file = dest
            .mem_path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        qemus.push((pid, format!("/{file}")));
    }
    let m = Measured {
        group: &group,
        daemon: None,
        qemus,
        consoles: dests.iter().map(|(_, c)| c.clone()).collect(),
        guest_files: dests.iter().map(|(x, _)| x.mem_path.clone()).collect(),
        replica_files: Vec::new(),
    };
    let result = m.window(d).await;
    for (dest, _) in dests {
        dest.discard().await;
    }
    result
}

/// A wrapper that joins `group`, then starts QEMU in network namespace
/// `netns` (so that everything QEMU allocates is charged to the group).
fn cgroup_wrapper(dir: &Path, netns: &str, group: &BenchCgroup) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("qemu-in-{}", group.name()));
    let mut script = String::from("#!/bin/sh\n");
    for f in group.procs_files() {
        script += &format!("echo $$ > '{}' || exit 1\n", f.display());
    }
    script += &format!("exec nsenter --net=/run/netns/{netns} -- qemu-system-x86_64 \"$@\"\n");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

fn files_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        if e.file_type()?.is_file() {
            v.push(e.path());
        }
    }
    Ok(v)
}

/// What one mode's window measures.
struct Measured<'a> {
    group: &'a BenchCgroup,
    daemon: Option<u32>,
    /// Each VM's QEMU and the name of its guest memory file.
    qemus: Vec<(u32, String)>,
    consoles: Vec<PathBuf>,
    guest_files: Vec<PathBuf>,
    replica_files: Vec<PathBuf>,
}

/// The guests' periodic self-checks so far (their timers run).
fn checks(console: &Path) -> usize {
    std::fs::read_to_string(console)
        .unwrap_or_default()
        .matches("JTS CHECK")
        .count()
}

/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, 100 a second on Linux.
const TICK_NS: u64 = 10_000_000;

fn daemon_ticks(pid: Option<u32>) -> anyhow::Result<u64> {
    let Some(pid) = pid else { return Ok(0) };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    cpu_ticks(&stat).context("unreadable /proc/<pid>/stat")
}

fn smaps(pid: u32) -> anyhow::Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/smaps")).with_context(|| format!("smaps of {pid}"))
}

impl Measured<'_> {
    async fn window(&self, d: &DensitySpec) -> anyhow::Result<crate::density_calc::ModeResult> {
        // The arrival's burst of misses (or precopy's last rounds) passes first.
        let settle = (d.window / 4).min(Duration::from_secs(30));
        tokio::time::sleep(settle).await;
        let every = (d.window / 20).clamp(Duration::from_secs(1), Duration::from_secs(30));
        let checks_before: Vec<usize> = self.consoles.iter().map(|c| checks(c)).collect();
        let (cpu0, ticks0, t0) = (
            self.group.cpu_ns()?,
            daemon_ticks(self.daemon)?,
            Instant::now(),
        );
        let mut samples = Vec::new();
        info!(window_s = d.window.as_secs(), "density: window starts");
        loop {
            let stat = self.group.memory_stat()?;
            let mut m = CgroupMemory::parse(&stat).context("memory.stat without totals")?;
            // The replicas' tmpfs pages (all allocated at arrival, written
            // or not, so their blocks: `fincore` sees only the written
            // ones) are disk blocks on a real server.
            let mut replicas = 0;
            for f in &self.replica_files {
                replicas += std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(f)?) * 512;
            }
            m.cache = m.cache.saturating_sub(replicas);
            m.shmem = m.shmem.saturating_sub(replicas);
            samples.push(m);
            if t0.elapsed() >= d.window {
                break;
            }
            tokio::time::sleep(every.min(d.window.saturating_sub(t0.elapsed()))).await;
        }
        let seconds = t0.elapsed().as_secs_f64();
        let cpu_ns = self.group.cpu_ns()? - cpu0;
        let daemon_cpu_ns = (daemon_ticks(self.daemon)? - ticks0) * TICK_NS;
        for (c, before) in self.consoles.iter().zip(checks_before) {
            if checks(c) <= before {
                bail!(
                    "guest of {} made no progress in the window (paused?)",
                    c.display()
                );
            }
        }
        let mut b = Breakdown::default();
        for (pid, guest) in &self.qemus {
            b.qemu += split_pss(&smaps(*pid)?, guest).other;
        }
        for f in &self.guest_files {
            b.guest_memory += page_cache_bytes(f)?;
        }
        for f in &self.replica_files {
            b.replica_cache += page_cache_bytes(f)?;
            b.replica_disk += std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(f)?) * 512;
        }
        if let Some(pid) = self.daemon {
            b.daemon = split_pss(&smaps(pid)?, "\0").other;
        }
        let w = Window {
            vms: self.qemus.len(),
            seconds,
            cpu_ns,
            daemon_cpu_ns,
            samples,
            breakdown: b,
        };
        let r = w.per_vm().context("an empty window")?;
        info!(?r, "density: window measured");
        Ok(r)
    }
}
