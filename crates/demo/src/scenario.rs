//! The round trip: the guest works at home, moves to the server with its
//! device state only, runs there on memory fetched on demand, and comes home
//! with the pages it wrote; its memory image is compared across the move.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jettison_agent::power::PowerRecord;
use jettison_wire::{Message, MigrateReport, ReintegrateReport, VmMemStats};

use crate::cluster::{tail, Cluster};
use crate::console::{summarise, ConsoleSummary};
use crate::progress::Progress;

/// How long each phase lasts.
#[derive(Debug, Clone)]
pub struct Phases {
    /// At home after the guest is ready, before migrating.
    pub home: Duration,
    /// On the server.
    pub remote: Duration,
    /// At home again after reintegration.
    pub after: Duration,
    /// Longest wait for the guest to boot and fill its memory.
    pub boot_timeout: Duration,
    /// Pause the VM on the server before reintegration and compare its
    /// memory image with the desktop's afterwards.
    pub verify: bool,
    /// The VM comes home because the user returns to the desktop (which
    /// may sleep meanwhile), not on the operator's request.
    pub user_return: bool,
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            home: Duration::from_secs(5),
            remote: Duration::from_secs(20),
            after: Duration::from_secs(5),
            boot_timeout: Duration::from_secs(300),
            verify: true,
            user_return: false,
        }
    }
}

/// What a round trip measured.
#[derive(Debug, Clone)]
pub struct RoundTrip {
    /// The migration, as the agent measured it.
    pub migrate: MigrateReport,
    /// The server's counters just before the VM was paused for comparison.
    pub remote: VmMemStats,
    /// The reintegration, as the agent measured it.
    pub reintegrate: ReintegrateReport,
    /// BLAKE3 of the memory file read through the server's filesystem (when
    /// the images were compared).
    pub server_digest: Option<String>,
    /// Time to read the whole file through the filesystem.
    pub server_read_ms: f64,
    /// The guest's console over the whole run.
    pub console: ConsoleSummary,
    /// Seconds from boot to `JTS READY`.
    pub boot_s: f64,
    /// The inspection pause (host ms): from pausing the VM on the server to
    /// asking for reintegration. Not counted in heartbeat gaps.
    pub inspection: (u64, u64),
    /// The office services' view of the guest's chat and mail (LAN runs).
    pub presence: Option<jettison_peer::ClientStats>,
    /// The desktop's power record (when it could sleep).
    pub power: Option<PowerRecord>,
}

/// Server-side counters of the cluster's VM.
pub async fn server_stats(cluster: &Cluster) -> anyhow::Result<VmMemStats> {
    match cluster.server_request(Message::OpStatus).await? {
        Message::OpStatusReply { vms, .. } => vms
            .into_iter()
            .find(|v| v.vm == cluster.vm)
            .and_then(|v| v.memory)
            .context("the server does not list the VM"),
        other => bail!("unexpected status reply {}", other.kind()),
    }
}

/// Migrates the cluster's VM and returns the agent's report.
pub async fn migrate(cluster: &Cluster) -> anyhow::Result<MigrateReport> {
    match cluster
        .agent_request(Message::OpMigrate {
            vm: cluster.vm.clone(),
        })
        .await
    {
        Ok(Message::OpMigrated(r)) => Ok(r),
        Ok(other) => bail!("unexpected reply {}", other.kind()),
        Err(e) => bail!(
            "migration failed: {e:#}\nagent log:\n{}\nserver log:\n{}",
            tail(&cluster.daemon_log("agent")),
            tail(&cluster.daemon_log("server"))
        ),
    }
}

/// Reintegrates the cluster's VM and returns the agent's report.
pub async fn reintegrate(cluster: &Cluster, verify: bool) -> anyhow::Result<ReintegrateReport> {
    match cluster
        .agent_request(Message::OpReintegrate {
            vm: cluster.vm.clone(),
            verify,
        })
        .await
    {
        Ok(Message::OpReintegrated(r)) => Ok(r),
        Ok(other) => bail!("unexpected reply {}", other.kind()),
        Err(e) => bail!(
            "reintegration failed: {e:#}\nagent log:\n{}\nserver log:\n{}",
            tail(&cluster.daemon_log("agent")),
            tail(&cluster.daemon_log("server"))
        ),
    }
}

/// Pauses the VM on the server (flushing its dirty pages) and digests its
/// memory as the server's filesystem shows it.
pub async fn digest_server_view(cluster: &Cluster) -> anyhow::Result<(String, f64)> {
    match cluster
        .server_request(Message::OpPause {
            vm: cluster.vm.clone(),
        })
        .await?
    {
        Message::OpOk => {}
        other => bail!("unexpected pause reply {}", other.kind()),
    }
    let path = cluster.lazy_file();
    let started = Instant::now();
    let digest = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use std::os::unix::fs::OpenOptionsExt;
        // O_DIRECT: large reads straight to the filesystem (with readahead
        // off, buffered reads would be one page each).
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
            .open(&path)?;
        let mut h = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finalize().to_hex().to_string())
    })
    .await??;
    Ok((digest, started.elapsed().as_secs_f64() * 1000.0))
}

/// Runs the whole round trip on a started cluster.
pub async fn round_trip(
    cluster: &Cluster,
    phases: &Phases,
    progress: &Progress,
) -> anyhow::Result<RoundTrip> {
    let booted = Instant::now();
    progress.waiting("booting the guest at home and filling its memory");
    cluster
        .wait_console("JTS READY", phases.boot_timeout)
        .await?;
    let boot_s = booted.elapsed().as_secs_f64();
    progress.step(&format!("guest ready after {boot_s:.1} s"));
    progress.countdown("running at home", phases.home).await;

    let migrate = if phases.user_return {
        progress.waiting(
            "the user leaves: the agent migrates the VM once the desktop has been idle long enough",
        );
        wait_for_departure(cluster).await?
    } else {
        progress.waiting("migrating: device state only");
        migrate(cluster).await?
    };
    progress.step(&format!(
        "on the server after {:.1} ms; device state {} KiB",
        migrate.latency_ms,
        migrate.device_state_bytes / 1024
    ));
    progress
        .countdown("running on the server", phases.remote)
        .await;

    let remote = server_stats(cluster).await?;
    let pause_start = unix_ms();
    let (server_digest, server_read_ms) = if phases.verify {
        progress.waiting("pausing on the server and reading its memory through the filesystem");
        let (d, ms) = digest_server_view(cluster).await?;
        (Some(d), ms)
    } else {
        (None, 0.0)
    };
    let inspection = (pause_start, unix_ms());
    let reintegrate = if phases.user_return {
        progress
            .waiting("the user returns: a keystroke wakes the desktop, which brings the VM home");
        cluster.user_returns()?;
        wait_for_return(cluster).await?
    } else {
        progress.waiting("reintegrating: device state and dirty pages");
        reintegrate(cluster, phases.verify).await?
    };
    progress.step(&format!(
        "home after {:.1} ms; {} dirty pages",
        reintegrate.latency_ms, reintegrate.dirty_pages
    ));
    progress
        .countdown("running at home again", phases.after)
        .await;

    let presence = match &cluster.peer_addrs {
        Some(_) => Some(
            cluster
                .peer_status()?
                .clients
                .get(&cluster.vm)
                .cloned()
                .context("the peer never heard from the guest")?,
        ),
        None => None,
    };
    let logs = cluster.console_logs();
    let console = summarise(
        &logs.iter().map(String::as_str).collect::<Vec<_>>(),
        &[inspection],
    );
    Ok(RoundTrip {
        migrate,
        remote,
        reintegrate,
        server_digest,
        server_read_ms,
        console,
        boot_s,
        inspection,
        presence,
        power: if phases.user_return {
            Some(power_record(cluster).await?)
        } else {
            None
        },
    })
}

/// The desktop agent's power record.
pub async fn power_record(cluster: &Cluster) -> anyhow::Result<PowerRecord> {
    match cluster.agent_request(Message::OpPower).await? {
        Message::OpPowerReply { json } => Ok(serde_json::from_str(&json)?),
        other => bail!("unexpected power reply {}", other.kind()),
    }
}

/// Waits until the agent's idle detection migrated the VM.
async fn wait_for_departure(cluster: &Cluster) -> anyhow::Result<MigrateReport> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if let Some(m) = power_record(cluster).await?.migrations.into_iter().next() {
            return Ok(m);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!(
        "the agent did not migrate the idle VM within 300 s; agent log:\n{}",
        tail(&cluster.daemon_log("agent"))
    )
}

/// Waits until the agent brought the VM home on the user's return.
async fn wait_for_return(cluster: &Cluster) -> anyhow::Result<ReintegrateReport> {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        // The agent answers once the keystroke woke the desktop.
        if let Ok(record) = power_record(cluster).await {
            if let Some(r) = record.reintegrations.into_iter().next() {
                return Ok(r);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!(
        "the VM did not come home within 180 s of the user's return; agent log:\n{}",
        tail(&cluster.daemon_log("agent"))
    )
}

/// Host time in ms since the Unix epoch (the clock of the console logs).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
