//! Power management for Jettison desktops: the energy model, the sleep
//! policies, Wake-on-LAN and the power backends.
//!
//! Pure parts (no I/O, shared by the daemons and the simulator):
//! * [`profile`]: watts per state, transition costs, the server's share per
//!   VM, per-device resume costs; TOML with documented defaults.
//! * [`timeline`]: a host's recorded state changes, wakes and VM placements.
//! * [`energy`]: the meter integrating a timeline with a profile, against
//!   the desktop left on.
//! * [`policy`]: sleep scheduling ([`SleepPolicy`]): break-even, fixed
//!   timeout, never; chosen by configuration ([`PolicyConfig`]).
//! * [`prefetch`]: which pages a miss fetches besides its own
//!   ([`PrefetchConfig`]): none, neighbourhood, recorded working set, both.
//! * [`wol`]: magic packets and MAC addresses.
//! * [`linux`]: the commands and files the Linux backend would use, and the
//!   parsing of what it reads back.
//!
//! I/O parts:
//! * [`wol_net`]: sending magic packets over UDP and listening for them.
//! * [`backend`]: the [`PowerBackend`] trait.
//! * [`emulated`]: the test hosts' backend: "asleep" is a frozen freezer
//!   cgroup, thawed by a real magic packet after the modelled resume latency.
//! * [`freezer`]: the freezer cgroup (v1) itself.
//! * [`linux_backend`]: the thin executor of [`linux`] for real desktops
//!   (not exercised on test hosts).

#![forbid(unsafe_code)]

pub mod backend;
pub mod emulated;
pub mod energy;
pub mod freezer;
pub mod linux;
pub mod linux_backend;
pub mod policy;
pub mod prefetch;
pub mod profile;
pub mod timeline;
pub mod wol;
pub mod wol_net;

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub use backend::{BoxFuture, PowerBackend};
pub use emulated::{Emulated, EmulatedConfig};
pub use energy::{meter, EnergyReport};
pub use policy::{
    break_even_ms, BreakEven, Decision, FixedTimeout, NeverSleep, PolicyConfig, SleepPolicy,
};
pub use prefetch::PrefetchConfig;
pub use profile::{Device, PowerProfile};
pub use timeline::{HostState, Placement, Timeline, TimelineError, WakeReason};
pub use wol::{magic_packet, parse_magic_packet, MacAddr, WolError};
pub use wol_net::{send_magic_packet, WolListener, WolPacket};

/// Errors of the I/O parts.
#[derive(Debug, Error)]
pub enum PowerError {
    /// A socket or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A freezer group did not reach a state in time.
    #[error("freezer group {path} did not become {state} within {timeout:?}")]
    FreezeTimeout {
        /// The group.
        path: PathBuf,
        /// The state asked for.
        state: &'static str,
        /// How long we waited.
        timeout: Duration,
    },
    /// The operation makes no sense in the host's current state.
    #[error("cannot {action} while {state:?}")]
    State {
        /// What was asked.
        action: &'static str,
        /// The host's state.
        state: timeline::HostState,
    },
    /// A command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and standard error.
        detail: String,
    },
    /// A request was invalid.
    #[error("{0}")]
    Invalid(String),
    /// A state change broke the timeline's rules.
    #[error(transparent)]
    Timeline(#[from] TimelineError),
    /// The backend's power thread is gone.
    #[error("the power thread has stopped")]
    Stopped,
}

impl PowerError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
