//! The state server's gate around sleep. Once the agent has told the server
//! it goes to sleep (`GoingToSleep`), the desktop must look asleep until it
//! has resumed: during the suspend latency the host still runs, and a fetch
//! it served, or a probe it answered, would make the server believe it awake
//! while it freezes a moment later (the magic packet the server sent is then
//! buffered by the NIC and wakes it again at once: a wasted sleep cycle).
//!
//! So before announcing the sleep the agent *dozes*: its state-server
//! listener is closed (a probe's connection is refused, as by a sleeping
//! host) and fetches on connections already open are answered with an error
//! (the server's memory filesystem retries them; it never fills zeros). The
//! server then keeps waking and probing the desktop, and the fetch is served
//! after the real resume, when the listener is open again. The agent never
//! waits for the server while dozing except for the `GoingToSleep` reply,
//! which the server gives without contacting the desktop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jettison_daemon::serve_tls;
use jettison_wire::Role;
use tokio::task::JoinHandle;

use crate::{Agent, AgentError};

/// The state server's listener and the dozing flag.
#[derive(Debug, Default)]
pub(crate) struct StateGate {
    dozing: AtomicBool,
    /// The address actually bound (the configured one, its port resolved).
    bound: Mutex<Option<SocketAddr>>,
    accept: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl StateGate {
    /// Whether the agent has announced a sleep it has not woken from.
    pub(crate) fn dozing(&self) -> bool {
        self.dozing.load(Ordering::Acquire)
    }
}

impl Agent {
    /// Binds the state server's listener (the first time on the configured
    /// address, later on the address then bound) and accepts on it.
    pub(crate) async fn open_state_server(self: &Arc<Self>) -> Result<SocketAddr, AgentError> {
        let mut accept = self.gate.accept.lock().await;
        if accept.is_some() {
            if let Some(addr) = *self.gate.bound.lock().expect("gate lock") {
                return Ok(addr);
            }
        }
        let want = self
            .gate
            .bound
            .lock()
            .expect("gate lock")
            .unwrap_or(self.config.listen);
        // The port was ours a moment ago; retry briefly if the kernel has
        // not released it yet.
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(want).await {
                Ok(l) => break l,
                Err(e) if tries < 20 => {
                    tries += 1;
                    tracing::warn!(%want, "state server: binding failed ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let addr = listener.local_addr()?;
        *self.gate.bound.lock().expect("gate lock") = Some(addr);
        let host: Arc<str> = self.config.host.clone().into();
        *accept = Some(tokio::spawn(serve_tls(
            listener,
            self.tls.clone(),
            &[Role::Server],
            host,
            self.clone(),
        )));
        Ok(addr)
    }

    /// Stops accepting state-server connections (the listener is closed once
    /// this returns).
    pub(crate) async fn close_state_server(&self) {
        if let Some(task) = self.gate.accept.lock().await.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Dozes: no fetch is served and no connection accepted from now on.
    pub(crate) async fn doze(&self) {
        self.gate.dozing.store(true, Ordering::Release);
        self.close_state_server().await;
    }

    /// Wakes from a doze: serves again.
    pub(crate) async fn undoze(self: &Arc<Self>) -> Result<(), AgentError> {
        self.gate.dozing.store(false, Ordering::Release);
        self.open_state_server().await.map(|_| ())
    }
}
