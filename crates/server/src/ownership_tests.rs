//! A desktop acts only on its own VMs: every request of another desktop
//! about one is refused, and nothing happens to it (state, record on disk,
//! VM, files: no page read, not even its lock taken). Names cannot be
//! taken across desktops, and a refused prepare makes and removes nothing.
//! Sleep announcements are checked against the server's LAN. Fake VMs and
//! files, agents of two desktops on in-memory connections.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use jettison_handover::ServerState as S;
use jettison_qemu::fake::Op;
use jettison_qemu::RunState;
use jettison_wire::{Custody, ErrorCode, Message};

use crate::test_host::*;

/// The other desktop (also accepted by the server).
const OTHER: &str = "desk-2";

/// The code and text of an error reply.
fn refusal(m: &Message) -> (ErrorCode, String) {
    match m {
        Message::Error(e) => (e.code, e.message.clone()),
        other => panic!("expected an error, got {}", other.kind()),
    }
}

/// Refused because `vm` belongs to another desktop.
fn assert_not_theirs(m: &Message, what: &str) {
    let (code, message) = refusal(m);
    assert_eq!(code, ErrorCode::NotAllowed, "{what}: {message}");
    assert!(
        message.contains("belongs to another desktop"),
        "{what}: {message}"
    );
}

/// Refused because another desktop's VM has the name.
fn assert_name_taken(m: &Message, what: &str) {
    let (code, message) = refusal(m);
    assert_eq!(code, ErrorCode::NotAllowed, "{what}: {message}");
    assert!(
        message.contains("taken on this server by another desktop's VM"),
        "{what}: {message}"
    );
}

/// `DESKTOP`'s VM `vm` running on a new host, with dirty memory pages and
/// disk blocks.
async fn victim() -> Arc<FakeHost> {
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

/// The victim as it was: running, recorded `Running`, its VM loaded and
/// resumed once and nothing else, no page read nor flushed, nothing
/// released, and its desktop still hears that the server holds it.
async fn assert_untouched(host: &Arc<FakeHost>) {
    assert!(host.runs("vm").await);
    assert_eq!(host.record("vm"), Some(S::Running));
    assert_eq!(host.vm("vm").log(), [Op::Load, Op::Cont]);
    let files = host
        .handovers()
        .get("vm")
        .unwrap()
        .lock()
        .await
        .files
        .clone();
    assert_eq!(files.reads.load(Ordering::SeqCst), 0, "pages read");
    assert_eq!(files.flushes.load(Ordering::SeqCst), 0, "files flushed");
    assert!(host.released().is_empty(), "{:?}", host.released());
    let (mut t, _server) = connect(host).await;
    assert_eq!(custody(&mut t, "vm").await, Custody::Holds);
}

fn requests(vm: &str) -> Vec<Message> {
    vec![
        load(vm),
        Message::MigrateCommit { vm: vm.into() },
        Message::MigrateAbort {
            vm: vm.into(),
            reason: "mine now".into(),
        },
        Message::ReintegrateDone { vm: vm.into() },
    ]
}

#[tokio::test]
async fn another_desktops_requests_about_a_running_vm_are_refused_and_change_nothing() {
    let host = victim().await;
    // The victim's lock is held throughout: a refusal must not need it
    // (`ask` fails the test if no reply comes within 5 s).
    let slot = host.handovers().get("vm").unwrap();
    let held = slot.lock().await;
    let (mut t, _server) = connect_as(&host, OTHER).await;
    for m in requests("vm") {
        let what = m.kind();
        assert_not_theirs(&ask(&mut t, m).await, what);
    }
    // Its desktop's VM of that name is not here.
    assert_eq!(custody(&mut t, "vm").await, Custody::Unknown);
    // A return: refused before a byte of the VM is sent.
    let first = ask(&mut t, Message::Reintegrate { vm: "vm".into() }).await;
    assert_not_theirs(&first, "Reintegrate");
    drop(held);
    drop(slot);
    assert_untouched(&host).await;
}

#[tokio::test]
async fn a_vm_in_doubt_is_neither_aborted_nor_committed_by_another_desktop() {
    let host = FakeHost::new();
    let (mut mine, _s1) = connect(&host).await;
    assert_eq!(ask(&mut mine, prepare("vm")).await.kind(), "Prepared");
    assert_eq!(ask(&mut mine, load("vm")).await.kind(), "MigrateLoaded");
    let (mut theirs, s2) = connect_as(&host, OTHER).await;
    // As an agent does: its prepare refused, it gives the migration up.
    assert_name_taken(&ask(&mut theirs, prepare("vm")).await, "MigratePrepare");
    for m in requests("vm") {
        let what = m.kind();
        assert_not_theirs(&ask(&mut theirs, m).await, what);
    }
    assert_eq!(custody(&mut theirs, "vm").await, Custody::Unknown);
    // Its connection ends: nothing of ours to settle.
    drop(theirs);
    s2.await.unwrap();
    assert_eq!(host.record("vm"), Some(S::Loaded));
    assert_eq!(host.vm("vm").state(), RunState::Paused);
    assert_eq!(host.vm("vm").log(), [Op::Load], "loaded once, never run");
    assert_eq!(host.vm("vm").loaded().unwrap(), b"desktop state");
    assert!(host.released().is_empty());
    assert_eq!(custody(&mut mine, "vm").await, Custody::InDoubt);
    // Its own desktop commits as ever.
    let commit = Message::MigrateCommit { vm: "vm".into() };
    assert_eq!(ask(&mut mine, commit).await.kind(), "MigrateCommitted");
    assert!(host.runs("vm").await);
}

#[tokio::test]
async fn a_prepare_of_a_name_another_desktop_holds_is_refused_before_anything_is_made() {
    let host = victim().await;
    host.write_record("gone", S::Released, DESKTOP);
    host.write_record("left", S::Loaded, DESKTOP);
    let claim = host.handovers().claim("coming", DESKTOP).unwrap();
    let (mut t, _server) = connect_as(&host, OTHER).await;
    for vm in ["vm", "gone", "left", "coming"] {
        assert_name_taken(&ask(&mut t, prepare(vm)).await, vm);
    }
    // Nothing launched for them, nothing released, records as they were.
    assert_eq!(host.launched.lock().unwrap().len(), 1, "only the victim");
    assert!(host.released().is_empty(), "{:?}", host.released());
    assert_eq!(host.record("gone"), Some(S::Released));
    assert_eq!(host.record("left"), Some(S::Loaded));
    assert_eq!(host.record("coming"), None);
    // Its own desktop's second prepare of a name under way is refused too.
    let (mut mine, _s) = connect(&host).await;
    let (code, message) = refusal(&ask(&mut mine, prepare("coming")).await);
    assert_eq!(code, ErrorCode::WrongState, "{message}");
    assert!(message.contains("being prepared"), "{message}");
    drop(claim);
    // Once the claim is over, the name is free for whoever comes.
    assert_eq!(ask(&mut t, prepare("coming")).await.kind(), "Prepared");
    assert_untouched(&host).await;
}

#[tokio::test]
async fn another_desktops_tombstone_or_record_is_left_alone() {
    let host = FakeHost::new();
    host.write_record("gone", S::Released, DESKTOP);
    host.write_record("left", S::Loaded, DESKTOP);
    let (mut t, _server) = connect_as(&host, OTHER).await;
    for vm in ["gone", "left"] {
        for m in requests(vm) {
            let what = m.kind();
            assert_not_theirs(&ask(&mut t, m).await, what);
        }
        assert_eq!(custody(&mut t, vm).await, Custody::Unknown);
    }
    let back = ask(&mut t, Message::Reintegrate { vm: "gone".into() }).await;
    assert_not_theirs(&back, "Reintegrate");
    assert_eq!(host.record("gone"), Some(S::Released));
    assert_eq!(host.record("left"), Some(S::Loaded));
    assert!(host.released().is_empty());
    let (mut mine, _s) = connect(&host).await;
    assert_eq!(custody(&mut mine, "gone").await, Custody::Released);
    assert_eq!(custody(&mut mine, "left").await, Custody::InDoubt);
}

#[tokio::test]
async fn a_sleep_announcement_is_taken_only_with_a_target_on_the_lan() {
    let host = FakeHost::new();
    let (mut t, _server) = connect(&host).await;
    let sleep = |mac: &str, wol_addr: &str| Message::GoingToSleep {
        mac: mac.into(),
        wol_addr: wol_addr.into(),
    };
    for (mac, addr, needle) in [
        (
            "02:00:00:00:00:01",
            "10.0.1.255:9",
            "not on this server's LAN (10.0.0.0/24)",
        ),
        (
            "02:00:00:00:00:01",
            "192.0.2.1:9",
            "not on this server's LAN",
        ),
        (
            "02:00:00:00:00:01",
            "127.0.0.1:9",
            "not on this server's LAN",
        ),
        ("ff:ff:ff:ff:ff:ff", "10.0.0.255:9", "not a unicast"),
        ("nonsense", "10.0.0.255:9", "bad MAC"),
        ("02:00:00:00:00:01", "nowhere", "bad Wake-on-LAN address"),
    ] {
        let (code, message) = refusal(&ask(&mut t, sleep(mac, addr)).await);
        assert_eq!(code, ErrorCode::NotAllowed, "{message}");
        assert!(message.contains(needle), "{mac} {addr}: {message}");
    }
    assert!(host.sleeps.lock().unwrap().is_empty(), "nothing taken");
    let ok = ask(&mut t, sleep("02:00:00:00:00:01", "10.0.0.255:9")).await;
    assert_eq!(ok.kind(), "OpOk");
    let sleeps = host.sleeps.lock().unwrap().clone();
    assert_eq!(sleeps.len(), 1);
    assert_eq!(sleeps[0].0, DESKTOP);
    assert_eq!(sleeps[0].1.to_string(), "02:00:00:00:00:01");
    assert_eq!(sleeps[0].2, "10.0.0.255:9".parse().unwrap());
}

#[test]
fn a_vms_disk_file_is_never_another_vms_file() {
    use crate::intake::disk_name;
    for vm in ["a", "a-disk", "vm_1", &"x".repeat(64)] {
        let disk = disk_name(vm);
        assert!(!jettison_wire::valid_vm_name(&disk), "{disk} is a VM name");
        // Nor another VM's disk: the name gives its VM back.
        assert_eq!(disk.strip_suffix(".disk"), Some(vm));
    }
    assert_ne!(disk_name("a"), "a-disk");
}

/// A guest being discarded keeps its name until its files are gone: a
/// prepare of the name in between waits for them instead of finding the
/// old lazy files in its way.
#[tokio::test]
async fn a_name_being_closed_is_taken_until_its_files_go() {
    let host = victim().await;
    let handovers = host.handovers();
    let (slot, closing) = handovers.take_closing("vm");
    assert!(slot.is_some());
    let Err(err) = handovers.claim("vm", DESKTOP) else {
        panic!("claimed while closing");
    };
    assert!(err.to_string().contains("still being closed"), "{err}");
    let waited = tokio::time::Instant::now();
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(closing);
    };
    tokio::join!(
        handovers.wait_closed("vm", std::time::Duration::from_secs(5)),
        release
    );
    assert!(waited.elapsed() >= std::time::Duration::from_millis(50));
    assert!(handovers.claim("vm", DESKTOP).is_ok());
}
