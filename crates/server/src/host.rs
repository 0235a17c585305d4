//! The real [`Host`] of the handover procedures: QEMU guests on the lazy
//! memory filesystem, with their taps; the desktop asked over mutual TLS;
//! working sets recorded; desktops' wakers told who talks. The thin layer
//! of concrete plumbing around the generic procedures.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jettison_daemon::resolve_machine;
use jettison_daemon::tap::Tap;
use jettison_lazymem::VmMemory;
use jettison_power_model::MacAddr;
use jettison_qemu::{LaunchOptions, Qemu};
use jettison_wire::{Chunk, Custody, FileKind, MachineDesc, Message, Role, VmMemStats, PAGE_SIZE};

use crate::fetch_client::StateClient;
use crate::guests::{Guest, GuestFiles, Handovers, Host, Slot, Timeouts};
use crate::intake::disk_name;
use crate::{flush, Server, ServerError};

const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a prepare waits to reach the desktop's state server.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// A guest's files in the lazy memory filesystem.
#[derive(Debug)]
pub(crate) struct LazyFiles {
    pub(crate) memory: Arc<VmMemory>,
    /// The mounted memory file (flushed before the state is saved).
    memory_path: PathBuf,
    /// The lazy disk and its mounted file, if the VM has one.
    pub(crate) disk: Option<(Arc<VmMemory>, PathBuf)>,
}

impl LazyFiles {
    fn file(&self, kind: FileKind) -> Option<&Arc<VmMemory>> {
        match kind {
            FileKind::Memory => Some(&self.memory),
            FileKind::Disk => self.disk.as_ref().map(|d| &d.0),
        }
    }
}

impl GuestFiles for LazyFiles {
    async fn flush(&self) -> Result<(), ServerError> {
        flush(self.memory_path.clone()).await?;
        if let Some((_, path)) = &self.disk {
            flush(path.clone()).await?;
        }
        Ok(())
    }

    fn dirty_pages(&self, kind: FileKind) -> Vec<u64> {
        self.file(kind).map(|f| f.dirty_pages()).unwrap_or_default()
    }

    fn stats(&self, kind: FileKind) -> Option<VmMemStats> {
        self.file(kind).map(|f| f.stats())
    }

    async fn read_pages(&self, kind: FileKind, pages: Vec<u64>) -> Result<Vec<Chunk>, ServerError> {
        let file = self
            .file(kind)
            .cloned()
            .ok_or_else(|| ServerError::Protocol(format!("no {kind:?} file")))?;
        let chunks = tokio::task::spawn_blocking(move || {
            pages
                .iter()
                .map(|&p| {
                    let mut data = vec![0u8; PAGE_SIZE as usize];
                    file.read_page(p, &mut data).map(|()| Chunk {
                        offset: p * PAGE_SIZE,
                        data,
                    })
                })
                .collect::<std::io::Result<Vec<_>>>()
        })
        .await
        .map_err(|e| ServerError::Protocol(format!("page reader task: {e}")))??;
        Ok(chunks)
    }
}

impl Server {
    /// Removes `vm`'s lazy files (memory, and disk if any) and replicas.
    /// Only `vm`'s: its disk's name (`<vm>.disk`) is outside the VM-name
    /// alphabet, so no other VM's file has either name.
    pub(crate) fn remove_lazy_files(&self, vm: &str) {
        self.remove_lazy_file(vm, vm);
        let disk = disk_name(vm);
        if self.mount.vm(&disk).is_some() {
            self.remove_lazy_file(vm, &disk);
        }
    }

    /// Removes the lazy file `name` of `vm` and its replica.
    fn remove_lazy_file(&self, vm: &str, name: &str) {
        if let Err(e) = self.mount.remove_vm(name) {
            tracing::warn!(vm, "removing the lazy file {name}: {e}");
        }
    }
}

impl Host for Server {
    type Vm = Qemu;
    type Files = LazyFiles;

    fn handovers(&self) -> &Handovers<Qemu, LazyFiles> {
        &self.handovers
    }

    async fn launch(
        &self,
        vm: &str,
        machine: &MachineDesc,
        state_server: &str,
        desktop: &str,
    ) -> Result<Guest<Qemu, LazyFiles>, ServerError> {
        // Boot files by digest, only in image_dirs, off the runtime's
        // threads; before anything is made.
        let images = self.images.clone();
        let desc = machine.clone();
        let spec = tokio::task::spawn_blocking(move || resolve_machine(&desc, &images))
            .await
            .map_err(|e| ServerError::Protocol(format!("boot file lookup task: {e}")))??;
        let tls = &self.tls;
        let waker = self.waker(desktop);
        // the VM arrives: a new period of its pull policy
        let puller = crate::pull::Puller::new(vm, &self.config.pull, self.metrics.clone());
        let source = Arc::new(
            StateClient::new(
                state_server,
                desktop,
                vm,
                FileKind::Memory,
                tls.clone(),
                waker.clone(),
            )
            .with_puller(puller.clone()),
        );
        let memory = self.mount.add_vm_with_history(
            vm,
            machine.memory_mib << 20,
            &self.replica_path(vm),
            source,
            &self.working_sets.history(vm),
        )?;
        puller.attach(&memory);
        // From here on a failure removes what this launch made, and only
        // that: never a file of the same name it did not make.
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
                match self
                    .mount
                    .add_vm(&name, size, &self.replica_path(&name), source)
                {
                    Ok(file) => Some((file, self.mount.file_path(&name))),
                    Err(e) => {
                        self.remove_lazy_file(vm, vm);
                        return Err(e.into());
                    }
                }
            }
            None => None,
        };
        let guest = async {
            // Its own user: its files become that user's before QEMU
            // opens them (and before anyone could look them up).
            let user = match &self.qemu_users {
                Some(users) => Some(users.lease(self.qemu_run_dir(vm)).ok_or_else(|| {
                    ServerError::WrongState(format!(
                        "no free QEMU user for VM {vm}: all {} ids from qemu_first_uid are in use",
                        self.config.limits.max_vms
                    ))
                })?),
                None => None,
            };
            if let Some(c) = user.as_ref().map(|u| u.confinement) {
                memory.set_owner(c.uid, c.gid);
                if let Some((file, _)) = &disk {
                    file.set_owner(c.uid, c.gid);
                }
            }
            let owner = user
                .as_ref()
                .map(|u| (u.confinement.uid, u.confinement.gid));
            let tap = match (&machine.nic_mac, &self.config.bridge) {
                (Some(_), Some(bridge)) => Some(Tap::create_for(vm, bridge, owner)?),
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
                run_dir: self.qemu_run_dir(vm),
                console_log: Some(self.config.run_dir.join(format!("{vm}.console"))),
                incoming: true,
                name: vm.into(),
                deny_hugepage_advice: true,
                tap: tap.as_ref().map(|t| t.name().to_string()),
                disk_path: disk.as_ref().map(|d| d.1.clone()),
                extra_args: self.config.qemu_args(vm),
                confine: user.as_ref().map(|u| u.confinement),
            };
            let qemu = Qemu::launch(&spec, &opts).await?;
            let files = LazyFiles {
                memory,
                memory_path: self.mount.file_path(vm),
                disk,
            };
            let mut guest = Guest::preparing(
                qemu,
                Arc::new(files),
                tap,
                machine.memory_mib,
                desktop,
                state_server,
            );
            guest.machine = Some(machine.clone());
            guest._qemu_user = user;
            Ok(guest)
        }
        .await;
        if guest.is_err() {
            self.remove_lazy_files(vm);
        }
        guest
    }

    fn release_files(&self, vm: &str) {
        self.forget_checkpoints(vm);
        self.remove_lazy_files(vm);
    }

    fn filesystems(&self) -> std::io::Result<Vec<crate::admission::Filesystem>> {
        crate::admission::probe(&self.config.replica_dir, &self.config.state_dir)
    }

    async fn watch_exit(self: Arc<Self>, vm: String, slot: Slot<Qemu, LazyFiles>) {
        // Only a weak reference: the watcher must not keep the guest alive.
        let mut exit = slot.lock().await.vm.exit_handle();
        let slot = Arc::downgrade(&slot);
        tokio::spawn(async move {
            let status = exit.wait().await;
            let status = format!("{status:?}");
            if self.recover_crashed(&vm, &slot, &status).await {
                return;
            }
            crate::settle::guest_exited(&*self, &vm, slot, &status).await;
        });
    }

    async fn reach_state_server(&self, desktop: &str, addr: &str) -> Result<(), String> {
        jettison_daemon::dial(&self.tls, addr, desktop, Role::Server, REACH_TIMEOUT)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn ask_desktop(
        &self,
        vm: &str,
        desktop: &str,
        addr: &str,
    ) -> Result<Custody, ServerError> {
        let mut t = jettison_daemon::dial(&self.tls, addr, desktop, Role::Server, ASK_TIMEOUT)
            .await
            .map_err(|e| ServerError::Protocol(e.to_string()))?;
        match t
            .request(&Message::HandoverQuery { vm: vm.into() }, ASK_TIMEOUT)
            .await?
        {
            Message::HandoverState { custody, .. } => Ok(custody),
            other => Err(ServerError::Protocol(format!(
                "expected HandoverState, got {}",
                other.kind()
            ))),
        }
    }

    /// Records the memory pages `vm` used in the period that ends (the
    /// memory file only; the disk is not prefetched). A failure is logged:
    /// the VM is home either way.
    async fn record_working_set(&self, vm: &str, files: &LazyFiles) {
        let pages = files.memory.used_pages();
        let fetched = files.memory.stats().pages_fetched;
        let sets = self.working_sets.clone();
        let name = vm.to_owned();
        let n = pages.len();
        let saved = tokio::task::spawn_blocking(move || sets.record(&name, &pages)).await;
        match saved {
            Ok(Ok(())) => tracing::info!(
                vm,
                used_pages = n,
                fetched_pages = fetched,
                "working set recorded"
            ),
            Ok(Err(e)) => tracing::warn!(vm, "working set not saved: {e}"),
            Err(e) => tracing::warn!(vm, "working set task: {e}"),
        }
    }

    fn desktop_talks(&self, desktop: &str) {
        self.waker(desktop).mark_awake();
    }

    fn wol_networks(&self) -> Result<Vec<crate::lan::IpNet>, ServerError> {
        if let Some(n) = &self.config.wol_networks {
            return Ok(n.clone());
        }
        let n = crate::lan::local_networks()?;
        if n.is_empty() {
            return Err(ServerError::WolTarget(
                "this server has no network but loopback's to send magic packets on; set \
                 `wol_networks` in its configuration"
                    .into(),
            ));
        }
        Ok(n)
    }

    fn going_to_sleep(
        &self,
        desktop: &str,
        mac: MacAddr,
        wol_addr: SocketAddr,
    ) -> Result<(), ServerError> {
        self.waker(desktop).going_to_sleep(mac, wol_addr);
        // A crash while it sleeps must not cost its VMs' work since their
        // last periodic checkpoint.
        self.checkpoint_before_sleep(desktop);
        Ok(())
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts::default()
    }
}
