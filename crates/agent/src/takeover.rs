//! Taking over, at start-up, the QEMUs a previous agent left running: one
//! stopped with `on_stop = "leave"`, or killed. The guest is not paused nor
//! touched: the new agent connects to its QMP socket, checks that the
//! process is this VM's QEMU ([`Qemu::adopt`]), reconnects its console and
//! keeps its tap ([`Tap::adopt`]), and from then on manages it exactly as
//! one it launched. What it does with it then depends on the VM's durable
//! record ([`at_start`]).

use std::path::PathBuf;

use jettison_daemon::tap::Tap;
use jettison_handover::DesktopState;
use jettison_qemu::Qemu;

use crate::vm::{Placement, Running, VmSlot};
use crate::{Agent, AgentConfig, AgentError};

/// What a restarted agent does with a QEMU it found running a VM.
#[derive(Debug)]
pub(crate) enum AtStart<V> {
    /// The record says home: the VM runs at home, managed, in whatever run
    /// state it was left (running, or paused by its user).
    Home(V),
    /// The record is mid-handover: the guest is held for the settle task,
    /// which resumes it or quits it once the server has answered.
    Held(V),
    /// The record says away: the server runs the VM, so the copy at home
    /// (stopped) must not run; it is quit.
    Quit(V),
}

/// The decision, from the VM's durable record alone.
pub(crate) fn at_start<V>(state: &DesktopState, vm: V) -> AtStart<V> {
    match state {
        DesktopState::Home => AtStart::Home(vm),
        DesktopState::Migrating { .. } | DesktopState::Returning { .. } => AtStart::Held(vm),
        DesktopState::Away { .. } => AtStart::Quit(vm),
    }
}

impl Agent {
    /// At start-up, before the settle task and the autostart boots: takes
    /// over every VM's QEMU left running by a previous agent.
    pub(crate) async fn take_over_at_start(&self) {
        for slot in self.slots.values() {
            let vm = &slot.config.name;
            let found = match slot.adopt(&self.config).await {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(vm, "a QEMU runs this VM but cannot be taken over: {e}");
                    continue;
                }
            };
            let state = slot.record.get();
            let mut p = slot.placement.lock().await;
            match (at_start(&state, Box::new(found)), &*p) {
                (AtStart::Home(r), Placement::Off) if waits_for_state(&r).await => {
                    // A restart from the snapshot (the record is home
                    // already) was cut short before the state was loaded:
                    // do it again.
                    tracing::warn!(vm, "the QEMU a previous agent left still waits for a state; restarting the VM from its snapshot");
                    r.quit().await;
                    *p = self.restore_placement(slot).await;
                }
                (AtStart::Home(r), Placement::Off) => {
                    tracing::info!(vm, pid = ?r.qemu.pid(), "took over the VM running at home");
                    *p = Placement::Home(r);
                }
                (AtStart::Held(r), Placement::Unsettled(None)) => {
                    tracing::warn!(vm, %state, "took over the guest held at home mid-handover; settling it");
                    *p = Placement::Unsettled(Some(r));
                }
                (AtStart::Quit(r), _) => {
                    drop(p);
                    tracing::warn!(vm, %state, "quitting the guest a previous agent left at home: the VM is consolidated");
                    r.quit().await;
                }
                (AtStart::Home(r) | AtStart::Held(r), other) => {
                    // Not reached: a slot starts Off (home) or Unsettled
                    // (mid-handover). Leave the QEMU as it was found.
                    tracing::error!(vm, placement = %crate::vm::describe(other), "not taking over the VM's QEMU here");
                    r.detach();
                }
            }
        }
    }
}

/// Whether a QEMU started with `-incoming defer` still waits for its state.
async fn waits_for_state(r: &Running) -> bool {
    r.qemu.options().incoming
        && matches!(
            r.qemu.status().await,
            Ok(jettison_qemu::RunState::Inmigrate)
        )
}

impl VmSlot {
    /// Takes over this VM's QEMU and its tap if a QEMU answers on its QMP
    /// socket (`Ok(None)` if none does). Fails, leaving it running, if what
    /// answers is not this VM's QEMU. A tap that cannot be taken over is
    /// logged, not fatal: the guest keeps running either way.
    pub(crate) async fn adopt(&self, cfg: &AgentConfig) -> Result<Option<Running>, AgentError> {
        let Some(qemu) = Qemu::adopt(&self.launch_options(cfg, false)).await? else {
            return Ok(None);
        };
        let tap = match (&self.config.mac, &cfg.bridge) {
            (Some(_), Some(bridge)) => match Tap::adopt(&self.config.name, bridge) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::error!(vm = %self.config.name, "the VM's tap was not taken over: {e}");
                    None
                }
            },
            _ => None,
        };
        Ok(Some(Running::new(qemu, tap)))
    }

    /// The QMP socket of a QEMU that answers there though this agent does
    /// not manage it (one it could not take over), if any. Only meaningful
    /// while no QEMU of this agent runs the VM.
    pub async fn unmanaged_qemu(&self, cfg: &AgentConfig) -> Option<PathBuf> {
        let qmp = self.launch_options(cfg, false).qmp_socket();
        tokio::net::UnixStream::connect(&qmp)
            .await
            .ok()
            .map(|_| qmp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jettison_qemu::fake::{FakeVm, Op};
    use jettison_qemu::VmControl;

    fn states() -> Vec<DesktopState> {
        let home = DesktopState::Home;
        let preparing = home.begin_migration("srv").unwrap();
        let transferring = preparing.transferring().unwrap();
        let away = transferring.commit_away(1).unwrap();
        let receiving = away.begin_return().unwrap();
        let ready = receiving.ready().unwrap();
        vec![home, preparing, transferring, away, receiving, ready]
    }

    #[tokio::test]
    async fn a_vm_recorded_home_is_kept_running_untouched() {
        for vm in [FakeVm::running(), {
            let v = FakeVm::running();
            v.stop().await.unwrap();
            v
        }] {
            let before = vm.log();
            let AtStart::Home(found) = at_start(&DesktopState::Home, vm.clone()) else {
                panic!("not kept at home")
            };
            assert_eq!(found.log(), before, "never paused nor resumed");
            assert!(!found.has_exited());
        }
        assert!(FakeVm::running().runs());
    }

    #[tokio::test]
    async fn mid_handover_the_guest_is_held_for_the_settlement() {
        let (mut held, mut quit) = (0, 0);
        for state in states() {
            let vm = FakeVm::running();
            vm.stop().await.unwrap();
            match at_start(&state, vm.clone()) {
                AtStart::Held(v) => {
                    assert!(
                        matches!(
                            state,
                            DesktopState::Migrating { .. } | DesktopState::Returning { .. }
                        ),
                        "{state}"
                    );
                    assert_eq!(v.log(), [Op::Stop], "held as found: {state}");
                    assert!(!v.runs());
                    held += 1;
                }
                AtStart::Home(_) => assert_eq!(state, DesktopState::Home),
                AtStart::Quit(v) => {
                    assert!(matches!(state, DesktopState::Away { .. }), "{state}");
                    v.quit().await.unwrap();
                    assert!(vm.has_exited(), "the copy at home is quit");
                    quit += 1;
                }
            }
        }
        assert_eq!(
            (held, quit),
            (4, 1),
            "preparing, transferring, receiving, ready; away"
        );
    }
}
