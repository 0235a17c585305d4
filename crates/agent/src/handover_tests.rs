//! Every failure path of migration and reintegration on the desktop's side,
//! with a fake VM (no QEMU, no root) and a scripted server on the other end
//! of an in-memory connection.

use std::time::Duration;

use jettison_handover::{DesktopState, InStep, OutStep};
use jettison_qemu::fake::{FakeVm, Op};
use jettison_qemu::{RunState, VmControl};
use jettison_wire::{Chunk, ErrorCode, FileKind, Message, Role, Transport, VmMemStats, PAGE_SIZE};
use tokio::io::DuplexStream;

use crate::handover_in::{bring_home, HomeFiles, InOutcome};
use crate::handover_out::{migrate_out, OutRequest, OutTimeouts};
use crate::record::VmRecord;

const T: OutTimeouts = OutTimeouts {
    server: Duration::from_secs(5),
    short: Duration::from_secs(2),
};

/// What the scripted server does with each request it receives: reply with
/// a message, or close the connection.
#[derive(Debug, Clone)]
enum Step {
    Reply(Box<Message>),
    /// Close after reading the next message.
    Close,
    /// Close without reading anything more.
    Hangup,
}

/// A server that answers requests in order, and returns what it received.
fn server(
    script: Vec<Step>,
) -> (
    Transport<DuplexStream>,
    tokio::task::JoinHandle<Vec<Message>>,
) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(async move {
        let mut t = Transport::new(b);
        let mut got = Vec::new();
        for step in script {
            match t.recv().await {
                Ok(Some(m)) => got.push(m),
                _ => return got,
            }
            match step {
                Step::Reply(m) => {
                    if t.send(&m).await.is_err() {
                        return got;
                    }
                }
                Step::Close | Step::Hangup => return got,
            }
        }
        // Whatever else comes, until the agent closes.
        while let Ok(Some(m)) = t.recv().await {
            got.push(m);
        }
        got
    });
    (Transport::new(a), task)
}

fn request() -> OutRequest {
    OutRequest {
        prepare: Message::MigratePrepare {
            vm: "vm".into(),
            machine: jettison_wire::MachineDesc {
                memory_mib: 1,
                cpus: 1,
                kernel: None,
                initrd: None,
                append: None,
                extra_args: vec![],
                nic_mac: None,
                disk_bytes: None,
            },
            state_server: "127.0.0.1:1".into(),
        },
        vm: "vm".into(),
        server: "srv".into(),
    }
}

fn reply(m: Message) -> Step {
    Step::Reply(Box::new(m))
}

fn prepared() -> Step {
    reply(Message::Prepared { vm: "vm".into() })
}

fn loaded() -> Step {
    reply(Message::MigrateLoaded {
        vm: "vm".into(),
        restore_ms: 1.0,
    })
}

fn kinds(msgs: &[Message]) -> Vec<&'static str> {
    msgs.iter().map(Message::kind).collect()
}

struct Desk {
    _dir: tempfile::TempDir,
    record: VmRecord,
}

fn desk() -> Desk {
    let dir = tempfile::tempdir().unwrap();
    let record = VmRecord::load(dir.path(), "vm").unwrap();
    Desk { _dir: dir, record }
}

#[tokio::test]
async fn a_migration_commits_then_runs_on_the_server() {
    let d = desk();
    let vm = FakeVm::running();
    let (mut t, srv) = server(vec![
        prepared(),
        loaded(),
        reply(Message::MigrateCommitted { vm: "vm".into() }),
    ]);
    let report = migrate_out(&d.record, &vm, &mut t, &request(), T)
        .await
        .unwrap();
    drop(t);
    assert!(matches!(d.record.get(), DesktopState::Away { .. }));
    assert!(!vm.runs());
    assert_eq!(vm.log(), [Op::Stop, Op::Save]);
    assert_eq!(report.device_state_bytes, 17);
    assert_eq!(d.record.snapshot().unwrap(), b"fake device state");
    assert_eq!(
        kinds(&srv.await.unwrap()),
        ["MigratePrepare", "MigrateLoad", "MigrateCommit"]
    );
}

#[tokio::test]
async fn a_refused_prepare_leaves_the_guest_running_at_home() {
    let d = desk();
    let vm = FakeVm::running();
    let (mut t, srv) = server(vec![
        reply(Message::error(ErrorCode::WrongState, "full")),
        reply(Message::OpOk),
    ]);
    let e = migrate_out(&d.record, &vm, &mut t, &request(), T)
        .await
        .unwrap_err();
    drop(t);
    assert!(e.to_string().contains("full"), "{e}");
    assert_eq!(d.record.get(), DesktopState::Home);
    assert!(vm.runs());
    assert_eq!(
        kinds(&srv.await.unwrap()),
        ["MigratePrepare", "MigrateAbort"]
    );
}

#[tokio::test]
async fn a_lost_load_reply_aborts_and_resumes_at_home() {
    let d = desk();
    let vm = FakeVm::running();
    let (mut t, srv) = server(vec![prepared(), Step::Close]);
    let e = migrate_out(&d.record, &vm, &mut t, &request(), T)
        .await
        .unwrap_err();
    drop(t);
    assert_eq!(d.record.get(), DesktopState::Home, "{e}");
    assert!(vm.runs());
    assert_eq!(vm.log(), [Op::Stop, Op::Save, Op::Cont]);
    // The snapshot of a VM that never left is gone.
    assert!(d.record.snapshot().is_none());
    assert_eq!(
        kinds(&srv.await.unwrap()),
        ["MigratePrepare", "MigrateLoad"]
    );
}

#[tokio::test]
async fn a_lost_commit_reply_leaves_the_vm_the_servers() {
    let d = desk();
    let vm = FakeVm::running();
    let (mut t, srv) = server(vec![prepared(), loaded(), Step::Close]);
    migrate_out(&d.record, &vm, &mut t, &request(), T)
        .await
        .unwrap();
    drop(t);
    assert!(matches!(d.record.get(), DesktopState::Away { .. }));
    assert!(!vm.runs());
    assert_eq!(
        kinds(&srv.await.unwrap()),
        ["MigratePrepare", "MigrateLoad", "MigrateCommit"]
    );
}

#[tokio::test]
async fn an_unexpected_reply_aborts() {
    let d = desk();
    let vm = FakeVm::running();
    let (mut t, _srv) = server(vec![prepared(), reply(Message::OpOk), reply(Message::OpOk)]);
    let e = migrate_out(&d.record, &vm, &mut t, &request(), T)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("expected MigrateLoaded"), "{e}");
    assert_eq!(d.record.get(), DesktopState::Home);
    assert!(vm.runs());
}

#[tokio::test]
async fn a_guest_that_dies_while_saving_must_be_restarted() {
    let d = desk();
    let vm = FakeVm::running();
    vm.die_at(Op::Save);
    let (mut t, _srv) = server(vec![prepared(), reply(Message::OpOk)]);
    let e = migrate_out(&d.record, &vm, &mut t, &request(), T)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("jettison start vm"), "{e}");
    assert_eq!(d.record.get(), DesktopState::Home);
    assert!(vm.has_exited());
}

#[tokio::test]
async fn a_server_without_the_commit_step_is_refused_before_anything() {
    let d = desk();
    let vm = FakeVm::running();
    let (a, b) = tokio::io::duplex(1 << 16);
    let old = tokio::spawn(async move {
        let mut t = Transport::new(b);
        let _hello = t.recv().await.unwrap();
        t.send(&Message::Welcome(jettison_wire::Welcome {
            major: jettison_wire::PROTOCOL_MAJOR,
            minor: 0,
            host: "old".into(),
        }))
        .await
        .unwrap();
        t.recv().await.ok().flatten()
    });
    let mut t = Transport::new(a);
    jettison_wire::handshake::connect(&mut t, Role::Agent, "desk")
        .await
        .unwrap();
    let e = migrate_out(&d.record, &vm, &mut t, &request(), T)
        .await
        .unwrap_err();
    drop(t);
    assert!(e.to_string().contains("upgrade jettison-server"), "{e}");
    assert_eq!(d.record.get(), DesktopState::Home);
    assert!(vm.runs() && vm.log().is_empty());
    assert_eq!(
        old.await.unwrap(),
        None,
        "nothing was sent after the handshake"
    );
}

// --- Reintegration -------------------------------------------------------

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

#[test]
fn records_of_each_step_say_whether_memory_is_served() {
    // The state server's gate is the record: served while the home guest is
    // stopped and the server may run it.
    let m = |step| DesktopState::Migrating {
        server: "s".into(),
        step,
    };
    assert!(!m(OutStep::Preparing).serves_memory());
    assert!(m(OutStep::Transferring).serves_memory());
}
