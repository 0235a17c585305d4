//! The handover of a VM between its desktop and the consolidation server:
//! one state machine per VM on each side, persisted at every transition, and
//! a commit step, so that a failure at any point leaves exactly one runnable
//! copy of the VM. Pure: the daemons persist the states and act on them.
//!
//! # The rule
//!
//! At any moment exactly one side may run the VM. The side that holds it
//! (the *source*) decides: the handover is committed the moment the source's
//! durable record says so, never earlier.
//!
//! * **Migration** (desktop -> server). The desktop is the source. The
//!   server loads the device state into a paused guest and records itself
//!   `Loaded` (in doubt). The desktop then records `Away`: that write is the
//!   commit. Only then does the server run the guest.
//! * **Reintegration** (server -> desktop). The server is the source. The
//!   desktop writes every dirty page and disk block durably, loads the device
//!   state into a paused guest and records `Returning/Ready`. The server then
//!   records `Released`: that write is the commit. Only then does the desktop
//!   run the guest.
//!
//! A side in doubt (a record written, the other side's answer lost) asks the
//! other side ([`jettison_wire::Message::HandoverQuery`]) once it can reach
//! it, and settles by [`DesktopState::settle`] or [`ServerState::settle`];
//! it never guesses.
//!
//! # States
//!
//! ```text
//!  desktop                                          server
//!  Home                                             (no record)
//!   | prepare sent                                   |
//!  Migrating/Preparing  --MigratePrepare-->         Preparing (QEMU -incoming)
//!   | guest stopped, state saved                     |
//!  Migrating/Transferring --MigrateLoad-->          Loaded   (paused; in doubt)
//!   | commit: durable                                |
//!  Away                 --MigrateCommit-->          Running  (cont)
//!   |                                                |
//!  Returning/Receiving  --Reintegrate-->            Sending  (stopped, pages out)
//!   | pages + disk fsynced, state loaded, paused     |
//!  Returning/Ready      --ReintegrateReady-->       Released (commit: durable)
//!   |                   <--ReintegrateCommitted--    |
//!  Home (cont)          --ReintegrateDone-->        (record dropped)
//! ```
//!
//! Aborts before a commit: `Migrating/*` goes back to `Home` (the desktop's
//! stopped guest resumes) and the server drops its `Preparing`/`Loaded` VM;
//! `Sending` goes back to `Running` (the server's guest resumes) and the
//! desktop drops its paused guest, back to `Away`.

#![forbid(unsafe_code)]

mod desktop;
mod server;

pub use desktop::{DesktopAction, DesktopState, InStep, OutStep};
pub use jettison_wire::Custody;
pub use server::{ServerAction, ServerState};

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} while {state}")]
pub struct TransitionError {
    /// What was asked.
    pub action: &'static str,
    /// The state it was asked in, in words.
    pub state: String,
}

impl TransitionError {
    pub(crate) fn new(action: &'static str, state: impl std::fmt::Display) -> Self {
        TransitionError {
            action,
            state: state.to_string(),
        }
    }
}

/// What a side in doubt does once the other side has answered: go to a
/// state (persist it first), then carry out the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement<S, A> {
    /// Persist this state, then do this.
    To(S, A),
    /// The other side has not decided yet: ask again later.
    AskAgain,
}

#[cfg(test)]
mod tests;
