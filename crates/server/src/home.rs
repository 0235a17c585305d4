//! Sending a VM home: stop, flush dirty pages, save the device state, record
//! `Sending`, stream state and dirty pages to the agent; once the agent says
//! everything is durable and loaded (`ReintegrateReady`), record `Released`
//! (the commit), tell it, and forget the VM. Anything else before that
//! resumes the VM here. Generic over the [`Host`] and the connection's
//! stream.

use std::time::Instant;

use jettison_handover::ServerState;
use jettison_qemu::VmControl;
use jettison_wire::{FileKind, Message, Transport, DIRTY_BATCH_PAGES};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::guests::{discard, GuestFiles, Host};
use crate::ServerError;

/// Sends `desktop`'s VM `vm` home through `t`. The guest lock is held only to stop it and
/// to flip its state, never while pages stream.
pub(crate) async fn send_home<H: Host, S: AsyncRead + AsyncWrite + Unpin>(
    host: &H,
    vm: &str,
    desktop: &str,
    t: &mut Transport<S>,
) -> Result<(), ServerError> {
    let handovers = host.handovers();
    let timeouts = host.timeouts();
    // Another desktop's VM is refused here, before it is locked or stopped.
    let slot = handovers.get_for(vm, desktop)?;
    let started = Instant::now();
    let (begin, files, dirty, dirty_disk, was_paused) = {
        let mut guest = slot.lock().await;
        if guest.handover != ServerState::Running {
            return Err(ServerError::WrongState(format!(
                "VM {vm} is {}, not running here",
                guest.handover
            )));
        }
        let was_paused = guest.paused;
        guest.vm.stop().await?;
        guest.mark_stopped();
        let saved = async {
            guest.files.flush().await?;
            let state = guest.vm.save_state().await?;
            handovers.advance(vm, &mut guest, ServerState::begin_send)?;
            Ok::<_, ServerError>(state)
        }
        .await;
        let device_state = match saved {
            Ok(s) => s,
            Err(e) => {
                if !was_paused {
                    guest.vm.cont().await?;
                    guest.mark_running();
                }
                return Err(e);
            }
        };
        let dirty = guest.files.dirty_pages(FileKind::Memory);
        let dirty_disk = guest.files.dirty_pages(FileKind::Disk);
        let begin = Message::ReintegrateBegin {
            vm: vm.into(),
            device_state,
            dirty_pages: dirty.len() as u64,
            dirty_disk_blocks: dirty_disk.len() as u64,
            remote: guest.files.stats(FileKind::Memory).unwrap_or_default(),
            remote_disk: guest.files.stats(FileKind::Disk),
            remote_seconds: guest.run_time().as_secs_f64(),
            server_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        (begin, guest.files.clone(), dirty, dirty_disk, was_paused)
    };
    tracing::info!(vm, dirty_pages = dirty.len(), "sending the VM home");
    let sent = async {
        t.send(&begin).await?;
        send_pages(t, &*files, dirty, FileKind::Memory).await?;
        send_pages(t, &*files, dirty_disk, FileKind::Disk).await?;
        t.send(&Message::ReintegrateEnd { vm: vm.into() }).await?;
        Ok::<_, ServerError>(t.recv_within(timeouts.agent).await?)
    }
    .await;
    let mut guest = slot.lock().await;
    let why = match sent {
        Ok(Message::ReintegrateReady { .. }) => {
            // The commit: from here the server's copy never runs again.
            match handovers.advance(vm, &mut guest, ServerState::release) {
                Ok(()) => None,
                Err(e) => Some(format!("the release could not be recorded: {e}")),
            }
        }
        Ok(Message::ReintegrateAbort { reason, .. }) => Some(format!("agent aborted: {reason}")),
        Ok(m) => Some(format!("agent answered {}", m.kind())),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = why {
        tracing::error!(
            vm,
            "reintegration did not complete ({why}); the VM resumes here"
        );
        handovers.advance(vm, &mut guest, ServerState::abort_send)?;
        if !was_paused {
            if let Err(e) = guest.vm.cont().await {
                if !guest.vm.has_exited() {
                    return Err(e.into());
                }
                // Its QEMU died meanwhile: the VM is lost here (no copy to
                // answer `Holds` for), and its desktop, asking, restarts it.
                tracing::error!(
                    vm,
                    "the VM's QEMU died while it was being sent home; it is lost here and its desktop restarts it from its last consistent state"
                );
                drop(guest);
                drop(slot);
                discard(host, vm).await;
                return Err(ServerError::Protocol(format!("{why}; and its QEMU died")));
            }
            guest.mark_running();
        }
        return Err(ServerError::Protocol(why));
    }
    drop(guest);
    // The last reference goes to `discard`, which quits the VM.
    drop(slot);
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
    host.record_working_set(vm, &files).await;
    discard(host, vm).await;
    if dropped {
        return Ok(());
    }
    // The tombstone goes once the desktop says the VM runs at home (here,
    // or later on another connection), or when it brings the VM again.
    if let Ok(Message::ReintegrateDone { .. }) = t.recv_within(timeouts.done).await {
        if let Err(e) = handovers.records.remove(vm) {
            tracing::warn!(vm, "removing the handover record: {e}");
        }
    }
    Ok(())
}

/// Streams pages of a lazy file, read from its replica, in batches.
async fn send_pages<F: GuestFiles, S: AsyncRead + AsyncWrite + Unpin>(
    t: &mut Transport<S>,
    files: &F,
    pages: Vec<u64>,
    kind: FileKind,
) -> Result<(), ServerError> {
    for batch in pages.chunks(DIRTY_BATCH_PAGES) {
        let pages = files.read_pages(kind, batch.to_vec()).await?;
        t.send(&Message::DirtyPages { file: kind, pages }).await?;
    }
    Ok(())
}
