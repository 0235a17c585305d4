//! Agent connections: taking a VM in (prepare, then device state) and
//! dispatching reintegration requests.

use std::sync::Arc;
use std::time::Instant;

use jettison_daemon::tap::Tap;
use jettison_daemon::{next_request, resolve_machine, ConnectionHandler, Peer};
use jettison_qemu::{LaunchOptions, Qemu};
use jettison_tls::TlsConn;
use jettison_wire::{FileKind, MachineDesc, Message, Transport};

use crate::fetch_client::StateClient;
use crate::{Guest, Phase, Server, ServerError};

impl ConnectionHandler<TlsConn> for Server {
    async fn handle(self: Arc<Self>, peer: Peer, mut t: Transport<TlsConn>) {
        let mut prepared: Vec<String> = Vec::new();
        while let Some(req) = next_request(&mut t, &peer).await {
            if !matches!(req, Message::GoingToSleep { .. }) {
                // A desktop that talks is awake.
                self.waker(peer.identity.as_deref().unwrap_or_default())
                    .mark_awake();
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
                    }
                    r.map(|()| Message::Prepared { vm })
                }
                Message::MigrateIn { vm, device_state } => {
                    let r = self.take_in(&vm, &device_state).await;
                    prepared.retain(|p| p != &vm);
                    r.map(|restore_ms| Message::MigrateInDone { vm, restore_ms })
                }
                Message::GoingToSleep { mac, wol_addr } => {
                    let desktop = peer.identity.clone().unwrap_or_default();
                    self.waker(&desktop)
                        .going_to_sleep(&mac, &wol_addr)
                        .map(|()| Message::OpOk)
                        .map_err(ServerError::WrongState)
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
            if t.send(&reply).await.is_err() {
                break;
            }
        }
        // A VM prepared but never handed over: drop it.
        for vm in prepared {
            if let Ok(slot) = self.guest(&vm) {
                let guest = slot.lock().await;
                if guest.phase == Phase::Prepared {
                    tracing::warn!(vm, "agent left before handing the VM over; discarding");
                    drop(guest);
                    self.discard(&vm).await;
                }
            }
        }
    }
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
        let spec = resolve_machine(machine, &self.config.image_dirs)?;
        let tls = &self.tls;
        let waker = self.waker(desktop);
        let source = Arc::new(StateClient::new(
            state_server,
            desktop,
            vm,
            FileKind::Memory,
            tls.clone(),
            waker.clone(),
        ));
        let memory = self.mount.add_vm_with_history(
            vm,
            machine.memory_mib << 20,
            &self.replica_path(vm),
            source,
            &self.working_sets.history(vm),
        )?;
        let guest = async {
            let disk = match machine.disk_bytes {
                Some(size) => {
                    let name = disk_name(vm);
                    let source = Arc::new(StateClient::new(
                        state_server,
                        desktop,
                        vm,
                        FileKind::Disk,
                        tls.clone(),
                        waker.clone(),
                    ));
                    Some(
                        self.mount
                            .add_vm(&name, size, &self.replica_path(&name), source)?,
                    )
                }
                None => None,
            };
            let tap = match (&machine.nic_mac, &self.config.bridge) {
                (Some(_), Some(bridge)) => Some(Tap::create(vm, bridge)?),
                (Some(_), None) => {
                    return Err(ServerError::WrongState(format!(
                        "VM {vm} has a NIC but this server has no `bridge` configured"
                    )))
                }
                _ => None,
            };
            let opts = LaunchOptions {
                binary: self.config.qemu_binary.clone(),
                accel: self.config.accel,
                mem_path: self.mount.file_path(vm),
                run_dir: self.config.run_dir.clone(),
                console_log: Some(self.config.run_dir.join(format!("{vm}.console"))),
                incoming: true,
                name: vm.into(),
                deny_hugepage_advice: true,
                tap: tap.as_ref().map(|t| t.name().to_string()),
                disk_path: disk.as_ref().map(|_| self.mount.file_path(&disk_name(vm))),
            };
            let qemu = Qemu::launch(&spec, &opts).await?;
            Ok(Guest {
                qemu,
                memory,
                disk,
                _tap: tap,
                phase: Phase::Prepared,
                memory_mib: machine.memory_mib,
                desktop: desktop.into(),
                running_since: None,
                ran: std::time::Duration::ZERO,
            })
        }
        .await;
        let guest = match guest {
            Ok(g) => g,
            Err(e) => {
                self.release_files(vm);
                return Err(e);
            }
        };
        self.guests
            .lock()
            .expect("guests lock")
            .insert(vm.into(), Arc::new(tokio::sync::Mutex::new(guest)));
        tracing::info!(vm, desktop, "prepared: QEMU waits for the device state");
        Ok(())
    }

    async fn take_in(&self, vm: &str, device_state: &[u8]) -> Result<f64, ServerError> {
        let slot = self.guest(vm)?;
        let mut guest = slot.lock().await;
        if guest.phase != Phase::Prepared {
            return Err(ServerError::WrongState(format!(
                "VM {vm} is not waiting for its state"
            )));
        }
        let started = Instant::now();
        let loaded = async {
            guest.qemu.migrate_in(device_state).await?;
            guest.qemu.cont().await
        }
        .await;
        if let Err(e) = loaded {
            drop(guest);
            self.discard(vm).await;
            return Err(e.into());
        }
        guest.phase = Phase::Running;
        guest.mark_running();
        let restore_ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            vm,
            restore_ms,
            state_bytes = device_state.len(),
            "VM runs here"
        );
        Ok(restore_ms)
    }

    /// Quits a VM's QEMU and forgets it.
    pub(crate) async fn discard(&self, vm: &str) {
        let slot = self.guests.lock().expect("guests lock").remove(vm);
        if let Some(slot) = slot {
            if let Ok(guest) = Arc::try_unwrap(slot).map(|m| m.into_inner()) {
                let _ = guest.qemu.quit().await;
            }
        }
        self.release_files(vm);
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
