//! `cargo xtask`: project automation for jettison.
//!
//! - `setup`: install the host packages (root) or say which are missing.
//! - `guest`: build the guest image into `target/jettison-guest/`
//!   (`--boot` also boots it under QEMU/TCG and checks the console).
//! - `test`: setup + guest + workspace tests, with `JETTISON_GUEST_DIR` set.
//! - `demo`: setup + guest + build and run `jettison-demo`.
//! - `bench`: setup + guest + build and run `jettison-bench` (BENCHMARKS.md
//!   and target/jettison-bench/results.json).
//! - `chaos`: setup + guest + build and run `jettison-chaos`, the handover's
//!   crash matrix on test hosts (`--quick`, `--json PATH`).
//! - `attacks`: the wire fuzz pass, then setup + guest + build and run
//!   `jettison-attacks`, the attack suite on test hosts (`--quick`,
//!   `--strict`, `--json PATH`).
//! - `package`: the Debian packages `jettison-cli`, `jettison-agent` and
//!   `jettison-server` into `target/debian/` (release build; `--binaries-from
//!   DIR` packages an existing build instead).
//! - `ci`: fmt, clippy, guest boot smoke test, tests.
//! - `testbed clean [--all]`: remove what killed test runs left behind
//!   (namespaces, processes, FUSE mounts, QEMUs, `/dev/shm` files).

#![forbid(unsafe_code)]

mod boot;
mod debian;
mod elf;
mod guest;
mod initramfs;
mod kernel;
mod modfiles;
mod modules;
mod package;
mod paths;
mod setup;
mod sh;
mod tasks;

use std::process::{ExitCode, ExitStatus};
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Project automation for jettison.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Ensure the host packages (qemu-system-x86, busybox-static, fuse3, cpio, iproute2, bubblewrap...).
    Setup,
    /// Build the guest kernel + initramfs into target/jettison-guest/.
    Guest {
        /// Boot the image under QEMU (TCG) and check READY, heartbeats and a clean check.
        #[arg(long)]
        boot: bool,
        /// Seconds to wait for a healthy console with --boot.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Guest memory with --boot.
        #[arg(long, default_value = "512M")]
        mem: String,
        /// Guest settings `key=value` added to the kernel command line as `jettison.key=value`.
        settings: Vec<String>,
    },
    /// setup + guest + `cargo nextest run --workspace` (or `cargo test`); extra args go to the runner.
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// setup + guest + build and run target/release/jettison-demo with these args.
    Demo {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// setup + guest + run jettison-bench: partial migration vs QEMU precopy and
    /// postcopy on shaped test LANs (`--quick` for the ~10 minute run; `--help`
    /// is passed on to jettison-bench).
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// setup + guest + run jettison-chaos: the handover's crash matrix on test
    /// hosts (`--quick` for every fault once; `--json PATH` for the report;
    /// `--help` is passed on).
    #[command(disable_help_flag = true)]
    Chaos {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The wire fuzz pass, then setup + guest + run jettison-attacks: a second
    /// desktop and an unauthenticated flood against a server holding a VM
    /// (`--quick`; `--strict` fails on an attack not refused; `--json PATH`;
    /// `--help` is passed on).
    #[command(disable_help_flag = true)]
    Attacks {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the Debian packages (jettison-cli, jettison-agent, jettison-server)
    /// into target/debian/ from a release build.
    Package {
        /// Package the programs (and jettison-manuals) found in this
        /// directory instead of building them in release (e.g. target/debug).
        #[arg(long, value_name = "DIR")]
        binaries_from: Option<std::path::PathBuf>,
        /// Where the .deb files go (default: target/debian).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        /// Compress quickly (gzip -1) instead of small (xz): for tests.
        #[arg(long)]
        fast: bool,
    },
    /// fmt --check, clippy -D warnings, guest boot smoke test, tests.
    Ci {
        /// Seconds to wait for the booted guest to become healthy.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Test hosts (network namespaces) housekeeping.
    Testbed {
        #[command(subcommand)]
        cmd: TestbedCmd,
    },
}

#[derive(Debug, Subcommand)]
enum TestbedCmd {
    /// Remove leftovers of test runs whose process is dead (root).
    Clean {
        /// Remove the leftovers of every run, also of live ones.
        #[arg(long)]
        all: bool,
    },
}

fn exit_code(status: ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1).max(1)),
        None => ExitCode::FAILURE,
    }
}

fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    let paths = paths::Paths::new();
    Ok(match cli.cmd {
        Cmd::Setup => setup::setup().map(|()| ExitCode::SUCCESS)?,
        Cmd::Guest {
            boot,
            timeout,
            mem,
            settings,
        } => {
            let img = guest::guest(&paths, &settings)?;
            if boot {
                boot::smoke(&img, &mem, Duration::from_secs(timeout))?;
            }
            ExitCode::SUCCESS
        }
        Cmd::Test { args } => exit_code(tasks::test(&paths, &args)?),
        Cmd::Demo { args } => exit_code(tasks::demo(&paths, &args)?),
        Cmd::Bench { args } => exit_code(tasks::bench(&paths, &args)?),
        Cmd::Chaos { args } => exit_code(tasks::chaos(&paths, &args)?),
        Cmd::Attacks { args } => exit_code(tasks::attacks(&paths, &args)?),
        Cmd::Package {
            binaries_from,
            out,
            fast,
        } => {
            let opts = package::Options {
                binaries_from,
                out,
                fast,
            };
            package::package(&paths, &opts)?;
            ExitCode::SUCCESS
        }
        Cmd::Ci { timeout } => exit_code(tasks::ci(&paths, Duration::from_secs(timeout))?),
        Cmd::Testbed {
            cmd: TestbedCmd::Clean { all },
        } => {
            let report = jettison_testbed::clean_leftovers(all)?;
            if report.is_empty() {
                println!("== testbed: no leftovers");
            } else {
                print!("== testbed: removed\n{report}");
            }
            if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    })
}
