//! Power backends of Jettison desktops: how a host is really put to sleep
//! and woken, and Wake-on-LAN over the network. The pure model they record
//! and are judged by (profile, timeline, energy meter, sleep and prefetch
//! policies, magic packets) is `jettison-power-model`.
//!
//! * [`backend`]: the [`PowerBackend`] trait.
//! * [`wol_net`]: sending magic packets over UDP and listening for them.
//! * [`linux`]: the Linux backend's settings, its Wake-on-LAN command and
//!   the classification of wakes (pure).
//! * [`logind_policy`]: what the Linux backend decides from logind's
//!   sessions and inhibitors: presence, may the desktop sleep (pure).
//! * [`logind`]: systemd-logind over D-Bus (`zbus`): sessions, seats,
//!   inhibitor locks, suspend; `logind_watch` follows its signals.
//! * [`input`]: the input devices, for the user's return without a session.
//! * [`wol_ethtool`]: arming Wake-on-LAN with the `ethtool` command.
//! * [`linux_backend`]: the Linux backend for real desktops, tested against
//!   a private `dbus-daemon` with a mock logind (`jettison-logind-mock`).
//! * `emulated` (cargo feature `emulated`, off by default: test hosts only):
//!   the test hosts' backend, where "asleep" is a frozen freezer cgroup,
//!   thawed by a real magic packet after the modelled resume latency; and
//!   `freezer`, the freezer cgroup (v1) itself.

#![forbid(unsafe_code)]

pub mod backend;
#[cfg(feature = "emulated")]
pub mod emulated;
#[cfg(feature = "emulated")]
pub mod freezer;
pub mod input;
pub mod linux;
pub mod linux_backend;
pub mod logind;
pub mod logind_policy;
mod logind_watch;
pub mod wol_ethtool;
pub mod wol_net;

use std::path::PathBuf;
use std::time::Duration;

use jettison_power_model::timeline::{HostState, TimelineError};
use thiserror::Error;

pub use backend::{BoxFuture, PowerBackend};
#[cfg(feature = "emulated")]
pub use emulated::{Emulated, EmulatedConfig};
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
    /// A freezer group did not reach a state in time (emulated backend).
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
        state: HostState,
    },
    /// A command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and standard error.
        detail: String,
    },
    /// logind could not be reached or did not do what was asked.
    #[error("logind: {0}")]
    Logind(String),
    /// Something keeps the host awake (inhibitors, remote sessions).
    #[error("not sleeping: {0}")]
    Refused(String),
    /// A request was invalid.
    #[error("{0}")]
    Invalid(String),
    /// A state change broke the timeline's rules.
    #[error(transparent)]
    Timeline(#[from] TimelineError),
    /// The backend's power thread is gone (emulated backend).
    #[error("the power thread has stopped")]
    Stopped,
}

impl PowerError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
