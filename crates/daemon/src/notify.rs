//! systemd's service notification (`Type=notify`, `sd-notify`): readiness
//! once the daemon really serves, `STATUS=` lines, `STOPPING=1` at the
//! stop, and a watchdog fed by a liveness check, not by a timer.
//!
//! The check ([`probe_control`]) opens the daemon's own control socket and
//! runs the operator handshake (`Hello`, answered `Welcome`): the reply
//! comes from the daemon's accept loop and a connection task of its
//! runtime, as every operator request does, and takes no VM's lock, so a
//! long checkpoint or handover never starves it, while a stalled runtime
//! or a dead control loop does. Only a check that got its reply sends
//! `WATCHDOG=1`; a failed one sends nothing (and says so in the log), so
//! systemd restarts a daemon that stays unresponsive for `WatchdogSec=`.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd) every call here does
//! nothing; without `WATCHDOG_USEC` (no `WatchdogSec=`) no watchdog runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::net::UnixStream;

use jettison_wire::{Role, Transport};

/// Sends `states` to the service manager, if there is one; a failure is
/// logged, never fatal.
fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("systemd notification failed: {e}");
    }
}

/// A `STATUS=` line (what `systemctl status` shows).
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// `STOPPING=1` with a status line: the daemon stops now.
pub fn stopping(text: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(text)]);
}

/// The watchdog's period: how long systemd waits for `WATCHDOG=1`, if the
/// unit sets `WatchdogSec=` (and the variable is this process's).
pub fn watchdog_timeout() -> Option<Duration> {
    let mut usec = 0;
    (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0).then(|| Duration::from_micros(usec))
}

/// How often the liveness check runs, and how long it may take, for a
/// watchdog of `timeout`: a third of it each, so that one slow check
/// still leaves time for the next before systemd acts.
pub fn check_period(timeout: Duration) -> Duration {
    (timeout / 3).max(Duration::from_millis(10))
}

/// The daemon serves: sends `READY=1` with a status line, and starts the
/// watchdog on `control_socket` if systemd asks for one. Keep the handle
/// until the stop ([`Watchdog::stop`]).
pub fn ready(control_socket: &Path, text: &str) -> Watchdog {
    send(&[NotifyState::Ready, NotifyState::Status(text)]);
    let task = watchdog_timeout().map(|timeout| {
        let period = check_period(timeout);
        tracing::info!(
            timeout_ms = timeout.as_millis() as u64,
            period_ms = period.as_millis() as u64,
            "systemd watchdog: checking the control socket"
        );
        tokio::spawn(feed(control_socket.to_path_buf(), period))
    });
    Watchdog { task }
}

/// The watchdog task, if any.
#[derive(Debug)]
pub struct Watchdog {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Watchdog {
    /// Stops feeding the watchdog (the daemon stops).
    pub fn stop(self) {
        if let Some(t) = self.task {
            t.abort();
        }
    }
}

/// Every `period`, checks the control socket; `WATCHDOG=1` only after a
/// reply.
async fn feed(control_socket: PathBuf, period: Duration) {
    let mut failing = false;
    loop {
        tokio::time::sleep(period).await;
        match probe_control(&control_socket, period).await {
            Ok(()) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("control socket answers again; feeding the watchdog");
                }
                send(&[NotifyState::Watchdog]);
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::error!(
                        "liveness check failed, not feeding systemd's watchdog: {e} \
                         (systemd restarts the daemon if this lasts)"
                    );
                }
            }
        }
    }
}

/// Why the liveness check failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer in time.
    #[error("the control socket {0} did not answer within {1:?}")]
    Timeout(String, Duration),
    /// Connecting failed.
    #[error("cannot connect to the control socket {0}: {1}")]
    Connect(String, std::io::Error),
    /// The handshake failed.
    #[error("the control socket {0} answered badly: {1}")]
    Wire(String, jettison_wire::WireError),
}

/// The liveness check: connects to `control_socket` and runs the operator
/// handshake, within `timeout`.
pub async fn probe_control(control_socket: &Path, timeout: Duration) -> Result<(), ProbeError> {
    let name = control_socket.display().to_string();
    let exchange = async {
        let stream = UnixStream::connect(control_socket)
            .await
            .map_err(|e| ProbeError::Connect(name.clone(), e))?;
        let mut t = Transport::new(stream);
        jettison_wire::handshake::connect(&mut t, Role::Operator, "watchdog")
            .await
            .map_err(|e| ProbeError::Wire(name.clone(), e))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r.map(|_| ()),
        Err(_) => Err(ProbeError::Timeout(name, timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_runs_three_times_per_watchdog_timeout() {
        assert_eq!(
            check_period(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            check_period(Duration::from_micros(300_000)),
            Duration::from_millis(100)
        );
        // Never a busy loop.
        assert_eq!(
            check_period(Duration::from_micros(3)),
            Duration::from_millis(10)
        );
    }
}
