//! Small helpers for running external commands.
//!
//! Every command is printed before it runs (`$ ...`). Failures become errors
//! naming the command, its exit status and (for captured commands) its stderr.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{bail, Context, Result};

/// A shell-like rendering of `cmd` for logs.
pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "\"'$|&;<>()*".contains(c)) {
            s.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        s = format!("(cd {} && {s})", dir.display());
    }
    s
}

/// Builds a command from a program and arguments.
pub fn cmd<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// Runs `cmd` with captured output; returns stdout. On failure the error
/// carries the exit status and stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let shown = display(cmd);
    println!("$ {shown}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`run`] but silent (no `$` line) and returning `None` on failure:
/// for probes such as `dpkg -s` whose failure is an answer.
pub fn probe(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdin(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` with inherited stdout/stderr (for long, chatty commands such as
/// cargo or apt-get) and returns its exit status without judging it.
pub fn run_live_status(cmd: &mut Command) -> Result<ExitStatus> {
    let shown = display(cmd);
    println!("$ {shown}");
    cmd.status()
        .with_context(|| format!("cannot start `{shown}`"))
}

/// Runs `cmd` with inherited stdout/stderr; errors if it fails.
pub fn run_live(cmd: &mut Command) -> Result<()> {
    let status = run_live_status(cmd)?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Runs a bash pipeline (with `pipefail`) in `dir`, output captured.
pub fn pipeline(script: &str, dir: &Path) -> Result<String> {
    run(cmd("bash", ["-c", &format!("set -euo pipefail; {script}")]).current_dir(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_when_needed() {
        let c = cmd("echo", ["a", "b c", "", "it's"]);
        assert_eq!(display(&c), "echo a 'b c' '' 'it'\\''s'");
    }

    #[test]
    fn run_reports_status_and_stderr() {
        let err = run(&mut cmd("sh", ["-c", "echo oops >&2; exit 3"])).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("exit status: 3") && msg.contains("oops"),
            "{msg}"
        );
        assert_eq!(run(&mut cmd("echo", ["hi"])).unwrap(), "hi\n");
    }
}
