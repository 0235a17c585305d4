//! Serial console tap: lines land in the console log prefixed by host unix ms.
//! Needs a bootable kernel: uses the host's `/boot/vmlinuz-*` (skips if there is none).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use jettison_qemu::{unix_ms, MachineSpec, Qemu};

fn host_kernel() -> Option<PathBuf> {
    let mut ks: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .collect();
    ks.sort();
    ks.pop()
}

#[tokio::test]
async fn console_lines_are_timestamped() {
    common::init_tracing();
    let Some(kernel) = host_kernel() else {
        eprintln!("SKIP: no /boot/vmlinuz-* on this machine");
        return;
    };
    let dir = common::shm_dir("cons");
    let opts = common::options(dir.path(), "cons");
    let spec = MachineSpec {
        memory_mib: 256,
        cpus: 1,
        kernel: Some(kernel),
        append: Some("console=ttyS0 panic=-1".into()),
        ..Default::default()
    };
    let before = unix_ms();
    let vm = Qemu::launch(&spec, &opts).await.unwrap();
    let mut lines = vm.subscribe_console();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match lines.recv().await {
                Ok(l) if l.contains("Linux version") => break l,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("console closed: {e}"),
            }
        }
    })
    .await
    .expect("kernel banner on the serial console");
    eprintln!("console: {found}");
    vm.quit().await.unwrap();

    let log = std::fs::read_to_string(opts.console_log.as_ref().unwrap()).unwrap();
    let banner = log
        .lines()
        .find(|l| l.contains("Linux version"))
        .expect("banner in console log");
    let (ms, rest) = banner.split_once(' ').unwrap();
    let ms: u128 = ms.parse().expect("line starts with unix ms");
    assert!(
        ms >= before && ms <= unix_ms(),
        "{ms} not in [{before}, now]"
    );
    assert!(rest.contains("Linux version"));
    assert!(!log.contains('\r'), "carriage returns are stripped");
}
