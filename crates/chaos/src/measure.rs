//! What a case measures once the daemons have recovered: the running
//! copies of the guest and where, whether the agent has settled, and
//! whether the guest is alive.

use std::path::Path;
use std::time::{Duration, Instant};

use jettison_demo::Cluster;
use jettison_qemu::qmp::QueryStatus;
use jettison_qemu::{LaunchOptions, QmpClient, RunState};
use jettison_wire::Message;

use crate::cases::Side;

/// Running copies of the guest on both hosts, and where the one is. A
/// daemon holds its QEMU's QMP connection (QEMU takes one at a time), so
/// each daemon is asked first (the agent asks its QEMU's QMP status); a QEMU
/// no daemon manages (left by a killed one) is asked directly.
pub async fn copies_running(cluster: &Cluster) -> (u32, Option<Side>) {
    let mut copies = 0;
    let mut at = None;
    // What each daemon says of a guest it runs itself.
    let sides = [
        (
            Side::Desktop,
            "agent-run",
            "home (running)",
            cluster.agent_request(Message::OpStatus).await,
        ),
        (
            Side::Server,
            "server-run",
            "consolidated",
            cluster.server_request(Message::OpStatus).await,
        ),
    ];
    for (side, dir, runs, status) in sides {
        let running = match status {
            Ok(Message::OpStatusReply { vms, .. }) => vms
                .iter()
                .any(|v| v.vm == cluster.vm && v.state.starts_with(runs)),
            _ => false,
        };
        let running = running || {
            // The server's QEMU has a run directory of its own in its run_dir.
            let run = match side {
                Side::Desktop => cluster.dir.join(dir),
                Side::Server => cluster.dir.join(dir).join(&cluster.vm),
            };
            let qmp = LaunchOptions::new(&cluster.vm, run).qmp_socket();
            qmp_running(&qmp, &cluster.vm).await
        };
        if running {
            copies += 1;
            at = Some(side);
        }
    }
    (copies, at)
}

/// Whether a QEMU answering on `qmp` (and not held by a daemon) runs.
async fn qmp_running(qmp: &Path, vm: &str) -> bool {
    let status = async {
        let q = QmpClient::connect(qmp, vm).await.ok()?;
        q.execute(&QueryStatus {}).await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), status).await,
        Ok(Some(s)) if s.status == RunState::Running
    )
}

/// Whether the agent has nothing left to settle.
pub async fn settled(cluster: &Cluster) -> bool {
    match cluster.agent_request(Message::OpStatus).await {
        Ok(Message::OpStatusReply { vms, .. }) => vms
            .iter()
            .all(|v| !v.state.contains("busy") && !v.state.contains("doubt")),
        _ => false,
    }
}

/// Whether the guest is alive after settling: the office peer hears a new
/// heartbeat on its chat connection within `within` (the console would not
/// do: a guest left by a killed agent has nobody reading its console).
pub async fn alive(cluster: &Cluster, within: Duration) -> bool {
    let heartbeats = |c: &Cluster| {
        c.peer_status()
            .ok()
            .and_then(|s| s.clients.get(&c.vm).map(|c| c.heartbeats))
    };
    let Some(before) = heartbeats(cluster) else {
        return false;
    };
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if heartbeats(cluster).is_some_and(|n| n > before) {
            return true;
        }
    }
    false
}
