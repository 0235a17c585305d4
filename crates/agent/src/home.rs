//! Booting a VM at home (at start-up and on `jettison start`), and what
//! stopping the agent does to the VMs running at home (`on_stop`).

use jettison_handover::DesktopState;

use crate::config::OnStop;
use crate::record::VmRecord;
use crate::vm::{describe, Placement};
use crate::{Agent, AgentError};

impl Agent {
    /// Boots a VM at home from its disk (a cold boot): one that was never
    /// booted, or whose guest powered off. Refused while the VM is away or
    /// in a handover, and while it runs at home. A VM that is off here but
    /// runs in a QEMU a previous agent left is taken over, not booted; one
    /// whose QEMU cannot be taken over is refused.
    pub async fn boot(&self, vm: &str) -> Result<(), AgentError> {
        let slot = self
            .slot(vm)
            .ok_or_else(|| AgentError::UnknownVm(vm.into()))?;
        let mut placement = slot.placement.lock().await;
        if check_bootable(vm, &placement)? {
            tracing::info!(vm, "the guest at home has powered off; booting it again");
            if let Placement::Home(gone) = std::mem::replace(&mut *placement, Placement::Off) {
                gone.quit().await;
            }
        }
        // A QEMU left by a previous agent (stopped with `on_stop = "leave"`,
        // or killed) may still run this VM on the same memory file: take it
        // over rather than start a second (`launch` refuses one that answers
        // but cannot be taken over).
        if matches!(*placement, Placement::Off) && slot.record.get() == DesktopState::Home {
            if let Some(r) = slot.adopt(&self.config).await? {
                tracing::info!(vm, pid = ?r.qemu.pid(), "the VM already runs at home in a QEMU a previous agent left: taken over, not booted");
                *placement = Placement::Home(Box::new(r));
                return Ok(());
            }
        }
        forget_snapshot_for_cold_boot(vm, &slot.record)?;
        let running = slot.launch(&self.config, false).await?;
        tracing::info!(vm, pid = ?running.qemu.pid(), "VM booted at home");
        *placement = Placement::Home(Box::new(running));
        Ok(())
    }

    /// At start-up, after the take-over of the QEMUs a previous agent left:
    /// boots the autostart VMs that are neither consolidated nor running.
    pub(crate) async fn boot_at_start(&self) {
        for (name, slot) in &self.slots {
            if !matches!(*slot.placement.lock().await, Placement::Off) {
                continue;
            }
            if slot.config.autostart {
                if let Err(e) = self.boot(name).await {
                    tracing::error!(vm = %name, "boot failed: {e}");
                }
            }
        }
    }

    /// When the agent stops: each VM running at home is left running
    /// (`on_stop = "leave"`: its QEMU and tap outlive the agent) or shut
    /// down (`"shutdown"`: the ACPI power button, QEMU quit after
    /// `stop_timeout_s`; the VMs in parallel). A consolidated VM is
    /// untouched. A guest held at home mid-handover is quit: the handover's
    /// durable record decides at the next start.
    pub(crate) async fn stop_vms_at_home(&self) {
        let mut stopping = tokio::task::JoinSet::new();
        for slot in self.slots.values() {
            let vm = slot.config.name.clone();
            match std::mem::replace(&mut *slot.placement.lock().await, Placement::Off) {
                Placement::Home(r) if r.qemu.has_exited() => drop(r),
                Placement::Home(r) => match self.config.on_stop {
                    OnStop::Leave => {
                        let qmp = r.qemu.options().qmp_socket();
                        let pid = r.detach();
                        tracing::info!(
                            vm,
                            ?pid,
                            qmp = %qmp.display(),
                            "leaving the VM running at home (on_stop = \"leave\"); a restarted agent takes it over"
                        );
                    }
                    OnStop::Shutdown => {
                        let timeout = self.config.stop_timeout();
                        tracing::info!(
                            vm,
                            ?timeout,
                            "shutting the guest down (on_stop = \"shutdown\")"
                        );
                        stopping.spawn(r.shutdown(timeout));
                    }
                },
                Placement::Unsettled(Some(r)) => {
                    tracing::warn!(
                        vm,
                        "quitting the guest held at home mid-handover; its record decides at the next start"
                    );
                    stopping.spawn(r.quit());
                }
                Placement::Away { server } => {
                    tracing::info!(vm, %server, "the VM is consolidated: nothing to stop here")
                }
                Placement::Off | Placement::Busy(_) | Placement::Unsettled(None) => {}
            }
        }
        while stopping.join_next().await.is_some() {}
    }
}

/// Whether a VM in this placement may be booted: `Ok(false)` if it is off,
/// `Ok(true)` if its guest at home has powered off (its QEMU exited),
/// otherwise why not.
pub(crate) fn check_bootable(vm: &str, p: &Placement) -> Result<bool, AgentError> {
    let hint = match p {
        Placement::Off => return Ok(false),
        Placement::Home(r) if r.qemu.has_exited() => return Ok(true),
        Placement::Home(_) => {
            return Err(AgentError::WrongState(format!(
                "VM {vm} is already running at home"
            )))
        }
        Placement::Away { .. } => format!("bring it home with `jettison reintegrate {vm}`"),
        Placement::Busy(_) | Placement::Unsettled(_) => {
            "wait until its handover is over (`jettison status`)".to_string()
        }
    };
    Err(AgentError::WrongState(format!(
        "VM {vm} cannot be started at home: it is {}; {hint}",
        describe(p)
    )))
}

/// Before a cold boot of a VM whose record is Home: a saved device state
/// (the snapshot of its last handover) is not restored, since the memory
/// file may have changed since; and it is dropped, since the boot changes
/// that file. Gives whether there was one.
pub(crate) fn forget_snapshot_for_cold_boot(
    vm: &str,
    record: &VmRecord,
) -> Result<bool, AgentError> {
    let state = record.get();
    if state != DesktopState::Home {
        return Err(AgentError::WrongState(format!(
            "VM {vm} cannot be started at home: its record says {state}"
        )));
    }
    if record.snapshot().is_none() {
        return Ok(false);
    }
    tracing::info!(
        vm,
        "a cold boot from its disk: its saved device state is not restored (the memory file may have changed since) and is dropped"
    );
    record.drop_snapshot()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_vm_that_is_off_may_be_booted() {
        assert!(!check_bootable("vm", &Placement::Off).unwrap());
        for (p, needle) in [
            (
                Placement::Away {
                    server: "srv".into(),
                },
                "it is consolidated on srv; bring it home with `jettison reintegrate vm`",
            ),
            (
                Placement::Busy("migrating"),
                "it is busy: migrating; wait until its handover is over",
            ),
            (
                Placement::Unsettled(None),
                "it is in doubt: settling with the server; wait",
            ),
        ] {
            let e = check_bootable("vm", &p).unwrap_err();
            assert!(matches!(e, AgentError::WrongState(_)), "{e:?}");
            let msg = e.to_string();
            assert!(msg.starts_with("VM vm cannot be started at home"), "{msg}");
            assert!(msg.contains(needle), "{msg}");
        }
    }

    #[test]
    fn a_cold_boot_drops_the_saved_device_state() {
        let dir = tempfile::tempdir().unwrap();
        let r = VmRecord::load(dir.path(), "vm").unwrap();
        assert!(!forget_snapshot_for_cold_boot("vm", &r).unwrap());
        r.save_snapshot(b"device state").unwrap();
        assert!(forget_snapshot_for_cold_boot("vm", &r).unwrap());
        assert!(r.snapshot().is_none());
    }

    #[test]
    fn a_vm_whose_record_is_not_home_is_not_booted() {
        let dir = tempfile::tempdir().unwrap();
        let r = VmRecord::load(dir.path(), "vm").unwrap();
        r.save_snapshot(b"device state").unwrap();
        r.advance(|s| s.begin_migration("srv")).unwrap();
        let e = forget_snapshot_for_cold_boot("vm", &r).unwrap_err();
        assert!(e.to_string().contains("its record says"), "{e}");
        assert_eq!(
            r.snapshot().unwrap(),
            b"device state",
            "kept for the rollback"
        );
    }

    #[test]
    fn the_unmanaged_message_says_what_to_do() {
        let e = AgentError::Unmanaged {
            vm: "vm".into(),
            qmp: "/run/jettison/agent/vm.qmp".into(),
        };
        assert_eq!(e.code(), jettison_wire::ErrorCode::WrongState);
        let msg = e.to_string();
        for needle in [
            "does not manage",
            "/run/jettison/agent/vm.qmp",
            "why it was not taken over",
            "not starting a second one",
            "jettison start vm",
        ] {
            assert!(msg.contains(needle), "{needle:?} in {msg}");
        }
    }
}
