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
//! ```
//! The `linux` backend (logind suspend, ethtool Wake-on-LAN) exists in
//! `jettison-power` but is not wired here yet.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jettison_power::{
    Decision, Emulated, EmulatedConfig, PolicyConfig, PowerBackend, PowerProfile, SleepPolicy,
};
use jettison_wire::{Message, ReintegrateReport};
use serde::{Deserialize, Serialize};

use crate::vm::Placement;
use crate::{Agent, AgentError};

/// The `[power]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerConfig {
    /// Only `emulated` for now.
    pub backend: BackendKind,
    /// The desktop NIC's MAC.
    pub nic_mac: String,
    /// Where the emulated NIC listens for magic packets.
    pub wol_listen: SocketAddr,
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
}

/// Power backends the agent can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Freezer cgroup and an emulated NIC (test hosts).
    Emulated,
}

fn break_even() -> PolicyConfig {
    PolicyConfig::Named(jettison_power::policy::PolicyName::BreakEven)
}

/// What the agent reports of its power (`OpPower`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PowerRecord {
    /// The host's recorded states, wakes and VM placements.
    pub timeline: jettison_power::Timeline,
    /// The profile in force.
    pub profile: PowerProfile,
    /// When the state server served fetches (ms on the timeline's clock) and
    /// how many pages each carried.
    pub served: Vec<(u64, u64)>,
    /// Reintegrations started by the user's return.
    pub reintegrations: Vec<ReintegrateReport>,
    /// Migrations started by idle detection.
    pub migrations: Vec<jettison_wire::MigrateReport>,
    /// The time of this record on the timeline's clock.
    pub now_ms: u64,
}

/// The running power side of the agent.
pub struct Power {
    config: PowerConfig,
    profile: PowerProfile,
    backend: Emulated,
    policy: Mutex<Box<dyn SleepPolicy>>,
    last_request_ms: AtomicU64,
    served: Mutex<Vec<(u64, u64)>>,
    reintegrations: Mutex<Vec<ReintegrateReport>>,
    migrations: Mutex<Vec<jettison_wire::MigrateReport>>,
    /// The user's last input (timeline clock).
    last_input_ms: AtomicU64,
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
        let profile = match &config.profile {
            Some(p) => {
                let text = std::fs::read_to_string(p)?;
                PowerProfile::from_toml(&text).map_err(|e| AgentError::Power(e.to_string()))?
            }
            None => PowerProfile::default(),
        };
        let mac = config
            .nic_mac
            .parse()
            .map_err(|e| AgentError::Power(format!("nic_mac: {e}")))?;
        let mut emulated = EmulatedConfig::new(
            format!("{host}-{}", std::process::id()),
            mac,
            config.wol_listen,
        );
        emulated.profile = profile.clone();
        emulated.user_addr = config.user_listen;
        // The user is at the desk when the agent starts.
        emulated.initial = jettison_power::HostState::Active;
        let backend = Emulated::start(emulated).map_err(|e| AgentError::Power(e.to_string()))?;
        backend
            .add_pid(std::process::id())
            .map_err(|e| AgentError::Power(e.to_string()))?;
        let policy = config.policy.build(&profile);
        tracing::info!(policy = ?config.policy, wol = %config.wol_listen, "power: emulated backend ready");
        Ok(Power {
            config: config.clone(),
            profile,
            backend,
            policy: Mutex::new(policy),
            last_request_ms: AtomicU64::new(0),
            served: Mutex::new(Vec::new()),
            reintegrations: Mutex::new(Vec::new()),
            migrations: Mutex::new(Vec::new()),
            last_input_ms: AtomicU64::new(0),
        })
    }

    /// The state server served a fetch of `pages` pages.
    pub fn served(&self, pages: u64) {
        let now = self.backend.now_ms();
        self.last_request_ms.store(now, Ordering::Release);
        self.policy.lock().expect("policy lock").on_request(now);
        self.served.lock().expect("served lock").push((now, pages));
    }

    /// Records where a VM runs.
    pub fn placement(&self, vm: &str, away: bool) {
        let p = if away {
            jettison_power::Placement::Server
        } else {
            jettison_power::Placement::Desktop
        };
        if let Err(e) = self.backend.record_placement(vm, p) {
            tracing::warn!(vm, "placement not recorded: {e}");
        }
        if away {
            // The user left (that is why the VM went away): the desktop idles.
            if let Err(e) = self.backend.set_idle(true) {
                tracing::warn!("idle state not recorded: {e}");
            }
            // The policy counts quiet time from the departure.
            self.last_request_ms
                .store(self.backend.now_ms(), Ordering::Release);
        }
    }

    /// The record for `OpPower`.
    pub fn record(&self) -> PowerRecord {
        PowerRecord {
            timeline: self.backend.timeline(),
            profile: self.profile.clone(),
            served: self.served.lock().expect("served lock").clone(),
            reintegrations: self
                .reintegrations
                .lock()
                .expect("reintegrations lock")
                .clone(),
            migrations: self.migrations.lock().expect("migrations lock").clone(),
            now_ms: self.backend.now_ms(),
        }
    }
}

impl Agent {
    /// Whether every VM is away (and at least one is): the desktop may sleep.
    async fn all_away(&self) -> bool {
        let mut any = false;
        for slot in self.slots.values() {
            let Ok(p) = slot.placement.try_lock() else {
                return false;
            };
            match &*p {
                Placement::Away { .. } => any = true,
                Placement::Home(_) => return false,
                Placement::Off => {}
            }
        }
        any
    }

    /// The power loop: sleeps when the policy says so, brings the VMs home
    /// when the user returns.
    pub(crate) async fn power_loop(self: Arc<Self>, power: Arc<Power>) {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if power.backend.take_user_return() {
                power
                    .last_input_ms
                    .store(power.backend.now_ms(), Ordering::Release);
                self.user_returned(&power).await;
                continue;
            }
            if let Some(after) = power.config.away_after_s {
                let quiet = power
                    .backend
                    .now_ms()
                    .saturating_sub(power.last_input_ms.load(Ordering::Acquire));
                if quiet >= after * 1000 {
                    self.user_away(&power).await;
                }
            }
            if !self.all_away().await || !power.backend.state().is_awake() {
                continue;
            }
            let now = power.backend.now_ms();
            let last = power.last_request_ms.load(Ordering::Acquire);
            let decision = power.policy.lock().expect("policy lock").decide(now, last);
            if decision != Decision::Sleep {
                continue;
            }
            if let Err(e) = self.go_to_sleep(&power).await {
                tracing::warn!("not sleeping: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }

    async fn go_to_sleep(&self, power: &Power) -> Result<(), AgentError> {
        let mut t = self.dial_server().await?;
        let msg = Message::GoingToSleep {
            mac: power.config.nic_mac.clone(),
            wol_addr: power.config.wol_broadcast.clone(),
        };
        crate::migrate::expect(t.request(&msg, Duration::from_secs(10)).await?, "OpOk")?;
        drop(t);
        tracing::info!("going to sleep");
        // This task (and the whole process but the power thread) is frozen
        // here until a magic packet or the user wakes the host.
        power
            .backend
            .suspend()
            .await
            .map_err(|e| AgentError::Power(e.to_string()))?;
        tracing::info!(state = ?power.backend.state(), "awake again");
        // Quiet time counts afresh from the wake.
        power
            .last_request_ms
            .store(power.backend.now_ms(), Ordering::Release);
        Ok(())
    }

    /// Names of the VMs whose placement matches `pick` (skipping busy ones).
    fn vms_where(&self, pick: fn(&Placement) -> bool) -> Vec<String> {
        self.slots
            .iter()
            .filter(|(_, s)| s.placement.try_lock().map(|p| pick(&p)).unwrap_or(false))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Idle detection fired: the VMs at home go to the server.
    async fn user_away(&self, power: &Power) {
        for vm in self.vms_where(|p| matches!(p, Placement::Home(_))) {
            tracing::info!(vm, "the user is away: migrating the VM");
            match self.migrate(&vm).await {
                Ok(r) => power.migrations.lock().expect("migrations lock").push(r),
                Err(e) => tracing::error!(vm, "migration on idle failed: {e}"),
            }
        }
    }

    async fn user_returned(&self, power: &Power) {
        tracing::info!("the user is back: bringing the VMs home");
        if let Err(e) = power.backend.set_idle(false) {
            tracing::warn!("active state not recorded: {e}");
        }
        let away = self.vms_where(|p| matches!(p, Placement::Away { .. }));
        for vm in away {
            match self.reintegrate(&vm, power.config.verify_on_return).await {
                Ok(r) => power
                    .reintegrations
                    .lock()
                    .expect("reintegrations lock")
                    .push(r),
                Err(e) => tracing::error!(vm, "bringing the VM home failed: {e}"),
            }
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
    }

    #[test]
    fn policies_and_mistakes() {
        let c = parse(&format!(
            "{MIN}policy = {{ fixed_timeout_s = 30 }}\naway_after_s = 600\n"
        ))
        .unwrap();
        assert!(matches!(c.policy, PolicyConfig::FixedTimeout(_)));
        assert_eq!(c.away_after_s, Some(600));
        assert!(parse(&MIN.replace("emulated", "linux"))
            .unwrap_err()
            .contains("unknown variant"));
        assert!(parse(&format!("{MIN}colour = 1\n"))
            .unwrap_err()
            .contains("unknown field"));
        assert!(parse("backend = \"emulated\"\n")
            .unwrap_err()
            .contains("missing field"));
    }
}
