//! Launch, stop/cont, events, errors and quit with a real QEMU.

mod common;

use std::time::Duration;

use jettison_qemu::{Qemu, QemuError, RunState};

#[tokio::test]
async fn launch_stop_cont_quit() {
    common::init_tracing();
    let dir = common::shm_dir("life");
    let opts = common::options(dir.path(), "life");
    let vm = Qemu::launch(&common::bios_only(64), &opts).await.unwrap();
    assert!(vm.pid().is_some());
    assert_eq!(std::fs::metadata(&opts.mem_path).unwrap().len(), 64 << 20);
    assert_eq!(vm.status().await.unwrap(), RunState::Running);

    let mut events = vm.qmp().subscribe();
    vm.stop().await.unwrap();
    assert_eq!(vm.status().await.unwrap(), RunState::Paused);
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.event, "STOP");
    vm.stop().await.expect("stop is idempotent");
    vm.cont().await.unwrap();
    assert_eq!(vm.status().await.unwrap(), RunState::Running);

    // Unknown commands become typed QMP errors.
    match vm
        .qmp()
        .execute_raw("no-such-command", serde_json::Value::Null)
        .await
    {
        Err(QemuError::Qmp { class, desc }) => {
            assert_eq!(class, "CommandNotFound");
            assert!(desc.contains("no-such-command"), "{desc}");
        }
        other => panic!("expected a QMP error, got {other:?}"),
    }
    // Only small non-shared RAM blocks: no option ROMs, no VGA RAM.
    let blocks = vm
        .qmp()
        .execute_raw("x-query-ramblock", serde_json::Value::Null)
        .await
        .unwrap();
    let text = blocks["human-readable-text"].as_str().unwrap().to_string();
    eprintln!("RAM blocks:\n{text}");
    for bad in ["genroms", "vga", ".rom\n", "efi-"] {
        assert!(!text.contains(bad), "unexpected RAM block {bad:?}:\n{text}");
    }

    // migrate_in is refused on an instance not started with -incoming defer.
    assert!(matches!(
        vm.migrate_in(b"x").await,
        Err(QemuError::NotIncoming(_))
    ));

    let mut exit = vm.exit_handle();
    let status = vm.quit().await.unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(exit.wait().await.unwrap(), status);
}

#[tokio::test]
async fn concurrent_calls_are_matched_by_id() {
    common::init_tracing();
    let dir = common::shm_dir("conc");
    let vm = Qemu::launch(&common::bios_only(32), &common::options(dir.path(), "conc"))
        .await
        .unwrap();
    let calls = (0..50).map(|_| vm.status());
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap(), RunState::Running);
    }
    vm.quit().await.unwrap();
}
