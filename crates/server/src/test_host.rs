//! A host for the server's handover procedures without root or QEMU:
//! `FakeVm`s on files kept in memory, records in a temporary directory, a
//! desktop whose answers to `HandoverQuery` the test scripts, and agents
//! on in-memory connections.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jettison_daemon::Peer;
use jettison_handover::ServerState;
use jettison_power_model::MacAddr;
use jettison_qemu::fake::FakeVm;
use jettison_wire::{
    Chunk, Custody, FileKind, MachineDesc, Message, Role, Transport, VmMemStats, PAGE_SIZE,
};
use tokio::io::DuplexStream;

use crate::admission::{Admission, Filesystem, Limits};
pub(crate) use crate::guests::Host;
use crate::guests::{Guest, GuestFiles, Handovers, Slot, Timeouts};
use crate::records::{Record, Records};
use crate::ServerError;
pub(crate) use jettison_qemu::VmControl;

/// The desktop every test connection comes from (its certificate's name).
pub(crate) const DESKTOP: &str = "desk-1";

/// A guest's files in memory: page `p` holds the byte `p`.
#[derive(Debug, Default)]
pub(crate) struct FakeFiles {
    pub(crate) dirty: Vec<u64>,
    pub(crate) dirty_disk: Option<Vec<u64>>,
    pub(crate) fail_flush: AtomicBool,
    pub(crate) fail_read: AtomicBool,
    pub(crate) flushes: AtomicUsize,
    /// Pages read from the replica so far.
    pub(crate) reads: AtomicUsize,
}

impl GuestFiles for FakeFiles {
    async fn flush(&self) -> Result<(), ServerError> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        if self.fail_flush.load(Ordering::SeqCst) {
            return Err(ServerError::Io(std::io::Error::other("fake fsync failure")));
        }
        Ok(())
    }

    fn dirty_pages(&self, kind: FileKind) -> Vec<u64> {
        match kind {
            FileKind::Memory => self.dirty.clone(),
            FileKind::Disk => self.dirty_disk.clone().unwrap_or_default(),
        }
    }

    fn stats(&self, kind: FileKind) -> Option<VmMemStats> {
        let stats = VmMemStats {
            dirty_pages: self.dirty_pages(kind).len() as u64,
            ..Default::default()
        };
        match kind {
            FileKind::Memory => Some(stats),
            FileKind::Disk => self.dirty_disk.as_ref().map(|_| stats),
        }
    }

    async fn read_pages(&self, _: FileKind, pages: Vec<u64>) -> Result<Vec<Chunk>, ServerError> {
        self.reads.fetch_add(pages.len(), Ordering::SeqCst);
        if self.fail_read.load(Ordering::SeqCst) {
            return Err(ServerError::Io(std::io::Error::other(
                "fake replica failure",
            )));
        }
        Ok(pages
            .into_iter()
            .map(|p| Chunk {
                offset: p * PAGE_SIZE,
                data: vec![p as u8; PAGE_SIZE as usize],
            })
            .collect())
    }
}

/// What the desktop's state server answers now (`None`: unreachable).
pub(crate) type Oracle = Arc<dyn Fn() -> Option<Custody> + Send + Sync>;

/// The fake host.
pub(crate) struct FakeHost {
    handovers: Handovers<FakeVm, FakeFiles>,
    /// The state directory (shared with the host's restarts).
    pub(crate) dir: Arc<tempfile::TempDir>,
    /// Killed: its tasks no longer act.
    dead: AtomicBool,
    /// Answers for the desktop instead of `answers`, if set.
    pub(crate) oracle: Mutex<Option<Oracle>>,
    /// The VM the next launch of a name gets (a fresh incoming one if none).
    pub(crate) next_vm: Mutex<HashMap<String, FakeVm>>,
    /// The files the next launch of a name gets (none dirty if none).
    pub(crate) next_files: Mutex<HashMap<String, FakeFiles>>,
    /// Launches fail.
    pub(crate) fail_launch: AtomicBool,
    /// The desktop's state server cannot be reached.
    pub(crate) state_server_down: AtomicBool,
    /// The state server addresses a prepare tried to reach, in order.
    pub(crate) reached: Mutex<Vec<String>>,
    /// Every VM launched, by name (clones share the fake).
    pub(crate) launched: Mutex<HashMap<String, FakeVm>>,
    /// What the host's filesystems report (free space, or an error).
    pub(crate) disks: Mutex<Result<Vec<Filesystem>, String>>,
    /// Names whose files were released, in order.
    pub(crate) released: Mutex<Vec<String>>,
    /// The desktop's next answers (`None`: unreachable; unreachable once
    /// they run out).
    pub(crate) answers: Mutex<VecDeque<Option<Custody>>>,
    /// How many times the desktop was asked.
    pub(crate) asked: AtomicUsize,
    /// Names whose working set was recorded.
    pub(crate) working_sets: Mutex<Vec<String>>,
    /// Short, but for the agent's `ReintegrateReady`: long enough for a
    /// busy machine (see [`FakeHost::impatient`]).
    pub(crate) timeouts: Mutex<Timeouts>,
    /// The server's LAN, for Wake-on-LAN targets ([`LAN`]).
    pub(crate) wol_networks: Vec<crate::lan::IpNet>,
    /// The sleep announcements taken, in order.
    pub(crate) sleeps: Mutex<Vec<(String, MacAddr, SocketAddr)>>,
}

/// The fake server's LAN.
pub(crate) const LAN: &str = "10.0.0.0/24";

impl std::fmt::Debug for FakeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHost")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl FakeHost {
    pub(crate) fn new() -> Arc<Self> {
        Self::on(Arc::new(tempfile::tempdir().unwrap()))
    }

    /// The server killed (its VMs die with it) and started again on the
    /// same state directory, as `Server::new` starts: the VMs lost with the
    /// previous process are forgotten, tombstones kept.
    pub(crate) fn restarted(&self) -> Arc<Self> {
        self.dead.store(true, Ordering::SeqCst);
        for vm in self.launched.lock().unwrap().values() {
            vm.kill();
        }
        let records = Records::open(&self.dir.path().join("handover")).unwrap();
        crate::sort_left_vms(
            &records,
            &self.dir.path().join("replicas"),
            &self.dir.path().join("checkpoints"),
        )
        .unwrap();
        let next = Self::on(self.dir.clone());
        *next.oracle.lock().unwrap() = self.oracle.lock().unwrap().clone();
        next
    }

    /// A fresh host enforcing `limits`.
    pub(crate) fn limited(limits: Limits) -> Arc<Self> {
        Self::with(Arc::new(tempfile::tempdir().unwrap()), limits)
    }

    fn on(dir: Arc<tempfile::TempDir>) -> Arc<Self> {
        Self::with(dir, Limits::default())
    }

    fn with(dir: Arc<tempfile::TempDir>, limits: Limits) -> Arc<Self> {
        let records = Records::open(&dir.path().join("handover")).unwrap();
        Arc::new(FakeHost {
            handovers: Handovers::new(records, Admission::new(limits)),
            disks: Mutex::new(Ok(vec![Filesystem {
                path: "/fake/replicas".into(),
                available: u64::MAX / 4,
                replicas: true,
            }])),
            dir,
            dead: AtomicBool::new(false),
            oracle: Mutex::new(None),
            next_vm: Mutex::default(),
            next_files: Mutex::default(),
            fail_launch: AtomicBool::new(false),
            state_server_down: AtomicBool::new(false),
            reached: Mutex::default(),
            launched: Mutex::default(),
            released: Mutex::default(),
            answers: Mutex::default(),
            asked: AtomicUsize::new(0),
            working_sets: Mutex::default(),
            timeouts: Mutex::new(Timeouts {
                agent: Duration::from_secs(10),
                done: Duration::from_millis(300),
                ask_first: Duration::from_millis(5),
                ask_max: Duration::from_millis(20),
            }),
            wol_networks: vec![LAN.parse().unwrap()],
            sleeps: Mutex::default(),
        })
    }

    /// Waits only 300 ms for the agent's `ReintegrateReady`.
    pub(crate) fn impatient(&self) {
        self.timeouts.lock().unwrap().agent = Duration::from_millis(300);
    }

    /// The VM launched for `vm`.
    pub(crate) fn vm(&self, vm: &str) -> FakeVm {
        self.launched.lock().unwrap()[vm].clone()
    }

    /// Whether `vm` runs here: recorded `Running` and its VM running.
    pub(crate) async fn runs(&self, vm: &str) -> bool {
        let launched = self.launched.lock().unwrap().get(vm).cloned();
        self.state(vm).await == Some(ServerState::Running) && launched.is_some_and(|v| v.runs())
    }

    /// `vm`'s record as it is on disk.
    pub(crate) fn record(&self, vm: &str) -> Option<ServerState> {
        let path = self.dir.path().join("handover").join(format!("{vm}.json"));
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("{e}"),
        };
        Some(serde_json::from_slice::<Record>(&bytes).unwrap().state)
    }

    /// Writes `vm`'s record as a previous process left it.
    pub(crate) fn write_record(&self, vm: &str, state: ServerState, desktop: &str) {
        let r = Record {
            state,
            desktop: desktop.into(),
            state_server: "127.0.0.1:1".into(),
            machine: None,
        };
        self.handovers.records.save(vm, &r).unwrap();
    }

    /// The state of `vm`'s guest in force (`None`: no guest).
    pub(crate) async fn state(&self, vm: &str) -> Option<ServerState> {
        let slot = self.handovers.get(vm).ok()?;
        let state = slot.lock().await.handover;
        Some(state)
    }

    pub(crate) fn answer(&self, answers: &[Option<Custody>]) {
        self.answers.lock().unwrap().extend(answers.iter().copied());
    }

    pub(crate) fn released(&self) -> Vec<String> {
        self.released.lock().unwrap().clone()
    }
}

impl Host for FakeHost {
    type Vm = FakeVm;
    type Files = FakeFiles;

    fn handovers(&self) -> &Handovers<FakeVm, FakeFiles> {
        &self.handovers
    }

    async fn launch(
        &self,
        vm: &str,
        machine: &MachineDesc,
        state_server: &str,
        desktop: &str,
    ) -> Result<Guest<FakeVm, FakeFiles>, ServerError> {
        if self.fail_launch.load(Ordering::SeqCst) {
            self.release_files(vm);
            return Err(ServerError::Io(std::io::Error::other(
                "fake launch failure",
            )));
        }
        let fake = self.next_vm.lock().unwrap().remove(vm);
        let fake = fake.unwrap_or_else(FakeVm::incoming);
        self.launched
            .lock()
            .unwrap()
            .insert(vm.into(), fake.clone());
        let files = self.next_files.lock().unwrap().remove(vm);
        Ok(Guest::preparing(
            fake,
            Arc::new(files.unwrap_or_default()),
            None,
            machine.memory_mib,
            desktop,
            state_server,
        ))
    }

    async fn reach_state_server(&self, _: &str, addr: &str) -> Result<(), String> {
        self.reached.lock().unwrap().push(addr.into());
        if self.state_server_down.load(Ordering::SeqCst) {
            return Err(format!("cannot connect to {addr}: Connection refused"));
        }
        Ok(())
    }

    fn release_files(&self, vm: &str) {
        self.released.lock().unwrap().push(vm.into());
    }

    fn filesystems(&self) -> std::io::Result<Vec<Filesystem>> {
        self.disks
            .lock()
            .unwrap()
            .clone()
            .map_err(std::io::Error::other)
    }

    async fn watch_exit(self: Arc<Self>, vm: String, slot: Slot<FakeVm, FakeFiles>) {
        let fake = slot.lock().await.vm.clone();
        let slot = Arc::downgrade(&slot);
        tokio::spawn(async move {
            while !fake.has_exited() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if self.dead.load(Ordering::SeqCst) {
                return; // died with the server
            }
            crate::settle::guest_exited(&*self, &vm, slot, "killed").await;
        });
    }

    async fn ask_desktop(&self, _: &str, _: &str, _: &str) -> Result<Custody, ServerError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let oracle = self.oracle.lock().unwrap().clone();
        let answer = match oracle {
            _ if self.dead.load(Ordering::SeqCst) => None,
            Some(oracle) => oracle(),
            None => self.answers.lock().unwrap().pop_front().flatten(),
        };
        match answer {
            Some(c) => Ok(c),
            None => Err(ServerError::Protocol("desktop unreachable".into())),
        }
    }

    async fn record_working_set(&self, vm: &str, _: &FakeFiles) {
        self.working_sets.lock().unwrap().push(vm.into());
    }

    fn desktop_talks(&self, _: &str) {}

    fn wol_networks(&self) -> Result<Vec<crate::lan::IpNet>, ServerError> {
        Ok(self.wol_networks.clone())
    }

    fn going_to_sleep(
        &self,
        desktop: &str,
        mac: MacAddr,
        wol_addr: SocketAddr,
    ) -> Result<(), ServerError> {
        self.sleeps
            .lock()
            .unwrap()
            .push((desktop.into(), mac, wol_addr));
        Ok(())
    }

    fn timeouts(&self) -> Timeouts {
        *self.timeouts.lock().unwrap()
    }
}

/// The server's side of a new agent connection to `host`, served until it
/// ends; the agent's side is the stream returned (no handshake yet).
pub(crate) fn serve(host: &Arc<FakeHost>) -> (DuplexStream, tokio::task::JoinHandle<()>) {
    serve_as(host, DESKTOP)
}

/// Like [`serve`], for an agent whose certificate names `desktop`.
pub(crate) fn serve_as(
    host: &Arc<FakeHost>,
    desktop: &str,
) -> (DuplexStream, tokio::task::JoinHandle<()>) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let host = host.clone();
    let desktop = desktop.to_owned();
    let server = tokio::spawn(async move {
        let mut t = Transport::new(b);
        let Ok(hello) = jettison_wire::handshake::accept(&mut t, &[Role::Agent], "srv").await
        else {
            return;
        };
        let peer = Peer {
            hello,
            addr: "test".into(),
            identity: Some(desktop),
        };
        crate::intake::serve_agent(host, peer, t).await;
    });
    (a, server)
}

/// An agent connected to `host` (handshake done, minor `minor`), and the
/// server's side of the connection.
pub(crate) async fn connect_minor(
    host: &Arc<FakeHost>,
    minor: u16,
) -> (Transport<DuplexStream>, tokio::task::JoinHandle<()>) {
    connect_with(host, minor, DESKTOP).await
}

/// An agent of `desktop` connected to `host` with the current protocol.
pub(crate) async fn connect_as(
    host: &Arc<FakeHost>,
    desktop: &str,
) -> (Transport<DuplexStream>, tokio::task::JoinHandle<()>) {
    connect_with(host, jettison_wire::PROTOCOL_MINOR, desktop).await
}

async fn connect_with(
    host: &Arc<FakeHost>,
    minor: u16,
    desktop: &str,
) -> (Transport<DuplexStream>, tokio::task::JoinHandle<()>) {
    let (a, server) = serve_as(host, desktop);
    let mut t = Transport::new(a);
    let hello = Message::Hello(jettison_wire::Hello {
        magic: jettison_wire::MAGIC,
        major: jettison_wire::PROTOCOL_MAJOR,
        minor,
        role: Role::Agent,
        host: desktop.into(),
    });
    t.send(&hello).await.unwrap();
    let welcome = t.recv().await.unwrap().unwrap();
    assert_eq!(welcome.kind(), "Welcome");
    (t, server)
}

/// An agent connected to `host` with the current protocol.
pub(crate) async fn connect(
    host: &Arc<FakeHost>,
) -> (Transport<DuplexStream>, tokio::task::JoinHandle<()>) {
    connect_minor(host, jettison_wire::PROTOCOL_MINOR).await
}

pub(crate) fn machine() -> MachineDesc {
    MachineDesc {
        memory_mib: 1,
        cpus: 1,
        kernel: None,
        initrd: None,
        append: None,
        nic_mac: None,
        disk_bytes: None,
    }
}

pub(crate) fn prepare(vm: &str) -> Message {
    Message::MigratePrepare {
        vm: vm.into(),
        machine: machine(),
        state_server: "127.0.0.1:1".into(),
    }
}

pub(crate) fn load(vm: &str) -> Message {
    Message::MigrateLoad {
        vm: vm.into(),
        device_state: b"desktop state".to_vec(),
    }
}

/// Sends `m` and returns the reply.
pub(crate) async fn ask(t: &mut Transport<DuplexStream>, m: Message) -> Message {
    t.send(&m).await.unwrap();
    t.recv_within(Duration::from_secs(5)).await.unwrap()
}

/// What the server answers to a `HandoverQuery` about `vm`.
pub(crate) async fn custody(t: &mut Transport<DuplexStream>, vm: &str) -> Custody {
    match ask(t, Message::HandoverQuery { vm: vm.into() }).await {
        Message::HandoverState { custody, .. } => custody,
        other => panic!("expected HandoverState, got {}", other.kind()),
    }
}

/// Waits until `cond` holds (or fails the test after 5 s).
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never happened: {what}");
}

/// Brings `vm` to `Running` on `host` through a connection that then ends.
pub(crate) async fn running(host: &Arc<FakeHost>, vm: &str) {
    let (mut t, server) = connect(host).await;
    assert_eq!(ask(&mut t, prepare(vm)).await.kind(), "Prepared");
    assert_eq!(ask(&mut t, load(vm)).await.kind(), "MigrateLoaded");
    let m = Message::MigrateCommit { vm: vm.into() };
    assert_eq!(ask(&mut t, m).await.kind(), "MigrateCommitted");
    drop(t);
    server.await.unwrap();
    assert!(host.vm(vm).runs());
}

/// The VM is quit, its files released and its record gone.
pub(crate) fn assert_forgotten(host: &FakeHost, vm: &str) {
    assert!(!host.handovers().contains(vm), "{vm} still has a guest");
    assert!(host.vm(vm).has_exited(), "{vm}'s VM still there");
    assert!(
        host.released().contains(&vm.to_string()),
        "{vm}'s files kept"
    );
    assert_eq!(host.record(vm), None, "{vm}'s record kept");
}
