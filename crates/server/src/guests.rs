//! The server's guests and their durable handover records, over the seam.
//! A guest's VM is any [`VmControl`] and its lazy files any [`GuestFiles`];
//! what the handover procedures (`intake`, `home`, `settle`) need of the
//! server around them is a [`Host`]. The real host runs QEMUs on its FUSE
//! files (`crate::host`); the unit tests host `FakeVm`s on files kept in
//! memory, with no root and no QEMU.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jettison_handover::{ServerState, TransitionError};
use jettison_power_model::MacAddr;
use jettison_qemu::VmControl;
use jettison_wire::{Chunk, Custody, FileKind, MachineDesc, VmMemStats};

use crate::admission::{Admission, Filesystem};
use crate::records::{Record, Records};
use crate::ServerError;

/// A guest's lazy files as the handover needs them: flushed, their dirty
/// pages listed and read, their counters.
pub(crate) trait GuestFiles: Send + Sync + 'static {
    /// Flushes the dirty pages of every file to the daemon (stop the guest
    /// first): memory, then disk.
    fn flush(&self) -> impl Future<Output = Result<(), ServerError>> + Send;
    /// The dirty pages of a file (none for a disk the VM does not have).
    fn dirty_pages(&self, kind: FileKind) -> Vec<u64>;
    /// The counters of a file (`None` for a disk the VM does not have).
    fn stats(&self, kind: FileKind) -> Option<VmMemStats>;
    /// Reads pages of a file from its replica.
    fn read_pages(
        &self,
        kind: FileKind,
        pages: Vec<u64>,
    ) -> impl Future<Output = Result<Vec<Chunk>, ServerError>> + Send;
}

/// The timeouts and backoffs of the server's side of the handover.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// For the agent's `ReintegrateReady`.
    pub(crate) agent: Duration,
    /// For the desktop's last word (`ReintegrateDone`).
    pub(crate) done: Duration,
    /// The first wait before asking about a loaded VM, doubled up to
    /// `ask_max`.
    pub(crate) ask_first: Duration,
    /// The longest wait between two questions.
    pub(crate) ask_max: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            agent: Duration::from_secs(300),
            done: Duration::from_secs(30),
            ask_first: Duration::from_millis(500),
            ask_max: Duration::from_secs(10),
        }
    }
}

/// What the handover procedures need of the server around them.
pub(crate) trait Host: Send + Sync + 'static {
    /// The guests' VMs.
    type Vm: VmControl + std::fmt::Debug + 'static;
    /// The guests' lazy files.
    type Files: GuestFiles + std::fmt::Debug;

    /// The guests and their records.
    fn handovers(&self) -> &Handovers<Self::Vm, Self::Files>;

    /// Makes `vm`'s lazy files and starts its VM waiting for a state, in
    /// [`ServerState::Preparing`] (not recorded yet). Cleans up after
    /// itself if it fails: removes what it made, never a file of the same
    /// name it did not make.
    fn launch(
        &self,
        vm: &str,
        machine: &MachineDesc,
        state_server: &str,
        desktop: &str,
    ) -> impl Future<Output = Result<Guest<Self::Vm, Self::Files>, ServerError>> + Send;

    /// Opens a connection to the desktop's state server at `addr` (the
    /// agent's `advertise`) as its fetches will, and closes it: `Err` with
    /// the reason if the server could not fetch the VM's memory there.
    fn reach_state_server(
        &self,
        desktop: &str,
        addr: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Removes `vm`'s lazy files and their replicas.
    fn release_files(&self, vm: &str);

    /// The filesystems of the replicas and of the state directory, with
    /// their free space now (for `crate::admission`).
    fn filesystems(&self) -> std::io::Result<Vec<Filesystem>>;

    /// Watches the VM of `slot`: once it dies unasked,
    /// [`crate::settle::guest_exited`].
    fn watch_exit(
        self: Arc<Self>,
        vm: String,
        slot: Slot<Self::Vm, Self::Files>,
    ) -> impl Future<Output = ()> + Send;

    /// Asks the desktop's state server (`addr`) what it holds of `vm`.
    fn ask_desktop(
        &self,
        vm: &str,
        desktop: &str,
        addr: &str,
    ) -> impl Future<Output = Result<Custody, ServerError>> + Send;

    /// Records the pages `vm` used in the period that ends (best effort).
    fn record_working_set(&self, vm: &str, files: &Self::Files) -> impl Future<Output = ()> + Send;

    /// A desktop talked to us (other than to say it goes to sleep): it is
    /// awake.
    fn desktop_talks(&self, desktop: &str);

    /// The networks a desktop's Wake-on-LAN target must lie in (see
    /// [`crate::lan`]).
    fn wol_networks(&self) -> Result<Vec<crate::lan::IpNet>, ServerError>;

    /// A desktop says it goes to sleep; magic packets for `mac` go to
    /// `wol_addr` (both checked by the caller, [`crate::lan::check_wol_target`]).
    fn going_to_sleep(
        &self,
        desktop: &str,
        mac: MacAddr,
        wol_addr: SocketAddr,
    ) -> Result<(), ServerError>;

    /// The timeouts in force.
    fn timeouts(&self) -> Timeouts;
}

/// A VM on this server.
#[derive(Debug)]
pub(crate) struct Guest<V, F> {
    /// Its VM (declared first: dropped before its files and tap).
    pub(crate) vm: V,
    /// Its lazy files.
    pub(crate) files: Arc<F>,
    /// The NIC's tap on this host, held so that it is removed when the guest
    /// is dropped, after the VM.
    pub(crate) _tap: Option<jettison_daemon::tap::Tap>,
    /// The user its QEMU runs as, held (after the VM: declared later) until
    /// the guest goes.
    pub(crate) _qemu_user: Option<crate::qemu_users::Lease>,
    /// Where its handover is (as its durable record says).
    pub(crate) handover: ServerState,
    /// Paused by the operator (dirty pages flushed).
    pub(crate) paused: bool,
    pub(crate) memory_mib: u64,
    pub(crate) desktop: String,
    /// The desktop's state server, as this server dials it.
    pub(crate) state_server: String,
    /// Set while the guest runs.
    pub(crate) running_since: Option<Instant>,
    /// Time run before `running_since` (pauses excluded).
    pub(crate) ran: Duration,
    /// Its virtual hardware, recorded so that a restarted server can run it
    /// again from a checkpoint.
    pub(crate) machine: Option<MachineDesc>,
    /// The device state it was loaded with, until its first checkpoint.
    pub(crate) loaded_state: Option<Vec<u8>>,
    /// When its last complete checkpoint paused it (Unix ms).
    pub(crate) last_checkpoint_ms: Option<u64>,
}

impl<V, F> Guest<V, F> {
    /// A guest that waits for its state.
    pub(crate) fn preparing(
        vm: V,
        files: Arc<F>,
        tap: Option<jettison_daemon::tap::Tap>,
        memory_mib: u64,
        desktop: &str,
        state_server: &str,
    ) -> Self {
        Guest {
            vm,
            files,
            _tap: tap,
            _qemu_user: None,
            handover: ServerState::Preparing,
            paused: false,
            memory_mib,
            desktop: desktop.into(),
            state_server: state_server.into(),
            running_since: None,
            ran: Duration::ZERO,
            machine: None,
            loaded_state: None,
            last_checkpoint_ms: None,
        }
    }

    /// The durable record of this guest in `state`.
    pub(crate) fn record(&self, state: ServerState) -> Record {
        Record {
            state,
            desktop: self.desktop.clone(),
            state_server: self.state_server.clone(),
            machine: self.machine.clone(),
        }
    }

    /// Records that the guest (re)started running.
    pub(crate) fn mark_running(&mut self) {
        self.running_since.get_or_insert_with(Instant::now);
    }

    /// Records that the guest stopped.
    pub(crate) fn mark_stopped(&mut self) {
        if let Some(since) = self.running_since.take() {
            self.ran += since.elapsed();
        }
    }

    /// How long the guest has run here, pauses excluded.
    pub(crate) fn run_time(&self) -> Duration {
        self.ran + self.running_since.map(|s| s.elapsed()).unwrap_or_default()
    }
}

/// A guest behind its lock: held only to look or to flip its state (and
/// to stop or resume its VM), never across a network wait.
pub(crate) type Slot<V, F> = Arc<tokio::sync::Mutex<Guest<V, F>>>;

/// The guests on this server, each with the desktop it belongs to (the
/// certificate name of the agent connection that brought it; it never
/// changes, so it is kept outside the guest's lock), and the names that
/// prepares under way have claimed.
#[derive(Debug)]
struct Table<V, F> {
    guests: HashMap<String, (String, Slot<V, F>)>,
    /// Names claimed by a prepare, with its desktop, until its guest is in
    /// (or the prepare failed).
    claimed: HashMap<String, String>,
    /// Names of guests being discarded, until their files are gone: a new
    /// prepare of the name waits for them (see [`Handovers::wait_closed`]).
    closing: std::collections::HashSet<String>,
}

/// The guests on this server and their durable records.
///
/// Ownership: every agent request that names a VM goes through
/// [`Handovers::get_for`], [`Handovers::custody_for`] or
/// [`Handovers::forget_released`] with the desktop of the connection; a VM
/// belongs to the desktop its guest says, else (tombstones, records a
/// previous process left) the one its durable record says. A request about
/// another desktop's VM is refused ([`ServerError::OtherDesktop`]) before
/// its guest is locked, so nothing happens to it; a `HandoverQuery` about
/// it is answered `Unknown` (this desktop's VM of that name is not here).
#[derive(Debug)]
pub(crate) struct Handovers<V, F> {
    table: Mutex<Table<V, F>>,
    /// Each VM's durable handover record.
    pub(crate) records: Records,
    /// What the VMs here take, and the limits (see `crate::admission`):
    /// a VM is entered before it is prepared and leaves with
    /// [`Handovers::take`].
    pub(crate) admission: Admission,
    /// The desktops and where their VMs run, for the dashboard.
    pub(crate) fleet: Arc<crate::fleet::Fleet>,
}

/// A VM name claimed by a prepare (see [`Handovers::claim`]); the claim
/// ends when this is dropped.
#[derive(Debug)]
pub(crate) struct Claim<'a, V, F> {
    handovers: &'a Handovers<V, F>,
    vm: String,
}

impl<V, F> Drop for Claim<'_, V, F> {
    fn drop(&mut self) {
        self.handovers.table().claimed.remove(&self.vm);
    }
}

/// A guest's name while it is being discarded (see [`Handovers::take_closing`]).
pub(crate) struct Closing<'a, V, F> {
    handovers: &'a Handovers<V, F>,
    vm: String,
}

impl<V, F> Drop for Closing<'_, V, F> {
    fn drop(&mut self) {
        self.handovers.table().closing.remove(&self.vm);
    }
}

impl<V, F> Handovers<V, F> {
    /// No guests yet; records kept in `records`.
    pub(crate) fn new(records: Records, admission: Admission) -> Self {
        Handovers {
            table: Mutex::new(Table {
                guests: HashMap::new(),
                claimed: HashMap::new(),
                closing: std::collections::HashSet::new(),
            }),
            records,
            admission,
            fleet: Arc::default(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table<V, F>> {
        self.table.lock().expect("guests lock")
    }

    /// `vm`'s guest, whoever it belongs to (the server's own paths and the
    /// operator's; an agent's request goes through [`Self::get_for`]).
    pub(crate) fn get(&self, vm: &str) -> Result<Slot<V, F>, ServerError> {
        self.table()
            .guests
            .get(vm)
            .map(|(_, slot)| slot.clone())
            .ok_or_else(|| ServerError::UnknownVm(vm.into()))
    }

    /// `vm`'s guest, for a request of `desktop`: refused if the VM belongs
    /// to another desktop (its guest's, or without one its record's).
    pub(crate) fn get_for(&self, vm: &str, desktop: &str) -> Result<Slot<V, F>, ServerError> {
        {
            let table = self.table();
            if let Some((owner, slot)) = table.guests.get(vm) {
                return if owner == desktop {
                    Ok(slot.clone())
                } else {
                    Err(ServerError::OtherDesktop(vm.into()))
                };
            }
            if table.claimed.get(vm).is_some_and(|d| d != desktop) {
                return Err(ServerError::OtherDesktop(vm.into()));
            }
        }
        match self.records.load(vm)? {
            Some(r) if r.desktop != desktop => Err(ServerError::OtherDesktop(vm.into())),
            _ => Err(ServerError::UnknownVm(vm.into())),
        }
    }

    /// Claims the name `vm` for a prepare of `desktop`, before anything of
    /// it is made: refused while a guest of that name is here or another
    /// prepare claims it (from any desktop). The claim ends when the
    /// returned guard goes (after [`Self::insert`], or on failure). The
    /// durable records are the caller's to check.
    pub(crate) fn claim(&self, vm: &str, desktop: &str) -> Result<Claim<'_, V, F>, ServerError> {
        let mut table = self.table();
        let holder = table
            .guests
            .get(vm)
            .map(|(d, _)| d)
            .or_else(|| table.claimed.get(vm));
        if table.closing.contains(vm) {
            return Err(ServerError::WrongState(format!(
                "VM {vm} is still being closed on this server; try again"
            )));
        }
        match holder {
            Some(d) if d != desktop => return Err(ServerError::NameTaken(vm.into())),
            Some(_) if table.guests.contains_key(vm) => {
                return Err(ServerError::WrongState(format!(
                    "VM {vm} is already on this server"
                )))
            }
            Some(_) => {
                return Err(ServerError::WrongState(format!(
                    "VM {vm} is being prepared on another connection"
                )))
            }
            None => {}
        }
        table.claimed.insert(vm.into(), desktop.into());
        Ok(Claim {
            handovers: self,
            vm: vm.into(),
        })
    }

    /// Whether `vm` has a guest here.
    #[cfg(test)]
    pub(crate) fn contains(&self, vm: &str) -> bool {
        self.table().guests.contains_key(vm)
    }

    /// Every guest, by name.
    pub(crate) fn slots(&self) -> Vec<(String, Slot<V, F>)> {
        self.table()
            .guests
            .iter()
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect()
    }

    /// Adds `vm`'s guest, which belongs to its desktop.
    pub(crate) fn insert(&self, vm: &str, guest: Guest<V, F>) -> Slot<V, F> {
        let desktop = guest.desktop.clone();
        let (placement, here) = crate::fleet::placement_of(guest.handover);
        self.fleet
            .vm(&desktop, vm, placement, here, crate::fleet::now_ms());
        let slot = Arc::new(tokio::sync::Mutex::new(guest));
        self.table()
            .guests
            .insert(vm.into(), (desktop, slot.clone()));
        slot
    }

    /// Takes `vm`'s guest out of the table (and out of the admission
    /// ledger).
    /// [`Self::take`], the name held as closing until the guard goes (after
    /// the guest's files are released).
    pub(crate) fn take_closing(&self, vm: &str) -> (Option<Slot<V, F>>, Closing<'_, V, F>) {
        self.table().closing.insert(vm.into());
        let guard = Closing {
            handovers: self,
            vm: vm.into(),
        };
        (self.take(vm), guard)
    }

    /// Waits (up to `limit`) until no guest named `vm` is being discarded:
    /// a VM sent home and brought again at once must find its old files gone.
    pub(crate) async fn wait_closed(&self, vm: &str, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.table().closing.contains(vm) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    pub(crate) fn take(&self, vm: &str) -> Option<Slot<V, F>> {
        let entry = self.table().guests.remove(vm);
        self.admission.release(vm);
        entry.map(|(desktop, slot)| {
            self.fleet
                .vm(&desktop, vm, "home", false, crate::fleet::now_ms());
            slot
        })
    }

    /// Whether `slot` is still `vm`'s guest (not discarded meanwhile).
    pub(crate) fn is_current(&self, vm: &str, slot: &Slot<V, F>) -> bool {
        self.table()
            .guests
            .get(vm)
            .is_some_and(|(_, c)| Arc::ptr_eq(c, slot))
    }

    /// Moves `vm`'s handover to `state`: recorded durably first, then in
    /// force.
    pub(crate) fn advance(
        &self,
        vm: &str,
        guest: &mut Guest<V, F>,
        step: impl FnOnce(ServerState) -> Result<ServerState, TransitionError>,
    ) -> Result<(), ServerError> {
        let next =
            step(guest.handover).map_err(|e| ServerError::WrongState(format!("VM {vm}: {e}")))?;
        self.records.save(vm, &guest.record(next))?;
        guest.handover = next;
        let (placement, here) = crate::fleet::placement_of(next);
        self.fleet
            .vm(&guest.desktop, vm, placement, here, crate::fleet::now_ms());
        jettison_daemon::fault::point(&format!("server:{next:?}"));
        Ok(())
    }

    /// What this server holds of `desktop`'s VM `vm`, for that desktop
    /// settling a handover: `Unknown` if the VM here of that name belongs
    /// to another desktop (this desktop's is not here).
    pub(crate) async fn custody_for(&self, vm: &str, desktop: &str) -> Custody {
        let entry = self.table().guests.get(vm).cloned();
        if entry.as_ref().is_some_and(|(owner, _)| owner != desktop) {
            return Custody::Unknown;
        }
        let slot = entry.map(|(_, slot)| slot);
        // A guest busy in a step (e.g. resuming, which may wait on pages the
        // desktop serves) is answered from its record, which is written
        // before a state is in force: never wait on it.
        let busy = slot.as_ref().is_some_and(|s| s.try_lock().is_err());
        match slot.filter(|_| !busy) {
            Some(slot) => slot.lock().await.handover.custody(),
            None => match self.records.load(vm) {
                Ok(Some(r)) if r.desktop != desktop => Custody::Unknown,
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
            Some(r) if r.desktop != desktop => Err(ServerError::OtherDesktop(vm.into())),
            Some(r) if r.state == ServerState::Released => {
                self.records.remove(vm)?;
                Ok(())
            }
            Some(r) => Err(ServerError::WrongState(format!(
                "VM {vm} is {} here, not released home",
                r.state
            ))),
            None => Ok(()),
        }
    }
}

/// Quits a VM, removes its files and forgets it (its record too, unless
/// it is a tombstone of a return).
pub(crate) async fn discard<H: Host>(host: &H, vm: &str) {
    // Its name stays taken until its files are gone.
    let (slot, _closing) = host.handovers().take_closing(vm);
    let mut released = false;
    if let Some(slot) = slot {
        let guest = slot.lock().await;
        released = guest.handover == ServerState::Released;
        let _ = guest.vm.stop().await;
        drop(guest);
        if let Ok(guest) = Arc::try_unwrap(slot).map(|m| m.into_inner()) {
            let _ = guest.vm.quit().await;
        }
    }
    host.release_files(vm);
    if !released {
        if let Err(e) = host.handovers().records.remove(vm) {
            tracing::warn!(vm, "removing the handover record: {e}");
        }
    }
}
