//! The consolidation server: takes idle desktops' VMs with only their CPU and
//! device state, runs them on a lazy memory file whose pages come from the
//! desktop on demand, and sends them home with the pages they wrote.

pub mod admission;
#[cfg(test)]
mod admission_intake_tests;
pub mod check;
mod checkpoint;
pub mod config;
mod control;
mod dashboard;
pub mod dashboard_html;
pub mod fetch_client;
pub mod fleet;
mod guests;
mod home;
#[cfg(test)]
mod home_tests;
mod host;
mod intake;
#[cfg(test)]
mod intake_tests;
pub mod lan;
#[cfg(test)]
mod matrix_tests;
mod metrics;
#[cfg(test)]
mod ownership_tests;
mod pull;
mod qemu_users;
pub mod records;
mod settle;
#[cfg(test)]
mod test_host;
mod tls_reload;
pub mod waker;
pub mod working_set;

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jettison_daemon::{bind_control, serve_tls, serve_unix, ConnectionHandler, Peer};
use jettison_handover::ServerState;
use jettison_lazymem::{LazyMemMount, MountOptions};
use jettison_qemu::Qemu;
use jettison_wire::{ErrorCode, Role};

pub use config::ServerConfig;

/// What can go wrong on the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No such consolidated VM.
    #[error("no VM named {0:?} on this server")]
    UnknownVm(String),
    /// The VM is not in a state where the request makes sense.
    #[error("{0}")]
    WrongState(String),
    /// Request not allowed from this peer.
    #[error("{0} is not allowed here")]
    NotAllowed(&'static str),
    /// A request about a VM that belongs to another desktop (nothing was
    /// done to it).
    #[error(
        "VM {0:?} belongs to another desktop: a desktop may act only on the VMs it brought \
         to this server"
    )]
    OtherDesktop(String),
    /// A prepare for a name another desktop's VM holds on this server.
    #[error(
        "the name {0:?} is taken on this server by another desktop's VM: VM names must be \
         unique among the desktops of a server; rename this desktop's VM"
    )]
    NameTaken(String),
    /// A prepare whose desktop's state server cannot be reached at the
    /// address its agent advertised (nothing was made).
    #[error(
        "refused: this server cannot reach the desktop's state server at {addr} ({reason}); it \
         would fetch the VM's memory from there, and the guest would hang on its first page \
         fault: set `advertise` in the agent's configuration to an address of the desktop this \
         server reaches, and check the firewall"
    )]
    StateServerUnreachable {
        /// The advertised address.
        addr: String,
        /// Why the connection failed.
        reason: String,
    },
    /// A sleep announcement whose Wake-on-LAN target or MAC is refused
    /// (nothing is sent there).
    #[error("GoingToSleep refused: {0}")]
    WolTarget(String),
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection failed.
    #[error(transparent)]
    Wire(#[from] jettison_wire::WireError),
    /// QEMU failed.
    #[error(transparent)]
    Qemu(#[from] jettison_qemu::QemuError),
    /// The lazy memory filesystem failed.
    #[error(transparent)]
    LazyMem(#[from] jettison_lazymem::LazyMemError),
    /// A boot file problem.
    #[error(transparent)]
    Machine(#[from] jettison_daemon::MachineError),
    /// The VM is not admitted here (a limit, or no room).
    #[error("refused: {0}")]
    Refused(#[from] admission::Refusal),
    /// The VM's tap could not be set up.
    #[error(transparent)]
    Tap(#[from] jettison_daemon::tap::TapError),
    /// TLS material could not be loaded.
    #[error(transparent)]
    Tls(#[from] jettison_tls::TlsError),
    /// The metrics listener could not be opened.
    #[error(transparent)]
    Metrics(#[from] jettison_metrics::MetricsError),
    /// A local file operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration fails its checks (see [`check`]).
    #[error(transparent)]
    Config(#[from] check::Problems),
}

impl ServerError {
    /// The wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServerError::UnknownVm(_) => ErrorCode::UnknownVm,
            ServerError::WrongState(_) => ErrorCode::WrongState,
            ServerError::NotAllowed(_)
            | ServerError::OtherDesktop(_)
            | ServerError::NameTaken(_)
            | ServerError::WolTarget(_) => ErrorCode::NotAllowed,
            ServerError::Refused(admission::Refusal::Busy(_)) => ErrorCode::WrongState,
            _ => ErrorCode::Failed,
        }
    }
}

type GuestSlot = guests::Slot<Qemu, host::LazyFiles>;

/// The running server.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    /// The file a reload (SIGHUP) re-reads the `[tls]` settings from.
    config_file: Option<PathBuf>,
    pub(crate) tls: Arc<jettison_tls::TlsContext>,
    mount: LazyMemMount,
    /// The boot files of `image_dirs`, by digest.
    images: Arc<jettison_daemon::BootIndex>,
    /// The guests and their durable handover records.
    pub(crate) handovers: guests::Handovers<Qemu, host::LazyFiles>,
    /// Power state of each desktop that brought a VM, by certificate name.
    desktops: Mutex<HashMap<String, Arc<waker::DesktopWaker>>>,
    /// The pages each VM used in its last periods here.
    pub(crate) working_sets: Arc<working_set::WorkingSets>,
    /// The users confined QEMUs run as (`None`: `confine_qemu = false`).
    pub(crate) qemu_users: Option<Arc<qemu_users::QemuUsers>>,
    /// VMs lost with the previous server process (their QEMUs, if still
    /// there, are quit once the server runs).
    lost: Mutex<Vec<String>>,
    /// VMs the previous server process left running, to resume from their
    /// checkpoints once the server runs.
    to_restore: Mutex<Vec<ToRestore>>,
    /// Each VM's checkpoint log (locked for the whole of one checkpoint).
    checkpoint_logs: Mutex<HashMap<String, Arc<tokio::sync::Mutex<checkpoint::Checkpoints>>>>,
    /// Desktops that announced sleep, whose VMs are checkpointed next.
    sleepers: Mutex<HashSet<String>>,
    /// How often each VM was resumed from its checkpoint after its QEMU
    /// died.
    recoveries: Mutex<HashMap<String, u32>>,
    /// VMs whose QEMU died, to resume from their checkpoints.
    recover: tokio::sync::mpsc::UnboundedSender<(String, records::Record)>,
    to_recover: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<(String, records::Record)>>>,
    /// The Prometheus metrics the memory filesystem feeds.
    metrics: jettison_metrics::ServerMetrics,
}

impl Server {
    /// Mounts the lazy memory filesystem (cleaning a stale mount left by a
    /// killed predecessor), prepares the directories and loads the recorded
    /// working sets.
    pub fn new(mut config: ServerConfig) -> Result<Self, ServerError> {
        // The same checks as `jettison-server --check-config`, before acting.
        let check::Checked { tls } = check::check(&config)?;
        config.choose_accel();
        for dir in [&config.replica_dir, &config.run_dir] {
            std::fs::create_dir_all(dir)?;
        }
        // Confined QEMUs pass through it to their own directories in it.
        std::fs::set_permissions(&config.run_dir, std::fs::Permissions::from_mode(0o711))?;
        let qemu_users = config.confine_qemu.then(|| {
            let gid = match config.accel {
                jettison_qemu::Accel::Kvm => qemu_users::kvm_gid(),
                jettison_qemu::Accel::Tcg => None,
            };
            qemu_users::QemuUsers::new(
                config.qemu_first_uid,
                u32::try_from(config.limits.max_vms).unwrap_or(u32::MAX),
                gid,
                true,
            )
        });
        let working_sets = Arc::new(working_set::WorkingSets::load(
            &config.state_dir.join("working-sets"),
            config.keep_working_sets,
        )?);
        let records = records::Records::open(&config.state_dir.join("handover"))?;
        let (lost, to_restore) = sort_left_vms(
            &records,
            &config.replica_dir,
            &config.state_dir.join("checkpoints"),
        )?;
        let opts = MountOptions {
            max_readahead: config.max_readahead,
            prefetch: config.prefetch,
            // A full disk refuses new VMs, never fails a running one.
            reserve_replicas: true,
        };
        let images = Arc::new(jettison_daemon::BootIndex::new(
            config.image_dirs.clone(),
            config.max_boot_file_mib.saturating_mul(1 << 20),
        ));
        let mut limits = config.limits;
        limits
            .max_total_memory_mib
            .get_or_insert_with(|| 2 * host_ram_mib());
        let handovers = guests::Handovers::new(records, admission::Admission::new(limits));
        let metrics = jettison_metrics::ServerMetrics::default();
        let observer = Arc::new(metrics::Observer {
            metrics: metrics.clone(),
            fleet: handovers.fleet.clone(),
        });
        let mount =
            LazyMemMount::mount(&config.mount_dir, tokio::runtime::Handle::current(), opts)?
                .with_observer(observer);
        let (recover, to_recover) = tokio::sync::mpsc::unbounded_channel();
        Ok(Server {
            config,
            config_file: None,
            tls,
            mount,
            images,
            handovers,
            desktops: Mutex::new(HashMap::new()),
            working_sets,
            qemu_users,
            lost: Mutex::new(lost),
            to_restore: Mutex::new(to_restore),
            checkpoint_logs: Mutex::new(HashMap::new()),
            sleepers: Mutex::new(HashSet::new()),
            recoveries: Mutex::new(HashMap::new()),
            recover,
            to_recover: Mutex::new(Some(to_recover)),
            metrics,
        })
    }

    /// The run directory of `vm`'s QEMU (its sockets and output log), in
    /// `run_dir`.
    pub fn qemu_run_dir(&self, vm: &str) -> PathBuf {
        self.config.run_dir.join(vm)
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub(crate) fn guest(&self, vm: &str) -> Result<GuestSlot, ServerError> {
        self.handovers.get(vm)
    }

    /// The waker of a desktop (made on first use).
    pub(crate) fn waker(&self, desktop: &str) -> Arc<waker::DesktopWaker> {
        let mut d = self.desktops.lock().expect("desktops lock");
        d.entry(desktop.to_string())
            .or_insert_with(|| {
                Arc::new(
                    waker::DesktopWaker::new(desktop).observed_by(self.handovers.fleet.clone()),
                )
            })
            .clone()
    }

    pub(crate) fn replica_path(&self, vm: &str) -> PathBuf {
        self.config.replica_dir.join(format!("{vm}.replica"))
    }

    /// Serves agents and the control socket until SIGINT/SIGTERM; reloads
    /// the TLS settings on SIGHUP (see `jettison_daemon::reload`).
    pub async fn run(self) -> Result<(), ServerError> {
        let server = Arc::new(self);
        let listener = tokio::net::TcpListener::bind(server.config.listen).await?;
        let control = bind_control(&server.config.control_socket)?;
        let upkeep =
            jettison_daemon::reload::spawn_tls_upkeep(server.tls.clone(), server.tls_reader())?;
        let metrics = match &server.config.metrics {
            Some(m) => {
                let l = jettison_metrics::bind(m.address(jettison_metrics::SERVER_PORT)).await?;
                let registry = metrics::registry(&server.metrics, Arc::downgrade(&server));
                let routes = dashboard::routes(&server);
                Some(tokio::spawn(jettison_metrics::serve(
                    l,
                    Arc::new(registry),
                    routes,
                )))
            }
            None => None,
        };
        let host: Arc<str> = server.config.host.clone().into();
        tracing::info!(listen = %server.config.listen, mount = %server.config.mount_dir.display(), "server up");
        let images = server.images.clone();
        match tokio::task::spawn_blocking(move || images.scan()).await {
            Ok(report) => {
                for (path, why) in &report.skipped {
                    tracing::warn!(path = %path.display(), "not a boot file: {why}");
                }
                tracing::info!(files = report.files, "boot files indexed");
            }
            Err(e) => tracing::error!("indexing the boot files: {e}"),
        }
        let lost = std::mem::take(&mut *server.lost.lock().expect("lost lock"));
        let to_restore = std::mem::take(&mut *server.to_restore.lock().expect("restore lock"));
        for vm in lost.iter().chain(to_restore.iter().map(|(vm, _)| vm)) {
            // A QEMU of the previous process, if it outlived it, serves nobody.
            let qmp = jettison_qemu::LaunchOptions::new(vm, server.qemu_run_dir(vm)).qmp_socket();
            if let Ok(q) = jettison_qemu::QmpClient::connect(&qmp, vm).await {
                tracing::warn!(vm, "quitting the QEMU the previous server process left");
                let _ = q.execute(&jettison_qemu::qmp::Quit {}).await;
            }
        }
        for (vm, record) in to_restore {
            server.restore(&vm, record).await;
        }
        let checkpoints = tokio::spawn(server.clone().checkpoint_loop());
        let to_recover = server.to_recover.lock().expect("recover lock").take();
        let recovery = to_recover.map(|rx| tokio::spawn(server.clone().recovery_loop(rx)));
        let agents = tokio::spawn(serve_tls(
            listener,
            server.tls.clone(),
            &[Role::Agent],
            host.clone(),
            server.clone(),
        ));
        let ctl = tokio::spawn(serve_unix(control, host, server.clone()));
        // Ready only now: listeners up, the previous process's VMs resumed
        // from their checkpoints or dropped.
        let watchdog = jettison_daemon::notify::ready(
            &server.config.control_socket,
            &format!(
                "serving {} VM(s); agents on {}",
                server.handovers.slots().len(),
                server.config.listen
            ),
        );
        jettison_daemon::shutdown_signal().await;
        jettison_daemon::notify::stopping("stopping: checkpointing the running VMs");
        watchdog.stop();
        upkeep.abort();
        agents.abort();
        ctl.abort();
        checkpoints.abort();
        if let Some(m) = metrics {
            m.abort();
        }
        if let Some(r) = recovery {
            r.abort();
        }
        for (vm, _) in server.handovers.slots() {
            server.stop_for_restart(&vm).await;
        }
        let _ = std::fs::remove_file(&server.config.control_socket);
        match Arc::try_unwrap(server) {
            Ok(s) => s.mount.unmount()?,
            Err(_) => tracing::warn!("connections still open; the mount goes with the process"),
        }
        Ok(())
    }
}

impl ConnectionHandler<jettison_tls::TlsConn> for Server {
    async fn handle(
        self: Arc<Self>,
        peer: Peer,
        t: jettison_wire::Transport<jettison_tls::TlsConn>,
    ) {
        intake::serve_agent(self, peer, t).await;
    }
}

/// This host's RAM in MiB (`MemTotal`), or 64 GiB if it cannot be read.
fn host_ram_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(64 << 10, |kib| kib >> 10)
}

/// Flushes a lazy memory file's dirty pages to the daemon (stop the VM first).
pub(crate) async fn flush(path: PathBuf) -> Result<(), ServerError> {
    tokio::task::spawn_blocking(move || std::fs::File::open(&path)?.sync_all())
        .await
        .map_err(|e| ServerError::Protocol(format!("fsync task: {e}")))??;
    Ok(())
}

/// A VM to resume from its checkpoint, with its record.
type ToRestore = (String, records::Record);

/// At start-up, sorts the VMs the previous server process left: one it
/// ran (`Running`) with a complete checkpoint is resumed from it
/// ([`Server::restore`]); any other but a `Released` one had its QEMU and
/// FUSE mount die with that process and nothing here can run it again. Its
/// record goes, so that its desktop, asking, hears `Unknown` and restarts
/// it from its last consistent state; its replica files and checkpoints go
/// too. A `Released` record stays as a tombstone.
pub(crate) fn sort_left_vms(
    records: &records::Records,
    replica_dir: &std::path::Path,
    checkpoints: &std::path::Path,
) -> Result<(Vec<String>, Vec<ToRestore>), ServerError> {
    let (mut lost, mut to_restore) = (Vec::new(), Vec::new());
    for vm in records.names()? {
        let record = match records.load(&vm) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(vm, "unreadable handover record, kept for the operator: {e}");
                continue;
            }
        };
        let state = record.state;
        if state == ServerState::Released {
            continue;
        }
        if state == ServerState::Running && record.machine.is_some() {
            match checkpoint::CheckpointStore::existing(checkpoints, &vm) {
                Ok(Some(_)) => {
                    tracing::info!(
                        vm,
                        "left running by the previous server process; resuming it from its last checkpoint"
                    );
                    to_restore.push((vm, record));
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::error!(vm, "unreadable checkpoint: {e}"),
            }
        }
        tracing::error!(
            vm,
            %state,
            "lost with the previous server process; its desktop restarts it from its last consistent state"
        );
        for name in [vm.clone(), intake::disk_name(&vm)] {
            let replica = replica_dir.join(format!("{name}.replica"));
            if let Err(e) = std::fs::remove_file(&replica) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(vm, "removing {}: {e}", replica.display());
                }
            }
        }
        checkpoint::CheckpointStore::remove(checkpoints, &vm)?;
        records.remove(&vm)?;
        lost.push(vm);
    }
    Ok((lost, to_restore))
}
