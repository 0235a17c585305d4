//! The desktop's side: where the desktop believes its VM is.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Custody, Settlement, TransitionError};

/// Steps of a migration out, before its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutStep {
    /// The server is asked to prepare; the guest still runs at home.
    Preparing,
    /// The guest is stopped at home and its device state is on its way; the
    /// server may have loaded it (paused).
    Transferring,
}

/// Steps of a reintegration, before its commit (which is the server's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InStep {
    /// Asked the server to send the VM home; pages may be arriving.
    Receiving,
    /// Every page and disk block is durable at home and the device state is
    /// saved and loaded into a paused guest; `ReintegrateReady` may be sent.
    Ready,
}

/// Where the desktop's VM is, as the desktop's durable record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DesktopState {
    /// At home: the desktop may run it.
    Home,
    /// Leaving for `server`, not committed: the desktop still decides.
    Migrating {
        /// The server it goes to.
        server: String,
        /// How far it got.
        step: OutStep,
    },
    /// Committed to `server`: the desktop serves its memory and never runs
    /// it until it comes home.
    Away {
        /// The server it runs on.
        server: String,
        /// Unix time in ms of the commit.
        since_ms: u64,
    },
    /// Coming home from `server`, not committed: the server still decides.
    Returning {
        /// The server it comes from.
        server: String,
        /// When it left home (kept for the record).
        since_ms: u64,
        /// How far it got.
        step: InStep,
    },
}

/// What the desktop does after settling a handover in doubt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesktopAction {
    /// Nothing beyond the state.
    None,
    /// Resume the guest stopped at home; if its QEMU is gone, the guest is
    /// rolled back (restarted from its last consistent state).
    ResumeAtHome,
    /// Send `MigrateCommit` to the server (it is loaded and waiting).
    SendCommit,
    /// Drop the paused incoming guest at home; the VM stays on the server.
    DropIncoming,
    /// Load the saved device state into a new incoming guest and resume it
    /// (the pages are durable at home), then acknowledge to the server.
    LoadSavedAndResume,
    /// The server lost the VM: restart it at home from its last consistent
    /// state (memory file, saved device state and disk at the commit).
    RollBackAtHome,
}

impl DesktopState {
    /// Starts a migration to `server` (from `Home` only).
    pub fn begin_migration(&self, server: &str) -> Result<Self, TransitionError> {
        match self {
            DesktopState::Home => Ok(DesktopState::Migrating {
                server: server.into(),
                step: OutStep::Preparing,
            }),
            s => Err(TransitionError::new("migrate", s)),
        }
    }

    /// The guest is stopped and its state saved; it goes out now.
    pub fn transferring(&self) -> Result<Self, TransitionError> {
        match self {
            DesktopState::Migrating {
                server,
                step: OutStep::Preparing,
            } => Ok(DesktopState::Migrating {
                server: server.clone(),
                step: OutStep::Transferring,
            }),
            s => Err(TransitionError::new("transfer the device state", s)),
        }
    }

    /// The commit of a migration: the server has the state loaded.
    pub fn commit_away(&self, since_ms: u64) -> Result<Self, TransitionError> {
        match self {
            DesktopState::Migrating {
                server,
                step: OutStep::Transferring,
            } => Ok(DesktopState::Away {
                server: server.clone(),
                since_ms,
            }),
            s => Err(TransitionError::new("commit the migration", s)),
        }
    }

    /// Gives a migration up before its commit: the VM is home again.
    pub fn abort_migration(&self) -> Result<Self, TransitionError> {
        match self {
            DesktopState::Migrating { .. } => Ok(DesktopState::Home),
            s => Err(TransitionError::new("abort a migration", s)),
        }
    }

    /// Starts bringing the VM home (from `Away` only).
    pub fn begin_return(&self) -> Result<Self, TransitionError> {
        match self {
            DesktopState::Away { server, since_ms } => Ok(DesktopState::Returning {
                server: server.clone(),
                since_ms: *since_ms,
                step: InStep::Receiving,
            }),
            s => Err(TransitionError::new("bring the VM home", s)),
        }
    }

    /// Everything received is durable and loaded, paused.
    pub fn ready(&self) -> Result<Self, TransitionError> {
        match self {
            DesktopState::Returning {
                server,
                since_ms,
                step: InStep::Receiving,
            } => Ok(DesktopState::Returning {
                server: server.clone(),
                since_ms: *since_ms,
                step: InStep::Ready,
            }),
            s => Err(TransitionError::new("declare the VM ready at home", s)),
        }
    }

    /// The server committed the return: the VM is home.
    pub fn committed_home(&self) -> Result<Self, TransitionError> {
        match self {
            DesktopState::Returning {
                step: InStep::Ready,
                ..
            } => Ok(DesktopState::Home),
            s => Err(TransitionError::new("run the VM at home", s)),
        }
    }

    /// Gives a return up on the desktop's own authority: only before
    /// `Ready`, since after it the server may have committed.
    pub fn abort_return(&self) -> Result<Self, TransitionError> {
        match self {
            DesktopState::Returning {
                server,
                since_ms,
                step: InStep::Receiving,
            } => Ok(DesktopState::Away {
                server: server.clone(),
                since_ms: *since_ms,
            }),
            s => Err(TransitionError::new("give the return up", s)),
        }
    }

    /// Whether the record is in doubt: only the server's answer settles it.
    pub fn in_doubt(&self) -> bool {
        matches!(
            self,
            DesktopState::Migrating {
                step: OutStep::Transferring,
                ..
            } | DesktopState::Returning {
                step: InStep::Ready,
                ..
            }
        )
    }

    /// The server this record names, if any.
    pub fn server(&self) -> Option<&str> {
        match self {
            DesktopState::Home => None,
            DesktopState::Migrating { server, .. }
            | DesktopState::Away { server, .. }
            | DesktopState::Returning { server, .. } => Some(server),
        }
    }

    /// Whether the desktop may serve the VM's memory to its server: the
    /// guest at home is stopped and the server may run or load it. That
    /// includes a return until it is settled (`Ready` too): a server that
    /// gave the return up resumes its guest, which may need pages it never
    /// fetched, and they are unchanged at home (only pages the server has
    /// were written there, and the guest at home runs only once the
    /// return is committed).
    pub fn serves_memory(&self) -> bool {
        matches!(
            self,
            DesktopState::Migrating {
                step: OutStep::Transferring,
                ..
            } | DesktopState::Away { .. }
                | DesktopState::Returning { .. }
        )
    }

    /// What the desktop answers to a `HandoverQuery`.
    pub fn custody(&self) -> Custody {
        match self {
            DesktopState::Home
            | DesktopState::Migrating {
                step: OutStep::Preparing,
                ..
            } => Custody::Holds,
            DesktopState::Migrating {
                step: OutStep::Transferring,
                ..
            }
            | DesktopState::Returning {
                step: InStep::Ready,
                ..
            } => Custody::InDoubt,
            DesktopState::Away { .. }
            | DesktopState::Returning {
                step: InStep::Receiving,
                ..
            } => Custody::Released,
        }
    }

    /// Settles this record once the server answered `server` to a
    /// `HandoverQuery` (after a restart, or a lost reply). `now_ms` dates a
    /// commit made now.
    pub fn settle(&self, server: Custody, now_ms: u64) -> Settlement<Self, DesktopAction> {
        use DesktopAction as A;
        use Settlement::To;
        match (self, server) {
            (DesktopState::Home, _) => To(self.clone(), A::None),
            // Nothing was loaded on the server: the guest never stopped.
            (
                DesktopState::Migrating {
                    step: OutStep::Preparing,
                    ..
                },
                _,
            ) => To(DesktopState::Home, A::ResumeAtHome),
            (
                DesktopState::Migrating {
                    server: name,
                    step: OutStep::Transferring,
                },
                answer,
            ) => match answer {
                // The server has the state loaded and waits for us: commit.
                Custody::InDoubt => To(
                    DesktopState::Away {
                        server: name.clone(),
                        since_ms: now_ms,
                    },
                    A::SendCommit,
                ),
                // Cannot happen without our commit; believe the server, so
                // that the VM never runs twice.
                Custody::Holds => To(
                    DesktopState::Away {
                        server: name.clone(),
                        since_ms: now_ms,
                    },
                    A::None,
                ),
                Custody::Unknown | Custody::Released => To(DesktopState::Home, A::ResumeAtHome),
            },
            (DesktopState::Away { .. }, Custody::Holds) => To(self.clone(), A::None),
            (DesktopState::Away { .. }, Custody::InDoubt) => To(self.clone(), A::SendCommit),
            (DesktopState::Away { .. }, Custody::Unknown | Custody::Released) => {
                To(DesktopState::Home, A::RollBackAtHome)
            }
            (
                DesktopState::Returning {
                    server: name,
                    since_ms,
                    step,
                },
                answer,
            ) => match (step, answer) {
                (_, Custody::Holds) => To(
                    DesktopState::Away {
                        server: name.clone(),
                        since_ms: *since_ms,
                    },
                    A::DropIncoming,
                ),
                // The server committed the return to us.
                (InStep::Ready, Custody::Released) => To(DesktopState::Home, A::LoadSavedAndResume),
                // The server no longer has the VM: what is durable at home
                // (every page and the state it was stopped with) is the VM.
                (InStep::Ready, Custody::Unknown) => To(DesktopState::Home, A::LoadSavedAndResume),
                // The server has not decided (it never is in doubt about a
                // return, but an answer out of turn is not a decision).
                (_, Custody::InDoubt) => Settlement::AskAgain,
                (InStep::Receiving, Custody::Released) => Settlement::AskAgain,
                (InStep::Receiving, Custody::Unknown) => To(DesktopState::Home, A::RollBackAtHome),
            },
        }
    }
}

impl fmt::Display for DesktopState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DesktopState::Home => f.write_str("home"),
            DesktopState::Migrating { server, step } => {
                write!(f, "migrating to {server} ({step:?})")
            }
            DesktopState::Away { server, .. } => write!(f, "away on {server}"),
            DesktopState::Returning { server, step, .. } => {
                write!(f, "returning from {server} ({step:?})")
            }
        }
    }
}
