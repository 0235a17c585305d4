//! Real namespaces: connectivity across the LAN, taps, teardown (also on
//! panic), parallel LANs, and cleanup of a dead run's leftovers.
//!
//! The TCP ends run as this very test binary inside the namespaces
//! (`helper_*` tests, ignored unless started that way with their
//! environment variable set). Tests skip when not root.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::Duration;

use jettison_testbed::{clean_leftovers, is_root, Host, Lan, LanSpec, Role};

/// The cleanup tests run one at a time (each would clean the other's
/// simulated dead run), also across processes: nextest runs each test in
/// a process of its own. Held until dropped.
fn cleaning() -> nix::fcntl::Flock<std::fs::File> {
    let path = std::env::temp_dir().join("jettison-testbed-clean-tests.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap();
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap()
}

const ECHO_ENV: &str = "JT_TESTBED_ECHO_ON";
const CONNECT_ENV: &str = "JT_TESTBED_CONNECT_TO";

/// Network namespaces need root: without it these tests fail (they are
/// never counted as passed without having run).
fn root() -> bool {
    assert!(
        is_root(),
        "network namespaces need root: run the tests as root (cargo xtask test)"
    );
    true
}

fn netns_names() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

fn ours(prefix: &str) -> Vec<String> {
    netns_names()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect()
}

/// Kills and reaps a helper child on drop.
struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn helper(host: &Host, name: &str, env: (&str, String)) -> std::process::Command {
    let mut c = host.command(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(env.0, env.1)
    .stdin(Stdio::null());
    c
}

#[test]
#[ignore = "helper: run inside a namespace by tcp_across_the_lan"]
fn helper_echo_server() {
    let Ok(addr) = std::env::var(ECHO_ENV) else {
        return;
    };
    let l = TcpListener::bind(&addr).unwrap();
    println!("READY");
    let (mut s, _) = l.accept().unwrap();
    let mut line = String::new();
    BufReader::new(s.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    s.write_all(format!("echo {line}").as_bytes()).unwrap();
}

#[test]
#[ignore = "helper: run inside a namespace by tcp_across_the_lan"]
fn helper_client() {
    let Ok(addr) = std::env::var(CONNECT_ENV) else {
        return;
    };
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(5)).unwrap();
    s.write_all(b"hello\n").unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    println!("GOT {}", got.trim());
}

fn ping(from: &Host, to: std::net::Ipv4Addr) -> bool {
    from.command("/bin/busybox")
        .args(["ping", "-c", "1", "-W", "3", &to.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn tcp_across_the_lan() {
    if !root() {
        return;
    }
    let lan = Lan::create(&LanSpec { desktops: 2 }).unwrap();
    assert_eq!(lan.hosts().len(), 4);
    assert_eq!(lan.desktops().len(), 2);
    assert_eq!(lan.server().role, Role::Server);
    assert_eq!(lan.server().ip.octets()[3], 2);
    assert_eq!(lan.peer().ip.octets()[3], 3);
    assert_eq!(lan.desktop(1).ip.octets()[3], 11);
    assert_eq!(ours(&lan.prefix()).len(), 5, "switch + 4 hosts");
    assert!(ping(lan.desktop(0), lan.peer().ip));
    assert!(ping(lan.desktop(1), lan.server().ip));

    let addr = format!("{}:7001", lan.peer().ip);
    let mut server = Reap(
        helper(lan.peer(), "helper_echo_server", (ECHO_ENV, addr.clone()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = server.0.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines(); // kept open until the end
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("READY"));
    assert!(ready, "echo server did not start");
    let client = helper(lan.desktop(0), "helper_client", (CONNECT_ENV, addr))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&client.stdout);
    assert!(text.contains("GOT echo hello"), "{text}");
    drop(lines);

    // The test process itself can reach the LAN through Host::run_in.
    let peer_ip = lan.peer().ip;
    let l = lan
        .peer()
        .run_in(move || TcpListener::bind((peer_ip, 0)).unwrap())
        .unwrap();
    let port = l.local_addr().unwrap().port();
    let ok = lan
        .desktop(1)
        .run_in(move || TcpStream::connect((peer_ip, port)).is_ok())
        .unwrap();
    assert!(ok);
    assert!(
        TcpStream::connect_timeout(&(peer_ip, port).into(), Duration::from_millis(300)).is_err()
    );
}

#[test]
fn tap_on_the_host_bridge() {
    if !root() {
        return;
    }
    let lan = Lan::create(&LanSpec::default()).unwrap();
    let d = lan.desktop(0);
    d.add_tap("vmtap0").unwrap();
    let show = d
        .command("ip")
        .args(["-d", "link", "show", "vmtap0"])
        .output()
        .unwrap();
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(show.contains("master br0"), "{show}");
    assert!(show.contains(",UP>"), "{show}");
    assert!(show.contains("tun type tap"), "{show}");
    assert!(d.add_tap("a-name-far-too-long").is_err());
    d.del_tap("vmtap0").unwrap();
    let gone = d
        .command("ip")
        .args(["link", "show", "vmtap0"])
        .output()
        .unwrap();
    assert!(!gone.status.success());
    let mac = lan.vm_mac(0);
    assert!(mac.starts_with("52:54:00:") && mac != lan.vm_mac(1));
    assert_eq!(lan.vm_ip(2).octets()[3], 102);
}

#[test]
fn drop_removes_everything_also_on_panic() {
    if !root() {
        return;
    }
    let prefix = std::sync::Mutex::new(String::new());
    let sleeper = std::sync::Mutex::new(None);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lan = Lan::create(&LanSpec::default()).unwrap();
        *prefix.lock().unwrap() = lan.prefix();
        // A process left running inside a host must not survive teardown.
        *sleeper.lock().unwrap() = Some(lan.peer().command("sleep").arg("600").spawn().unwrap());
        assert_eq!(ours(&lan.prefix()).len(), 4);
        panic!("test failure inside the LAN");
    }));
    assert!(r.is_err());
    let mut sleeper = sleeper.into_inner().unwrap().expect("sleeper started");
    let status = sleeper.wait().unwrap(); // already ended by the teardown
    assert!(!status.success(), "{status}");
    let prefix = prefix.into_inner().unwrap();
    assert!(!prefix.is_empty());
    assert!(ours(&prefix).is_empty(), "{:?}", ours(&prefix));
    assert!(!std::path::Path::new(jettison_testbed::STATE_DIR)
        .join(&prefix)
        .exists());
}

#[test]
fn parallel_lans_do_not_collide() {
    if !root() {
        return;
    }
    let lans: Vec<Lan> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| Lan::create(&LanSpec::default()).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_ne!(lans[0].prefix(), lans[1].prefix());
    for l in &lans {
        assert!(ping(l.desktop(0), l.server().ip));
    }
    // The LANs are isolated: a desktop cannot reach the other LAN's server
    // (unless both drew the same subnet, which is allowed and harmless).
    if lans[0].subnet() != lans[1].subnet() {
        assert!(!ping(lans[0].desktop(0), lans[1].server().ip));
    }
}

#[test]
fn clean_leftovers_removes_dead_runs() {
    if !root() {
        return;
    }
    let _one = cleaning();
    // A pid that is certainly dead: a child we started and reaped.
    let mut c = std::process::Command::new("true").spawn().unwrap();
    c.wait().unwrap();
    let dead = c.id();

    let lan = Lan::create(&LanSpec::default()).unwrap();
    let prefix = lan.prefix();
    let record = lan.record_path().to_path_buf();
    let text = std::fs::read_to_string(&record).unwrap();
    let mine = format!("owner_pid={}\n", std::process::id());
    std::fs::write(&record, text.replace(&mine, &format!("owner_pid={dead}\n"))).unwrap();
    let shm = std::path::PathBuf::from(format!("/dev/shm/jt{dead}x0.mem"));
    std::fs::write(&shm, b"x").unwrap();
    std::mem::forget(lan); // as if the owner had been killed

    let report = clean_leftovers(false).unwrap();
    assert!(ours(&prefix).is_empty(), "{report}");
    assert!(
        report.netns.iter().any(|n| n.starts_with(&prefix)),
        "{report}"
    );
    assert!(report.records.contains(&record), "{report}");
    assert!(!record.exists());
    assert!(report.shm_files.contains(&shm), "{report}");
    assert!(!shm.exists());
}

#[test]
fn clean_leftovers_spares_live_runs() {
    if !root() {
        return;
    }
    let _one = cleaning();
    let lan = Lan::create(&LanSpec::default()).unwrap();
    let report = clean_leftovers(false).unwrap();
    assert!(
        !report.netns.iter().any(|n| n.starts_with(&lan.prefix())),
        "{report}"
    );
    assert_eq!(ours(&lan.prefix()).len(), 4);
    assert!(lan.record_path().exists());
}
