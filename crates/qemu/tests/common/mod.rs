//! Shared helpers of the integration tests (real QEMU, temp dirs under /dev/shm).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use jettison_qemu::{Accel, LaunchOptions, MachineSpec};

pub const QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// Logs to the test's captured output; `RUST_LOG` sets the filter.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A temp dir under /dev/shm (removed on drop, also when the test fails).
pub fn shm_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("jq-{tag}-"))
        .tempdir_in("/dev/shm")
        .expect("temp dir in /dev/shm")
}

/// Launch options for VM `name` with everything inside `dir`.
pub fn options(dir: &Path, name: &str) -> LaunchOptions {
    LaunchOptions {
        binary: PathBuf::from(QEMU),
        accel: Accel::Tcg,
        mem_path: dir.join(format!("{name}.mem")),
        run_dir: dir.join("run"),
        console_log: Some(dir.join(format!("{name}.console"))),
        incoming: false,
        name: name.to_string(),
        deny_hugepage_advice: false,
        tap: None,
        disk_path: None,
        extra_args: vec![],
        confine: None,
    }
}

/// A machine with no kernel: SeaBIOS runs and finds nothing to boot.
pub fn bios_only(memory_mib: u64) -> MachineSpec {
    MachineSpec {
        memory_mib,
        cpus: 1,
        ..Default::default()
    }
}

/// The project's guest image directory (built by `cargo xtask guest`;
/// `JETTISON_GUEST_DIR` overrides where it is).
pub fn guest_dir() -> PathBuf {
    std::env::var_os("JETTISON_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/jettison-guest")
        })
}

/// The project's guest kernel.
pub fn guest_kernel() -> PathBuf {
    let kernel = guest_dir().join("vmlinuz");
    assert!(
        kernel.is_file(),
        "no guest kernel at {}: run `cargo xtask guest` (or `cargo xtask test`)",
        kernel.display()
    );
    kernel
}

/// The whole test guest (kernel, initramfs with the workload, its command
/// line): it prints `JTS HB` heartbeats on its serial console.
pub fn guest(memory_mib: u64) -> MachineSpec {
    let dir = guest_dir();
    let initrd = dir.join("initrd.img");
    assert!(
        initrd.is_file(),
        "no guest initramfs at {}: run `cargo xtask guest`",
        initrd.display()
    );
    let cmdline = std::fs::read_to_string(dir.join("cmdline"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "console=ttyS0 quiet panic=-1 rdinit=/init".into());
    MachineSpec {
        memory_mib,
        cpus: 1,
        kernel: Some(guest_kernel()),
        initrd: Some(initrd),
        append: Some(format!("{cmdline} jettison.fill_pct=5")),
        ..Default::default()
    }
}
