//! A desktop agent and a consolidation server started as real processes on
//! this machine (loopback), with generated configuration, unique names, and
//! teardown on drop: processes, the FUSE mount, the VM's memory file and the
//! work directory go, also when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jettison_wire::Message;

use crate::guest::GuestImage;

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `jettison-agent`.
    pub agent: PathBuf,
    /// `jettison-server`.
    pub server: PathBuf,
}

impl Binaries {
    /// The daemons next to the running executable (or its parent directory,
    /// for test binaries under `deps/`).
    pub fn beside_current_exe() -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        for dir in exe.ancestors().skip(1).take(2) {
            let agent = dir.join("jettison-agent");
            let server = dir.join("jettison-server");
            if agent.is_file() && server.is_file() {
                return Ok(Binaries { agent, server });
            }
        }
        bail!("jettison-agent and jettison-server not found next to {} (build the `jettison` package)", exe.display())
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
    /// Pages fetched per miss.
    pub fetch_pages: u32,
    /// Work directory parent (a unique directory is made in it).
    pub work_root: PathBuf,
    /// Keep the work directory (logs) after teardown.
    pub keep: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            memory_mib: 512,
            fill_pct: 50,
            accel: "tcg".into(),
            max_readahead: 0,
            fetch_pages: 1,
            work_root: std::env::temp_dir(),
            keep: false,
        }
    }
}

/// The two daemons and their files.
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
    /// The agent's state server address.
    pub state_addr: String,
    /// The server's agent-facing address.
    pub server_addr: String,
    bins: Binaries,
    agent: Option<Child>,
    server: Option<Child>,
    keep: bool,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Cluster {
    /// Writes the configurations and starts both daemons; the agent boots
    /// the VM.
    pub async fn start(
        bins: &Binaries,
        image: &GuestImage,
        opts: &ClusterOptions,
    ) -> anyhow::Result<Cluster> {
        let id = format!(
            "jt{}x{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let dir = opts.work_root.join(&id);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let vm = id.clone();
        let state_addr = format!("127.0.0.1:{}", free_port()?);
        let server_addr = format!("127.0.0.1:{}", free_port()?);
        let d = |p: &str| dir.join(p);
        let server_toml = format!(
            "host = \"server-{id}\"\nlisten = \"{server_addr}\"\ncontrol_socket = \"{}\"\nmount_dir = \"{}\"\n\
             replica_dir = \"{}\"\nrun_dir = \"{}\"\nimage_dirs = [\"{}\"]\naccel = \"{}\"\nmax_readahead = {}\nfetch_pages = {}\n",
            d("server.sock").display(),
            d("mnt").display(),
            d("replica").display(),
            d("server-run").display(),
            image.dir.display(),
            opts.accel,
            opts.max_readahead,
            opts.fetch_pages,
        );
        let append = format!("{} jettison.fill_pct={}", image.cmdline, opts.fill_pct);
        let agent_toml = format!(
            "host = \"desktop-{id}\"\nserver = \"{server_addr}\"\nlisten = \"{state_addr}\"\ncontrol_socket = \"{}\"\n\
             state_dir = \"{}\"\nrun_dir = \"{}\"\nmemory_dir = \"/dev/shm\"\naccel = \"{}\"\n\n[[vm]]\nname = \"{vm}\"\n\
             memory_mib = {}\nkernel = \"{}\"\ninitrd = \"{}\"\nappend = \"{append}\"\n",
            d("agent.sock").display(),
            d("agent-state").display(),
            d("agent-run").display(),
            opts.accel,
            opts.memory_mib,
            image.kernel.display(),
            image.initrd.display(),
        );
        std::fs::write(d("server.toml"), server_toml)?;
        std::fs::write(d("agent.toml"), agent_toml)?;
        let mut cluster = Cluster {
            mem_path: PathBuf::from(format!("/dev/shm/{vm}.mem")),
            vm,
            agent_socket: d("agent.sock"),
            server_socket: d("server.sock"),
            mount_dir: d("mnt"),
            state_addr,
            server_addr,
            bins: bins.clone(),
            agent: None,
            server: None,
            keep: opts.keep,
            dir,
        };
        cluster.start_server()?;
        wait_for_socket(&cluster.server_socket, cluster.server.as_mut(), "server").await?;
        cluster.start_agent()?;
        wait_for_socket(&cluster.agent_socket, cluster.agent.as_mut(), "agent").await?;
        Ok(cluster)
    }

    fn spawn(&self, bin: &Path, config: &str, log: &str) -> anyhow::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(log))?;
        Command::new(bin)
            .arg("--config")
            .arg(self.dir.join(config))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))
    }

    /// Starts (or restarts) the server daemon.
    pub fn start_server(&mut self) -> anyhow::Result<()> {
        self.server = Some(self.spawn(&self.bins.server, "server.toml", "server.log")?);
        Ok(())
    }

    /// Starts (or restarts) the agent daemon.
    pub fn start_agent(&mut self) -> anyhow::Result<()> {
        self.agent = Some(self.spawn(&self.bins.agent, "agent.toml", "agent.log")?);
        Ok(())
    }

    /// Kills the agent with SIGKILL (as a crash would).
    pub fn kill_agent(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server with SIGKILL (as a crash would).
    pub fn kill_server(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
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

    /// A daemon's log (`agent` or `server`).
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

    fn stop_child(child: &mut Option<Child>) {
        if let Some(mut c) = child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        Self::stop_child(&mut self.agent);
        Self::stop_child(&mut self.server);
        // A killed server leaves its FUSE mount behind.
        let _ = nix::mount::umount2(&self.mount_dir, nix::mount::MntFlags::MNT_DETACH);
        kill_stray_qemus(&self.vm);
        let _ = std::fs::remove_file(&self.mem_path);
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Kills QEMU processes of this run left behind by a killed daemon.
fn kill_stray_qemus(vm: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.starts_with("qemu-system") && cmdline.contains(&format!("/{vm}.")) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

async fn wait_for_socket(path: &Path, child: Option<&mut Child>, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut child = child;
    while Instant::now() < deadline {
        if let Some(c) = child.as_deref_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                bail!("the {what} exited during start-up ({status}); see its log");
            }
        }
        if jettison_daemon::request(path, &Message::OpStatus, Duration::from_secs(5))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "the {what} did not answer on {} within 30 s",
        path.display()
    )
}

/// The last lines of a log, for error messages.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
