//! The emulated power backend for test hosts.
//!
//! "Asleep" is a frozen freezer cgroup ([`crate::freezer`]): after the
//! profile's suspend latency the group is frozen (and the backend waits
//! until it reads `FROZEN`). A power thread, kept **outside** the group,
//! plays the WoL-armed NIC: it receives real magic packets over UDP, checks
//! the MAC, waits the profile's resume latency, thaws the group (waiting for
//! `THAWED`) and records the wake. A magic packet wakes for
//! [`WakeReason::PageMiss`]: in Jettison only the consolidation server sends
//! them, when it needs a page. Every change is recorded on a [`Timeline`]
//! whose clock starts when the backend starts. After a page-miss wake the
//! host is Idle; after a user return, Active.
//!
//! Selective resume ([`EmulatedConfig::selective_resume`]): a magic packet
//! resumes only the devices needed to serve pages, so the host thaws after
//! [`PowerProfile::service_resume`]'s latency; the user's return while it is
//! up after such a wake resumes the rest (the full latency minus the
//! service latency). A wake for the user is always a full resume.
//!
//! Which processes sleep: [`Emulated::add_pid`] moves a process (all its
//! threads) into the group; processes it forks later follow, its existing
//! children do not. A desktop daemon adds its own pid and each QEMU child
//! it started. When a process adds itself, the power thread is moved back
//! out of the group, so a frozen daemon can still be woken. The power thread
//! takes no lock that frozen threads could hold (state in an atomic,
//! commands and timeline snapshots over channels), but its `tracing` output
//! goes through the process's log writer: with a self-freezing daemon, log
//! to something that frozen threads cannot be holding mid-write.
//!
//! Dropping the backend stops the power thread, thaws the group, moves its
//! tasks back to the root group and removes it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jettison_power_model::profile::PowerProfile;
use jettison_power_model::timeline::{HostState, Placement, Timeline, WakeReason};
use jettison_power_model::wol::MacAddr;
use tokio::sync::{mpsc, oneshot};

use crate::backend::{BoxFuture, PowerBackend};
use crate::freezer::{FreezerGroup, FREEZER_ROOT};
use crate::PowerError;

mod power_thread;

use power_thread::{Command, Shared};

/// How to set up an emulated host.
#[derive(Clone, Debug)]
pub struct EmulatedConfig {
    /// Unique name: the group is `/sys/fs/cgroup/freezer/jettison-<name>`.
    pub name: String,
    /// The host NIC's MAC, which magic packets must carry.
    pub mac: MacAddr,
    /// Where the "NIC" listens for magic packets (port 0: any free port).
    pub wol_addr: SocketAddr,
    /// Transition latencies come from here.
    pub profile: PowerProfile,
    /// How long freezing or thawing may take before it counts as failed.
    pub freeze_timeout: Duration,
    /// The state the host starts in (Active or Idle).
    pub initial: HostState,
    /// Where the emulated keyboard listens (UDP): any datagram means the
    /// user is back, which wakes the host ([`WakeReason::UserReturn`]).
    pub user_addr: Option<SocketAddr>,
    /// Whether a wake by magic packet (page miss) resumes only the service
    /// devices (CPU, memory, NIC); see the module documentation.
    pub selective_resume: bool,
}

impl EmulatedConfig {
    /// A configuration with the default profile, a 10 s freeze timeout, an
    /// Idle start and no selective resume.
    pub fn new(name: impl Into<String>, mac: MacAddr, wol_addr: SocketAddr) -> Self {
        Self {
            name: name.into(),
            mac,
            wol_addr,
            profile: PowerProfile::default(),
            freeze_timeout: Duration::from_secs(10),
            initial: HostState::Idle,
            user_addr: None,
            selective_resume: false,
        }
    }
}

/// The emulated power backend (see the module documentation).
#[derive(Debug)]
pub struct Emulated {
    group: PathBuf,
    wol_addr: SocketAddr,
    power_tid: i32,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    snapshots: Mutex<(std_mpsc::Receiver<Timeline>, Timeline)>,
    thread: Option<JoinHandle<()>>,
}

impl Emulated {
    /// Creates the freezer group, binds the WoL listener and starts the
    /// power thread. Needs root.
    pub fn start(config: EmulatedConfig) -> Result<Self, PowerError> {
        if !config.initial.is_awake() {
            return Err(PowerError::Invalid("an emulated host starts awake".into()));
        }
        let group = FreezerGroup::create(&config.name)?;
        let path = group.path().to_owned();
        let shared = Arc::new(Shared {
            state: AtomicU8::new(config.initial.code()),
            epoch: Instant::now(),
            user_returned: std::sync::atomic::AtomicBool::new(false),
        });
        let first = Timeline::starting(0, config.initial);
        let initial = first.clone();
        let (snap_tx, snap_rx) = std_mpsc::channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("power-{}", config.name))
            .spawn(move || {
                power_thread::run(
                    config,
                    group,
                    thread_shared,
                    initial,
                    snap_tx,
                    cmd_rx,
                    ready_tx,
                )
            })
            .map_err(PowerError::io("starting the power thread"))?;
        let (power_tid, wol_addr) = match ready_rx.recv() {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(PowerError::Stopped);
            }
        };
        Ok(Self {
            group: path,
            wol_addr,
            power_tid,
            shared,
            commands: cmd_tx,
            snapshots: Mutex::new((snap_rx, first)),
            thread: Some(thread),
        })
    }

    /// Moves process `pid` (all its threads) into the group; see the module
    /// documentation for children. Adding our own process keeps the power
    /// thread outside.
    pub fn add_pid(&self, pid: u32) -> Result<(), PowerError> {
        std::fs::write(self.group.join("cgroup.procs"), pid.to_string()).map_err(
            PowerError::io(format!("adding {pid} to {}", self.group.display())),
        )?;
        if pid == std::process::id() {
            std::fs::write(
                Path::new(FREEZER_ROOT).join("tasks"),
                self.power_tid.to_string(),
            )
            .map_err(PowerError::io("keeping the power thread out of the group"))?;
        }
        Ok(())
    }

    /// The freezer group's directory.
    pub fn group_path(&self) -> &Path {
        &self.group
    }

    /// Whether the user came back (keyboard input) since the last call.
    pub fn take_user_return(&self) -> bool {
        self.shared
            .user_returned
            .swap(false, std::sync::atomic::Ordering::AcqRel)
    }

    /// Where the emulated NIC listens for magic packets.
    pub fn wol_addr(&self) -> SocketAddr {
        self.wol_addr
    }

    /// The kernel's view: the content of `freezer.state`, trimmed.
    pub fn freezer_state(&self) -> Result<String, PowerError> {
        let p = self.group.join("freezer.state");
        let s = std::fs::read_to_string(&p)
            .map_err(PowerError::io(format!("reading {}", p.display())))?;
        Ok(s.trim().to_owned())
    }

    /// Waits (polling) until the host is in `state`.
    pub async fn wait_for(&self, state: HostState, timeout: Duration) -> Result<(), PowerError> {
        let deadline = Instant::now() + timeout;
        while self.state() != state {
            if Instant::now() >= deadline {
                return Err(PowerError::Invalid(format!(
                    "still {:?} after {timeout:?}, wanted {state:?}",
                    self.state()
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    async fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), PowerError>>) -> Command,
    ) -> Result<(), PowerError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| PowerError::Stopped)?;
        rx.await.map_err(|_| PowerError::Stopped)?
    }
}

impl PowerBackend for Emulated {
    fn suspend(&self) -> BoxFuture<'_, Result<(), PowerError>> {
        Box::pin(self.ask(Command::Suspend))
    }

    fn resume(&self, reason: WakeReason) -> BoxFuture<'_, Result<(), PowerError>> {
        Box::pin(self.ask(move |tx| Command::Resume(reason, tx)))
    }

    fn state(&self) -> HostState {
        HostState::from_code(self.shared.state.load(Ordering::Acquire)).expect("valid state code")
    }

    fn set_idle(&self, idle: bool) -> Result<(), PowerError> {
        self.commands
            .send(Command::Idle(idle))
            .map_err(|_| PowerError::Stopped)
    }

    fn record_placement(&self, vm: &str, placement: Placement) -> Result<(), PowerError> {
        self.commands
            .send(Command::Placement(
                vm.to_owned(),
                placement,
                self.shared.now_ms(),
            ))
            .map_err(|_| PowerError::Stopped)
    }

    fn timeline(&self) -> Timeline {
        let mut guard = self.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        let (rx, latest) = &mut *guard;
        while let Ok(t) = rx.try_recv() {
            *latest = t;
        }
        latest.clone()
    }

    fn now_ms(&self) -> u64 {
        self.shared.now_ms()
    }
}

impl Drop for Emulated {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
