//! Agent connections: taking a VM in (prepare, load the device state into a
//! paused guest, run it on the desktop's commit, or drop it on its abort),
//! answering handover queries, and dispatching reintegration requests.
//! Generic over the [`Host`] (and so over the VM's [`VmControl`]) and over
//! the connection's stream: the unit tests drive it with `FakeVm`s over an
//! in-memory connection.

use std::sync::Arc;
use std::time::Instant;

use jettison_daemon::{next_request, Peer};
use jettison_handover::ServerState;
use jettison_qemu::VmControl;
use jettison_wire::{
    ErrorCode, MachineDesc, Message, Transport, HANDOVER_MINOR, MACHINE_MINOR, PROTOCOL_MAJOR,
};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::guests::{discard, Host};
use crate::ServerError;

/// Serves one agent connection until it ends; then settles the VMs whose
/// migration it left unfinished (one never loaded is dropped; one loaded is
/// in doubt until the desktop says).
pub(crate) async fn serve_agent<H: Host, S: AsyncRead + AsyncWrite + Unpin + Send>(
    host: Arc<H>,
    peer: Peer,
    mut t: Transport<S>,
) {
    let mut prepared: Vec<String> = Vec::new();
    let minor = t.minor();
    // The desktop is who its certificate says, not what its Hello claims.
    let desktop = peer.identity.clone().unwrap_or_default();
    while let Some(req) = next_request(&mut t, &peer).await {
        if !matches!(req, Message::GoingToSleep { .. }) {
            // A desktop that talks is awake.
            host.desktop_talks(&desktop);
        }
        if let Some(reply) = version_gate(&req, minor) {
            if t.send(&reply).await.is_err() {
                break;
            }
            continue;
        }
        let reply = match req {
            Message::MigratePrepare {
                vm,
                machine,
                state_server,
            } => {
                let r = prepare(&*host, &vm, &machine, &state_server, &desktop).await;
                if r.is_ok() {
                    prepared.push(vm.clone());
                    if let Ok(slot) = host.handovers().get_for(&vm, &desktop) {
                        host.clone().watch_exit(vm.clone(), slot).await;
                    }
                }
                r.map(|()| Message::Prepared { vm })
            }
            Message::MigrateLoad { vm, device_state } => load(&*host, &vm, &desktop, &device_state)
                .await
                .map(|restore_ms| Message::MigrateLoaded { vm, restore_ms }),
            Message::MigrateCommit { vm } => {
                let r = commit(&*host, &vm, &desktop).await;
                if r.is_ok() {
                    prepared.retain(|p| p != &vm);
                }
                r.map(|()| Message::MigrateCommitted { vm })
            }
            Message::ReintegrateDone { vm } => {
                // The desktop runs the VM at home: the tombstone goes.
                host.handovers()
                    .forget_released(&vm, &desktop)
                    .map(|()| Message::OpOk)
            }
            Message::MigrateAbort { vm, reason } => {
                prepared.retain(|p| p != &vm);
                abort(&*host, &vm, &desktop, &reason)
                    .await
                    .map(|()| Message::OpOk)
            }
            Message::HandoverQuery { vm } => Ok(Message::HandoverState {
                custody: host.handovers().custody_for(&vm, &desktop).await,
                vm,
            }),
            Message::MigrateIn { .. } => Err(ServerError::NotAllowed(
                "MigrateIn (protocol 1.0, no commit step; use MigrateLoad)",
            )),
            Message::GoingToSleep { mac, wol_addr } => {
                going_to_sleep(&*host, &desktop, &mac, &wol_addr).map(|()| Message::OpOk)
            }
            Message::Reintegrate { vm } => {
                // Streams its own replies; the connection ends with it.
                if let Err(e) = crate::home::send_home(&*host, &vm, &desktop, &mut t).await {
                    tracing::error!(vm = %vm, "reintegration failed: {e}");
                    let _ = t.send(&Message::error(e.code(), e.to_string())).await;
                }
                break;
            }
            other => Err(ServerError::NotAllowed(other.kind())),
        };
        let reply = reply.unwrap_or_else(|e| {
            tracing::warn!(peer = %peer.addr, "request failed: {e}");
            Message::error(e.code(), e.to_string())
        });
        if jettison_daemon::fault::drops(reply.kind()) || t.send(&reply).await.is_err() {
            break;
        }
    }
    for vm in prepared {
        crate::settle::unfinished(host.clone(), &vm, &desktop).await;
    }
}

/// A desktop announces its sleep: its MAC and Wake-on-LAN target are
/// checked (a unicast MAC; an address on this server's LAN) before the
/// server takes them; a refused announcement sends nothing.
fn going_to_sleep<H: Host>(
    host: &H,
    desktop: &str,
    mac: &str,
    wol_addr: &str,
) -> Result<(), ServerError> {
    let networks = host.wol_networks()?;
    let (mac, addr) = crate::lan::check_wol_target(mac, wol_addr, &networks).map_err(|e| {
        tracing::warn!(desktop, "sleep announcement refused: {e}");
        ServerError::WolTarget(e)
    })?;
    host.going_to_sleep(desktop, mac, addr)
}

/// The requests of a handover, which need its commit step on both sides.
fn needs_handover_minor(req: &Message) -> bool {
    matches!(
        req,
        Message::MigratePrepare { .. }
            | Message::MigratePrepareV1 { .. }
            | Message::Reintegrate { .. }
    )
}

/// The refusal of a request this server no longer serves, or that needs a
/// newer minor than the connection's: a handover without the commit step
/// (below minor 1), and a prepare without the typed machine description
/// (`MigratePrepareV1`, or `MigratePrepare` below minor 2).
fn version_gate(req: &Message, minor: u16) -> Option<Message> {
    let why = if needs_handover_minor(req) && minor < HANDOVER_MINOR {
        format!(
            "this server needs protocol {PROTOCOL_MAJOR}.{HANDOVER_MINOR} or later for a \
             handover (it has a commit step); the agent speaks {PROTOCOL_MAJOR}.{minor}: \
             upgrade jettison-agent"
        )
    } else if matches!(req, Message::MigratePrepareV1 { .. })
        || (matches!(req, Message::MigratePrepare { .. }) && minor < MACHINE_MINOR)
    {
        format!(
            "this server takes a VM only with the typed machine description of protocol \
             {PROTOCOL_MAJOR}.{MACHINE_MINOR} (no QEMU arguments, boot files by digest); the \
             agent sent {} on a {PROTOCOL_MAJOR}.{minor} connection: upgrade jettison-agent",
            req.kind()
        )
    } else {
        return None;
    };
    Some(Message::error(ErrorCode::VersionMismatch, why))
}

/// How long a prepare waits for a guest of the same name still being
/// discarded (its QEMU quitting, its files going).
const CLOSING_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Prepares to take `vm` from `desktop`: its files and a VM waiting for
/// the state, recorded `Preparing`.
pub(crate) async fn prepare<H: Host>(
    host: &H,
    vm: &str,
    machine: &MachineDesc,
    state_server: &str,
    desktop: &str,
) -> Result<(), ServerError> {
    if !jettison_wire::valid_vm_name(vm) {
        return Err(ServerError::WrongState(format!("invalid VM name {vm:?}")));
    }
    let handovers = host.handovers();
    // The name is claimed before anything of the VM is made, so that no
    // other prepare (of any desktop) makes or removes files of that name.
    handovers.wait_closed(vm, CLOSING_WAIT).await;
    let _claim = handovers.claim(vm, desktop)?;
    // A tombstone of the VM's last return goes once its desktop brings
    // it again.
    if let Some(old) = handovers.records.load(vm)? {
        if old.desktop != desktop {
            return Err(ServerError::NameTaken(vm.into()));
        }
        if old.state != ServerState::Released {
            return Err(ServerError::WrongState(format!(
                "VM {vm} has a record here ({}); settle it first (see docs/runbook.md)",
                old.state
            )));
        }
    }
    // Within the limits, beside the VMs here, before anything is made.
    let ticket = crate::admission::admit(host, vm, machine)?;
    // Its memory comes from there: a desktop that advertised an address
    // this server cannot reach is refused now, not left with a guest that
    // hangs on its first page fault.
    if let Err(reason) = host.reach_state_server(desktop, state_server).await {
        tracing::warn!(
            vm,
            desktop,
            state_server,
            "prepare refused: state server unreachable: {reason}"
        );
        return Err(ServerError::StateServerUnreachable {
            addr: state_server.into(),
            reason,
        });
    }
    let guest = host.launch(vm, machine, state_server, desktop).await?;
    if let Err(e) = handovers
        .records
        .save(vm, &guest.record(ServerState::Preparing))
    {
        drop(guest);
        host.release_files(vm);
        return Err(e.into());
    }
    jettison_daemon::fault::point("server:Preparing");
    handovers.insert(vm, guest);
    ticket.keep();
    tracing::info!(vm, desktop, "prepared: QEMU waits for the device state");
    Ok(())
}

/// Loads the device state into the paused guest: in doubt until the
/// desktop commits. A state that does not load drops the guest.
pub(crate) async fn load<H: Host>(
    host: &H,
    vm: &str,
    desktop: &str,
    device_state: &[u8],
) -> Result<f64, ServerError> {
    let slot = host.handovers().get_for(vm, desktop)?;
    let mut guest = slot.lock().await;
    if guest.handover != ServerState::Preparing {
        return Err(ServerError::WrongState(format!(
            "VM {vm} is not waiting for its state ({})",
            guest.handover
        )));
    }
    let started = Instant::now();
    if let Err(e) = guest.vm.load_state(device_state).await {
        drop(guest);
        // The last reference goes to `discard`, which quits the VM.
        drop(slot);
        discard(host, vm).await;
        return Err(e.into());
    }
    host.handovers()
        .advance(vm, &mut guest, ServerState::loaded)?;
    // Its first checkpoint once it runs here (see `crate::checkpoint`).
    guest.loaded_state = Some(device_state.to_vec());
    let restore_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        vm,
        restore_ms,
        state_bytes = device_state.len(),
        "state loaded; waiting for the desktop's commit"
    );
    Ok(restore_ms)
}

/// The desktop committed: the guest runs here.
pub(crate) async fn commit<H: Host>(host: &H, vm: &str, desktop: &str) -> Result<(), ServerError> {
    let slot = host.handovers().get_for(vm, desktop)?;
    let mut guest = slot.lock().await;
    if guest.handover == ServerState::Running {
        return Ok(());
    }
    host.handovers()
        .advance(vm, &mut guest, ServerState::commit)?;
    guest.vm.cont().await?;
    guest.mark_running();
    tracing::info!(vm, "committed: the VM runs here");
    Ok(())
}

/// The desktop gave the migration up before its commit.
pub(crate) async fn abort<H: Host>(
    host: &H,
    vm: &str,
    desktop: &str,
    reason: &str,
) -> Result<(), ServerError> {
    let state = host.handovers().get_for(vm, desktop)?.lock().await.handover;
    if !state.abortable() {
        return Err(ServerError::WrongState(format!(
            "VM {vm} is {state}: its migration can no longer be given up"
        )));
    }
    tracing::warn!(vm, "the desktop gave the migration up: {reason}");
    discard(host, vm).await;
    Ok(())
}

/// Name of a VM's disk in the lazy filesystem (file `<vm>.disk.mem`,
/// replica `<vm>.disk.replica`). The `.` is outside the VM-name alphabet
/// ([`jettison_wire::valid_vm_name`]), so a VM's disk can never be named
/// as another VM's memory or disk.
pub(crate) fn disk_name(vm: &str) -> String {
    format!("{vm}.disk")
}
