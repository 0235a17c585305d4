//! Garbage and out-of-range requests to both daemons while a VM is
//! consolidated: each gets a clear error and a closed connection; the VM and
//! the other connections carry on.

mod common;

use std::time::Duration;

use jettison_demo::scenario::{migrate, reintegrate, server_stats};
use jettison_wire::handshake::connect;
use jettison_wire::{ErrorCode, ErrorReply, FileKind, Message, Range, Role, Transport, WireError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends raw bytes and returns everything the daemon answered before closing.
async fn raw_exchange(addr: &str, bytes: &[u8], close_write: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    if close_write {
        s.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("the daemon closes the connection")
        .unwrap();
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

async fn refused_cases(addr: &str) {
    // Garbage where a Hello belongs.
    let reply = raw_exchange(addr, &[0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0x01], false).await;
    assert_eq!(
        error_code(&reply),
        Some(ErrorCode::BadRequest),
        "garbage to {addr}"
    );
    // A frame announcing more than the limit.
    let reply = raw_exchange(addr, &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3], false).await;
    assert_eq!(
        error_code(&reply),
        Some(ErrorCode::BadRequest),
        "oversized frame to {addr}"
    );
    // A truncated frame, then end of stream.
    let reply = raw_exchange(addr, &[0, 0, 1, 0, 1, 2, 3], true).await;
    assert_eq!(
        error_code(&reply),
        Some(ErrorCode::BadRequest),
        "truncated frame to {addr}"
    );
    // Plain text (an HTTP client, say).
    let reply = raw_exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false).await;
    assert_eq!(
        error_code(&reply),
        Some(ErrorCode::BadRequest),
        "HTTP to {addr}"
    );
}

async fn fetch(
    t: &mut Transport<TcpStream>,
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

async fn hello(addr: &str, role: Role) -> Result<Transport<TcpStream>, WireError> {
    let mut t = Transport::new(TcpStream::connect(addr).await.unwrap());
    connect(&mut t, role, "test").await?;
    Ok(t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_and_requests_are_refused_and_nothing_else_breaks() {
    let mut cluster = common::ready_cluster(256).await;
    migrate(&cluster).await.unwrap();
    let before = common::last_heartbeat(&cluster);

    refused_cases(&cluster.server_addr).await;
    refused_cases(&cluster.state_addr).await;

    // Wrong role on each port.
    for (addr, role) in [
        (&cluster.state_addr, Role::Agent),
        (&cluster.server_addr, Role::Server),
    ] {
        let reply = hello(addr, role).await.map(|_| Message::OpOk);
        assert_eq!(
            refusal(&reply),
            Some(ErrorCode::NotAllowed),
            "{role:?} at {addr}: {reply:?}"
        );
    }

    // Fetches beyond the end of the memory file, or unaligned, are refused;
    // the connection stays usable for a valid fetch.
    let mut t = hello(&cluster.state_addr, Role::Server).await.unwrap();
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
    let mut t = hello(&cluster.server_addr, Role::Agent).await.unwrap();
    let reply = fetch(&mut t, &vm, 0, 4096).await;
    assert_eq!(refusal(&reply), Some(ErrorCode::NotAllowed), "{reply:?}");

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
