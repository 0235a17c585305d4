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
//! ```
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
//! (`iface` = the NIC armed for Wake-on-LAN, `method`, `session` = the logind
//! session whose idle hint tells user presence) suspends through logind and
//! arms Wake-on-LAN with ethtool (see `jettison_power::linux`); it cannot run
//! on the test hosts, where only its command plans are unit-tested.
//! The emulated backend is compiled in only with the cargo feature
//! `emulated-power` (test hosts); an agent built without it refuses
//! `backend = "emulated"` when it starts.

mod emulated;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

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
    /// logind session.
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
    /// logind suspend, ethtool Wake-on-LAN, logind idle hint (real desktops;
    /// not exercised on the test hosts).
    Linux,
}

/// The backend in use, with what the agent needs beyond the trait.
enum Host {
    #[cfg(feature = "emulated-power")]
    Emulated(Emulated),
    Linux {
        backend: jettison_power::linux_backend::LinuxBackend,
        session: Option<String>,
        last_poll: Mutex<std::time::Instant>,
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
    /// The fetches the state server served, in the order they completed.
    pub served: Vec<Served>,
    /// Reintegrations started by the user's return.
    pub reintegrations: Vec<ReintegrateReport>,
    /// Migrations started by idle detection.
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
    served: Mutex<Vec<Served>>,
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
    /// Starts the backend and puts this process in the group it freezes.
    pub fn start(config: &PowerConfig, host: &str) -> Result<Power, AgentError> {
        let profile = check(config)?;
        let host = match config.backend {
            BackendKind::Emulated => emulated::start(config, host, &profile)?,
            BackendKind::Linux => {
                let linux = config.linux.clone().ok_or_else(|| {
                    AgentError::Power("the linux backend needs a [power.linux] section".into())
                })?;
                let session = linux.session.clone();
                if config.selective_resume {
                    tracing::info!("selective_resume: the linux backend resumes every device");
                }
                let backend = jettison_power::linux_backend::LinuxBackend::new(
                    linux,
                    profile.clone(),
                    jettison_power_model::HostState::Active,
                );
                Host::Linux {
                    backend,
                    session,
                    last_poll: Mutex::new(std::time::Instant::now()),
                }
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
        let power = Power {
            config: config.clone(),
            profile,
            host,
            policy: Mutex::new(policy),
            last_request_ms: AtomicU64::new(0),
            served: Mutex::new(Vec::new()),
            reintegrations: Mutex::new(Vec::new()),
            migrations: Mutex::new(Vec::new()),
            last_input_ms: AtomicU64::new(0),
            selective,
        };
        if config.away_after_s.is_some() && !power.detects_input() {
            tracing::warn!("away_after_s is set but this host cannot tell user input (no user_listen / logind session): idle detection is off");
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

    /// Whether this host can tell user input at all (an emulated keyboard, or
    /// a logind session); idle detection needs it.
    pub(crate) fn detects_input(&self) -> bool {
        match &self.host {
            #[cfg(feature = "emulated-power")]
            Host::Emulated(_) => self.config.user_listen.is_some(),
            Host::Linux { session, .. } => session.is_some(),
        }
    }

    /// Whether the user gave input since the last call: the emulated
    /// keyboard, or logind's idle hint turning false (polled every 5 s).
    pub(crate) fn user_input(&self) -> bool {
        match &self.host {
            #[cfg(feature = "emulated-power")]
            Host::Emulated(e) => e.take_user_return(),
            Host::Linux { session: None, .. } => false,
            Host::Linux {
                session: Some(session),
                last_poll,
                ..
            } => {
                let mut last = last_poll.lock().expect("poll lock");
                if last.elapsed() < Duration::from_secs(5) {
                    return false;
                }
                *last = std::time::Instant::now();
                let jettison_power::linux::Step::Run { program, args } =
                    jettison_power::linux::idle_hint_command(session)
                else {
                    return false;
                };
                std::process::Command::new(program)
                    .args(args)
                    .output()
                    .ok()
                    .and_then(|o| {
                        jettison_power::linux::parse_idle_hint(&String::from_utf8_lossy(&o.stdout))
                    })
                    .is_some_and(|h| !h.idle)
            }
        }
    }

    /// The state server served a fetch of `pages` pages of `file` from
    /// page `first_page` on.
    pub fn served(&self, file: jettison_wire::FileKind, first_page: u64, pages: u64) {
        let now = self.backend().now_ms();
        self.last_request_ms.store(now, Ordering::Release);
        self.policy.lock().expect("policy lock").on_request(now);
        self.served.lock().expect("served lock").push(Served {
            t_ms: now,
            pages,
            first_page,
            file,
        });
    }

    /// Fetches served so far.
    pub(crate) fn served_count(&self) -> usize {
        self.served.lock().expect("served lock").len()
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
            served: self.served.lock().expect("served lock").clone(),
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
                    [linux]\niface = \"enp0s31f6\"\nsession = \"2\"\n";
        let c = parse(text).unwrap();
        assert_eq!(c.backend, BackendKind::Linux);
        assert_eq!(c.linux.as_ref().unwrap().iface, "enp0s31f6");
        let without = parse("backend = \"linux\"\nnic_mac = \"02:00:00:00:00:01\"\nwol_broadcast = \"10.0.0.255:9\"\n").unwrap();
        let err = Power::start(&without, "d").unwrap_err();
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
        let err = Power::start(&c, "d").unwrap_err();
        assert!(err.to_string().contains(emulated::MISSING), "{err}");
    }
}
