//! Migration out: the commit is the desktop's `Away`; before it every
//! failure aborts and resumes the guest at home.

use jettison_handover::{DesktopState, OutStep};
use jettison_qemu::fake::{FakeVm, Op};
use jettison_qemu::VmControl;
use jettison_wire::{ErrorCode, Message, Role, Transport};
use tokio::io::DuplexStream;

use super::{desk, kinds, reply, Step, T};
use crate::handover_out::{migrate_out, OutRequest};

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
                nic_mac: None,
                disk_bytes: None,
            },
            state_server: "127.0.0.1:1".into(),
        },
        vm: "vm".into(),
        server: "srv".into(),
    }
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
