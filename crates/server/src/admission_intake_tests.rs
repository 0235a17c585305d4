//! `prepare` refuses a VM beyond a limit, or without room, before anything
//! of it is made (no launch, so no tap, lazy file, replica or QEMU; no
//! record; no guest), with the limit it hit; and refuses the retired
//! request of protocol 1.1, whose description carried QEMU arguments.

use jettison_wire::{ErrorCode, LegacyMachineDesc, Message};

use crate::admission::{Filesystem, Limits};
use crate::test_host::*;

fn prepare_with(vm: &str, memory_mib: u64, cpus: u32, disk_bytes: Option<u64>) -> Message {
    let mut m = machine();
    m.memory_mib = memory_mib;
    m.cpus = cpus;
    m.disk_bytes = disk_bytes;
    Message::MigratePrepare {
        vm: vm.into(),
        machine: m,
        state_server: "127.0.0.1:1".into(),
    }
}

/// The error a refused request got.
fn refusal(m: &Message) -> (ErrorCode, String) {
    match m {
        Message::Error(e) => (e.code, e.message.clone()),
        other => panic!("expected a refusal, got {}", other.kind()),
    }
}

/// Nothing of `vm` was made or kept, and the ledger holds `in_use` VMs.
fn assert_nothing_made(host: &FakeHost, vm: &str, in_use: usize) {
    assert!(
        !host.launched.lock().unwrap().contains_key(vm),
        "{vm} was launched"
    );
    assert!(!host.released().contains(&vm.to_string()), "{vm} had files");
    assert_eq!(host.record(vm), None, "{vm} has a record");
    assert!(!host.handovers().contains(vm), "{vm} has a guest");
    assert_eq!(host.handovers().admission.in_use().0, in_use);
}

async fn refused(host: &std::sync::Arc<FakeHost>, m: Message, needles: &[&str]) {
    let (mut t, _server) = connect(host).await;
    let vm = match &m {
        Message::MigratePrepare { vm, .. } => vm.clone(),
        _ => unreachable!(),
    };
    let in_use = host.handovers().admission.in_use().0;
    let (code, text) = refusal(&ask(&mut t, m).await);
    assert_eq!(code, ErrorCode::Failed, "{text}");
    for n in needles {
        assert!(text.contains(n), "{n:?} not in {text:?}");
    }
    assert_nothing_made(host, &vm, in_use);
}

#[tokio::test]
async fn a_vm_over_a_per_vm_limit_is_refused_with_nothing_made() {
    let host = FakeHost::new();
    refused(
        &host,
        prepare_with("huge", 1 << 40, 1, None),
        &["1099511627776 MiB of memory", "65536", "max_vm_memory_mib"],
    )
    .await;
    refused(
        &host,
        prepare_with("wide", 64, 10_000, None),
        &["10000 vCPUs", "at most 64", "max_vm_cpus"],
    )
    .await;
    refused(
        &host,
        prepare_with("odd", 64, 1, Some(1000)),
        &["disk of 1000 bytes"],
    )
    .await;
}

#[tokio::test]
async fn the_vm_count_includes_vms_being_prepared() {
    let host = FakeHost::limited(Limits {
        max_vms: 1,
        ..Limits::default()
    });
    let (mut t, _server) = connect(&host).await;
    // Prepared, not loaded: it counts.
    assert_eq!(ask(&mut t, prepare("first")).await.kind(), "Prepared");
    refused(
        &host,
        prepare("second"),
        &["VMs: 1 in use + 1 asked > limit 1", "max_vms"],
    )
    .await;
    // Once the first is given up, its room is free again.
    let abort = Message::MigrateAbort {
        vm: "first".into(),
        reason: "test".into(),
    };
    assert_eq!(ask(&mut t, abort).await.kind(), "OpOk");
    assert_eq!(host.handovers().admission.in_use().0, 0);
    assert_eq!(ask(&mut t, prepare("second")).await.kind(), "Prepared");
}

#[tokio::test]
async fn total_memory_and_replica_limits_are_refused_with_nothing_made() {
    let host = FakeHost::limited(Limits {
        max_total_memory_mib: Some(100),
        max_total_replica_mib: 120,
        ..Limits::default()
    });
    let (mut t, _server) = connect(&host).await;
    assert_eq!(
        ask(&mut t, prepare_with("a", 60, 1, Some(40 << 20)))
            .await
            .kind(),
        "Prepared"
    );
    refused(
        &host,
        prepare_with("b", 41, 1, None),
        &[
            "MiB of guest memory: 60 in use + 41 asked > limit 100",
            "max_total_memory_mib",
        ],
    )
    .await;
    refused(
        &host,
        prepare_with("c", 10, 1, Some(20 << 20 | 4096)),
        &["replica bytes", "max_total_replica_mib"],
    )
    .await;
    assert_eq!(
        ask(&mut t, prepare_with("d", 10, 1, Some(10 << 20)))
            .await
            .kind(),
        "Prepared"
    );
}

#[tokio::test]
async fn a_full_disk_or_an_unreadable_one_refuses_with_nothing_made() {
    let host = FakeHost::limited(Limits {
        min_free_mib: 1,
        ..Limits::default()
    });
    *host.disks.lock().unwrap() = Ok(vec![Filesystem {
        path: "/fake/replicas".into(),
        available: 4 << 20,
        replicas: true,
    }]);
    refused(
        &host,
        prepare_with("big", 4, 1, None),
        &[
            "no room for VM big",
            "/fake/replicas",
            "4194304 bytes free",
            "min_free_mib",
        ],
    )
    .await;
    *host.disks.lock().unwrap() = Err("statvfs: no such device".into());
    refused(&host, prepare("vm"), &["free space", "no such device"]).await;
}

/// A prepare in the layout of protocol 1.1 (free-form QEMU arguments, boot
/// files by path; the wire crate checks the encoding against a copy of the
/// old types) is refused: the agent is told to upgrade.
#[tokio::test]
async fn the_retired_prepare_and_a_prepare_below_minor_2_are_refused() {
    let host = FakeHost::new();
    let (mut t, _server) = connect(&host).await;
    let old = Message::MigratePrepareV1 {
        vm: "vm".into(),
        machine: LegacyMachineDesc {
            memory_mib: 64,
            cpus: 1,
            kernel: None,
            initrd: None,
            append: None,
            extra_args: vec!["-chardev".into(), "file,path=/etc/shadow,id=x".into()],
            nic_mac: None,
            disk_bytes: None,
        },
        state_server: "127.0.0.1:1".into(),
    };
    let (code, text) = refusal(&ask(&mut t, old).await);
    assert_eq!(code, ErrorCode::VersionMismatch);
    assert!(text.contains("upgrade jettison-agent"), "{text}");
    assert!(text.contains("MigratePrepareV1"), "{text}");
    assert_nothing_made(&host, "vm", 0);
    // The connection carries on.
    assert_eq!(ask(&mut t, prepare("vm")).await.kind(), "Prepared");

    let (mut t1, _server) = connect_minor(&host, 1).await;
    let (code, text) = refusal(&ask(&mut t1, prepare("vm2")).await);
    assert_eq!(code, ErrorCode::VersionMismatch);
    assert!(
        text.contains("1.2") && text.contains("upgrade jettison-agent"),
        "{text}"
    );
    assert_nothing_made(&host, "vm2", 1);
}
