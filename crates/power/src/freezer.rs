//! A freezer cgroup (v1) group: `/sys/fs/cgroup/freezer/jettison-<name>`.
//!
//! Membership in cgroup v1 is per task (thread): writing a pid to
//! `cgroup.procs` moves all of that process's threads, writing a thread id
//! to `tasks` moves only that thread, and a process forked later starts in
//! its parent's (forking thread's) group. Children that already exist are
//! **not** moved with their parent: add each of them. Writing `FROZEN` to
//! `freezer.state` starts freezing; the group reads `FREEZING` until every
//! task is stopped (a frozen task shows `D (disk sleep)` in
//! `/proc/<pid>/status`, waiting in `__refrigerator`). A frozen task does
//! not even die from SIGKILL until thawed. The kernel's network stack keeps
//! running: TCP handshakes to a frozen server still complete (the backlog
//! fills), only the application's replies stop.
//!
//! Dropping a [`FreezerGroup`] thaws it, moves its tasks back to the root
//! group and removes it; [`remove_leftovers`] does the same for groups that
//! a killed run left behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::PowerError;

/// Where the freezer hierarchy is mounted.
pub const FREEZER_ROOT: &str = "/sys/fs/cgroup/freezer";

/// Prefix of the groups made by this crate.
pub const GROUP_PREFIX: &str = "jettison-";

/// A freezer group's `freezer.state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreezerState {
    /// Running.
    Thawed,
    /// Freezing requested, some tasks still running.
    Freezing,
    /// Every task stopped.
    Frozen,
}

impl FreezerState {
    /// The kernel's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thawed => "THAWED",
            Self::Freezing => "FREEZING",
            Self::Frozen => "FROZEN",
        }
    }

    /// Parses the content of `freezer.state`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "THAWED" => Some(Self::Thawed),
            "FREEZING" => Some(Self::Freezing),
            "FROZEN" => Some(Self::Frozen),
            _ => None,
        }
    }
}

/// A freezer group this process created; removed on drop.
#[derive(Debug)]
pub struct FreezerGroup {
    root: PathBuf,
    path: PathBuf,
}

fn write(path: &Path, text: &str) -> Result<(), PowerError> {
    fs::write(path, text).map_err(PowerError::io(format!(
        "writing {text:?} to {}",
        path.display()
    )))
}

fn read(path: &Path) -> Result<String, PowerError> {
    fs::read_to_string(path).map_err(PowerError::io(format!("reading {}", path.display())))
}

impl FreezerGroup {
    /// Creates `jettison-<name>` under [`FREEZER_ROOT`]. The name must be a
    /// plain file name; the group must not exist yet.
    pub fn create(name: &str) -> Result<Self, PowerError> {
        Self::create_in(Path::new(FREEZER_ROOT), name)
    }

    /// Creates `jettison-<name>` under another freezer hierarchy root.
    pub fn create_in(root: &Path, name: &str) -> Result<Self, PowerError> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(PowerError::Invalid(format!(
                "bad freezer group name {name:?}"
            )));
        }
        let path = root.join(format!("{GROUP_PREFIX}{name}"));
        fs::create_dir(&path).map_err(PowerError::io(format!("creating {}", path.display())))?;
        debug!(path = %path.display(), "freezer group created");
        Ok(Self {
            root: root.to_owned(),
            path,
        })
    }

    /// The group's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves process `pid` (all its threads) into the group.
    pub fn add_process(&self, pid: u32) -> Result<(), PowerError> {
        write(&self.path.join("cgroup.procs"), &pid.to_string())
    }

    /// Moves one thread back to the root group (it will not be frozen).
    pub fn exempt_thread(&self, tid: i32) -> Result<(), PowerError> {
        write(&self.root.join("tasks"), &tid.to_string())
    }

    /// The processes with a task in the group.
    pub fn processes(&self) -> Result<Vec<u32>, PowerError> {
        Ok(read(&self.path.join("cgroup.procs"))?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }

    /// The group's current state.
    pub fn state(&self) -> Result<FreezerState, PowerError> {
        let text = read(&self.path.join("freezer.state"))?;
        FreezerState::parse(&text)
            .ok_or_else(|| PowerError::Invalid(format!("freezer.state {text:?}")))
    }

    /// Requests `state` (Thawed or Frozen) without waiting.
    pub fn request(&self, state: FreezerState) -> Result<(), PowerError> {
        write(&self.path.join("freezer.state"), state.as_str())
    }

    /// Requests `state` and polls until the group reads it. On timeout the
    /// request stays in force (a caller freezing should thaw again).
    pub async fn set(&self, state: FreezerState, timeout: Duration) -> Result<(), PowerError> {
        self.request(state)?;
        let deadline = Instant::now() + timeout;
        while self.state()? != state {
            if Instant::now() >= deadline {
                return Err(self.timeout(state, timeout));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    fn timeout(&self, state: FreezerState, timeout: Duration) -> PowerError {
        PowerError::FreezeTimeout {
            path: self.path.clone(),
            state: state.as_str(),
            timeout,
        }
    }

    /// Thaws, moves every task back to the root group and removes the group.
    fn teardown(&self) -> Result<(), PowerError> {
        teardown_path(&self.root, &self.path)
    }
}

fn teardown_path(root: &Path, path: &Path) -> Result<(), PowerError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    write(&path.join("freezer.state"), FreezerState::Thawed.as_str())?;
    loop {
        for pid in read(&path.join("cgroup.procs"))?.lines() {
            // A task may exit meanwhile: ESRCH is fine.
            let _ = fs::write(root.join("cgroup.procs"), pid.trim());
        }
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(PowerError::Io {
                    what: format!("removing {}", path.display()),
                    source: e,
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

impl Drop for FreezerGroup {
    fn drop(&mut self) {
        match self.teardown() {
            Ok(()) => debug!(path = %self.path.display(), "freezer group removed"),
            Err(e) => warn!(error = %e, "freezer group left behind"),
        }
    }
}

/// Thaws and removes every `jettison-*` freezer group (left by killed runs);
/// returns the groups removed.
pub fn remove_leftovers() -> Result<Vec<PathBuf>, PowerError> {
    let root = Path::new(FREEZER_ROOT);
    let mut removed = Vec::new();
    for entry in fs::read_dir(root).map_err(PowerError::io(format!("listing {FREEZER_ROOT}")))? {
        let entry = entry.map_err(PowerError::io(format!("listing {FREEZER_ROOT}")))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(GROUP_PREFIX)
            && entry.path().is_dir()
        {
            teardown_path(root, &entry.path())?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freezer_state_spelling() {
        for s in [
            FreezerState::Thawed,
            FreezerState::Freezing,
            FreezerState::Frozen,
        ] {
            assert_eq!(FreezerState::parse(&format!("{}\n", s.as_str())), Some(s));
        }
        assert_eq!(FreezerState::parse("frozen"), None);
    }

    #[test]
    fn rejects_bad_names_before_touching_the_filesystem() {
        for bad in ["", "a/b", "..", ".hidden"] {
            let root = Path::new("/nonexistent-freezer-root");
            assert!(
                matches!(
                    FreezerGroup::create_in(root, bad),
                    Err(PowerError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
    }
}
