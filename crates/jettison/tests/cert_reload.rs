//! Revoking a host and reloading real daemon processes with SIGHUP: the
//! revoked peer's established connection is closed and its new handshakes
//! are refused ("revoked"), another peer keeps working, the status shows the
//! certificate's expiry and the CRL, and a bad reload keeps the settings in
//! force. The server (agents dialling it) and the agent (servers dialling
//! its state server), each with `jettison certs` for the certificates and
//! the CRL. Needs root (the server mounts its FUSE filesystem); no guest.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use jettison_demo::procs::{spawn_logged, stop_child, wait_for_socket};
use jettison_tls::{TlsContext, TlsSettings};
use jettison_wire::{Message, Role};

fn jettison(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_jettison"))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "jettison {args:?}: {o:?}");
    o
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A daemon process of the test, stopped (SIGTERM) on drop.
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
    config: PathBuf,
    control: PathBuf,
    addr: String,
    mount: Option<PathBuf>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        stop_child(&mut self.child);
        if let Some(m) = &self.mount {
            // Only if the daemon could not unmount it itself.
            let _ = Command::new("umount").arg("-l").arg(m).output();
        }
    }
}

impl Daemon {
    /// Starts `binary` with the configuration `text` as `<dir>/<what>.toml`,
    /// its control socket `<dir>/<what>.sock` and its log `<dir>/<what>.log`;
    /// waits until it answers.
    async fn start(
        binary: &str,
        dir: &Path,
        what: &str,
        text: &str,
        port: u16,
        mount: Option<PathBuf>,
    ) -> Daemon {
        let config = dir.join(format!("{what}.toml"));
        std::fs::write(&config, text).unwrap();
        let mut cmd = Command::new(binary);
        cmd.arg("--config").arg(&config);
        let log = dir.join(format!("{what}.log"));
        let mut d = Daemon {
            child: Some(spawn_logged(cmd, &log).unwrap()),
            log,
            config,
            control: dir.join(format!("{what}.sock")),
            addr: format!("127.0.0.1:{port}"),
            mount,
        };
        wait_for_socket(&d.control, d.child.as_mut(), what)
            .await
            .unwrap();
        d
    }

    fn hup(&self) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
    }

    fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(needle)
            .count()
    }

    /// Waits until the log holds `needle` more than `before` times.
    async fn wait_log(&mut self, needle: &str, before: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.log_count(needle) <= before {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the daemon exited ({status}); log:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log within 30 s:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn status_host(&self) -> String {
        match jettison_daemon::request(&self.control, &Message::OpStatus, Duration::from_secs(10))
            .await
            .unwrap()
        {
            Message::OpStatusReply { host, .. } => host,
            other => panic!("{other:?}"),
        }
    }
}

/// The deployment: a CA and certificates for every name, by the CLI.
fn pki(dir: &Path, hosts: &[&str]) -> PathBuf {
    let pki = dir.join("pki");
    let p = pki.to_str().unwrap();
    jettison(&["certs", "init", "--dir", p]);
    for h in hosts {
        jettison(&["certs", "issue", "--dir", p, "--host", h]);
    }
    pki
}

fn tls_section(pki: &Path, host: &str, allowed: &[&str], crl: Option<&Path>) -> String {
    let mut s = format!(
        "[tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\nallowed_peers = {allowed:?}\n",
        pki.join("ca.pem"),
        pki.join(format!("{host}.pem")),
        pki.join(format!("{host}.key")),
    );
    if let Some(crl) = crl {
        s.push_str(&format!("crl = {crl:?}\n"));
    }
    s
}

fn peer(pki: &Path, host: &str, allowed: &str) -> std::sync::Arc<TlsContext> {
    TlsContext::load(&TlsSettings::new(
        pki.join("ca.pem"),
        pki.join(format!("{host}.pem")),
        pki.join(format!("{host}.key")),
        vec![allowed.into()],
    ))
    .unwrap()
}

async fn dial(
    tls: &TlsContext,
    d: &Daemon,
    name: &str,
    role: Role,
) -> Result<jettison_wire::Transport<jettison_tls::TlsConn>, jettison_daemon::DialError> {
    jettison_daemon::dial(tls, &d.addr, name, role, Duration::from_secs(10)).await
}

/// The scenario, on a daemon named `name` that `revoked` and `kept` dial
/// as `role`; `config(crl)` writes its configuration file's text.
async fn revoke_and_reload(
    mut d: Daemon,
    pki: &Path,
    name: &str,
    role: Role,
    revoked: &str,
    kept: &str,
    config: impl Fn(Option<&Path>) -> String,
) {
    assert!(
        d.log_text().contains("no CRL configured"),
        "{}",
        d.log_text()
    );
    let bad = peer(pki, revoked, name);
    let good = peer(pki, kept, name);
    let mut established = dial(&bad, &d, name, role).await.unwrap();
    dial(&good, &d, name, role).await.unwrap();
    let status = d.status_host().await;
    assert!(status.contains("certificate until"), "{status}");
    assert!(status.contains("no CRL"), "{status}");

    // Revoke, point the config at the CRL, SIGHUP.
    let p = pki.to_str().unwrap();
    jettison(&["certs", "revoke", "--dir", p, "--host", revoked]);
    let crl = pki.join("ca.crl");
    std::fs::write(&d.config, config(Some(&crl))).unwrap();
    let done = d.log_count("reload done");
    d.hup();
    d.wait_log("reload done", done).await;

    // The revoked peer's connection is closed; it cannot come back.
    let ended = tokio::time::timeout(Duration::from_secs(10), established.recv())
        .await
        .expect("the revoked peer's connection is closed");
    assert!(!matches!(ended, Ok(Some(_))), "{ended:?}");
    let err = dial(&bad, &d, name, role).await.unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    dial(&good, &d, name, role).await.unwrap();
    let log = d.log_text();
    assert!(log.contains("refused: certificate revoked"), "{log}");
    assert!(log.contains("closing an established connection"), "{log}");
    let status = d.status_host().await;
    assert!(status.contains("CRL: 1 revoked"), "{status}");

    // A reload onto a missing CRL is refused; the settings in force stay.
    let missing = pki.join("missing.crl");
    std::fs::write(&d.config, config(Some(&missing))).unwrap();
    let refused = d.log_count("reload refused");
    d.hup();
    d.wait_log("reload refused", refused).await;
    assert!(d.log_text().contains("missing.crl"), "{}", d.log_text());
    let err = dial(&bad, &d, name, role).await.unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    dial(&good, &d, name, role).await.unwrap();
    assert!(d.child.as_mut().unwrap().try_wait().unwrap().is_none());
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_reloads_on_sighup_and_refuses_a_revoked_desktop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = pki(dir, &["consol-1", "desk-a", "desk-b"]);
    let port = free_port();
    let config = |crl: Option<&Path>| {
        format!(
            "host = \"consol-1\"\nlisten = \"127.0.0.1:{port}\"\ncontrol_socket = {:?}\n\
             mount_dir = {:?}\nreplica_dir = {:?}\nstate_dir = {:?}\nrun_dir = {:?}\n\
             checkpoint_interval_s = 0\naccel = \"tcg\"\n{}",
            dir.join("server.sock"),
            dir.join("mem"),
            dir.join("replica"),
            dir.join("state"),
            dir.join("run"),
            tls_section(&pki, "consol-1", &["desk-a", "desk-b"], crl)
        )
    };
    let d = Daemon::start(
        env!("CARGO_BIN_EXE_jettison-server"),
        dir,
        "server",
        &config(None),
        port,
        Some(dir.join("mem")),
    )
    .await;
    revoke_and_reload(d, &pki, "consol-1", Role::Agent, "desk-a", "desk-b", config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_reloads_on_sighup_and_refuses_a_revoked_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = pki(dir, &["desk-a", "consol-1", "consol-2"]);
    let port = free_port();
    let config = |crl: Option<&Path>| {
        format!(
            "host = \"desk-a\"\nserver = \"127.0.0.1:9\"\nserver_name = \"consol-1\"\n\
             listen = \"127.0.0.1:{port}\"\ncontrol_socket = {:?}\nstate_dir = {:?}\n\
             run_dir = {:?}\nmemory_dir = {:?}\naccel = \"tcg\"\n{}",
            dir.join("agent.sock"),
            dir.join("state"),
            dir.join("run"),
            dir.join("shm"),
            tls_section(&pki, "desk-a", &["consol-1", "consol-2"], crl)
        )
    };
    let d = Daemon::start(
        env!("CARGO_BIN_EXE_jettison-agent"),
        dir,
        "agent",
        &config(None),
        port,
        None,
    )
    .await;
    revoke_and_reload(
        d,
        &pki,
        "desk-a",
        Role::Server,
        "consol-2",
        "consol-1",
        config,
    )
    .await;
}
