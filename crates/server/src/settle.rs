//! Settling what a handover left in doubt on the server's side: a VM
//! loaded whose desktop went silent before its commit is kept paused and
//! settled by asking the desktop ([`ServerState::settle`]), never by
//! guessing; and the server's own answer to a desktop that asks.

use std::sync::Arc;
use std::time::Duration;

use jettison_handover::{ServerAction, ServerState, Settlement};
use jettison_wire::{Custody, Message, Role};

use crate::{Server, ServerError};

/// How often an unreachable desktop is asked again (at most).
const ASK_EVERY_MAX: Duration = Duration::from_secs(10);
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

impl Server {
    /// What this server holds of `vm`, for a desktop settling a handover.
    pub(crate) async fn custody(&self, vm: &str) -> Custody {
        let slot = self.guests.lock().expect("guests lock").get(vm).cloned();
        match slot {
            Some(slot) => slot.lock().await.handover.custody(),
            None => match self.records.load(vm) {
                Ok(Some(r)) => r.state.custody(),
                Ok(None) => Custody::Unknown,
                Err(e) => {
                    tracing::error!(vm, "unreadable handover record: {e}");
                    // Never "unknown" for a record we cannot read: the desktop
                    // would take that as lost. Ask again later.
                    Custody::InDoubt
                }
            },
        }
    }

    /// Drops the tombstone of `vm`'s return once its desktop says it runs
    /// at home.
    pub(crate) fn forget_released(&self, vm: &str, desktop: &str) -> Result<(), ServerError> {
        match self.records.load(vm)? {
            Some(r) if r.state == ServerState::Released && r.desktop == desktop => {
                self.records.remove(vm)?;
                Ok(())
            }
            Some(r) => Err(ServerError::WrongState(format!(
                "VM {vm} is {} here (from {}), not released to this desktop",
                r.state, r.desktop
            ))),
            None => Ok(()),
        }
    }

    /// A VM whose migration's connection ended before its commit.
    pub(crate) async fn unfinished(self: Arc<Self>, vm: &str) {
        let Ok(slot) = self.guest(vm) else { return };
        let state = slot.lock().await.handover;
        match state {
            ServerState::Preparing => {
                tracing::warn!(vm, "agent left before handing the VM over; discarding");
                self.discard(vm).await;
            }
            ServerState::Loaded => {
                tracing::warn!(
                    vm,
                    "agent left before its commit; asking it until it answers"
                );
                tokio::spawn(self.clone().settle_loaded(vm.to_owned()));
            }
            _ => {}
        }
    }

    /// Asks `vm`'s desktop until its answer settles the loaded VM.
    pub(crate) async fn settle_loaded(self: Arc<Self>, vm: String) {
        let mut wait = Duration::from_millis(500);
        loop {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(ASK_EVERY_MAX);
            let Ok(slot) = self.guest(&vm) else { return };
            let (state, desktop, addr) = {
                let g = slot.lock().await;
                (g.handover, g.desktop.clone(), g.state_server.clone())
            };
            if !state.in_doubt() {
                // Settled meanwhile (the desktop's commit or abort arrived).
                return;
            }
            let answer = match self.ask_desktop(&vm, &desktop, &addr).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::info!(vm, "desktop not reachable to settle the handover: {e}");
                    None
                }
            };
            match state.settle(answer) {
                Settlement::AskAgain => continue,
                Settlement::To(_, ServerAction::Discard) => {
                    tracing::warn!(vm, ?answer, "the desktop kept the VM; discarding our copy");
                    self.discard(&vm).await;
                    return;
                }
                Settlement::To(_, ServerAction::Run) => {
                    match self.commit(&vm).await {
                        Ok(()) => {
                            tracing::warn!(vm, "the desktop had committed; the VM runs here");
                            self.first_checkpoint_soon(&vm);
                        }
                        Err(e) => tracing::error!(vm, "could not run the committed VM: {e}"),
                    }
                    return;
                }
                Settlement::To(_, ServerAction::None) => return,
            }
        }
    }

    /// Watches a guest's QEMU: one that dies unasked (a crash, a kill) takes
    /// the VM with it, and the server forgets it, so that its desktop,
    /// asking, hears `Unknown` and restarts it from its last consistent
    /// state. A guest on its way home is left to [`Server::send_home`],
    /// which needs only its saved state and replica.
    pub(crate) async fn watch_exit(self: Arc<Self>, vm: String, slot: crate::GuestSlot) {
        // Only a weak reference: the watcher must not keep the guest alive.
        let mut exit = slot.lock().await.qemu.exit_handle();
        let slot = Arc::downgrade(&slot);
        tokio::spawn(async move {
            let status = exit.wait().await;
            let Some(slot) = slot.upgrade() else { return };
            let current = self.guests.lock().expect("guests lock").get(&vm).cloned();
            let Some(current) = current.filter(|c| Arc::ptr_eq(c, &slot)) else {
                return; // discarded on purpose
            };
            drop(slot);
            if current.lock().await.handover == ServerState::Sending {
                return;
            }
            drop(current);
            tracing::error!(
                vm,
                ?status,
                "the VM's QEMU died; the VM is lost here and its desktop restarts it from its last consistent state"
            );
            self.discard(&vm).await;
        });
    }

    async fn ask_desktop(
        &self,
        vm: &str,
        desktop: &str,
        addr: &str,
    ) -> Result<Custody, ServerError> {
        let mut t = jettison_daemon::dial(&self.tls, addr, desktop, Role::Server, ASK_TIMEOUT)
            .await
            .map_err(|e| ServerError::Protocol(e.to_string()))?;
        match t
            .request(&Message::HandoverQuery { vm: vm.into() }, ASK_TIMEOUT)
            .await?
        {
            Message::HandoverState { custody, .. } => Ok(custody),
            other => Err(ServerError::Protocol(format!(
                "expected HandoverState, got {}",
                other.kind()
            ))),
        }
    }
}
