//! The power backend trait: how a host is put to sleep and woken, and the
//! timeline of what really happened.

use std::future::Future;
use std::pin::Pin;

use jettison_power_model::timeline::{HostState, Placement, Timeline, WakeReason};

use crate::PowerError;

/// A boxed `Send` future, so that [`PowerBackend`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A host's power control. Implementations: `Emulated` (test hosts; the
/// `emulated` module, behind the cargo feature `emulated`) and
/// [`crate::linux_backend::LinuxBackend`] (real desktops).
pub trait PowerBackend: Send + Sync + std::fmt::Debug {
    /// Puts the host to sleep. Resolves once it is asleep (for a caller
    /// outside the sleeping host), or fails leaving it awake.
    fn suspend(&self) -> BoxFuture<'_, Result<(), PowerError>>;

    /// Whether the host may sleep now (nothing blocks it: inhibitors,
    /// remote sessions); asked before the agent announces a sleep.
    /// `suspend` checks again. Default: yes.
    fn may_suspend(&self) -> BoxFuture<'_, Result<(), PowerError>> {
        Box::pin(async { Ok(()) })
    }

    /// Wakes the host for `reason` through a local path (user input, a
    /// timer); a network wake arrives as a magic packet instead. Resolves
    /// once it is awake; waking an awake host does nothing.
    fn resume(&self, reason: WakeReason) -> BoxFuture<'_, Result<(), PowerError>>;

    /// The current state.
    fn state(&self) -> HostState;

    /// Records that the user left (`idle`) or came back; ignored unless awake.
    fn set_idle(&self, idle: bool) -> Result<(), PowerError>;

    /// Records where `vm` runs from now on.
    fn record_placement(&self, vm: &str, placement: Placement) -> Result<(), PowerError>;

    /// A copy of the timeline recorded so far.
    fn timeline(&self) -> Timeline;

    /// Milliseconds on the timeline's clock now.
    fn now_ms(&self) -> u64;
}
