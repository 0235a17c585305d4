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

use crate::guests::GuestFiles;
use crate::{Server, ServerError};

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

    /// `vm`'s checkpoint log (opened on first use).
    fn checkpoint_log(&self, vm: &str) -> std::io::Result<Arc<tokio::sync::Mutex<Checkpoints>>> {
        let mut logs = self.checkpoint_logs.lock().expect("checkpoint logs lock");
        if let Some(log) = logs.get(vm) {
            return Ok(log.clone());
        }
        let log = Arc::new(tokio::sync::Mutex::new(Checkpoints::open(
            &self.checkpoint_root(),
            vm,
        )?));
        logs.insert(vm.to_owned(), log.clone());
        Ok(log)
    }

    /// Removes `vm`'s checkpoints (it went home, or is dropped).
    pub(crate) fn forget_checkpoints(&self, vm: &str) {
        self.checkpoint_logs
            .lock()
            .expect("checkpoint logs lock")
            .remove(vm);
        if let Err(e) = CheckpointStore::remove(&self.checkpoint_root(), vm) {
            tracing::warn!(vm, "removing its checkpoints: {e}");
        }
    }

    /// Asks for a checkpoint of every running VM of `desktop`, which goes
    /// to sleep (taken by [`Server::checkpoint_loop`] within a second).
    pub(crate) fn checkpoint_before_sleep(&self, desktop: &str) {
        self.sleepers
            .lock()
            .expect("sleepers lock")
            .insert(desktop.to_owned());
    }

    /// Checkpoints `vm`: pauses it, flushes its files, saves its device
    /// state and copies the pages written since the last checkpoint, then
    /// resumes it (as `then` says) and makes all of it durable.
    pub(crate) async fn checkpoint(&self, vm: &str, then: Then) -> Result<Taken, ServerError> {
        let slot = self.guest(vm)?;
        let log = self.checkpoint_log(vm)?;
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
            // Saving its state leaves QEMU `postmigrate`, out of which only
            // `cont` leads, and QEMU refuses the next save until then: an
            // operator's pause must hold, so such a VM is checkpointed once
            // resumed (or at a planned stop, where its QEMU quits after).
            if guest.paused && then == Then::Resume {
                return Err(ServerError::WrongState(format!(
                    "VM {vm} is paused by the operator: checkpointed once resumed"
                )));
            }
            let started = Instant::now();
            guest.vm.stop().await?;
            // Until this one is durable, the pages it takes are nowhere else.
            log.full_next = true;
            let captured = async {
                guest.files.flush().await?;
                let state = guest.vm.migrate_out().await?;
                let memory = guest.files.memory.clone();
                let disk = guest.files.disk.as_ref().map(|d| d.0.clone());
                let pages =
                    tokio::task::spawn_blocking(move || capture(&memory, disk.as_deref(), full))
                        .await
                        .map_err(|e| ServerError::Protocol(format!("checkpoint task: {e}")))??;
                Ok::<_, ServerError>((state, pages))
            }
            .await;
            if then == Then::Resume && !guest.paused {
                guest.vm.cont().await?;
            }
            let (state, pages) = captured?;
            (state, pages, started.elapsed())
        };
        let store = log.store.clone();
        let n = captured.len() as u64;
        let at_stop = then == Then::StayPaused;
        let (manifest, bytes) = tokio::task::spawn_blocking(move || {
            store.commit(taken_ms, at_stop, &state, &captured, full)
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
        let Some(slot) = self.handovers.take(vm) else {
            return;
        };
        if kept {
            tracing::warn!(
                vm,
                "checkpointed and paused: it resumes when the server starts again"
            );
        } else {
            let _ = slot.lock().await.vm.stop().await;
            tracing::error!(
                vm,
                "stopping with a VM not checkpointed now: the next server process resumes it from its last checkpoint if it has one, else its desktop restarts it from its last consistent state"
            );
        }
        if let Ok(guest) = Arc::try_unwrap(slot).map(|m| m.into_inner()) {
            let _ = guest.vm.quit().await;
        }
    }

    /// Writes `vm`'s first checkpoint: the device state it was loaded with
    /// (no pause; every page is still the desktop's or written since, which
    /// the next checkpoint copies).
    async fn first_checkpoint(&self, vm: &str) -> Result<(), ServerError> {
        let slot = self.guest(vm)?;
        let log = self.checkpoint_log(vm)?;
        let log = log.lock().await;
        let (state, taken_ms) = {
            let mut g = slot.lock().await;
            if g.handover != ServerState::Running {
                return Ok(());
            }
            let Some(state) = g.loaded_state.take() else {
                return Ok(());
            };
            (state, jettison_qemu::unix_ms() as u64)
        };
        let store = log.store.clone();
        tokio::task::spawn_blocking(move || store.commit(taken_ms, false, &state, &[], true))
            .await
            .map_err(|e| ServerError::Protocol(format!("checkpoint task: {e}")))??;
        slot.lock().await.last_checkpoint_ms = Some(taken_ms);
        tracing::info!(
            vm,
            "first checkpoint written (the state it was loaded with)"
        );
        Ok(())
    }

    /// Takes the checkpoints that are due, every second: a VM's first (after
    /// its commit), those of VMs whose desktop goes to sleep, and a VM's
    /// periodic one every `checkpoint_interval_s`.
    pub(crate) async fn checkpoint_loop(self: Arc<Self>) {
        let every_ms = self.config.checkpoint_interval_s * 1000;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let sleepers = std::mem::take(&mut *self.sleepers.lock().expect("sleepers lock"));
            let now = jettison_qemu::unix_ms() as u64;
            for (vm, slot) in self.handovers.slots() {
                let (due_first, desktop, last) = {
                    let g = slot.lock().await;
                    if g.handover != ServerState::Running || g.paused {
                        continue;
                    }
                    (
                        g.loaded_state.is_some(),
                        g.desktop.clone(),
                        g.last_checkpoint_ms,
                    )
                };
                if due_first {
                    if let Err(e) = self.first_checkpoint(&vm).await {
                        tracing::warn!(vm, "first checkpoint not written: {e}");
                    }
                    continue;
                }
                if sleepers.contains(&desktop) {
                    self.checkpoint_logged(&vm, Then::Resume, "its desktop sleeps")
                        .await;
                } else if every_ms > 0 && last.is_some_and(|t| now >= t + every_ms) {
                    self.checkpoint_logged(&vm, Then::Resume, "periodic").await;
                }
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
