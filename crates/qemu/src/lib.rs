//! jettison-qemu: launch unmodified QEMU for Jettison and drive it over QMP.
//!
//! A VM's RAM is a shared named file (`memory-backend-file`, `share=on`); with the
//! migration capability `x-ignore-shared` a migration stream then carries only CPU and
//! device state. [`Qemu::migrate_out`] turns a stopped VM into those bytes,
//! [`Qemu::migrate_in`] loads them into an instance started with `-incoming defer` on the
//! same (or a replicated) memory file.
//!
//! ```no_run
//! # async fn demo() -> Result<(), jettison_qemu::QemuError> {
//! use jettison_qemu::{LaunchOptions, MachineSpec, Qemu};
//! let spec = MachineSpec { memory_mib: 256, ..Default::default() };
//! let a = Qemu::launch(&spec, &LaunchOptions::new("vm1", "/run/jettison")).await?;
//! a.stop().await?;
//! let state = a.migrate_out().await?;
//! a.quit().await?;
//! let b = Qemu::launch(&spec, &LaunchOptions { incoming: true, ..LaunchOptions::new("vm1", "/run/jettison") }).await?;
//! b.migrate_in(&state).await?;
//! b.cont().await?;
//! # Ok(()) }
//! ```

pub mod accel_probe;
mod adopt;
mod console;
mod control;
mod error;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
mod instance;
pub mod jail;
mod migrate;
mod no_thp;
mod process;
pub mod qmp;
mod spec;

pub use accel_probe::{choose_accel, AccelChoice, AccelDecision};
pub use console::unix_ms;
pub use control::VmControl;
pub use error::{QemuError, Result};
pub use instance::{ExitHandle, Qemu, Shutdown, LAUNCH_TIMEOUT, MIGRATION_TIMEOUT, QUIT_TIMEOUT};
pub use migrate::CAPABILITIES;
pub use qmp::{QmpClient, QmpEvent, RunState};
pub use spec::{
    command_line, ensure_mem_file, option_rom_devices, Accel, Confinement, LaunchOptions,
    MachineSpec, ParseAccelError, SANDBOX,
};

#[cfg(test)]
mod spec_tests;
