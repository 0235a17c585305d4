//! A desktop agent and a consolidation server started as real processes on
//! this machine (loopback), with generated configuration, unique names, and
//! teardown on drop: processes, the FUSE mount, the VM's memory file and the
//! work directory go, also when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jettison_testbed::{Host, Lan, LanSpec};
use jettison_wire::Message;

use crate::configs::{
    agent_toml_on_stop, server_toml_prefetch, tls_section_peers, Layout, VmLayout,
};
use crate::guest::GuestImage;
pub use crate::options::{Binaries, ClusterOptions};
pub use crate::procs::tail;
use crate::procs::{kill_child, kill_stray_qemus, spawn_logged, stop_child, wait_for_socket};
pub use crate::setup::USER_PORT;
use crate::setup::{free_port, make_certs, power_section, thaw_agent, OTHER_DESKTOP, OTHER_SERVER};

/// The daemons, the office services, and their files.
#[derive(Debug)]
pub struct Cluster {
    /// VM name (unique per run).
    pub vm: String,
    /// Work directory.
    pub dir: PathBuf,
    /// The agent's control socket.
    pub agent_socket: PathBuf,
    /// The server's control socket.
    pub server_socket: PathBuf,
    /// The server's lazy memory mount.
    pub mount_dir: PathBuf,
    /// The desktop's memory file.
    pub mem_path: PathBuf,
    /// The desktop's disk image, if the VM has one.
    pub disk_path: Option<PathBuf>,
    /// The agent's state server address.
    pub state_addr: String,
    /// The server's agent-facing address.
    pub server_addr: String,
    /// The peer host's chat, mail and status addresses (LAN runs).
    pub peer_addrs: Option<PeerAddrs>,
    /// The server's metrics and dashboard listener, in its host (on a LAN
    /// its own loopback, the default; see `observe`).
    pub server_metrics: std::net::SocketAddr,
    /// The agent's metrics listener, in its host.
    pub agent_metrics: std::net::SocketAddr,
    bins: Binaries,
    agent: Option<Child>,
    server: Option<Child>,
    peer: Option<Child>,
    keep: bool,
    /// Environment of the agent and of the server, at their next start.
    pub daemon_env: [Vec<(String, String)>; 2],
    /// Dropped last: the namespaces go after every process in them.
    lan: Option<Lan>,
}

/// Where the office services listen.
#[derive(Debug, Clone)]
pub struct PeerAddrs {
    /// Chat server.
    pub chat: String,
    /// Mail server.
    pub mail: String,
    /// Counters.
    pub status: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Cluster {
    /// Makes the hosts, writes the configurations and starts the daemons
    /// (and, on a LAN, the office services); the agent boots the VM.
    pub async fn start(
        bins: &Binaries,
        image: &GuestImage,
        opts: &ClusterOptions,
    ) -> anyhow::Result<Cluster> {
        let lan = if opts.lan {
            Some(Lan::create(&LanSpec { desktops: 1 })?)
        } else {
            None
        };
        let id = match &lan {
            Some(l) => l.vm_name(0),
            None => format!(
                "jt{}x{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::SeqCst)
            ),
        };
        let dir = opts.work_root.join(&id);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (server_addr, state_addr) = match &lan {
            Some(l) => (
                format!("{}:7400", l.server().ip),
                format!("{}:7401", l.desktop(0).ip),
            ),
            None => (
                format!("127.0.0.1:{}", free_port()?),
                format!("127.0.0.1:{}", free_port()?),
            ),
        };
        // On a LAN each daemon listens on its host's loopback, at the
        // default ports; on this machine's loopback, at free ones.
        let (server_metrics, agent_metrics) = match &lan {
            Some(_) => (
                std::net::SocketAddr::from(([127, 0, 0, 1], jettison_metrics::SERVER_PORT)),
                std::net::SocketAddr::from(([127, 0, 0, 1], jettison_metrics::AGENT_PORT)),
            ),
            None => (
                std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?)),
                std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            ),
        };
        let peer_addrs = lan.as_ref().map(|l| {
            let ip = l.peer().ip;
            PeerAddrs {
                chat: format!("{ip}:5222"),
                mail: format!("{ip}:1110"),
                status: format!("{ip}:5280"),
            }
        });
        let mut append = format!("{} jettison.fill_pct={}", image.cmdline, opts.fill_pct);
        if let (Some(l), Some(p)) = (&lan, &peer_addrs) {
            append += &format!(
                " jettison.ip={}/24 jettison.peer={} jettison.mail={} jettison.id={id} jettison.mail_interval_s=5",
                l.vm_ip(0),
                p.chat,
                p.mail
            );
        }
        if let Some(s) = opts.disk_interval_s {
            append += &format!(" jettison.disk_interval_s={s}");
        }
        for a in &opts.guest_args {
            append += &format!(" {a}");
        }
        let mac = lan.as_ref().map(|l| l.vm_mac(0));
        let disk_path = opts.disk_mib.map(|_| dir.join(format!("{id}.img")));
        let tls_dir = dir.join("tls");
        make_certs(&tls_dir, &opts.extra_desktops)?;
        let server_peers: Vec<&str> = ["desktop", OTHER_DESKTOP]
            .into_iter()
            .chain(opts.extra_desktops.iter().map(String::as_str))
            .collect();
        let layout = Layout {
            dir: &dir,
            server_addr: &server_addr,
            state_addr: &state_addr,
            bridge: lan.as_ref().map(|l| l.server().bridge()),
            accel: &opts.accel,
            tls: Some((
                // Each also accepts a second peer of the fleet, which runs
                // nothing: tests speak as it (see `OTHER_DESKTOP`); the
                // server also any extra desktops (the attack suite's).
                tls_section_peers(&tls_dir, "server", &server_peers),
                tls_section_peers(&tls_dir, "desktop", &["server", OTHER_SERVER]),
            )),
            agent_power: lan
                .as_ref()
                .filter(|_| opts.power)
                .map(|l| power_section(l, opts.away_after_s, opts.selective_resume)),
        };
        let vm = VmLayout {
            name: &id,
            memory_mib: opts.memory_mib,
            kernel: &image.kernel,
            initrd: &image.initrd,
            append: &append,
            mac: mac.as_deref(),
            disk: disk_path.as_deref().zip(opts.disk_mib),
        };
        let mut server_toml =
            server_toml_prefetch(&layout, &image.dir, opts.max_readahead, &opts.prefetch());
        if let Some(limits) = &opts.server_limits {
            // A table of its own, after [tls].
            server_toml.push_str(&format!("[limits]\n{limits}"));
        }
        if let Some(pull) = &opts.server_pull {
            server_toml.push_str(&crate::configs::pull_section(pull));
        }
        if let Some(to) = &opts.server_replica_dir {
            let from = format!(
                "replica_dir = {:?}\n",
                dir.join("replica").display().to_string()
            );
            anyhow::ensure!(
                server_toml.contains(&from),
                "no replica_dir in the server's configuration"
            );
            server_toml = server_toml.replace(
                &from,
                &format!("replica_dir = {:?}\n", to.display().to_string()),
            );
        }
        if let Some(n) = opts.checkpoint_interval_s {
            // A top-level key, so before the [tls] table.
            server_toml.insert_str(0, &format!("checkpoint_interval_s = {n}\n"));
        }
        server_toml.push_str(&crate::configs::metrics_section(server_metrics));
        std::fs::write(dir.join("server.toml"), server_toml)?;
        let mut agent_toml = agent_toml_on_stop(&layout, &vm, &opts.agent_on_stop);
        agent_toml.push_str(&crate::configs::metrics_section(agent_metrics));
        std::fs::write(dir.join("agent.toml"), agent_toml)?;
        if let Some((path, mib)) = vm.disk {
            // An empty raw image, made on purpose: the agent refuses a
            // missing one.
            std::fs::File::create(path)?.set_len(mib << 20)?;
        }
        let mut cluster = Cluster {
            mem_path: PathBuf::from(format!("/dev/shm/{id}.mem")),
            disk_path,
            vm: id,
            agent_socket: dir.join("agent.sock"),
            server_socket: dir.join("server.sock"),
            mount_dir: dir.join("mnt"),
            state_addr,
            server_addr,
            peer_addrs,
            server_metrics,
            agent_metrics,
            bins: bins.clone(),
            agent: None,
            server: None,
            peer: None,
            keep: opts.keep,
            daemon_env: [opts.agent_env.clone(), opts.server_env.clone()],
            dir,
            lan,
        };
        if cluster.lan.is_some() {
            cluster.start_peer()?;
        }
        cluster.start_server()?;
        wait_for_socket(&cluster.server_socket, cluster.server.as_mut(), "server").await?;
        cluster.start_agent()?;
        wait_for_socket(&cluster.agent_socket, cluster.agent.as_mut(), "agent").await?;
        Ok(cluster)
    }

    /// The test hosts (LAN runs).
    pub fn lan(&self) -> Option<&Lan> {
        self.lan.as_ref()
    }

    fn host(&self, pick: fn(&Lan) -> &Host) -> Option<&Host> {
        self.lan.as_ref().map(pick)
    }

    fn spawn(
        &self,
        host: Option<&Host>,
        bin: &Path,
        args: &[&str],
        log: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<Child> {
        let mut cmd = match host {
            Some(h) => h.command(bin),
            None => Command::new(bin),
        };
        cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        spawn_logged(cmd, &self.dir.join(log))
    }

    fn config_arg(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Starts (or restarts) the server daemon.
    pub fn start_server(&mut self) -> anyhow::Result<()> {
        let config = self.config_arg("server.toml");
        let child = self.spawn(
            self.host(Lan::server),
            &self.bins.server,
            &["--config", &config],
            "server.log",
            &self.daemon_env[1],
        )?;
        self.server = Some(child);
        Ok(())
    }

    /// Starts (or restarts) the agent daemon.
    pub fn start_agent(&mut self) -> anyhow::Result<()> {
        let config = self.config_arg("agent.toml");
        let host = self.lan.as_ref().map(|l| l.desktop(0));
        let child = self.spawn(
            host,
            &self.bins.agent,
            &["--config", &config],
            "agent.log",
            &self.daemon_env[0],
        )?;
        self.agent = Some(child);
        Ok(())
    }

    fn start_peer(&mut self) -> anyhow::Result<()> {
        let ip = self
            .host(Lan::peer)
            .map(|h| h.ip.to_string())
            .unwrap_or_default();
        let child = self.spawn(
            self.host(Lan::peer),
            &self.bins.peer,
            &["--ip", &ip],
            "peer.log",
            &[],
        )?;
        self.peer = Some(child);
        Ok(())
    }

    /// Stops the agent (with the default `agent_on_stop`, its VM's QEMU
    /// quits), the server and the office services, keeping the files (to
    /// inspect the disk image).
    pub fn stop_daemons(&mut self) {
        thaw_agent(self.agent.as_ref());
        stop_child(&mut self.agent);
        stop_child(&mut self.server);
        stop_child(&mut self.peer);
    }

    /// Takes the server host's LAN link down or up (LAN runs).
    pub fn server_link(&self, up: bool) -> anyhow::Result<()> {
        let lan = self
            .lan
            .as_ref()
            .context("a loopback cluster has no link")?;
        let state = if up { "up" } else { "down" };
        let out = Command::new("ip")
            .args(["-n", &lan.server().netns, "link", "set", "lan0", state])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "ip link set lan0 {state}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Stops the agent alone, as systemd would (SIGTERM, SIGKILL after
    /// 10 s); gives its exit status.
    pub fn stop_agent(&mut self) -> Option<std::process::ExitStatus> {
        thaw_agent(self.agent.as_ref());
        stop_child(&mut self.agent)
    }

    /// The agent's runtime directory (QMP and serial sockets, console log).
    pub fn agent_run_dir(&self) -> PathBuf {
        self.dir.join("agent-run")
    }

    /// Kills the agent with SIGKILL (as a crash would).
    pub fn kill_agent(&mut self) {
        kill_child(&mut self.agent);
    }

    /// Stops the server alone, as systemd would (SIGTERM, SIGKILL after
    /// 10 s); gives its exit status.
    pub fn stop_server(&mut self) -> Option<std::process::ExitStatus> {
        stop_child(&mut self.server)
    }

    /// Reboots the desktop as tests may: thaws it if it sleeps (a frozen
    /// process holds SIGKILL until thawed), kills its agent with SIGKILL,
    /// deletes its memory file (RAM does not survive a reboot) and starts a
    /// fresh agent.
    pub fn reboot_desktop(&mut self) -> anyhow::Result<()> {
        thaw_agent(self.agent.as_ref());
        kill_child(&mut self.agent);
        match std::fs::remove_file(&self.mem_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        self.start_agent()
    }

    /// Kills the server with SIGKILL (as a crash would).
    pub fn kill_server(&mut self) {
        kill_child(&mut self.server);
    }

    /// Waits for a daemon's control socket to answer after a (re)start.
    pub async fn wait_ready(&mut self, agent: bool) -> anyhow::Result<()> {
        if agent {
            wait_for_socket(&self.agent_socket, self.agent.as_mut(), "agent").await
        } else {
            wait_for_socket(&self.server_socket, self.server.as_mut(), "server").await
        }
    }

    /// Sends an operator request to the agent.
    pub async fn agent_request(&self, msg: Message) -> anyhow::Result<Message> {
        Ok(jettison_daemon::request(&self.agent_socket, &msg, Duration::from_secs(600)).await?)
    }

    /// Sends an operator request to the server.
    pub async fn server_request(&self, msg: Message) -> anyhow::Result<Message> {
        Ok(jettison_daemon::request(&self.server_socket, &msg, Duration::from_secs(600)).await?)
    }

    /// A TLS context holding the certificate of `host` (`desktop` or
    /// `server`) that talks to `peer`: lets tests speak to a daemon as its
    /// legitimate peer would.
    pub fn tls_as(
        &self,
        host: &str,
        peer: &str,
    ) -> anyhow::Result<std::sync::Arc<jettison_tls::TlsContext>> {
        crate::configs::tls_context(&self.dir.join("tls"), host, peer)
    }

    /// The user comes back to the desktop: a keystroke on its emulated
    /// keyboard (which wakes it if it sleeps).
    pub fn user_returns(&self) -> anyhow::Result<()> {
        let lan = self
            .lan
            .as_ref()
            .context("no test hosts: this cluster runs on loopback")?;
        let to = std::net::SocketAddr::from((lan.desktop(0).ip, USER_PORT));
        crate::procs::in_netns(&lan.desktop(0).netns, move || {
            std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"user", to))
        })??;
        Ok(())
    }

    /// The office services' counters (LAN runs).
    pub fn peer_status(&self) -> anyhow::Result<jettison_peer::PeerStatus> {
        let (Some(lan), Some(addrs)) = (&self.lan, &self.peer_addrs) else {
            bail!("no peer host: this cluster runs on loopback");
        };
        let addr: std::net::SocketAddr = addrs.status.parse()?;
        crate::procs::in_netns(&lan.peer().netns, move || {
            jettison_peer::fetch_status_blocking(addr)
        })?
        .map_err(anyhow::Error::from)
    }

    /// The guest's console logs, desktop's first.
    pub fn console_logs(&self) -> Vec<String> {
        ["agent-run", "server-run"]
            .iter()
            .map(|d| {
                std::fs::read_to_string(self.dir.join(d).join(format!("{}.console", self.vm)))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// A daemon's log (`agent`, `server` or `peer`).
    pub fn daemon_log(&self, which: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{which}.log"))).unwrap_or_default()
    }

    /// The VM's memory file as the server's filesystem shows it.
    pub fn lazy_file(&self) -> PathBuf {
        self.mount_dir.join(format!("{}.mem", self.vm))
    }

    /// Waits until the guest's console (on any host) shows `needle`.
    pub async fn wait_console(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.console_logs().iter().any(|l| l.contains(needle)) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "the guest did not print {needle:?} within {timeout:?}; agent log:\n{}",
            tail(&self.daemon_log("agent"))
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        thaw_agent(self.agent.as_ref());
        stop_child(&mut self.agent);
        stop_child(&mut self.server);
        stop_child(&mut self.peer);
        // A killed server leaves its FUSE mount behind.
        let _ = nix::mount::umount2(&self.mount_dir, nix::mount::MntFlags::MNT_DETACH);
        kill_stray_qemus(&self.vm);
        let _ = std::fs::remove_file(&self.mem_path);
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        // `lan` drops after this body: namespaces (taps, bridges) go last.
    }
}
