//! Running VMs again from their checkpoints when the server starts: after a
//! planned stop (the guest paused at its last checkpoint, so it resumes
//! with nothing lost) or a crash (it rolls back to its last checkpoint).

use std::sync::{Arc, Weak};
use std::time::Instant;

use jettison_handover::ServerState;
use jettison_qemu::Qemu;

use super::CheckpointStore;
use crate::guests::{Guest, Host};
use crate::host::LazyFiles;
use crate::records::Record;
use crate::{Server, ServerError};

/// How often one VM is resumed from its checkpoint after its QEMU died
/// before the server gives it up (a guest that crashes its QEMU again and
/// again).
const MAX_RECOVERIES: u32 = 3;

impl Server {
    /// A guest's QEMU died while it ran here: if it has a checkpoint, it is
    /// resumed from it (a rollback of at most one checkpoint interval)
    /// instead of being forgotten. Returns whether it was taken care of.
    pub(crate) async fn recover_crashed(
        self: &Arc<Self>,
        vm: &str,
        slot: &Weak<tokio::sync::Mutex<Guest<Qemu, LazyFiles>>>,
        status: &str,
    ) -> bool {
        let Some(current) = slot.upgrade() else {
            return false;
        };
        if !self.handovers.is_current(vm, &current)
            || current.lock().await.handover != ServerState::Running
        {
            return false;
        }
        drop(current);
        let record = match self.handovers.records.load(vm) {
            Ok(Some(r)) if r.machine.is_some() => r,
            _ => return false,
        };
        if !matches!(
            CheckpointStore::existing(&self.checkpoint_root(), vm),
            Ok(Some(_))
        ) {
            return false;
        }
        {
            let mut counts = self.recoveries.lock().expect("recoveries lock");
            let n = counts.entry(vm.to_owned()).or_default();
            if *n >= MAX_RECOVERIES {
                tracing::error!(
                    vm,
                    "its QEMU died {n} times after resuming from a checkpoint; giving it up"
                );
                return false;
            }
            *n += 1;
        }
        tracing::error!(vm, %status, "the VM's QEMU died; resuming it from its last checkpoint");
        // The dead guest goes (its tap with it), its files are made anew.
        drop(self.handovers.take(vm));
        self.remove_lazy_files(vm);
        // Resumed by `recovery_loop` (a task of its own: a restore watches
        // the new QEMU, whose watcher may come back here).
        self.recover
            .send((vm.to_owned(), record))
            .map_err(|e| tracing::error!(vm, "no recovery task: {e}"))
            .is_ok()
    }

    /// Resumes, one after the other, the VMs whose QEMU died.
    pub(crate) async fn recovery_loop(
        self: Arc<Self>,
        mut todo: tokio::sync::mpsc::UnboundedReceiver<(String, Record)>,
    ) {
        while let Some((vm, record)) = todo.recv().await {
            self.restore(&vm, record).await;
        }
    }

    /// Runs `vm` again from its last checkpoint: its files rebuilt from the
    /// checkpoint's pages (every other page comes from the desktop, as
    /// before), a new QEMU loaded with the checkpoint's device state. On
    /// failure the VM is forgotten here, so that its desktop, asking, hears
    /// `Unknown` and restarts it from its own last consistent state.
    pub(crate) async fn restore(self: &Arc<Self>, vm: &str, record: Record) {
        match self.try_restore(vm, &record).await {
            // paused_ms: from that checkpoint's pause to now.
            Ok((paused_ms, true, checkpoint_unix_ms)) => tracing::warn!(
                vm,
                paused_ms,
                checkpoint_unix_ms,
                "resumed from its last checkpoint, taken at the server's stop: nothing lost"
            ),
            Ok((paused_ms, false, checkpoint_unix_ms)) => tracing::warn!(
                vm,
                paused_ms,
                checkpoint_unix_ms,
                "resumed from its last checkpoint after a crash: rolled back to it"
            ),
            Err(e) => {
                tracing::error!(
                    vm,
                    "could not resume from its checkpoint ({e}); its desktop restarts it from its last consistent state"
                );
                if let Err(e) = CheckpointStore::remove(&self.checkpoint_root(), vm) {
                    tracing::warn!(vm, "removing its checkpoints: {e}");
                }
                if let Err(e) = self.handovers.records.remove(vm) {
                    tracing::warn!(vm, "removing the handover record: {e}");
                }
            }
        }
    }

    /// Returns how long the guest stood still (from its checkpoint's pause
    /// to now), whether that checkpoint was taken at a planned stop, and
    /// when (Unix ms).
    async fn try_restore(
        self: &Arc<Self>,
        vm: &str,
        record: &Record,
    ) -> Result<(f64, bool, u64), ServerError> {
        let started = Instant::now();
        let machine = record
            .machine
            .clone()
            .ok_or_else(|| ServerError::WrongState("its record predates checkpoints".into()))?;
        let root = self.checkpoint_root();
        let name = vm.to_owned();
        let (manifest, restored) = tokio::task::spawn_blocking(move || {
            let (store, manifest) = CheckpointStore::existing(&root, &name)?
                .ok_or_else(|| std::io::Error::other("no complete checkpoint"))?;
            store.clean()?;
            let restored = store
                .load()?
                .ok_or_else(|| std::io::Error::other("the checkpoint vanished"))?;
            Ok::<_, std::io::Error>((manifest, restored))
        })
        .await
        .map_err(|e| ServerError::Protocol(format!("checkpoint task: {e}")))??;
        // Counted again (it was admitted before: no limit applies).
        let usage = crate::admission::usage(&machine).unwrap_or_default();
        let ticket = self.handovers.admission.reserve_restored(vm, usage);
        let mut guest =
            Host::launch(&**self, vm, &machine, &record.state_server, &record.desktop).await?;
        let memory = guest.files.memory.clone();
        let disk = guest.files.disk.as_ref().map(|d| d.0.clone());
        let (mem_pages, disk_pages) = (restored.memory, restored.disk);
        let put = tokio::task::spawn_blocking(move || {
            for (page, data) in &mem_pages {
                memory.put_restored(*page, data)?;
            }
            if !disk_pages.is_empty() {
                let disk = disk.ok_or_else(|| {
                    std::io::Error::other("the checkpoint has disk blocks, the VM no disk")
                })?;
                for (page, data) in &disk_pages {
                    disk.put_restored(*page, data)?;
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(|e| ServerError::Protocol(format!("checkpoint task: {e}")))?;
        let loaded = async {
            put?;
            guest.vm.migrate_in(&restored.device_state).await?;
            guest.handover = ServerState::Running;
            self.handovers
                .records
                .save(vm, &guest.record(ServerState::Running))?;
            guest.vm.cont().await?;
            Ok::<_, ServerError>(())
        }
        .await;
        if let Err(e) = loaded {
            drop(guest);
            Host::release_files(&**self, vm);
            return Err(e);
        }
        guest.mark_running();
        guest.last_checkpoint_ms = Some(manifest.taken_unix_ms);
        let slot = self.handovers.insert(vm, guest);
        ticket.keep();
        Host::watch_exit(self.clone(), vm.to_owned(), slot).await;
        let now = jettison_qemu::unix_ms() as u64;
        tracing::info!(
            vm,
            seq = manifest.seq,
            restore_ms = started.elapsed().as_secs_f64() * 1000.0,
            "restored from checkpoint"
        );
        Ok((
            now.saturating_sub(manifest.taken_unix_ms) as f64,
            manifest.at_stop,
            manifest.taken_unix_ms,
        ))
    }
}
