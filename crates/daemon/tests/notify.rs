//! The systemd notification protocol for real: a Unix datagram socket
//! plays systemd's (`NOTIFY_SOCKET`), a real control socket is served by
//! `serve_unix` on a runtime of its own thread, and the watchdog task of
//! `jettison_daemon::notify` checks it. `READY=1` comes first, then
//! `WATCHDOG=1` while the control socket answers; none while its runtime
//! is stalled (its thread blocked), and again once it runs.
//!
//! One test in this file: it sets the process's environment, which
//! nothing else may read meanwhile.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jettison_daemon::notify;
use jettison_daemon::{serve_unix, ConnectionHandler, Peer};
use jettison_wire::Transport;
use tokio::net::UnixStream;

/// A control handler that answers nothing past the handshake.
struct Quiet;

impl ConnectionHandler<UnixStream> for Quiet {
    async fn handle(self: Arc<Self>, _: Peer, _: Transport<UnixStream>) {}
}

/// The next notification within `within`, if any.
fn next(sock: &UnixDatagram, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(n) => return Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => panic!("notify socket: {e}"),
        }
    }
    None
}

/// Waits for `n` messages equal to `WATCHDOG=1` (failing on anything else).
fn watchdogs(sock: &UnixDatagram, n: usize) {
    for i in 0..n {
        let m = next(sock, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("no WATCHDOG=1 #{i} within 60 s"));
        assert_eq!(m.trim(), "WATCHDOG=1");
    }
}

/// Serves `path` on a current-thread runtime in a thread of its own; each
/// receiver sent on the returned channel stalls that runtime (its thread
/// blocks on it) until it is released, after saying so on `stalled`.
fn control_thread(
    path: &Path,
) -> (
    tokio::sync::mpsc::UnboundedSender<mpsc::Receiver<()>>,
    mpsc::Receiver<()>,
    std::thread::JoinHandle<()>,
) {
    let (stall_tx, mut stall_rx) = tokio::sync::mpsc::unbounded_channel::<mpsc::Receiver<()>>();
    let (stalled_tx, stalled_rx) = mpsc::channel();
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::UnixListener::from_std(listener).unwrap();
            tokio::spawn(serve_unix(listener, "test".into(), Arc::new(Quiet)));
            while let Some(release) = stall_rx.recv().await {
                stalled_tx.send(()).unwrap();
                // Blocks this runtime: no accept, no handshake.
                let _ = release.recv();
            }
        });
    });
    (stall_tx, stalled_rx, thread)
}

#[test]
fn ready_then_a_watchdog_fed_only_while_the_control_socket_answers() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    // Before any thread of the test starts.
    std::env::set_var("NOTIFY_SOCKET", &notify_path);
    std::env::set_var("WATCHDOG_USEC", "300000");
    std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
    assert_eq!(notify::watchdog_timeout(), Some(Duration::from_millis(300)));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let _enter = rt.enter();
    let control = dir.path().join("control.sock");
    // Nothing listens yet: the check fails.
    let e = rt
        .block_on(notify::probe_control(&control, Duration::from_secs(5)))
        .unwrap_err();
    assert!(matches!(e, notify::ProbeError::Connect(..)), "{e}");
    let (stall, stalled, thread) = control_thread(&control);
    rt.block_on(notify::probe_control(&control, Duration::from_secs(30)))
        .expect("the served control socket answers the check");

    let watchdog = notify::ready(&control, "serving the test");
    let first = next(&sock, Duration::from_secs(10)).expect("a notification");
    assert_eq!(first, "READY=1\nSTATUS=serving the test\n");
    watchdogs(&sock, 3);

    // Stall the control socket's runtime.
    let (release, released) = mpsc::channel();
    stall.send(released).unwrap();
    stalled.recv().unwrap();
    // A check that got its reply just before the stall may still send one;
    // none after that, over many periods of 100 ms.
    let mut fed = 0;
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(3) {
        if let Some(m) = next(&sock, Duration::from_millis(200)) {
            assert_eq!(m.trim(), "WATCHDOG=1");
            fed += 1;
        }
    }
    assert!(
        fed <= 1,
        "{fed} WATCHDOG=1 while the control socket did not answer"
    );

    // It answers again: the watchdog is fed again.
    release.send(()).unwrap();
    watchdogs(&sock, 2);

    notify::stopping("stopping the test");
    let mut m = next(&sock, Duration::from_secs(10)).expect("STOPPING=1");
    // A last check may land between the two.
    if m.trim() == "WATCHDOG=1" {
        m = next(&sock, Duration::from_secs(10)).expect("STOPPING=1");
    }
    assert_eq!(m, "STOPPING=1\nSTATUS=stopping the test\n");
    watchdog.stop();
    drop(stall);
    thread.join().unwrap();
}
