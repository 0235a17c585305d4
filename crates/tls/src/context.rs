//! The per-host TLS context: loading, accepting, connecting.

use std::sync::{Arc, Mutex};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use crate::error::{from_io, from_rustls};
use crate::names::{dns_names, first_allowed, validate_host_name};
use crate::verify::{AuthorizingVerifier, ServerVerifier, TicketsWithoutResumption};
use crate::{pem, PeerIdentity, TlsConn, TlsError, TlsSettings, HANDSHAKE_TIMEOUT};

/// TLS content type of a handshake record: the first byte of every TLS client.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A host's TLS identity and policy, built once from its `[tls]` settings:
/// rustls configurations for both roles (TLS 1.3 only, ring provider, client
/// certificates required and verified against the deployment CA) and the
/// `allowed_peers` list.
#[derive(Debug)]
pub struct TlsContext {
    host_name: String,
    allowed: Arc<[String]>,
    provider: Arc<CryptoProvider>,
    own: Arc<CertifiedKey>,
    client_verifier: Arc<dyn ClientCertVerifier>,
    client: Arc<ClientConfig>,
}

fn config_err(e: impl std::fmt::Display) -> TlsError {
    TlsError::Config(e.to_string())
}

impl TlsContext {
    /// Loads the CA, our certificate and key, and checks them: our
    /// certificate must be currently valid, issued by the CA, usable for both
    /// client and server authentication, and match the key. Errors name the
    /// offending file.
    pub fn load(settings: &TlsSettings) -> Result<Arc<TlsContext>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in pem::certs(&settings.ca)? {
            roots.add(ca).map_err(|e| TlsError::BadPem {
                path: settings.ca.clone(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
        let roots = Arc::new(roots);
        let chain = pem::certs(&settings.cert)?;
        let key = pem::key(&settings.key)?;
        for name in &settings.allowed_peers {
            validate_host_name(name).map_err(|reason| TlsError::BadHostName {
                name: name.clone(),
                reason: format!("in allowed_peers: {reason}"),
            })?;
        }
        let own_err = |reason: String| TlsError::OwnCert {
            path: settings.cert.clone(),
            reason,
        };
        let host_name = dns_names(&chain[0])
            .map_err(&own_err)?
            .into_iter()
            .next()
            .ok_or_else(|| own_err("no DNS subject alternative name (the host name)".into()))?;

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(config_err)?;
        let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(config_err)?;
        let now = UnixTime::now();
        let ca = settings.ca.display();
        let why = |e: rustls::Error| match e {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            | rustls::Error::InvalidCertificate(CertificateError::BadSignature) => {
                format!("not issued by the CA in {ca}")
            }
            e => e.to_string(),
        };
        client_verifier
            .verify_client_cert(&chain[0], &chain[1..], now)
            .map_err(|e| own_err(why(e)))?;
        let server_name =
            ServerName::try_from(host_name.clone()).map_err(|e| own_err(e.to_string()))?;
        server_verifier
            .verify_server_cert(&chain[0], &chain[1..], &server_name, &[], now)
            .map_err(|e| own_err(why(e)))?;

        let own = Arc::new(CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
            TlsError::OwnCert {
                path: settings.key.clone(),
                reason: format!("key does not fit {}: {e}", settings.cert.display()),
            }
        })?);
        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_err)?
            .dangerous() // only to wrap webpki's verifier: see `verify::ServerVerifier`
            .with_custom_certificate_verifier(Arc::new(ServerVerifier(server_verifier)))
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(own.clone())));
        client.resumption = Resumption::disabled();
        if settings.allowed_peers.is_empty() {
            tracing::warn!(host = %host_name, "tls: allowed_peers is empty: no connection will be accepted or made");
        }
        tracing::debug!(host = %host_name, peers = ?settings.allowed_peers, "tls: context loaded");
        Ok(Arc::new(TlsContext {
            host_name,
            allowed: settings
                .allowed_peers
                .iter()
                .map(|p| p.to_ascii_lowercase())
                .collect(),
            provider,
            own,
            client_verifier,
            client: Arc::new(client),
        }))
    }

    /// Our host name: the first DNS name of our certificate.
    pub fn host_name(&self) -> &str {
        &self.host_name
    }

    /// The host names we accept or connect to.
    pub fn allowed_peers(&self) -> &[String] {
        &self.allowed
    }

    /// Whether `name` is in `allowed_peers` (callers can check before dialling).
    pub fn is_allowed(&self, name: &str) -> bool {
        self.allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
    }

    /// Server side: TLS handshake (limited to [`HANDSHAKE_TIMEOUT`]); the
    /// client's certificate must come from the CA, be valid now and carry a
    /// DNS name in `allowed_peers`. Otherwise the connection is closed before
    /// any application data and the error says why ([`TlsError::NotTls`],
    /// [`TlsError::UnknownCa`], [`TlsError::Expired`],
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
        let seen = Arc::new(Mutex::new(None));
        let verifier = Arc::new(AuthorizingVerifier {
            inner: self.client_verifier.clone(),
            allowed: self.allowed.clone(),
            seen: seen.clone(),
        });
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_err)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(self.own.clone())));
        // The ticket sent after the client's certificate is accepted is the
        // client's confirmation; the store never resumes (see `verify`).
        config.session_storage = Arc::new(TicketsWithoutResumption);
        config.send_tls13_tickets = 1;
        let mut tls = TlsAcceptor::from(Arc::new(config))
            .accept(tcp)
            .await
            .map_err(|e| from_io(peer, &e, seen.lock().ok().and_then(|mut s| s.take())))?;
        // The verifier has checked this already; check again on the
        // connection itself, so no path can skip it.
        let names = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| dns_names(c).unwrap_or_default())
            .unwrap_or_default();
        let Some(name) = first_allowed(&names, &self.allowed).cloned() else {
            let _ = tls.shutdown().await;
            return Err(TlsError::NotAuthorized {
                peer: peer.to_owned(),
                names,
            });
        };
        Ok((TlsStream::Server(tls), PeerIdentity { name, names }))
    }

    /// Client side: refuses names outside `allowed_peers` before any
    /// handshake; then a handshake verifying the server's certificate against
    /// the CA and `expected_name` (sent as SNI; the connection's IP address
    /// plays no part), and waits for the server's confirmation that it
    /// accepted our certificate (a session ticket) or its refusal (an alert).
    /// All within [`HANDSHAKE_TIMEOUT`].
    pub async fn connect(&self, tcp: TcpStream, expected_name: &str) -> Result<TlsConn, TlsError> {
        if !self.is_allowed(expected_name) {
            return Err(TlsError::PeerNotAllowed {
                name: expected_name.to_owned(),
            });
        }
        let peer = match tcp.peer_addr() {
            Ok(a) => format!("server {expected_name} at {a}"),
            Err(_) => format!("server {expected_name}"),
        };
        let server_name =
            ServerName::try_from(expected_name.to_ascii_lowercase()).map_err(|e| {
                TlsError::BadHostName {
                    name: expected_name.to_owned(),
                    reason: e.to_string(),
                }
            })?;
        let work = async {
            let mut tls = TlsConnector::from(self.client.clone())
                .connect(server_name, tcp)
                .await
                .map_err(|e| from_io(&peer, &e, None))?;
            crate::confirm::await_ticket(&mut tls, &peer).await?;
            Ok(TlsStream::Client(tls))
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
