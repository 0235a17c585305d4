//! Settling handovers in doubt: a VM whose record was left mid-handover (by
//! a crash, or a reply that never came) is settled by asking the server
//! what it holds, never by guessing ([`DesktopState::settle`]). A task of
//! the agent does it every few seconds until the server answers.

use std::sync::Arc;
use std::time::Duration;

use jettison_handover::{DesktopAction, DesktopState, Settlement};
use jettison_tls::TlsConn;
use jettison_wire::{Custody, Message, Transport};

use crate::handover_out::{require_handover_minor, unexpected};
use crate::vm::{Placement, Running, VmSlot};
use crate::{Agent, AgentError};

/// How often unsettled VMs are looked at.
const SETTLE_EVERY: Duration = Duration::from_secs(2);
/// Every this many rounds, consolidated VMs are checked too: a server that
/// lost one (it died with its QEMU) answers `Unknown`, and the VM restarts
/// at home from its last consistent state.
const AWAY_CHECK_ROUNDS: u64 = 8;
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

impl Agent {
    /// Settles every unsettled VM, again and again, until the agent stops.
    pub(crate) async fn settle_loop(self: Arc<Self>) {
        for round in 0u64.. {
            // Not while the desktop goes to sleep: it talks to nobody then.
            let check_away = round % AWAY_CHECK_ROUNDS == 0 && !self.gate.dozing();
            for slot in self.slots.values() {
                if let Err(e) = self.settle(slot, check_away).await {
                    tracing::debug!(vm = %slot.config.name, "not settled yet: {e}");
                }
            }
            tokio::time::sleep(SETTLE_EVERY).await;
        }
    }

    /// Settles one VM if it is unsettled (or, with `check_away`, checks a
    /// consolidated one): asks the server, records the outcome, then acts
    /// on it. Until the server answers, the VM stays as it was.
    pub(crate) async fn settle(
        &self,
        slot: &Arc<VmSlot>,
        check_away: bool,
    ) -> Result<(), AgentError> {
        let vm = slot.config.name.clone();
        let (held, before) = {
            let mut p = slot.placement.lock().await;
            match &mut *p {
                Placement::Unsettled(held) => {
                    let held = held.take();
                    *p = Placement::Busy("settling");
                    (held, None)
                }
                Placement::Away { server } if check_away => {
                    let before = Placement::Away {
                        server: server.clone(),
                    };
                    *p = Placement::Busy("checking with the server");
                    (None, Some(before))
                }
                _ => return Ok(()),
            }
        };
        let restore = |held| before.unwrap_or(Placement::Unsettled(held));
        let state = slot.record.get();
        let (custody, t) = match self.ask_server(&vm).await {
            Ok(x) => x,
            Err(e) => {
                slot.set_placement(restore(held)).await;
                return Err(e);
            }
        };
        let mut t = t;
        let (next, action) = match state.settle(custody, jettison_qemu::unix_ms() as u64) {
            Settlement::To(next, action) if next != state || action != DesktopAction::None => {
                (next, action)
            }
            _ => {
                let _ = t.close().await;
                slot.set_placement(restore(held)).await;
                return Ok(());
            }
        };
        if let Err(e) = slot.record.set(next.clone()) {
            slot.set_placement(restore(held)).await;
            return Err(e);
        }
        tracing::warn!(vm, from = %state, to = %next, server = ?custody, ?action, "handover settled");
        let placement = self.act(slot, &next, action, held, t, state != next).await;
        slot.set_placement(placement).await;
        Ok(())
    }

    /// Asks the server what it holds of `vm`.
    async fn ask_server(&self, vm: &str) -> Result<(Custody, Transport<TlsConn>), AgentError> {
        let mut t = self.dial_server().await?;
        require_handover_minor(&t)?;
        match t
            .request(&Message::HandoverQuery { vm: vm.into() }, ASK_TIMEOUT)
            .await?
        {
            Message::HandoverState { custody, .. } => Ok((custody, t)),
            other => Err(unexpected("HandoverState", &other)),
        }
    }

    /// Carries out a settlement; returns where the VM is then. The guest at
    /// home is the one held: one this agent stopped or loaded, or one a
    /// previous agent left and this one took over at start-up.
    async fn act(
        &self,
        slot: &Arc<VmSlot>,
        next: &DesktopState,
        action: DesktopAction,
        held: Option<Box<Running>>,
        mut t: Transport<TlsConn>,
        changed: bool,
    ) -> Placement {
        let vm = slot.config.name.clone();
        if let DesktopState::Away { server, .. } = next {
            if let Some(r) = held {
                r.quit().await;
            }
            if action == DesktopAction::SendCommit {
                let commit = Message::MigrateCommit { vm: vm.clone() };
                if let Err(e) = t.request(&commit, ASK_TIMEOUT).await {
                    tracing::warn!(vm, "commit not delivered ({e}); the server asks us");
                }
            }
            if changed {
                self.note_placement(&vm, next);
            }
            let _ = t.close().await;
            return Placement::Away {
                server: server.clone(),
            };
        }
        // Home: resume the guest there if the settlement says so, else
        // restart it from the snapshot.
        let resume = matches!(
            action,
            DesktopAction::ResumeAtHome | DesktopAction::LoadSavedAndResume
        );
        let resumed = match held {
            Some(r) if resume => match r.qemu.cont().await {
                Ok(()) => Some(Placement::Home(r)),
                Err(e) => {
                    tracing::error!(vm, "the guest at home did not resume ({e}); rolling back");
                    r.quit().await;
                    None
                }
            },
            Some(r) if action == DesktopAction::None => Some(Placement::Home(r)),
            Some(r) => {
                r.quit().await;
                None
            }
            None => None,
        };
        let placement = match resumed {
            Some(p) => p,
            None if action == DesktopAction::None => Placement::Off,
            None => self.restore_placement(slot).await,
        };
        if matches!(placement, Placement::Home(_)) {
            // The guest runs again: the snapshot no longer matches it.
            let _ = slot.record.drop_snapshot();
            if changed {
                self.note_placement(&vm, next);
            }
            if action == DesktopAction::LoadSavedAndResume {
                let _ = t.send(&Message::ReintegrateDone { vm }).await;
            }
        }
        let _ = t.close().await;
        placement
    }

    /// Restarts a VM at home from its snapshot; where it is then.
    pub(crate) async fn restore_placement(&self, slot: &VmSlot) -> Placement {
        let vm = &slot.config.name;
        match self.restore_snapshot(slot).await {
            Ok(r) => {
                tracing::warn!(vm, "rolled back: restarted from its last consistent state");
                Placement::Home(Box::new(r))
            }
            Err(e) => {
                tracing::error!(
                    vm,
                    "no consistent state to restart from ({e}); boot it again (jettison start {vm})"
                );
                Placement::Off
            }
        }
    }

    /// Tells the power record where the VM is now.
    fn note_placement(&self, vm: &str, state: &DesktopState) {
        if let Some(p) = &self.power {
            p.placement(vm, matches!(state, DesktopState::Away { .. }));
        }
    }

    /// Restarts a VM at home from its snapshot: the memory file with the
    /// device state saved with it.
    async fn restore_snapshot(&self, slot: &VmSlot) -> Result<Running, AgentError> {
        let state = slot
            .record
            .snapshot()
            .ok_or_else(|| AgentError::WrongState("the VM has no saved device state".into()))?;
        slot.require_memory_file()?;
        let r = slot.launch(&self.config, true).await?;
        let loaded = async {
            r.qemu.migrate_in(&state).await?;
            r.qemu.cont().await?;
            Ok::<_, AgentError>(())
        }
        .await;
        match loaded {
            Ok(()) => {
                let _ = slot.record.drop_snapshot();
                Ok(r)
            }
            Err(e) => {
                r.quit().await;
                Err(e)
            }
        }
    }
}
