//! Partial migration out: only CPU and device state leave; memory stays in
//! the memory file and is served on demand. The procedure and its commit
//! are in [`crate::handover_out`]; this is the agent's side of it: the
//! guest, the connection, the power record.

use std::time::Duration;

use jettison_daemon::describe_machine;
use jettison_tls::TlsConn;
use jettison_wire::{Message, MigrateReport, Role, Transport};

use crate::handover_out::{migrate_out, OutRequest, OutTimeouts};
use crate::vm::Placement;
use crate::{Agent, AgentError};

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
        let machine = describe_machine(&slot.machine())?;
        let running = slot.take_home("migrating").await?;
        let req = OutRequest {
            prepare: Message::MigratePrepare {
                vm: vm.into(),
                machine,
                state_server: self.config.advertised(),
            },
            vm: vm.into(),
            // Its certificate name: the state server serves the VM's memory
            // only to the server its record names.
            server: self.config.server_name.clone(),
        };
        let result = async {
            let mut t = self.dial_server().await?;
            migrate_out(
                &slot.record,
                &running.qemu,
                &mut t,
                &req,
                OutTimeouts::default(),
            )
            .await
        }
        .await;
        match result {
            Ok(mut report) => {
                report.desktop_resident_bytes = slot.resident_bytes();
                running.quit().await;
                if let Some(p) = &self.power {
                    p.placement(vm, true);
                }
                slot.set_placement(Placement::Away {
                    server: self.config.server_name.clone(),
                })
                .await;
                tracing::info!(
                    vm,
                    latency_ms = report.latency_ms,
                    state_bytes = report.device_state_bytes,
                    "VM consolidated"
                );
                Ok(report)
            }
            Err(e) => {
                let back = if slot.record.get().in_doubt() {
                    Placement::Unsettled(Some(running))
                } else {
                    Placement::Home(running)
                };
                slot.set_placement(back).await;
                Err(e)
            }
        }
    }
}
