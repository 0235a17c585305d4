//! [`Qemu`]: one running QEMU instance.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio::net::UnixStream;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::error::{QemuError, Result};
use crate::process::Child;
use crate::qmp::{Cont, QmpClient, QueryStatus, Quit, RunState, Stop, SystemPowerdown};
use crate::spec::{command_line, ensure_mem_file, LaunchOptions, MachineSpec};

/// How long `launch` waits for the QMP socket.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `quit` waits for QEMU to exit before killing it.
pub const QUIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time limit of a whole migration (`migrate_out` / `migrate_in`).
pub const MIGRATION_TIMEOUT: Duration = Duration::from_secs(60);

/// One running QEMU instance, launched here ([`Qemu::launch`]) or taken over
/// ([`Qemu::adopt`]): both behave the same. Dropping it kills QEMU, unless
/// it was [detached](Qemu::detach).
#[derive(Debug)]
pub struct Qemu {
    pub(crate) name: String,
    pub(crate) opts: LaunchOptions,
    pub(crate) child: Child,
    pub(crate) qmp: QmpClient,
    pub(crate) console_tx: broadcast::Sender<String>,
    pub(crate) console: JoinHandle<()>,
    pub(crate) migration_timeout_ms: std::sync::atomic::AtomicU64,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.console.abort();
        self.child.kill();
    }
}

/// Makes `path` belong to a confined QEMU's user.
pub(crate) fn give(path: &std::path::Path, c: crate::Confinement) -> Result<()> {
    std::os::unix::fs::chown(path, Some(c.uid), Some(c.gid)).map_err(|e| {
        QemuError::io(
            format!("chown {} to {}:{}", path.display(), c.uid, c.gid),
            e,
        )
    })
}

impl Qemu {
    /// Creates the memory file if missing, spawns QEMU, connects QMP (capabilities
    /// negotiated) and starts the serial console tap.
    pub async fn launch(spec: &MachineSpec, opts: &LaunchOptions) -> Result<Qemu> {
        std::fs::create_dir_all(&opts.run_dir)
            .map_err(|e| QemuError::io(format!("create {}", opts.run_dir.display()), e))?;
        if let Some(c) = opts.confine {
            give(&opts.run_dir, c)?;
            std::fs::set_permissions(&opts.run_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| QemuError::io(format!("chmod {}", opts.run_dir.display()), e))?;
        }
        check_fit(spec, opts)?;
        let existed = opts.mem_path.exists();
        ensure_mem_file(&opts.mem_path, spec.memory_bytes())?;
        if let (Some(c), false) = (opts.confine, existed) {
            // A file made here is made for its QEMU; an existing one (the
            // server's lazy file) must already be its own.
            give(&opts.mem_path, c)?;
        }
        let qmp_path = opts.qmp_socket();
        let serial_path = opts.serial_socket();
        for p in [&qmp_path, &serial_path] {
            remove_stale(p)?;
        }
        for d in crate::spec::option_rom_devices(opts) {
            tracing::warn!(vm = %opts.name, device = %d, "device adds an option ROM to the migration stream; add `romfile=`");
        }
        let mut args = command_line(spec, opts);
        let program = match opts.confine {
            Some(c) if c.jail => {
                let mut jailed = crate::jail::bwrap_args(spec, opts);
                jailed.push(opts.binary.display().to_string());
                jailed.append(&mut args);
                args = jailed;
                PathBuf::from(crate::jail::BWRAP)
            }
            _ => opts.binary.clone(),
        };
        let child = Child::spawn(&program, &args, opts)?;
        let name = opts.name.clone();

        let started = Instant::now();
        let stream = loop {
            if child.exited().is_some() {
                child.drain_stderr().await;
                let status = match child.exited() {
                    Some(Ok(st)) => st.to_string(),
                    Some(Err(e)) => e,
                    None => "unknown".into(),
                };
                return Err(QemuError::LaunchFailed {
                    status,
                    stderr: child.stderr.text(),
                });
            }
            if let Ok(s) = UnixStream::connect(&qmp_path).await {
                break s;
            }
            if started.elapsed() > LAUNCH_TIMEOUT {
                child.kill();
                return Err(QemuError::LaunchFailed {
                    status: format!("no QMP socket after {LAUNCH_TIMEOUT:?}, killed"),
                    stderr: child.stderr.text(),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let qmp = match QmpClient::from_stream(stream, &name).await {
            Ok(q) => q,
            Err(e) => {
                child.kill();
                return Err(e);
            }
        };
        let (console_tx, _) = broadcast::channel(1024);
        let serial = match UnixStream::connect(&serial_path).await {
            Ok(s) => s,
            Err(e) => {
                child.kill();
                return Err(QemuError::io(
                    format!("connect serial {}", serial_path.display()),
                    e,
                ));
            }
        };
        let console = tokio::spawn(crate::console::tap(
            serial,
            opts.console_log.clone(),
            name.clone(),
            console_tx.clone(),
        ));
        tracing::info!(vm = %name, pid = ?child.pid, ms = started.elapsed().as_millis() as u64, "QEMU up");
        Ok(Qemu {
            name,
            opts: opts.clone(),
            child,
            qmp,
            console_tx,
            console,
            migration_timeout_ms: (MIGRATION_TIMEOUT.as_millis() as u64).into(),
        })
    }

    /// The QMP client (for commands without a wrapper here, and for events).
    pub fn qmp(&self) -> &QmpClient {
        &self.qmp
    }

    /// QEMU's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.pid
    }

    /// The VM name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The options this instance was launched with.
    pub fn options(&self) -> &LaunchOptions {
        &self.opts
    }

    /// Guest serial lines from now on (without timestamps).
    pub fn subscribe_console(&self) -> broadcast::Receiver<String> {
        self.console_tx.subscribe()
    }

    /// The last lines QEMU wrote to stdout or stderr (from its log file,
    /// [`LaunchOptions::stderr_log`]).
    pub fn stderr_tail(&self) -> String {
        self.child.stderr.text()
    }

    /// Sets the time limit of `migrate_out` / `migrate_in` (default [`MIGRATION_TIMEOUT`]).
    pub fn set_migration_timeout(&self, t: Duration) {
        self.migration_timeout_ms
            .store(t.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Pauses the guest. Idempotent.
    pub async fn stop(&self) -> Result<()> {
        self.checked(self.qmp.execute(&Stop {})).await.map(drop)
    }

    /// Resumes the guest.
    pub async fn cont(&self) -> Result<()> {
        self.checked(self.qmp.execute(&Cont {})).await.map(drop)
    }

    /// The run state (`query-status`).
    pub async fn status(&self) -> Result<RunState> {
        Ok(self
            .checked(self.qmp.execute(&QueryStatus {}))
            .await?
            .status)
    }

    /// Sends `quit` and waits for QEMU to exit (SIGKILL after [`QUIT_TIMEOUT`]).
    pub async fn quit(self) -> Result<ExitStatus> {
        self.child
            .expected
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if self.child.exited().is_none() {
            match self.qmp.execute(&Quit {}).await {
                Ok(_) | Err(QemuError::Disconnected(_)) => {}
                Err(e) => tracing::warn!(vm = %self.name, "quit failed: {e}; killing"),
            }
        }
        match tokio::time::timeout(QUIT_TIMEOUT, self.child.wait()).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(vm = %self.name, "QEMU did not exit after quit; killing");
                self.child.kill();
                self.child.wait().await
            }
        }
    }

    /// Asks the guest to shut down (the ACPI power button,
    /// `system_powerdown`) and waits up to `timeout` for QEMU to exit; quits
    /// it if it has not by then (a guest may ignore the button).
    pub async fn shutdown(self, timeout: Duration) -> Result<Shutdown> {
        self.child
            .expected
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if self.child.exited().is_none() {
            match self.qmp.execute(&SystemPowerdown {}).await {
                Ok(_) | Err(QemuError::Disconnected(_)) => {}
                Err(e) => tracing::warn!(vm = %self.name, "system_powerdown failed: {e}"),
            }
        }
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(r) => r.map(Shutdown::PoweredOff),
            Err(_) => {
                tracing::warn!(vm = %self.name, ?timeout, "the guest did not power off; quitting QEMU");
                self.quit().await.map(Shutdown::Quit)
            }
        }
    }

    /// Gives up ownership of QEMU without stopping it: the process keeps
    /// running after this value is gone and after this process exits (see
    /// `process.rs` for what else could tie it to us). Its QMP socket
    /// ([`LaunchOptions::qmp_socket`]) is how anyone reaches it afterwards,
    /// and [`Qemu::adopt`] how a daemon takes it over; the console tap ends
    /// (guest serial output is no longer logged until then).
    /// Gives QEMU's process id.
    pub fn detach(self) -> Option<u32> {
        self.child.disarm();
        tracing::info!(vm = %self.name, pid = ?self.child.pid, qmp = %self.opts.qmp_socket().display(), "QEMU detached: it keeps running on its own");
        self.child.pid
        // Drop: the console tap and the QMP connection close; no kill.
    }

    /// Kills QEMU with SIGKILL and waits for it.
    pub async fn kill(self) -> Result<ExitStatus> {
        self.child.kill();
        self.child.wait().await
    }

    /// Resolves when the QEMU process has exited (by itself or not); gives its status.
    pub async fn wait_exit(&self) -> Result<ExitStatus> {
        self.child.wait().await
    }

    /// A handle that can await QEMU's exit from another task, even after `quit`/`kill`
    /// consumed this `Qemu`.
    pub fn exit_handle(&self) -> ExitHandle {
        ExitHandle(self.child.exit.clone())
    }

    /// Whether QEMU has exited.
    pub fn has_exited(&self) -> bool {
        self.child.exited().is_some()
    }

    /// Runs a QMP future; if it fails because the connection dropped, reports QEMU's exit
    /// (status and stderr) instead.
    pub(crate) async fn checked<T>(
        &self,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match f.await {
            Err(QemuError::Disconnected(reason)) => Err(self.explain_exit(reason).await),
            r => r,
        }
    }

    /// The error to give when QEMU seems gone: its exit status if it exits soon.
    pub(crate) async fn explain_exit(&self, reason: String) -> QemuError {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.child.wait()).await;
        self.child.drain_stderr().await;
        self.child
            .exited_error()
            .unwrap_or(QemuError::Disconnected(reason))
    }

    pub(crate) fn migration_timeout(&self) -> Duration {
        Duration::from_millis(
            self.migration_timeout_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

/// How [`Qemu::shutdown`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// The guest powered off; QEMU exited by itself.
    PoweredOff(ExitStatus),
    /// The guest did not power off in time; QEMU was quit.
    Quit(ExitStatus),
}

/// Awaits the exit of a QEMU process (see [`Qemu::exit_handle`]).
#[derive(Debug, Clone)]
pub struct ExitHandle(tokio::sync::watch::Receiver<crate::process::ExitState>);

impl ExitHandle {
    /// Resolves when QEMU has exited; gives its exit status.
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        let state = self
            .0
            .wait_for(Option::is_some)
            .await
            .map_err(|_| QemuError::Disconnected("QEMU supervisor gone".into()))?
            .clone();
        match state {
            Some(Ok(st)) => Ok(st),
            Some(Err(e)) => Err(QemuError::io("wait for QEMU", std::io::Error::other(e))),
            None => Err(QemuError::Disconnected("no exit state".into())),
        }
    }
}

/// Removes a leftover socket file; a path that is something else is an error.
pub(crate) fn remove_stale(p: &PathBuf) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(QemuError::io(format!("remove stale {}", p.display()), e)),
    }
}

/// The launch options must provide the host side of every device the
/// machine has.
fn check_fit(spec: &MachineSpec, opts: &LaunchOptions) -> Result<()> {
    let why = if spec.nic_mac.is_some() && opts.tap.is_none() {
        "the machine has a NIC but no tap device was given"
    } else if spec.disk_bytes.is_some() && opts.disk_path.is_none() {
        "the machine has a disk but no disk image was given"
    } else if let Some(d) = opts
        .disk_path
        .as_ref()
        .filter(|d| spec.disk_bytes.is_some() && !d.exists())
    {
        return Err(QemuError::Config {
            vm: opts.name.clone(),
            why: format!("disk image {} does not exist", d.display()),
        });
    } else {
        return Ok(());
    };
    Err(QemuError::Config {
        vm: opts.name.clone(),
        why: why.into(),
    })
}
