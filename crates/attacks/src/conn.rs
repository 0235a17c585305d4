//! The attacker's side of the wire: a mutually authenticated connection
//! (with the second desktop's certificate) that sends frames of its own
//! making, raw bytes included, and counts what it receives. Runs on a
//! thread inside a test host's network namespace ([`in_host`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jettison_testbed::Host;
use jettison_tls::{TlsConn, TlsContext};
use jettison_wire::{
    decode, encode, Hello, Message, Role, MAGIC, MAX_FRAME_BYTES, PROTOCOL_MAJOR, PROTOCOL_MINOR,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::report::Reply;

/// How long the attacker waits for a reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `f` on a current-thread runtime on a thread inside `host`'s
/// network namespace: every socket it opens is the host's.
pub fn in_host<T, F, Fut>(host: &Host, f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>>,
{
    host.run_in(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(f())
    })?
}

/// [`in_host`] from async code (on a blocking thread).
pub async fn on_host<T, F, Fut>(host: &Host, f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let host = host.clone();
    tokio::task::spawn_blocking(move || in_host(&host, f)).await?
}

/// One connection of the attacker.
#[derive(Debug)]
pub struct Conn {
    stream: TlsConn,
    /// Payload bytes received so far (framing excluded).
    pub received: u64,
}

impl Conn {
    /// Connects to `addr` (which must prove it is `name`) with `tls`, and
    /// says `Hello` as `role`; the error is the text of whatever refused.
    pub async fn dial(
        tls: Arc<TlsContext>,
        addr: &str,
        name: &str,
        role: Role,
    ) -> Result<Conn, String> {
        let tcp = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let stream = tls.connect(tcp, name).await.map_err(|e| e.to_string())?;
        let mut c = Conn {
            stream,
            received: 0,
        };
        let hello = Message::Hello(Hello {
            magic: MAGIC,
            major: PROTOCOL_MAJOR,
            minor: PROTOCOL_MINOR,
            role,
            host: tls.host_name().to_string(),
        });
        match c.request(&hello).await {
            Reply::Served(k) if k == "Welcome" => Ok(c),
            other => Err(format!("handshake: {}", other.text())),
        }
    }

    /// Sends one frame holding `payload`.
    pub async fn send_raw(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.stream.write_all(&len.to_be_bytes()).await?;
        self.stream.write_all(payload).await?;
        self.stream.flush().await
    }

    /// Sends a message.
    pub async fn send(&mut self, msg: &Message) -> std::io::Result<()> {
        let payload = encode(msg).map_err(std::io::Error::other)?;
        self.send_raw(&payload).await
    }

    /// Receives one message (counting its payload).
    pub async fn recv(&mut self, timeout: Duration) -> Result<Message, String> {
        let read = async {
            let mut len = [0u8; 4];
            self.stream
                .read_exact(&mut len)
                .await
                .map_err(|e| format!("connection ended: {e}"))?;
            let len = u32::from_be_bytes(len) as usize;
            if len > MAX_FRAME_BYTES {
                return Err(format!("frame of {len} bytes"));
            }
            let mut buf = vec![0u8; len];
            self.stream
                .read_exact(&mut buf)
                .await
                .map_err(|e| format!("connection ended mid-frame: {e}"))?;
            self.received += len as u64;
            decode(&buf).map_err(|e| e.to_string())
        };
        tokio::time::timeout(timeout, read)
            .await
            .unwrap_or_else(|_| Err(format!("no reply within {timeout:?}")))
    }

    /// Sends a message and reads the reply.
    pub async fn request(&mut self, msg: &Message) -> Reply {
        self.request_raw(&encode(msg).unwrap_or_default()).await
    }

    /// Sends a frame of raw bytes and reads the reply.
    pub async fn request_raw(&mut self, payload: &[u8]) -> Reply {
        if let Err(e) = self.send_raw(payload).await {
            return Reply::NoReply(format!("send failed: {e}"));
        }
        reply_of(self.recv(REPLY_TIMEOUT).await)
    }

    /// Closes the connection (TLS `close_notify`).
    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// A received message as a [`Reply`].
pub fn reply_of(r: Result<Message, String>) -> Reply {
    match r {
        Ok(Message::Error(e)) => Reply::Error(format!("{:?}: {}", e.code, e.message)),
        Ok(m) => Reply::Served(m.kind().into()),
        Err(e) => Reply::NoReply(e),
    }
}
