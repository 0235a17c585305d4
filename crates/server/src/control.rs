//! The operator's requests to the server, on its control socket.

use std::sync::Arc;

use jettison_daemon::{next_request, ConnectionHandler, Peer};
use jettison_wire::{Message, Transport, VmStatus};
use tokio::net::UnixStream;

use jettison_handover::ServerState;

use crate::{flush, Server, ServerError};

impl ConnectionHandler<UnixStream> for Server {
    async fn handle(self: Arc<Self>, peer: Peer, mut t: Transport<UnixStream>) {
        while let Some(req) = next_request(&mut t, &peer).await {
            let reply = match req {
                Message::OpStatus => Ok(self.status().await),
                Message::OpPause { vm } => self.pause(&vm).await.map(|()| Message::OpOk),
                Message::OpResume { vm } => self.resume(&vm).await.map(|()| Message::OpOk),
                other => Err(ServerError::NotAllowed(other.kind())),
            };
            let reply = reply.unwrap_or_else(|e| Message::error(e.code(), e.to_string()));
            if t.send(&reply).await.is_err() {
                return;
            }
        }
    }
}

impl Server {
    async fn status(&self) -> Message {
        let slots: Vec<(String, crate::GuestSlot)> = self.handovers.slots();
        let mut vms = Vec::new();
        for (name, slot) in slots {
            let g = slot.lock().await;
            let state = match (g.handover, g.paused) {
                (ServerState::Running, false) => "consolidated".to_string(),
                (ServerState::Running, true) => "paused".to_string(),
                (ServerState::Preparing, _) => "arriving".to_string(),
                (other, _) => other.to_string(),
            };
            let checkpoint = match g.last_checkpoint_ms {
                Some(ms) => format!(
                    "checkpoint {} s ago",
                    (jettison_qemu::unix_ms() as u64).saturating_sub(ms) / 1000
                ),
                None => "no checkpoint yet".into(),
            };
            vms.push(VmStatus {
                vm: name,
                state: format!("{state} (from {}; {checkpoint})", g.desktop),
                host: self.config.host.clone(),
                memory_mib: g.memory_mib,
                memory: Some(g.files.memory.stats()),
            });
        }
        vms.sort_by(|a, b| a.vm.cmp(&b.vm));
        Message::OpStatusReply {
            host: format!("server {} ({})", self.config.host, self.tls.status_text()),
            vms,
        }
    }

    /// Pauses a consolidated VM and flushes its dirty pages, so that its
    /// memory file shows exactly the guest's memory.
    async fn pause(&self, vm: &str) -> Result<(), ServerError> {
        let slot = self.guest(vm)?;
        let mut g = slot.lock().await;
        if g.handover != ServerState::Running {
            return Err(ServerError::WrongState(format!(
                "VM {vm} is {}, not running here",
                g.handover
            )));
        }
        g.vm.stop().await?;
        g.mark_stopped();
        flush(self.mount.file_path(vm)).await?;
        g.paused = true;
        Ok(())
    }

    async fn resume(&self, vm: &str) -> Result<(), ServerError> {
        let slot = self.guest(vm)?;
        let mut g = slot.lock().await;
        if !(g.paused && g.handover == ServerState::Running) {
            return Err(ServerError::WrongState(format!("VM {vm} is not paused")));
        }
        g.vm.cont().await?;
        g.mark_running();
        g.paused = false;
        Ok(())
    }
}
