//! The server's configuration file (TOML).
//!
//! ```toml
//! host = "consol-1"                         # default: the kernel's hostname
//! listen = "0.0.0.0:7400"                   # agents connect here
//! control_socket = "/run/jettison/server.sock"
//! mount_dir = "/run/jettison/mem"           # the lazy memory filesystem
//! replica_dir = "/var/lib/jettison/replica" # fetched and dirty pages, per VM
//! state_dir = "/var/lib/jettison/server"    # handover records and recorded working sets, per VM
//! run_dir = "/run/jettison/server"          # QEMU sockets, console logs
//! image_dirs = ["/var/lib/jettison/images"] # boot files, found by digest
//! max_boot_file_mib = 1024                  # larger files there are not indexed
//! qemu_binary = "qemu-system-x86_64"
//! accel = "auto"                            # the default: KVM if a probe guest runs
//!                                           # under it, else TCG (logged); or "kvm", "tcg"
//! max_readahead = 0                         # FUSE readahead, bytes
//! # What a page miss fetches besides its page (see below); the default:
//! prefetch = { combined = { pages = 64, max_pages = 8192, periods = 4 } }
//! bridge = "br0"                            # LAN bridge for the VMs' taps
//! # Where magic packets may go (a desktop's `wol_broadcast` must lie in one);
//! # default: the networks of this server's interfaces, loopback's aside.
//! wol_networks = ["10.0.0.0/24"]
//! checkpoint_interval_s = 60                # 0: only at sleep and at a planned stop
//! keep_working_sets = true                  # false: keep no page numbers of a VM gone home
//! confine_qemu = true                       # each VM's QEMU as a user of its own, sandboxed, jailed
//! qemu_first_uid = 1900000000               # those users' ids: this and the max_vms after it
//! extra_qemu_args = []                      # added to every VM's QEMU; `{vm}`: its name
//!
//! [limits]                                  # checked before a VM is prepared
//! max_vm_memory_mib = 65536                 # per VM
//! max_vm_cpus = 64                          # per VM
//! max_vms = 128                             # VMs here, in any state
//! # max_total_memory_mib = 65536            # all guests; default: twice this host's RAM
//! max_total_replica_mib = 1048576           # all replicas (memory + disk), reserved on disk
//! min_free_mib = 1024                       # kept free where replicas and state live
//!
//! [pull]                                    # against wake storms (`crate::pull`)
//! enabled = true
//! max_wakes = 4                             # wakes for a VM's memory allowed per window
//! window_ms = 3600000
//! rate_bytes_per_s = 50000000               # the pull's rate limit
//! always_when_over_budget = false           # true: pull whenever over budget (delay first)
//! charge = "full-vm"                        # or "partial": the server's share of a pulled VM
//!
//! [metrics]                                 # absent: no metrics listener
//! listen = "127.0.0.1:9471"                 # GET /metrics (Prometheus), / (the dashboard)
//!
//! [tls]                                     # mutual TLS (see `jettison certs`); SIGHUP reloads it
//! ca = "/etc/jettison/tls/ca.pem"
//! cert = "/etc/jettison/tls/consol-1.pem"
//! key = "/etc/jettison/tls/consol-1.key"
//! allowed_peers = ["desk-17", "desk-18"]    # desktops whose VMs this server takes
//! crl = "/etc/jettison/tls/ca.crl"          # optional: the CA's revocation list
//! expiry_warning_days = 30                  # warn this long before an expiry
//! ```
//!
//! `prefetch` is a [`PrefetchConfig`]: `"none"` (the missing page only),
//! `{ neighbourhood = { pages = N } }` (the aligned group of N pages around
//! each miss, N a power of two up to 1024), `{ working-set = { max_pages, periods } }`
//! (at a VM's first miss of a period, also the pages it used in its last
//! `periods` periods on this server, at most `max_pages`, recorded in
//! `state_dir`), or `{ combined = { pages, max_pages, periods } }` (both).
//! The default is `combined` with 64-page groups (256 KiB) and a working set
//! of at most 8192 pages (32 MiB) from the last 4 periods: while the VM is
//! away its desktop sleeps, and every miss that finds it asleep costs a wake
//! (seconds of resume and hundreds of joules), whereas fetching a few hundred
//! KiB more with a miss costs milliseconds on a LAN. `none` suits a desktop
//! that never sleeps, where only latency matters.
//!
//! Boot files: a desktop names a VM's kernel and initramfs by BLAKE3 digest;
//! the server boots only a regular file with that digest directly in one of
//! its `image_dirs` (symlinks, FIFOs and devices there are skipped, files
//! over `max_boot_file_mib` not hashed), indexed at start-up and again when
//! a digest is not found. QEMU arguments never come from the desktop:
//! `extra_qemu_args` are the operator's, added to every VM's command line
//! (`{vm}` replaced by the VM's name), and must not change the machine's
//! device state (a second monitor, say).
//!
//! `[limits]`: a VM beyond a per-VM limit, or that does not fit beside the
//! VMs here (their number, guest memory and replica bytes, counted from
//! `MigratePrepare` on, and the free space of the replica and state
//! filesystems less `min_free_mib`), is refused before anything of it is
//! made, with the limit it hit (see `crate::admission`). Each VM's replicas
//! are allocated whole when it arrives, so a disk that fills later never
//! fails a running VM. The default total guest memory is twice the host's
//! RAM: guest RAM here is a file whose pages the kernel writes back to the
//! replica, so idle guests may overcommit it, busy ones thrash.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jettison_power_model::PrefetchConfig;

pub use crate::admission::Limits;
use jettison_qemu::{Accel, AccelChoice};
use serde::Deserialize;

/// The server's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// This server's name.
    #[serde(default = "jettison_daemon::hostname")]
    pub host: String,
    /// Address agents connect to.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The operator's control socket.
    #[serde(default = "default_control")]
    pub control_socket: PathBuf,
    /// Mount point of the lazy memory filesystem.
    #[serde(default = "default_mount")]
    pub mount_dir: PathBuf,
    /// Local replicas of consolidated VMs' memory.
    #[serde(default = "default_replica")]
    pub replica_dir: PathBuf,
    /// Persistent state: handover records and the recorded working sets.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Runtime files: QEMU sockets and console logs.
    #[serde(default = "default_run_dir")]
    pub run_dir: PathBuf,
    /// Directories whose regular files are the boot files VMs may boot,
    /// found by digest.
    #[serde(default)]
    pub image_dirs: Vec<PathBuf>,
    /// Files in `image_dirs` larger than this (MiB) are not indexed.
    #[serde(default = "default_max_boot_file_mib")]
    pub max_boot_file_mib: u64,
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
    /// FUSE readahead in bytes (0: a fault reads only what it touches).
    #[serde(default)]
    pub max_readahead: u32,
    /// What a page miss fetches besides its page.
    #[serde(default = "default_prefetch")]
    pub prefetch: PrefetchConfig,
    /// The LAN bridge consolidated VMs' taps are attached to.
    pub bridge: Option<String>,
    /// The networks a desktop's Wake-on-LAN target (`GoingToSleep`'s
    /// `wol_addr`) must lie in; `None`: the networks of this server's
    /// interfaces, loopback's aside, read at each announcement (see
    /// [`crate::lan`]).
    #[serde(default)]
    pub wol_networks: Option<Vec<crate::lan::IpNet>>,
    /// How often each consolidated VM is checkpointed (device state and the
    /// pages written since the last one, durable in `state_dir`), in
    /// seconds; 0 checkpoints only when its desktop goes to sleep and when
    /// the server stops. A crash of the server host loses at most this much
    /// of a guest's work.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval_s: u64,
    /// The operator's further QEMU arguments for every VM, `{vm}` replaced
    /// by its name.
    #[serde(default)]
    pub extra_qemu_args: Vec<String>,
    /// What VMs this server takes.
    #[serde(default)]
    pub limits: Limits,
    /// Record, per VM, the page numbers it used in its last periods here
    /// (not their contents), for the prefetch policy's working-set part.
    /// False: nothing of a VM stays once it is home, and the files of
    /// earlier runs are removed at start-up.
    #[serde(default = "default_true")]
    pub keep_working_sets: bool,
    /// Run each VM's QEMU as a user of its own, under QEMU's sandbox, in a
    /// mount namespace of its own (bubblewrap, which must be installed) and
    /// a run directory of its own (`jettison_qemu::Confinement`). False runs
    /// them as the daemon's user (root), unjailed: only for debugging.
    #[serde(default = "default_true")]
    pub confine_qemu: bool,
    /// The first of the ids those users get: `limits.max_vms` ids from
    /// here, which no account of this host may use. The default lies above
    /// the ranges systemd gives out (system, regular, dynamic and container
    /// users).
    #[serde(default = "default_first_uid")]
    pub qemu_first_uid: u32,
    /// The HTTP listener of the Prometheus metrics (`/metrics`) and the
    /// dashboard (`/`); none if absent. Its `listen` defaults to loopback,
    /// port [`jettison_metrics::SERVER_PORT`].
    #[serde(default)]
    pub metrics: Option<jettison_metrics::MetricsConfig>,
    /// Against wake storms: when a VM's misses wake its desktop more than
    /// `max_wakes` times within `window_ms` (and, unless
    /// `always_when_over_budget`, the energy comparison says it pays), pull
    /// the rest of its memory at `rate_bytes_per_s` so that the desktop
    /// sleeps through (`crate::pull`).
    #[serde(default)]
    pub pull: jettison_power_model::PullConfig,
    /// Mutual TLS: this server's certificate and the desktops it accepts.
    pub tls: jettison_tls::TlsSettings,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7400))
}
fn default_control() -> PathBuf {
    PathBuf::from("/run/jettison/server.sock")
}
fn default_mount() -> PathBuf {
    PathBuf::from("/run/jettison/mem")
}
fn default_replica() -> PathBuf {
    PathBuf::from("/var/lib/jettison/replica")
}
fn default_run_dir() -> PathBuf {
    PathBuf::from("/run/jettison/server")
}
fn default_qemu() -> PathBuf {
    PathBuf::from("qemu-system-x86_64")
}
fn default_first_uid() -> u32 {
    1_900_000_000
}
fn default_true() -> bool {
    true
}
fn default_checkpoint_interval() -> u64 {
    60
}
fn default_max_boot_file_mib() -> u64 {
    1024
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/jettison/server")
}
/// The default prefetch policy (see the module documentation).
pub fn default_prefetch() -> PrefetchConfig {
    PrefetchConfig::Combined {
        pages: 64,
        max_pages: 8192,
        periods: 4,
    }
}

impl ServerConfig {
    /// Settles the accelerator: for `accel = "auto"` boots the probe
    /// guest under KVM (up to `jettison_qemu::accel_probe::PROBE_TIMEOUT`)
    /// and takes TCG if it does not run; logs the choice and why.
    pub fn choose_accel(&mut self) {
        self.accel = jettison_qemu::choose_accel(self.accel_choice, &self.qemu_binary).accel;
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut cfg: ServerConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.accel = cfg.accel_choice.fixed().unwrap_or_default();
        cfg.prefetch
            .validate()
            .map_err(|e| format!("prefetch: {e}"))?;
        let l = &cfg.limits;
        if l.max_vm_memory_mib == 0 || l.max_vm_cpus == 0 || l.max_vms == 0 {
            return Err(
                "limits: max_vm_memory_mib, max_vm_cpus and max_vms must be at least 1".into(),
            );
        }
        if cfg.qemu_first_uid == 0
            || u32::try_from(l.max_vms)
                .ok()
                .and_then(|n| cfg.qemu_first_uid.checked_add(n))
                .is_none_or(|end| end >= u32::MAX - 1)
        {
            return Err(format!(
                "qemu_first_uid {} with max_vms {}: the ids must lie between 1 and {}",
                cfg.qemu_first_uid,
                l.max_vms,
                u32::MAX - 2
            ));
        }
        for arg in &cfg.extra_qemu_args {
            let rest = arg.replace("{vm}", "");
            if rest.contains('{') || rest.contains('}') {
                return Err(format!(
                    "extra_qemu_args: {arg:?}: the only placeholder is {{vm}}"
                ));
            }
        }
        if cfg.wol_networks.as_ref().is_some_and(|n| n.is_empty()) {
            return Err(
                "wol_networks is empty: no desktop could announce its sleep; list the LAN's \
                 networks or leave the setting out (default: this server's networks)"
                    .into(),
            );
        }
        Ok(cfg)
    }

    /// The operator's QEMU arguments for `vm`.
    pub fn qemu_args(&self, vm: &str) -> Vec<String> {
        self.extra_qemu_args
            .iter()
            .map(|a| a.replace("{vm}", vm))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS: &str = "[tls]\nca = \"/c\"\ncert = \"/h\"\nkey = \"/k\"\nallowed_peers = [\"d\"]\n";

    #[test]
    fn defaults() {
        let cfg = ServerConfig::parse(TLS).unwrap();
        assert_eq!(cfg.listen.port(), 7400);
        assert_eq!(cfg.prefetch, default_prefetch());
        assert_eq!(cfg.prefetch.group_pages(), 64);
        assert_eq!(cfg.state_dir, PathBuf::from("/var/lib/jettison/server"));
        assert_eq!(cfg.max_readahead, 0);
        assert_eq!(cfg.accel_choice, AccelChoice::Auto);
        assert_eq!(cfg.accel, Accel::Tcg, "until the probe chose");
        assert_eq!(cfg.bridge, None);
        assert_eq!(cfg.checkpoint_interval_s, 60);
        assert_eq!(cfg.limits, Limits::default());
        assert_eq!(cfg.limits.max_vm_memory_mib, 65536);
        assert_eq!(cfg.limits.max_total_memory_mib, None);
        assert_eq!(cfg.max_boot_file_mib, 1024);
        assert!(cfg.extra_qemu_args.is_empty());
        assert_eq!(cfg.wol_networks, None);
    }

    #[test]
    fn limits_and_qemu_args_parse_and_are_checked() {
        let cfg = ServerConfig::parse(&format!(
            "extra_qemu_args = [\"-mon\", \"chardev=m-{{vm}}\"]\n[limits]\nmax_vms = 3\n\
             max_total_memory_mib = 512\n{TLS}"
        ))
        .unwrap();
        assert_eq!(cfg.limits.max_vms, 3);
        assert_eq!(cfg.limits.max_total_memory_mib, Some(512));
        assert_eq!(cfg.qemu_args("vm1"), ["-mon", "chardev=m-vm1"]);
        let err =
            ServerConfig::parse(&format!("extra_qemu_args = [\"{{name}}\"]\n{TLS}")).unwrap_err();
        assert!(err.contains("only placeholder"), "{err}");
        let err = ServerConfig::parse(&format!("[limits]\nmax_vms = 0\n{TLS}")).unwrap_err();
        assert!(err.contains("at least 1"), "{err}");
        let err = ServerConfig::parse(&format!("[limits]\nmax_vcpus = 2\n{TLS}")).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn wol_networks_parse_and_an_empty_or_bad_list_is_refused() {
        let cfg = ServerConfig::parse(&format!(
            "wol_networks = [\"10.0.0.0/24\", \"fd00::/64\"]\n{TLS}"
        ))
        .unwrap();
        let nets: Vec<String> = cfg
            .wol_networks
            .unwrap()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.0.0.0/24", "fd00::/64"]);
        let err = ServerConfig::parse(&format!("wol_networks = []\n{TLS}")).unwrap_err();
        assert!(err.contains("wol_networks is empty"), "{err}");
        let err =
            ServerConfig::parse(&format!("wol_networks = [\"10.0.0.0/40\"]\n{TLS}")).unwrap_err();
        assert!(err.contains("bad network"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        let err = ServerConfig::parse(&format!(
            "prefetch = {{ neighbourhood = {{ pages = 3 }} }}\n{TLS}"
        ))
        .unwrap_err();
        assert!(
            err.contains("prefetch") && err.contains("power of two"),
            "{err}"
        );
        let err = ServerConfig::parse(&format!(
            "prefetch = {{ working-set = {{ max_pages = 10, periods = 0 }} }}\n{TLS}"
        ))
        .unwrap_err();
        assert!(err.contains("at least 1"), "{err}");
        assert!(ServerConfig::parse(&format!("prefetch = \"lots\"\n{TLS}")).is_err());
        // The old setting is gone, not silently ignored.
        assert!(ServerConfig::parse(&format!("fetch_pages = 64\n{TLS}"))
            .unwrap_err()
            .contains("unknown field"));
        assert!(ServerConfig::parse(&format!("listen = \"nowhere\"\n{TLS}")).is_err());
        assert!(ServerConfig::parse(&format!("colour = 1\n{TLS}"))
            .unwrap_err()
            .contains("unknown field"));
        assert!(ServerConfig::parse("")
            .unwrap_err()
            .contains("missing field `tls`"));
    }

    #[test]
    fn prefetch_policies_parse() {
        let p = |t: &str| {
            ServerConfig::parse(&format!("{t}\n{TLS}"))
                .unwrap()
                .prefetch
        };
        assert_eq!(p("prefetch = \"none\""), PrefetchConfig::None);
        assert_eq!(
            p("prefetch = { neighbourhood = { pages = 64 } }"),
            PrefetchConfig::Neighbourhood { pages: 64 }
        );
        assert_eq!(
            p("prefetch = { combined = { pages = 8, max_pages = 100, periods = 2 } }"),
            PrefetchConfig::Combined {
                pages: 8,
                max_pages: 100,
                periods: 2
            }
        );
    }

    #[test]
    fn the_packaged_example_parses() {
        let cfg = ServerConfig::parse(include_str!("../../../packaging/server.toml")).unwrap();
        assert_eq!(cfg.accel_choice, AccelChoice::Auto);
        assert_eq!(cfg.tls.allowed_peers.len(), 2);
        assert_eq!(cfg.prefetch, default_prefetch());
        assert_eq!(
            cfg.pull,
            jettison_power_model::PullConfig::default(),
            "the packaged [pull] is the policy's default"
        );
        let metrics = cfg.metrics.expect("the packaged server serves metrics");
        assert_eq!(
            metrics.address(jettison_metrics::SERVER_PORT).to_string(),
            "127.0.0.1:9471",
            "on loopback"
        );
        // The same without its [metrics] table (its last): no listener.
        let text = include_str!("../../../packaging/server.toml");
        let cfg = ServerConfig::parse(&text[..text.find("\n[metrics]").unwrap()]).unwrap();
        assert!(cfg.metrics.is_none(), "no [metrics] table: no listener");
    }

    #[test]
    fn pull_defaults_to_the_policy_and_refuses_unknown_keys() {
        let tls = "[tls]\nca = \"c\"\ncert = \"h\"\nkey = \"k\"\nallowed_peers = [\"d\"]\n";
        let cfg = ServerConfig::parse(tls).unwrap();
        assert_eq!(cfg.pull, jettison_power_model::PullConfig::default());
        let cfg =
            ServerConfig::parse(&format!("{tls}[pull]\nmax_wakes = 1\nenabled = false\n")).unwrap();
        assert_eq!((cfg.pull.max_wakes, cfg.pull.enabled), (1, false));
        assert!(ServerConfig::parse(&format!("{tls}[pull]\nmax_wake = 1\n")).is_err());
    }
}
