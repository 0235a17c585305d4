//! Safe defaults and clear failures, on the real daemon processes (no
//! guest): the agent refuses to start on a missing disk image (and does
//! not create one), on a qcow2 image, and with an unspecified advertised
//! state server address, each with what to do; the server refuses a
//! prepare whose advertised state server it cannot reach, with the reason,
//! before it makes anything (needs root: its FUSE mount).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use jettison_demo::procs::{spawn_logged, stop_child, wait_for_socket};
use jettison_wire::{MachineDesc, Message, Role};

mod common;
use common::{free_port, pki_tls, server_toml};

/// Runs the agent on `config` and waits for it to exit (it must, within
/// 60 s); gives its exit success and its log.
fn agent_exits(dir: &Path, config: &str) -> (bool, String) {
    let path = dir.join("agent.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.join("agent.log");
    let _ = std::fs::remove_file(&log);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jettison-agent"));
    cmd.arg("--config").arg(&path);
    let mut child = spawn_logged(cmd, &log).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            stop_child(&mut Some(child));
            panic!(
                "the agent did not exit:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.success(),
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}

#[test]
fn the_agent_refuses_a_missing_or_qcow2_disk_and_an_unspecified_advertise() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tls = pki_tls(dir, "desk-a", &["consol-1"]);
    let port = free_port();
    let config = |listen: &str, vm: &str| {
        format!(
            "host = \"desk-a\"\nserver = \"127.0.0.1:9\"\nserver_name = \"consol-1\"\n\
             listen = \"{listen}\"\ncontrol_socket = {:?}\nstate_dir = {:?}\nrun_dir = {:?}\n\
             memory_dir = {:?}\naccel = \"tcg\"\n{tls}\n{vm}",
            dir.join("agent.sock"),
            dir.join("state"),
            dir.join("run"),
            dir.join("shm"),
        )
    };
    let local = format!("127.0.0.1:{port}");
    let vm = |disk: &Path| {
        format!(
            "[[vm]]\nname = \"vm1\"\nmemory_mib = 64\nautostart = false\ndisk = {:?}\n",
            disk
        )
    };

    // A mistyped path: refused, and no empty disk appears.
    let missing = dir.join("tpyo.img");
    let (ok, log) = agent_exits(dir, &config(&local, &vm(&missing)));
    assert!(!ok, "{log}");
    assert!(log.contains("does not exist"), "{log}");
    assert!(!missing.exists(), "the agent created the missing disk");

    // A qcow2 image (its header as qemu-img writes it).
    let qcow2 = dir.join("disk.qcow2");
    let mut header = b"QFI\xfb\x00\x00\x00\x03".to_vec();
    header.resize(64 << 10, 0);
    std::fs::write(&qcow2, &header).unwrap();
    let (ok, log) = agent_exits(dir, &config(&local, &vm(&qcow2)));
    assert!(!ok, "{log}");
    assert!(
        log.contains("is qcow2") && log.contains("qemu-img convert"),
        "{log}"
    );

    // Listening on every address with nothing advertised.
    let raw = dir.join("disk.img");
    std::fs::File::create(&raw)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let any = format!("0.0.0.0:{port}");
    let (ok, log) = agent_exits(dir, &config(&any, &vm(&raw)));
    assert!(!ok, "{log}");
    assert!(
        log.contains("\"0.0.0.0:") && log.contains("set `advertise`"),
        "{log}"
    );
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), 1 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_a_prepare_whose_state_server_it_cannot_reach() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tls = pki_tls(dir, "consol-1", &["desk-a"]);
    let port = free_port();
    let control = dir.join("server.sock");
    let mount = dir.join("mem");
    let config = dir.join("server.toml");
    std::fs::write(&config, server_toml(dir, port, &tls)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jettison-server"));
    cmd.arg("--config").arg(&config);
    let mut child = Some(spawn_logged(cmd, &dir.join("server.log")).unwrap());
    wait_for_socket(&control, child.as_mut(), "server")
        .await
        .unwrap();

    let pki = dir.join("pki");
    let desk = jettison_tls::TlsContext::load(&jettison_tls::TlsSettings::new(
        pki.join("ca.pem"),
        pki.join("desk-a.pem"),
        pki.join("desk-a.key"),
        vec!["consol-1".into()],
    ))
    .unwrap();
    let mut t = jettison_daemon::dial(
        &desk,
        &format!("127.0.0.1:{port}"),
        "consol-1",
        Role::Agent,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    // Nothing listens at the advertised address.
    let closed = format!("127.0.0.1:{}", free_port());
    let prepare = Message::MigratePrepare {
        vm: "vm1".into(),
        machine: MachineDesc {
            memory_mib: 64,
            cpus: 1,
            kernel: None,
            initrd: None,
            append: None,
            nic_mac: None,
            disk_bytes: None,
        },
        state_server: closed.clone(),
    };
    let reply = t.request(&prepare, Duration::from_secs(30)).await;
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let message = match &reply {
        Err(jettison_wire::WireError::Remote(e)) => e.message.clone(),
        other => panic!("expected a refusal, got {other:?}\n{log}"),
    };
    assert!(
        message.contains(&format!(
            "cannot reach the desktop's state server at {closed}"
        )) && message.contains("Connection refused")
            && message.contains("set `advertise`"),
        "{message}"
    );
    assert!(
        log.contains("prepare refused: state server unreachable"),
        "{log}"
    );
    // Nothing was made for it.
    let files: Vec<_> = std::fs::read_dir(&mount)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(files.is_empty(), "{files:?}");
    assert!(!dir.join("state/handover/vm1.json").exists());
    assert!(!dir.join("run/vm1").exists());
    drop(t);
    stop_child(&mut child);
    let _ = Command::new("umount").arg("-l").arg(&mount).output();
}
