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
    /// The daemons next to the running executable (or its parent directory,
    /// for test binaries under `deps/`).
    pub fn beside_current_exe() -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        for dir in exe.ancestors().skip(1).take(2) {
            let agent = dir.join("jettison-agent");
            let server = dir.join("jettison-server");
            let peer = dir.join("jettison-peer");
            if agent.is_file() && server.is_file() && peer.is_file() {
                return Ok(Binaries {
                    agent,
                    server,
                    peer,
                });
            }
        }
        bail!(
            "jettison-agent, jettison-server and jettison-peer not found next to {} (build the `jettison` and `jettison-peer` packages)",
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
    /// Let the desktop sleep while its VM is away (emulated power backend;
    /// LAN runs only).
    pub power: bool,
    /// With `power`: the agent's idle detection migrates the VM once the
    /// (emulated) user has given no input for this long.
    pub away_after_s: Option<u64>,
    /// With `power`: page-miss wakes resume the service devices only.
    pub selective_resume: bool,
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
            power: false,
            away_after_s: None,
            selective_resume: true,
        }
    }
}
