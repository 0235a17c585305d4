//! The victim VM: whether it still runs on the server untouched after an
//! attack, and whether it comes home with its memory and disk intact.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use jettison_demo::console::summarise;
use jettison_demo::{scenario, Cluster};
use jettison_wire::Message;

use crate::footprint::Change;
use crate::report::VictimCheck;

/// How long a new heartbeat may take to reach the office peer.
const HEARTBEAT_WITHIN: Duration = Duration::from_secs(15);

/// The victim's handover record on the server.
pub fn record_path(cluster: &Cluster) -> PathBuf {
    cluster
        .dir
        .join("server-state/handover")
        .join(format!("{}.json", cluster.vm))
}

/// Whether the server reports the victim consolidated and running.
pub async fn running_on_server(cluster: &Cluster) -> bool {
    match cluster.server_request(Message::OpStatus).await {
        Ok(Message::OpStatusReply { vms, .. }) => vms
            .iter()
            .any(|v| v.vm == cluster.vm && v.state.starts_with("consolidated")),
        _ => false,
    }
}

/// The office peer's count of the victim's heartbeats (a short blocking
/// read of its status port).
fn heartbeats(cluster: &Cluster) -> Option<u64> {
    cluster
        .peer_status()
        .ok()
        .and_then(|s| s.clients.get(&cluster.vm).map(|c| c.heartbeats))
}

/// Whether the office peer hears a new heartbeat from the guest soon.
pub async fn heartbeat(cluster: &Cluster) -> bool {
    let Some(before) = heartbeats(cluster) else {
        return false;
    };
    let deadline = Instant::now() + HEARTBEAT_WITHIN;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if heartbeats(cluster).is_some_and(|n| n > before) {
            return true;
        }
    }
    false
}

/// The victim after an attack, against its record before the attacks.
pub async fn check(cluster: &Cluster, record: &[u8], change: &Change) -> VictimCheck {
    VictimCheck {
        running: running_on_server(cluster).await,
        heartbeat: heartbeat(cluster).await,
        record_unchanged: std::fs::read(record_path(cluster)).is_ok_and(|r| r == record),
        nothing_removed: change.removed.is_empty(),
        came_home: None,
    }
}

/// How a homecoming went.
#[derive(Debug, Clone)]
pub struct Homecoming {
    /// Every check passed.
    pub ok: bool,
    /// What was checked, and what failed.
    pub detail: String,
}

/// Brings the victim home through its own agent, as its desktop would:
/// the server's view of its memory digested first (paused), then the
/// return with the desktop's memory digested, which must match; the
/// guest's own memory checks must report no failure, and it must beat at
/// home.
pub async fn come_home(cluster: &Cluster) -> Homecoming {
    let mut failed = Vec::new();
    let mut said = Vec::new();
    let result: anyhow::Result<()> = async {
        let (server_digest, _) = scenario::digest_server_view(cluster)
            .await
            .context("reading the server's view of its memory")?;
        let report = scenario::reintegrate(cluster, true).await?;
        said.push(format!(
            "home with {} dirty pages and {} disk blocks",
            report.dirty_pages, report.dirty_disk_blocks
        ));
        if report.image_digest.as_deref() != Some(server_digest.as_str()) {
            failed.push("memory at home differs from the server's".to_string());
        } else {
            said.push("memory digests match".into());
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        failed.push(format!("{e:#}"));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let logs = cluster.console_logs();
    let s = summarise(&logs.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    if s.check_failures + s.corrupt_lines > 0 {
        failed.push(format!(
            "guest memory checks: {} failures, {} corrupt lines",
            s.check_failures, s.corrupt_lines
        ));
    } else {
        said.push(format!("guest memory checks clean ({} checks)", s.checks));
    }
    if !heartbeat(cluster).await {
        failed.push("no heartbeat at home".into());
    }
    let ok = failed.is_empty();
    said.extend(failed.into_iter().map(|f| format!("FAILED: {f}")));
    Homecoming {
        ok,
        detail: said.join("; "),
    }
}

/// After the last homecoming, with the daemons stopped: the desktop's disk
/// image holds the guest's mail cache as it last reported it, and at least
/// what it wrote on the server.
pub fn disk_intact(cluster: &Cluster) -> Homecoming {
    let Some(image) = &cluster.disk_path else {
        return Homecoming {
            ok: false,
            detail: "the VM has no disk".into(),
        };
    };
    let logs = cluster.console_logs();
    match jettison_demo::disk::check(image, &logs[0], &logs[1]) {
        Ok(c) => Homecoming {
            ok: c.checksum_matches && c.holds_server_writes,
            detail: format!(
                "disk: mail cache {} bytes, checksum matches the guest's last report: {}, \
                 holds the {} writes made on the server: {}",
                c.file_bytes, c.checksum_matches, c.writes_on_server, c.holds_server_writes
            ),
        },
        Err(e) => Homecoming {
            ok: false,
            detail: format!("disk: FAILED: {e:#}"),
        },
    }
}
