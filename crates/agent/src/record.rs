//! A VM's durable record on the desktop: its handover state
//! ([`DesktopState`]), written at every transition before the agent acts on
//! it, and the device state of its last consistent snapshot (saved when the
//! guest stops to leave and when a return's pages are durable; dropped once
//! the guest runs again at home), which a rollback restarts from.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jettison_daemon::durable;
use jettison_handover::{DesktopState, TransitionError};
use serde::Deserialize;

use crate::AgentError;

/// The record file of the agent before the handover state machine: only
/// "away on `server` since `since_ms`".
#[derive(Debug, Deserialize)]
struct LegacyAway {
    server: String,
    since_ms: u64,
}

/// A VM's durable record.
#[derive(Debug)]
pub struct VmRecord {
    path: PathBuf,
    snapshot: PathBuf,
    state: Mutex<DesktopState>,
}

impl VmRecord {
    /// Reads the record of `vm` in `dir` (none: the VM is home).
    pub fn load(dir: &Path, vm: &str) -> Result<Self, AgentError> {
        let path = dir.join(format!("{vm}.json"));
        let state = match std::fs::read(&path) {
            Ok(bytes) => parse(&bytes).map_err(|e| {
                AgentError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("corrupt state file {}: {e}", path.display()),
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DesktopState::Home,
            Err(e) => return Err(e.into()),
        };
        Ok(VmRecord {
            snapshot: dir.join(format!("{vm}.device-state")),
            path,
            state: Mutex::new(state),
        })
    }

    /// The state now.
    pub fn get(&self) -> DesktopState {
        self.lock().clone()
    }

    /// What `f` makes of the state now, without a copy of it (this is
    /// asked on every fetch, the page-fault path).
    pub fn inspect<R>(&self, f: impl FnOnce(&DesktopState) -> R) -> R {
        f(&self.lock())
    }

    /// Moves to the state `step` gives from the current one: persisted
    /// (atomically, durably) before it is in force. The lock is held only
    /// for that.
    pub fn advance(
        &self,
        step: impl FnOnce(&DesktopState) -> Result<DesktopState, TransitionError>,
    ) -> Result<DesktopState, AgentError> {
        let mut state = self.lock();
        let next = step(&state).map_err(|e| AgentError::WrongState(e.to_string()))?;
        self.persist(&next)?;
        *state = next.clone();
        Ok(next)
    }

    /// Replaces the state by a settlement's (persisted first).
    pub fn set(&self, next: DesktopState) -> Result<(), AgentError> {
        let mut state = self.lock();
        self.persist(&next)?;
        *state = next;
        Ok(())
    }

    fn persist(&self, next: &DesktopState) -> Result<(), AgentError> {
        let bytes = serde_json::to_vec(next).map_err(std::io::Error::other)?;
        durable::write_atomic(&self.path, &bytes).map_err(|e| {
            AgentError::Io(std::io::Error::new(
                e.kind(),
                format!("recording VM state in {}: {e}", self.path.display()),
            ))
        })?;
        jettison_daemon::fault::point(&format!("agent:{}", point_name(next)));
        Ok(())
    }

    /// Saves the device state of the VM's consistent snapshot (durably).
    pub fn save_snapshot(&self, device_state: &[u8]) -> Result<(), AgentError> {
        Ok(durable::write_atomic(&self.snapshot, device_state)?)
    }

    /// Forgets the snapshot (before the memory file changes under it).
    pub fn drop_snapshot(&self) -> Result<(), AgentError> {
        Ok(durable::remove(&self.snapshot)?)
    }

    /// The snapshot's device state, if there is one.
    pub fn snapshot(&self) -> Option<Vec<u8>> {
        std::fs::read(&self.snapshot).ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DesktopState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The name of a state as a fault-injection point.
fn point_name(s: &DesktopState) -> &'static str {
    use jettison_handover::{InStep, OutStep};
    match s {
        DesktopState::Home => "Home",
        DesktopState::Migrating {
            step: OutStep::Preparing,
            ..
        } => "Preparing",
        DesktopState::Migrating {
            step: OutStep::Transferring,
            ..
        } => "Transferring",
        DesktopState::Away { .. } => "Away",
        DesktopState::Returning {
            step: InStep::Receiving,
            ..
        } => "Receiving",
        DesktopState::Returning {
            step: InStep::Ready,
            ..
        } => "Ready",
    }
}

fn parse(bytes: &[u8]) -> Result<DesktopState, serde_json::Error> {
    serde_json::from_slice::<DesktopState>(bytes).or_else(|e| {
        serde_json::from_slice::<LegacyAway>(bytes)
            .map(|l| DesktopState::Away {
                server: l.server,
                since_ms: l.since_ms,
            })
            .map_err(|_| e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_record_is_home_and_transitions_persist() {
        let dir = tempfile::tempdir().unwrap();
        let r = VmRecord::load(dir.path(), "vm").unwrap();
        assert_eq!(r.get(), DesktopState::Home);
        r.advance(|s| s.begin_migration("srv")).unwrap();
        let again = VmRecord::load(dir.path(), "vm").unwrap();
        assert_eq!(again.get(), r.get());
        assert!(matches!(again.get(), DesktopState::Migrating { .. }));
    }

    #[test]
    fn a_refused_transition_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = VmRecord::load(dir.path(), "vm").unwrap();
        let e = r.advance(|s| s.begin_return()).unwrap_err();
        assert!(e
            .to_string()
            .contains("cannot bring the VM home while home"));
        assert!(!dir.path().join("vm.json").exists());
    }

    #[test]
    fn the_old_away_record_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("vm.json"),
            br#"{"server":"10.0.0.1:7070","since_ms":5}"#,
        )
        .unwrap();
        let r = VmRecord::load(dir.path(), "vm").unwrap();
        assert_eq!(
            r.get(),
            DesktopState::Away {
                server: "10.0.0.1:7070".into(),
                since_ms: 5
            }
        );
    }

    #[test]
    fn a_corrupt_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vm.json"), b"{not json").unwrap();
        let e = VmRecord::load(dir.path(), "vm").unwrap_err();
        assert!(e.to_string().contains("vm.json"), "{e}");
    }

    #[test]
    fn snapshots_are_saved_and_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let r = VmRecord::load(dir.path(), "vm").unwrap();
        assert!(r.snapshot().is_none());
        r.save_snapshot(b"state").unwrap();
        assert_eq!(r.snapshot().unwrap(), b"state");
        r.drop_snapshot().unwrap();
        assert!(r.snapshot().is_none());
    }
}
