//! Serial console tap: lines land in the console log prefixed by host unix ms.
//! Needs a bootable kernel: the project's guest kernel (`cargo xtask guest`).

mod common;

use std::time::Duration;

use jettison_qemu::{unix_ms, MachineSpec, Qemu};

#[tokio::test]
async fn console_lines_are_timestamped() {
    common::init_tracing();
    let kernel = common::guest_kernel();
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
