//! Child processes of a cluster: start, wait until they answer, stop, and
//! clean up what killed ones leave behind.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jettison_wire::Message;

/// Starts a daemon with its output appended to `log` and `RUST_LOG`
/// passed on (default `info`).
pub fn spawn_logged(mut cmd: Command, log: &Path) -> anyhow::Result<Child> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    cmd.env(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    )
    .stdin(Stdio::null())
    .stdout(file.try_clone()?)
    .stderr(file)
    .spawn()
    .with_context(|| format!("starting {:?}", cmd.get_program()))
}

/// Sends SIGTERM, waits up to 10 s, then SIGKILL; gives the exit status.
pub fn stop_child(child: &mut Option<Child>) -> Option<std::process::ExitStatus> {
    let mut c = child.take()?;
    let pid = nix::unistd::Pid::from_raw(c.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = c.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    c.wait().ok()
}

/// Kills with SIGKILL at once, as a crash would.
pub fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Processes whose command line starts with `qemu-system` and names `needle`.
pub fn qemu_pids(needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline);
            (cmdline.starts_with("qemu-system") && cmdline.contains(needle)).then_some(pid)
        })
        .collect()
}

/// Kills QEMU processes of this run left behind by a killed daemon.
pub fn kill_stray_qemus(vm: &str) {
    for pid in qemu_pids(&format!("/{vm}.")) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Waits until a daemon answers a status request on its control socket.
pub async fn wait_for_socket(
    path: &Path,
    child: Option<&mut Child>,
    what: &str,
) -> anyhow::Result<()> {
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

/// Runs `f` on a thread that has entered network namespace `netns` (so that
/// sockets it opens live there); the caller's threads are not affected.
pub fn in_netns<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let file = std::fs::File::open(format!("/run/netns/{netns}"))?;
    std::thread::spawn(move || -> anyhow::Result<T> {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)?;
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("netns thread panicked"))?
}

/// The last lines of a log, for error messages.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
