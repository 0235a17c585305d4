//! QEMU's own full migration, the alternative an administrator has:
//! precopy (all memory, then the dirtied pages again, then a stop) and
//! postcopy (a stop after the first round, the rest pulled on demand),
//! over TCP across the test LAN, unmodified QEMU on both ends.
//!
//! The destination QEMU runs in a host's network namespace through a tiny
//! wrapper script (`nsenter --net=...`), so the migration stream really
//! crosses the shaped links.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jettison_qemu::qmp::{MigrationInfo, MigrationStatus, QueryMigrate};
use jettison_qemu::{LaunchOptions, MachineSpec, Qemu, QmpClient, RunState};
use serde::Serialize;
use serde_json::json;

/// Which full migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// QEMU's default.
    Precopy,
    /// `postcopy-ram`, switched to postcopy as soon as the migration starts.
    Postcopy,
}

/// What one full migration took.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FullResult {
    /// From `migrate` to the guest running on the destination, measured here.
    pub latency_ms: f64,
    /// From `migrate` to `completed` (postcopy: the last page delivered).
    pub total_ms: f64,
    /// QEMU's own figure for the stop-and-copy pause.
    pub downtime_ms: f64,
    /// Bytes QEMU sent (`ram.transferred`).
    pub bytes: u64,
    /// Pages sent in full (`ram.normal`), and as zero-page markers (`ram.duplicate`).
    pub normal_pages: u64,
    /// Zero pages, sent as markers.
    pub zero_pages: u64,
}

/// A destination QEMU waiting for a full migration on a test host.
#[derive(Debug)]
pub struct Destination {
    /// The instance.
    pub qemu: Qemu,
    /// Its memory file.
    pub mem_path: PathBuf,
    port: u16,
}

/// Writes the wrapper that starts QEMU inside network namespace `netns`.
pub fn netns_wrapper(dir: &Path, netns: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("qemu-in-{netns}"));
    let script =
        format!("#!/bin/sh\nexec nsenter --net=/run/netns/{netns} -- qemu-system-x86_64 \"$@\"\n");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

impl Destination {
    /// Starts an incoming QEMU for `spec` on the host whose wrapper is
    /// `wrapper`, listening for the migration on `port`.
    pub async fn start(
        spec: &MachineSpec,
        name: &str,
        run_dir: &Path,
        wrapper: &Path,
        port: u16,
        mode: Mode,
    ) -> anyhow::Result<Destination> {
        Self::start_with(spec, name, run_dir, wrapper, port, mode, |_| {}).await
    }

    /// [`Destination::start`], with `more` setting further launch options
    /// (a tap, a disk, a console log).
    pub async fn start_with(
        spec: &MachineSpec,
        name: &str,
        run_dir: &Path,
        wrapper: &Path,
        port: u16,
        mode: Mode,
        more: impl FnOnce(&mut LaunchOptions),
    ) -> anyhow::Result<Destination> {
        let mem_path = PathBuf::from(format!("/dev/shm/{name}.mem"));
        let _ = std::fs::remove_file(&mem_path);
        let mut opts = LaunchOptions {
            binary: wrapper.to_owned(),
            mem_path: mem_path.clone(),
            incoming: true,
            ..LaunchOptions::new(name, run_dir)
        };
        more(&mut opts);
        let qemu = Qemu::launch(spec, &opts)
            .await
            .context("destination QEMU")?;
        set_capabilities(qemu.qmp(), mode).await?;
        qemu.qmp()
            .execute_raw(
                "migrate-incoming",
                json!({ "uri": format!("tcp:0.0.0.0:{port}") }),
            )
            .await?;
        Ok(Destination {
            qemu,
            mem_path,
            port,
        })
    }

    /// Stops the instance and removes its memory file.
    pub async fn discard(self) {
        let _ = self.qemu.kill().await;
        let _ = std::fs::remove_file(&self.mem_path);
    }
}

async fn set_capabilities(qmp: &QmpClient, mode: Mode) -> anyhow::Result<()> {
    let caps = [
        ("x-ignore-shared", false),
        ("events", true),
        ("postcopy-ram", mode == Mode::Postcopy),
    ];
    let list: Vec<_> = caps
        .iter()
        .map(|(c, on)| json!({ "capability": c, "state": on }))
        .collect();
    qmp.execute_raw("migrate-set-capabilities", json!({ "capabilities": list }))
        .await?;
    Ok(())
}

/// Migrates the VM behind `source` (a QMP monitor of a running guest) to
/// `dest` at `dest_ip`, and measures it. The link is the only limit:
/// QEMU's bandwidth cap is lifted.
pub async fn migrate(
    source: &QmpClient,
    dest: &Destination,
    dest_ip: std::net::Ipv4Addr,
    mode: Mode,
) -> anyhow::Result<FullResult> {
    set_capabilities(source, mode).await?;
    source
        .execute_raw(
            "migrate-set-parameters",
            json!({ "max-bandwidth": 100u64 << 30 }),
        )
        .await?;
    let started = Instant::now();
    source
        .execute_raw(
            "migrate",
            json!({ "uri": format!("tcp:{dest_ip}:{}", dest.port) }),
        )
        .await?;
    if mode == Mode::Postcopy {
        source
            .execute_raw("migrate-start-postcopy", serde_json::Value::Null)
            .await?;
    }
    let mut running_at = None;
    let deadline = started + Duration::from_secs(1800);
    let info = loop {
        if running_at.is_none() && dest.qemu.status().await? == RunState::Running {
            running_at = Some(started.elapsed());
        }
        let info: MigrationInfo = source.execute(&QueryMigrate {}).await?;
        match info.status {
            Some(MigrationStatus::Completed) => break info,
            Some(s @ (MigrationStatus::Failed | MigrationStatus::Cancelled)) => bail!(
                "{mode:?} migration {s:?}: {}",
                info.error_desc.unwrap_or_default()
            ),
            _ if Instant::now() > deadline => bail!("{mode:?} migration did not finish in 30 min"),
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    let total = started.elapsed();
    // After `completed` the destination starts at once; wait for it.
    while running_at.is_none() {
        if dest.qemu.status().await? == RunState::Running {
            running_at = Some(started.elapsed());
        } else if started.elapsed() > total + Duration::from_secs(30) {
            bail!("the destination did not run after the {mode:?} migration completed");
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let ram = info.ram.unwrap_or_default();
    let num = |k: &str| ram.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    Ok(FullResult {
        latency_ms: running_at.unwrap_or(total).as_secs_f64() * 1000.0,
        total_ms: total.as_secs_f64() * 1000.0,
        downtime_ms: info.downtime.unwrap_or(0) as f64,
        bytes: num("transferred"),
        normal_pages: num("normal"),
        zero_pages: num("duplicate"),
    })
}
