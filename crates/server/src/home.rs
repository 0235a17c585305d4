//! Sending a VM home: stop, flush dirty pages, save the device state, record
//! `Sending`, stream state and dirty pages to the agent; once the agent says
//! everything is durable and loaded (`ReintegrateReady`), record `Released`
//! (the commit), tell it, and forget the VM. Anything else before that
//! resumes the VM here.

use std::time::{Duration, Instant};

use std::sync::Arc;

use jettison_lazymem::VmMemory;
use jettison_tls::TlsConn;
use jettison_wire::{Chunk, FileKind, Message, Transport, DIRTY_BATCH_PAGES, PAGE_SIZE};

use crate::intake::disk_name;
use jettison_handover::ServerState;

use crate::{flush, Server, ServerError};

const AGENT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the desktop's last word (`ReintegrateDone`) is waited for.
const DONE_TIMEOUT: Duration = Duration::from_secs(30);

impl Server {
    /// Sends `vm` home through `t`. The guest lock is held only to stop it
    /// and to flip its state, never while pages stream.
    pub(crate) async fn send_home(
        &self,
        vm: &str,
        t: &mut Transport<TlsConn>,
    ) -> Result<(), ServerError> {
        let slot = self.guest(vm)?;
        let started = Instant::now();
        let (begin, memory, disk, dirty, dirty_disk, was_paused) = {
            let mut guest = slot.lock().await;
            if guest.handover != ServerState::Running {
                return Err(ServerError::WrongState(format!(
                    "VM {vm} is {}, not running here",
                    guest.handover
                )));
            }
            let was_paused = guest.paused;
            guest.qemu.stop().await?;
            guest.mark_stopped();
            let saved = async {
                flush(self.mount.file_path(vm)).await?;
                if guest.disk.is_some() {
                    flush(self.mount.file_path(&disk_name(vm))).await?;
                }
                let state = guest.qemu.migrate_out().await?;
                self.advance(vm, &mut guest, ServerState::begin_send)?;
                Ok::<_, ServerError>(state)
            }
            .await;
            let device_state = match saved {
                Ok(s) => s,
                Err(e) => {
                    if !was_paused {
                        guest.qemu.cont().await?;
                        guest.mark_running();
                    }
                    return Err(e);
                }
            };
            let dirty = guest.memory.dirty_pages();
            let dirty_disk = guest
                .disk
                .as_ref()
                .map(|d| d.dirty_pages())
                .unwrap_or_default();
            let begin = Message::ReintegrateBegin {
                vm: vm.into(),
                device_state,
                dirty_pages: dirty.len() as u64,
                dirty_disk_blocks: dirty_disk.len() as u64,
                remote: guest.memory.stats(),
                remote_disk: guest.disk.as_ref().map(|d| d.stats()),
                remote_seconds: guest.run_time().as_secs_f64(),
                server_ms: started.elapsed().as_secs_f64() * 1000.0,
            };
            (
                begin,
                guest.memory.clone(),
                guest.disk.clone(),
                dirty,
                dirty_disk,
                was_paused,
            )
        };
        tracing::info!(vm, dirty_pages = dirty.len(), "sending the VM home");
        let sent = async {
            t.send(&begin).await?;
            send_pages(t, &memory, &dirty, FileKind::Memory).await?;
            if let Some(disk) = &disk {
                send_pages(t, disk, &dirty_disk, FileKind::Disk).await?;
            }
            t.send(&Message::ReintegrateEnd { vm: vm.into() }).await?;
            Ok::<_, ServerError>(t.recv_within(AGENT_TIMEOUT).await?)
        }
        .await;
        let mut guest = slot.lock().await;
        let why = match sent {
            Ok(Message::ReintegrateReady { .. }) => {
                // The commit: from here the server's copy never runs again.
                match self.advance(vm, &mut guest, ServerState::release) {
                    Ok(()) => None,
                    Err(e) => Some(format!("the release could not be recorded: {e}")),
                }
            }
            Ok(Message::ReintegrateAbort { reason, .. }) => {
                Some(format!("agent aborted: {reason}"))
            }
            Ok(m) => Some(format!("agent answered {}", m.kind())),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = why {
            tracing::error!(
                vm,
                "reintegration did not complete ({why}); the VM resumes here"
            );
            self.advance(vm, &mut guest, ServerState::abort_send)?;
            if !was_paused {
                guest.qemu.cont().await?;
                guest.mark_running();
            }
            return Err(ServerError::Protocol(why));
        }
        drop(guest);
        let committed = Message::ReintegrateCommitted { vm: vm.into() };
        let dropped = jettison_daemon::fault::drops(committed.kind());
        if dropped {
            tracing::warn!(vm, "the commit's reply is dropped; the desktop asks us");
        } else if let Err(e) = t.send(&committed).await {
            tracing::warn!(vm, "the commit's reply was lost ({e}); the desktop asks us");
        }
        tracing::info!(
            vm,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "VM released home; forgetting it"
        );
        self.record_working_set(vm, &memory).await;
        self.discard(vm).await;
        if dropped {
            return Ok(());
        }
        // The tombstone goes once the desktop says the VM runs at home (here,
        // or later on another connection), or when it brings the VM again.
        if let Ok(Message::ReintegrateDone { .. }) = t.recv_within(DONE_TIMEOUT).await {
            if let Err(e) = self.records.remove(vm) {
                tracing::warn!(vm, "removing the handover record: {e}");
            }
        }
        Ok(())
    }
}

impl Server {
    /// Records the memory pages `vm` used in the period that ends (the
    /// memory file only; the disk is not prefetched). A failure is logged:
    /// the VM is home either way.
    async fn record_working_set(&self, vm: &str, memory: &Arc<VmMemory>) {
        let pages = memory.used_pages();
        let fetched = memory.stats().pages_fetched;
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
}

/// Streams pages of a lazy file, read from its replica, in batches.
async fn send_pages(
    t: &mut Transport<TlsConn>,
    file: &Arc<VmMemory>,
    pages: &[u64],
    kind: FileKind,
) -> Result<(), ServerError> {
    for batch in pages.chunks(DIRTY_BATCH_PAGES) {
        let file = file.clone();
        let batch = batch.to_vec();
        let pages = tokio::task::spawn_blocking(move || {
            batch
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
        t.send(&Message::DirtyPages { file: kind, pages }).await?;
    }
    Ok(())
}
