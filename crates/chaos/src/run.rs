//! Running one case of the matrix on real test hosts: a fresh cluster with
//! the fault armed, the handover, the strike, the recovery (a killed daemon
//! is restarted, the daemons settle by themselves), and the measurements.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use jettison_daemon::fault::{FAULT_ENV, MARK_ENV};
use jettison_demo::console::summarise;
use jettison_demo::procs::qemu_pids;
use jettison_demo::{scenario, Binaries, Cluster, ClusterOptions, GuestImage};
use jettison_wire::Message;
use serde::Serialize;

use crate::cases::{armed_in_agent, fault_spec, qemu_on_desktop, Case, Fault, Op, Side};
use crate::disk;
use crate::measure::{alive, copies_running, settled};

/// What every case shares.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The daemons.
    pub bins: Binaries,
    /// The test guest.
    pub image: GuestImage,
    /// Where each case's cluster keeps its files.
    pub work_root: PathBuf,
    /// The accelerator.
    pub accel: String,
}

/// How long a pause at a step lasts: the strike happens during it.
const PAUSE_MS: u64 = 3_000;
/// How long the server's link stays down.
const LINK_DOWN: Duration = Duration::from_secs(12);
/// How long the daemons get to settle after the strike.
const SETTLE: Duration = Duration::from_secs(90);
/// The VM's disk (a fresh image per case, formatted by the guest).
const DISK_MIB: u64 = 16;
/// Seconds between the guest's disk writes.
const DISK_INTERVAL_S: u32 = 1;

/// One case's outcome: a row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The case.
    pub name: String,
    /// The step or message the fault struck at.
    pub step: String,
    /// The fault (snake case).
    pub fault: String,
    /// The handover, or `stay_away` for a restart while consolidated.
    pub op: String,
    /// Guests whose QMP status is `running`, on both hosts.
    pub copies_running: u32,
    /// Where the running copy is.
    pub runs_at: Option<Side>,
    /// Failures the guest's memory checker reported, and corrupt lines.
    pub guest_check_failures: u64,
    /// Chat connections the office peer saw end.
    pub connection_resets: u64,
    /// Exactly one copy runs and the guest is alive (the office peer hears
    /// its heartbeats after the daemons settled).
    pub recovered: bool,
    /// The VM was restarted from its last consistent state.
    pub rolled_back: bool,
    /// Completed disk writes (distinct `JTS DISK` lines) the disk the VM
    /// ends with must hold: all the guest reported, but for a rolled-back
    /// VM what it wrote on the server after the fault's step.
    pub disk_writes_checked: u64,
    /// Of those, the ones that disk does not hold (`None`: not read).
    pub disk_writes_lost: Option<u64>,
    /// The guest completed a write where it runs after the case settled
    /// (within 15 s), so the check covers the disk it ends with being
    /// written; informative (a guest left running by a killed agent writes
    /// with nobody reading its console).
    pub disk_written_after_settling: bool,
    /// How long the guest stood still across a server restart (from the
    /// checkpoint it resumed from to its resume), ms.
    pub restart_pause_ms: Option<f64>,
    /// From the restarted daemon's start to the guest resumed, s.
    pub recovery_s: Option<f64>,
    /// The guest's work lost in a crash: from the checkpoint it rolled back
    /// to until the crash, s.
    pub work_lost_s: Option<f64>,
    /// The checkpoints the server took (downtime ms, bytes written).
    #[serde(skip)]
    pub checkpoints: Vec<(f64, u64)>,
    /// Every expectation of the case held.
    pub passed: bool,
    /// Seconds the case took.
    pub seconds: f64,
    /// What went wrong, if anything.
    pub detail: String,
}

/// What a case promises.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// Where the VM runs once the daemons have settled.
    pub runs_at: Side,
    /// Whether it was restarted from its last consistent state (`None`:
    /// either is correct).
    pub rolled_back: Option<bool>,
}

/// A value's serde name (an enum variant in snake case).
pub fn snake(v: impl Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

impl Outcome {
    /// A row not measured yet.
    pub fn new(name: &str, step: &str, fault: String, op: String) -> Self {
        Outcome {
            name: name.into(),
            step: step.into(),
            fault,
            op,
            copies_running: 0,
            runs_at: None,
            guest_check_failures: 0,
            connection_resets: 0,
            recovered: false,
            rolled_back: false,
            disk_writes_checked: 0,
            disk_writes_lost: None,
            disk_written_after_settling: false,
            restart_pause_ms: None,
            recovery_s: None,
            work_lost_s: None,
            checkpoints: Vec::new(),
            passed: false,
            seconds: 0.0,
            detail: String::new(),
        }
    }

    /// Judges the outcome of a run that ended with `result`.
    pub fn finish(&mut self, expect: &Expect, result: anyhow::Result<()>, started: Instant) {
        if let Err(e) = result {
            self.detail = format!("{e:#}");
        }
        self.passed = self.detail.is_empty() && judge(expect, self).is_none();
        if self.detail.is_empty() {
            self.detail = judge(expect, self).unwrap_or_default();
        }
        self.seconds = started.elapsed().as_secs_f64();
    }
}

impl Case {
    /// What this case promises.
    pub fn expect(&self) -> Expect {
        Expect {
            runs_at: self.runs_at,
            rolled_back: self.rolled_back,
        }
    }
}

/// Runs one case; a harness failure is a failed case with its reason.
pub async fn run_case(setup: &Setup, case: &Case) -> Outcome {
    let started = Instant::now();
    let mut out = Outcome::new(case.name, case.step, snake(case.fault), snake(case.op));
    let result = run(setup, case, &mut out).await;
    out.finish(&case.expect(), result, started);
    out
}

/// Why an outcome breaks the case's promise (`None`: it keeps it).
pub fn judge(case: &Expect, o: &Outcome) -> Option<String> {
    let mut why = Vec::new();
    if o.copies_running != 1 {
        why.push(format!("{} copies running", o.copies_running));
    }
    if o.runs_at != Some(case.runs_at) {
        why.push(format!(
            "runs at {:?}, expected {:?}",
            o.runs_at, case.runs_at
        ));
    }
    if !o.recovered {
        why.push("no heartbeat from the guest after settling".into());
    }
    if o.guest_check_failures != 0 {
        why.push(format!("{} guest check failures", o.guest_check_failures));
    }
    // A guest restarted from an older state may lose its connection.
    if o.connection_resets != 0 && case.rolled_back != Some(true) {
        why.push(format!("{} connection resets", o.connection_resets));
    }
    match o.disk_writes_lost {
        None => why.push("the disk was not checked".into()),
        Some(_) if o.disk_writes_checked == 0 => {
            why.push("the guest reported no completed disk write".into())
        }
        Some(0) => {}
        Some(n) => why.push(format!(
            "{n} of {} completed disk writes lost",
            o.disk_writes_checked
        )),
    }
    if let Some(expected) = case.rolled_back {
        if expected != o.rolled_back {
            why.push(format!(
                "rolled back: {}, expected {expected}",
                o.rolled_back
            ));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

async fn run(setup: &Setup, case: &Case, out: &mut Outcome) -> anyhow::Result<()> {
    let mark = setup
        .work_root
        .join(format!("mark-{}-{}", std::process::id(), case.name));
    let _ = std::fs::remove_file(&mark);
    let env = vec![
        (FAULT_ENV.to_string(), fault_spec(case, PAUSE_MS)),
        (MARK_ENV.to_string(), mark.display().to_string()),
    ];
    let (agent_env, server_env) = if armed_in_agent(case) {
        (env, Vec::new())
    } else {
        (Vec::new(), env)
    };
    let mut cluster = start_cluster(setup, agent_env, server_env, |_| {}).await?;
    if case.op == Op::Reintegrate {
        scenario::migrate(&cluster)
            .await
            .context("the clean migration before the case")?;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let request = match case.op {
        Op::Migrate => Message::OpMigrate {
            vm: cluster.vm.clone(),
        },
        Op::Reintegrate => Message::OpReintegrate {
            vm: cluster.vm.clone(),
            verify: false,
        },
    };
    let socket = cluster.agent_socket.clone();
    let op_started = ms_since_epoch(std::time::SystemTime::now()).unwrap_or(0);
    let op = tokio::spawn(async move {
        jettison_daemon::request(&socket, &request, Duration::from_secs(300)).await
    });
    if case.fault != Fault::DropReply {
        wait_for(&mark, Duration::from_secs(180)).await?;
        strike(&mut cluster, case).await?;
    }
    // When the fault's step was reached (for a dropped message, when the
    // handover began): a rollback may lose what the guest wrote on the
    // server after it.
    let fault_ms = mark_ms(&mark).unwrap_or(op_started);
    let _ = tokio::time::timeout(Duration::from_secs(360), op).await;
    // Recovery: a killed daemon comes back, without the fault.
    match case.fault {
        Fault::KillAgent => {
            cluster.daemon_env[0].clear();
            cluster.start_agent()?;
            cluster.wait_ready(true).await?;
        }
        Fault::KillServer => {
            cluster.daemon_env[1].clear();
            cluster.start_server()?;
            cluster.wait_ready(false).await?;
        }
        _ => {}
    }
    settle_and_measure(&mut cluster, out, |_| Some(fault_ms)).await
}

/// A fresh cluster of test hosts for a case (a 256 MiB guest with a NIC
/// and a disk, on a LAN with the office peer), once its guest is ready and
/// has completed a disk write; `tune` adjusts the options.
pub async fn start_cluster(
    setup: &Setup,
    agent_env: Vec<(String, String)>,
    server_env: Vec<(String, String)>,
    tune: impl FnOnce(&mut ClusterOptions),
) -> anyhow::Result<Cluster> {
    let mut opts = ClusterOptions {
        memory_mib: 256,
        fill_pct: 10,
        accel: setup.accel.clone(),
        work_root: setup.work_root.clone(),
        keep: true,
        lan: true,
        agent_env,
        server_env,
        disk_mib: Some(DISK_MIB),
        disk_interval_s: Some(DISK_INTERVAL_S),
        ..ClusterOptions::default()
    };
    tune(&mut opts);
    let cluster = Cluster::start(&setup.bins, &setup.image, &opts).await?;
    cluster
        .wait_console("JTS READY", Duration::from_secs(300))
        .await?;
    // At least one completed write before the case, for the disk check.
    cluster
        .wait_console("JTS DISK writes=", Duration::from_secs(60))
        .await?;
    Ok(cluster)
}

/// Lets the daemons settle, then measures: copies running and where, the
/// guest alive, its checks, the peer's resets, a rollback (restarted at
/// home from its snapshot, or on the server from a checkpoint after a
/// crash), and the disk. `rolled_back_since` gives, for a rolled-back VM,
/// the host ms after which its writes on the server may be lost (`None`:
/// none may).
pub async fn settle_and_measure(
    cluster: &mut Cluster,
    out: &mut Outcome,
    rolled_back_since: impl FnOnce(&Cluster) -> Option<u64>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let (copies, at) = copies_running(cluster).await;
        out.copies_running = copies;
        out.runs_at = at;
        if (copies == 1 && settled(cluster).await) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let server_log = cluster.daemon_log("server");
    out.rolled_back = cluster.daemon_log("agent").contains("rolled back")
        || server_log.contains("after a crash: rolled back");
    // A guest rolled back to an older state finds its chat connection out
    // of step with the peer's: it reconnects after the silence its client
    // allows, so it gets that long to be heard.
    let within = if out.rolled_back {
        jettison_guest::net::SILENCE + Duration::from_secs(20)
    } else {
        Duration::from_secs(20)
    };
    out.recovered = out.copies_running == 1 && alive(cluster, within).await;
    let logs = cluster.console_logs();
    let summary = summarise(&logs.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    out.guest_check_failures = summary.check_failures + summary.corrupt_lines;
    out.connection_resets = cluster
        .peer_status()
        .ok()
        .and_then(|s| s.clients.get(&cluster.vm).map(|c| c.resets))
        .unwrap_or(0);
    out.checkpoints = crate::logs::checkpoints(&server_log);
    // Last: stops the VM (and the agent, when it runs at home).
    if let (1, Some(at)) = (out.copies_running, out.runs_at) {
        let settled_ms = ms_since_epoch(std::time::SystemTime::now()).unwrap_or(0);
        out.disk_written_after_settling = disk::next_write(cluster, at, settled_ms).await;
        let since = out
            .rolled_back
            .then(|| rolled_back_since(cluster))
            .flatten();
        let content = disk::read_final(cluster, at)
            .await
            .context("checking the disk")?;
        let logs = cluster.console_logs();
        let promised = disk::promised(&logs[0], &logs[1], since);
        out.disk_writes_checked = promised.len() as u64;
        out.disk_writes_lost = Some(disk::lost(&content, &promised));
    }
    Ok(())
}

/// When the fault's mark was written (host ms).
fn mark_ms(mark: &Path) -> Option<u64> {
    ms_since_epoch(std::fs::metadata(mark).ok()?.modified().ok()?)
}

/// Host ms, as the console logs' lines have them.
pub fn ms_since_epoch(t: std::time::SystemTime) -> Option<u64> {
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    u64::try_from(ms).ok()
}

/// The fault, struck while the armed daemon pauses at its step.
async fn strike(cluster: &mut Cluster, case: &Case) -> anyhow::Result<()> {
    match case.fault {
        Fault::KillAgent => cluster.kill_agent(),
        Fault::KillServer => cluster.kill_server(),
        Fault::KillSourceQemu | Fault::KillDestQemu => {
            let desktop = qemu_on_desktop(case).unwrap_or(true);
            let needle = if desktop {
                cluster.mem_path.display().to_string()
            } else {
                cluster
                    .mount_dir
                    .join(format!("{}.mem", cluster.vm))
                    .display()
                    .to_string()
            };
            let pids = qemu_pids(&needle);
            anyhow::ensure!(!pids.is_empty(), "no QEMU with {needle} to kill");
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        Fault::LinkDown => {
            cluster.server_link(false)?;
            tokio::time::sleep(LINK_DOWN).await;
            cluster.server_link(true)?;
        }
        Fault::DropReply => {}
    }
    Ok(())
}

async fn wait_for(mark: &Path, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !mark.exists() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the fault's step was never reached within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::ALL;

    fn kept(case: &Case) -> Outcome {
        Outcome {
            copies_running: 1,
            runs_at: Some(case.runs_at),
            recovered: true,
            rolled_back: case.rolled_back.unwrap_or(false),
            disk_writes_checked: 7,
            disk_writes_lost: Some(0),
            disk_written_after_settling: true,
            ..Outcome::new(case.name, case.step, snake(case.fault), snake(case.op))
        }
    }

    #[test]
    fn fault_and_op_are_named_in_snake_case() {
        let o = kept(&ALL[0]);
        assert_eq!((o.fault.as_str(), o.op.as_str()), ("kill_agent", "migrate"));
    }

    #[test]
    fn a_lost_or_unchecked_disk_write_fails_the_case() {
        let case = &ALL[0];
        assert_eq!(judge(&case.expect(), &kept(case)), None);
        let lost = Outcome {
            disk_writes_lost: Some(2),
            ..kept(case)
        };
        assert_eq!(
            judge(&case.expect(), &lost).as_deref(),
            Some("2 of 7 completed disk writes lost")
        );
        let unread = Outcome {
            disk_writes_lost: None,
            ..kept(case)
        };
        assert!(judge(&case.expect(), &unread).is_some());
        let nothing = Outcome {
            disk_writes_checked: 0,
            ..kept(case)
        };
        assert!(judge(&case.expect(), &nothing).is_some());
        // Informative only.
        let quiet = Outcome {
            disk_written_after_settling: false,
            ..kept(case)
        };
        assert_eq!(judge(&case.expect(), &quiet), None);
    }
}
