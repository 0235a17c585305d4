//! Taking over a QEMU that is already running ([`Qemu::adopt`]): one a
//! previous daemon launched and left behind (detached on its stop, or
//! orphaned by its crash).
//!
//! How the process is identified: the QMP socket's peer credentials
//! (`SO_PEERCRED`: the process that listens there) give its pid; a pidfd is
//! opened on that pid at once, so later signals and the exit watch can only
//! ever reach that process, never one that reused its pid; then its
//! `/proc/<pid>/cmdline` must be the one [`crate::command_line`] writes for
//! this VM on this host: its name, this QMP socket and this memory file
//! ([`check_cmdline`]; whether it waits for a state, `-incoming defer`, is
//! read from it too). Anything else answering there is refused and left
//! alone.
//!
//! How it is supervised: it is not our child, so it cannot be waited for;
//! its pidfd becomes readable when it exits, and a task polls that every
//! 100 ms (a non-blocking `poll`: tokio's readiness API for a raw fd is
//! deprecated or `unsafe`, and the workspace forbids `unsafe`). Its
//! exit status is not ours to see: an exit we asked for (quit, kill) is
//! reported as status 0, any other as an error saying so. Dropping an
//! adopted [`Qemu`] kills it (through the pidfd), as for a launched one,
//! unless it is [detached](Qemu::detach) again.
//!
//! Its output: the log file it was launched with ([`LaunchOptions::stderr_log`])
//! is followed from its current end. Its serial console: a socket server
//! (`server=on,wait=off`) that takes one client at a time and accepts the
//! next once the previous (the dead daemon's) connection closed; lines the
//! guest wrote while nobody was connected are lost.

use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, oneshot, watch};

use crate::error::{QemuError, Result};
use crate::instance::{Qemu, MIGRATION_TIMEOUT};
use crate::process::{follow_log, Child, StderrTail};
use crate::qmp::QmpClient;
use crate::spec::{escape_opt, LaunchOptions};

/// How often an adopted QEMU's pidfd is polled for its exit.
const EXIT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

impl Qemu {
    /// Takes over the QEMU running this VM (`opts` as it was launched with;
    /// `incoming` is read from its command line), if one answers on its QMP
    /// socket: `Ok(None)` when none does (no socket, or nobody listening).
    /// Fails, leaving it untouched, when what answers is not this VM's QEMU.
    /// The guest is not paused or otherwise touched.
    pub async fn adopt(opts: &LaunchOptions) -> Result<Option<Qemu>> {
        let qmp_path = opts.qmp_socket();
        let stream = match UnixStream::connect(&qmp_path).await {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None)
            }
            Err(e) => {
                return Err(QemuError::io(
                    format!("connect QMP {}", qmp_path.display()),
                    e,
                ))
            }
        };
        let started = Instant::now();
        let refuse = |why: String| QemuError::NotAdoptable {
            vm: opts.name.clone(),
            why,
        };
        let pid = stream
            .peer_cred()
            .map_err(|e| QemuError::io("QMP socket peer credentials", e))?
            .pid()
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| refuse("the QMP socket's peer has no pid".into()))?;
        let pidfd = Pid::from_raw(pid as i32)
            .ok_or_else(|| refuse(format!("bad pid {pid}")))
            .and_then(|p| {
                pidfd_open(p, PidfdFlags::NONBLOCK)
                    .map_err(|e| refuse(format!("pidfd_open({pid}): {e}")))
            })?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map_err(|e| refuse(format!("/proc/{pid}/cmdline: {e}")))?;
        let incoming = check_cmdline(&cmdline, opts)
            .map_err(|why| refuse(format!("process {pid} on {}: {why}", qmp_path.display())))?;
        let opts = LaunchOptions {
            incoming,
            ..opts.clone()
        };
        let qmp = QmpClient::from_stream(stream, &opts.name).await?;
        let serial_path = opts.serial_socket();
        let serial = UnixStream::connect(&serial_path)
            .await
            .map_err(|e| QemuError::io(format!("connect serial {}", serial_path.display()), e))?;
        let child = adopt_child(pid, pidfd, &opts)?;
        let (console_tx, _) = broadcast::channel(1024);
        let console = tokio::spawn(crate::console::tap(
            serial,
            opts.console_log.clone(),
            opts.name.clone(),
            console_tx.clone(),
        ));
        tracing::info!(vm = %opts.name, pid, incoming, ms = started.elapsed().as_millis() as u64, "QEMU taken over");
        Ok(Some(Qemu {
            name: opts.name.clone(),
            opts,
            child,
            qmp,
            console_tx,
            console,
            migration_timeout_ms: (MIGRATION_TIMEOUT.as_millis() as u64).into(),
        }))
    }
}

/// Whether `/proc/<pid>/cmdline` (arguments separated by NULs) is the one
/// [`crate::command_line`] writes for this VM with `opts`: its `-name`, its
/// QMP socket, and a memory backend on its memory file. Gives whether it
/// waits for a state (`-incoming defer`); says what differs otherwise.
pub(crate) fn check_cmdline(raw: &[u8], opts: &LaunchOptions) -> std::result::Result<bool, String> {
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let value = |flag: &str| {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect::<Vec<_>>()
    };
    if value("-qmp").is_empty() {
        return Err("not a QEMU of ours (no -qmp argument)".into());
    }
    let name = opts.name.replace(',', ",,");
    if value("-name") != [name.as_str()] {
        return Err(format!("its -name is {:?}, not {name:?}", value("-name")));
    }
    let qmp = format!("unix:{},server=on,wait=off", escape_opt(&opts.qmp_socket()));
    if value("-qmp") != [qmp.as_str()] {
        return Err(format!("its -qmp is {:?}, not {qmp:?}", value("-qmp")));
    }
    let mem = format!("mem-path={},", escape_opt(&opts.mem_path));
    let backend = value("-object")
        .into_iter()
        .any(|o| o.starts_with("memory-backend-file,") && o.contains(&mem));
    if !backend {
        return Err(format!(
            "its guest memory is not the file {}",
            opts.mem_path.display()
        ));
    }
    Ok(value("-incoming") == ["defer"])
}

/// The supervisor of an adopted QEMU: watches its pidfd for its exit and
/// kills it through the pidfd when asked (or when dropped while armed).
fn adopt_child(pid: u32, pidfd: OwnedFd, opts: &LaunchOptions) -> Result<Child> {
    let name = opts.name.clone();
    let log = opts.stderr_log();
    let from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let stderr = StderrTail::new(log.clone());
    let (exit_tx, exit) = watch::channel(None);
    let err_task = tokio::spawn(follow_log(log, from, name.clone(), exit.clone()));
    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    let expected = Arc::new(AtomicBool::new(false));
    let armed = Arc::new(AtomicBool::new(true));
    let owned = OwnedPidfd {
        fd: pidfd,
        armed: armed.clone(),
    };
    let exp = expected.clone();
    let tail = stderr.clone();
    tokio::spawn(async move {
        let gone = tokio::select! {
            r = owned.exit() => r,
            k = kill_rx => {
                if k.is_ok() || owned.armed.load(Ordering::SeqCst) {
                    exp.store(true, Ordering::SeqCst);
                    tracing::debug!(vm = %name, "killing the adopted QEMU");
                    owned.kill();
                }
                owned.exit().await
            }
        };
        let state = match gone {
            Ok(()) if exp.load(Ordering::SeqCst) => {
                tracing::info!(vm = %name, "QEMU exited");
                Ok(ExitStatus::from_raw(0))
            }
            Ok(()) => {
                tracing::error!(vm = %name, stderr = %tail.text(), "QEMU exited unexpectedly (taken over: its exit status is unknown)");
                Err("exited unexpectedly (taken over, not our child: exit status unknown)".into())
            }
            Err(e) => {
                tracing::error!(vm = %name, "watching the adopted QEMU failed: {e}");
                Err(e.to_string())
            }
        };
        let _ = exit_tx.send(Some(state));
    });
    Ok(Child {
        pid: Some(pid),
        exit,
        stderr,
        expected,
        kill: Mutex::new(Some(kill_tx)),
        armed,
        stderr_done: Mutex::new(Some(err_task)),
    })
}

/// An adopted QEMU's pidfd, owned by its supervisor task: SIGKILLed when
/// that task is dropped (the runtime shuts down) unless disarmed.
struct OwnedPidfd {
    fd: OwnedFd,
    armed: Arc<AtomicBool>,
}

impl OwnedPidfd {
    fn kill(&self) {
        // ESRCH: it has already exited.
        let _ = pidfd_send_signal(&self.fd, Signal::KILL);
    }

    /// Resolves when the process has exited (its pidfd is readable).
    async fn exit(&self) -> std::io::Result<()> {
        loop {
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            let zero = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            match poll(&mut fds, Some(&zero)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => {}
                Ok(_) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }
}

impl Drop for OwnedPidfd {
    fn drop(&mut self) {
        if self.armed.load(Ordering::SeqCst) {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{command_line, MachineSpec};

    fn raw(args: &[String]) -> Vec<u8> {
        let mut v = b"/usr/bin/qemu-system-x86_64".to_vec();
        for a in args {
            v.push(0);
            v.extend_from_slice(a.as_bytes());
        }
        v.push(0);
        v
    }

    fn opts(name: &str) -> LaunchOptions {
        LaunchOptions {
            mem_path: format!("/dev/shm/a,b/{name}.mem").into(),
            ..LaunchOptions::new(name, "/run/jettison/agent")
        }
    }

    #[test]
    fn the_command_line_we_write_is_ours_incoming_or_not() {
        let spec = MachineSpec::default();
        let o = opts("vm1");
        assert_eq!(check_cmdline(&raw(&command_line(&spec, &o)), &o), Ok(false));
        let incoming = LaunchOptions {
            incoming: true,
            ..o.clone()
        };
        let line = raw(&command_line(&spec, &incoming));
        assert_eq!(check_cmdline(&line, &o), Ok(true), "read from the line");
    }

    #[test]
    fn another_vm_socket_or_memory_file_is_refused() {
        let spec = MachineSpec::default();
        let o = opts("vm1");
        let other_vm = raw(&command_line(&spec, &opts("vm2")));
        let e = check_cmdline(&other_vm, &o).unwrap_err();
        assert!(e.contains("-name"), "{e}");
        let other_dir = LaunchOptions {
            run_dir: "/elsewhere".into(),
            ..o.clone()
        };
        let e = check_cmdline(&raw(&command_line(&spec, &other_dir)), &o).unwrap_err();
        assert!(e.contains("-qmp"), "{e}");
        let other_mem = LaunchOptions {
            mem_path: "/dev/shm/vm1-copy.mem".into(),
            ..o.clone()
        };
        let e = check_cmdline(&raw(&command_line(&spec, &other_mem)), &o).unwrap_err();
        assert!(e.contains("guest memory"), "{e}");
    }

    #[test]
    fn something_else_is_not_a_qemu_of_ours() {
        let o = opts("vm1");
        for line in [
            &b""[..],
            b"/bin/sh\0-c\0sleep 100\0",
            b"socat\0-name\0vm1\0",
        ] {
            let e = check_cmdline(line, &o).unwrap_err();
            assert!(e.contains("no -qmp"), "{e}");
        }
    }
}
