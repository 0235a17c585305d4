//! Async QMP client: typed commands, replies matched by `id`, events broadcast.

pub mod commands;
pub mod message;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, oneshot};

use crate::error::{QemuError, Result};
pub use commands::*;
pub use message::{QmpEvent, QmpMessage, QmpTimestamp};

/// Default timeout of one QMP command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

type Reply = Result<Value>;

#[derive(Debug, Default)]
struct Pending {
    waiters: HashMap<u64, oneshot::Sender<Reply>>,
    /// Set once the connection is gone: the reason given to every later call.
    closed: Option<String>,
}

#[derive(Debug)]
struct Shared {
    name: String,
    pending: Mutex<Pending>,
    events: broadcast::Sender<QmpEvent>,
}

impl Shared {
    fn close(&self, reason: &str) {
        let mut p = self.pending.lock().unwrap();
        if p.closed.is_none() {
            p.closed = Some(reason.to_string());
        }
        let reason = p.closed.clone().unwrap_or_default();
        for (_, w) in p.waiters.drain() {
            let _ = w.send(Err(QemuError::Disconnected(reason.clone())));
        }
    }
}

/// A connected QMP monitor (after `qmp_capabilities`). Cheap to share by reference;
/// calls may run concurrently.
#[derive(Debug)]
pub struct QmpClient {
    shared: Arc<Shared>,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    next_id: AtomicU64,
    timeout_ms: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for QmpClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl QmpClient {
    /// Connects to the QMP socket at `path`; `name` labels log lines.
    pub async fn connect(path: &std::path::Path, name: &str) -> Result<QmpClient> {
        let s = UnixStream::connect(path)
            .await
            .map_err(|e| QemuError::io(format!("connect QMP {}", path.display()), e))?;
        Self::from_stream(s, name).await
    }

    /// Takes over an already connected QMP socket: reads the greeting and negotiates
    /// capabilities.
    pub async fn from_stream(stream: UnixStream, name: &str) -> Result<QmpClient> {
        let (rd, wr) = stream.into_split();
        let mut lines = BufReader::new(rd).lines();
        let greeting = tokio::time::timeout(DEFAULT_TIMEOUT, lines.next_line())
            .await
            .map_err(|_| QemuError::Timeout {
                command: "greeting".into(),
                timeout: DEFAULT_TIMEOUT,
            })?
            .map_err(|e| QemuError::io("read QMP greeting", e))?
            .ok_or_else(|| QemuError::Disconnected("closed before the QMP greeting".into()))?;
        match QmpMessage::parse(&greeting)? {
            QmpMessage::Greeting(g) => {
                tracing::debug!(vm = %name, version = %g["version"]["qemu"], "QMP greeting")
            }
            other => {
                return Err(QemuError::Protocol(format!(
                    "expected greeting, got {other:?}"
                )))
            }
        }
        let (events, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            name: name.to_string(),
            pending: Mutex::new(Pending::default()),
            events,
        });
        let reader = tokio::spawn(read_loop(lines, shared.clone()));
        let client = QmpClient {
            shared,
            writer: tokio::sync::Mutex::new(wr),
            next_id: AtomicU64::new(1),
            timeout_ms: AtomicU64::new(DEFAULT_TIMEOUT.as_millis() as u64),
            reader,
        };
        client.execute(&QmpCapabilities {}).await?;
        Ok(client)
    }

    /// Sets the timeout of every later command.
    pub fn set_timeout(&self, t: Duration) {
        self.timeout_ms
            .store(t.as_millis() as u64, Ordering::Relaxed);
    }

    /// The current per-command timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    /// Subscribes to QMP events received from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<QmpEvent> {
        self.shared.events.subscribe()
    }

    /// Whether the connection is gone (then every call fails with `Disconnected`).
    pub fn is_closed(&self) -> bool {
        self.shared.pending.lock().unwrap().closed.is_some()
    }

    /// Marks the connection as gone and fails all pending calls with `reason`.
    pub fn close(&self, reason: &str) {
        self.shared.close(reason);
    }

    /// Runs a typed command.
    pub async fn execute<C: Command>(&self, cmd: &C) -> Result<C::Response> {
        let args = serde_json::to_value(cmd)
            .map_err(|e| QemuError::Protocol(format!("serialize {}: {e}", C::NAME)))?;
        let v = self.execute_raw(C::NAME, args).await?;
        serde_json::from_value(v.clone())
            .map_err(|e| QemuError::Protocol(format!("unexpected reply to {}: {v}: {e}", C::NAME)))
    }

    /// Runs any command with JSON arguments (`Value::Null` for none); returns `return`.
    pub async fn execute_raw(&self, name: &str, args: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.shared.pending.lock().unwrap();
            if let Some(r) = &p.closed {
                return Err(QemuError::Disconnected(r.clone()));
            }
            p.waiters.insert(id, tx);
        }
        let line = message::request_line(name, &args, id);
        tracing::trace!(vm = %self.shared.name, "QMP -> {}", line.trim_end());
        let timeout = self.timeout();
        let res = tokio::time::timeout(timeout, async {
            {
                let mut w = self.writer.lock().await;
                if let Err(e) = w.write_all(line.as_bytes()).await {
                    self.shared.close(&format!("write failed: {e}"));
                }
            }
            match rx.await {
                Ok(r) => r,
                Err(_) => Err(QemuError::Disconnected("reply channel dropped".into())),
            }
        })
        .await;
        match res {
            Ok(r) => r,
            Err(_) => {
                self.shared.pending.lock().unwrap().waiters.remove(&id);
                Err(QemuError::Timeout {
                    command: name.to_string(),
                    timeout,
                })
            }
        }
    }
}

async fn read_loop(mut lines: tokio::io::Lines<BufReader<OwnedReadHalf>>, shared: Arc<Shared>) {
    let reason = loop {
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => break "QEMU closed the QMP socket (process exited?)".to_string(),
            Err(e) => break format!("QMP read error: {e}"),
        };
        tracing::trace!(vm = %shared.name, "QMP <- {line}");
        let (id, reply) = match QmpMessage::parse(&line) {
            Ok(QmpMessage::Return { id, value }) => (id, Ok(value)),
            Ok(QmpMessage::Error { id, class, desc }) => (id, Err(QemuError::Qmp { class, desc })),
            Ok(QmpMessage::Event(ev)) => {
                tracing::debug!(vm = %shared.name, event = %ev.event, data = %ev.data, "QMP event");
                let _ = shared.events.send(ev);
                continue;
            }
            Ok(QmpMessage::Greeting(_)) => continue,
            Err(e) => {
                tracing::warn!(vm = %shared.name, "ignoring QMP message: {e}");
                continue;
            }
        };
        let Some(id) = id.as_ref().and_then(Value::as_u64) else {
            tracing::warn!(vm = %shared.name, "QMP reply without our id: {line}");
            continue;
        };
        let waiter = shared.pending.lock().unwrap().waiters.remove(&id);
        match waiter {
            Some(w) => {
                let _ = w.send(reply);
            }
            None => tracing::debug!(vm = %shared.name, id, "QMP reply for a call that gave up"),
        }
    };
    tracing::debug!(vm = %shared.name, "{reason}");
    shared.close(&reason);
}
