//! The QEMU child process: stderr to tracing, exit supervision, kill on request or drop.

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
    /// Send (or drop) to SIGKILL the child.
    pub kill: Mutex<Option<oneshot::Sender<()>>>,
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
            .kill_on_drop(true);
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
        let exp = expected.clone();
        let tail = stderr.clone();
        tokio::spawn(async move {
            let res = tokio::select! {
                r = child.wait() => r,
                _ = kill_rx => {
                    exp.store(true, Ordering::SeqCst);
                    tracing::debug!(vm = %name, "killing QEMU");
                    let _ = child.start_kill();
                    child.wait().await
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
            stderr_done: Mutex::new(err_task),
        })
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
