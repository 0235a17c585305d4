//! Settling what a handover left in doubt on the server's side: a VM
//! loaded whose desktop went silent before its commit is kept paused and
//! settled by asking the desktop ([`ServerState::settle`]), never by
//! guessing; and a guest whose VM died unasked is forgotten. Generic over
//! the [`Host`].

use std::sync::{Arc, Weak};

use jettison_handover::{ServerAction, ServerState, Settlement};

use crate::guests::{discard, Guest, Host};

/// A VM of `desktop` whose migration's connection ended before its commit
/// (if the name has meanwhile gone to another desktop's VM, that one is
/// left alone).
pub(crate) async fn unfinished<H: Host>(host: Arc<H>, vm: &str, desktop: &str) {
    let Ok(slot) = host.handovers().get_for(vm, desktop) else {
        return;
    };
    let state = slot.lock().await.handover;
    drop(slot);
    match state {
        ServerState::Preparing => {
            tracing::warn!(vm, "agent left before handing the VM over; discarding");
            discard(&*host, vm).await;
        }
        ServerState::Loaded => {
            tracing::warn!(
                vm,
                "agent left before its commit; asking it until it answers"
            );
            tokio::spawn(settle_loaded(host.clone(), vm.to_owned()));
        }
        _ => {}
    }
}

/// Asks `vm`'s desktop until its answer settles the loaded VM.
pub(crate) async fn settle_loaded<H: Host>(host: Arc<H>, vm: String) {
    let timeouts = host.timeouts();
    let mut wait = timeouts.ask_first;
    loop {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(timeouts.ask_max);
        let Ok(slot) = host.handovers().get(&vm) else {
            return;
        };
        let (state, desktop, addr) = {
            let g = slot.lock().await;
            (g.handover, g.desktop.clone(), g.state_server.clone())
        };
        drop(slot);
        if !state.in_doubt() {
            // Settled meanwhile (the desktop's commit or abort arrived).
            return;
        }
        let answer = match host.ask_desktop(&vm, &desktop, &addr).await {
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
                discard(&*host, &vm).await;
                return;
            }
            Settlement::To(_, ServerAction::Run) => {
                match crate::intake::commit(&*host, &vm, &desktop).await {
                    Ok(()) => tracing::warn!(vm, "the desktop had committed; the VM runs here"),
                    Err(e) => tracing::error!(vm, "could not run the committed VM: {e}"),
                }
                return;
            }
            Settlement::To(_, ServerAction::None) => return,
        }
    }
}

/// A guest's VM died unasked (a crash, a kill): it takes the VM with it,
/// and the server forgets it, so that its desktop, asking, hears `Unknown`
/// and restarts it from its last consistent state. A guest on its way home
/// is left to [`crate::home::send_home`], which needs only its saved state
/// and replica; one discarded on purpose meanwhile is left alone.
pub(crate) async fn guest_exited<H: Host>(
    host: &H,
    vm: &str,
    slot: Weak<tokio::sync::Mutex<Guest<H::Vm, H::Files>>>,
    status: &str,
) {
    let Some(slot) = slot.upgrade() else { return };
    if !host.handovers().is_current(vm, &slot) {
        return; // discarded on purpose
    }
    let state = slot.lock().await.handover;
    drop(slot);
    if state == ServerState::Sending {
        return;
    }
    tracing::error!(
        vm,
        %status,
        "the VM's QEMU died; the VM is lost here and its desktop restarts it from its last consistent state"
    );
    discard(host, vm).await;
}
