//! The server's client of a desktop's state server: the [`PageSource`] behind
//! a consolidated VM's lazy memory file. One connection per VM, opened on
//! first use and reopened after a failure (the memory filesystem retries).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jettison_lazymem::{FetchError, PageSource};
use jettison_tls::{TlsConn, TlsContext};

use crate::waker::DesktopWaker;
use jettison_wire::{FileKind, Message, Range, Role, Transport};
use tokio::sync::Mutex;

/// How long one fetch may take before the connection is given up.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a probe of a waking desktop may take (TLS handshake included).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Fetches one VM's memory from its desktop.
#[derive(Debug, Clone)]
pub struct StateClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    addr: String,
    /// The name the desktop's certificate must carry.
    desktop: String,
    vm: String,
    file: FileKind,
    tls: Arc<TlsContext>,
    waker: Arc<DesktopWaker>,
    /// Told of each wake this client's fetches make (memory files only).
    puller: Option<Arc<crate::pull::Puller>>,
    conn: Mutex<Option<Transport<TlsConn>>>,
}

impl StateClient {
    /// A client for `vm`'s memory (or disk) at the state server `addr` of
    /// the desktop whose certificate names it `desktop`.
    pub fn new(
        addr: &str,
        desktop: &str,
        vm: &str,
        file: FileKind,
        tls: Arc<TlsContext>,
        waker: Arc<DesktopWaker>,
    ) -> Self {
        StateClient {
            inner: Arc::new(Inner {
                addr: addr.into(),
                desktop: desktop.into(),
                vm: vm.into(),
                file,
                tls,
                waker,
                puller: None,
                conn: Mutex::new(None),
            }),
        }
    }

    /// The same, telling `puller` of each wake its fetches make (before
    /// the client is shared).
    pub(crate) fn with_puller(mut self, puller: Arc<crate::pull::Puller>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.puller = Some(puller);
        }
        self
    }
}

impl Inner {
    async fn dial(&self) -> Result<Transport<TlsConn>, FetchError> {
        jettison_daemon::dial(
            &self.tls,
            &self.addr,
            &self.desktop,
            Role::Server,
            FETCH_TIMEOUT,
        )
        .await
        .map_err(|e| {
            FetchError::new(format!(
                "state server {} ({}): {e}",
                self.addr, self.desktop
            ))
        })
    }

    async fn fetch(&self, offset: u64, len: u64) -> Result<Vec<u8>, FetchError> {
        let mut conn = self.conn.lock().await;
        // Never send a fetch to a desktop believed asleep: wake it first.
        if self.waker.is_asleep() {
            let probe = || async {
                tokio::time::timeout(PROBE_TIMEOUT, self.dial())
                    .await
                    .ok()
                    .and_then(Result::ok)
            };
            if let Some(fresh) = self
                .waker
                .ensure_awake(probe)
                .await
                .map_err(FetchError::new)?
            {
                *conn = Some(fresh);
                // this fetch woke the desktop: the VM's pull policy hears of it
                if let Some(p) = &self.puller {
                    p.on_wake();
                }
            }
        }
        if conn.is_none() {
            *conn = Some(self.dial().await?);
        }
        let t = conn.as_mut().expect("connected above");
        let req = Message::Fetch {
            vm: self.vm.clone(),
            file: self.file,
            ranges: vec![Range { offset, len }],
        };
        let result = match t.request(&req, FETCH_TIMEOUT).await {
            Ok(Message::Chunks { mut chunks })
                if chunks.len() == 1 && chunks[0].offset == offset =>
            {
                let data = chunks.pop().expect("one chunk").data;
                if data.len() as u64 == len {
                    Ok(data)
                } else {
                    Err(FetchError::new(format!(
                        "state server sent {} bytes for a {len}-byte fetch",
                        data.len()
                    )))
                }
            }
            Ok(other) => Err(FetchError::new(format!(
                "state server answered {} to a fetch",
                other.kind()
            ))),
            Err(e) => Err(FetchError::new(format!("fetch from {}: {e}", self.addr))),
        };
        if result.is_err() {
            // Start afresh next time: the stream may be out of step.
            *conn = None;
        }
        result
    }
}

impl PageSource for StateClient {
    fn fetch(&self, offset: u64, len: u64) -> BoxFuture<'static, Result<Vec<u8>, FetchError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.fetch(offset, len).await })
    }
}
