//! Agent connections: taking a VM in (prepare, load the device state into a
//! paused guest, run it on the desktop's commit, or drop it on its abort),
//! answering handover queries, and dispatching reintegration requests.

use std::sync::Arc;
use std::time::Instant;

use jettison_daemon::{next_request, ConnectionHandler, Peer};
use jettison_handover::ServerState;
use jettison_tls::TlsConn;
use jettison_wire::{ErrorCode, MachineDesc, Message, Transport, HANDOVER_MINOR, PROTOCOL_MAJOR};

use crate::{Server, ServerError};

impl ConnectionHandler<TlsConn> for Server {
    async fn handle(self: Arc<Self>, peer: Peer, mut t: Transport<TlsConn>) {
        let mut prepared: Vec<String> = Vec::new();
        let minor = t.minor();
        while let Some(req) = next_request(&mut t, &peer).await {
            if !matches!(req, Message::GoingToSleep { .. }) {
                // A desktop that talks is awake.
                self.waker(peer.identity.as_deref().unwrap_or_default())
                    .mark_awake();
            }
            if needs_handover_minor(&req) && minor < HANDOVER_MINOR {
                let reply = Message::error(
                    ErrorCode::VersionMismatch,
                    format!(
                        "this server needs protocol {PROTOCOL_MAJOR}.{HANDOVER_MINOR} or later for a \
                         handover (it has a commit step); the agent speaks {PROTOCOL_MAJOR}.{minor}: \
                         upgrade jettison-agent"
                    ),
                );
                if t.send(&reply).await.is_err() {
                    break;
                }
                continue;
            }
            let reply = match req {
                Message::MigratePrepare {
                    vm,
                    machine,
                    state_server,
                } => {
                    // The desktop is who its certificate says, not what its Hello claims.
                    let desktop = peer.identity.clone().unwrap_or_default();
                    let r = self.prepare(&vm, &machine, &state_server, &desktop).await;
                    if r.is_ok() {
                        prepared.push(vm.clone());
                        if let Ok(slot) = self.guest(&vm) {
                            self.clone().watch_exit(vm.clone(), slot).await;
                        }
                    }
                    r.map(|()| Message::Prepared { vm })
                }
                Message::MigrateLoad { vm, device_state } => self
                    .load(&vm, &device_state)
                    .await
                    .map(|restore_ms| Message::MigrateLoaded { vm, restore_ms }),
                Message::MigrateCommit { vm } => {
                    let r = self.commit(&vm).await;
                    if r.is_ok() {
                        prepared.retain(|p| p != &vm);
                        self.first_checkpoint_soon(&vm);
                    }
                    r.map(|()| Message::MigrateCommitted { vm })
                }
                Message::ReintegrateDone { vm } => {
                    // The desktop runs the VM at home: the tombstone goes.
                    let desktop = peer.identity.clone().unwrap_or_default();
                    self.forget_released(&vm, &desktop).map(|()| Message::OpOk)
                }
                Message::MigrateAbort { vm, reason } => {
                    prepared.retain(|p| p != &vm);
                    self.abort(&vm, &reason).await.map(|()| Message::OpOk)
                }
                Message::HandoverQuery { vm } => Ok(Message::HandoverState {
                    custody: self.custody(&vm).await,
                    vm,
                }),
                Message::MigrateIn { .. } => Err(ServerError::NotAllowed(
                    "MigrateIn (protocol 1.0, no commit step; use MigrateLoad)",
                )),
                Message::GoingToSleep { mac, wol_addr } => {
                    let desktop = peer.identity.clone().unwrap_or_default();
                    let r = self
                        .waker(&desktop)
                        .going_to_sleep(&mac, &wol_addr)
                        .map(|()| Message::OpOk)
                        .map_err(ServerError::WrongState);
                    if r.is_ok() {
                        // A crash while it sleeps must not cost its VMs'
                        // work since the last periodic checkpoint.
                        tokio::spawn(self.clone().checkpoint_desktop(desktop));
                    }
                    r
                }
                Message::Reintegrate { vm } => {
                    // Streams its own replies; the connection ends with it.
                    if let Err(e) = self.send_home(&vm, &mut t).await {
                        tracing::error!(vm = %vm, "reintegration failed: {e}");
                        let _ = t.send(&Message::error(e.code(), e.to_string())).await;
                    }
                    break;
                }
                other => Err(ServerError::NotAllowed(other.kind())),
            };
            let reply = reply.unwrap_or_else(|e| {
                tracing::warn!(peer = %peer.addr, "request failed: {e}");
                Message::error(e.code(), e.to_string())
            });
            if jettison_daemon::fault::drops(reply.kind()) || t.send(&reply).await.is_err() {
                break;
            }
        }
        // VMs whose migration this connection left unfinished: one never
        // loaded is dropped; one loaded is in doubt until the desktop says.
        for vm in prepared {
            self.clone().unfinished(&vm).await;
        }
    }
}

/// The requests of a handover, which need its commit step on both sides.
fn needs_handover_minor(req: &Message) -> bool {
    matches!(
        req,
        Message::MigratePrepare { .. } | Message::Reintegrate { .. }
    )
}

impl Server {
    async fn prepare(
        &self,
        vm: &str,
        machine: &MachineDesc,
        state_server: &str,
        desktop: &str,
    ) -> Result<(), ServerError> {
        if !jettison_wire::valid_vm_name(vm) {
            return Err(ServerError::WrongState(format!("invalid VM name {vm:?}")));
        }
        if self.guests.lock().expect("guests lock").contains_key(vm) {
            return Err(ServerError::WrongState(format!(
                "VM {vm} is already on this server"
            )));
        }
        // A tombstone of the VM's last return goes once its desktop brings
        // it again.
        if let Some(old) = self.records.load(vm)? {
            if old.state != ServerState::Released || old.desktop != desktop {
                return Err(ServerError::WrongState(format!(
                    "VM {vm} has a record here ({}, from {}); settle it first (see docs/runbook.md)",
                    old.state, old.desktop
                )));
            }
        }
        // Checkpoints of an earlier period describe nothing that runs now.
        crate::checkpoint::CheckpointStore::remove(&self.checkpoint_root(), vm)?;
        let guest = self.build_guest(vm, machine, desktop, state_server).await?;
        if let Err(e) = self.records.save(vm, &guest.record(ServerState::Preparing)) {
            drop(guest);
            self.release_files(vm);
            return Err(e.into());
        }
        jettison_daemon::fault::point("server:Preparing");
        self.guests
            .lock()
            .expect("guests lock")
            .insert(vm.into(), Arc::new(tokio::sync::Mutex::new(guest)));
        tracing::info!(vm, desktop, "prepared: QEMU waits for the device state");
        Ok(())
    }

    /// Loads the device state into the paused guest: in doubt until the
    /// desktop commits.
    async fn load(&self, vm: &str, device_state: &[u8]) -> Result<f64, ServerError> {
        let slot = self.guest(vm)?;
        let mut guest = slot.lock().await;
        if guest.handover != ServerState::Preparing {
            return Err(ServerError::WrongState(format!(
                "VM {vm} is not waiting for its state ({})",
                guest.handover
            )));
        }
        let started = Instant::now();
        if let Err(e) = guest.qemu.migrate_in(device_state).await {
            drop(guest);
            self.discard(vm).await;
            return Err(e.into());
        }
        self.advance(vm, &mut guest, ServerState::loaded)?;
        guest.loaded_state = Some(device_state.to_vec());
        let restore_ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            vm,
            restore_ms,
            state_bytes = device_state.len(),
            "state loaded; waiting for the desktop's commit"
        );
        Ok(restore_ms)
    }

    /// The desktop committed: the guest runs here.
    pub(crate) async fn commit(&self, vm: &str) -> Result<(), ServerError> {
        let slot = self.guest(vm)?;
        let mut guest = slot.lock().await;
        if guest.handover == ServerState::Running {
            return Ok(());
        }
        self.advance(vm, &mut guest, ServerState::commit)?;
        guest.qemu.cont().await?;
        guest.mark_running();
        tracing::info!(vm, "committed: the VM runs here");
        Ok(())
    }

    /// The desktop gave the migration up before its commit.
    async fn abort(&self, vm: &str, reason: &str) -> Result<(), ServerError> {
        let slot = self.guest(vm)?;
        let state = slot.lock().await.handover;
        if !state.abortable() {
            return Err(ServerError::WrongState(format!(
                "VM {vm} is {state}: its migration can no longer be given up"
            )));
        }
        tracing::warn!(vm, "the desktop gave the migration up: {reason}");
        self.discard(vm).await;
        Ok(())
    }

    /// Quits a VM's QEMU, removes its files and forgets it (its record
    /// too, unless it is a tombstone of a return).
    pub(crate) async fn discard(&self, vm: &str) {
        let slot = self.guests.lock().expect("guests lock").remove(vm);
        let mut released = false;
        if let Some(slot) = slot {
            let guest = slot.lock().await;
            released = guest.handover == ServerState::Released;
            let _ = guest.qemu.stop().await;
            drop(guest);
            if let Ok(guest) = Arc::try_unwrap(slot).map(|m| m.into_inner()) {
                let _ = guest.qemu.quit().await;
            }
        }
        self.release_files(vm);
        if let Err(e) = crate::checkpoint::CheckpointStore::remove(&self.checkpoint_root(), vm) {
            tracing::warn!(vm, "removing its checkpoints: {e}");
        }
        if !released {
            if let Err(e) = self.records.remove(vm) {
                tracing::warn!(vm, "removing the handover record: {e}");
            }
        }
    }

    /// Removes a VM's lazy files (memory, and disk if any) and replicas.
    pub(crate) fn release_files(&self, vm: &str) {
        if let Err(e) = self.mount.remove_vm(vm) {
            tracing::warn!(vm, "removing the memory file: {e}");
        }
        if self.mount.vm(&disk_name(vm)).is_some() {
            if let Err(e) = self.mount.remove_vm(&disk_name(vm)) {
                tracing::warn!(vm, "removing the disk file: {e}");
            }
        }
    }
}

/// Name of a VM's disk in the lazy filesystem (file `<vm>-disk.mem`).
pub(crate) fn disk_name(vm: &str) -> String {
    format!("{vm}-disk")
}
