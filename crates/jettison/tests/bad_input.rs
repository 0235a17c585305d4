//! Garbage and out-of-range requests to both daemons while a VM is
//! consolidated: each gets a clear error and a closed connection; the VM and
//! the other connections carry on. Another desktop and another server of
//! the fleet, each accepted, are refused the VM that is not theirs.

mod common;

use std::time::Duration;

use std::sync::Arc;

use jettison_demo::scenario::{migrate, reintegrate, server_stats};
use jettison_demo::{OTHER_DESKTOP, OTHER_SERVER};
use jettison_tls::TlsContext;
use jettison_wire::{
    Custody, ErrorCode, ErrorReply, FileKind, MachineDesc, Message, Range, Role, Transport,
    WireError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Plaintext bytes to a TLS port: refused, and nothing at all comes back.
async fn plaintext_refused(addr: &str, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("the daemon closes the connection");
    assert!(read.is_ok() || out.is_empty(), "{read:?}");
    assert!(
        out.is_empty(),
        "a plaintext client got {} bytes back",
        out.len()
    );
}

/// Sends raw bytes inside an authenticated TLS session and returns what the
/// daemon answered before closing.
async fn tls_exchange(
    tls: &TlsContext,
    addr: &str,
    name: &str,
    bytes: &[u8],
    close_write: bool,
) -> Vec<u8> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = tls.connect(tcp, name).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s.flush().await.unwrap();
    if close_write {
        s.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    // A peer that closes without close_notify ends the read with an error;
    // what arrived before counts.
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("the daemon closes the connection");
    out
}

fn error_code(reply: &[u8]) -> Option<ErrorCode> {
    if reply.len() < 4 {
        return None;
    }
    match jettison_wire::decode(&reply[4..]) {
        Ok(Message::Error(ErrorReply { code, .. })) => Some(code),
        _ => None,
    }
}

/// Bad frames from an authenticated peer: an error reply, then the close.
async fn refused_cases(tls: &TlsContext, addr: &str, name: &str) {
    for (what, bytes, close) in [
        (
            "garbage",
            &[0u8, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0x01][..],
            false,
        ),
        (
            "oversized frame",
            &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3][..],
            false,
        ),
        ("truncated frame", &[0, 0, 1, 0, 1, 2, 3][..], true),
        ("HTTP", &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], false),
    ] {
        let reply = tls_exchange(tls, addr, name, bytes, close).await;
        assert_eq!(
            error_code(&reply),
            Some(ErrorCode::BadRequest),
            "{what} to {name} at {addr}"
        );
    }
}

async fn fetch(
    t: &mut Transport<jettison_tls::TlsConn>,
    vm: &str,
    offset: u64,
    len: u64,
) -> Result<Message, WireError> {
    let req = Message::Fetch {
        vm: vm.into(),
        file: FileKind::Memory,
        ranges: vec![Range { offset, len }],
    };
    t.request(&req, Duration::from_secs(10)).await
}

fn refusal(reply: &Result<Message, WireError>) -> Option<ErrorCode> {
    match reply {
        Err(WireError::Remote(ErrorReply { code, .. })) => Some(*code),
        _ => None,
    }
}

async fn hello(
    tls: &Arc<TlsContext>,
    addr: &str,
    name: &str,
    role: Role,
) -> Result<Transport<jettison_tls::TlsConn>, jettison_daemon::DialError> {
    jettison_daemon::dial(tls, addr, name, role, Duration::from_secs(10)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_and_requests_are_refused_and_nothing_else_breaks() {
    let mut cluster = common::ready_cluster(256).await;
    migrate(&cluster).await.unwrap();
    let before = common::last_heartbeat(&cluster);

    // Plaintext is refused by both daemons before anything is answered.
    for addr in [&cluster.server_addr, &cluster.state_addr] {
        plaintext_refused(addr, &[0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0x01]).await;
        plaintext_refused(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    }
    // A certificate from the deployment's CA, for a host nobody authorized.
    let tls_dir = cluster.dir.join("tls");
    jettison_tls::certs::issue(&tls_dir, "intruder", &[], &[], &tls_dir, 1).unwrap();
    let settings = jettison_tls::TlsSettings::new(
        tls_dir.join("ca.pem"),
        tls_dir.join("intruder.pem"),
        tls_dir.join("intruder.key"),
        vec!["server".into(), "desktop".into()],
    );
    let intruder = TlsContext::load(&settings).unwrap();
    for (addr, name) in [
        (&cluster.server_addr, "server"),
        (&cluster.state_addr, "desktop"),
    ] {
        let err = hello(&intruder, addr, name, Role::Agent).await.unwrap_err();
        assert!(
            err.to_string().contains("not in the peer's allowed_peers"),
            "{err}"
        );
    }

    // Authenticated peers sending bad frames.
    let as_desktop = cluster.tls_as("desktop", "server").unwrap();
    let as_server = cluster.tls_as("server", "desktop").unwrap();
    refused_cases(&as_desktop, &cluster.server_addr, "server").await;
    refused_cases(&as_server, &cluster.state_addr, "desktop").await;

    // Wrong role on each port.
    for (tls, addr, name, role) in [
        (&as_server, &cluster.state_addr, "desktop", Role::Agent),
        (&as_desktop, &cluster.server_addr, "server", Role::Server),
    ] {
        let err = hello(tls, addr, name, role).await.unwrap_err();
        assert!(
            err.to_string().contains("NotAllowed"),
            "{role:?} at {addr}: {err}"
        );
    }

    // Fetches beyond the end of the memory file, or unaligned, are refused;
    // the connection stays usable for a valid fetch.
    let mut t = hello(&as_server, &cluster.state_addr, "desktop", Role::Server)
        .await
        .unwrap();
    let size = 256u64 << 20;
    let vm = cluster.vm.clone();
    for (offset, len) in [(size, 4096), (size - 4096, 8192), (10, 4096)] {
        let reply = fetch(&mut t, &vm, offset, len).await;
        assert_eq!(
            refusal(&reply),
            Some(ErrorCode::OutOfRange),
            "{offset}+{len}: {reply:?}"
        );
    }
    let reply = fetch(&mut t, "nope", 0, 4096).await;
    assert_eq!(refusal(&reply), Some(ErrorCode::UnknownVm), "{reply:?}");
    let reply = fetch(&mut t, &vm, size - 4096, 4096).await;
    assert!(
        matches!(reply, Ok(Message::Chunks { ref chunks }) if chunks[0].data.len() == 4096),
        "{reply:?}"
    );

    // A request the server does not take from an agent.
    let mut t = hello(&as_desktop, &cluster.server_addr, "server", Role::Agent)
        .await
        .unwrap();
    let reply = fetch(&mut t, &vm, 0, 4096).await;
    assert_eq!(refusal(&reply), Some(ErrorCode::NotAllowed), "{reply:?}");

    // Another desktop of the fleet, which the server accepts, acts on the
    // VM: refused, and nothing happens to it.
    let other = cluster.tls_as(OTHER_DESKTOP, "server").unwrap();
    let mut t = hello(&other, &cluster.server_addr, "server", Role::Agent)
        .await
        .unwrap();
    // An address off every network of the server's host (its default LAN).
    let local = jettison_server::lan::local_networks().unwrap();
    let off_lan = ["198.51.100.1", "203.0.113.1", "192.0.2.1"]
        .into_iter()
        .find(|ip| !local.iter().any(|n| n.contains(ip.parse().unwrap())))
        .expect("a test address off this host's networks");
    let machine = MachineDesc {
        memory_mib: 16,
        cpus: 1,
        kernel: None,
        initrd: None,
        append: None,
        nic_mac: None,
        disk_bytes: None,
    };
    for m in [
        Message::MigratePrepare {
            vm: vm.clone(),
            machine,
            state_server: cluster.state_addr.clone(),
        },
        Message::MigrateLoad {
            vm: vm.clone(),
            device_state: vec![0; 64],
        },
        Message::MigrateCommit { vm: vm.clone() },
        Message::MigrateAbort {
            vm: vm.clone(),
            reason: "not yours".into(),
        },
        Message::ReintegrateDone { vm: vm.clone() },
        Message::GoingToSleep {
            mac: "02:00:00:00:00:99".into(),
            wol_addr: format!("{off_lan}:9"),
        },
        Message::Reintegrate { vm: vm.clone() },
    ] {
        let what = m.kind();
        let reply = t.request(&m, Duration::from_secs(10)).await;
        assert_eq!(
            refusal(&reply),
            Some(ErrorCode::NotAllowed),
            "{what}: {reply:?}"
        );
        if what == "Reintegrate" {
            break; // the server ends the connection after a return
        }
        let reply = t
            .request(
                &Message::HandoverQuery { vm: vm.clone() },
                Duration::from_secs(10),
            )
            .await;
        assert!(
            matches!(
                reply,
                Ok(Message::HandoverState {
                    custody: Custody::Unknown,
                    ..
                })
            ),
            "after {what}: {reply:?}"
        );
    }
    // Another server of the fleet, which the desktop accepts, asks for the
    // VM's memory: refused, and told nothing of its handover.
    let other = cluster.tls_as(OTHER_SERVER, "desktop").unwrap();
    let mut t = hello(&other, &cluster.state_addr, "desktop", Role::Server)
        .await
        .unwrap();
    let reply = fetch(&mut t, &vm, 0, 4096).await;
    assert_eq!(refusal(&reply), Some(ErrorCode::NotAllowed), "{reply:?}");
    let reply = t
        .request(
            &Message::HandoverQuery { vm: vm.clone() },
            Duration::from_secs(10),
        )
        .await;
    assert!(
        matches!(
            reply,
            Ok(Message::HandoverState {
                custody: Custody::Unknown,
                ..
            })
        ),
        "{reply:?}"
    );
    // The server that holds it hears the truth.
    let mut t = hello(&as_server, &cluster.state_addr, "desktop", Role::Server)
        .await
        .unwrap();
    let reply = t
        .request(
            &Message::HandoverQuery { vm: vm.clone() },
            Duration::from_secs(10),
        )
        .await;
    assert!(
        matches!(
            reply,
            Ok(Message::HandoverState {
                custody: Custody::Released,
                ..
            })
        ),
        "{reply:?}"
    );

    // The VM kept running on the server and its memory still comes on demand.
    common::next_heartbeat(&cluster, before + 2, Duration::from_secs(60)).await;
    assert!(server_stats(&cluster).await.unwrap().pages_fetched > 0);
    assert!(
        cluster.daemon_log("server").contains("connection refused"),
        "the server logs why it closed connections"
    );
    let r = reintegrate(&cluster, false).await.unwrap();
    assert!(r.dirty_pages > 0);

    // A server killed while nothing is consolidated comes back cleanly: its
    // stale mount is cleaned, and a VM can go and come back again.
    cluster.kill_server();
    cluster.start_server().unwrap();
    cluster.wait_ready(false).await.unwrap();
    migrate(&cluster).await.unwrap();
    let after = common::last_heartbeat(&cluster);
    common::next_heartbeat(&cluster, after + 1, Duration::from_secs(60)).await;
    reintegrate(&cluster, false).await.unwrap();
    assert!(
        cluster.daemon_log("server").contains("stale"),
        "the restarted server says it cleaned the stale mount"
    );
}
