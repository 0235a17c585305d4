//! What a cluster is made of: the programs, and the options of a run.

use std::path::PathBuf;

use anyhow::bail;
use jettison_power_model::PrefetchConfig;

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `jettison-agent`.
    pub agent: PathBuf,
    /// `jettison-server`.
    pub server: PathBuf,
    /// `jettison-peer` (the office services; needed for LAN runs).
    pub peer: PathBuf,
}

impl Binaries {
    /// The cluster's programs ([`jettison_programs::CLUSTER`]) next to the
    /// running executable (or in its parent directory, for test binaries
    /// under `deps/`).
    pub fn beside_current_exe() -> anyhow::Result<Self> {
        use jettison_programs::{missing_in, AGENT, CLUSTER, PEER, SERVER};
        let exe = std::env::current_exe()?;
        let dirs: Vec<&std::path::Path> = exe.ancestors().skip(1).take(2).collect();
        if let Some(dir) = dirs.iter().find(|d| missing_in(d, &CLUSTER).is_empty()) {
            return Ok(Binaries {
                agent: dir.join(AGENT.bin),
                server: dir.join(SERVER.bin),
                peer: dir.join(PEER.bin),
            });
        }
        let missing = missing_in(dirs.first().copied().unwrap_or(&exe), &CLUSTER);
        let names: Vec<String> = missing
            .iter()
            .map(|p| format!("{} (package {})", p.bin, p.package))
            .collect();
        bail!(
            "{} not found next to {}: run it through `cargo xtask` (`demo` or `bench`), \
             which builds every program it needs",
            names.join(", "),
            exe.display()
        )
    }
}

/// How to set the cluster up.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Guest memory.
    pub memory_mib: u64,
    /// Share of guest memory the workload fills with data.
    pub fill_pct: u32,
    /// `tcg` or `kvm`.
    pub accel: String,
    /// FUSE readahead on the server.
    pub max_readahead: u32,
    /// Pages fetched per miss (a neighbourhood prefetch), unless `prefetch`
    /// is set.
    pub fetch_pages: u32,
    /// The server's prefetch policy; `None`: neighbourhood of `fetch_pages`.
    pub prefetch: Option<PrefetchConfig>,
    /// Work directory parent (a unique directory is made in it).
    pub work_root: PathBuf,
    /// Keep the work directory (logs) after teardown.
    pub keep: bool,
    /// Run the hosts as separate test hosts (network namespaces on one
    /// LAN, with a peer host for the office services and a NIC for the VM);
    /// otherwise both daemons run on loopback and the VM has no NIC.
    pub lan: bool,
    /// Give the VM a disk image of this size (MiB).
    pub disk_mib: Option<u64>,
    /// Seconds between the guest's mail-cache writes to its disk (`None`:
    /// the guest's default, 5 s).
    pub disk_interval_s: Option<u32>,
    /// Let the desktop sleep while its VM is away (emulated power backend;
    /// LAN runs only).
    pub power: bool,
    /// With `power`: the agent's idle detection migrates the VM once the
    /// (emulated) user has given no input for this long.
    pub away_after_s: Option<u64>,
    /// With `power`: page-miss wakes resume the service devices only.
    pub selective_resume: bool,
    /// Environment of the agent daemon (e.g. an injected fault).
    pub agent_env: Vec<(String, String)>,
    /// Environment of the server daemon.
    pub server_env: Vec<(String, String)>,
    /// The agent's `on_stop`: `shutdown` (the default here: the VM's QEMU
    /// stops with the agent) or `leave`.
    pub agent_on_stop: String,
    /// The server's `checkpoint_interval_s` (`None`: its default).
    pub checkpoint_interval_s: Option<u64>,
    /// Further desktops the CA issues certificates for (`<tls>/<name>.pem`)
    /// and the server accepts, besides `desktop` (e.g. an attacker's second
    /// desktop); no agent runs for them.
    pub extra_desktops: Vec<String>,
    /// The body of the server's `[limits]` table (`None`: its defaults),
    /// e.g. `"max_vms = 3\n"`.
    pub server_limits: Option<String>,
    /// The server's `replica_dir` (`None`: `replica` in the run's directory).
    pub server_replica_dir: Option<PathBuf>,
    /// The body of the server's `[pull]` table (`None`: its defaults), e.g.
    /// `"max_wakes = 1\n"` (see [`crate::configs::pull_section`]).
    pub server_pull: Option<String>,
    /// More `jettison.<key>=<value>` settings of the guest's kernel command
    /// line, e.g. `"jettison.scan_every_s=20"`.
    pub guest_args: Vec<String>,
}

impl ClusterOptions {
    /// The server's prefetch policy.
    pub fn prefetch(&self) -> PrefetchConfig {
        self.prefetch.unwrap_or(PrefetchConfig::Neighbourhood {
            pages: self.fetch_pages.max(1),
        })
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            memory_mib: 512,
            fill_pct: 50,
            accel: "tcg".into(),
            max_readahead: 0,
            fetch_pages: 1,
            prefetch: None,
            work_root: std::env::temp_dir(),
            keep: false,
            lan: false,
            disk_mib: None,
            disk_interval_s: None,
            power: false,
            away_after_s: None,
            selective_resume: true,
            agent_env: Vec::new(),
            server_env: Vec::new(),
            agent_on_stop: "shutdown".into(),
            checkpoint_interval_s: None,
            extra_desktops: Vec::new(),
            server_limits: None,
            server_replica_dir: None,
            server_pull: None,
            guest_args: Vec::new(),
        }
    }
}
