//! The composite tasks: `test`, `demo` and `ci`.

use std::process::ExitStatus;

use anyhow::{bail, Result};
use jettison_programs::Runner;

use crate::paths::Paths;
use crate::setup::{is_root, setup};
use crate::sh::{cmd, probe, run_live, run_live_status};
use crate::{boot, guest};

/// Environment variable naming the guest image directory for tests and demo.
pub const GUEST_DIR_ENV: &str = "JETTISON_GUEST_DIR";

/// Says what needs root, when we are not root.
fn warn_if_not_root() {
    if !is_root() {
        eprintln!(
            "warning: not running as root. Tests that need root will fail: \
             /dev/fuse mounts, network namespaces (`ip netns`), tap devices and the \
             freezer cgroup (/sys/fs/cgroup/freezer). Run `cargo xtask test` as root for the full suite."
        );
    }
}

/// `cargo xtask test`: setup, guest, then the workspace tests (nextest if
/// installed). Returns the test runner's exit status.
pub fn test(paths: &Paths, extra: &[String]) -> Result<ExitStatus> {
    warn_if_not_root();
    setup()?;
    guest::guest(paths, &[])?;
    let mut c = paths.cargo();
    if probe(&mut cmd("cargo", ["nextest", "--version"])).is_some() {
        c.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        println!("== test: cargo-nextest not installed, using cargo test");
        c.args(["test", "--workspace", "--no-fail-fast"]);
    }
    c.args(extra).env(GUEST_DIR_ENV, &paths.guest);
    println!("== test: {GUEST_DIR_ENV}={}", paths.guest.display());
    let status = run_live_status(&mut c)?;
    println!(
        "== test: {}",
        if status.success() {
            "passed".to_string()
        } else {
            format!("FAILED ({status})")
        }
    );
    Ok(status)
}

/// `cargo xtask demo`: setup, guest, build and run `jettison-demo`.
pub fn demo(paths: &Paths, extra: &[String]) -> Result<ExitStatus> {
    run_release(paths, &jettison_programs::DEMO_RUNNER, extra)
}

/// `cargo xtask bench`: setup + guest + build and run `jettison-bench`,
/// writing BENCHMARKS.md and target/jettison-bench/results.json unless the
/// arguments say otherwise.
pub fn bench(paths: &Paths, extra: &[String]) -> Result<ExitStatus> {
    let mut args: Vec<String> = extra.to_vec();
    if !args.iter().any(|a| a.starts_with("--json")) {
        let json = paths.target.join("jettison-bench/results.json");
        args.extend(["--json".into(), json.display().to_string()]);
    }
    if !args.iter().any(|a| a.starts_with("--markdown")) {
        let md = paths.root.join("BENCHMARKS.md");
        args.extend(["--markdown".into(), md.display().to_string()]);
    }
    let shown = std::iter::once("cargo xtask bench".to_string())
        .chain(extra.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    args.extend(["--command".into(), shown]);
    std::fs::create_dir_all(paths.target.join("jettison-bench"))?;
    run_release(paths, &jettison_programs::BENCH_RUNNER, &args)
}

/// `cargo xtask chaos`: setup + guest + build and run `jettison-chaos` (the
/// crash matrix), its report in target/jettison-chaos/report.json unless
/// `--json` says otherwise.
pub fn chaos(paths: &Paths, extra: &[String]) -> Result<ExitStatus> {
    let mut args: Vec<String> = extra.to_vec();
    if !args.iter().any(|a| a.starts_with("--json")) {
        let json = paths.target.join("jettison-chaos/report.json");
        args.extend(["--json".into(), json.display().to_string()]);
    }
    std::fs::create_dir_all(paths.target.join("jettison-chaos"))?;
    run_release(paths, &jettison_programs::CHAOS_RUNNER, &args)
}

/// The attack suite's runner (`jettison-attacks`), with the cluster's programs.
const ATTACKS_RUNNER: Runner = Runner {
    program: jettison_programs::Program {
        bin: "jettison-attacks",
        package: "jettison-attacks",
    },
    needs: &jettison_programs::CLUSTER,
    features: jettison_programs::CLUSTER_FEATURES,
};

/// `cargo xtask attacks`: the wire fuzz pass (its output to
/// target/jettison-attacks/fuzz.log; 1,000 inputs per target with
/// `--quick`, 10,000 otherwise), then setup + guest + build and run
/// `jettison-attacks`, its report in target/jettison-attacks/report.json
/// unless `--json` says otherwise.
pub fn attacks(paths: &Paths, extra: &[String]) -> Result<ExitStatus> {
    let out = paths.target.join("jettison-attacks");
    std::fs::create_dir_all(&out)?;
    let mut args: Vec<String> = extra.to_vec();
    if !args.iter().any(|a| a.starts_with("--json")) {
        args.extend([
            "--json".into(),
            out.join("report.json").display().to_string(),
        ]);
    }
    if !args.iter().any(|a| a.starts_with("--fuzz-log")) {
        let cases = if args.iter().any(|a| a == "--quick") {
            "1000"
        } else {
            "10000"
        };
        println!("== attacks: fuzzing the wire decoders ({cases} inputs per target)");
        let fuzz = paths
            .cargo()
            .args(["test", "--release", "-p", "jettison-wire", "--test", "fuzz"])
            .args(["--", "--nocapture", "--test-threads=1"])
            .env("JETTISON_FUZZ_CASES", cases)
            .output()?;
        let log = out.join("fuzz.log");
        let mut text = fuzz.stdout;
        text.extend_from_slice(&fuzz.stderr);
        std::fs::write(&log, &text)?;
        if !fuzz.status.success() {
            println!(
                "== attacks: the fuzz pass failed ({}); see {}",
                fuzz.status,
                log.display()
            );
        }
        args.extend(["--fuzz-log".into(), log.display().to_string()]);
    }
    run_release(paths, &ATTACKS_RUNNER, &args)
}

/// setup + guest + `cargo build --release` of everything `runner` needs
/// (one list, shared with the runner's own lookup), then runs it from the
/// repository root with the guest image's directory in the environment.
fn run_release(paths: &Paths, runner: &Runner, extra: &[String]) -> Result<ExitStatus> {
    warn_if_not_root();
    setup()?;
    guest::guest(paths, &[])?;
    let mut build = paths.cargo();
    build
        .args(["build", "--release"])
        .args(runner.cargo_build_args());
    run_live(&mut build)?;
    let dir = paths.target.join("release");
    let mut wanted = runner.needs.to_vec();
    wanted.push(runner.program);
    let missing = jettison_programs::missing_in(&dir, &wanted);
    if !missing.is_empty() {
        bail!(
            "the build did not produce {:?} in {}",
            missing.iter().map(|p| p.bin).collect::<Vec<_>>(),
            dir.display()
        );
    }
    let mut c = std::process::Command::new(dir.join(runner.program.bin));
    c.args(extra)
        .current_dir(&paths.root)
        .env(GUEST_DIR_ENV, &paths.guest);
    run_live_status(&mut c)
}

/// `cargo xtask ci`: formatting, clippy (warnings denied), a guest boot
/// smoke test, then the tests.
pub fn ci(paths: &Paths, timeout: std::time::Duration) -> Result<ExitStatus> {
    run_live(paths.cargo().args(["fmt", "--all", "--check"]))?;
    run_live(paths.cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    setup()?;
    let img = guest::guest(paths, &[])?;
    boot::smoke(&img, "512M", timeout)?;
    test(paths, &[])
}
