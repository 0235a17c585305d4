//! The office services the jettison test guest keeps talking to.
//!
//! Runs on the LAN's peer host. A guest's background "apps" hold one
//! long-lived chat connection with heartbeats in both directions and poll a
//! mail server every few seconds; the peer counts everything per client id
//! so tests can tell whether a migrated VM kept its connection (no reset,
//! short heartbeat gap) and kept polling. The protocol is in [`proto`]; the
//! counters in [`stats`]; [`fetch_status`] reads them from a running peer.

#![forbid(unsafe_code)]

pub mod proto;
pub mod server;
pub mod stats;

use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;
use tokio::io::AsyncReadExt;

pub use server::{Peer, PeerConfig};
pub use stats::{ClientStats, PeerStatus};

/// Errors of the peer and its status client.
#[derive(Debug, Error)]
pub enum PeerError {
    /// A listener could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// Socket I/O failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The status document did not parse.
    #[error("bad status document: {0}")]
    Status(#[from] serde_json::Error),
    /// The status port did not answer in time.
    #[error("status request to {0} timed out")]
    Timeout(SocketAddr),
}

/// Reads the counters from a peer's status port.
pub async fn fetch_status(addr: SocketAddr) -> Result<PeerStatus, PeerError> {
    let go = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, PeerError>(serde_json::from_slice(&buf)?)
    };
    tokio::time::timeout(Duration::from_secs(5), go)
        .await
        .map_err(|_| PeerError::Timeout(addr))?
}

/// [`fetch_status`] without an async runtime.
pub fn fetch_status_blocking(addr: SocketAddr) -> Result<PeerStatus, PeerError> {
    use std::io::Read;
    let t = Duration::from_secs(5);
    let mut s = std::net::TcpStream::connect_timeout(&addr, t)?;
    s.set_read_timeout(Some(t))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    Ok(serde_json::from_slice(&buf)?)
}
