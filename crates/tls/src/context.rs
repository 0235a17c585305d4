//! The per-host TLS context: loading, reloading, accepting, connecting.

use std::sync::{Arc, Mutex, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::SingleCertAndKey;
use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use crate::error::{from_io, from_rustls};
use crate::expiry::{expiry_warnings, status_text, CertExpiry, ExpiryWarning};
use crate::live::{Registry, Side, TrackedTcp};
use crate::material::{config_err, Material};
use crate::names::{dns_names, first_allowed};
use crate::verify::{AuthorizingVerifier, TicketsWithoutResumption};
use crate::{PeerIdentity, TlsConn, TlsError, TlsSettings, HANDSHAKE_TIMEOUT};

/// TLS content type of a handshake record: the first byte of every TLS client.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A host's TLS identity and policy, built from its `[tls]` settings: rustls
/// configurations for both roles (TLS 1.3 only, ring provider, client
/// certificates required and verified against the deployment CA and its
/// CRL) and the `allowed_peers` list. [`TlsContext::reload`] replaces them
/// for the handshakes that follow, and closes the established connections
/// the new settings refuse.
#[derive(Debug)]
pub struct TlsContext {
    host_name: String,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Material>>,
    live: Registry,
}

/// What a successful [`TlsContext::reload`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// The established connections closed because the new settings refuse
    /// their peer, each with the reason.
    pub closed: Vec<String>,
    /// The established connections kept.
    pub kept: usize,
}

impl TlsContext {
    /// Loads the CA, the CRL (if configured), our certificate and key, and
    /// checks them: our certificate must be currently valid, issued by the
    /// CA, not revoked, usable for both client and server authentication,
    /// and match the key; a configured CRL must exist, parse and be signed by
    /// the CA. Errors name the offending file. Logs whether revocation is
    /// checked and warns of a coming expiry.
    pub fn load(settings: &TlsSettings) -> Result<Arc<TlsContext>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let material = Material::load(settings, &provider)?;
        let ctx = TlsContext {
            host_name: material.host_name.clone(),
            provider,
            current: RwLock::new(Arc::new(material)),
            live: Registry::default(),
        };
        ctx.log_loaded("loaded");
        Ok(Arc::new(ctx))
    }

    /// Loads `settings` anew (as [`TlsContext::load`] does) and, if they are
    /// valid, puts them in force: the handshakes that follow use the new
    /// CA, CRL, certificate, key and `allowed_peers`, and each established
    /// connection whose peer the new settings would refuse is closed (a log
    /// line says why). Invalid settings, or a certificate for another host
    /// name, are refused with the error and the settings in force stay.
    pub fn reload(&self, settings: &TlsSettings) -> Result<Reloaded, TlsError> {
        let material = Material::load(settings, &self.provider)?;
        if material.host_name != self.host_name {
            return Err(TlsError::OwnCert {
                path: settings.cert.clone(),
                reason: format!(
                    "the new certificate is for {:?}, this daemon runs as {:?}: \
                     a change of host name needs a restart",
                    material.host_name, self.host_name
                ),
            });
        }
        let material = Arc::new(material);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = material.clone();
        self.log_loaded("reloaded");
        let mut outcome = Reloaded::default();
        for entry in self.live.live() {
            match material.recheck(&entry.peer, &entry.side, &entry.chain) {
                Ok(()) => outcome.kept += 1,
                Err(e) => {
                    tracing::warn!("tls: closing an established connection: {e}");
                    if let Err(io) = entry.close() {
                        tracing::warn!(peer = %entry.peer, "tls: closing failed: {io}");
                    }
                    outcome.closed.push(e.to_string());
                }
            }
        }
        Ok(outcome)
    }

    fn current(&self) -> Arc<Material> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn log_loaded(&self, what: &str) {
        let m = self.current();
        match (&m.settings.crl, &m.revoked) {
            (Some(path), Some(revoked)) => tracing::info!(
                host = %self.host_name,
                crl = %path.display(),
                revoked = revoked.len(),
                "tls: {what}; checking peers against the CRL"
            ),
            _ => tracing::info!(
                host = %self.host_name,
                "tls: {what}; no CRL configured (tls.crl): revoked certificates are not refused"
            ),
        }
        if m.allowed.is_empty() {
            tracing::warn!(host = %self.host_name, "tls: allowed_peers is empty: no connection will be accepted or made");
        }
        tracing::debug!(host = %self.host_name, peers = ?m.allowed, "tls: allowed peers");
        self.warn_if_expiring();
    }

    /// Our host name: the first DNS name of our certificate.
    pub fn host_name(&self) -> &str {
        &self.host_name
    }

    /// The host names we accept or connect to.
    pub fn allowed_peers(&self) -> Vec<String> {
        self.current().allowed.to_vec()
    }

    /// Whether `name` is in `allowed_peers` (callers can check before dialling).
    pub fn is_allowed(&self, name: &str) -> bool {
        self.current().is_allowed(name)
    }

    /// The serial numbers (hex) in the CRL in force, or `None` without one.
    pub fn revoked_serials(&self) -> Option<Vec<String>> {
        self.current().revoked.clone()
    }

    /// When our certificate and the CA expire.
    pub fn expiry(&self) -> CertExpiry {
        self.current().expiry
    }

    /// The expiry warnings due now (`expiry_warning_days` in force).
    pub fn expiry_warnings(&self) -> Vec<ExpiryWarning> {
        let m = self.current();
        expiry_warnings(&m.expiry, unix_now(), m.settings.expiry_warning_days)
    }

    /// Logs a warning for each expiry warning due now.
    pub fn warn_if_expiring(&self) {
        let window = self.current().settings.expiry_warning_days;
        for w in self.expiry_warnings() {
            tracing::warn!(host = %self.host_name, "tls: {w}; renew it (warning window {window} days)");
        }
    }

    /// For status output: both expiry dates (marked `WARNING` within the
    /// window) and the CRL in force.
    pub fn status_text(&self) -> String {
        let m = self.current();
        let dates = status_text(&m.expiry, unix_now(), m.settings.expiry_warning_days);
        match &m.revoked {
            Some(r) => format!("{dates}; CRL: {} revoked", r.len()),
            None => format!("{dates}; no CRL"),
        }
    }

    /// Server side: TLS handshake (limited to [`HANDSHAKE_TIMEOUT`]); the
    /// client's certificate must come from the CA, be valid now, not be
    /// revoked and carry a DNS name in `allowed_peers`. Otherwise the
    /// connection is closed before any application data and the error says
    /// why ([`TlsError::NotTls`], [`TlsError::UnknownCa`],
    /// [`TlsError::Expired`], [`TlsError::Revoked`],
    /// [`TlsError::NotAuthorized`], ...).
    pub async fn accept(&self, tcp: TcpStream) -> Result<(TlsConn, PeerIdentity), TlsError> {
        let peer = match tcp.peer_addr() {
            Ok(a) => format!("client {a}"),
            Err(_) => "client ?".to_owned(),
        };
        let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.accept_inner(tcp, &peer))
            .await
            .unwrap_or_else(|_| Err(timeout(&peer)));
        match &result {
            Ok((_, id)) => tracing::debug!(%peer, name = %id.name, "tls: accepted"),
            Err(e) => tracing::debug!(error = %e, "tls: refused"),
        }
        result
    }

    async fn accept_inner(
        &self,
        mut tcp: TcpStream,
        peer: &str,
    ) -> Result<(TlsConn, PeerIdentity), TlsError> {
        let mut first = [0u8; 1];
        let n = tcp
            .peek(&mut first)
            .await
            .map_err(|e| from_io(peer, &e, None))?;
        if n == 0 {
            return Err(TlsError::Handshake {
                peer: peer.to_owned(),
                detail: "closed before sending anything".into(),
            });
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            let _ = tcp.shutdown().await;
            return Err(TlsError::NotTls {
                peer: peer.to_owned(),
                first_byte: first[0],
            });
        }
        let material = self.current();
        let seen = Arc::new(Mutex::new(None));
        let verifier = Arc::new(AuthorizingVerifier {
            inner: material.client_verifier.clone() as Arc<dyn ClientCertVerifier>,
            allowed: material.allowed.clone(),
            seen: seen.clone(),
        });
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_err)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(material.own.clone())));
        // The ticket sent after the client's certificate is accepted is the
        // client's confirmation; the store never resumes (see `verify`).
        config.session_storage = Arc::new(TicketsWithoutResumption);
        config.send_tls13_tickets = 1;
        let mut tls = TlsAcceptor::from(Arc::new(config))
            .accept(TrackedTcp::new(tcp))
            .await
            .map_err(|e| from_io(peer, &e, seen.lock().ok().and_then(|mut s| s.take())))?;
        // The verifier has checked this already; check again on the
        // connection itself, so no path can skip it.
        let chain: Vec<_> = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        let names = chain
            .first()
            .map(|c| dns_names(c).unwrap_or_default())
            .unwrap_or_default();
        let Some(name) = first_allowed(&names, &material.allowed).cloned() else {
            let _ = tls.shutdown().await;
            return Err(TlsError::NotAuthorized {
                peer: peer.to_owned(),
                names,
            });
        };
        let mut conn = TlsStream::Server(tls);
        self.track(&mut conn, &material, peer, Side::Accepted, chain)
            .await?;
        Ok((conn, PeerIdentity { name, names }))
    }

    /// Records an established connection for later reloads; if a reload
    /// happened during its handshake, judges it by the settings now in
    /// force (a reload closes only the connections recorded before it).
    async fn track(
        &self,
        conn: &mut TlsConn,
        used: &Arc<Material>,
        peer: &str,
        side: Side,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> Result<(), TlsError> {
        let recheck = (side.clone(), chain.clone());
        let stream = match conn {
            TlsStream::Server(s) => s.get_mut().0,
            TlsStream::Client(c) => c.get_mut().0,
        };
        self.live
            .track(stream, peer, side, chain)
            .map_err(|e| from_io(peer, &e, None))?;
        let now = self.current();
        if !Arc::ptr_eq(&now, used) {
            if let Err(e) = now.recheck(peer, &recheck.0, &recheck.1) {
                let _ = conn.shutdown().await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Client side: refuses names outside `allowed_peers` before any
    /// handshake; then a handshake verifying the server's certificate against
    /// the CA, the CRL and `expected_name` (sent as SNI; the connection's IP
    /// address plays no part), and waits for the server's confirmation that
    /// it accepted our certificate (a session ticket) or its refusal (an
    /// alert). All within [`HANDSHAKE_TIMEOUT`].
    pub async fn connect(&self, tcp: TcpStream, expected_name: &str) -> Result<TlsConn, TlsError> {
        let material = self.current();
        if !material.is_allowed(expected_name) {
            return Err(TlsError::PeerNotAllowed {
                name: expected_name.to_owned(),
            });
        }
        let peer = match tcp.peer_addr() {
            Ok(a) => format!("server {expected_name} at {a}"),
            Err(_) => format!("server {expected_name}"),
        };
        let lower = expected_name.to_ascii_lowercase();
        let server_name =
            ServerName::try_from(lower.clone()).map_err(|e| TlsError::BadHostName {
                name: expected_name.to_owned(),
                reason: e.to_string(),
            })?;
        let work = async {
            let mut tls = TlsConnector::from(material.client.clone())
                .connect(server_name, TrackedTcp::new(tcp))
                .await
                .map_err(|e| from_io(&peer, &e, None))?;
            crate::confirm::await_ticket(&mut tls, &peer).await?;
            let chain: Vec<_> = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default();
            let mut conn = TlsStream::Client(tls);
            self.track(
                &mut conn,
                &material,
                &peer,
                Side::Dialed { name: lower },
                chain,
            )
            .await?;
            Ok(conn)
        };
        let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| Err(timeout(&peer)));
        if let Err(e) = &result {
            tracing::debug!(error = %e, "tls: connect failed");
        }
        result
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn timeout(peer: &str) -> TlsError {
    TlsError::Timeout {
        peer: peer.to_owned(),
        secs: HANDSHAKE_TIMEOUT.as_secs(),
    }
}

/// Used by `confirm` to classify a failure after the client's handshake.
pub(crate) fn refused(peer: &str, e: &rustls::Error) -> TlsError {
    from_rustls(peer, e, None)
}
