//! The QEMU child process: stderr to tracing, exit supervision, kill on
//! request or drop, unless detached.
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
//! * stdin is `/dev/null`; stdout and stderr are pipes we read. When we exit,
//!   QEMU's next write to them fails with `EPIPE`: QEMU ignores `SIGPIPE`
//!   (checked by the `detach` integration test), so it carries on and only that
//!   message is lost.

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{QemuError, Result};
use crate::spec::LaunchOptions;

/// How many stderr lines are kept for error messages.
const STDERR_TAIL: usize = 64;

/// Outcome of the child, as seen by the supervisor task.
pub(crate) type ExitState = Option<std::result::Result<ExitStatus, String>>;

/// The last lines QEMU wrote to stderr.
#[derive(Debug, Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: String) {
        let mut q = self.0.lock().unwrap();
        if q.len() == STDERR_TAIL {
            q.pop_front();
        }
        q.push_back(line);
    }
    pub(crate) fn text(&self) -> String {
        self.0
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
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
    armed: Arc<AtomicBool>,
    /// Finishes when QEMU's stderr is closed (all lines captured).
    pub stderr_done: Mutex<Option<JoinHandle<()>>>,
}

impl Child {
    pub(crate) fn spawn(args: &[String], opts: &LaunchOptions) -> Result<Child> {
        let name = opts.name.clone();
        tracing::info!(vm = %name, binary = %opts.binary.display(), "starting QEMU: {}", args.join(" "));
        let mut cmd = Command::new(&opts.binary);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: signals to ours do not reach it.
            .process_group(0);
        let spawned = if opts.deny_hugepage_advice {
            crate::no_thp::spawn_filtered(move || cmd.spawn())
        } else {
            cmd.spawn()
        };
        let mut child = spawned.map_err(|source| QemuError::Spawn {
            binary: opts.binary.clone(),
            source,
        })?;
        let pid = child.id();
        let stderr = StderrTail::default();
        let err_task = child
            .stderr
            .take()
            .map(|e| tokio::spawn(log_lines(e, name.clone(), Some(stderr.clone()))));
        if let Some(o) = child.stdout.take() {
            tokio::spawn(log_lines(o, name.clone(), None));
        }
        let (exit_tx, exit) = watch::channel(None);
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
                        let _ = owned.child.start_kill();
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

impl Drop for Owned {
    fn drop(&mut self) {
        if self.armed.load(Ordering::SeqCst) {
            let _ = self.child.start_kill();
        }
    }
}

async fn log_lines(r: impl AsyncRead + Unpin, name: String, tail: Option<StderrTail>) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match &tail {
            Some(t) => {
                tracing::warn!(target: "qemu", vm = %name, "{line}");
                t.push(line);
            }
            None => tracing::info!(target: "qemu", vm = %name, "{line}"),
        }
    }
}
