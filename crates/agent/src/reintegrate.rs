//! Reintegration: the VM comes home with its device state and only the pages
//! it wrote while away.

use std::time::{Duration, Instant};

use jettison_qemu::Qemu;
use jettison_tls::TlsConn;
use jettison_wire::{FileKind, Message, ReintegrateReport, Transport, VmMemStats};

use crate::migrate::ms;
use crate::vm::{digest_file, write_pages, Placement, VmSlot};
use crate::{Agent, AgentError};

const SERVER_TIMEOUT: Duration = Duration::from_secs(300);

impl Agent {
    /// Brings a consolidated VM home. With `verify`, the memory file is
    /// digested after the dirty pages are written and before the VM resumes
    /// (that time is reported apart and not counted in the latency).
    pub async fn reintegrate(
        &self,
        vm: &str,
        verify: bool,
    ) -> Result<ReintegrateReport, AgentError> {
        let slot = self
            .slot(vm)
            .ok_or_else(|| AgentError::UnknownVm(vm.into()))?;
        let mut placement = slot.placement.lock().await;
        let Placement::Away { .. } = &*placement else {
            return Err(AgentError::WrongState(format!(
                "VM {vm} is not consolidated"
            )));
        };
        // QEMU starts first and waits for the state. The guest keeps running
        // on the server meanwhile, so the launch is not part of its downtime.
        let q = slot.launch(&self.config, true).await?;
        let mut t = match self.dial_server().await {
            Ok(t) => t,
            Err(e) => {
                q.quit().await;
                return Err(e);
            }
        };
        let started = Instant::now();
        if let Err(e) = t.send(&Message::Reintegrate { vm: vm.into() }).await {
            q.quit().await;
            return Err(e.into());
        }
        let received = receive_home(&slot, &mut t, verify).await;
        let outcome = async {
            let r = received?;
            resume(&q.qemu, &r.device_state).await?;
            Ok::<_, AgentError>(r)
        }
        .await;
        match outcome {
            Ok(r) => {
                let total = started.elapsed();
                t.send(&Message::ReintegrateDone { vm: vm.into() }).await?;
                slot.clear_saved()?;
                if let Some(p) = &self.power {
                    p.placement(vm, false);
                }
                *placement = Placement::Home(Box::new(q));
                let report = ReintegrateReport {
                    vm: vm.into(),
                    latency_ms: ms(total) - r.verify_ms,
                    dirty_pages: r.dirty_pages,
                    dirty_disk_blocks: r.dirty_disk_blocks,
                    remote_disk: r.remote_disk,
                    device_state_bytes: r.device_state.len() as u64,
                    bytes_sent: t.bytes_received(),
                    remote: r.remote,
                    remote_seconds: r.remote_seconds,
                    image_digest: r.digest,
                    verify_ms: r.verify_ms,
                };
                tracing::info!(
                    vm,
                    latency_ms = report.latency_ms,
                    dirty_pages = report.dirty_pages,
                    "VM is home"
                );
                Ok(report)
            }
            Err(e) => {
                q.quit().await;
                tracing::error!(vm, "reintegration failed; the VM stays on the server: {e}");
                slot.set_serving(true);
                let _ = t
                    .send(&Message::ReintegrateAbort {
                        vm: vm.into(),
                        reason: e.to_string(),
                    })
                    .await;
                Err(e)
            }
        }
    }
}

/// What arrived from the server.
struct Received {
    device_state: Vec<u8>,
    dirty_pages: u64,
    dirty_disk_blocks: u64,
    remote: VmMemStats,
    remote_disk: Option<VmMemStats>,
    remote_seconds: f64,
    digest: Option<String>,
    verify_ms: f64,
}

async fn receive_home(
    slot: &VmSlot,
    t: &mut Transport<TlsConn>,
    verify: bool,
) -> Result<Received, AgentError> {
    let first = t.recv_within(SERVER_TIMEOUT).await?;
    let Message::ReintegrateBegin {
        device_state,
        dirty_pages,
        dirty_disk_blocks,
        remote,
        remote_disk,
        remote_seconds,
        ..
    } = first
    else {
        if let Message::Error(e) = first {
            return Err(AgentError::Server(format!("server refused: {}", e.message)));
        }
        return Err(AgentError::Protocol(format!(
            "expected ReintegrateBegin, got {}",
            first.kind()
        )));
    };
    let mut written = [0u64; 2];
    loop {
        match t.recv_within(SERVER_TIMEOUT).await? {
            Message::DirtyPages { file: kind, pages } => {
                let (path, size) = slot.file(kind).ok_or_else(|| {
                    AgentError::Protocol(format!("dirty {kind:?} pages for a VM without one"))
                })?;
                written[(kind == FileKind::Disk) as usize] += pages.len() as u64;
                tokio::task::spawn_blocking(move || {
                    let file = std::fs::OpenOptions::new().write(true).open(&path)?;
                    write_pages(&file, size, &pages)
                })
                .await
                .map_err(|e| AgentError::Protocol(format!("page writer task: {e}")))??;
            }
            Message::ReintegrateEnd { .. } => break,
            other => {
                return Err(AgentError::Protocol(format!(
                    "expected DirtyPages, got {}",
                    other.kind()
                )))
            }
        }
    }
    if written != [dirty_pages, dirty_disk_blocks] {
        return Err(AgentError::Protocol(format!(
            "server announced {dirty_pages} dirty pages and {dirty_disk_blocks} disk blocks but sent {} and {}",
            written[0], written[1]
        )));
    }
    // The memory file now holds the server's view; stop serving it.
    slot.set_serving(false);
    let (digest, verify_ms) = if verify {
        let started = Instant::now();
        let path = slot.mem_path.clone();
        let d = tokio::task::spawn_blocking(move || digest_file(&path))
            .await
            .map_err(|e| AgentError::Protocol(format!("digest task: {e}")))??;
        (Some(d), ms(started.elapsed()))
    } else {
        (None, 0.0)
    };
    Ok(Received {
        device_state,
        dirty_pages,
        dirty_disk_blocks,
        remote,
        remote_disk,
        remote_seconds,
        digest,
        verify_ms,
    })
}

async fn resume(qemu: &Qemu, state: &[u8]) -> Result<(), AgentError> {
    qemu.migrate_in(state).await?;
    qemu.cont().await?;
    Ok(())
}
