//! Test hosts on one machine: an office LAN of network namespaces.
//!
//! [`Lan::create`] builds desktops, a server and a peer (office services) as
//! network namespaces joined by a bridge, each host with its address on a
//! host-local bridge `br0` where VM tap devices go ([`Host::add_tap`]).
//! Programs run inside a host with [`Host::command`]. Dropping the [`Lan`]
//! (also while unwinding from a panic) stops every process left in its
//! namespaces and deletes them. A state record per LAN under
//! [`STATE_DIR`] lets [`clean_leftovers`] find what a killed run left.
//! Naming and addressing rules are in [`names`]. [`LoopFs`] is a small
//! loop-mounted filesystem for tests that fill a disk. [`Forwarder`] carries
//! TCP connections from the machine into a test host.

#![forbid(unsafe_code)]

pub mod clean;
pub mod forward;
pub mod host;
pub mod lan;
pub mod loopfs;
pub mod names;
mod sys;

use std::path::PathBuf;

use thiserror::Error;

pub use clean::{clean_leftovers, Report};
pub use forward::Forwarder;
pub use host::{Host, Role};
pub use lan::{Lan, LanSpec, STATE_DIR};
pub use loopfs::LoopFs;
pub use names::RunId;

/// Testbed errors.
#[derive(Debug, Error)]
pub enum TestbedError {
    /// A command could not be started.
    #[error("cannot run {0}: {1}")]
    Spawn(String, std::io::Error),
    /// A command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its standard error.
        stderr: String,
    },
    /// The state record could not be written.
    #[error("state record {0}: {1}")]
    State(PathBuf, std::io::Error),
    /// The request makes no sense.
    #[error("{0}")]
    Spec(String),
}

/// Whether we run as root (namespaces need it); tests skip otherwise.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
