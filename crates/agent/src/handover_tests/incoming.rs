//! Reintegration: everything durable and loaded before `ReintegrateReady`;
//! the guest runs at home only after the server's commit.

use jettison_handover::{DesktopState, InStep};
use jettison_qemu::fake::{FakeVm, Op};
use jettison_qemu::RunState;
use jettison_wire::{Chunk, ErrorCode, FileKind, Message, Transport, VmMemStats, PAGE_SIZE};
use tokio::io::DuplexStream;

use super::{desk, kinds, reply, Desk, Step, T};
use crate::handover_in::{bring_home, HomeFiles, InOutcome};

struct Home {
    desk: Desk,
    files: HomeFiles,
}

fn away_desk() -> Home {
    let desk = desk();
    desk.record
        .set(DesktopState::Away {
            server: "srv".into(),
            since_ms: 1,
        })
        .unwrap();
    desk.record.save_snapshot(b"old state").unwrap();
    let mem = desk._dir.path().join("vm.mem");
    std::fs::write(&mem, vec![0u8; 4 * PAGE_SIZE as usize]).unwrap();
    Home {
        files: HomeFiles {
            memory: (mem, 4 * PAGE_SIZE),
            disk: None,
        },
        desk,
    }
}

fn begin(pages: u64) -> Message {
    Message::ReintegrateBegin {
        vm: "vm".into(),
        device_state: b"server state".to_vec(),
        dirty_pages: pages,
        dirty_disk_blocks: 0,
        remote: VmMemStats::default(),
        remote_disk: None,
        remote_seconds: 1.0,
        server_ms: 1.0,
    }
}

fn page(n: u64, byte: u8) -> Message {
    Message::DirtyPages {
        file: FileKind::Memory,
        pages: vec![Chunk {
            offset: n * PAGE_SIZE,
            data: vec![byte; PAGE_SIZE as usize],
        }],
    }
}

/// A server that sends the VM home: on `Reintegrate` it streams `frames`,
/// then answers the desktop's next message with `answer`.
fn sending_server(
    frames: Vec<Message>,
    answer: Step,
) -> (
    Transport<DuplexStream>,
    tokio::task::JoinHandle<Vec<Message>>,
) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(async move {
        let mut t = Transport::new(b);
        let mut got = vec![t.recv().await.unwrap().unwrap()];
        for f in frames {
            if t.send(&f).await.is_err() {
                return got;
            }
        }
        if matches!(answer, Step::Hangup) {
            return got;
        }
        match t.recv().await {
            Ok(Some(m)) => got.push(m),
            _ => return got,
        }
        if let Step::Reply(m) = answer {
            let _ = t.send(&m).await;
            while let Ok(Some(m)) = t.recv().await {
                got.push(m);
            }
        }
        got
    });
    (Transport::new(a), task)
}

fn end() -> Message {
    Message::ReintegrateEnd { vm: "vm".into() }
}

#[tokio::test]
async fn a_return_is_durable_before_ready_and_runs_only_after_the_commit() {
    let h = away_desk();
    let vm = FakeVm::incoming();
    let (mut t, srv) = sending_server(
        vec![begin(2), page(1, 7), page(3, 9), end()],
        reply(Message::ReintegrateCommitted { vm: "vm".into() }),
    );
    let out = bring_home(&h.desk.record, &vm, &h.files, &mut t, "vm", true, T.server).await;
    drop(t);
    let InOutcome::Home(r) = out else {
        panic!("{out:?}")
    };
    assert_eq!(r.dirty_pages, 2);
    assert!(r.digest.is_some());
    assert_eq!(h.desk.record.get(), DesktopState::Home);
    assert!(vm.runs());
    assert_eq!(vm.loaded().unwrap(), b"server state");
    // The guest runs at home: its memory moves on, the snapshot is gone.
    assert!(h.desk.record.snapshot().is_none());
    let mem = std::fs::read(&h.files.memory.0).unwrap();
    assert_eq!(mem[PAGE_SIZE as usize], 7);
    assert_eq!(mem[3 * PAGE_SIZE as usize], 9);
    assert_eq!(mem[0], 0);
    assert_eq!(
        kinds(&srv.await.unwrap()),
        ["Reintegrate", "ReintegrateReady", "ReintegrateDone"]
    );
}

#[tokio::test]
async fn a_connection_lost_mid_pages_leaves_the_vm_on_the_server() {
    let h = away_desk();
    let vm = FakeVm::incoming();
    let (mut t, _srv) = sending_server(vec![begin(2), page(1, 7)], Step::Hangup);
    let out = bring_home(&h.desk.record, &vm, &h.files, &mut t, "vm", false, T.server).await;
    assert!(matches!(out, InOutcome::StayedAway(_)), "{out:?}");
    assert!(matches!(h.desk.record.get(), DesktopState::Away { .. }));
    assert!(!vm.runs());
}

#[tokio::test]
async fn a_lost_commit_reply_leaves_the_return_in_doubt_and_paused() {
    let h = away_desk();
    let vm = FakeVm::incoming();
    let (mut t, srv) = sending_server(vec![begin(1), page(0, 5), end()], Step::Close);
    let out = bring_home(&h.desk.record, &vm, &h.files, &mut t, "vm", false, T.server).await;
    drop(t);
    assert!(matches!(out, InOutcome::InDoubt(_)), "{out:?}");
    assert!(matches!(
        h.desk.record.get(),
        DesktopState::Returning {
            step: InStep::Ready,
            ..
        }
    ));
    assert_eq!(vm.state(), RunState::Paused);
    assert_eq!(
        kinds(&srv.await.unwrap()),
        ["Reintegrate", "ReintegrateReady"]
    );
}

#[tokio::test]
async fn a_page_count_that_does_not_add_up_is_given_up() {
    let h = away_desk();
    let vm = FakeVm::incoming();
    let (mut t, srv) = sending_server(vec![begin(3), page(0, 5), end()], Step::Close);
    let out = bring_home(&h.desk.record, &vm, &h.files, &mut t, "vm", false, T.server).await;
    drop(t);
    let InOutcome::StayedAway(e) = out else {
        panic!("{out:?}")
    };
    assert!(e.to_string().contains("announced 3 dirty pages"), "{e}");
    assert!(matches!(h.desk.record.get(), DesktopState::Away { .. }));
    assert_eq!(
        kinds(&srv.await.unwrap()),
        ["Reintegrate", "ReintegrateAbort"]
    );
}

#[tokio::test]
async fn a_page_beyond_the_file_is_given_up() {
    let h = away_desk();
    let vm = FakeVm::incoming();
    let (mut t, _srv) = sending_server(vec![begin(1), page(4, 5), end()], Step::Close);
    let out = bring_home(&h.desk.record, &vm, &h.files, &mut t, "vm", false, T.server).await;
    assert!(matches!(out, InOutcome::StayedAway(_)), "{out:?}");
    assert!(!vm.runs());
}

#[tokio::test]
async fn a_state_that_does_not_load_is_given_up() {
    let h = away_desk();
    let vm = FakeVm::incoming();
    vm.fail(Op::Load);
    let (mut t, srv) = sending_server(vec![begin(0), end()], Step::Close);
    let out = bring_home(&h.desk.record, &vm, &h.files, &mut t, "vm", false, T.server).await;
    drop(t);
    assert!(matches!(out, InOutcome::StayedAway(_)), "{out:?}");
    assert!(matches!(h.desk.record.get(), DesktopState::Away { .. }));
    assert_eq!(
        kinds(&srv.await.unwrap()),
        ["Reintegrate", "ReintegrateAbort"]
    );
}

#[tokio::test]
async fn a_refusal_by_the_server_keeps_the_vm_there() {
    let h = away_desk();
    let vm = FakeVm::incoming();
    let (mut t, _srv) = sending_server(
        vec![Message::error(ErrorCode::WrongState, "VM vm is paused")],
        Step::Close,
    );
    let out = bring_home(&h.desk.record, &vm, &h.files, &mut t, "vm", false, T.server).await;
    let InOutcome::StayedAway(e) = out else {
        panic!("{out:?}")
    };
    assert!(e.to_string().contains("paused"), "{e}");
    // The way-out snapshot still matches the untouched memory file.
    assert_eq!(h.desk.record.snapshot().unwrap(), b"old state");
}
