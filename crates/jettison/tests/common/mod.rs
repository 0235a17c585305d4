//! Shared set-up of the integration tests: real daemons (this package's
//! binaries), a real guest under QEMU, and teardown by `Cluster`'s drop.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use jettison_demo::{Binaries, Cluster, ClusterOptions, GuestImage};

pub fn binaries() -> Binaries {
    let agent = PathBuf::from(env!("CARGO_BIN_EXE_jettison-agent"));
    // The office services are another package's binary, built beside ours
    // by a workspace build (`cargo xtask test`).
    let peer = agent.with_file_name("jettison-peer");
    assert!(
        peer.is_file(),
        "{} missing: build the workspace (cargo build -p jettison-peer)",
        peer.display()
    );
    Binaries {
        agent,
        server: PathBuf::from(env!("CARGO_BIN_EXE_jettison-server")),
        peer,
    }
}

/// Starts a cluster whose agent boots a guest of `memory_mib`, and waits
/// until the guest is ready.
pub async fn ready_cluster(memory_mib: u64) -> Cluster {
    ready_cluster_with(ClusterOptions {
        memory_mib,
        ..ClusterOptions::default()
    })
    .await
}

/// Starts a cluster with these options and waits until the guest is ready.
pub async fn ready_cluster_with(opts: ClusterOptions) -> Cluster {
    let image =
        GuestImage::locate().expect("guest image (run `cargo xtask guest`, or `cargo xtask test`)");
    let cluster = Cluster::start(&binaries(), &image, &opts)
        .await
        .expect("daemons start");
    cluster
        .wait_console("JTS READY", Duration::from_secs(300))
        .await
        .expect("guest boots");
    cluster
}

/// Waits until the guest prints a heartbeat with a sequence number above
/// `after`; returns that number.
pub async fn next_heartbeat(cluster: &Cluster, after: u64, timeout: Duration) -> u64 {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let last = last_heartbeat(cluster);
        if last > after {
            return last;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no heartbeat after seq {after} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The highest heartbeat sequence number printed so far.
pub fn last_heartbeat(cluster: &Cluster) -> u64 {
    cluster
        .console_logs()
        .iter()
        .flat_map(|l| l.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|l| {
            l.split("seq=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse().ok())
        })
        .max()
        .unwrap_or(0)
}

/// What the guest's console says so far, over both hosts.
pub fn console(cluster: &Cluster) -> jettison_demo::console::ConsoleSummary {
    let logs = cluster.console_logs();
    jettison_demo::console::summarise(&logs.iter().map(String::as_str).collect::<Vec<_>>(), &[])
}

/// Waits until the guest has reported more than `after` integrity checks;
/// returns the summary then.
pub async fn checks_after(
    cluster: &Cluster,
    after: u64,
    timeout: Duration,
) -> jettison_demo::console::ConsoleSummary {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let s = console(cluster);
        if s.checks > after {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no integrity check after #{after} within {timeout:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `which` daemon's log (`agent`, `server`) says `needle` at
/// least `n` times; fails with the log's tail otherwise. Polls finely: a
/// test may have to act within the seconds of a suspend.
pub async fn wait_log(cluster: &Cluster, which: &str, needle: &str, n: usize, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let log = cluster.daemon_log(which);
        if log.matches(needle).count() >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} x{n} in the {which} log within {timeout:?}:\n{}",
            jettison_demo::procs::tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free TCP port on the loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA in `<dir>/pki` and certificates for `host` and `peers`, made by
/// `jettison certs`; gives `host`'s `[tls]` section, accepting `peers`.
pub fn pki_tls(dir: &std::path::Path, host: &str, peers: &[&str]) -> String {
    let pki = dir.join("pki");
    let p = pki.to_str().unwrap();
    let certs = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_jettison"))
            .arg("certs")
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "jettison certs {args:?}: {o:?}");
    };
    certs(&["init", "--dir", p]);
    for h in std::iter::once(&host).chain(peers) {
        certs(&["issue", "--dir", p, "--host", h]);
    }
    format!(
        "[tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\nallowed_peers = {peers:?}\n",
        pki.join("ca.pem"),
        pki.join(format!("{host}.pem")),
        pki.join(format!("{host}.key")),
    )
}

/// A server's configuration for a test without guests, everything in
/// `dir` (control socket `server.sock`, FUSE mount `mem`), on the loopback
/// at `port`, with the `[tls]` section `tls`.
pub fn server_toml(dir: &std::path::Path, port: u16, tls: &str) -> String {
    format!(
        "host = \"consol-1\"\nlisten = \"127.0.0.1:{port}\"\ncontrol_socket = {:?}\n\
         mount_dir = {:?}\nreplica_dir = {:?}\nstate_dir = {:?}\nrun_dir = {:?}\n\
         checkpoint_interval_s = 0\naccel = \"tcg\"\n{tls}",
        dir.join("server.sock"),
        dir.join("mem"),
        dir.join("replica"),
        dir.join("state"),
        dir.join("run"),
    )
}

/// Migrates the cluster's VM and waits (2 min at most) until its desktop
/// went to sleep (the server's log says so).
pub async fn migrate_until_asleep(cluster: &Cluster) {
    jettison_demo::scenario::migrate(cluster).await.unwrap();
    wait_log(
        cluster,
        "server",
        "desktop goes to sleep",
        1,
        Duration::from_secs(120),
    )
    .await;
}
