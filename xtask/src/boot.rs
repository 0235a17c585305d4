//! Smoke-booting the guest image under QEMU (TCG) and watching the console.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::guest::GuestImage;
use crate::sh::display;

/// What the console has shown so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BootWatch {
    /// `JTS READY` seen.
    pub ready: bool,
    /// `JTS HB` lines seen.
    pub heartbeats: u32,
    /// Clean `JTS CHECK ... fail=0` lines seen.
    pub clean_checks: u32,
}

/// Verdict after a console line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Keep watching.
    Pending,
    /// Ready, heartbeating and checked clean.
    Healthy,
    /// The guest reported a problem (the line).
    Failed(String),
}

impl BootWatch {
    /// Feeds one console line.
    pub fn feed(&mut self, line: &str) -> Verdict {
        let line = line.trim();
        if line.starts_with("JTS READY") {
            self.ready = true;
        } else if line.starts_with("JTS HB ") {
            self.heartbeats += 1;
        } else if line.starts_with("JTS CHECK ") {
            if line.split_whitespace().any(|w| w == "fail=0") {
                self.clean_checks += 1;
            } else {
                return Verdict::Failed(line.to_string());
            }
        } else if line.starts_with("JTS CORRUPT")
            || line.starts_with("JTS FATAL")
            || line.contains("Kernel panic")
        {
            return Verdict::Failed(line.to_string());
        }
        if self.ready && self.heartbeats >= 2 && self.clean_checks >= 1 {
            Verdict::Healthy
        } else {
            Verdict::Pending
        }
    }
}

/// The QEMU command that boots `img` with `mem` of RAM under TCG.
pub fn qemu_command(img: &GuestImage, mem: &str) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args([
        "-accel",
        "tcg",
        "-m",
        mem,
        "-nodefaults",
        "-vga",
        "none",
        "-display",
        "none",
    ])
    .args(["-serial", "stdio", "-no-reboot", "-kernel"])
    .arg(&img.vmlinuz)
    .arg("-initrd")
    .arg(&img.initrd)
    .args(["-append", &img.cmdline]);
    c
}

/// Boots the image and waits (at most `timeout`) for a healthy console.
pub fn smoke(img: &GuestImage, mem: &str, timeout: Duration) -> Result<()> {
    let mut c = qemu_command(img, mem);
    println!("== boot: $ {}", display(&c));
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting qemu-system-x86_64 (package qemu-system-x86)")?;
    let stdout = child.stdout.take().context("no qemu stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let t0 = Instant::now();
    let mut watch = BootWatch::default();
    let outcome = loop {
        let left = timeout.saturating_sub(t0.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let t = t0.elapsed().as_secs_f64();
                println!("[{t:6.2}s] {line}");
                match watch.feed(&line) {
                    Verdict::Pending => {}
                    Verdict::Healthy => break Ok(t),
                    Verdict::Failed(l) => {
                        break Err(anyhow::anyhow!("guest reported a failure: {l}"))
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                break Err(anyhow::anyhow!(
                    "timed out after {timeout:?}; seen so far: {watch:?}"
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err(anyhow::anyhow!("qemu exited early; seen so far: {watch:?}"))
            }
        }
    };
    let _ = child.kill(); // our own child, by handle
    let _ = child.wait();
    match outcome {
        Ok(t) => {
            println!("== boot: guest healthy after {t:.1}s (READY, heartbeats, clean check)");
            Ok(())
        }
        Err(e) => bail!(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_after_ready_heartbeats_and_clean_check() {
        let mut w = BootWatch::default();
        for l in [
            "JTS INIT kernel=x",
            "JTS READY fill_mib=1 check_mib=1",
            "JTS HB seq=1 up_ms=5",
        ] {
            assert_eq!(w.feed(l), Verdict::Pending);
        }
        assert_eq!(w.feed("JTS CHECK n=1 fail=0 words=10"), Verdict::Pending);
        assert_eq!(w.feed("JTS HB seq=2 up_ms=6\r"), Verdict::Healthy);
    }

    #[test]
    fn failures_are_reported() {
        let mut w = BootWatch::default();
        assert!(matches!(
            w.feed("JTS CHECK n=1 fail=3 words=10"),
            Verdict::Failed(_)
        ));
        assert!(matches!(
            w.feed("JTS CORRUPT offset=0x8 expected=1 got=2"),
            Verdict::Failed(_)
        ));
        assert!(matches!(
            w.feed("[ 1.0] Kernel panic - not syncing"),
            Verdict::Failed(_)
        ));
    }
}
