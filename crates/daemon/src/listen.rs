//! Accept loops. Each connection runs in its own task: a bad peer (garbage,
//! truncated frames, wrong version or role) gets an error reply and a closed
//! connection, and nothing else is affected.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

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
            handler.handle(Peer { hello, addr }, transport).await;
        }
        Err(e) => tracing::warn!(peer = %addr, "connection refused: {e}"),
    }
}

/// Accepts TCP connections forever (until the task is dropped).
pub async fn serve_tcp<H>(
    listener: TcpListener,
    roles: &'static [Role],
    host: Arc<str>,
    handler: Arc<H>,
) where
    H: ConnectionHandler<tokio::net::TcpStream>,
{
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(run_connection(
                    stream,
                    addr.to_string(),
                    roles,
                    host.clone(),
                    handler.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
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
