//! The desktop's power while its VMs are away: once every VM is consolidated
//! the sleep policy watches the gaps between the server's fetches; when it
//! says sleep, the agent tells the server (`GoingToSleep`) and suspends the
//! host through its power backend. A magic packet from the server wakes it
//! (page miss); the user's return wakes it too and brings the VMs home.
//!
//! Configuration (`[power]` in the agent's TOML; absent: the desktop never
//! sleeps):
//!
//! ```toml
//! [power]
//! backend = "emulated"          # test hosts: freezer cgroup + emulated NIC
//! nic_mac = "02:6a:00:00:00:11" # the desktop NIC's MAC, in magic packets
//! wol_listen = "0.0.0.0:9"      # where the emulated NIC hears magic packets
//! wol_broadcast = "10.0.0.255:9"# where the server sends them
//! user_listen = "0.0.0.0:9999"  # emulated keyboard: a datagram = user is back
//! policy = "break-even"         # or "never", or { fixed_timeout_s = 30 }
//! profile = "/etc/jettison/power.toml"  # optional; documented defaults otherwise
//! verify_on_return = false      # digest the memory image when coming home
//! away_after_s = 600            # idle detection: migrate after this long without input
//! selective_resume = true       # a page-miss wake resumes CPU, memory and NIC only
//! trace_dir = "/var/lib/jettison/agent/trace"  # the power and fetch trace (default <state_dir>/trace)
//! trace_max_mib = 64            # its budget (0: no trace)
//! trace_files = 8               # files kept (rotated at trace_max_mib / trace_files)
//! ```
//! The trace (see [`trace`]) records, in the simulator's format, what
//! `jettison simulate --trace` needs to replay the idle periods.
//! Selective resume (default on): a wake by magic packet, i.e. for the
//! server's page miss, resumes only the devices needed to serve pages (CPU,
//! memory, NIC; `PowerProfile::SERVICE_DEVICES`), so the host serves after
//! the profile's service latency instead of the full resume; if the user
//! comes back while it is up, the rest (disk, display, USB) resumes then. A
//! wake for the user is always a full resume. The timeline records which
//! kind each resume was, and the energy meter charges each its own cost.
//! Only the emulated backend can do it; the Linux backend resumes every
//! device (a kernel without per-device resume control offers no choice) and
//! says so at start when the setting is on.
//! On a real desktop, `backend = "linux"` with a `[power.linux]` section
//! (`iface` = the NIC armed for Wake-on-LAN; `method`, `remote_sessions`,
//! `seat`, `session`, `bus_address`, `input_dir`: see
//! `jettison_power::linux::LinuxConfig`) works through systemd-logind over
//! D-Bus (`jettison_power::linux_backend`): the user's presence is the idle
//! hint of the seat's active graphical session, found again at every login
//! (or the input devices when there is none); a delay inhibitor lets the
//! agent tell its server before any suspend, including one it did not ask
//! for (`PrepareForSleep`); a block inhibitor or an active remote session
//! keeps the desktop awake (`may_suspend`, logged with who holds it); the
//! suspend is `Manager.Suspend(false)` after arming Wake-on-LAN with
//! `ethtool`. It is tested against a private dbus-daemon with a mock
//! logind; real suspends cannot run on the test hosts.
//! The emulated backend is compiled in only with the cargo feature
//! `emulated-power` (test hosts); an agent built without it refuses
//! `backend = "emulated"` when it starts.

mod emulated;
#[cfg(test)]
mod linux_tests;
pub(crate) mod trace;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[cfg(feature = "emulated-power")]
use jettison_power::Emulated;
use jettison_power::PowerBackend;
use jettison_power_model::{PolicyConfig, PowerProfile, SleepPolicy};
use jettison_wire::ReintegrateReport;
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// The `[power]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerConfig {
    /// `emulated` (test hosts) or `linux` (real desktops).
    pub backend: BackendKind,
    /// The desktop NIC's MAC.
    pub nic_mac: String,
    /// Where the emulated NIC listens for magic packets (emulated only).
    pub wol_listen: Option<SocketAddr>,
    /// The Linux backend's settings (linux only): NIC, suspend method,
    /// remote-session policy, bus.
    pub linux: Option<jettison_power::linux::LinuxConfig>,
    /// Where the server sends magic packets (LAN broadcast, port 9).
    pub wol_broadcast: String,
    /// Where the emulated keyboard listens.
    pub user_listen: Option<SocketAddr>,
    /// The sleep policy.
    #[serde(default = "break_even")]
    pub policy: PolicyConfig,
    /// A power profile file (TOML); the documented defaults otherwise.
    pub profile: Option<PathBuf>,
    /// Digest the memory file when a VM comes home on the user's return.
    #[serde(default)]
    pub verify_on_return: bool,
    /// Idle detection: once the user has given no input for this long, the
    /// VMs running at home are migrated. On test hosts the input is the
    /// emulated keyboard (`user_listen`); absent: only the operator migrates.
    pub away_after_s: Option<u64>,
    /// Wakes for page misses resume only the service devices (see the
    /// module documentation). Default: on.
    #[serde(default = "yes")]
    pub selective_resume: bool,
    /// Where the power and fetch trace goes (default `<state_dir>/trace`).
    pub trace_dir: Option<PathBuf>,
    /// The trace directory's budget, MiB (0: no trace).
    #[serde(default = "trace::default_max_mib")]
    pub trace_max_mib: u64,
    /// Trace files kept.
    #[serde(default = "trace::default_files")]
    pub trace_files: usize,
}

fn yes() -> bool {
    true
}

/// Power backends the agent can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Freezer cgroup and an emulated NIC (test hosts; needs an agent built
    /// with the `emulated-power` feature).
    Emulated,
    /// logind over D-Bus (presence, inhibitors, suspend), ethtool
    /// Wake-on-LAN (real desktops; tested against a mock logind).
    Linux,
}

/// The backend in use, with what the agent needs beyond the trait.
enum Host {
    #[cfg(feature = "emulated-power")]
    Emulated(Emulated),
    Linux {
        backend: jettison_power::linux_backend::LinuxBackend,
    },
}

impl Host {
    /// Whether page-miss wakes can resume the service devices only (the
    /// emulated backend can; the Linux backend resumes every device).
    fn resumes_selectively(&self) -> bool {
        match self {
            #[cfg(feature = "emulated-power")]
            Host::Emulated(_) => true,
            Host::Linux { .. } => false,
        }
    }
}

fn break_even() -> PolicyConfig {
    PolicyConfig::Named(jettison_power_model::policy::PolicyName::BreakEven)
}

/// Checks the `[power]` settings without acting (start-up and
/// `--check-config`): the backend is built in and has its section, the
/// power profile reads. Gives the profile.
pub fn check(config: &PowerConfig) -> Result<PowerProfile, AgentError> {
    if config.backend == BackendKind::Linux && config.linux.is_none() {
        return Err(AgentError::Power(
            "the linux backend needs a [power.linux] section".into(),
        ));
    }
    #[cfg(not(feature = "emulated-power"))]
    if config.backend == BackendKind::Emulated {
        return Err(AgentError::Power(emulated::MISSING.into()));
    }
    match &config.profile {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| AgentError::Power(format!("profile {}: {e}", p.display())))?;
            PowerProfile::from_toml(&text)
                .map_err(|e| AgentError::Power(format!("profile {}: {e}", p.display())))
        }
        None => Ok(PowerProfile::default()),
    }
}

/// What the agent reports of its power (`OpPower`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PowerRecord {
    /// The host's recorded states, wakes and VM placements.
    pub timeline: jettison_power_model::Timeline,
    /// The profile in force.
    pub profile: PowerProfile,
    /// The last fetches the state server served (at most
    /// [`SERVED_KEPT`]), in the order they completed; the trace files keep
    /// them all.
    pub served: Vec<Served>,
    /// Fetches served since the agent started (0 in older records).
    #[serde(default)]
    pub served_total: u64,
    /// Reintegrations started by the user's return (the last
    /// [`REPORTS_KEPT`]).
    pub reintegrations: Vec<ReintegrateReport>,
    /// Migrations started by idle detection (the last [`REPORTS_KEPT`]).
    pub migrations: Vec<jettison_wire::MigrateReport>,
    /// The time of this record on the timeline's clock.
    pub now_ms: u64,
    /// The sleep policy in force (`None` in records of older agents).
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
    /// Whether page-miss wakes resumed the service devices only (the
    /// setting, as the backend honours it; `None` in older records).
    #[serde(default)]
    pub selective_resume: Option<bool>,
    /// How often the power loop asked the policy, ms (`None` in older
    /// records).
    #[serde(default)]
    pub tick_ms: Option<u64>,
}

/// How many of the last fetches served the agent keeps in memory (its
/// `OpPower` record); the policy itself needs only the last one's time.
pub const SERVED_KEPT: usize = 65_536;

/// How many migration and reintegration reports the power record keeps
/// (the last ones); its timeline keeps the last
/// [`jettison_power_model::timeline::HISTORY_KEPT_MS`] on the Linux
/// backend.
pub const REPORTS_KEPT: usize = 1_000;

/// One fetch the state server served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    /// When, in ms on the timeline's clock.
    pub t_ms: u64,
    /// Pages it carried.
    pub pages: u64,
    /// Its first page (the lowest offset asked for, in pages).
    pub first_page: u64,
    /// The file: memory or disk.
    pub file: jettison_wire::FileKind,
}

/// The running power side of the agent.
pub struct Power {
    pub(crate) config: PowerConfig,
    profile: PowerProfile,
    host: Host,
    pub(crate) policy: Mutex<Box<dyn SleepPolicy>>,
    pub(crate) last_request_ms: AtomicU64,
    served: Mutex<VecDeque<Served>>,
    served_total: AtomicU64,
    trace: Option<Mutex<trace::TraceLog>>,
    pub(crate) reintegrations: Mutex<Vec<ReintegrateReport>>,
    pub(crate) migrations: Mutex<Vec<jettison_wire::MigrateReport>>,
    /// The user's last input (timeline clock).
    pub(crate) last_input_ms: AtomicU64,
    /// Whether page-miss wakes are selective (the setting, if the backend
    /// can).
    selective: bool,
}

impl std::fmt::Debug for Power {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Power")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Power {
    /// Starts the backend and puts this process in the group it freezes;
    /// opens the trace (see [`trace`]) under `state_dir` unless configured
    /// elsewhere.
    pub fn start(config: &PowerConfig, host: &str, state_dir: &Path) -> Result<Power, AgentError> {
        let host_name = host;
        let profile = check(config)?;
        let host = match config.backend {
            BackendKind::Emulated => emulated::start(config, host, &profile)?,
            BackendKind::Linux => {
                let linux = config.linux.clone().ok_or_else(|| {
                    AgentError::Power("the linux backend needs a [power.linux] section".into())
                })?;
                if config.selective_resume {
                    tracing::info!("selective_resume: the linux backend resumes every device");
                }
                let backend = jettison_power::linux_backend::LinuxBackend::new(
                    linux,
                    profile.clone(),
                    jettison_power_model::HostState::Active,
                );
                Host::Linux { backend }
            }
        };
        // With selective resume the policy weighs the service resume, as the
        // simulator's does (only the emulated backend resumes selectively).
        let selective = config.selective_resume && host.resumes_selectively();
        let policy = config
            .policy
            .build(&jettison_power_model::policy::policy_profile(
                &profile, selective,
            ));
        let mut power = Power {
            config: config.clone(),
            profile,
            host,
            policy: Mutex::new(policy),
            last_request_ms: AtomicU64::new(0),
            served: Mutex::new(VecDeque::new()),
            served_total: AtomicU64::new(0),
            trace: None,
            reintegrations: Mutex::new(Vec::new()),
            migrations: Mutex::new(Vec::new()),
            last_input_ms: AtomicU64::new(0),
            selective,
        };
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let header = jettison_sim::recorded::TraceHeader {
            version: jettison_sim::recorded::TRACE_VERSION,
            host: host_name.to_owned(),
            clock_zero_unix_ms: unix_ms.saturating_sub(power.backend().now_ms()),
            profile: power.profile.clone(),
            policy: config.policy.clone(),
            selective_resume: selective,
            tick_ms: crate::power_loop::TICK_MS,
        };
        power.trace = trace::TraceLog::open(config, state_dir, header).map(Mutex::new);
        if config.away_after_s.is_some() && !power.detects_input() {
            tracing::warn!("away_after_s is set but this host cannot tell user input yet (no user_listen; no input device, and no logind session until logind is reached): idle detection is off meanwhile");
        }
        tracing::info!(policy = ?config.policy, backend = ?config.backend, "power backend ready");
        Ok(power)
    }

    /// The backend.
    pub(crate) fn backend(&self) -> &dyn PowerBackend {
        match &self.host {
            #[cfg(feature = "emulated-power")]
            Host::Emulated(e) => e,
            Host::Linux { backend, .. } => backend,
        }
    }

    /// Reaches logind (Linux backend; an error is logged and retried
    /// before each sleep) and hands over the notices of suspends the agent
    /// did not ask for.
    pub(crate) async fn connect_backend(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<jettison_power::linux_backend::SleepNotice>>
    {
        match &self.host {
            #[cfg(feature = "emulated-power")]
            Host::Emulated(_) => None,
            Host::Linux { backend } => {
                if let Err(e) = backend.connect().await {
                    tracing::error!("power: {e}; the desktop will not sleep until logind answers");
                }
                backend.sleep_notices()
            }
        }
    }

    /// Whether this host can tell user input at all (an emulated keyboard, or
    /// a graphical logind session or input devices); idle detection needs it.
    pub(crate) fn detects_input(&self) -> bool {
        match &self.host {
            #[cfg(feature = "emulated-power")]
            Host::Emulated(_) => self.config.user_listen.is_some(),
            Host::Linux { backend } => backend.knows_presence(),
        }
    }

    /// Whether the user gave input since the last call: the emulated
    /// keyboard, or the session's idle hint (its turning false at once,
    /// its staying false every 5 s), or input device events.
    pub(crate) fn user_input(&self) -> bool {
        match &self.host {
            #[cfg(feature = "emulated-power")]
            Host::Emulated(e) => e.take_user_return(),
            Host::Linux { backend } => backend.take_user_activity(),
        }
    }

    /// The state server served a fetch of `pages` pages of `vm`'s `file`
    /// from page `first_page` on.
    pub fn served(&self, vm: &str, file: jettison_wire::FileKind, first_page: u64, pages: u64) {
        let now = self.backend().now_ms();
        self.last_request_ms.store(now, Ordering::Release);
        self.policy.lock().expect("policy lock").on_request(now);
        {
            let mut served = self.served.lock().expect("served lock");
            if served.len() == SERVED_KEPT {
                served.pop_front();
            }
            served.push_back(Served {
                t_ms: now,
                pages,
                first_page,
                file,
            });
        }
        self.served_total.fetch_add(1, Ordering::AcqRel);
        self.trace(&jettison_sim::recorded::TraceRecord::Fetch {
            t_ms: now,
            vm: vm.to_owned(),
            file: match file {
                jettison_wire::FileKind::Memory => jettison_sim::recorded::RecordedFile::Memory,
                jettison_wire::FileKind::Disk => jettison_sim::recorded::RecordedFile::Disk,
            },
            first_page,
            pages,
        });
    }

    /// Fetches served so far.
    pub(crate) fn served_count(&self) -> u64 {
        self.served_total.load(Ordering::Acquire)
    }

    /// Appends `record` to the trace, if there is one.
    pub(crate) fn trace(&self, record: &jettison_sim::recorded::TraceRecord) {
        if let Some(t) = &self.trace {
            t.lock().expect("trace lock").append(record);
        }
    }

    /// Writes the timeline's changes to the trace and flushes it (each tick
    /// of the power loop, and before a sleep).
    pub(crate) fn trace_sync(&self) {
        if let Some(t) = &self.trace {
            let tl = self.backend().timeline();
            t.lock().expect("trace lock").sync(&tl);
        }
    }

    /// Records where a VM runs.
    pub fn placement(&self, vm: &str, away: bool) {
        let p = if away {
            jettison_power_model::Placement::Server
        } else {
            jettison_power_model::Placement::Desktop
        };
        if let Err(e) = self.backend().record_placement(vm, p) {
            tracing::warn!(vm, "placement not recorded: {e}");
        }
        if away {
            // The user left (that is why the VM went away): the desktop idles.
            if let Err(e) = self.backend().set_idle(true) {
                tracing::warn!("idle state not recorded: {e}");
            }
            // The policy counts quiet time from the departure.
            self.last_request_ms
                .store(self.backend().now_ms(), Ordering::Release);
        }
    }

    /// The record for `OpPower`.
    pub fn record(&self) -> PowerRecord {
        PowerRecord {
            timeline: self.backend().timeline(),
            profile: self.profile.clone(),
            served: self
                .served
                .lock()
                .expect("served lock")
                .iter()
                .copied()
                .collect(),
            served_total: self.served_count(),
            reintegrations: self
                .reintegrations
                .lock()
                .expect("reintegrations lock")
                .clone(),
            migrations: self.migrations.lock().expect("migrations lock").clone(),
            now_ms: self.backend().now_ms(),
            policy: Some(self.config.policy.clone()),
            selective_resume: Some(self.selective),
            tick_ms: Some(crate::power_loop::TICK_MS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PowerConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    const MIN: &str = "backend = \"emulated\"\nnic_mac = \"02:00:00:00:00:01\"\nwol_listen = \"0.0.0.0:9\"\nwol_broadcast = \"10.0.0.255:9\"\n";

    #[test]
    fn defaults_are_break_even_and_no_idle_detection() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.policy, break_even());
        assert_eq!(c.away_after_s, None);
        assert!(!c.verify_on_return);
        assert_eq!(c.user_listen, None);
        assert!(c.selective_resume);
        assert_eq!(
            (&c.trace_dir, c.trace_max_mib, c.trace_files),
            (&None, 64, 8)
        );
        let t = parse(&format!(
            "{MIN}trace_dir = \"/t\"\ntrace_max_mib = 0\ntrace_files = 3\n"
        ))
        .unwrap();
        assert_eq!(
            (t.trace_dir, t.trace_max_mib, t.trace_files),
            (Some(PathBuf::from("/t")), 0, 3)
        );
        assert!(
            !parse(&format!("{MIN}selective_resume = false\n"))
                .unwrap()
                .selective_resume
        );
    }

    #[test]
    fn policies_and_mistakes() {
        let c = parse(&format!(
            "{MIN}policy = {{ fixed_timeout_s = 30 }}\naway_after_s = 600\n"
        ))
        .unwrap();
        assert!(matches!(c.policy, PolicyConfig::FixedTimeout(_)));
        assert_eq!(c.away_after_s, Some(600));
        assert!(parse(&MIN.replace("emulated", "hibernate"))
            .unwrap_err()
            .contains("unknown variant"));
        assert!(parse(&format!("{MIN}colour = 1\n"))
            .unwrap_err()
            .contains("unknown field"));
        assert!(parse("backend = \"emulated\"\n")
            .unwrap_err()
            .contains("missing field"));
    }

    #[test]
    fn the_linux_backend_is_configured_by_its_own_section() {
        let text = "backend = \"linux\"\nnic_mac = \"02:00:00:00:00:01\"\nwol_broadcast = \"10.0.0.255:9\"\n\
                    [linux]\niface = \"enp0s31f6\"\nremote_sessions = \"ignore\"\n";
        let c = parse(text).unwrap();
        assert_eq!(c.backend, BackendKind::Linux);
        assert_eq!(c.linux.as_ref().unwrap().iface, "enp0s31f6");
        assert_eq!(
            c.linux.as_ref().unwrap().remote_sessions,
            jettison_power::logind_policy::RemoteSessions::Ignore
        );
        let without = parse("backend = \"linux\"\nnic_mac = \"02:00:00:00:00:01\"\nwol_broadcast = \"10.0.0.255:9\"\n").unwrap();
        let err = Power::start(&without, "d", Path::new("/nonexistent")).unwrap_err();
        assert!(
            err.to_string().contains("needs a [power.linux] section"),
            "{err}"
        );
    }

    #[cfg(not(feature = "emulated-power"))]
    #[test]
    fn without_the_feature_the_emulated_backend_is_refused_at_start() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.backend, BackendKind::Emulated);
        let err = Power::start(&c, "d", Path::new("/nonexistent")).unwrap_err();
        assert!(err.to_string().contains(emulated::MISSING), "{err}");
    }
}
