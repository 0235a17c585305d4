//! The few system operations the testbed needs: `ip` commands, processes
//! in a namespace, liveness of a process.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tracing::debug;

use crate::names::stat_start_time;
use crate::TestbedError;

/// Runs `ip <args>`; errors carry the command and its stderr.
pub fn ip<S: AsRef<str>>(args: &[S]) -> Result<String, TestbedError> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    debug!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TestbedError::Spawn("ip".into(), e))?;
    if !out.status.success() {
        return Err(TestbedError::Command {
            command: format!("ip {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Names of all network namespaces (`ip netns list`).
pub fn netns_list() -> Vec<String> {
    ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Processes whose network namespace is `ns` (`ip netns pids`).
pub fn netns_pids(ns: &str) -> Vec<i32> {
    ip(&["netns", "pids", ns])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&p| p != std::process::id() as i32)
        .collect()
}

fn pids_in(nss: &[String]) -> Vec<i32> {
    nss.iter().flat_map(|ns| netns_pids(ns)).collect()
}

fn signal_all(pids: &[i32], sig: Signal) {
    for &p in pids {
        let _ = kill(Pid::from_raw(p), sig);
    }
}

/// Stops every process in the namespaces `nss`: SIGTERM, up to `grace` to
/// exit, then SIGKILL. Returns the pids that were running.
pub fn kill_netns_processes(nss: &[String], grace: Duration) -> Vec<i32> {
    let pids = pids_in(nss);
    if pids.is_empty() {
        return pids;
    }
    signal_all(&pids, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !pids_in(nss).is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = pids_in(nss);
    if !left.is_empty() {
        debug!(?left, "SIGKILL after {grace:?}");
        signal_all(&left, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !pids_in(nss).is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    pids
}

/// Deletes namespace `ns` (and with it every link inside). A namespace
/// already gone is fine.
pub fn delete_netns(ns: &str) -> Result<(), TestbedError> {
    let file = Path::new("/run/netns").join(ns);
    if !file.exists() {
        return Ok(());
    }
    match ip(&["netns", "del", ns]) {
        Err(_) if !file.exists() => Ok(()), // someone else (another cleaner) won
        r => r.map(|_| ()),
    }
}

/// The start time of process `pid`, if it exists.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let zombie = stat
        .rfind(')')
        .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
    if zombie {
        return None; // exited, not yet reaped: dead for our purposes
    }
    stat_start_time(&stat)
}

/// Whether process `pid` runs, and (when `start` is given) is the same
/// process that started at `start`, not a later one reusing the pid.
pub fn alive(pid: u32, start: Option<u64>) -> bool {
    match (start_time(pid), start) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(t), Some(s)) => t == s,
    }
}
