//! The operator's side of a daemon's control socket.

use std::path::Path;
use std::time::Duration;

use jettison_wire::handshake::connect;
use jettison_wire::{Message, Role, Transport, WireError};
use tokio::net::UnixStream;

/// Why an operator request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The daemon is not listening.
    #[error("cannot reach the daemon at {path}: {source} (is it running?)")]
    Connect {
        /// Control socket path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The exchange failed or the daemon refused.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Sends one operator request to the daemon listening at `socket` and returns
/// its reply (an error reply becomes [`WireError::Remote`]).
pub async fn request(
    socket: &Path,
    msg: &Message,
    timeout: Duration,
) -> Result<Message, ControlError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| ControlError::Connect {
            path: socket.display().to_string(),
            source,
        })?;
    let mut t = Transport::new(stream);
    connect(&mut t, Role::Operator, &hostname()).await?;
    Ok(t.request(msg, timeout).await?)
}

/// This host's name, for `Hello`s and logs.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
