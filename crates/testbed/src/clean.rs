//! Removing what killed runs left behind (`cargo xtask testbed clean`).
//!
//! A run is *dead* when its owning process is gone: for a LAN with a state
//! record, the recorded pid and start time; for anything else, the pid in
//! its run id `jt<pid>x<n>`. With `all`, every run counts as dead.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tracing::{info, warn};

use crate::lan::{GRACE, STATE_DIR};
use crate::names::{self, Record, RunId};
use crate::{sys, TestbedError};

/// What [`clean_leftovers`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// State records removed.
    pub records: Vec<PathBuf>,
    /// Namespaces deleted.
    pub netns: Vec<String>,
    /// Processes in those namespaces stopped.
    pub processes: Vec<i32>,
    /// FUSE mounts detached.
    pub mounts: Vec<PathBuf>,
    /// QEMU processes killed.
    pub qemus: Vec<i32>,
    /// `/dev/shm` files removed.
    pub shm_files: Vec<PathBuf>,
    /// Things that could not be removed, with the reason.
    pub errors: Vec<String>,
}

impl Report {
    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.netns.is_empty()
            && self.processes.is_empty()
            && self.mounts.is_empty()
            && self.qemus.is_empty()
            && self.shm_files.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: Vec<String>| {
            if v.is_empty() {
                "-".into()
            } else {
                v.join(" ")
            }
        };
        let paths = |v: &[PathBuf]| list(v.iter().map(|p| p.display().to_string()).collect());
        let nums = |v: &[i32]| list(v.iter().map(ToString::to_string).collect());
        writeln!(f, "records:   {}", paths(&self.records))?;
        writeln!(f, "netns:     {}", list(self.netns.clone()))?;
        writeln!(f, "processes: {}", nums(&self.processes))?;
        writeln!(f, "mounts:    {}", paths(&self.mounts))?;
        writeln!(f, "qemus:     {}", nums(&self.qemus))?;
        writeln!(f, "shm files: {}", paths(&self.shm_files))?;
        for e in &self.errors {
            writeln!(f, "error:     {e}")?;
        }
        Ok(())
    }
}

fn dead(id: RunId, all: bool) -> bool {
    all || !sys::alive(id.pid, None)
}

fn remove_netns(nss: &[String], r: &mut Report) {
    r.processes.extend(sys::kill_netns_processes(nss, GRACE));
    for ns in nss {
        if !Path::new("/run/netns").join(ns).exists() {
            continue;
        }
        match sys::delete_netns(ns) {
            Ok(()) => r.netns.push(ns.clone()),
            Err(e) => r.errors.push(format!("netns {ns}: {e}")),
        }
    }
}

fn clean_records(all: bool, r: &mut Report) {
    let Ok(dir) = std::fs::read_dir(STATE_DIR) else {
        return;
    };
    for e in dir.flatten() {
        let path = e.path();
        let Some(rec) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| Record::parse(&t))
        else {
            r.errors
                .push(format!("unreadable record {}", path.display()));
            continue;
        };
        if all || !sys::alive(rec.owner_pid, Some(rec.owner_start)) {
            remove_netns(&rec.netns, r);
            match std::fs::remove_file(&path) {
                Ok(()) => r.records.push(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => r.errors.push(format!("{}: {e}", path.display())),
            }
        }
    }
}

/// Mount points of FUSE filesystems (from `/proc/self/mountinfo`).
fn fuse_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split_whitespace().next()?;
            let mp = pre.split_whitespace().nth(4)?;
            fstype
                .starts_with("fuse")
                .then(|| PathBuf::from(mp.replace("\\040", " ")))
        })
        .collect()
}

fn clean_mounts(all: bool, r: &mut Report) {
    for mp in fuse_mounts() {
        let text = mp.to_string_lossy();
        if names::run_ids_in(&text).into_iter().any(|id| dead(id, all)) {
            match nix::mount::umount2(&mp, nix::mount::MntFlags::MNT_DETACH) {
                Ok(()) => r.mounts.push(mp),
                Err(e) => r.errors.push(format!("umount {}: {e}", mp.display())),
            }
        }
    }
}

fn clean_qemus(all: bool, r: &mut Report) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in procs.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        let prog = cmd.split('\0').next().unwrap_or("");
        if !prog
            .rsplit('/')
            .next()
            .unwrap_or("")
            .starts_with("qemu-system")
        {
            continue;
        }
        if names::run_ids_in(&cmd).into_iter().any(|id| dead(id, all)) {
            match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                Ok(()) => r.qemus.push(pid),
                Err(e) => r.errors.push(format!("kill qemu {pid}: {e}")),
            }
        }
    }
}

fn clean_shm(dir: &Path, all: bool, r: &mut Report) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if names::parse_run_id(&name).is_some_and(|(id, _)| dead(id, all)) {
            match std::fs::remove_file(e.path()) {
                Ok(()) => r.shm_files.push(e.path()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => r.errors.push(format!("{}: {err}", e.path().display())),
            }
        }
    }
}

/// Removes the leftovers of dead runs (every run with `all`): state
/// records and their namespaces (with the processes inside), namespaces
/// named `jt<pid>x<n>-*` of dead pids, FUSE mounts and QEMU processes whose
/// mount point or command line names a dead run, and `/dev/shm/jt<pid>x<n>*`
/// files. Runs of live processes are left alone.
pub fn clean_leftovers(all: bool) -> Result<Report, TestbedError> {
    let mut r = Report::default();
    clean_qemus(all, &mut r); // first: they may hold mounts and files open
    clean_records(all, &mut r);
    let orphans: BTreeSet<String> = sys::netns_list()
        .into_iter()
        .filter(|ns| names::netns_run_id(ns).is_some_and(|id| dead(id, all)))
        .collect();
    remove_netns(&orphans.into_iter().collect::<Vec<_>>(), &mut r);
    clean_mounts(all, &mut r);
    clean_shm(Path::new("/dev/shm"), all, &mut r);
    if r.is_empty() {
        info!("no leftovers");
    } else {
        info!("removed leftovers:\n{r}");
    }
    for e in &r.errors {
        warn!("{e}");
    }
    Ok(r)
}
