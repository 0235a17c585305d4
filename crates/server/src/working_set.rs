//! Recorded working sets: per consolidated VM, the memory pages it used in
//! each of its last [`KEEP_PERIODS`] periods on this server (a period ends
//! when the VM goes home). The prefetch policy takes the working set to
//! fetch at a period's first miss from them
//! ([`jettison_power_model::PrefetchConfig::first_wake`]).
//!
//! One file per VM, `<state_dir>/working-sets/<vm>.json`: the periods,
//! oldest first, each as runs of consecutive pages `[first, count]`.
//! Written crash-safe (a temporary file, `fsync`, rename, `fsync` of the
//! directory), so a crash leaves the old or the new history, never half of
//! one; read at start-up. A file that does not parse is set aside as
//! `<vm>.json.bad` and the VM starts without history.
//!
//! These page numbers are the only trace of a VM's memory a server keeps
//! once the VM is home (its contents all go: see ARCHITECTURE.md). With
//! `keep_working_sets = false` in the server's configuration nothing is
//! recorded, the files of earlier runs are removed at start-up, and the
//! prefetch policy's working-set part has no history to fetch.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jettison_lazymem::page_runs as runs;
use serde::{Deserialize, Serialize};

/// Periods kept per VM.
pub const KEEP_PERIODS: usize = 8;

/// The file format.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryFile {
    /// Format version (1).
    version: u32,
    /// Oldest first; each period's pages as `[first, count]` runs.
    periods: Vec<Vec<(u64, u64)>>,
}

/// The recorded working sets of this server's VMs.
#[derive(Debug)]
pub struct WorkingSets {
    dir: PathBuf,
    /// Whether periods are recorded at all.
    keep: bool,
    by_vm: Mutex<HashMap<String, Vec<Vec<u64>>>>,
}

impl WorkingSets {
    /// Loads every VM's history from `dir` (created if missing); without
    /// `keep`, removes the files there instead and records nothing.
    pub fn load(dir: &Path, keep: bool) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut by_vm = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if !keep {
                jettison_daemon::durable::remove(&path)?;
                continue;
            }
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Some(vm) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let parsed = std::fs::read(&path).map(|b| serde_json::from_slice::<HistoryFile>(&b));
            match parsed {
                Ok(Ok(h)) if h.version == 1 => {
                    by_vm.insert(vm.to_owned(), h.periods.iter().map(|r| expand(r)).collect());
                }
                Ok(Ok(h)) => tracing::warn!(
                    file = %path.display(),
                    version = h.version,
                    "unknown working-set file version: ignored"
                ),
                Ok(Err(e)) => {
                    let bad = path.with_extension("json.bad");
                    tracing::warn!(file = %path.display(), error = %e, moved_to = %bad.display(), "unreadable working-set file set aside");
                    std::fs::rename(&path, &bad)?;
                }
                Err(e) => return Err(e),
            }
        }
        tracing::info!(dir = %dir.display(), vms = by_vm.len(), "working sets loaded");
        Ok(Self {
            dir: dir.to_owned(),
            keep,
            by_vm: Mutex::new(by_vm),
        })
    }

    /// `vm`'s recorded periods, oldest first (empty without history).
    pub fn history(&self, vm: &str) -> Vec<Vec<u64>> {
        self.lock().get(vm).cloned().unwrap_or_default()
    }

    /// Records the pages `vm` used in the period that just ended, keeping
    /// the last [`KEEP_PERIODS`], and writes its file. On a write error the
    /// file keeps the previous history (the memory copy has the new one).
    /// Does nothing when working sets are not kept.
    pub fn record(&self, vm: &str, pages: &[u64]) -> io::Result<()> {
        if !self.keep {
            return Ok(());
        }
        let mut period = pages.to_vec();
        period.sort_unstable();
        period.dedup();
        let file = {
            let mut map = self.lock();
            let h = map.entry(vm.to_owned()).or_default();
            h.push(period);
            let excess = h.len().saturating_sub(KEEP_PERIODS);
            h.drain(..excess);
            HistoryFile {
                version: 1,
                periods: h.iter().map(|p| runs(p)).collect(),
            }
        };
        let bytes = serde_json::to_vec(&file).map_err(io::Error::other)?;
        jettison_daemon::durable::write_atomic(&self.dir.join(format!("{vm}.json")), &bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Vec<u64>>>> {
        self.by_vm.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn expand(runs: &[(u64, u64)]) -> Vec<u64> {
    runs.iter()
        .flat_map(|&(f, n)| f..f.saturating_add(n))
        .collect()
}

#[cfg(test)]
#[path = "working_set_tests.rs"]
mod tests;
