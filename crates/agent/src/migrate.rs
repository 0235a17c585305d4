//! Partial migration out: only CPU and device state leave; memory stays in the
//! memory file and is served on demand.

use std::time::{Duration, Instant, SystemTime};

use jettison_daemon::describe_machine;
use jettison_tls::TlsConn;
use jettison_wire::{Message, MigrateReport, Role, Transport};

use crate::vm::{Placement, VmSlot};
use crate::{Agent, AgentError};

/// How long the server may take to get ready or to resume the VM.
const SERVER_TIMEOUT: Duration = Duration::from_secs(120);

impl Agent {
    /// Opens a mutually authenticated agent connection to the server.
    pub(crate) async fn dial_server(&self) -> Result<Transport<TlsConn>, AgentError> {
        let c = &self.config;
        Ok(jettison_daemon::dial(
            &self.tls,
            &c.server,
            &c.server_name,
            Role::Agent,
            Duration::from_secs(10),
        )
        .await?)
    }

    /// Migrates a VM running at home to the server.
    pub async fn migrate(&self, vm: &str) -> Result<MigrateReport, AgentError> {
        let slot = self
            .slot(vm)
            .ok_or_else(|| AgentError::UnknownVm(vm.into()))?;
        let mut placement = slot.placement.lock().await;
        let Placement::Home(_) = &*placement else {
            return Err(AgentError::WrongState(format!(
                "VM {vm} is not running at home"
            )));
        };
        let mut t = self.dial_server().await?;
        let machine = describe_machine(&slot.machine())?;
        let prepare = Message::MigratePrepare {
            vm: vm.into(),
            machine,
            state_server: self.config.advertised(),
        };
        expect(t.request(&prepare, SERVER_TIMEOUT).await?, "Prepared")?;
        tracing::info!(vm, server = %self.config.server, "server ready; stopping the VM");

        let Placement::Home(running) = std::mem::replace(&mut *placement, Placement::Off) else {
            unreachable!()
        };
        let started = Instant::now();
        let result = hand_over(&slot, &running.qemu, &mut t, started).await;
        match result {
            Ok(mut report) => {
                report.latency_ms = ms(started.elapsed());
                report.desktop_resident_bytes = slot.resident_bytes();
                report.bytes_sent = t.bytes_sent();
                running.quit().await;
                let since = SystemTime::now();
                slot.save_away(&self.config.server, since)?;
                if let Some(p) = &self.power {
                    p.placement(vm, true);
                }
                *placement = Placement::Away {
                    server: self.config.server.clone(),
                    since,
                };
                tracing::info!(
                    vm,
                    latency_ms = report.latency_ms,
                    state_bytes = report.device_state_bytes,
                    "VM consolidated"
                );
                Ok(report)
            }
            Err(e) => {
                tracing::error!(vm, "migration failed, resuming the VM at home: {e}");
                slot.set_serving(false);
                running.qemu.cont().await?;
                *placement = Placement::Home(running);
                Err(e)
            }
        }
    }
}

async fn hand_over(
    slot: &VmSlot,
    qemu: &jettison_qemu::Qemu,
    t: &mut Transport<TlsConn>,
    started: Instant,
) -> Result<MigrateReport, AgentError> {
    qemu.stop().await?;
    let device_state = qemu.migrate_out().await?;
    let save_ms = ms(started.elapsed());
    let device_state_bytes = device_state.len() as u64;
    // From here on the memory file no longer changes: the server may fetch it.
    slot.set_serving(true);
    let vm = slot.config.name.clone();
    let reply = t
        .request(
            &Message::MigrateIn {
                vm: vm.clone(),
                device_state,
            },
            SERVER_TIMEOUT,
        )
        .await?;
    let Message::MigrateInDone { restore_ms, .. } = reply else {
        return Err(AgentError::Protocol(format!(
            "expected MigrateInDone, got {}",
            reply.kind()
        )));
    };
    Ok(MigrateReport {
        vm,
        device_state_bytes,
        save_ms,
        restore_ms,
        ..Default::default()
    })
}

pub(crate) fn expect(reply: Message, what: &str) -> Result<Message, AgentError> {
    if reply.kind() == what {
        Ok(reply)
    } else {
        Err(AgentError::Protocol(format!(
            "expected {what}, got {}",
            reply.kind()
        )))
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
