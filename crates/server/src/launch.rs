//! Setting up a VM on this server: its lazy memory (and disk) file, its tap
//! and a QEMU waiting for a device state. Used to take a VM in and to run
//! one again from a checkpoint after a restart.

use std::sync::Arc;

use jettison_daemon::resolve_machine;
use jettison_daemon::tap::Tap;
use jettison_handover::ServerState;
use jettison_qemu::{LaunchOptions, Qemu};
use jettison_wire::{FileKind, MachineDesc};

use crate::fetch_client::StateClient;
use crate::intake::disk_name;
use crate::{checkpoint, Guest, Server, ServerError};

impl Server {
    /// Adds `vm`'s lazy files, makes its tap and launches its QEMU, which
    /// waits for a device state. On failure nothing of it is left.
    pub(crate) async fn build_guest(
        &self,
        vm: &str,
        machine: &MachineDesc,
        desktop: &str,
        state_server: &str,
    ) -> Result<Guest, ServerError> {
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
            let checkpoints = checkpoint::Checkpoints::open(&self.checkpoint_root(), vm)?;
            let qemu = Qemu::launch(&spec, &opts).await?;
            Ok(Guest {
                qemu,
                memory,
                disk,
                _tap: tap,
                handover: ServerState::Preparing,
                paused: false,
                memory_mib: machine.memory_mib,
                desktop: desktop.into(),
                state_server: state_server.into(),
                running_since: None,
                ran: std::time::Duration::ZERO,
                machine: machine.clone(),
                loaded_state: None,
                last_checkpoint_ms: None,
                checkpoints: Arc::new(tokio::sync::Mutex::new(checkpoints)),
            })
        }
        .await;
        if guest.is_err() {
            self.release_files(vm);
        }
        guest
    }
}
