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
//! * a certificate listed in the deployment's CRL ([`TlsError::Revoked`];
//!   the client gets a `certificate_revoked` alert),
//! * a valid certificate whose names are not in `allowed_peers`
//!   ([`TlsError::NotAuthorized`]; the client gets an `access_denied` alert).
//!
//! The connecting side ([`TlsContext::connect`]) refuses names outside its
//! own `allowed_peers` before the handshake ([`TlsError::PeerNotAllowed`]),
//! servers with a certificate from another CA, revoked, or for another
//! name, and waits
//! until the server has confirmed the handshake: in TLS 1.3 the client
//! finishes before the server has checked the client's certificate, so the
//! server sends a session ticket (a TLS handshake message, not application
//! data) once it has accepted the client, and `connect` returns only after
//! that ticket or fails with [`TlsError::RefusedByPeer`] on the server's alert.
//! Session resumption is disabled: every connection checks certificates
//! afresh.
//!
//! # Revocation
//!
//! `crl` in `[tls]` names the deployment's certificate revocation list
//! (PEM or DER), signed by the CA; `jettison certs revoke` writes it
//! (`<ca dir>/ca.crl`), and the operator copies it to every host (e.g.
//! `/etc/jettison/tls/ca.crl`) and reloads the daemons. Both ends of every
//! handshake check it (webpki's CRL support, under the authorization
//! checks). No `crl` setting: no revocation check, said in the log at
//! start. A configured CRL that is missing, does not parse or is not signed
//! by the CA refuses the load ([`TlsError::BadCrl`]); so does our own
//! certificate if the CRL lists it. The CRL's `nextUpdate` is not enforced:
//! a list stays in force until it is replaced.
//!
//! # Reload
//!
//! [`TlsContext::reload`] loads the settings anew (CA, CRL, certificate,
//! key, `allowed_peers`, `expiry_warning_days`) with the same checks; if
//! they pass, the handshakes that follow use them, and every established
//! connection whose peer they refuse (revoked, no longer allowed, another
//! CA, expired) is closed with a log line that says why; the others carry
//! on. Settings that fail, or a certificate for another host name, leave
//! the settings in force untouched. The daemons reload on SIGHUP.
//!
//! # Expiry
//!
//! At load, at each reload and when the daemons ask (daily), a warning is
//! logged if this host's certificate or the CA expires within
//! `expiry_warning_days` (default 30); [`TlsContext::status_text`] shows
//! both dates for the daemons' status ([`expiry`]).
//!
//! # Deployment
//!
//! [`certs`] creates a CA and host certificates for small deployments
//! (`jettison certs init`, `jettison certs issue`) and the CA's CRL
//! (`jettison certs revoke`).

#![forbid(unsafe_code)]

pub mod certs;
mod confirm;
mod context;
mod crl;
mod error;
pub mod expiry;
mod files;
mod live;
mod material;
mod names;
mod pem;
mod revoke;
mod verify;

use std::path::PathBuf;

pub use context::{Reloaded, TlsContext};
pub use error::TlsError;
pub use live::TrackedTcp;
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
    /// The deployment's certificate revocation list (PEM or DER, signed by
    /// the CA; `jettison certs revoke` writes it). Absent: no revocation
    /// check (logged at start).
    #[serde(default)]
    pub crl: Option<PathBuf>,
    /// Warn when this host's certificate or the CA expires within this many
    /// days (at start, at each reload and daily; also in the status).
    #[serde(default = "default_expiry_warning_days")]
    pub expiry_warning_days: u32,
}

/// The default of [`TlsSettings::expiry_warning_days`].
pub const DEFAULT_EXPIRY_WARNING_DAYS: u32 = 30;

fn default_expiry_warning_days() -> u32 {
    DEFAULT_EXPIRY_WARNING_DAYS
}

impl TlsSettings {
    /// Settings with no CRL and the default expiry warning window.
    pub fn new(
        ca: impl Into<PathBuf>,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
        allowed_peers: Vec<String>,
    ) -> Self {
        TlsSettings {
            ca: ca.into(),
            cert: cert.into(),
            key: key.into(),
            allowed_peers,
            crl: None,
            expiry_warning_days: DEFAULT_EXPIRY_WARNING_DAYS,
        }
    }
}

/// An established, mutually authenticated TLS connection over TCP.
///
/// It is a byte stream (`AsyncRead + AsyncWrite`), used inside
/// `jettison_wire::Transport<TlsConn>`.
pub type TlsConn = tokio_rustls::TlsStream<TrackedTcp>;

/// Who is at the other end of an accepted connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The certificate name that matched `allowed_peers`.
    pub name: String,
    /// All DNS names of the peer's certificate, in certificate order.
    pub names: Vec<String>,
}
