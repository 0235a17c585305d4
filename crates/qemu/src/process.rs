//! The QEMU child process: its output to a log file (and to tracing), exit
//! supervision, kill on request or drop, unless detached.
//!
//! What ties QEMU's life to ours, and what does not:
//! * Kill on drop: the supervisor task owns the process and SIGKILLs it when
//!   asked, when the [`Child`] is dropped, or when the task itself is dropped
//!   (the runtime shuts down): unless [`Child::disarm`] was called, after which
//!   nothing of ours kills it.
//! * Its own process group (`process_group(0)`): a SIGINT or SIGTERM sent to
//!   our process group (Ctrl-C in a terminal, `kill -- -PGID`) does not reach
//!   QEMU; we stop it ourselves. (systemd signals the whole cgroup instead
//!   unless the unit says `KillMode=process`.)
//! * No parent-death signal is set (no `PR_SET_PDEATHSIG`).
//! * stdin is `/dev/null`; stdout and stderr are one log file
//!   ([`LaunchOptions::stderr_log`], truncated at launch), not pipes: when we
//!   exit, QEMU keeps writing there and nothing is lost; a daemon that takes
//!   it over ([`crate::Qemu::adopt`]) follows the same file. (QEMU also
//!   ignores `SIGPIPE`, checked by the `detach` integration test.) We follow
//!   the file into tracing, and error messages quote its last lines.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::process::Command;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{QemuError, Result};
use crate::spec::LaunchOptions;

/// How many stderr lines are kept for error messages.
const STDERR_TAIL: usize = 64;

/// Outcome of the child, as seen by the supervisor task.
pub(crate) type ExitState = Option<std::result::Result<ExitStatus, String>>;

/// The last lines QEMU wrote to stdout or stderr, read from its log file
/// when asked.
#[derive(Debug, Clone, Default)]
pub(crate) struct StderrTail(Option<PathBuf>);

impl StderrTail {
    pub(crate) fn new(path: PathBuf) -> Self {
        StderrTail(Some(path))
    }
    pub(crate) fn text(&self) -> String {
        let Some(text) = self.0.as_ref().and_then(|p| std::fs::read(p).ok()) else {
            return String::new();
        };
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(STDERR_TAIL)..].join("\n")
    }
}

/// A running QEMU child, owned by a supervisor task.
#[derive(Debug)]
pub(crate) struct Child {
    pub pid: Option<u32>,
    pub exit: watch::Receiver<ExitState>,
    pub stderr: StderrTail,
    /// Set before an exit we asked for (quit/kill), so it is not logged as an error.
    pub expected: Arc<AtomicBool>,
    /// Send to SIGKILL the child; dropping it kills too, unless disarmed.
    pub kill: Mutex<Option<oneshot::Sender<()>>>,
    /// Whether dropping the `Child` (or the supervisor task) kills QEMU.
    pub armed: Arc<AtomicBool>,
    /// Finishes when QEMU has exited and its log file was read to the end.
    pub stderr_done: Mutex<Option<JoinHandle<()>>>,
}

impl Child {
    /// Starts `program` (QEMU, or `bwrap` around it) with `args`.
    pub(crate) fn spawn(
        program: &std::path::Path,
        args: &[String],
        opts: &LaunchOptions,
    ) -> Result<Child> {
        let name = opts.name.clone();
        tracing::info!(vm = %name, binary = %program.display(), "starting QEMU: {}", args.join(" "));
        let log = opts.stderr_log();
        let out = open_log(&log)?;
        let err = out
            .try_clone()
            .map_err(|e| QemuError::io(format!("dup {}", log.display()), e))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            // Its own process group: signals to ours do not reach it.
            .process_group(0);
        if let Some(c) = opts.confine {
            // std drops the supplementary groups too (setgroups(0)) when a
            // root parent sets the user.
            cmd.uid(c.uid).gid(c.gid);
        }
        let spawned = if opts.deny_hugepage_advice {
            crate::no_thp::spawn_filtered(move || cmd.spawn())
        } else {
            cmd.spawn()
        };
        let child = spawned.map_err(|source| QemuError::Spawn {
            binary: program.to_owned(),
            source,
        })?;
        let pid = child.id();
        let stderr = StderrTail::new(log.clone());
        let (exit_tx, exit) = watch::channel(None);
        let err_task = Some(tokio::spawn(follow_log(log, 0, name.clone(), exit.clone())));
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let expected = Arc::new(AtomicBool::new(false));
        let armed = Arc::new(AtomicBool::new(true));
        let exp = expected.clone();
        let tail = stderr.clone();
        let mut owned = Owned {
            child,
            armed: armed.clone(),
        };
        tokio::spawn(async move {
            let res = tokio::select! {
                r = owned.child.wait() => r,
                k = kill_rx => {
                    // Sent, or dropped by an armed owner: kill. Dropped by a
                    // disarmed one (detached): keep waiting, so the exit is
                    // still reaped while we live.
                    if k.is_ok() || owned.armed.load(Ordering::SeqCst) {
                        exp.store(true, Ordering::SeqCst);
                        tracing::debug!(vm = %name, "killing QEMU");
                        owned.kill();
                    }
                    owned.child.wait().await
                }
            };
            let state = match res {
                Ok(st) if exp.load(Ordering::SeqCst) => {
                    tracing::info!(vm = %name, status = %st, "QEMU exited");
                    Ok(st)
                }
                Ok(st) => {
                    tracing::error!(vm = %name, status = %st, stderr = %tail.text(), "QEMU exited unexpectedly");
                    Ok(st)
                }
                Err(e) => {
                    tracing::error!(vm = %name, "waiting for QEMU failed: {e}");
                    Err(e.to_string())
                }
            };
            let _ = exit_tx.send(Some(state));
        });
        Ok(Child {
            pid,
            exit,
            stderr,
            expected,
            kill: Mutex::new(Some(kill_tx)),
            armed,
            stderr_done: Mutex::new(err_task),
        })
    }

    /// Gives up ownership: from now on nothing of ours kills QEMU (not
    /// dropping the `Child`, not the end of the runtime or of the process).
    /// Its exit, if we are still there to see it, is an expected one.
    pub(crate) fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
        self.expected.store(true, Ordering::SeqCst);
        self.kill.lock().unwrap().take();
    }

    /// The exit state if QEMU has exited.
    pub(crate) fn exited(&self) -> ExitState {
        self.exit.borrow().clone()
    }

    /// Waits for the child to exit.
    pub(crate) async fn wait(&self) -> Result<ExitStatus> {
        let mut rx = self.exit.clone();
        let state = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| QemuError::Exited {
                status: "unknown (supervisor gone)".into(),
                stderr: self.stderr.text(),
            })?
            .clone();
        match state {
            Some(Ok(st)) => Ok(st),
            Some(Err(e)) => Err(QemuError::io("wait for QEMU", std::io::Error::other(e))),
            None => unreachable!("wait_for returned None"),
        }
    }

    /// Asks the supervisor to SIGKILL the child.
    pub(crate) fn kill(&self) {
        self.expected.store(true, Ordering::SeqCst);
        if let Some(k) = self.kill.lock().unwrap().take() {
            let _ = k.send(());
        }
    }

    /// Waits (briefly) until every stderr line has been read.
    pub(crate) async fn drain_stderr(&self) {
        let h = self.stderr_done.lock().unwrap().take();
        if let Some(h) = h {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), h).await;
        }
    }

    /// The error describing that QEMU exited.
    pub(crate) fn exited_error(&self) -> Option<QemuError> {
        self.exited().map(|s| QemuError::Exited {
            status: match s {
                Ok(st) => st.to_string(),
                Err(e) => e,
            },
            stderr: self.stderr.text(),
        })
    }
}

/// The process, owned by the supervisor task: SIGKILLed when that task is
/// dropped (the runtime shuts down) unless disarmed.
struct Owned {
    child: tokio::process::Child,
    armed: Arc<AtomicBool>,
}

impl Owned {
    /// SIGKILLs its whole process group (it leads one of its own): QEMU, or
    /// `bwrap` and the QEMU it runs in its jail.
    fn kill(&mut self) {
        let pid = self.child.id().and_then(|p| i32::try_from(p).ok());
        if let Some(pgid) = pid.and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = self.child.start_kill();
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if self.armed.load(Ordering::SeqCst) {
            self.kill();
        }
    }
}

/// Opens a fresh log file for QEMU's output (append mode, so stdout and
/// stderr do not overwrite each other).
fn open_log(path: &std::path::Path) -> Result<std::fs::File> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(QemuError::io(format!("remove {}", path.display()), e)),
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| QemuError::io(format!("create {}", path.display()), e))
}

/// Follows QEMU's log file from byte `from` into tracing (each complete
/// line a warning) until QEMU has exited and the file is read to its end.
pub(crate) async fn follow_log(
    path: PathBuf,
    from: u64,
    name: String,
    mut exit: watch::Receiver<ExitState>,
) {
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(vm = %name, log = %path.display(), "cannot follow QEMU's output: {e}");
            return;
        }
    };
    if file.seek(std::io::SeekFrom::Start(from)).await.is_err() {
        return;
    }
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 8192];
    let mut closed = false;
    loop {
        let done = closed || exit.borrow().is_some();
        loop {
            match file.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            }
        }
        while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = pending.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&raw);
            tracing::warn!(target: "qemu", vm = %name, "{}", line.trim_end());
        }
        if done {
            if !pending.is_empty() {
                let line = String::from_utf8_lossy(&pending);
                tracing::warn!(target: "qemu", vm = %name, "{}", line.trim_end());
            }
            return;
        }
        tokio::select! {
            r = exit.changed() => closed = r.is_err(),
            () = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
        }
    }
}
