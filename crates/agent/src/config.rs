//! The agent's configuration file (TOML).
//!
//! ```toml
//! host = "desk-17"                       # default: the kernel's hostname
//! server = "10.0.0.2:7400"               # the consolidation server
//! server_name = "consol-1"               # the name its certificate carries
//! listen = "0.0.0.0:7401"                # this desktop's state server
//! advertise = "10.0.0.17:7401"          # how the server dials it (default: listen; required
//!                                        # when listen is 0.0.0.0 or [::], see below)
//! control_socket = "/run/jettison/agent.sock"
//! state_dir = "/var/lib/jettison/agent"  # handover records and device-state snapshots, per VM
//! run_dir = "/run/jettison/agent"        # QEMU sockets, console logs
//! memory_dir = "/dev/shm"                # VM memory files <vm>.mem
//! qemu_binary = "qemu-system-x86_64"
//! accel = "auto"                         # the default: KVM if a probe guest runs
//!                                        # under it, else TCG (logged); or "kvm", "tcg"
//! bridge = "br0"                         # LAN bridge for the VMs' taps
//! on_stop = "leave"                      # or "shutdown": what stopping the agent does to
//!                                        # the VMs running at home (see below)
//! stop_timeout_s = 60                    # "shutdown": how long the guests get to power off
//!
//! [metrics]                              # absent: no metrics listener
//! listen = "127.0.0.1:9472"              # GET /metrics (Prometheus)
//!
//! [tls]                                  # mutual TLS (see `jettison certs`); SIGHUP reloads it
//! ca = "/etc/jettison/tls/ca.pem"
//! cert = "/etc/jettison/tls/desk-17.pem"
//! key = "/etc/jettison/tls/desk-17.key"
//! allowed_peers = ["consol-1"]           # servers that may take this desktop's VMs
//! crl = "/etc/jettison/tls/ca.crl"       # optional: the CA's revocation list
//! expiry_warning_days = 30               # warn this long before an expiry
//!
//! [[vm]]
//! name = "desk-17"
//! memory_mib = 2048
//! cpus = 2
//! kernel = "/var/lib/jettison/images/vmlinuz"   # optional direct boot
//! initrd = "/var/lib/jettison/images/initrd.img"
//! append = "console=ttyS0"
//! extra_args = []                       # this desktop's QEMU only, never sent to the server
//! autostart = true
//! mac = "52:54:00:12:34:56"              # NIC on `bridge`; the VM keeps it on the server
//! disk = "/var/lib/jettison/disks/desk-17.img"  # an existing raw image, served lazily
//!                                        # while away (never created: a missing or
//!                                        # qcow2 image stops the agent with the reason)
//! ```
//!
//! `on_stop` decides what happens to a VM running at home when the agent
//! stops (SIGTERM or SIGINT):
//! * `leave` (the default): the guest keeps running; its QEMU outlives the
//!   agent (the packaged systemd unit has `KillMode=process` for this). A
//!   restarted agent sees that QEMU through its QMP socket and does not boot
//!   a second one, but does not manage it either (taking it over is future
//!   work): stop the guest, then `jettison start <vm>`.
//! * `shutdown`: an orderly shutdown, as the ACPI power button does
//!   (`system_powerdown`); QEMU is quit if the guest has not powered off
//!   within `stop_timeout_s` seconds. (Keep systemd's `TimeoutStopSec` above
//!   it; the VMs stop in parallel.)
//!
//! The server dials `advertise` to fetch the memory of a VM it runs, and
//! checks that it can before it takes the VM. An unspecified address
//! (`0.0.0.0`, `[::]`) names no host there, so it is refused at start:
//! with `listen` on all interfaces (the default), `advertise` must be set
//! to an address of this desktop the server reaches.
//!
//! A consolidated VM is untouched by either: nothing of it runs at home. A
//! guest held at home in the middle of a handover is stopped with the agent;
//! the handover's record decides on the next start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jettison_qemu::{Accel, AccelChoice, MachineSpec};
use jettison_wire::MacAddr;
use serde::Deserialize;

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// Path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The agent's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This desktop's name.
    #[serde(default = "jettison_daemon::hostname")]
    pub host: String,
    /// The consolidation server, `host:port`.
    pub server: String,
    /// The name the server's certificate must carry (and that must be in
    /// `tls.allowed_peers`).
    pub server_name: String,
    /// Address the state server listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address the server should dial to fetch memory (default: `listen`).
    pub advertise: Option<String>,
    /// The operator's control socket.
    #[serde(default = "default_control")]
    pub control_socket: PathBuf,
    /// Persistent state: each VM's handover record and device-state snapshot.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Runtime files: QEMU sockets and console logs.
    #[serde(default = "default_run_dir")]
    pub run_dir: PathBuf,
    /// Where VM memory files live (tmpfs: survives QEMU, lost at power-off).
    #[serde(default = "default_memory_dir")]
    pub memory_dir: PathBuf,
    /// QEMU binary.
    #[serde(default = "default_qemu")]
    pub qemu_binary: PathBuf,
    /// The accelerator asked for (`accel`: "auto", the default, "kvm" or
    /// "tcg"); see `jettison_qemu::accel_probe`.
    #[serde(default, rename = "accel")]
    pub accel_choice: AccelChoice,
    /// The accelerator in force: `accel` itself, or for "auto" what the
    /// probe chose at start ([`Self::choose_accel`]); TCG until then.
    #[serde(skip)]
    pub accel: Accel,
    /// The LAN bridge the VMs' taps are attached to (needed for VMs with a `mac`).
    pub bridge: Option<String>,
    /// Mutual TLS: this desktop's certificate and the servers it trusts.
    pub tls: jettison_tls::TlsSettings,
    /// What stopping the agent does to the VMs running at home.
    #[serde(default)]
    pub on_stop: OnStop,
    /// With `on_stop = "shutdown"`: seconds the guests get to power off
    /// before their QEMU is quit.
    #[serde(default = "default_stop_timeout_s")]
    pub stop_timeout_s: u64,
    /// Sleeping while the VMs are away (see `power`); never, if absent.
    pub power: Option<crate::power::PowerConfig>,
    /// The HTTP listener of the Prometheus metrics (`/metrics`); none if
    /// absent. Its `listen` defaults to loopback, port
    /// [`jettison_metrics::AGENT_PORT`].
    #[serde(default)]
    pub metrics: Option<jettison_metrics::MetricsConfig>,
    /// The VMs of this desktop.
    #[serde(default, rename = "vm")]
    pub vms: Vec<VmConfig>,
}

/// What stopping the agent does to a VM running at home (see the module
/// documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStop {
    /// The guest keeps running; its QEMU outlives the agent.
    #[default]
    Leave,
    /// ACPI power button, then quit after `stop_timeout_s`.
    Shutdown,
}

/// The longest `stop_timeout_s` accepted (an hour).
pub const MAX_STOP_TIMEOUT_S: u64 = 3600;

/// One VM of the desktop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// Name: letters, digits, `-` and `_`.
    pub name: String,
    /// Guest memory.
    pub memory_mib: u64,
    /// vCPUs.
    #[serde(default = "one")]
    pub cpus: u32,
    /// Direct-boot kernel.
    pub kernel: Option<PathBuf>,
    /// Direct-boot initramfs.
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    pub append: Option<String>,
    /// More QEMU arguments for this VM's QEMU on this desktop only: they
    /// are not part of the machine sent to the server (whose operator adds
    /// its own), so they must not change its device state.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Boot the VM when the agent starts (unless it is consolidated).
    #[serde(default = "yes")]
    pub autostart: bool,
    /// MAC address of the VM's NIC (a tap on `bridge`); no NIC if absent.
    /// Six hex pairs, unicast (checked while parsing).
    pub mac: Option<MacAddr>,
    /// Raw disk image of the VM, which must exist (the agent never
    /// creates one, see `crate::disk_image`); no disk if absent.
    pub disk: Option<PathBuf>,
    /// No longer taken (the agent used to create a missing disk of this
    /// size): refused with the reason, see [`AgentConfig::parse`].
    #[serde(default)]
    pub disk_mib: Option<u64>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7401))
}
fn default_control() -> PathBuf {
    PathBuf::from("/run/jettison/agent.sock")
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/jettison/agent")
}
fn default_run_dir() -> PathBuf {
    PathBuf::from("/run/jettison/agent")
}
fn default_memory_dir() -> PathBuf {
    PathBuf::from("/dev/shm")
}
fn default_qemu() -> PathBuf {
    PathBuf::from("qemu-system-x86_64")
}
fn default_stop_timeout_s() -> u64 {
    60
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

impl AgentConfig {
    /// Settles the accelerator: for `accel = "auto"` boots the probe
    /// guest under KVM (up to `jettison_qemu::accel_probe::PROBE_TIMEOUT`)
    /// and takes TCG if it does not run; logs the choice and why.
    pub fn choose_accel(&mut self) {
        self.accel = jettison_qemu::choose_accel(self.accel_choice, &self.qemu_binary).accel;
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.into(),
            message,
        })
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut cfg: AgentConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.accel = cfg.accel_choice.fixed().unwrap_or_default();
        if cfg.stop_timeout_s > MAX_STOP_TIMEOUT_S {
            return Err(format!(
                "stop_timeout_s = {}: at most {MAX_STOP_TIMEOUT_S} seconds",
                cfg.stop_timeout_s
            ));
        }
        check_advertised(&cfg.advertised())?;
        let mut seen = std::collections::HashSet::new();
        for vm in &cfg.vms {
            if !jettison_wire::valid_vm_name(&vm.name) {
                return Err(format!(
                    "vm name {:?}: use 1-64 letters, digits, '-' or '_'",
                    vm.name
                ));
            }
            if !seen.insert(vm.name.clone()) {
                return Err(format!("vm {:?} is defined twice", vm.name));
            }
            if vm.memory_mib < 16 || vm.cpus == 0 {
                return Err(format!(
                    "vm {:?}: memory_mib must be at least 16 and cpus at least 1",
                    vm.name
                ));
            }
            if vm.disk_mib.is_some() {
                return Err(format!(
                    "vm {:?}: `disk_mib` is no longer taken: the agent never creates a disk \
                     image (a mistyped `disk` path gave the guest an empty disk); create the \
                     raw image yourself (`truncate -s 64M <path>`) and remove `disk_mib`",
                    vm.name
                ));
            }
            if vm.mac.is_some() && cfg.bridge.is_none() {
                return Err(format!(
                    "vm {:?} has a mac but no `bridge` is configured for its tap",
                    vm.name
                ));
            }
        }
        Ok(cfg)
    }

    /// How long `on_stop = "shutdown"` waits for the guests to power off.
    pub fn stop_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.stop_timeout_s)
    }

    /// The address the server dials for this desktop's memory.
    pub fn advertised(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }
}

/// Refuses an advertised address that names no host for the server: an
/// unspecified IP (`0.0.0.0`, `[::]`), or no port (pure).
pub fn check_advertised(addr: &str) -> Result<(), String> {
    let bad = match addr.parse::<SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => "an unspecified IP (it means \"any local address\")",
        Ok(_) => return Ok(()),
        // host:port with a name: resolved by the server, which checks it
        // can reach it at each prepare.
        Err(_)
            if addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) =>
        {
            return Ok(())
        }
        Err(_) => "not host:port",
    };
    Err(format!(
        "the state server's advertised address {addr:?} is {bad}: the consolidation server \
         dials it to fetch a VM's memory and could not reach this desktop there (its VM would \
         hang on its first page fault); set `advertise` to this desktop's LAN address and the \
         state server's port, e.g. advertise = \"10.0.0.17:7401\""
    ))
}

impl VmConfig {
    /// The machine QEMU runs for this VM.
    pub fn machine(&self) -> MachineSpec {
        MachineSpec {
            memory_mib: self.memory_mib,
            cpus: self.cpus,
            kernel: self.kernel.clone(),
            initrd: self.initrd.clone(),
            append: self.append.clone(),
            nic_mac: self.mac,
            // The image was checked at start and is checked again at each
            // launch (`crate::disk_image::check_disk`).
            disk_bytes: self
                .disk
                .as_ref()
                .map(|d| std::fs::metadata(d).map_or(0, |m| m.len())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config with top-level keys `top`, a `[tls]` section and `vms`.
    fn text(top: &str, vms: &str) -> String {
        format!(
            "server = \"s:7400\"\nserver_name = \"srv\"\nadvertise = \"10.0.0.17:7401\"\n{top}\n[tls]\nca = \"/c\"\ncert = \"/h\"\nkey = \"/k\"\n\
             allowed_peers = [\"srv\"]\n{vms}"
        )
    }

    const VM: &str = "[[vm]]\nname = \"a\"\nmemory_mib = 64\n";

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let cfg = AgentConfig::parse(&text("", VM)).unwrap();
        assert_eq!(cfg.listen.port(), 7401);
        assert_eq!(cfg.memory_dir, PathBuf::from("/dev/shm"));
        assert_eq!(cfg.accel_choice, AccelChoice::Auto);
        assert_eq!(cfg.accel, Accel::Tcg, "until the probe chose");
        assert_eq!(cfg.vms[0].cpus, 1);
        assert!(cfg.vms[0].autostart);
        assert_eq!(cfg.advertised(), "10.0.0.17:7401");
        assert_eq!(cfg.tls.allowed_peers, vec!["srv".to_string()]);
        assert_eq!(cfg.on_stop, OnStop::Leave);
        assert_eq!(cfg.stop_timeout(), std::time::Duration::from_secs(60));
    }

    #[test]
    fn on_stop_and_its_timeout_are_read() {
        let cfg =
            AgentConfig::parse(&text("on_stop = \"shutdown\"\nstop_timeout_s = 5", VM)).unwrap();
        assert_eq!(cfg.on_stop, OnStop::Shutdown);
        assert_eq!(cfg.stop_timeout_s, 5);
        let cfg = AgentConfig::parse(&text("on_stop = \"leave\"\nstop_timeout_s = 0", VM)).unwrap();
        assert_eq!(cfg.on_stop, OnStop::Leave);
        assert_eq!(cfg.stop_timeout_s, 0);
    }

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        for (text, needle) in [
            ("server = 1".to_string(), "invalid type"),
            (
                "server = \"s\"\nserver_name = \"x\"\n".to_string(),
                "missing field `tls`",
            ),
            (text("bogus = 1", VM), "unknown field"),
            (
                text("", "[[vm]]\nname = \"a/b\"\nmemory_mib = 512"),
                "vm name",
            ),
            (
                text("", "[[vm]]\nname = \"a\"\nmemory_mib = 1"),
                "at least 16",
            ),
            (
                text(
                    "bridge = \"br0\"",
                    &format!("{VM}mac = \"01:00:00:00:00:01\""),
                ),
                "unicast",
            ),
            (
                text(
                    "bridge = \"br0\"",
                    &format!("{VM}mac = \"52:54:00:00:00:01,romfile=/x\""),
                ),
                "six hex pairs",
            ),
            (
                text("", &format!("{VM}mac = \"52:54:00:00:00:01\"")),
                "bridge",
            ),
            (text("", &format!("{VM}{VM}")), "twice"),
            (
                text("on_stop = \"kill\"", VM),
                "unknown variant `kill`, expected `leave` or `shutdown`",
            ),
            (
                text("on_stop = \"Leave\"", VM),
                "expected `leave` or `shutdown`",
            ),
            (text("on_stop = true", VM), "wanted string"),
            (text("stop_timeout_s = -1", VM), "invalid value"),
            (text("stop_timeout_s = \"60s\"", VM), "invalid type"),
            (text("stop_timeout_s = 3601", VM), "at most 3600 seconds"),
            (
                text("", &format!("{VM}disk = \"/d.img\"\ndisk_mib = 64")),
                "`disk_mib` is no longer taken",
            ),
        ] {
            let err = AgentConfig::parse(&text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    /// Without `advertise`, the state server's address is `listen`; an
    /// unspecified one is refused with what to set.
    #[test]
    fn an_unspecified_advertised_address_is_refused() {
        let base = "server = \"s:7400\"\nserver_name = \"srv\"\n";
        let tls = "[tls]\nca = \"/c\"\ncert = \"/h\"\nkey = \"/k\"\nallowed_peers = [\"srv\"]\n";
        for top in [
            "",
            "listen = \"0.0.0.0:7401\"",
            "listen = \"[::]:7401\"",
            "listen = \"10.0.0.17:7401\"\nadvertise = \"0.0.0.0:7401\"",
            "advertise = \"[::]:7401\"",
            "advertise = \"desk-17\"",
        ] {
            let err = AgentConfig::parse(&format!("{base}{top}\n{tls}")).unwrap_err();
            assert!(err.contains("set `advertise`"), "{top:?}: {err}");
        }
        for (top, advertised) in [
            ("listen = \"10.0.0.17:7401\"", "10.0.0.17:7401"),
            ("advertise = \"10.0.0.17:7401\"", "10.0.0.17:7401"),
            ("advertise = \"desk-17.lan:7401\"", "desk-17.lan:7401"),
            ("advertise = \"[fd00::17]:7401\"", "[fd00::17]:7401"),
        ] {
            let cfg = AgentConfig::parse(&format!("{base}{top}\n{tls}")).unwrap();
            assert_eq!(cfg.advertised(), advertised);
        }
    }

    #[test]
    fn the_packaged_example_parses() {
        let cfg = AgentConfig::parse(include_str!("../../../packaging/agent.toml")).unwrap();
        assert_eq!(cfg.accel_choice, AccelChoice::Auto);
        assert_eq!(
            cfg.vms[0].mac.map(|m| m.to_string()).as_deref(),
            Some("52:54:00:12:34:17")
        );
        assert_eq!(cfg.on_stop, OnStop::Leave);
        let metrics = cfg.metrics.expect("the packaged agent serves metrics");
        assert_eq!(
            metrics.address(jettison_metrics::AGENT_PORT).to_string(),
            "127.0.0.1:9472",
            "on loopback"
        );
    }

    /// The packaged unit signals only the daemon on stop, so that the
    /// guests it leaves running at home (`on_stop = "leave"`) survive it.
    #[test]
    fn the_packaged_unit_leaves_qemu_running() {
        let unit = include_str!("../../../packaging/jettison-agent.service");
        let kill_modes: Vec<&str> = unit
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("KillMode="))
            .collect();
        assert_eq!(kill_modes, ["KillMode=process"], "{unit}");
        // Their QMP sockets (in the default run_dir) stay for the next agent.
        assert!(unit.contains("\nRuntimeDirectory=jettison\n"), "{unit}");
        assert!(unit.contains("\nRuntimeDirectoryPreserve=yes\n"), "{unit}");
        assert!(default_run_dir().starts_with("/run/jettison"));
        let timeout = unit
            .lines()
            .find_map(|l| l.trim().strip_prefix("TimeoutStopSec="))
            .and_then(|v| v.parse::<u64>().ok())
            .expect("TimeoutStopSec in seconds");
        assert!(
            timeout > default_stop_timeout_s(),
            "systemd must give on_stop = \"shutdown\" its default {} s: {timeout}",
            default_stop_timeout_s()
        );
    }
}
