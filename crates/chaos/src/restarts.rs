//! The restart cases (issue 12): with the VM consolidated, a daemon is
//! restarted (SIGTERM) or killed (SIGKILL), the server's host crashes, or
//! the desktop reboots while it sleeps; the guest must go on, exactly once,
//! its checks passing, with at most one checkpoint interval of its work
//! lost to a crash, and nothing lost to a planned restart.

use std::time::{Duration, Instant};

use jettison_demo::procs::qemu_pids;
use jettison_demo::{scenario, Cluster};
use serde::Serialize;

use crate::cases::Side;
use crate::logs;
use crate::run::{self, ms_since_epoch, snake, Expect, Outcome, Setup};

/// What strikes while the VM is consolidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// `systemctl restart jettison-server`: SIGTERM, then a new process.
    StopServer,
    /// SIGKILL of the server daemon, then a new process.
    KillServer,
    /// The server's host crashes: SIGKILL of the daemon and of the guest's
    /// QEMU, and whatever the last checkpoint does not cover is lost (the
    /// replicas are deleted), then a new process.
    HostCrash,
    /// SIGKILL of the guest's QEMU on the server (a QEMU crash): the
    /// server resumes the VM from its last checkpoint.
    KillServerQemu,
    /// `systemctl restart jettison-agent` while the VM is away.
    StopAgent,
    /// SIGKILL of the agent while the VM is away, then a new one.
    KillAgent,
    /// The desktop reboots while it sleeps: thawed, its agent killed, its
    /// `/dev/shm` memory file gone, a fresh agent.
    RebootDesktop,
}

/// One restart case.
#[derive(Debug, Clone, Copy)]
pub struct RestartCase {
    /// Its name.
    pub name: &'static str,
    /// What strikes.
    pub fault: Restart,
    /// Whether the guest must have been rolled back (to a checkpoint).
    pub rolled_back: bool,
    /// Where it runs at the end: on the server, or at home for a desktop
    /// whose user came back after the reboot (its pages came from the
    /// memory file put back from disk, its writes home with it).
    pub runs_at: Side,
}

const fn case(name: &'static str, fault: Restart, rolled_back: bool, runs_at: Side) -> RestartCase {
    RestartCase {
        name,
        fault,
        rolled_back,
        runs_at,
    }
}

/// Every restart case.
pub const ALL: &[RestartCase] = &[
    case(
        "restart-server-while-away",
        Restart::StopServer,
        false,
        Side::Server,
    ),
    case(
        "kill-server-while-away",
        Restart::KillServer,
        true,
        Side::Server,
    ),
    case(
        "host-crash-while-away",
        Restart::HostCrash,
        true,
        Side::Server,
    ),
    case(
        "kill-server-qemu-while-away",
        Restart::KillServerQemu,
        true,
        Side::Server,
    ),
    case(
        "restart-agent-while-away",
        Restart::StopAgent,
        false,
        Side::Server,
    ),
    case(
        "kill-agent-while-away",
        Restart::KillAgent,
        false,
        Side::Server,
    ),
    case(
        "reboot-desktop-while-asleep",
        Restart::RebootDesktop,
        false,
        Side::Desktop,
    ),
];

/// The quick subset (CI): a planned server restart and a host crash.
pub const QUICK: &[&str] = &["restart-server-while-away", "host-crash-while-away"];

/// The cases to run.
pub fn select(quick: bool) -> Vec<RestartCase> {
    ALL.iter()
        .filter(|c| !quick || QUICK.contains(&c.name))
        .copied()
        .collect()
}

/// The server's checkpoint interval in these cases, s: short, so that a
/// crash finds a periodic checkpoint to roll back to.
const CHECKPOINT_S: u64 = 5;

/// Runs one restart case.
pub async fn run_case(setup: &Setup, case: &RestartCase) -> Outcome {
    let started = Instant::now();
    let mut out = Outcome::new(
        case.name,
        "consolidated",
        snake(case.fault),
        "stay_away".into(),
    );
    let result = run(setup, case, &mut out).await;
    let expect = Expect {
        runs_at: case.runs_at,
        rolled_back: Some(case.rolled_back),
    };
    out.finish(&expect, result, started);
    out
}

async fn run(setup: &Setup, case: &RestartCase, out: &mut Outcome) -> anyhow::Result<()> {
    let power = case.fault == Restart::RebootDesktop;
    let mut cluster = run::start_cluster(setup, Vec::new(), Vec::new(), |o| {
        o.checkpoint_interval_s = Some(CHECKPOINT_S);
        o.power = power;
        if power {
            // Misses in groups, so that the desktop gets to sleep.
            o.prefetch = Some(jettison_power_model::PrefetchConfig::Neighbourhood { pages: 64 });
        }
    })
    .await?;
    scenario::migrate(&cluster).await?;
    match case.fault {
        Restart::KillServer | Restart::HostCrash | Restart::KillServerQemu => {
            // A periodic checkpoint, then a moment of work that it does not
            // hold (a different moment each run).
            wait_log(
                &cluster,
                "server",
                "why=\"periodic\"",
                Duration::from_secs(120),
            )
            .await?;
            let ms = 500 + u64::from(std::process::id() % 8) * 500;
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Restart::RebootDesktop => {
            wait_log(
                &cluster,
                "agent",
                "asleep (frozen)",
                Duration::from_secs(180),
            )
            .await?;
        }
        _ => tokio::time::sleep(Duration::from_secs(4)).await,
    }
    let struck_ms = ms_since_epoch(std::time::SystemTime::now()).unwrap_or(0);
    let restarted = strike(&mut cluster, case.fault)?;
    let server_side = matches!(
        case.fault,
        Restart::StopServer | Restart::KillServer | Restart::HostCrash | Restart::KillServerQemu
    );
    if server_side {
        if case.fault != Restart::KillServerQemu {
            cluster.wait_ready(false).await?;
        }
        let needle = if case.fault == Restart::StopServer {
            "nothing lost"
        } else {
            "after a crash"
        };
        wait_log(&cluster, "server", needle, Duration::from_secs(60)).await?;
        out.recovery_s = Some(restarted.elapsed().as_secs_f64());
        if let Some((paused_ms, checkpoint_ms)) =
            logs::resumed(&cluster.daemon_log("server"), needle)
        {
            out.restart_pause_ms = Some(paused_ms);
            if case.fault != Restart::StopServer {
                out.work_lost_s = Some(struck_ms.saturating_sub(checkpoint_ms) as f64 / 1000.0);
            }
        }
    } else {
        cluster.wait_ready(true).await?;
        out.recovery_s = Some(restarted.elapsed().as_secs_f64());
    }
    if case.fault == Restart::RebootDesktop {
        wait_log(
            &cluster,
            "agent",
            "put back from its durable copy",
            Duration::from_secs(60),
        )
        .await?;
        // The user comes back: the VM comes home from the rebooted desktop.
        cluster.user_returns()?;
        wait_log(&cluster, "agent", "VM is home", Duration::from_secs(180)).await?;
    }
    run::settle_and_measure(&mut cluster, out, |c| {
        logs::resumed(&c.daemon_log("server"), "after a crash").map(|(_, at)| at)
    })
    .await
}

/// Strikes; returns when the new daemon was started.
fn strike(cluster: &mut Cluster, fault: Restart) -> anyhow::Result<Instant> {
    match fault {
        Restart::StopServer => {
            let status = cluster.stop_server();
            anyhow::ensure!(
                status.is_some_and(|s| s.success()),
                "the server did not exit cleanly on SIGTERM: {status:?}"
            );
        }
        Restart::KillServer => cluster.kill_server(),
        Restart::KillServerQemu => {
            kill_server_qemu(cluster)?;
            return Ok(Instant::now());
        }
        Restart::HostCrash => {
            cluster.kill_server();
            kill_server_qemu(cluster)?;
            // What no checkpoint covers is gone with the host.
            for entry in std::fs::read_dir(cluster.dir.join("replica"))? {
                std::fs::remove_file(entry?.path())?;
            }
        }
        Restart::StopAgent => {
            cluster.stop_agent();
        }
        Restart::KillAgent => cluster.kill_agent(),
        Restart::RebootDesktop => {
            cluster.reboot_desktop()?;
            return Ok(Instant::now());
        }
    }
    let at = Instant::now();
    match fault {
        Restart::StopAgent | Restart::KillAgent => cluster.start_agent()?,
        _ => cluster.start_server()?,
    }
    Ok(at)
}

/// SIGKILL of the guest's QEMU on the server.
fn kill_server_qemu(cluster: &Cluster) -> anyhow::Result<()> {
    let needle = cluster.mount_dir.join(format!("{}.mem", cluster.vm));
    let pids = qemu_pids(&needle.display().to_string());
    anyhow::ensure!(!pids.is_empty(), "no QEMU on {}", needle.display());
    for pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    Ok(())
}

async fn wait_log(
    cluster: &Cluster,
    which: &str,
    needle: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !cluster.daemon_log(which).contains(needle) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the {which} log did not say {needle:?} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_restart_is_covered() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(ALL[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
        }
        for q in QUICK {
            assert!(ALL.iter().any(|c| c.name == *q), "{q}");
        }
        for f in [
            Restart::StopServer,
            Restart::KillServer,
            Restart::HostCrash,
            Restart::KillServerQemu,
            Restart::StopAgent,
            Restart::KillAgent,
            Restart::RebootDesktop,
        ] {
            assert!(ALL.iter().any(|c| c.fault == f), "{f:?}");
        }
        // Only a crash of the server's side rolls the guest back.
        for c in ALL {
            assert_eq!(
                c.rolled_back,
                matches!(
                    c.fault,
                    Restart::KillServer | Restart::HostCrash | Restart::KillServerQemu
                ),
                "{c:?}"
            );
        }
    }
}
