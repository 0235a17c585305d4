//! Running VMs again from their checkpoints when the server starts: after a
//! planned stop (the guest paused at its last checkpoint, so it resumes
//! with nothing lost) or a crash (it rolls back to its last checkpoint).

use std::sync::Arc;
use std::time::Instant;

use jettison_handover::ServerState;

use super::CheckpointStore;
use crate::guests::Host;
use crate::records::Record;
use crate::{Server, ServerError};

impl Server {
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
