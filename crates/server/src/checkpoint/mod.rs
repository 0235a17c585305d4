//! Checkpoints of consolidated VMs, so that neither a planned restart of the
//! server nor a crash of its host costs a VM: the device state and the
//! pages written on the server, durable on the server's disk
//! ([`store`]). Memory and disk are captured in one pause, so a rollback
//! takes both back to one consistent point; every other page is the
//! desktop's, unchanged while the VM is away.
//!
//! A VM's first checkpoint is the device state it was loaded with, written
//! after its commit (no pause). Then one every `checkpoint_interval_s`,
//! one when its desktop announces sleep, and one at a planned stop, which
//! leaves the guest paused for the next server process to resume
//! ([`Server::restore`]).

mod restore;
mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jettison_handover::ServerState;
use jettison_lazymem::VmMemory;
use jettison_wire::{FileKind, PAGE_SIZE};

pub(crate) use store::CheckpointStore;
use store::Page;

use crate::{flush, Server, ServerError};

/// A VM's checkpoint log.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    store: CheckpointStore,
    /// Set when a checkpoint failed after taking the pages written since
    /// the one before: the next one copies every written page.
    full_next: bool,
}

impl Checkpoints {
    /// The log of `vm` under `root`.
    pub(crate) fn open(root: &std::path::Path, vm: &str) -> std::io::Result<Self> {
        Ok(Checkpoints {
            store: CheckpointStore::open(root, vm)?,
            full_next: false,
        })
    }
}

/// What happens to the guest once its state is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// It runs on (a periodic or sleep checkpoint).
    Resume,
    /// It stays paused (a planned stop: the next process resumes it).
    StayPaused,
}

/// One checkpoint taken.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Taken {
    /// Its number.
    pub seq: u64,
    /// How long the guest was paused for it.
    pub downtime: Duration,
    /// Pages copied (memory and disk).
    pub pages: u64,
    /// Bytes written to the server's disk.
    pub bytes: u64,
}

impl Server {
    /// Where checkpoints live.
    pub(crate) fn checkpoint_root(&self) -> std::path::PathBuf {
        self.config.state_dir.join("checkpoints")
    }

    /// Checkpoints `vm`: pauses it, flushes its files, saves its device
    /// state and copies the pages written since the last checkpoint, then
    /// resumes it (as `then` says) and makes all of it durable.
    pub(crate) async fn checkpoint(&self, vm: &str, then: Then) -> Result<Taken, ServerError> {
        let slot = self.guest(vm)?;
        let log = slot.lock().await.checkpoints.clone();
        let mut log = log.lock().await;
        let taken_ms = jettison_qemu::unix_ms() as u64;
        let full = log.full_next;
        let (state, captured, downtime) = {
            let guest = slot.lock().await;
            if guest.handover != ServerState::Running {
                return Err(ServerError::WrongState(format!(
                    "VM {vm} is {}: only a running VM is checkpointed",
                    guest.handover
                )));
            }
            let started = Instant::now();
            guest.qemu.stop().await?;
            // Until this one is durable, the pages it takes are nowhere else.
            log.full_next = true;
            let captured = async {
                flush(self.mount.file_path(vm)).await?;
                if guest.disk.is_some() {
                    flush(self.mount.file_path(&crate::intake::disk_name(vm))).await?;
                }
                let state = guest.qemu.migrate_out().await?;
                let (memory, disk) = (guest.memory.clone(), guest.disk.clone());
                let pages =
                    tokio::task::spawn_blocking(move || capture(&memory, disk.as_deref(), full))
                        .await
                        .map_err(|e| ServerError::Protocol(format!("checkpoint task: {e}")))??;
                Ok::<_, ServerError>((state, pages))
            }
            .await;
            if then == Then::Resume && !guest.paused {
                guest.qemu.cont().await?;
            }
            let (state, pages) = captured?;
            (state, pages, started.elapsed())
        };
        let store = log.store.clone();
        let n = captured.len() as u64;
        let (manifest, bytes) = tokio::task::spawn_blocking(move || {
            store.commit(taken_ms, then == Then::StayPaused, &state, &captured, full)
        })
        .await
        .map_err(|e| ServerError::Protocol(format!("checkpoint task: {e}")))??;
        log.full_next = false;
        slot.lock().await.last_checkpoint_ms = Some(taken_ms);
        jettison_daemon::fault::point("server:checkpointed");
        Ok(Taken {
            seq: manifest.seq,
            downtime,
            pages: n,
            bytes,
        })
    }

    /// At a planned stop: a running VM is checkpointed and left paused, and
    /// its QEMU quit; the next server process resumes it from there. Any
    /// other VM is lost with this process.
    pub(crate) async fn stop_for_restart(&self, vm: &str) {
        let kept = self
            .checkpoint_logged(vm, Then::StayPaused, "the server stops")
            .await;
        let slot = self.guests.lock().expect("guests lock").remove(vm);
        let Some(slot) = slot else { return };
        if kept {
            tracing::warn!(
                vm,
                "checkpointed and paused: it resumes when the server starts again"
            );
        } else {
            let _ = slot.lock().await.qemu.stop().await;
            tracing::error!(
                vm,
                "stopping with a VM not checkpointed now: the next server process resumes it from its last checkpoint if it has one, else its desktop restarts it from its last consistent state"
            );
        }
        if let Ok(guest) = Arc::try_unwrap(slot).map(|m| m.into_inner()) {
            let _ = guest.qemu.quit().await;
        }
    }

    /// Writes `vm`'s first checkpoint, the device state it was loaded with,
    /// in the background.
    pub(crate) fn first_checkpoint_soon(self: &Arc<Self>, vm: &str) {
        let (server, vm) = (self.clone(), vm.to_owned());
        tokio::spawn(async move {
            if let Err(e) = server.first_checkpoint(&vm).await {
                tracing::warn!(vm, "first checkpoint not written: {e}");
            }
        });
    }

    async fn first_checkpoint(&self, vm: &str) -> Result<(), ServerError> {
        let slot = self.guest(vm)?;
        let log = slot.lock().await.checkpoints.clone();
        let log = log.lock().await;
        let Some(state) = slot.lock().await.loaded_state.take() else {
            return Ok(());
        };
        let store = log.store.clone();
        let taken_ms = jettison_qemu::unix_ms() as u64;
        tokio::task::spawn_blocking(move || store.commit(taken_ms, false, &state, &[], true))
            .await
            .map_err(|e| ServerError::Protocol(format!("checkpoint task: {e}")))??;
        slot.lock().await.last_checkpoint_ms = Some(taken_ms);
        tracing::debug!(vm, "first checkpoint written (the loaded state)");
        Ok(())
    }

    /// Checkpoints every running VM of `desktop` (it goes to sleep).
    pub(crate) async fn checkpoint_desktop(self: Arc<Self>, desktop: String) {
        for vm in self.running_vms(Some(&desktop)).await {
            self.checkpoint_logged(&vm, Then::Resume, "its desktop sleeps")
                .await;
        }
    }

    /// Checkpoints every running VM every `checkpoint_interval_s`.
    pub(crate) async fn checkpoint_loop(self: Arc<Self>) {
        let every = self.config.checkpoint_interval_s;
        if every == 0 {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(every)).await;
            for vm in self.running_vms(None).await {
                self.checkpoint_logged(&vm, Then::Resume, "periodic").await;
            }
        }
    }

    /// Checkpoints `vm`, logging the outcome.
    pub(crate) async fn checkpoint_logged(&self, vm: &str, then: Then, why: &str) -> bool {
        match self.checkpoint(vm, then).await {
            Ok(t) => {
                tracing::info!(
                    vm,
                    why,
                    seq = t.seq,
                    downtime_ms = t.downtime.as_secs_f64() * 1000.0,
                    pages = t.pages,
                    bytes = t.bytes,
                    "checkpointed"
                );
                true
            }
            Err(e) => {
                tracing::warn!(vm, why, "checkpoint failed: {e}");
                false
            }
        }
    }

    /// VMs running here (of `desktop`, if given).
    pub(crate) async fn running_vms(&self, desktop: Option<&str>) -> Vec<String> {
        let slots: Vec<_> = self
            .guests
            .lock()
            .expect("guests lock")
            .iter()
            .map(|(vm, s)| (vm.clone(), s.clone()))
            .collect();
        let mut out = Vec::new();
        for (vm, slot) in slots {
            let g = slot.lock().await;
            if g.handover == ServerState::Running && desktop.is_none_or(|d| d == g.desktop) {
                out.push(vm);
            }
        }
        out
    }
}

/// Copies the pages written since the last checkpoint (with `full`, every
/// page written on the server) of the memory and disk files.
fn capture(memory: &VmMemory, disk: Option<&VmMemory>, full: bool) -> std::io::Result<Vec<Page>> {
    let mut out = Vec::new();
    for (file, kind) in
        std::iter::once((memory, FileKind::Memory)).chain(disk.map(|d| (d, FileKind::Disk)))
    {
        let since = file.take_written();
        let pages = if full { file.dirty_pages() } else { since };
        for page in pages {
            let mut data = vec![0u8; PAGE_SIZE as usize];
            file.read_page(page, &mut data)?;
            out.push(Page { kind, page, data });
        }
    }
    Ok(out)
}
