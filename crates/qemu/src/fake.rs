//! A VM without QEMU, for unit tests of the daemons' failure paths: it
//! keeps a run state, logs every call, and fails the operations it is told
//! to fail, or dies (as a killed QEMU does) at a chosen operation.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::{QemuError, Result, RunState, VmControl};

/// An operation of [`VmControl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `stop`.
    Stop,
    /// `cont`.
    Cont,
    /// `save_state`.
    Save,
    /// `load_state`.
    Load,
    /// `quit`.
    Quit,
}

#[derive(Debug)]
struct Inner {
    state: RunState,
    exited: bool,
    fail: HashSet<Op>,
    die_at: Option<Op>,
    log: Vec<Op>,
    loaded: Option<Vec<u8>>,
}

/// A fake VM. Clones share one VM, so a test keeps a clone to look at it
/// after the code under test consumed its own.
#[derive(Debug, Clone)]
pub struct FakeVm(Arc<Mutex<Inner>>);

impl FakeVm {
    /// A guest that runs.
    pub fn running() -> Self {
        Self::new(RunState::Running)
    }

    /// An instance waiting for a state (`-incoming defer`).
    pub fn incoming() -> Self {
        Self::new(RunState::Inmigrate)
    }

    fn new(state: RunState) -> Self {
        FakeVm(Arc::new(Mutex::new(Inner {
            state,
            exited: false,
            fail: HashSet::new(),
            die_at: None,
            log: Vec::new(),
            loaded: None,
        })))
    }

    /// Makes `op` fail (the VM stays as it was).
    pub fn fail(&self, op: Op) -> &Self {
        self.lock().fail.insert(op);
        self
    }

    /// Makes the VM's process die when `op` is asked for.
    pub fn die_at(&self, op: Op) -> &Self {
        self.lock().die_at = Some(op);
        self
    }

    /// Kills the VM's process now.
    pub fn kill(&self) {
        self.lock().exited = true;
    }

    /// The run state now (`Shutdown` once the process is gone).
    pub fn state(&self) -> RunState {
        let inner = self.lock();
        if inner.exited {
            RunState::Shutdown
        } else {
            inner.state
        }
    }

    /// Whether the guest runs.
    pub fn runs(&self) -> bool {
        self.state() == RunState::Running
    }

    /// The operations asked for, in order.
    pub fn log(&self) -> Vec<Op> {
        self.lock().log.clone()
    }

    /// The state last loaded.
    pub fn loaded(&self) -> Option<Vec<u8>> {
        self.lock().loaded.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs `op`, then fails or dies as told; `Ok(guard)` to carry it out.
    fn enter(&self, op: Op) -> Result<std::sync::MutexGuard<'_, Inner>> {
        let mut inner = self.lock();
        inner.log.push(op);
        if inner.die_at == Some(op) {
            inner.exited = true;
        }
        if inner.exited {
            return Err(QemuError::Disconnected(format!("fake VM gone at {op:?}")));
        }
        if inner.fail.contains(&op) {
            return Err(QemuError::Migration(format!("fake failure at {op:?}")));
        }
        Ok(inner)
    }
}

impl VmControl for FakeVm {
    async fn stop(&self) -> Result<()> {
        let mut inner = self.enter(Op::Stop)?;
        if inner.state == RunState::Running {
            inner.state = RunState::Paused;
        }
        Ok(())
    }

    async fn cont(&self) -> Result<()> {
        let mut inner = self.enter(Op::Cont)?;
        if inner.state == RunState::Inmigrate {
            // QEMU accepts `cont` here and leaves the guest paused.
            return Ok(());
        }
        inner.state = RunState::Running;
        Ok(())
    }

    async fn save_state(&self) -> Result<Vec<u8>> {
        let mut inner = self.enter(Op::Save)?;
        if inner.state == RunState::Running {
            return Err(QemuError::Migration("saving a running guest".into()));
        }
        inner.state = RunState::Postmigrate;
        Ok(b"fake device state".to_vec())
    }

    async fn load_state(&self, state: &[u8]) -> Result<()> {
        let mut inner = self.enter(Op::Load)?;
        if inner.state != RunState::Inmigrate {
            return Err(QemuError::NotIncoming("fake".into()));
        }
        inner.state = RunState::Paused;
        inner.loaded = Some(state.to_vec());
        Ok(())
    }

    async fn status(&self) -> Result<RunState> {
        let inner = self.lock();
        if inner.exited {
            return Err(QemuError::Disconnected("fake VM gone".into()));
        }
        Ok(inner.state)
    }

    fn has_exited(&self) -> bool {
        self.lock().exited
    }

    async fn quit(self) -> Result<()> {
        let mut inner = self.lock();
        inner.log.push(Op::Quit);
        inner.exited = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_saved_guest_cannot_resume_without_a_cont() {
        let vm = FakeVm::running();
        vm.stop().await.unwrap();
        assert_eq!(vm.save_state().await.unwrap(), b"fake device state");
        assert!(!vm.runs());
        vm.cont().await.unwrap();
        assert!(vm.runs());
        assert_eq!(vm.log(), [Op::Stop, Op::Save, Op::Cont]);
    }

    #[tokio::test]
    async fn failures_and_deaths_are_as_told() {
        let vm = FakeVm::incoming();
        vm.fail(Op::Load);
        assert!(vm.load_state(b"s").await.is_err());
        assert_eq!(vm.state(), RunState::Inmigrate);
        let other = FakeVm::running();
        other.die_at(Op::Stop);
        assert!(other.stop().await.is_err());
        assert!(other.has_exited());
        assert!(other.status().await.is_err());
    }

    #[tokio::test]
    async fn cont_before_the_load_leaves_it_waiting() {
        let vm = FakeVm::incoming();
        vm.cont().await.unwrap();
        assert_eq!(vm.state(), RunState::Inmigrate);
        vm.load_state(b"s").await.unwrap();
        vm.cont().await.unwrap();
        assert!(vm.runs());
        assert_eq!(vm.loaded().unwrap(), b"s");
    }
}
