//! The daemons under systemd's notification protocol, as real processes:
//! the test plays systemd (a Unix datagram socket as `NOTIFY_SOCKET`,
//! `WATCHDOG_USEC` of 600 ms, `WATCHDOG_PID` the daemon's own, as systemd
//! sets them). Each daemon says `READY=1` with a status line once it
//! serves, then `WATCHDOG=1` while its control socket answers; with its
//! control socket's file removed (nothing can reach it: a liveness check
//! fails as any operator's request would) it sends none; SIGTERM gives
//! `STOPPING=1`. The server needs root (its FUSE mount); no guest.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use jettison_demo::procs::{spawn_logged, stop_child, wait_for_socket};

mod common;
use common::{free_port, pki_tls, server_toml};

/// Systemd's side: the notification socket, and the daemon it started.
struct Systemd {
    sock: UnixDatagram,
    child: Option<Child>,
    log: PathBuf,
    mount: Option<PathBuf>,
}

impl Drop for Systemd {
    fn drop(&mut self) {
        stop_child(&mut self.child);
        if let Some(m) = &self.mount {
            let _ = Command::new("umount").arg("-l").arg(m).output();
        }
    }
}

impl Systemd {
    /// Starts `binary --config <config>` as systemd would with
    /// `Type=notify` and `WatchdogSec=`; waits for its control socket.
    async fn start(dir: &Path, binary: &str, config: &Path, control: &Path) -> Systemd {
        let notify = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&notify).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        // WATCHDOG_PID is the daemon's pid: the shell's, which execs it.
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("WATCHDOG_PID=$$ exec \"$0\" --config \"$1\"")
            .arg(binary)
            .arg(config)
            .env("NOTIFY_SOCKET", &notify)
            .env("WATCHDOG_USEC", "600000");
        let log = dir.join("daemon.log");
        let mut child = Some(spawn_logged(cmd, &log).unwrap());
        wait_for_socket(control, child.as_mut(), "daemon")
            .await
            .unwrap();
        Systemd {
            sock,
            child,
            log,
            mount: None,
        }
    }

    /// The next notification within `within`.
    fn next(&self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.sock.recv(&mut buf) {
                Ok(n) => return Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("notify socket: {e}"),
            }
        }
        None
    }

    fn expect(&self, what: &str) -> String {
        self.next(Duration::from_secs(60)).unwrap_or_else(|| {
            panic!(
                "no {what} within 60 s; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn term(&self) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
    }
}

/// The protocol as a daemon speaks it, from `READY=1` to `STOPPING=1`.
fn ready_watchdog_stop(sd: &Systemd, control: &Path, status: &str) {
    let ready = sd.expect("READY=1");
    assert!(ready.starts_with("READY=1\nSTATUS="), "{ready:?}");
    assert!(ready.contains(status), "{ready:?}");
    for _ in 0..3 {
        assert_eq!(sd.expect("WATCHDOG=1").trim(), "WATCHDOG=1");
    }
    // Nothing reaches the control socket any more.
    std::fs::remove_file(control).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sd.log().contains("liveness check failed") {
        assert!(Instant::now() < deadline, "no failed check:\n{}", sd.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // A check that passed before the removal may still report; none after,
    // over many periods of 200 ms.
    let mut fed = 0;
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(3) {
        if let Some(m) = sd.next(Duration::from_millis(100)) {
            assert_eq!(m.trim(), "WATCHDOG=1");
            fed += 1;
        }
    }
    assert!(fed <= 1, "{fed} WATCHDOG=1 with no control socket");
    sd.term();
    let stopping = sd.expect("STOPPING=1");
    assert!(stopping.starts_with("STOPPING=1\nSTATUS="), "{stopping:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_notifies_readiness_feeds_its_watchdog_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    let control = dir.join("agent.sock");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "host = \"desk-a\"\nserver = \"127.0.0.1:9\"\nserver_name = \"consol-1\"\n\
             listen = \"127.0.0.1:{port}\"\ncontrol_socket = {control:?}\nstate_dir = {:?}\n\
             run_dir = {:?}\nmemory_dir = {:?}\naccel = \"tcg\"\n{}",
            dir.join("state"),
            dir.join("run"),
            dir.join("shm"),
            pki_tls(dir, "desk-a", &["consol-1"])
        ),
    )
    .unwrap();
    let sd = Systemd::start(dir, env!("CARGO_BIN_EXE_jettison-agent"), &config, &control).await;
    ready_watchdog_stop(
        &sd,
        &control,
        &format!("serving 0 VM(s); state server on 127.0.0.1:{port}"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_notifies_readiness_feeds_its_watchdog_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    let control = dir.join("server.sock");
    let config = dir.join("server.toml");
    std::fs::write(
        &config,
        server_toml(dir, port, &pki_tls(dir, "consol-1", &["desk-a"])),
    )
    .unwrap();
    let mut sd = Systemd::start(
        dir,
        env!("CARGO_BIN_EXE_jettison-server"),
        &config,
        &control,
    )
    .await;
    sd.mount = Some(dir.join("mem"));
    ready_watchdog_stop(
        &sd,
        &control,
        &format!("serving 0 VM(s); agents on 127.0.0.1:{port}"),
    );
}
