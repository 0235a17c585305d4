//! Sending a VM home: stop, flush dirty pages, save the device state, stream
//! state and dirty pages to the agent, and forget the VM only once the agent
//! says it runs at home.

use std::time::{Duration, Instant};

use jettison_wire::{Chunk, Message, Transport, DIRTY_BATCH_PAGES, PAGE_SIZE};
use tokio::net::TcpStream;

use crate::{flush, Phase, Server, ServerError};

const AGENT_TIMEOUT: Duration = Duration::from_secs(300);

impl Server {
    pub(crate) async fn send_home(
        &self,
        vm: &str,
        t: &mut Transport<TcpStream>,
    ) -> Result<(), ServerError> {
        let slot = self.guest(vm)?;
        let mut guest = slot.lock().await;
        if guest.phase == Phase::Prepared {
            return Err(ServerError::WrongState(format!(
                "VM {vm} has not arrived yet"
            )));
        }
        let was_paused = guest.phase == Phase::Paused;
        let started = Instant::now();
        guest.qemu.stop().await?;
        guest.mark_stopped();
        let saved = async {
            flush(self.mount.file_path(vm)).await?;
            Ok::<_, ServerError>(guest.qemu.migrate_out().await?)
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
        let remote_seconds = guest.run_time().as_secs_f64();
        let begin = Message::ReintegrateBegin {
            vm: vm.into(),
            device_state,
            dirty_pages: dirty.len() as u64,
            remote: guest.memory.stats(),
            remote_seconds,
            server_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        tracing::info!(vm, dirty_pages = dirty.len(), "sending the VM home");
        let sent = async {
            t.send(&begin).await?;
            for batch in dirty.chunks(DIRTY_BATCH_PAGES) {
                let memory = guest.memory.clone();
                let batch = batch.to_vec();
                let pages = tokio::task::spawn_blocking(move || {
                    batch
                        .iter()
                        .map(|&p| {
                            let mut data = vec![0u8; PAGE_SIZE as usize];
                            memory.read_page(p, &mut data).map(|()| Chunk {
                                offset: p * PAGE_SIZE,
                                data,
                            })
                        })
                        .collect::<std::io::Result<Vec<_>>>()
                })
                .await
                .map_err(|e| ServerError::Protocol(format!("page reader task: {e}")))??;
                t.send(&Message::DirtyPages { pages }).await?;
            }
            t.send(&Message::ReintegrateEnd { vm: vm.into() }).await?;
            Ok::<_, ServerError>(t.recv_within(AGENT_TIMEOUT).await?)
        }
        .await;
        match sent {
            Ok(Message::ReintegrateDone { .. }) => {
                tracing::info!(
                    vm,
                    ms = started.elapsed().as_secs_f64() * 1000.0,
                    "VM is home; forgetting it"
                );
                drop(guest);
                self.discard(vm).await;
                Ok(())
            }
            other => {
                let why = match other {
                    Ok(Message::ReintegrateAbort { reason, .. }) => {
                        format!("agent aborted: {reason}")
                    }
                    Ok(m) => format!("agent answered {}", m.kind()),
                    Err(e) => e.to_string(),
                };
                tracing::error!(
                    vm,
                    "reintegration did not complete ({why}); the VM resumes here"
                );
                if !was_paused {
                    guest.qemu.cont().await?;
                    guest.mark_running();
                }
                Err(ServerError::Protocol(why))
            }
        }
    }
}
