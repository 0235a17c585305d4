//! Accept loops. Each connection runs in its own task: a bad peer (garbage,
//! truncated frames, wrong version or role) gets an error reply and a closed
//! connection, and nothing else is affected.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use jettison_tls::{TlsConn, TlsContext};
use jettison_wire::handshake::accept;
use jettison_wire::{ErrorCode, Hello, Message, Role, Transport, WireError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

/// Who is on the other end of an accepted connection.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its `Hello`.
    pub hello: Hello,
    /// Its address, for logs.
    pub addr: String,
    /// Its name as its TLS certificate proves it (TCP connections only).
    pub identity: Option<String>,
}

/// Handles the requests of one accepted connection.
pub trait ConnectionHandler<S>: Send + Sync + 'static {
    /// Called with a connection whose handshake succeeded; returns when the
    /// connection should be closed.
    fn handle(
        self: Arc<Self>,
        peer: Peer,
        transport: Transport<S>,
    ) -> impl Future<Output = ()> + Send;
}

async fn run_connection<S, H>(
    stream: S,
    addr: String,
    identity: Option<String>,
    roles: &'static [Role],
    host: Arc<str>,
    handler: Arc<H>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: ConnectionHandler<S>,
{
    let mut transport = Transport::new(stream);
    match accept(&mut transport, roles, &host).await {
        Ok(hello) => {
            tracing::debug!(peer = %addr, host = %hello.host, role = ?hello.role, "connection accepted");
            handler
                .handle(
                    Peer {
                        hello,
                        addr,
                        identity,
                    },
                    transport,
                )
                .await;
        }
        Err(e) => tracing::warn!(peer = %addr, "connection refused: {e}"),
    }
}

/// Accepts TCP connections forever (until the task is dropped). Each
/// handshake uses the TLS settings in force at that moment; a reload of
/// `tls` (SIGHUP, see [`crate::reload`]) closes the established connections
/// whose peer the new settings refuse, which their handler sees as a lost
/// connection.
pub async fn serve_tls<H>(
    listener: TcpListener,
    tls: Arc<TlsContext>,
    roles: &'static [Role],
    host: Arc<str>,
    handler: Arc<H>,
) where
    H: ConnectionHandler<TlsConn>,
{
    let refusals = Arc::new(crate::refusals::RefusalLog::new());
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                let (tls, host, handler) = (tls.clone(), host.clone(), handler.clone());
                let refusals = refusals.clone();
                tokio::spawn(async move {
                    // Plaintext, unknown CA, expired or unauthorized peers are
                    // refused here, before any jettison frame is read or sent.
                    match tls.accept(stream).await {
                        Ok((conn, who)) => {
                            run_connection(
                                conn,
                                addr.to_string(),
                                Some(who.name),
                                roles,
                                host,
                                handler,
                            )
                            .await
                        }
                        Err(e) => {
                            jettison_metrics::tls_refused(e.reason());
                            refusals.log(&addr.to_string(), &e)
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Opens a mutually authenticated connection to `addr`, which must prove it
/// is `name`, and runs the handshake as `role`.
pub async fn dial(
    tls: &TlsContext,
    addr: &str,
    name: &str,
    role: Role,
    timeout: std::time::Duration,
) -> Result<Transport<TlsConn>, DialError> {
    let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| DialError::Connect(format!("connecting to {addr} timed out")))?
        .map_err(|e| DialError::Connect(format!("cannot connect to {addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let conn = tls.connect(stream, name).await?;
    let mut t = Transport::new(conn);
    jettison_wire::handshake::connect(&mut t, role, tls.host_name()).await?;
    Ok(t)
}

/// Why a connection to a peer could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// TCP failed.
    #[error("{0}")]
    Connect(String),
    /// TLS refused (either side).
    #[error(transparent)]
    Tls(#[from] jettison_tls::TlsError),
    /// The jettison handshake failed.
    #[error(transparent)]
    Wire(#[from] jettison_wire::WireError),
}

/// Binds the operator's control socket, replacing a stale socket file left by
/// a previous run.
pub fn bind_control(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed stale control socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(listener)
}

/// Accepts operator connections on a Unix socket forever.
pub async fn serve_unix<H>(listener: UnixListener, host: Arc<str>, handler: Arc<H>)
where
    H: ConnectionHandler<tokio::net::UnixStream>,
{
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(run_connection(
                    stream,
                    "control".into(),
                    None,
                    &[Role::Operator],
                    host.clone(),
                    handler.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!("control accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Receives the next request of a connection. Returns `None` when the
/// connection should close: the peer left, or sent something undecodable (it
/// gets an error reply first, and a log line says why).
pub async fn next_request<S: AsyncRead + AsyncWrite + Unpin>(
    t: &mut Transport<S>,
    peer: &Peer,
) -> Option<Message> {
    match t.recv().await {
        Ok(Some(m)) => Some(m),
        Ok(None) => None,
        Err(e @ WireError::Malformed(_)) => {
            tracing::warn!(peer = %peer.addr, host = %peer.hello.host, "closing connection: {e}");
            let _ = t
                .send(&Message::error(ErrorCode::BadRequest, e.to_string()))
                .await;
            None
        }
        Err(e) => {
            tracing::warn!(peer = %peer.addr, host = %peer.hello.host, "connection lost: {e}");
            None
        }
    }
}
