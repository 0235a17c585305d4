//! Sending a VM home, on the server's side, with fake VMs and files (no
//! QEMU, no root) and a scripted agent on an in-memory connection: the
//! commit (`Sending`, then `Released` once the agent is ready), and every
//! failure before it resuming the VM here.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use jettison_handover::ServerState as S;
use jettison_qemu::fake::Op;
use jettison_qemu::RunState;
use jettison_wire::{Custody, ErrorCode, FileKind, Message, Transport, PAGE_SIZE};
use tokio::io::DuplexStream;

use crate::test_host::*;

/// A VM running on `host` with dirty memory pages 1 and 3 and disk block 2.
async fn consolidated() -> Arc<FakeHost> {
    let host = FakeHost::new();
    let files = FakeFiles {
        dirty: vec![1, 3],
        dirty_disk: Some(vec![2]),
        ..Default::default()
    };
    host.next_files.lock().unwrap().insert("vm".into(), files);
    running(&host, "vm").await;
    host
}

async fn files(host: &FakeHost) -> Arc<FakeFiles> {
    let slot = host.handovers().get("vm").unwrap();
    let files = slot.lock().await.files.clone();
    files
}

fn reintegrate() -> Message {
    Message::Reintegrate { vm: "vm".into() }
}

/// Receives what the server streams: its first message, then the pages up
/// to `ReintegrateEnd` (the server's record checked when the first comes).
async fn receive(host: &FakeHost, t: &mut Transport<DuplexStream>) -> (Message, Vec<Message>) {
    let begin = t.recv().await.unwrap().unwrap();
    if begin.kind() == "ReintegrateBegin" {
        // Stopped, saved and recorded on its way before a byte is sent.
        assert_eq!(host.record("vm"), Some(S::Sending));
        assert_eq!(host.vm("vm").state(), RunState::Postmigrate);
    }
    let mut pages = Vec::new();
    while begin.kind() == "ReintegrateBegin" {
        let m = t.recv().await.unwrap().unwrap();
        if m.kind() == "ReintegrateEnd" {
            break;
        }
        pages.push(m);
    }
    (begin, pages)
}

/// The VM runs here again, recorded `Running`.
async fn resumed_here(host: &FakeHost) {
    assert!(host.vm("vm").runs());
    assert_eq!(host.record("vm"), Some(S::Running));
    assert_eq!(host.state("vm").await, Some(S::Running));
}

#[tokio::test]
async fn a_return_commits_on_ready_and_the_tombstone_goes_on_done() {
    let host = consolidated().await;
    let (mut t, server) = connect(&host).await;
    t.send(&reintegrate()).await.unwrap();
    let (begin, pages) = receive(&host, &mut t).await;
    let Message::ReintegrateBegin {
        device_state,
        dirty_pages,
        dirty_disk_blocks,
        remote_disk,
        ..
    } = begin
    else {
        panic!("{}", begin.kind())
    };
    assert_eq!(device_state, b"fake device state");
    assert_eq!((dirty_pages, dirty_disk_blocks), (2, 1));
    assert!(remote_disk.is_some());
    let sent: Vec<(FileKind, u64, u8)> = pages
        .iter()
        .flat_map(|m| match m {
            Message::DirtyPages { file, pages } => pages
                .iter()
                .map(|c| (*file, c.offset / PAGE_SIZE, c.data[0]))
                .collect::<Vec<_>>(),
            other => panic!("{}", other.kind()),
        })
        .collect();
    assert_eq!(
        sent,
        [
            (FileKind::Memory, 1, 1),
            (FileKind::Memory, 3, 3),
            (FileKind::Disk, 2, 2)
        ]
    );
    assert_eq!(files(&host).await.flushes.load(Ordering::SeqCst), 1);
    let ready = Message::ReintegrateReady { vm: "vm".into() };
    assert_eq!(ask(&mut t, ready).await.kind(), "ReintegrateCommitted");
    // The commit is durable before its reply.
    assert!(matches!(host.record("vm"), Some(S::Released) | None));
    t.send(&Message::ReintegrateDone { vm: "vm".into() })
        .await
        .unwrap();
    server.await.unwrap();
    assert_forgotten(&host, "vm");
    assert!(!host.vm("vm").log().ends_with(&[Op::Cont]), "never resumed");
    assert_eq!(*host.working_sets.lock().unwrap(), ["vm"]);
}

#[tokio::test]
async fn a_done_that_never_comes_leaves_the_tombstone_until_another_connection_says_it() {
    let host = consolidated().await;
    let (mut t, server) = connect(&host).await;
    t.send(&reintegrate()).await.unwrap();
    receive(&host, &mut t).await;
    let ready = Message::ReintegrateReady { vm: "vm".into() };
    assert_eq!(ask(&mut t, ready).await.kind(), "ReintegrateCommitted");
    server.await.unwrap();
    assert_eq!(host.record("vm"), Some(S::Released));
    assert!(host.vm("vm").has_exited());
    let (mut t, _server) = connect(&host).await;
    // The desktop, settling, hears that the VM is its own.
    assert_eq!(custody(&mut t, "vm").await, Custody::Released);
    let done = Message::ReintegrateDone { vm: "vm".into() };
    assert_eq!(ask(&mut t, done).await.kind(), "OpOk");
    assert_eq!(host.record("vm"), None);
}

#[tokio::test]
async fn a_stop_that_fails_sends_nothing_and_leaves_the_vm_running() {
    let host = consolidated().await;
    host.vm("vm").fail(Op::Stop);
    let (mut t, server) = connect(&host).await;
    t.send(&reintegrate()).await.unwrap();
    let (reply, _) = receive(&host, &mut t).await;
    assert!(matches!(reply, Message::Error(ref e) if e.code == ErrorCode::Failed));
    server.await.unwrap();
    resumed_here(&host).await;
}

#[tokio::test]
async fn a_save_or_a_flush_that_fails_resumes_the_vm_here() {
    for fail_flush in [false, true] {
        let host = consolidated().await;
        if fail_flush {
            files(&host).await.fail_flush.store(true, Ordering::SeqCst);
        } else {
            host.vm("vm").fail(Op::Save);
        }
        let (mut t, server) = connect(&host).await;
        t.send(&reintegrate()).await.unwrap();
        let (reply, _) = receive(&host, &mut t).await;
        assert_eq!(reply.kind(), "Error", "flush failed: {fail_flush}");
        server.await.unwrap();
        resumed_here(&host).await;
        let log = host.vm("vm").log();
        assert_eq!(log.last(), Some(&Op::Cont), "{log:?}");
    }
}

#[tokio::test]
async fn a_stream_broken_mid_way_resumes_the_vm_here() {
    let host = consolidated().await;
    let (mut t, server) = connect(&host).await;
    t.send(&reintegrate()).await.unwrap();
    let begin = t.recv().await.unwrap().unwrap();
    assert_eq!(begin.kind(), "ReintegrateBegin");
    drop(t);
    server.await.unwrap();
    resumed_here(&host).await;
    // It can go home again later.
    assert_eq!(host.vm("vm").log().last(), Some(&Op::Cont));
}

#[tokio::test]
async fn a_replica_that_cannot_be_read_resumes_the_vm_here() {
    let host = consolidated().await;
    files(&host).await.fail_read.store(true, Ordering::SeqCst);
    let (mut t, server) = connect(&host).await;
    t.send(&reintegrate()).await.unwrap();
    assert_eq!(t.recv().await.unwrap().unwrap().kind(), "ReintegrateBegin");
    assert_eq!(t.recv().await.unwrap().unwrap().kind(), "Error");
    server.await.unwrap();
    resumed_here(&host).await;
}

#[tokio::test]
async fn a_ready_that_never_arrives_resumes_the_vm_here() {
    let host = consolidated().await;
    host.impatient();
    let (mut t, server) = connect(&host).await;
    t.send(&reintegrate()).await.unwrap();
    receive(&host, &mut t).await;
    // Silent past the server's timeout.
    let reply = t.recv().await.unwrap().unwrap();
    assert!(matches!(reply, Message::Error(ref e) if e.code == ErrorCode::Failed));
    server.await.unwrap();
    resumed_here(&host).await;
}

#[tokio::test]
async fn an_abort_or_a_wrong_answer_resumes_the_vm_here() {
    let answers = [
        Message::ReintegrateAbort {
            vm: "vm".into(),
            reason: "pages beyond the file".into(),
        },
        Message::OpOk,
    ];
    for answer in answers {
        let host = consolidated().await;
        let (mut t, server) = connect(&host).await;
        t.send(&reintegrate()).await.unwrap();
        receive(&host, &mut t).await;
        t.send(&answer).await.unwrap();
        let reply = t.recv().await.unwrap().unwrap();
        assert_eq!(reply.kind(), "Error", "after {}", answer.kind());
        server.await.unwrap();
        resumed_here(&host).await;
    }
}

#[tokio::test]
async fn a_vm_paused_by_the_operator_stays_paused_after_a_failed_return() {
    let host = consolidated().await;
    {
        let slot = host.handovers().get("vm").unwrap();
        let mut g = slot.lock().await;
        g.vm.stop().await.unwrap();
        g.paused = true;
    }
    let (mut t, server) = connect(&host).await;
    t.send(&reintegrate()).await.unwrap();
    receive(&host, &mut t).await;
    drop(t);
    server.await.unwrap();
    assert_eq!(host.record("vm"), Some(S::Running));
    assert!(!host.vm("vm").runs());
}

#[tokio::test]
async fn a_vm_not_running_here_is_not_sent() {
    let host = FakeHost::new();
    let (mut t, _server) = connect(&host).await;
    ask(&mut t, prepare("vm")).await;
    ask(&mut t, load("vm")).await;
    let (mut r, server) = connect(&host).await;
    let reply = ask(&mut r, reintegrate()).await;
    assert!(matches!(reply, Message::Error(ref e) if e.code == ErrorCode::WrongState));
    server.await.unwrap();
    assert_eq!(host.record("vm"), Some(S::Loaded));
    assert_eq!(host.vm("vm").state(), RunState::Paused);
    let (mut r, _server) = connect(&host).await;
    let reply = ask(&mut r, Message::Reintegrate { vm: "nope".into() }).await;
    assert!(matches!(reply, Message::Error(ref e) if e.code == ErrorCode::UnknownVm));
}

#[tokio::test]
async fn a_vm_that_dies_while_sending_is_still_sent_home() {
    let host = consolidated().await;
    let (mut t, server) = connect(&host).await;
    t.send(&reintegrate()).await.unwrap();
    receive(&host, &mut t).await;
    // Its QEMU dies once the state is saved: the return needs only that.
    host.vm("vm").kill();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    assert_eq!(host.record("vm"), Some(S::Sending));
    assert!(host.handovers().contains("vm"));
    let ready = Message::ReintegrateReady { vm: "vm".into() };
    assert_eq!(ask(&mut t, ready).await.kind(), "ReintegrateCommitted");
    drop(t);
    server.await.unwrap();
    assert_eq!(host.record("vm"), Some(S::Released));
    assert!(!host.handovers().contains("vm"));
}

#[tokio::test]
async fn a_vm_that_dies_while_sending_and_does_not_go_home_is_forgotten() {
    let host = consolidated().await;
    let (mut t, server) = connect(&host).await;
    t.send(&reintegrate()).await.unwrap();
    receive(&host, &mut t).await;
    host.vm("vm").kill();
    // The agent gives the return up: the server cannot resume a dead VM,
    // so it must not go on answering that it holds it.
    let abort = Message::ReintegrateAbort {
        vm: "vm".into(),
        reason: "disk full".into(),
    };
    assert_eq!(ask(&mut t, abort).await.kind(), "Error");
    drop(t);
    server.await.unwrap();
    assert!(!host.handovers().contains("vm"));
    assert_eq!(host.record("vm"), None);
    assert_eq!(
        host.handovers().custody_for("vm", DESKTOP).await,
        Custody::Unknown
    );
}
