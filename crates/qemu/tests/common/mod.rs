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
