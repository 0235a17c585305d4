//! Mutual TLS 1.3 between jettison's hosts.
//!
//! Every connection between a desktop agent and a consolidation server (both
//! directions: migrate/reintegrate and the server's page fetches) runs inside
//! TLS 1.3 with certificates on both ends, issued by the deployment's own CA.
//! Each host's certificate carries its jettison host name (for example
//! `desk-17` or `consol-1`) as its first DNS subject alternative name; that
//! name, not an IP address, is what peers check.
//!
//! # Who may talk to whom
//!
//! A certificate from the CA is necessary but not sufficient: each host's
//! `[tls]` section lists `allowed_peers`, the host names it accepts or connects
//! to. The desktop lists the servers allowed to take its VM and fetch its
//! state; the server lists the desktops it accepts.
//!
//! # Refusals
//!
//! The accepting side ([`TlsContext::accept`]) refuses, before any application
//! data is exchanged, and with a distinct [`TlsError`] for each case:
//!
//! * a client that does not speak TLS ([`TlsError::NotTls`]; detected from the
//!   first byte, the connection is closed without an answer),
//! * a certificate from another CA ([`TlsError::UnknownCa`]),
//! * an expired (or not yet valid) certificate ([`TlsError::Expired`]),
//! * a valid certificate whose names are not in `allowed_peers`
//!   ([`TlsError::NotAuthorized`]; the client gets an `access_denied` alert).
//!
//! The connecting side ([`TlsContext::connect`]) refuses names outside its
//! own `allowed_peers` before the handshake ([`TlsError::PeerNotAllowed`]),
//! servers with a certificate from another CA or for another name, and waits
//! until the server has confirmed the handshake: in TLS 1.3 the client
//! finishes before the server has checked the client's certificate, so the
//! server sends a session ticket (a TLS handshake message, not application
//! data) once it has accepted the client, and `connect` returns only after
//! that ticket or fails with [`TlsError::RefusedByPeer`] on the server's alert.
//! Session resumption is disabled: every connection checks certificates
//! afresh.
//!
//! # Deployment
//!
//! [`certs`] creates a CA and host certificates for small deployments
//! (`jettison certs init` and `jettison certs issue`).

#![forbid(unsafe_code)]

pub mod certs;
mod confirm;
mod context;
mod error;
mod files;
mod names;
mod pem;
mod verify;

use std::path::PathBuf;

pub use context::TlsContext;
pub use error::TlsError;
pub use names::{dns_names, validate_host_name};

/// How long a TLS handshake (including the server's confirmation) may take.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The `[tls]` section of the agent's and the server's TOML config.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The deployment CA certificate (PEM).
    pub ca: PathBuf,
    /// This host's certificate (PEM), optionally followed by intermediates.
    pub cert: PathBuf,
    /// This host's private key (PEM).
    pub key: PathBuf,
    /// Host names (certificate DNS SANs) this host accepts or connects to.
    pub allowed_peers: Vec<String>,
}

/// An established, mutually authenticated TLS connection over TCP.
///
/// It is a byte stream (`AsyncRead + AsyncWrite`), used inside
/// `jettison_wire::Transport<TlsConn>`.
pub type TlsConn = tokio_rustls::TlsStream<tokio::net::TcpStream>;

/// Who is at the other end of an accepted connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The certificate name that matched `allowed_peers`.
    pub name: String,
    /// All DNS names of the peer's certificate, in certificate order.
    pub names: Vec<String>,
}
