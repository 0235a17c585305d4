//! The operator's requests to the agent, on its control socket.

use std::sync::Arc;

use jettison_daemon::{next_request, ConnectionHandler, Peer};
use jettison_wire::{ErrorCode, Message, Transport, VmStatus};
use tokio::net::UnixStream;

use crate::vm::Placement;
use crate::{Agent, AgentError};

impl ConnectionHandler<UnixStream> for Agent {
    async fn handle(self: Arc<Self>, peer: Peer, mut t: Transport<UnixStream>) {
        while let Some(req) = next_request(&mut t, &peer).await {
            let reply = match req {
                Message::OpMigrate { vm } => self.migrate(&vm).await.map(Message::OpMigrated),
                Message::OpReintegrate { vm, verify } => self
                    .reintegrate(&vm, verify)
                    .await
                    .map(Message::OpReintegrated),
                Message::OpStatus => Ok(self.status().await),
                Message::OpPower => self.power_json().map(|json| Message::OpPowerReply { json }),
                Message::OpStart { vm } => self.boot(&vm).await.map(|()| Message::OpOk),
                other => Err(AgentError::NotAllowed(other.kind())),
            };
            let reply = reply.unwrap_or_else(|e| Message::error(e.code(), e.to_string()));
            if t.send(&reply).await.is_err() {
                return;
            }
        }
    }
}

impl Agent {
    /// Where each VM is.
    pub async fn status(&self) -> Message {
        let mut vms = Vec::new();
        for slot in self.slots.values() {
            let placement = slot.placement.lock().await;
            let (state, host) = match &*placement {
                Placement::Off => match slot.unmanaged_qemu(&self.config).await {
                    Some(_) => (
                        "home, unmanaged (a QEMU this agent could not take over; see its log)"
                            .to_string(),
                        self.config.host.clone(),
                    ),
                    None => ("off".to_string(), self.config.host.clone()),
                },
                Placement::Home(r) => match r.qemu.status().await {
                    Ok(s) => (
                        format!("home ({s:?})").to_lowercase(),
                        self.config.host.clone(),
                    ),
                    Err(e) => (
                        format!("home (QEMU not answering: {e})"),
                        self.config.host.clone(),
                    ),
                },
                Placement::Away { server, .. } => ("consolidated".to_string(), server.clone()),
                other => (crate::vm::describe(other), self.config.host.clone()),
            };
            vms.push(VmStatus {
                vm: slot.config.name.clone(),
                state,
                host,
                memory_mib: slot.config.memory_mib,
                memory: None,
            });
        }
        vms.sort_by(|a, b| a.vm.cmp(&b.vm));
        Message::OpStatusReply {
            host: format!("agent {} ({})", self.config.host, self.tls.status_text()),
            vms,
        }
    }
}

impl Agent {
    fn power_json(&self) -> Result<String, AgentError> {
        let p = self
            .power
            .as_ref()
            .ok_or_else(|| AgentError::WrongState("this desktop has no [power] section".into()))?;
        serde_json::to_string(&p.record()).map_err(|e| AgentError::Power(e.to_string()))
    }
}

impl AgentError {
    /// The wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            AgentError::UnknownVm(_) => ErrorCode::UnknownVm,
            AgentError::WrongState(_) | AgentError::Unmanaged { .. } => ErrorCode::WrongState,
            AgentError::NotAllowed(_) => ErrorCode::NotAllowed,
            _ => ErrorCode::Failed,
        }
    }
}
