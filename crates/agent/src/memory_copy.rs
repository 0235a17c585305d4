//! A durable copy of an away VM's memory on the desktop's disk, so that the
//! VM survives a power cut or a reboot of its desktop. While the VM is away
//! its memory file (in `/dev/shm`, RAM) is the only copy of the pages the
//! server has not fetched, and it does not change: the agent copies it once
//! per away period, before the desktop's first sleep, to
//! `<state_dir>/<vm>.mem`, and a restarted agent that finds the RAM file
//! gone puts it back from there.
//!
//! The copy skips all-zero chunks (the file stays sparse, as the RAM file
//! is), is written under a temporary name, `fsync`ed and renamed (through
//! [`jettison_daemon::durable`]'s directory sync), so it exists only when
//! complete. It is removed when the VM leaves again (its memory then differs).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jettison_handover::DesktopState;

use crate::{Agent, AgentError};

const CHUNK: usize = 1 << 20;

/// What a copy cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Bytes written (all-zero chunks are skipped).
    pub bytes: u64,
    /// The file's size.
    pub size: u64,
    /// How long it took, `fsync` included.
    pub took: Duration,
}

/// Copies `from` to `to` durably (sparse, atomic). The destination's
/// directory must exist.
pub fn copy_durably(from: &Path, to: &Path) -> io::Result<Copied> {
    let started = Instant::now();
    let src = File::open(from)?;
    let size = src.metadata()?.len();
    let tmp = to.with_extension("mem.partial");
    let dst = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    dst.set_len(size)?;
    let mut buf = vec![0u8; CHUNK];
    let (mut offset, mut bytes) = (0u64, 0u64);
    while offset < size {
        let n = (size - offset).min(CHUNK as u64) as usize;
        src.read_exact_at(&mut buf[..n], offset)?;
        if buf[..n].iter().any(|&b| b != 0) {
            dst.write_all_at(&buf[..n], offset)?;
            bytes += n as u64;
        }
        offset += n as u64;
    }
    dst.sync_all()?;
    drop(dst);
    std::fs::rename(&tmp, to)?;
    if let Some(dir) = to.parent() {
        jettison_daemon::durable::sync_dir(dir)?;
    }
    Ok(Copied {
        bytes,
        size,
        took: started.elapsed(),
    })
}

/// Removes a copy (and a partial one), if any.
pub fn remove(copy: &Path) -> io::Result<()> {
    for path in [copy.to_path_buf(), copy.with_extension("mem.partial")] {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The copy of `vm`'s memory for the away period that began at `since_ms`.
pub fn copy_path(dir: &Path, vm: &str, since_ms: u64) -> PathBuf {
    dir.join(format!("{vm}.{since_ms}.mem"))
}

/// The away period a record is in (its commit time), if the VM is away or
/// on its way back.
fn away_since(state: &DesktopState) -> Option<u64> {
    match state {
        DesktopState::Away { since_ms, .. } | DesktopState::Returning { since_ms, .. } => {
            Some(*since_ms)
        }
        _ => None,
    }
}

/// Makes `dir` hold exactly the copy for `since_ms` (none if `None`):
/// removes copies of other periods, makes the one wanted if missing.
/// Returns what a new copy cost.
pub fn sync_copies(
    dir: &Path,
    vm: &str,
    memory: &Path,
    since_ms: Option<u64>,
) -> io::Result<Option<Copied>> {
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let period = name
            .strip_prefix(&format!("{vm}."))
            .and_then(|r| {
                r.strip_suffix(".mem")
                    .or_else(|| r.strip_suffix(".mem.partial"))
            })
            .and_then(|p| p.parse::<u64>().ok());
        if let Some(p) = period.filter(|p| Some(*p) != since_ms) {
            remove(&copy_path(dir, vm, p))?;
        }
    }
    match since_ms {
        Some(since) if !copy_path(dir, vm, since).is_file() => {
            copy_durably(memory, &copy_path(dir, vm, since)).map(Some)
        }
        _ => Ok(None),
    }
}

impl Agent {
    /// Before the desktop sleeps: every away VM's memory has a durable copy
    /// for its away period (made now if missing), and no stale copy is
    /// kept. An error means the desktop must not sleep yet.
    pub(crate) async fn keep_memory_durable(&self) -> Result<(), AgentError> {
        for slot in self.slots.values() {
            let dir = self.config.state_dir.clone();
            let vm = slot.config.name.clone();
            let memory = slot.mem_path.clone();
            let since = away_since(&slot.record.get());
            let made = tokio::task::spawn_blocking(move || sync_copies(&dir, &vm, &memory, since))
                .await
                .map_err(|e| AgentError::WrongState(format!("memory copy task: {e}")))??;
            if let Some(c) = made {
                tracing::info!(
                    vm = %slot.config.name,
                    bytes = c.bytes,
                    size = c.size,
                    ms = c.took.as_secs_f64() * 1000.0,
                    "memory made durable on disk before the first sleep (it survives a reboot)"
                );
            }
        }
        Ok(())
    }

    /// At start-up: an away VM whose memory file is gone (the desktop
    /// rebooted) gets it back from its durable copy.
    pub(crate) async fn restore_lost_memory(&self) {
        for slot in self.slots.values() {
            let Some(since) = away_since(&slot.record.get()) else {
                continue;
            };
            let copy = copy_path(&self.config.state_dir, &slot.config.name, since);
            if slot.mem_path.exists() || !copy.is_file() {
                continue;
            }
            let memory = slot.mem_path.clone();
            let put = tokio::task::spawn_blocking(move || copy_durably(&copy, &memory)).await;
            match put {
                Ok(Ok(c)) => tracing::warn!(
                    vm = %slot.config.name,
                    bytes = c.bytes,
                    ms = c.took.as_secs_f64() * 1000.0,
                    "the VM's memory file was gone (a reboot?); put back from its durable copy"
                ),
                Ok(Err(e)) => {
                    tracing::error!(vm = %slot.config.name, "putting the memory file back: {e}")
                }
                Err(e) => tracing::error!(vm = %slot.config.name, "memory copy task: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_follow_the_away_period() {
        let dir = tempfile::tempdir().unwrap();
        let mem = dir.path().join("ram");
        std::fs::write(&mem, vec![1u8; 8192]).unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::write(state.join("vm.json"), b"{}").unwrap();
        std::fs::write(state.join("vm-2.5.mem"), b"another VM's").unwrap();
        let c = sync_copies(&state, "vm", &mem, Some(5)).unwrap().unwrap();
        assert_eq!(c.bytes, 8192);
        assert!(
            sync_copies(&state, "vm", &mem, Some(5)).unwrap().is_none(),
            "made once"
        );
        assert!(sync_copies(&state, "vm", &mem, Some(7)).unwrap().is_some());
        assert!(
            !copy_path(&state, "vm", 5).exists(),
            "the old period's copy goes"
        );
        assert!(sync_copies(&state, "vm", &mem, None).unwrap().is_none());
        let mut left: Vec<String> = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["vm-2.5.mem", "vm.json"],
            "home: no copy; others untouched"
        );
    }

    #[test]
    fn a_copy_is_equal_sparse_and_replaces_a_partial_one() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("vm.shm"), dir.path().join("vm.mem"));
        let f = File::create(&from).unwrap();
        f.set_len(8 * CHUNK as u64 + 4096).unwrap();
        f.write_all_at(b"page at the start", 0).unwrap();
        f.write_all_at(b"and one at the end", 8 * CHUNK as u64 + 100)
            .unwrap();
        std::fs::write(to.with_extension("mem.partial"), b"left by a crash").unwrap();
        let c = copy_durably(&from, &to).unwrap();
        assert_eq!(c.size, 8 * CHUNK as u64 + 4096);
        assert_eq!(c.bytes, CHUNK as u64 + 4096, "zero chunks skipped");
        assert_eq!(std::fs::read(&from).unwrap(), std::fs::read(&to).unwrap());
        assert!(!to.with_extension("mem.partial").exists());
        remove(&to).unwrap();
        assert!(!to.exists());
        remove(&to).unwrap();
    }

    #[test]
    fn a_missing_source_is_an_error_and_leaves_no_copy() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("vm.mem");
        let e = copy_durably(&dir.path().join("gone"), &to).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(!to.exists());
    }
}
