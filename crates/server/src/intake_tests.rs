//! Taking a VM in, on the server's side, with fake VMs (no QEMU, no root)
//! and a scripted agent on an in-memory connection: every transition and
//! failure path of prepare, load, commit and abort, the settling of a VM
//! whose agent left before its commit, a guest whose VM dies, and the
//! durable record at each step.

use std::sync::atomic::Ordering;

use jettison_handover::ServerState as S;
use jettison_qemu::fake::{FakeVm, Op};
use jettison_qemu::RunState;
use jettison_wire::{Custody, ErrorCode, Message};

use crate::test_host::*;

fn error_code(m: &Message) -> ErrorCode {
    match m {
        Message::Error(e) => e.code,
        other => panic!("expected an error, got {}", other.kind()),
    }
}

fn commit(vm: &str) -> Message {
    Message::MigrateCommit { vm: vm.into() }
}

#[tokio::test]
async fn a_migration_is_recorded_at_each_step_and_runs_only_after_the_commit() {
    let host = FakeHost::new();
    let (mut t, server) = connect(&host).await;
    assert_eq!(ask(&mut t, prepare("vm")).await.kind(), "Prepared");
    assert_eq!(host.record("vm"), Some(S::Preparing));
    assert_eq!(host.vm("vm").state(), RunState::Inmigrate);
    let Message::MigrateLoaded { restore_ms, .. } = ask(&mut t, load("vm")).await else {
        panic!("not loaded")
    };
    assert!(restore_ms >= 0.0);
    assert_eq!(host.record("vm"), Some(S::Loaded));
    // Loaded but in doubt: paused until the desktop commits.
    assert_eq!(host.vm("vm").state(), RunState::Paused);
    assert_eq!(host.vm("vm").loaded().unwrap(), b"desktop state");
    assert_eq!(ask(&mut t, commit("vm")).await.kind(), "MigrateCommitted");
    assert_eq!(host.record("vm"), Some(S::Running));
    assert!(host.vm("vm").runs());
    drop(t);
    server.await.unwrap();
    // A committed VM outlives its agent's connection.
    assert_eq!(host.state("vm").await, Some(S::Running));
    assert_eq!(host.vm("vm").log(), [Op::Load, Op::Cont]);
}

#[tokio::test]
async fn a_prepare_is_refused_for_a_bad_name_a_guest_here_or_a_record() {
    let host = FakeHost::new();
    let (mut t, _server) = connect(&host).await;
    let bad = ask(&mut t, prepare("../vm")).await;
    assert_eq!(error_code(&bad), ErrorCode::WrongState);
    assert_eq!(ask(&mut t, prepare("vm")).await.kind(), "Prepared");
    let again = ask(&mut t, prepare("vm")).await;
    assert_eq!(error_code(&again), ErrorCode::WrongState);
    // A record a previous process left in doubt, or another desktop's
    // tombstone, must be settled first.
    host.write_record("other", S::Loaded, DESKTOP);
    assert_eq!(
        error_code(&ask(&mut t, prepare("other")).await),
        ErrorCode::WrongState
    );
    host.write_record("theirs", S::Released, "desk-2");
    assert_eq!(
        error_code(&ask(&mut t, prepare("theirs")).await),
        ErrorCode::NotAllowed
    );
    assert_eq!(host.record("theirs"), Some(S::Released));
    // Our own tombstone gives way to the VM coming again.
    host.write_record("back", S::Released, DESKTOP);
    assert_eq!(ask(&mut t, prepare("back")).await.kind(), "Prepared");
    assert_eq!(host.record("back"), Some(S::Preparing));
}

#[tokio::test]
async fn a_failed_launch_leaves_no_record_and_no_files() {
    let host = FakeHost::new();
    host.fail_launch.store(true, Ordering::SeqCst);
    let (mut t, _server) = connect(&host).await;
    assert_eq!(
        error_code(&ask(&mut t, prepare("vm")).await),
        ErrorCode::Failed
    );
    assert_eq!(host.record("vm"), None);
    assert_eq!(host.released(), ["vm"]);
    assert!(!host.handovers().contains("vm"));
}

#[tokio::test]
async fn a_prepare_whose_state_server_cannot_be_reached_is_refused_and_makes_nothing() {
    let host = FakeHost::new();
    host.state_server_down.store(true, Ordering::SeqCst);
    let (mut t, _server) = connect(&host).await;
    let reply = ask(&mut t, prepare("vm")).await;
    let Message::Error(e) = &reply else {
        panic!("expected a refusal, got {}", reply.kind())
    };
    assert_eq!(e.code, ErrorCode::Failed);
    assert!(
        e.message
            .contains("cannot reach the desktop's state server at 127.0.0.1:1")
            && e.message.contains("Connection refused")
            && e.message.contains("set `advertise`"),
        "{}",
        e.message
    );
    assert_eq!(*host.reached.lock().unwrap(), ["127.0.0.1:1"]);
    assert_eq!(host.record("vm"), None);
    assert!(host.launched.lock().unwrap().is_empty());
    assert!(!host.handovers().contains("vm"));
    // Reachable again: the same name is taken (nothing was left claimed).
    host.state_server_down.store(false, Ordering::SeqCst);
    assert_eq!(ask(&mut t, prepare("vm")).await.kind(), "Prepared");
    assert_eq!(host.reached.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_state_that_does_not_load_drops_the_guest() {
    let host = FakeHost::new();
    let fake = FakeVm::incoming();
    fake.fail(Op::Load);
    host.next_vm.lock().unwrap().insert("vm".into(), fake);
    let (mut t, _server) = connect(&host).await;
    ask(&mut t, prepare("vm")).await;
    assert_eq!(
        error_code(&ask(&mut t, load("vm")).await),
        ErrorCode::Failed
    );
    assert_forgotten(&host, "vm");
    // The desktop, asking, hears that nothing is here.
    assert_eq!(custody(&mut t, "vm").await, Custody::Unknown);
}

#[tokio::test]
async fn a_second_load_or_an_early_commit_is_refused_and_changes_nothing() {
    let host = FakeHost::new();
    let (mut t, _server) = connect(&host).await;
    ask(&mut t, prepare("vm")).await;
    assert_eq!(
        error_code(&ask(&mut t, commit("vm")).await),
        ErrorCode::WrongState
    );
    assert_eq!(host.record("vm"), Some(S::Preparing));
    ask(&mut t, load("vm")).await;
    assert_eq!(
        error_code(&ask(&mut t, load("vm")).await),
        ErrorCode::WrongState
    );
    assert_eq!(host.record("vm"), Some(S::Loaded));
    assert_eq!(host.vm("vm").state(), RunState::Paused);
    assert_eq!(
        error_code(&ask(&mut t, load("nope")).await),
        ErrorCode::UnknownVm
    );
}

#[tokio::test]
async fn an_abort_after_the_load_drops_the_paused_guest() {
    let host = FakeHost::new();
    let (mut t, server) = connect(&host).await;
    ask(&mut t, prepare("vm")).await;
    ask(&mut t, load("vm")).await;
    let abort = Message::MigrateAbort {
        vm: "vm".into(),
        reason: "the desktop's user came back".into(),
    };
    assert_eq!(ask(&mut t, abort).await.kind(), "OpOk");
    assert_forgotten(&host, "vm");
    assert!(
        !host.vm("vm").log().contains(&Op::Cont),
        "it never ran here"
    );
    drop(t);
    server.await.unwrap();
    // Nothing left to settle: the desktop was never asked.
    assert_eq!(host.asked.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_abort_after_the_commit_is_refused() {
    let host = FakeHost::new();
    running(&host, "vm").await;
    let (mut t, _server) = connect(&host).await;
    let abort = Message::MigrateAbort {
        vm: "vm".into(),
        reason: "too late".into(),
    };
    assert_eq!(error_code(&ask(&mut t, abort).await), ErrorCode::WrongState);
    assert!(host.vm("vm").runs());
    assert_eq!(host.record("vm"), Some(S::Running));
}

#[tokio::test]
async fn an_agent_that_leaves_before_the_load_leaves_nothing() {
    let host = FakeHost::new();
    let (mut t, server) = connect(&host).await;
    ask(&mut t, prepare("vm")).await;
    drop(t);
    server.await.unwrap();
    assert_forgotten(&host, "vm");
}

#[tokio::test]
async fn a_commit_that_never_comes_is_settled_by_asking_the_desktop() {
    let host = FakeHost::new();
    // Unreachable, then deciding, then committed.
    host.answer(&[None, Some(Custody::InDoubt), Some(Custody::Released)]);
    let (mut t, server) = connect(&host).await;
    ask(&mut t, prepare("vm")).await;
    ask(&mut t, load("vm")).await;
    drop(t);
    server.await.unwrap();
    // Paused, in doubt, until the answer.
    assert_eq!(host.vm("vm").state(), RunState::Paused);
    eventually("the VM runs", || host.vm("vm").runs()).await;
    assert_eq!(host.asked.load(Ordering::SeqCst), 3);
    assert_eq!(host.record("vm"), Some(S::Running));
}

#[tokio::test]
async fn a_desktop_that_kept_or_forgot_the_vm_settles_it_dropped() {
    for answer in [Custody::Holds, Custody::Unknown] {
        let host = FakeHost::new();
        host.answer(&[Some(answer)]);
        let (mut t, server) = connect(&host).await;
        ask(&mut t, prepare("vm")).await;
        ask(&mut t, load("vm")).await;
        drop(t);
        server.await.unwrap();
        eventually("the VM is dropped", || host.vm("vm").has_exited()).await;
        eventually("its record is gone", || host.record("vm").is_none()).await;
        assert!(!host.vm("vm").log().contains(&Op::Cont), "{answer:?}");
        assert!(host.released().contains(&"vm".to_string()));
    }
}

#[tokio::test]
async fn a_commit_on_a_new_connection_ends_the_questions() {
    let host = FakeHost::new();
    let (mut t, server) = connect(&host).await;
    ask(&mut t, prepare("vm")).await;
    ask(&mut t, load("vm")).await;
    drop(t);
    server.await.unwrap();
    // The desktop (restarted, settling) commits before it is reached.
    let (mut t, _server) = connect(&host).await;
    assert_eq!(ask(&mut t, commit("vm")).await.kind(), "MigrateCommitted");
    assert!(host.vm("vm").runs());
    let asked = host.asked.load(Ordering::SeqCst);
    tokio::time::sleep(host.timeouts().ask_max * 3).await;
    assert!(host.asked.load(Ordering::SeqCst) <= asked + 1);
    assert_eq!(host.record("vm"), Some(S::Running));
}

#[tokio::test]
async fn a_lost_commit_reply_leaves_the_vm_running_and_a_repeated_commit_is_answered() {
    let host = FakeHost::new();
    let (mut t, server) = connect(&host).await;
    ask(&mut t, prepare("vm")).await;
    ask(&mut t, load("vm")).await;
    // The commit arrives; its reply is lost with the connection.
    t.send(&commit("vm")).await.unwrap();
    drop(t);
    server.await.unwrap();
    assert!(host.vm("vm").runs());
    assert_eq!(host.record("vm"), Some(S::Running));
    // The desktop asks, and commits again: nothing changes.
    let (mut t, _server) = connect(&host).await;
    assert_eq!(custody(&mut t, "vm").await, Custody::Holds);
    assert_eq!(ask(&mut t, commit("vm")).await.kind(), "MigrateCommitted");
    assert_eq!(host.vm("vm").log(), [Op::Load, Op::Cont]);
    assert_eq!(host.asked.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_guest_whose_vm_dies_while_loaded_or_running_is_forgotten() {
    for commit_first in [false, true] {
        let host = FakeHost::new();
        let (mut t, _server) = connect(&host).await;
        ask(&mut t, prepare("vm")).await;
        ask(&mut t, load("vm")).await;
        if commit_first {
            ask(&mut t, commit("vm")).await;
        }
        host.vm("vm").kill();
        eventually("the guest is forgotten", || {
            !host.handovers().contains("vm")
        })
        .await;
        assert_eq!(host.record("vm"), None);
        assert!(host.released().contains(&"vm".to_string()));
        // The desktop hears that the VM is lost here, and restarts it.
        assert_eq!(custody(&mut t, "vm").await, Custody::Unknown);
    }
}

#[tokio::test]
async fn a_commit_whose_vm_is_gone_fails_and_the_guest_is_forgotten() {
    let host = FakeHost::new();
    let fake = FakeVm::incoming();
    fake.die_at(Op::Cont);
    host.next_vm.lock().unwrap().insert("vm".into(), fake);
    let (mut t, _server) = connect(&host).await;
    ask(&mut t, prepare("vm")).await;
    ask(&mut t, load("vm")).await;
    assert_eq!(
        error_code(&ask(&mut t, commit("vm")).await),
        ErrorCode::Failed
    );
    eventually("the guest is forgotten", || {
        !host.handovers().contains("vm")
    })
    .await;
    assert_eq!(host.record("vm"), None);
}

#[tokio::test]
async fn custody_answers_each_state_and_never_unknown_for_an_unreadable_record() {
    let host = FakeHost::new();
    let (mut t, _server) = connect(&host).await;
    assert_eq!(custody(&mut t, "none").await, Custody::Unknown);
    host.write_record("gone", S::Released, DESKTOP);
    assert_eq!(custody(&mut t, "gone").await, Custody::Released);
    let path = host.dir.path().join("handover").join("bad.json");
    std::fs::write(path, b"{ not json").unwrap();
    assert_eq!(custody(&mut t, "bad").await, Custody::InDoubt);
}

#[tokio::test]
async fn custody_follows_a_migration_step_by_step() {
    let host = FakeHost::new();
    let (mut t, _server) = connect(&host).await;
    let (mut q, _s2) = connect(&host).await;
    let mut steps = Vec::new();
    for m in [prepare("vm"), load("vm"), commit("vm")] {
        ask(&mut t, m).await;
        steps.push(custody(&mut q, "vm").await);
    }
    assert_eq!(steps, [Custody::Unknown, Custody::InDoubt, Custody::Holds]);
}

#[tokio::test]
async fn a_tombstone_goes_only_for_its_own_desktop() {
    let host = FakeHost::new();
    host.write_record("vm", S::Released, "desk-2");
    let (mut t, _server) = connect(&host).await;
    let done = Message::ReintegrateDone { vm: "vm".into() };
    assert_eq!(
        error_code(&ask(&mut t, done.clone()).await),
        ErrorCode::NotAllowed
    );
    assert_eq!(host.record("vm"), Some(S::Released));
    host.write_record("vm", S::Released, DESKTOP);
    assert_eq!(ask(&mut t, done.clone()).await.kind(), "OpOk");
    assert_eq!(host.record("vm"), None);
    // Said again (its reply was lost): still fine.
    assert_eq!(ask(&mut t, done).await.kind(), "OpOk");
}

#[tokio::test]
async fn a_handover_on_a_connection_without_the_commit_step_is_refused() {
    let host = FakeHost::new();
    let (mut t, _server) = connect_minor(&host, 0).await;
    let reply = ask(&mut t, prepare("vm")).await;
    assert_eq!(error_code(&reply), ErrorCode::VersionMismatch);
    assert!(host.launched.lock().unwrap().is_empty());
    let old = Message::MigrateIn {
        vm: "vm".into(),
        device_state: vec![],
    };
    assert_eq!(error_code(&ask(&mut t, old).await), ErrorCode::NotAllowed);
}
