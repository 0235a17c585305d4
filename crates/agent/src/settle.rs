//! Settling handovers in doubt: a VM whose record was left mid-handover (by
//! a crash, or a reply that never came) is settled by asking the server
//! what it holds, never by guessing ([`DesktopState::settle`]). A task of
//! the agent does it every few seconds until the server answers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jettison_handover::{DesktopAction, DesktopState, Settlement};
use jettison_tls::TlsConn;
use jettison_wire::{Custody, Message, Transport};

use crate::handover_out::{require_handover_minor, unexpected, unix_ms};
use crate::vm::{Placement, Running, VmSlot};
use crate::{Agent, AgentError};

/// How often unsettled VMs are looked at.
const SETTLE_EVERY: Duration = Duration::from_secs(2);
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

impl Agent {
    /// Settles every unsettled VM, again and again, until the agent stops.
    pub(crate) async fn settle_loop(self: Arc<Self>) {
        loop {
            for slot in self.slots.values() {
                if let Err(e) = self.settle(slot).await {
                    tracing::debug!(vm = %slot.config.name, "not settled yet: {e}");
                }
            }
            tokio::time::sleep(SETTLE_EVERY).await;
        }
    }

    /// Settles one VM if it is unsettled: asks the server, records the
    /// outcome, then acts on it.
    pub(crate) async fn settle(&self, slot: &Arc<VmSlot>) -> Result<(), AgentError> {
        let vm = slot.config.name.clone();
        let held = {
            let mut p = slot.placement.lock().await;
            match &mut *p {
                Placement::Unsettled(held) => {
                    let held = held.take();
                    *p = Placement::Busy("settling");
                    held
                }
                _ => return Ok(()),
            }
        };
        let state = slot.record.get();
        let asked = self.ask_server(&vm).await;
        let (custody, t) = match asked {
            Ok(x) => x,
            Err(e) => {
                slot.set_placement(Placement::Unsettled(held)).await;
                return Err(e);
            }
        };
        let (next, action) = match state.settle(custody, unix_ms(SystemTime::now())) {
            Settlement::AskAgain => {
                slot.set_placement(Placement::Unsettled(held)).await;
                return Ok(());
            }
            Settlement::To(next, action) => (next, action),
        };
        if let Err(e) = slot.record.set(next.clone()) {
            slot.set_placement(Placement::Unsettled(held)).await;
            return Err(e);
        }
        tracing::warn!(vm, from = %state, to = %next, server = ?custody, ?action, "handover settled");
        let placement = self.act(slot, &next, action, held, t).await;
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

    /// Carries out a settlement; returns where the VM is then.
    async fn act(
        &self,
        slot: &Arc<VmSlot>,
        next: &DesktopState,
        action: DesktopAction,
        held: Option<Box<Running>>,
        mut t: Transport<TlsConn>,
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
            if let Some(p) = &self.power {
                p.placement(&vm, true);
            }
            return Placement::Away {
                server: server.clone(),
            };
        }
        // Home.
        let resumed = match (action, held) {
            (DesktopAction::ResumeAtHome | DesktopAction::LoadSavedAndResume, Some(r)) => {
                match r.qemu.cont().await {
                    Ok(()) => Some(r),
                    Err(e) => {
                        tracing::error!(vm, "the guest at home did not resume ({e}); rolling back");
                        r.quit().await;
                        None
                    }
                }
            }
            (DesktopAction::None, held) => held,
            (_, held) => {
                if let Some(r) = held {
                    r.quit().await;
                }
                None
            }
        };
        let placement = match resumed {
            Some(r) => Placement::Home(r),
            None if action == DesktopAction::None => Placement::Off,
            None => match self.restore_snapshot(slot).await {
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
            },
        };
        if matches!(placement, Placement::Home(_)) {
            if let Some(p) = &self.power {
                p.placement(&vm, false);
            }
            if action == DesktopAction::LoadSavedAndResume {
                let _ = t.send(&Message::ReintegrateDone { vm }).await;
            }
        }
        placement
    }

    /// Restarts a VM at home from its snapshot: the memory file with the
    /// device state saved with it.
    async fn restore_snapshot(&self, slot: &VmSlot) -> Result<Running, AgentError> {
        let state = slot
            .record
            .snapshot()
            .ok_or_else(|| AgentError::WrongState("the VM has no saved device state".into()))?;
        let r = slot.launch(&self.config, true).await?;
        let loaded = async {
            r.qemu.migrate_in(&state).await?;
            r.qemu.cont().await?;
            Ok::<_, AgentError>(())
        }
        .await;
        match loaded {
            Ok(()) => Ok(r),
            Err(e) => {
                r.quit().await;
                Err(e)
            }
        }
    }
}
