//! The seam under the daemons: what they ask of a running VM, as a trait.
//! [`Qemu`] is the real implementation; [`crate::fake::FakeVm`] (feature
//! `fake`) is the one unit tests drive every failure path with, without
//! root or QEMU. An implementation may stand for a QEMU that was already
//! running (taken over through its QMP socket): nothing here assumes the
//! caller launched it.

use std::future::Future;

use crate::{Qemu, Result, RunState};

/// A VM the daemons can stop, resume, save, load and quit.
pub trait VmControl: Send + Sync {
    /// Pauses the guest. Idempotent.
    fn stop(&self) -> impl Future<Output = Result<()>> + Send;
    /// Resumes the guest.
    fn cont(&self) -> impl Future<Output = Result<()>> + Send;
    /// Saves the CPU and device state of the stopped guest (shared memory
    /// excluded).
    fn save_state(&self) -> impl Future<Output = Result<Vec<u8>>> + Send;
    /// Loads a saved state into an instance waiting for one; the guest stays
    /// paused until [`VmControl::cont`].
    fn load_state(&self, state: &[u8]) -> impl Future<Output = Result<()>> + Send;
    /// The run state.
    fn status(&self) -> impl Future<Output = Result<RunState>> + Send;
    /// Whether the VM's process has exited.
    fn has_exited(&self) -> bool;
    /// Ends the VM's process.
    fn quit(self) -> impl Future<Output = Result<()>> + Send
    where
        Self: Sized;
}

impl VmControl for Qemu {
    async fn stop(&self) -> Result<()> {
        Qemu::stop(self).await
    }

    async fn cont(&self) -> Result<()> {
        Qemu::cont(self).await
    }

    async fn save_state(&self) -> Result<Vec<u8>> {
        self.migrate_out().await
    }

    async fn load_state(&self, state: &[u8]) -> Result<()> {
        self.migrate_in(state).await
    }

    async fn status(&self) -> Result<RunState> {
        Qemu::status(self).await
    }

    fn has_exited(&self) -> bool {
        Qemu::has_exited(self)
    }

    async fn quit(self) -> Result<()> {
        Qemu::quit(self).await.map(drop)
    }
}
