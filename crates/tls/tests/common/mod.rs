//! Test helpers: throwaway CAs, contexts, a one-connection TLS server on
//! 127.0.0.1, and a bare rustls client for certificates `TlsContext` refuses
//! to load (expired ones).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jettison_tls::certs::{self, CertFiles};
use jettison_tls::{PeerIdentity, TlsContext, TlsError, TlsSettings};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What an accepted server writes first: must never reach a refused client.
pub const PAYLOAD: &[u8] = b"SERVER-APPLICATION-PAYLOAD";

/// A CA in its own temporary directory; host certificates go there too.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // The same organisation for every CA: another CA must be told apart
        // by its key, not by its name.
        certs::create_ca(dir.path(), "jettison-test", 30).unwrap();
        Pki { dir }
    }

    pub fn ca(&self) -> std::path::PathBuf {
        certs::ca_files(self.dir.path()).cert
    }

    pub fn issue(&self, host: &str) -> CertFiles {
        certs::issue(self.dir.path(), host, &[], &[], self.dir.path(), 30).unwrap()
    }

    pub fn issue_expired(&self, host: &str) -> CertFiles {
        let now = SystemTime::now();
        certs::issue_with_validity(
            self.dir.path(),
            host,
            &[],
            &[],
            self.dir.path(),
            now - Duration::from_secs(10 * 86_400),
            now - Duration::from_secs(86_400),
        )
        .unwrap()
    }

    pub fn settings(&self, files: &CertFiles, allowed: &[&str]) -> TlsSettings {
        TlsSettings::new(
            self.ca(),
            &files.cert,
            &files.key,
            allowed.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// Revokes every certificate of `hosts` in the CA's CRL (`ca.crl` in the
    /// CA's directory, extended if it exists); returns its path.
    pub fn revoke(&self, hosts: &[&str]) -> std::path::PathBuf {
        let path = certs::crl_path(self.dir.path());
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let r = certs::revoke(self.dir.path(), &path, &hosts, &[], SystemTime::now()).unwrap();
        std::fs::write(&path, r.crl_pem).unwrap();
        path
    }

    /// [`Pki::settings`] with this CA's CRL.
    pub fn settings_with_crl(&self, files: &CertFiles, allowed: &[&str]) -> TlsSettings {
        TlsSettings {
            crl: Some(certs::crl_path(self.dir.path())),
            ..self.settings(files, allowed)
        }
    }

    /// Issues a certificate for `host` and loads a context for it.
    pub fn context(&self, host: &str, allowed: &[&str]) -> Arc<TlsContext> {
        let files = self.issue(host);
        TlsContext::load(&self.settings(&files, allowed)).unwrap()
    }
}

/// Accepts one connection with `ctx`. On success writes [`PAYLOAD`], then
/// echoes one line-free message of up to 64 bytes back.
pub async fn serve_one(
    ctx: Arc<TlsContext>,
) -> (SocketAddr, JoinHandle<Result<PeerIdentity, TlsError>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (mut conn, id) = ctx.accept(tcp).await?;
        conn.write_all(PAYLOAD).await.unwrap();
        conn.flush().await.unwrap();
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).await.unwrap();
        conn.write_all(&buf[..n]).await.unwrap();
        conn.shutdown().await.unwrap();
        Ok(id)
    });
    (addr, task)
}

/// A bare rustls TLS 1.3 client trusting `ca`, presenting `cert`/`key`.
pub fn bare_client(ca: &Path, files: &CertFiles) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(&files.cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap(),
    )
}

/// What a client saw after its handshake attempt.
#[derive(Debug)]
pub enum Seen {
    /// The handshake itself failed (on the client's side).
    HandshakeError(std::io::Error),
    /// The handshake finished; then reading gave these bytes, then this error
    /// (or clean closure, `None`).
    AfterHandshake(Vec<u8>, Option<std::io::Error>),
}

/// Connects with a bare rustls client and reads everything the server sends
/// until error or closure.
pub async fn bare_attempt(config: Arc<rustls::ClientConfig>, addr: SocketAddr, name: &str) -> Seen {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = match tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
    {
        Ok(t) => t,
        Err(e) => return Seen::HandshakeError(e),
    };
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await {
            Err(_) => panic!("no refusal within 10 s; got {got:?}"),
            Ok(Ok(0)) => return Seen::AfterHandshake(got, None),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => return Seen::AfterHandshake(got, Some(e)),
        }
    }
}

/// Asserts the client got no application data and saw an error naming
/// `alert` (rustls' alert name, e.g. "AccessDenied").
pub fn assert_refused_with_alert(seen: &Seen, alert: &str) {
    match seen {
        Seen::AfterHandshake(got, Some(e)) => {
            assert!(got.is_empty(), "client received application data {got:?}");
            assert!(
                format!("{e}").contains(alert),
                "expected alert {alert}, got: {e}"
            );
        }
        other => panic!("expected a refusal with alert {alert}, got {other:?}"),
    }
}
