//! The daemons' configuration files for a cluster, generated from where each
//! host is (pure text generation).

use std::path::Path;

use jettison_power_model::PrefetchConfig;

/// One daemon's addresses and files, as the other side needs them.
#[derive(Debug, Clone)]
pub struct Layout<'a> {
    /// Work directory of the run.
    pub dir: &'a Path,
    /// The server's agent-facing address.
    pub server_addr: &'a str,
    /// The desktop's state server address.
    pub state_addr: &'a str,
    /// The LAN bridge on each host, when VMs have a NIC.
    pub bridge: Option<&'a str>,
    /// `tcg` or `kvm`.
    pub accel: &'a str,
    /// TLS `[tls]` sections for (server, agent), if any.
    pub tls: Option<(String, String)>,
    /// The agent's `[power]` section, if the desktop may sleep.
    pub agent_power: Option<String>,
}

/// The VM of the run.
#[derive(Debug, Clone)]
pub struct VmLayout<'a> {
    /// Name.
    pub name: &'a str,
    /// Memory.
    pub memory_mib: u64,
    /// Kernel and initramfs.
    pub kernel: &'a Path,
    /// Initramfs.
    pub initrd: &'a Path,
    /// Full kernel command line.
    pub append: &'a str,
    /// NIC MAC, if any.
    pub mac: Option<&'a str>,
    /// Disk image and size, if any.
    pub disk: Option<(&'a Path, u64)>,
}

/// The server's TOML, fetching the aligned group of `fetch_pages` around
/// each miss (a neighbourhood prefetch).
pub fn server_toml(l: &Layout, image_dir: &Path, max_readahead: u32, fetch_pages: u32) -> String {
    let prefetch = PrefetchConfig::Neighbourhood {
        pages: fetch_pages.max(1),
    };
    server_toml_prefetch(l, image_dir, max_readahead, &prefetch)
}

/// The server's TOML with a prefetch policy.
pub fn server_toml_prefetch(
    l: &Layout,
    image_dir: &Path,
    max_readahead: u32,
    prefetch: &PrefetchConfig,
) -> String {
    let d = |p: &str| l.dir.join(p).display().to_string();
    let mut s = format!(
        "host = \"server\"\nlisten = \"{}\"\ncontrol_socket = \"{}\"\nmount_dir = \"{}\"\nreplica_dir = \"{}\"\n\
         state_dir = \"{}\"\nrun_dir = \"{}\"\nimage_dirs = [\"{}\"]\naccel = \"{}\"\nmax_readahead = {max_readahead}\nprefetch = {}\n",
        l.server_addr,
        d("server.sock"),
        d("mnt"),
        d("replica"),
        d("server-state"),
        d("server-run"),
        image_dir.display(),
        l.accel,
        prefetch_toml(prefetch),
    );
    if let Some(b) = l.bridge {
        s += &format!("bridge = \"{b}\"\n");
    }
    if let Some((tls, _)) = &l.tls {
        s += tls;
    }
    s
}

/// A daemon's `[metrics]` table listening on `listen` (a table: appended
/// after the top-level keys).
pub fn metrics_section(listen: std::net::SocketAddr) -> String {
    format!("\n[metrics]\nlisten = \"{listen}\"\n")
}

/// The server's `[pull]` table with `body` (its keys, one a line; a table:
/// appended after the top-level keys).
pub fn pull_section(body: &str) -> String {
    format!("\n[pull]\n{body}")
}

/// A prefetch policy as a TOML value.
pub fn prefetch_toml(p: &PrefetchConfig) -> String {
    match *p {
        PrefetchConfig::None => "\"none\"".into(),
        PrefetchConfig::Neighbourhood { pages } => {
            format!("{{ neighbourhood = {{ pages = {pages} }} }}")
        }
        PrefetchConfig::WorkingSet { max_pages, periods } => {
            format!("{{ working-set = {{ max_pages = {max_pages}, periods = {periods} }} }}")
        }
        PrefetchConfig::Combined {
            pages,
            max_pages,
            periods,
        } => format!(
            "{{ combined = {{ pages = {pages}, max_pages = {max_pages}, periods = {periods} }} }}"
        ),
    }
}

/// The agent's TOML, with `on_stop = "shutdown"`: on test hosts the VM's
/// QEMU stops with the agent (the test guest ignores the ACPI power button,
/// so it is quit after a short `stop_timeout_s`).
pub fn agent_toml(l: &Layout, vm: &VmLayout) -> String {
    agent_toml_on_stop(l, vm, "shutdown")
}

/// The agent's TOML with this `on_stop` (`leave` or `shutdown`).
pub fn agent_toml_on_stop(l: &Layout, vm: &VmLayout, on_stop: &str) -> String {
    let d = |p: &str| l.dir.join(p).display().to_string();
    let mut s = format!(
        "host = \"desktop\"\nserver = \"{}\"\nserver_name = \"server\"\nlisten = \"{}\"\ncontrol_socket = \"{}\"\nstate_dir = \"{}\"\n\
         run_dir = \"{}\"\nmemory_dir = \"/dev/shm\"\naccel = \"{}\"\non_stop = \"{on_stop}\"\nstop_timeout_s = {STOP_TIMEOUT_S}\n",
        l.server_addr,
        l.state_addr,
        d("agent.sock"),
        d("agent-state"),
        d("agent-run"),
        l.accel,
    );
    if let Some(b) = l.bridge {
        s += &format!("bridge = \"{b}\"\n");
    }
    if let Some((_, tls)) = &l.tls {
        s += tls;
    }
    if let Some(power) = &l.agent_power {
        s += power;
    }
    s += &format!(
        "\n[[vm]]\nname = \"{}\"\nmemory_mib = {}\nkernel = \"{}\"\ninitrd = \"{}\"\nappend = \"{}\"\n",
        vm.name,
        vm.memory_mib,
        vm.kernel.display(),
        vm.initrd.display(),
        vm.append
    );
    if let Some(mac) = vm.mac {
        s += &format!("mac = \"{mac}\"\n");
    }
    if let Some((path, _)) = vm.disk {
        // The agent never creates it: the cluster makes the image first.
        s += &format!("disk = \"{}\"\n", path.display());
    }
    s
}

/// The agent's `stop_timeout_s` on test hosts: the test guest ignores the
/// power button, so this is how long stopping an agent with
/// `on_stop = "shutdown"` takes (the harness waits 10 s before SIGKILL).
pub const STOP_TIMEOUT_S: u64 = 2;

/// The `[tls]` section of a host whose certificate is `<tls_dir>/<host>.pem`
/// and which talks only to `peer`.
pub fn tls_section(tls_dir: &Path, host: &str, peer: &str) -> String {
    tls_section_peers(tls_dir, host, &[peer])
}

/// The `[tls]` section of a host whose certificate is `<tls_dir>/<host>.pem`
/// and which talks to `peers`.
pub fn tls_section_peers(tls_dir: &Path, host: &str, peers: &[&str]) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\nallowed_peers = [{}]\n",
        tls_dir.join("ca.pem").display(),
        tls_dir.join(format!("{host}.pem")).display(),
        tls_dir.join(format!("{host}.key")).display(),
        peers.join(", "),
    )
}

/// The TLS context of a host set up by [`tls_section`] (its certificate in
/// `tls_dir`, talking only to `peer`).
pub fn tls_context(
    tls_dir: &Path,
    host: &str,
    peer: &str,
) -> anyhow::Result<std::sync::Arc<jettison_tls::TlsContext>> {
    let table: toml::Table = toml::from_str(&tls_section(tls_dir, host, peer))?;
    let settings: jettison_tls::TlsSettings = table["tls"].clone().try_into()?;
    Ok(jettison_tls::TlsContext::load(&settings)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_configs_carry_every_setting() {
        let dir = Path::new("/w");
        let l = Layout {
            dir,
            server_addr: "10.0.0.2:7400",
            state_addr: "10.0.0.10:7401",
            bridge: Some("br0"),
            accel: "tcg",
            tls: Some(("[tls]\nca = \"s\"\n".into(), "[tls]\nca = \"a\"\n".into())),
            agent_power: None,
        };
        let vm = VmLayout {
            name: "vm1",
            memory_mib: 256,
            kernel: Path::new("/k"),
            initrd: Path::new("/i"),
            append: "console=ttyS0",
            mac: Some("52:54:00:00:00:01"),
            disk: Some((Path::new("/w/vm1.img"), 32)),
        };
        let s = server_toml(&l, Path::new("/img"), 0, 1);
        assert!(
            s.contains("prefetch = { neighbourhood = { pages = 1 } }"),
            "{s}"
        );
        assert!(s.contains("state_dir = \"/w/server-state\""));
        assert!(
            s.contains("listen = \"10.0.0.2:7400\"")
                && s.contains("bridge = \"br0\"")
                && s.contains("ca = \"s\"")
        );
        assert!(s.contains("mount_dir = \"/w/mnt\""));
        let a = agent_toml(&l, &vm);
        assert!(
            a.contains("on_stop = \"shutdown\"\nstop_timeout_s = 2\n"),
            "{a}"
        );
        assert!(agent_toml_on_stop(&l, &vm, "leave").contains("on_stop = \"leave\""));
        assert!(
            a.contains("server = \"10.0.0.2:7400\"") && a.contains("listen = \"10.0.0.10:7401\"")
        );
        assert!(
            a.contains("mac = \"52:54:00:00:00:01\"")
                && a.contains("disk = \"/w/vm1.img\"\n")
                && !a.contains("disk_mib")
                && a.contains("ca = \"a\"")
        );
        // Every policy is written as the server parses it.
        #[derive(serde::Deserialize)]
        struct T {
            prefetch: PrefetchConfig,
        }
        for p in [
            PrefetchConfig::None,
            PrefetchConfig::Neighbourhood { pages: 64 },
            PrefetchConfig::WorkingSet {
                max_pages: 10,
                periods: 2,
            },
            PrefetchConfig::Combined {
                pages: 8,
                max_pages: 100,
                periods: 4,
            },
        ] {
            let t: T = toml::from_str(&format!("prefetch = {}", prefetch_toml(&p))).unwrap();
            assert_eq!(t.prefetch, p);
        }
        let two = tls_section_peers(dir, "server", &["desktop", "desktop2"]);
        assert!(
            two.contains("allowed_peers = [\"desktop\", \"desktop2\"]\n")
                && two.contains("cert = \"/w/server.pem\""),
            "{two}"
        );
        assert!(tls_section(dir, "desktop", "server").contains("allowed_peers = [\"server\"]\n"));
        // The [tls] table must come before [[vm]] (TOML scoping).
        assert!(a.find("[tls]").unwrap() < a.find("[[vm]]").unwrap());
    }
}
