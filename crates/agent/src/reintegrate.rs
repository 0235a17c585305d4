//! Reintegration: the VM comes home with its device state and only the
//! pages it wrote while away. The procedure and its commit are in
//! [`crate::handover_in`]; this is the agent's side of it: the incoming
//! guest, the connection, the report.

use std::time::{Duration, Instant};

use jettison_wire::ReintegrateReport;

use jettison_handover::DesktopState;

use crate::handover_in::{bring_home, InOutcome};
use crate::handover_out::ms;
use crate::vm::Placement;
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
        let server = slot.take_away("returning").await?;
        let away = || Placement::Away {
            server: server.clone(),
        };
        if let Err(e) = slot.require_memory_file() {
            slot.set_placement(away()).await;
            return Err(e);
        }
        // QEMU starts first and waits for the state. The guest keeps running
        // on the server meanwhile, so the launch is not part of its downtime.
        let q = match slot.launch(&self.config, true).await {
            Ok(q) => q,
            Err(e) => {
                slot.set_placement(away()).await;
                return Err(e);
            }
        };
        let mut t = match self.dial_server().await {
            Ok(t) => t,
            Err(e) => {
                q.quit().await;
                slot.set_placement(away()).await;
                return Err(e);
            }
        };
        let started = Instant::now();
        let files = slot.home_files();
        let outcome = bring_home(
            &slot.record,
            &q.qemu,
            &files,
            &mut t,
            vm,
            verify,
            SERVER_TIMEOUT,
        )
        .await;
        match outcome {
            InOutcome::Home(r) => {
                let total = started.elapsed();
                if let Some(p) = &self.power {
                    p.placement(vm, false);
                }
                slot.set_placement(Placement::Home(Box::new(q))).await;
                let report = ReintegrateReport {
                    vm: vm.into(),
                    latency_ms: ms(total) - r.verify_ms,
                    dirty_pages: r.dirty_pages,
                    dirty_disk_blocks: r.dirty_disk_blocks,
                    remote_disk: r.remote_disk,
                    device_state_bytes: r.device_state_bytes,
                    bytes_sent: t.bytes_received(),
                    remote: r.remote,
                    remote_seconds: r.remote_seconds,
                    image_digest: r.digest,
                    verify_ms: r.verify_ms,
                };
                tracing::info!(
                    vm,
                    latency_ms = report.latency_ms,
                    fsync_ms = r.fsync_ms,
                    dirty_pages = report.dirty_pages,
                    "VM is home"
                );
                Ok(report)
            }
            InOutcome::StayedAway(e) => {
                q.quit().await;
                tracing::error!(vm, "reintegration failed; the VM stays on the server: {e}");
                slot.set_placement(away()).await;
                Err(e)
            }
            InOutcome::InDoubt(e) if slot.record.get() == DesktopState::Home => {
                // Committed home, but the guest did not resume (its QEMU
                // died): restart it from what is durable at home.
                q.quit().await;
                tracing::error!(
                    vm,
                    "the VM came home but did not resume ({e}); restarting it"
                );
                let placement = self.restore_placement(&slot).await;
                let home = matches!(placement, Placement::Home(_));
                slot.set_placement(placement).await;
                if let Some(p) = self.power.as_ref().filter(|_| home) {
                    p.placement(vm, false);
                }
                Err(AgentError::WrongState(format!(
                    "{vm} came home but its guest did not resume ({e}); {}",
                    if home {
                        "it was restarted from its last consistent state"
                    } else {
                        "boot it again (jettison start)"
                    }
                )))
            }
            InOutcome::InDoubt(e) => {
                tracing::error!(
                    vm,
                    "reintegration in doubt ({e}); the guest stays paused at home until the server answers"
                );
                slot.set_placement(Placement::Unsettled(Some(Box::new(q))))
                    .await;
                Err(AgentError::WrongState(format!(
                    "reintegration of {vm} is in doubt ({e}); the agent settles it with the server"
                )))
            }
        }
    }
}
