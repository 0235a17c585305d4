//! A benchmark fleet: `n` desktops, each running an agent with one VM, and
//! one consolidation server, as real processes on a test LAN; torn down on
//! drop (processes, mount, memory files, namespaces), also on failure.
//!
//! Each VM gets a second QMP monitor (through the agent's `extra_args` at
//! home, the server's `extra_qemu_args` with `{vm}` there: QEMU arguments
//! never travel with the VM) so that QEMU's own full migration can be run on
//! the very guest jettison migrates. It listens on an abstract unix socket,
//! which lives in the host's network namespace: the desktop's and the
//! server's QEMU each have their own, and neither removes the other's on
//! exit.

use std::os::linux::net::SocketAddrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{bail, Context};
use jettison_demo::configs::{agent_toml, server_toml, tls_section, Layout, VmLayout};
use jettison_demo::procs::{kill_stray_qemus, spawn_logged, stop_child, tail, wait_for_socket};
use jettison_demo::{Binaries, GuestImage};
use jettison_qemu::QmpClient;
use jettison_testbed::{Lan, LanSpec};
use jettison_wire::{Message, MigrateReport, ReintegrateReport, VmStatus};

/// The abstract socket of VM `vm`'s second QMP monitor.
fn bench_qmp_name(vm: &str) -> String {
    format!("jettison-bench-{vm}")
}

/// QEMU arguments (a TOML array) for that monitor; `vm` may be the
/// server's `{vm}` placeholder.
fn bench_monitor_args(vm: &str) -> String {
    format!(
        "[\"-chardev\", \"socket,id=benchmon,path={},abstract=on,server=on,wait=off\", \"-mon\", \"chardev=benchmon,mode=control\"]",
        bench_qmp_name(vm)
    )
}

/// Agent-facing port of the server.
const SERVER_PORT: u16 = 7400;
/// State-server port of each desktop.
const STATE_PORT: u16 = 7401;

/// What the fleet runs.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Desktops (one VM each).
    pub desktops: usize,
    /// Guest memory.
    pub memory_mib: u64,
    /// Share of the guest's memory its workload fills with non-zero data.
    pub fill_pct: u32,
    /// `tcg` or `kvm`.
    pub accel: String,
    /// Pages fetched per miss (the server's neighbourhood prefetch).
    pub fetch_pages: u32,
    /// Where the run's files go.
    pub work_root: PathBuf,
    /// A NIC (a tap on each host's bridge) and a raw disk of this many MiB
    /// on every guest, when set.
    pub devices: Option<u64>,
    /// Guests booting at once (0: all); each batch is filled before the next.
    pub boot_batch: usize,
    /// The server's replicas in `/dev/shm` (tmpfs) instead of on disk.
    pub replica_in_shm: bool,
}

/// One desktop and its VM.
#[derive(Debug)]
pub struct Desktop {
    /// VM name.
    pub vm: String,
    /// Work directory of the desktop.
    pub dir: PathBuf,
    /// The agent's control socket.
    pub agent_socket: PathBuf,
    /// The abstract socket name of the VM's extra QMP monitor.
    pub bench_qmp: String,
    /// The VM's memory file on the desktop.
    pub mem_path: PathBuf,
    /// The agent's state server.
    pub state_addr: String,
    /// The guest's NIC MAC and disk image, with [`FleetSpec::devices`].
    pub devices: Option<(String, PathBuf)>,
    /// The guest's kernel command line.
    pub append: String,
    agent: Option<Child>,
}

/// The running fleet.
#[derive(Debug)]
pub struct Fleet {
    /// The desktops.
    pub desktops: Vec<Desktop>,
    /// The server's work directory.
    pub server_dir: PathBuf,
    /// The server's control socket.
    pub server_socket: PathBuf,
    /// The server's lazy memory mount.
    pub mount_dir: PathBuf,
    /// Where the server keeps its replicas.
    pub replica_dir: PathBuf,
    /// The run's CA and certificates.
    pub tls_dir: PathBuf,
    server: Option<Child>,
    root: PathBuf,
    /// Dropped last.
    pub lan: Lan,
}

impl Fleet {
    /// Creates the LAN, writes the configurations and starts the daemons;
    /// the agents boot their VMs.
    pub async fn start(
        bins: &Binaries,
        image: &GuestImage,
        spec: &FleetSpec,
    ) -> anyhow::Result<Fleet> {
        let lan = Lan::create(&LanSpec {
            desktops: spec.desktops,
        })?;
        let root = spec.work_root.join(lan.run_id().to_string());
        let tls_dir = root.join("tls");
        std::fs::create_dir_all(&tls_dir)
            .with_context(|| format!("creating {}", tls_dir.display()))?;
        jettison_tls::certs::create_ca(&tls_dir, "jettison bench run", 2)?;
        for host in ["desktop", "server"] {
            jettison_tls::certs::issue(&tls_dir, host, &[], &[], &tls_dir, 2)?;
        }
        let server_dir = root.join("server");
        std::fs::create_dir_all(&server_dir)?;
        let replica_dir = if spec.replica_in_shm {
            PathBuf::from(format!("/dev/shm/{}-replica", lan.run_id()))
        } else {
            server_dir.join("replica")
        };
        let server_addr = format!("{}:{SERVER_PORT}", lan.server().ip);
        let mut fleet = Fleet {
            desktops: Vec::new(),
            server_socket: server_dir.join("server.sock"),
            mount_dir: server_dir.join("mnt"),
            replica_dir,
            tls_dir: tls_dir.clone(),
            server_dir,
            server: None,
            root,
            lan,
        };
        let server_layout = Layout {
            dir: &fleet.server_dir,
            server_addr: &server_addr,
            state_addr: "",
            bridge: spec.devices.map(|_| fleet.lan.server().bridge()),
            accel: &spec.accel,
            tls: Some((tls_section(&tls_dir, "server", "desktop"), String::new())),
            agent_power: None,
        };
        // The same second monitor on the server's QEMU of each VM: the
        // server's own arguments (none come from the desktop).
        let toml = format!(
            "extra_qemu_args = {}\n{}",
            bench_monitor_args("{vm}"),
            server_toml(&server_layout, &image.dir, 0, spec.fetch_pages)
        );
        let default_replica = format!(
            "replica_dir = {:?}\n",
            fleet.server_dir.join("replica").display().to_string()
        );
        anyhow::ensure!(
            toml.contains(&default_replica),
            "no replica_dir in the server's configuration"
        );
        let toml = toml.replace(
            &default_replica,
            &format!(
                "replica_dir = {:?}\n",
                fleet.replica_dir.display().to_string()
            ),
        );
        std::fs::write(fleet.server_dir.join("server.toml"), toml)?;
        fleet.server = Some(spawn(
            fleet.lan.server().command(&bins.server),
            &fleet.server_dir,
            "server",
        )?);
        wait_for_socket(&fleet.server_socket, fleet.server.as_mut(), "server").await?;
        let batch = if spec.boot_batch == 0 {
            spec.desktops
        } else {
            spec.boot_batch
        };
        for i in 0..spec.desktops {
            let d = fleet.add_desktop(bins, image, spec, i, &server_addr, &tls_dir)?;
            fleet.desktops.push(d);
            let done = i + 1;
            if done % batch == 0 || done == spec.desktops {
                let first = i / batch * batch;
                for d in &mut fleet.desktops[first..] {
                    wait_for_socket(&d.agent_socket, d.agent.as_mut(), "agent").await?;
                }
                if batch < spec.desktops {
                    let timeout = Duration::from_secs(300 + 120 * batch as u64);
                    fleet.wait_filled_from(first, timeout).await?;
                    tracing::info!(
                        booted = done,
                        of = spec.desktops,
                        "guests booted and filled"
                    );
                }
            }
        }
        Ok(fleet)
    }

    fn add_desktop(
        &self,
        bins: &Binaries,
        image: &GuestImage,
        spec: &FleetSpec,
        i: usize,
        server_addr: &str,
        tls_dir: &Path,
    ) -> anyhow::Result<Desktop> {
        let vm = self.lan.vm_name(i);
        let dir = self.root.join(format!("d{i}"));
        std::fs::create_dir_all(&dir)?;
        let state_addr = format!("{}:{STATE_PORT}", self.lan.desktop(i).ip);
        let bench_qmp = bench_qmp_name(&vm);
        let layout = Layout {
            dir: &dir,
            server_addr,
            state_addr: &state_addr,
            bridge: spec.devices.map(|_| self.lan.desktop(i).bridge()),
            accel: &spec.accel,
            tls: Some((String::new(), tls_section(tls_dir, "desktop", "server"))),
            agent_power: None,
        };
        let mut append = format!(
            "{} jettison.fill_pct={} jettison.id={vm}",
            image.cmdline, spec.fill_pct
        );
        let devices = spec.devices.map(|disk_mib| {
            append += &format!(" jettison.ip={}/24", self.lan.vm_ip(i));
            (self.lan.vm_mac(i), dir.join(format!("{vm}.img")), disk_mib)
        });
        if let Some((_, path, mib)) = &devices {
            // An empty raw image: the agent refuses a missing one.
            std::fs::File::create(path)?.set_len(mib << 20)?;
        }
        let vm_layout = VmLayout {
            name: &vm,
            memory_mib: spec.memory_mib,
            kernel: &image.kernel,
            initrd: &image.initrd,
            append: &append,
            mac: devices.as_ref().map(|(mac, _, _)| mac.as_str()),
            disk: devices.as_ref().map(|(_, p, mib)| (p.as_path(), *mib)),
        };
        let mut toml = agent_toml(&layout, &vm_layout);
        toml += &format!("extra_args = {}\n", bench_monitor_args(&vm));
        std::fs::write(dir.join("agent.toml"), toml)?;
        let agent = spawn(self.lan.desktop(i).command(&bins.agent), &dir, "agent")?;
        Ok(Desktop {
            mem_path: PathBuf::from(format!("/dev/shm/{vm}.mem")),
            agent_socket: dir.join("agent.sock"),
            bench_qmp,
            state_addr,
            devices: devices.map(|(mac, path, _)| (mac, path)),
            append,
            vm,
            dir,
            agent: Some(agent),
        })
    }

    /// Waits until every guest's console says its memory is filled.
    pub async fn wait_filled(&self, timeout: Duration) -> anyhow::Result<()> {
        self.wait_filled_from(0, timeout).await
    }

    /// Waits until the consoles of guests `first..` say their memory is filled.
    async fn wait_filled_from(&self, first: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        for d in &self.desktops[first..] {
            let console = d.dir.join("agent-run").join(format!("{}.console", d.vm));
            loop {
                let text = std::fs::read_to_string(&console).unwrap_or_default();
                if text.contains("READY") {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    bail!(
                        "guest {} not ready within {timeout:?}; console:\n{}\nagent log:\n{}",
                        d.vm,
                        tail(&text),
                        tail(&d.log())
                    );
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(())
    }

    /// Asks desktop `i`'s agent to migrate its VM (partial migration).
    pub async fn migrate(&self, i: usize) -> anyhow::Result<MigrateReport> {
        let d = &self.desktops[i];
        match request(&d.agent_socket, Message::OpMigrate { vm: d.vm.clone() }).await? {
            Message::OpMigrated(r) => Ok(r),
            other => bail!("migrate {}: {other:?}\n{}", d.vm, tail(&d.log())),
        }
    }

    /// Asks desktop `i`'s agent to bring its VM home.
    pub async fn reintegrate(&self, i: usize) -> anyhow::Result<ReintegrateReport> {
        let d = &self.desktops[i];
        let msg = Message::OpReintegrate {
            vm: d.vm.clone(),
            verify: false,
        };
        match request(&d.agent_socket, msg).await? {
            Message::OpReintegrated(r) => Ok(r),
            other => bail!("reintegrate {}: {other:?}\n{}", d.vm, tail(&d.log())),
        }
    }

    /// The server's view of its consolidated VMs.
    pub async fn server_status(&self) -> anyhow::Result<Vec<VmStatus>> {
        match request(&self.server_socket, Message::OpStatus).await? {
            Message::OpStatusReply { vms, .. } => Ok(vms),
            other => bail!("server status: {other:?}"),
        }
    }

    /// The server daemon's process id.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(Child::id)
    }

    /// VM `i`'s memory file as the server's filesystem shows it.
    pub fn lazy_file(&self, i: usize) -> PathBuf {
        self.mount_dir.join(format!("{}.mem", self.desktops[i].vm))
    }

    /// The server daemon's log.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.server_dir.join("server.log")).unwrap_or_default()
    }
}

impl Desktop {
    /// Connects to the VM's extra QMP monitor, on the desktop host (or, with
    /// `netns`, on the host where the VM now runs).
    pub async fn bench_monitor(&self, netns: &str) -> anyhow::Result<QmpClient> {
        let name = self.bench_qmp.clone();
        let std_stream = jettison_demo::procs::in_netns(netns, move || {
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            let s = std::os::unix::net::UnixStream::connect_addr(&addr)?;
            s.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(s)
        })?
        .with_context(|| format!("connecting to the bench monitor of {}", self.vm))?;
        let stream = tokio::net::UnixStream::from_std(std_stream)?;
        Ok(QmpClient::from_stream(stream, &self.vm).await?)
    }

    /// The agent's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

async fn request(socket: &Path, msg: Message) -> anyhow::Result<Message> {
    Ok(jettison_daemon::request(socket, &msg, Duration::from_secs(900)).await?)
}

fn spawn(mut cmd: Command, dir: &Path, name: &str) -> anyhow::Result<Child> {
    cmd.arg("--config").arg(dir.join(format!("{name}.toml")));
    spawn_logged(cmd, &dir.join(format!("{name}.log")))
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for d in &mut self.desktops {
            stop_child(&mut d.agent);
        }
        stop_child(&mut self.server);
        let _ = nix::mount::umount2(&self.mount_dir, nix::mount::MntFlags::MNT_DETACH);
        for d in &self.desktops {
            kill_stray_qemus(&d.vm);
            let _ = std::fs::remove_file(&d.mem_path);
        }
        // The density run's precopy memory files, if it left any.
        if let Ok(entries) = std::fs::read_dir("/dev/shm") {
            let run = self.lan.run_id().to_string();
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&run) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.replica_dir);
        if std::env::var_os("JETTISON_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
