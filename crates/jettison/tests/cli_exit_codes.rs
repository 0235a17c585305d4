//! The operator's command against a real agent process: each class of
//! failure exits with its own code (`jettison::exit`), JSON mode prints
//! the error object on stdout, `jettison status` on a desktop (no server
//! socket) shows the agent's part and no error, and `jettison power`
//! shows the desktop's power record (emulated backend; the desktop does
//! not sleep with no VM away). Needs root (the emulated backend's freezer
//! cgroup); no guest.

use std::path::Path;
use std::process::{Command, Output};

use jettison::exit::Failure;
use jettison_demo::procs::{spawn_logged, stop_child, wait_for_socket};

fn jettison(agent_socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jettison"))
        .arg("--agent-socket")
        .arg(agent_socket)
        .arg("--server-socket")
        .arg(agent_socket.with_file_name("no-server-here.sock"))
        .args(args)
        .env_remove("JETTISON_AGENT_SOCKET")
        .env_remove("JETTISON_SERVER_SOCKET")
        .output()
        .unwrap()
}

fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs and checks the exit code; gives stdout and stderr.
fn expect(socket: &Path, args: &[&str], failure: Option<Failure>) -> (String, String) {
    let o = jettison(socket, args);
    let code = failure.map_or(0, |f| i32::from(f.code()));
    assert_eq!(o.status.code(), Some(code), "jettison {args:?}: {o:?}");
    out(&o)
}

/// The JSON error object on stdout, with this class.
fn json_error(stdout: &str, failure: Failure) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect(stdout);
    assert_eq!(v["error"]["code"], failure.code(), "{v}");
    assert_eq!(v["error"]["kind"], failure.kind(), "{v}");
    v
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_json_errors_status_and_power_against_a_real_agent() {
    let tmp = tempfile::Builder::new()
        .prefix("jts-cli-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let pki = dir.join("pki");
    let p = pki.to_str().unwrap();
    for args in [
        vec!["certs", "init", "--dir", p],
        vec!["certs", "issue", "--dir", p, "--host", "desk-cli"],
        vec!["certs", "issue", "--dir", p, "--host", "consol-cli"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_jettison"))
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
    }
    let socket = dir.join("agent.sock");
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = format!(
        "host = \"desk-cli\"\nserver = \"127.0.0.1:9\"\nserver_name = \"consol-cli\"\n\
         listen = \"{listen}\"\ncontrol_socket = {socket:?}\nstate_dir = {:?}\nrun_dir = {:?}\n\
         memory_dir = {:?}\n\n[tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\nallowed_peers = [\"consol-cli\"]\n\n\
         [[vm]]\nname = \"vm-cli\"\nmemory_mib = 64\nautostart = false\n\n\
         [power]\nbackend = \"emulated\"\nnic_mac = \"02:00:00:00:0c:01\"\nwol_listen = \"127.0.0.1:{}\"\n\
         wol_broadcast = \"127.255.255.255:9\"\n",
        dir.join("state"),
        dir.join("run"),
        dir.join("shm"),
        pki.join("ca.pem"),
        pki.join("desk-cli.pem"),
        pki.join("desk-cli.key"),
        free_udp_port(),
    );
    let config_path = dir.join("agent.toml");
    std::fs::write(&config_path, config).unwrap();

    // The configuration passes the agent's own check first.
    let check = Command::new(env!("CARGO_BIN_EXE_jettison-agent"))
        .arg("--check-config")
        .arg("--config")
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    // No daemon yet: unreachable, in text and in JSON.
    let (o, e) = expect(&socket, &["migrate", "vm-cli"], Some(Failure::Unreachable));
    assert!(o.is_empty() && e.contains("cannot reach the daemon"), "{e}");
    let (o, e) = expect(
        &socket,
        &["--format", "json", "status"],
        Some(Failure::Unreachable),
    );
    assert!(e.is_empty(), "{e}");
    json_error(&o, Failure::Unreachable);

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jettison-agent"));
    cmd.arg("--config").arg(&config_path);
    let mut child = Some(spawn_logged(cmd, &dir.join("agent.log")).unwrap());
    wait_for_socket(&socket, child.as_mut(), "agent")
        .await
        .unwrap();

    // A desktop has no server socket: the agent's part, no error.
    let (o, e) = expect(&socket, &["status"], None);
    assert!(o.contains("agent desk-cli") && o.contains("vm-cli"), "{o}");
    assert!(e.is_empty(), "stderr: {e}");
    let (o, _) = expect(&socket, &["--format", "json", "status"], None);
    let v: serde_json::Value = serde_json::from_str(o.trim()).unwrap();
    assert_eq!(v["vms"][0]["vm"], "vm-cli", "{v}");

    // Each class of refusal, text and JSON.
    let (_, e) = expect(&socket, &["migrate", "no-such-vm"], Some(Failure::NotFound));
    assert!(e.contains("no-such-vm"), "{e}");
    let (o, _) = expect(
        &socket,
        &["--format", "json", "migrate", "no-such-vm"],
        Some(Failure::NotFound),
    );
    let v = json_error(&o, Failure::NotFound);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-vm"),
        "{v}"
    );
    // Not away: nothing to bring home.
    expect(&socket, &["reintegrate", "vm-cli"], Some(Failure::Refused));
    // The agent takes no server requests.
    let o = Command::new(env!("CARGO_BIN_EXE_jettison"))
        .arg("--server-socket")
        .arg(&socket)
        .args(["--format", "json", "pause", "vm-cli"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(i32::from(Failure::NotAllowed.code())),
        "{o:?}"
    );
    json_error(&out(&o).0, Failure::NotAllowed);
    // Usage errors: clap's code, and JSON when asked for.
    expect(&socket, &["migrate"], Some(Failure::Usage));
    let (o, _) = expect(
        &socket,
        &["--format", "json", "bogus"],
        Some(Failure::Usage),
    );
    json_error(&o, Failure::Usage);

    // The power record: as text, and the agent's JSON as is.
    let (o, e) = expect(&socket, &["power"], None);
    assert!(e.is_empty(), "{e}");
    assert!(o.starts_with("state:      active for "), "{o}");
    assert!(
        o.contains("wakes:      0 (") && o.contains("served:     0 fetches"),
        "{o}"
    );
    let (o, _) = expect(&socket, &["--format", "json", "power"], None);
    let record: jettison_agent::power::PowerRecord = serde_json::from_str(o.trim()).unwrap();
    assert!(record.timeline.wakes.is_empty());
    assert_eq!(record.tick_ms, Some(250));

    // A socket left by a dead daemon: unreachable, not a silent skip.
    stop_child(&mut child);
    std::os::unix::net::UnixListener::bind(&socket).ok();
    let (_, e) = expect(&socket, &["status"], Some(Failure::Unreachable));
    assert!(e.contains("agent.sock"), "{e}");
}
