//! The server's side: what the server holds of a consolidated VM.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Custody, Settlement, TransitionError};

/// A consolidated VM's stay on the server, as the server's durable record
/// says. No record: the server knows nothing of the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerState {
    /// QEMU waits for the device state.
    Preparing,
    /// The device state is loaded and the guest paused; the desktop decides.
    Loaded,
    /// Committed here: the guest runs (or the operator paused it).
    Running,
    /// Stopped and on its way home; the server decides.
    Sending,
    /// Committed home: the server's copy must never run again. Kept until
    /// the desktop acknowledges that the VM runs at home.
    Released,
}

/// What the server does after settling a handover in doubt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerAction {
    /// Nothing beyond the state.
    None,
    /// Resume (or start) the guest here.
    Run,
    /// Quit the guest and remove its files and record.
    Discard,
}

impl ServerState {
    /// The state has been loaded into the paused guest.
    pub fn loaded(self) -> Result<Self, TransitionError> {
        match self {
            ServerState::Preparing => Ok(ServerState::Loaded),
            s => Err(TransitionError::new("load the device state", s)),
        }
    }

    /// The desktop committed the migration: run.
    pub fn commit(self) -> Result<Self, TransitionError> {
        match self {
            ServerState::Loaded => Ok(ServerState::Running),
            // A repeated commit (its reply was lost) changes nothing.
            ServerState::Running => Ok(ServerState::Running),
            s => Err(TransitionError::new("commit the migration", s)),
        }
    }

    /// Whether the desktop may still abort the migration (and the server
    /// then drop the VM).
    pub fn abortable(self) -> bool {
        matches!(self, ServerState::Preparing | ServerState::Loaded)
    }

    /// Starts sending the VM home.
    pub fn begin_send(self) -> Result<Self, TransitionError> {
        match self {
            ServerState::Running => Ok(ServerState::Sending),
            s => Err(TransitionError::new("send the VM home", s)),
        }
    }

    /// The desktop is ready: the commit of a return.
    pub fn release(self) -> Result<Self, TransitionError> {
        match self {
            ServerState::Sending => Ok(ServerState::Released),
            ServerState::Released => Ok(ServerState::Released),
            s => Err(TransitionError::new("release the VM", s)),
        }
    }

    /// Gives a return up before its commit: the VM runs here again.
    pub fn abort_send(self) -> Result<Self, TransitionError> {
        match self {
            ServerState::Sending => Ok(ServerState::Running),
            s => Err(TransitionError::new("give the return up", s)),
        }
    }

    /// Whether the guest may run here.
    pub fn may_run(self) -> bool {
        self == ServerState::Running
    }

    /// Whether the record is in doubt: only the desktop's answer settles it.
    pub fn in_doubt(self) -> bool {
        self == ServerState::Loaded
    }

    /// What the server answers to a `HandoverQuery`.
    pub fn custody(self) -> Custody {
        match self {
            ServerState::Preparing => Custody::Unknown,
            ServerState::Loaded => Custody::InDoubt,
            ServerState::Running | ServerState::Sending => Custody::Holds,
            ServerState::Released => Custody::Released,
        }
    }

    /// Settles this record once the desktop answered `desktop` to a
    /// `HandoverQuery`, or once its connection was lost (`None`: the
    /// desktop cannot be asked now; only what needs no answer is settled).
    pub fn settle(self, desktop: Option<Custody>) -> Settlement<Self, ServerAction> {
        use ServerAction as A;
        use Settlement::{AskAgain, To};
        match (self, desktop) {
            // Nothing was loaded: the desktop cannot have committed.
            (ServerState::Preparing, _) => To(self, A::Discard),
            (ServerState::Loaded, None) => AskAgain,
            // The desktop recorded the VM as away here: its commit.
            (ServerState::Loaded, Some(Custody::Released)) => To(ServerState::Running, A::Run),
            // The desktop is deciding: it commits once it hears we are loaded.
            (ServerState::Loaded, Some(Custody::InDoubt)) => AskAgain,
            (ServerState::Loaded, Some(Custody::Holds | Custody::Unknown)) => To(self, A::Discard),
            (ServerState::Running, _) => To(self, A::None),
            // The desktop cannot run the VM before our release: resume.
            (ServerState::Sending, _) => To(ServerState::Running, A::Run),
            // The desktop runs it at home, or never heard of it again.
            (ServerState::Released, Some(Custody::Holds | Custody::Unknown)) => {
                To(self, A::Discard)
            }
            (ServerState::Released, _) => To(self, A::None),
        }
    }
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ServerState::Preparing => "preparing",
            ServerState::Loaded => "loaded, in doubt",
            ServerState::Running => "running",
            ServerState::Sending => "sending home",
            ServerState::Released => "released home",
        };
        f.write_str(s)
    }
}
