//! The desktop agent: runs the desktop's VMs at home, migrates a VM's CPU and
//! device state to the consolidation server, serves its memory on demand
//! while it is away (the state server), and takes it back with the pages it
//! changed.

pub mod check;
pub mod config;
mod control;
pub mod disk_image;
mod doze;
pub mod handover_in;
pub mod handover_out;
#[cfg(test)]
mod handover_tests;
mod home;
mod memory_copy;
mod metrics;
mod migrate;
pub mod power;
mod power_loop;
pub mod record;
mod reintegrate;
pub mod retry;
mod settle;
mod state_server;
#[cfg(test)]
mod state_server_tests;
mod takeover;
mod tls_reload;
pub mod vm;

use std::collections::BTreeMap;
use std::sync::Arc;

use jettison_daemon::{bind_control, serve_unix};

pub use config::{AgentConfig, VmConfig};
use vm::{Placement, VmSlot};

/// What can go wrong in the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No such VM in the configuration.
    #[error("no VM named {0:?} on this desktop")]
    UnknownVm(String),
    /// The VM is not where the request needs it.
    #[error("{0}")]
    WrongState(String),
    /// Request not allowed on this endpoint.
    #[error("{0} is not an agent request")]
    NotAllowed(&'static str),
    /// A QEMU answers on the VM's QMP socket that this agent could not take
    /// over (it is not this VM's QEMU, or the take-over failed).
    #[error(
        "a QEMU this agent does not manage answers on {} (the agent's log says why it was not \
         taken over): not starting a second one for VM {vm} on the same memory file; quit that \
         QEMU (QMP `quit` on that socket), then `jettison start {vm}`",
        qmp.display()
    )]
    Unmanaged {
        /// The VM.
        vm: String,
        /// Its QEMU's QMP socket.
        qmp: std::path::PathBuf,
    },
    /// The server could not be reached or refused.
    #[error("consolidation server: {0}")]
    Server(String),
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection failed.
    #[error(transparent)]
    Wire(#[from] jettison_wire::WireError),
    /// QEMU failed.
    #[error(transparent)]
    Qemu(#[from] jettison_qemu::QemuError),
    /// A boot file problem.
    #[error(transparent)]
    Machine(#[from] jettison_daemon::MachineError),
    /// The VM's tap could not be set up.
    #[error(transparent)]
    Tap(#[from] jettison_daemon::tap::TapError),
    /// TLS material could not be loaded.
    #[error(transparent)]
    Tls(#[from] jettison_tls::TlsError),
    /// The server could not be reached or refused us.
    #[error("consolidation server: {0}")]
    Dial(#[from] jettison_daemon::DialError),
    /// A VM's disk image is missing or not a raw image.
    #[error(transparent)]
    Disk(#[from] disk_image::DiskError),
    /// The power backend failed.
    #[error("power: {0}")]
    Power(String),
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

/// The running agent.
#[derive(Debug)]
pub struct Agent {
    config: AgentConfig,
    /// The file a reload (SIGHUP) re-reads the `[tls]` settings from.
    config_file: Option<std::path::PathBuf>,
    tls: Arc<jettison_tls::TlsContext>,
    power: Option<Arc<power::Power>>,
    slots: BTreeMap<String, Arc<VmSlot>>,
    /// The state server's listener and whether the agent dozes (see [`doze`]).
    gate: doze::StateGate,
    /// The Prometheus metrics the state server feeds.
    metrics: jettison_metrics::AgentMetrics,
}

impl Agent {
    /// Builds the agent from its configuration, picking up VMs recorded as
    /// consolidated by a previous run.
    pub fn new(mut config: AgentConfig) -> Result<Self, AgentError> {
        // The same checks as `jettison-agent --check-config`, before acting.
        let check::Checked { tls } = check::check(&config)?;
        config.choose_accel();
        for dir in [&config.state_dir, &config.run_dir, &config.memory_dir] {
            std::fs::create_dir_all(dir)?;
        }
        let mut slots = BTreeMap::new();
        for vm in &config.vms {
            slots.insert(vm.name.clone(), Arc::new(VmSlot::new(&config, vm)?));
        }
        let power = match &config.power {
            Some(p) => Some(Arc::new(power::Power::start(
                p,
                &config.host,
                &config.state_dir,
            )?)),
            None => None,
        };
        Ok(Agent {
            config,
            config_file: None,
            tls,
            power,
            slots,
            gate: doze::StateGate::default(),
            metrics: jettison_metrics::AgentMetrics::default(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    pub(crate) fn slot(&self, vm: &str) -> Option<Arc<VmSlot>> {
        self.slots.get(vm).cloned()
    }

    /// Serves the state server and the control socket until SIGINT/SIGTERM,
    /// after taking over the QEMUs a previous agent left running and
    /// booting the autostart VMs that are neither consolidated nor running.
    /// On the signal, the VMs at home are left running or shut down as
    /// `on_stop` says. SIGHUP reloads the TLS settings (see
    /// `jettison_daemon::reload`).
    pub async fn run(self) -> Result<(), AgentError> {
        let agent = Arc::new(self);
        let upkeep =
            jettison_daemon::reload::spawn_tls_upkeep(agent.tls.clone(), agent.tls_reader())?;
        // Before anything is served: a reboot loses /dev/shm.
        agent.restore_lost_memory().await;
        let listen = agent.open_state_server().await?;
        let control = bind_control(&agent.config.control_socket)?;
        let metrics = match &agent.config.metrics {
            Some(m) => {
                let l = jettison_metrics::bind(m.address(jettison_metrics::AGENT_PORT)).await?;
                let registry = Arc::new(metrics::registry(&agent));
                Some(tokio::spawn(jettison_metrics::serve(
                    l,
                    registry,
                    Default::default(),
                )))
            }
            None => None,
        };
        let host: Arc<str> = agent.config.host.clone().into();
        tracing::info!(listen = %listen, control = %agent.config.control_socket.display(), "agent up");
        for slot in agent.slots.values() {
            match &*slot.placement.lock().await {
                Placement::Away { server } => {
                    tracing::info!(vm = %slot.config.name, %server, "VM is consolidated; serving its memory")
                }
                Placement::Unsettled(_) => tracing::warn!(
                    vm = %slot.config.name,
                    state = %slot.record.get(),
                    "VM was left mid-handover; settling it with the server"
                ),
                _ => {}
            }
        }
        agent.take_over_at_start().await;
        let settle = tokio::spawn(agent.clone().settle_loop());
        let ctl = tokio::spawn(serve_unix(control, host, agent.clone()));
        let power = agent
            .power
            .clone()
            .map(|p| tokio::spawn(agent.clone().power_loop(p)));
        agent.boot_at_start().await;
        // Ready only now: control socket and state server up, the QEMUs
        // left running taken over, the autostart VMs booted.
        let watchdog = jettison_daemon::notify::ready(
            &agent.config.control_socket,
            &format!(
                "serving {} VM(s); state server on {listen}, advertised as {}",
                agent.slots.len(),
                agent.config.advertised()
            ),
        );
        jettison_daemon::shutdown_signal().await;
        tracing::info!(on_stop = ?agent.config.on_stop, "shutting down");
        jettison_daemon::notify::stopping(&format!(
            "stopping (on_stop = {:?})",
            agent.config.on_stop
        ));
        watchdog.stop();
        upkeep.abort();
        agent.close_state_server().await;
        ctl.abort();
        settle.abort();
        if let Some(m) = metrics {
            m.abort();
        }
        if let Some(p) = power {
            p.abort();
        }
        agent.stop_vms_at_home().await;
        let _ = std::fs::remove_file(&agent.config.control_socket);
        Ok(())
    }
}
