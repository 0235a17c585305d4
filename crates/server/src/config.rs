//! The server's configuration file (TOML).
//!
//! ```toml
//! host = "consol-1"                         # default: the kernel's hostname
//! listen = "0.0.0.0:7400"                   # agents connect here
//! control_socket = "/run/jettison/server.sock"
//! mount_dir = "/run/jettison/mem"           # the lazy memory filesystem
//! replica_dir = "/var/lib/jettison/replica" # fetched and dirty pages, per VM
//! run_dir = "/run/jettison/server"          # QEMU sockets, console logs
//! image_dirs = ["/var/lib/jettison/images"] # where boot files are looked up
//! qemu_binary = "qemu-system-x86_64"
//! accel = "kvm"                             # or "tcg"
//! max_readahead = 0                         # FUSE readahead, bytes
//! fetch_pages = 1                           # pages fetched per miss
//! bridge = "br0"                            # LAN bridge for the VMs' taps
//!
//! [tls]                                     # mutual TLS (see `jettison certs`)
//! ca = "/etc/jettison/tls/ca.pem"
//! cert = "/etc/jettison/tls/consol-1.pem"
//! key = "/etc/jettison/tls/consol-1.key"
//! allowed_peers = ["desk-17", "desk-18"]    # desktops whose VMs this server takes
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jettison_qemu::Accel;
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
    /// Runtime files: QEMU sockets and console logs.
    #[serde(default = "default_run_dir")]
    pub run_dir: PathBuf,
    /// Directories searched for boot files (by name, checked by digest).
    #[serde(default)]
    pub image_dirs: Vec<PathBuf>,
    /// QEMU binary.
    #[serde(default = "default_qemu")]
    pub qemu_binary: PathBuf,
    /// Accelerator.
    #[serde(default)]
    pub accel: Accel,
    /// FUSE readahead in bytes (0: a fault reads only what it touches).
    #[serde(default)]
    pub max_readahead: u32,
    /// Pages fetched from the desktop per miss (aligned group around it).
    #[serde(default = "one")]
    pub fetch_pages: u32,
    /// The LAN bridge consolidated VMs' taps are attached to.
    pub bridge: Option<String>,
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
fn one() -> u32 {
    1
}

impl ServerConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cfg: ServerConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if cfg.fetch_pages == 0 || !cfg.fetch_pages.is_power_of_two() || cfg.fetch_pages > 1024 {
            return Err(format!(
                "fetch_pages = {}: use a power of two from 1 to 1024",
                cfg.fetch_pages
            ));
        }
        Ok(cfg)
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
        assert_eq!(cfg.fetch_pages, 1);
        assert_eq!(cfg.max_readahead, 0);
        assert_eq!(cfg.accel, Accel::Tcg);
        assert_eq!(cfg.bridge, None);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(ServerConfig::parse(&format!("fetch_pages = 3\n{TLS}"))
            .unwrap_err()
            .contains("power of two"));
        assert!(ServerConfig::parse(&format!("listen = \"nowhere\"\n{TLS}")).is_err());
        assert!(ServerConfig::parse(&format!("colour = 1\n{TLS}"))
            .unwrap_err()
            .contains("unknown field"));
        assert!(ServerConfig::parse("")
            .unwrap_err()
            .contains("missing field `tls`"));
    }

    #[test]
    fn the_packaged_example_parses() {
        let cfg = ServerConfig::parse(include_str!("../../../packaging/server.toml")).unwrap();
        assert_eq!(cfg.accel, Accel::Kvm);
        assert_eq!(cfg.tls.allowed_peers.len(), 2);
    }
}
