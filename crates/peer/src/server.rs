//! The peer's three listeners: chat, mail and status.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::proto::{self, ChatLine};
use crate::stats::{PeerStatus, Registry};
use crate::PeerError;

/// Where the peer listens and how often it pings.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Chat listener (default port 5222).
    pub chat: SocketAddr,
    /// Mail listener (default port 1110).
    pub mail: SocketAddr,
    /// Status listener (default port 5280): one JSON document per connection.
    pub status: SocketAddr,
    /// Time between the peer's `PING`s on each chat connection.
    pub ping_interval: Duration,
    /// How long a new connection may take to send its first line.
    pub hello_timeout: Duration,
}

impl PeerConfig {
    /// The default ports on `ip`.
    pub fn on(ip: std::net::IpAddr) -> Self {
        Self {
            chat: SocketAddr::new(ip, 5222),
            mail: SocketAddr::new(ip, 1110),
            status: SocketAddr::new(ip, 5280),
            ping_interval: Duration::from_secs(1),
            hello_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug)]
struct Shared {
    reg: Mutex<Registry>,
    start: Instant,
    next_conn: AtomicU64,
    cfg: PeerConfig,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
    fn with<R>(&self, f: impl FnOnce(&mut Registry, u64) -> R) -> R {
        let now = self.now_ms();
        let mut reg = self.reg.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut reg, now)
    }
}

/// The bound listeners; [`Peer::run`] serves them.
#[derive(Debug)]
pub struct Peer {
    chat: TcpListener,
    mail: TcpListener,
    status: TcpListener,
    shared: Arc<Shared>,
}

impl Peer {
    /// Binds the three listeners (port 0 picks a free port).
    pub async fn bind(cfg: PeerConfig) -> Result<Self, PeerError> {
        let bind = |a: SocketAddr| async move {
            TcpListener::bind(a)
                .await
                .map_err(|e| PeerError::Bind(a, e))
        };
        Ok(Self {
            chat: bind(cfg.chat).await?,
            mail: bind(cfg.mail).await?,
            status: bind(cfg.status).await?,
            shared: Arc::new(Shared {
                reg: Mutex::default(),
                start: Instant::now(),
                next_conn: AtomicU64::new(1),
                cfg,
            }),
        })
    }

    /// The bound (chat, mail, status) addresses.
    pub fn addrs(&self) -> Result<(SocketAddr, SocketAddr, SocketAddr), PeerError> {
        Ok((
            self.chat.local_addr()?,
            self.mail.local_addr()?,
            self.status.local_addr()?,
        ))
    }

    /// A snapshot of the counters.
    pub fn status(&self) -> PeerStatus {
        self.shared.with(|r, now| r.status(now))
    }

    /// Serves forever (until the future is dropped or a listener fails).
    pub async fn run(self) -> Result<(), PeerError> {
        let Peer {
            chat,
            mail,
            status,
            shared,
        } = self;
        tokio::try_join!(
            accept_loop(chat, shared.clone(), chat_conn),
            accept_loop(mail, shared.clone(), mail_conn),
            accept_loop(status, shared, status_conn),
        )?;
        Ok(())
    }
}

async fn accept_loop<F, Fut>(l: TcpListener, shared: Arc<Shared>, f: F) -> Result<(), PeerError>
where
    F: Fn(TcpStream, SocketAddr, Arc<Shared>) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    loop {
        let (s, from) = l.accept().await?;
        let _ = s.set_nodelay(true);
        let fut = f(s, from, shared.clone());
        tokio::spawn(async move {
            if let Err(e) = fut.await {
                debug!(%from, "connection ended: {e}");
            }
        });
    }
}

async fn chat_conn(s: TcpStream, from: SocketAddr, sh: Arc<Shared>) -> std::io::Result<()> {
    let (rd, mut wr) = s.into_split();
    let mut lines = BufReader::new(rd).lines();
    let first = tokio::time::timeout(sh.cfg.hello_timeout, lines.next_line()).await;
    let id = match first {
        Ok(Ok(Some(l))) => match proto::parse_chat(&l) {
            Ok(ChatLine::Hello(id)) => id,
            _ => {
                return wr
                    .write_all(proto::err_line("HELLO first").as_bytes())
                    .await
            }
        },
        _ => return Ok(()),
    };
    let conn = sh.next_conn.fetch_add(1, Ordering::Relaxed);
    sh.with(|r, now| r.hello(&id, conn, now));
    info!(%id, %from, conn, "chat client connected");
    let result = chat_session(&id, &mut lines, &mut wr, &sh).await;
    sh.with(|r, now| r.closed(&id, conn, now));
    match &result {
        Ok(()) => info!(%id, conn, "chat client closed"),
        Err(e) => warn!(%id, conn, "chat connection lost: {e}"),
    }
    result
}

async fn chat_session(
    id: &str,
    lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    sh: &Shared,
) -> std::io::Result<()> {
    let mut tick = tokio::time::interval(sh.cfg.ping_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut ping = 0u64;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                let reply = match proto::parse_chat(&line) {
                    Ok(ChatLine::Hb(n)) => {
                        sh.with(|r, now| r.heartbeat(id, n, now));
                        proto::ack_line(n)
                    }
                    Ok(ChatLine::Pong(_)) => {
                        sh.with(|r, now| r.pong(id, now));
                        continue;
                    }
                    Ok(ChatLine::Hello(_)) => proto::err_line("already said HELLO"),
                    Err(e) => {
                        sh.with(|r, now| r.bad_line(id, now));
                        proto::err_line(&e.to_string())
                    }
                };
                wr.write_all(reply.as_bytes()).await?;
            }
            _ = tick.tick() => {
                ping += 1;
                wr.write_all(proto::ping_line(ping).as_bytes()).await?;
                sh.with(|r, _| r.ping_sent(id));
            }
        }
    }
}

async fn mail_conn(s: TcpStream, _from: SocketAddr, sh: Arc<Shared>) -> std::io::Result<()> {
    let (rd, mut wr) = s.into_split();
    let mut lines = BufReader::new(rd).lines();
    let reply = match tokio::time::timeout(sh.cfg.hello_timeout, lines.next_line()).await {
        Ok(Ok(Some(l))) => match proto::parse_poll(&l) {
            Ok(id) => {
                let n = sh.with(|r, now| r.mail_poll(&id, now));
                let (count, bytes) = proto::mailbox(n);
                proto::ok_line(count, bytes)
            }
            Err(e) => proto::err_line(&e.to_string()),
        },
        _ => return Ok(()),
    };
    wr.write_all(reply.as_bytes()).await?;
    wr.shutdown().await
}

async fn status_conn(mut s: TcpStream, _from: SocketAddr, sh: Arc<Shared>) -> std::io::Result<()> {
    let st = sh.with(|r, now| r.status(now));
    let mut doc = serde_json::to_vec(&st).map_err(std::io::Error::other)?;
    doc.push(b'\n');
    s.write_all(&doc).await?;
    s.shutdown().await
}
