//! Error type of this crate.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while launching or driving QEMU.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// The QEMU binary could not be started at all (missing, not executable...).
    #[error("cannot start QEMU binary {binary}: {source}")]
    Spawn {
        /// The binary we tried to run.
        binary: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// QEMU started but exited before its QMP monitor became reachable.
    #[error("QEMU exited during launch ({status}); stderr:\n{stderr}")]
    LaunchFailed {
        /// Exit status as text.
        status: String,
        /// Everything QEMU wrote to stderr.
        stderr: String,
    },
    /// The guest memory file exists with the wrong size or could not be created.
    #[error("memory file {path}: {reason}")]
    MemFile {
        /// Path of the memory file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A local I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// QEMU answered a QMP command with an `error` reply.
    #[error("QMP error {class}: {desc}")]
    Qmp {
        /// QMP error class, e.g. `GenericError`.
        class: String,
        /// Human readable description from QEMU.
        desc: String,
    },
    /// QEMU sent something that is not valid QMP, or a reply of an unexpected shape.
    #[error("QMP protocol error: {0}")]
    Protocol(String),
    /// The QMP connection is gone (QEMU exited or closed the socket).
    #[error("QMP connection closed: {0}")]
    Disconnected(String),
    /// A QMP command got no reply in time.
    #[error("QMP command `{command}` timed out after {timeout:?}")]
    Timeout {
        /// The command name.
        command: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// QEMU exited (unexpectedly, while we needed it).
    #[error("QEMU process exited ({status}); last stderr lines:\n{stderr}")]
    Exited {
        /// Exit status as text.
        status: String,
        /// The last lines QEMU wrote to stderr.
        stderr: String,
    },
    /// A migration reported `failed`/`cancelled`, or did not finish in time.
    #[error("migration failed: {0}")]
    Migration(String),
    /// `migrate_in` was called on an instance not launched with `incoming = true`.
    #[error("instance `{0}` was not launched with -incoming defer")]
    NotIncoming(String),
    /// The machine and the launch options do not fit together.
    #[error("cannot launch `{vm}`: {why}")]
    Config {
        /// VM name.
        vm: String,
        /// What is missing.
        why: String,
    },
    /// Something answers on the VM's QMP socket but is not a QEMU that may
    /// be taken over as this VM ([`crate::Qemu::adopt`]).
    #[error("cannot take over the QEMU of `{vm}`: {why}")]
    NotAdoptable {
        /// VM name.
        vm: String,
        /// Why not.
        why: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = QemuError> = std::result::Result<T, E>;

impl QemuError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        QemuError::Io {
            context: context.into(),
            source,
        }
    }
}
