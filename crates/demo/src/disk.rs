//! Checking the guest's mail cache on a disk image: the guest's
//! `JTS DISK writes=<n> bytes=<b> sum=<hex>` lines (each a completed,
//! `fsync`ed write), the file read out of an ext2/3/4 image with e2fsprogs'
//! `debugfs`, and whether a file holds a reported write (its first `b` bytes
//! hash to `sum`). The demo checks the desktop's image after the VM came
//! home (it must hash to the checksum the guest last reported, and hold
//! everything the guest wrote while it ran on the server); the crash matrix
//! checks that no completed write is lost.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use jettison_guest::disk::Fnv64;
use serde::Serialize;

/// Name of the guest's mail cache file on its disk.
pub const MAIL_CACHE: &str = "mail-cache.log";

/// What a guest's `JTS DISK writes=<n> bytes=<b> sum=<hex>` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskLine {
    /// Records written since boot.
    pub writes: u64,
    /// File size after the write.
    pub bytes: u64,
    /// FNV-1a 64 of the whole file.
    pub sum: u64,
}

impl DiskLine {
    /// The write a console line reports, if it is a `JTS DISK writes=` line.
    pub fn parse(line: &str) -> Option<DiskLine> {
        let text = &line[line.find("JTS DISK writes=")?..];
        let field = |k: &str| text.split_whitespace().find_map(|w| w.strip_prefix(k));
        Some(DiskLine {
            writes: field("writes=")?.parse().ok()?,
            bytes: field("bytes=")?.parse().ok()?,
            sum: u64::from_str_radix(field("sum=")?, 16).ok()?,
        })
    }

    /// Whether `content` holds this write: its first `bytes` bytes hash to
    /// `sum` (the file may have grown since).
    pub fn held_by(&self, content: &[u8]) -> bool {
        let Some(prefix) = usize::try_from(self.bytes)
            .ok()
            .and_then(|n| content.get(..n))
        else {
            return false;
        };
        let mut sum = Fnv64::default();
        sum.update(prefix);
        sum.0 == self.sum
    }
}

/// The last `JTS DISK` write line of a console log.
pub fn last_disk_line(log: &str) -> Option<DiskLine> {
    log.lines().rev().find_map(DiskLine::parse)
}

/// Every `JTS DISK` write line of a console log whose lines start with the
/// host's Unix time in ms, with that time.
pub fn timed_disk_lines(log: &str) -> Vec<(u64, DiskLine)> {
    log.lines()
        .filter_map(|l| {
            let (ms, text) = l.split_once(' ')?;
            Some((ms.parse().ok()?, DiskLine::parse(text)?))
        })
        .collect()
}

/// The outcome of the check.
#[derive(Debug, Clone, Serialize)]
pub struct DiskCheck {
    /// Size of the mail cache in the image.
    pub file_bytes: u64,
    /// Whether its checksum equals the guest's last report.
    pub checksum_matches: bool,
    /// Records the guest wrote while on the server.
    pub writes_on_server: u64,
    /// Whether the file holds at least what the guest had written by the
    /// time it left the server.
    pub holds_server_writes: bool,
}

/// The command that prints a file of an ext2/3/4 image (read-only), for
/// callers that run it their own way (with a timeout, say).
pub fn cat_command(image: &Path, name: &str) -> Command {
    let mut cmd = Command::new("debugfs");
    cmd.args(["-R", &format!("cat /{name}")]).arg(image);
    cmd
}

/// The file, from the output of [`cat_command`].
pub fn cat_output(out: std::process::Output) -> anyhow::Result<Vec<u8>> {
    if !out.status.success() {
        bail!("debugfs failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// Reads a file out of an ext2/3/4 image (the VM must be stopped).
pub fn read_from_image(image: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let out = cat_command(image, name)
        .output()
        .context("running debugfs (package e2fsprogs)")?;
    cat_output(out)
}

/// Checks the image against the console logs of the desktop (after the
/// return) and the server.
pub fn check(image: &Path, home_log: &str, server_log: &str) -> anyhow::Result<DiskCheck> {
    let content = read_from_image(image, MAIL_CACHE)?;
    let last = last_disk_line(home_log).context("the guest reported no disk write at home")?;
    let on_server =
        last_disk_line(server_log).context("the guest reported no disk write on the server")?;
    let first_on_server = server_log
        .lines()
        .find_map(last_disk_line)
        .map(|d| d.writes)
        .unwrap_or(0);
    Ok(DiskCheck {
        file_bytes: content.len() as u64,
        checksum_matches: content.len() as u64 == last.bytes && last.held_by(&content),
        writes_on_server: on_server.writes + 1 - first_on_server,
        holds_server_writes: content.len() as u64 >= on_server.bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_last_write_line() {
        let log = "1 JTS DISK start file=x existing=0 sum=cbf29ce484222325\n\
                   2 JTS DISK writes=1 bytes=80 sum=00000000000000ff\n\
                   3 JTS HB seq=4\n\
                   4 JTS DISK writes=2 bytes=160 sum=abcdef0123456789\n";
        assert_eq!(
            last_disk_line(log),
            Some(DiskLine {
                writes: 2,
                bytes: 160,
                sum: 0xabcdef0123456789
            })
        );
        assert_eq!(last_disk_line("1 JTS HB seq=1\n"), None);
        assert_eq!(last_disk_line("1 JTS DISK writes=x bytes=1 sum=1\n"), None);
        let timed = timed_disk_lines(log);
        assert_eq!(timed.len(), 2);
        assert_eq!((timed[0].0, timed[0].1.writes), (2, 1));
        assert_eq!(
            timed_disk_lines("x JTS DISK writes=1 bytes=1 sum=1\n"),
            vec![]
        );
    }

    #[test]
    fn a_file_holds_a_write_when_its_prefix_hashes_to_the_sum() {
        let mut sum = Fnv64::default();
        sum.update(b"mail 1 ab\n");
        let w = DiskLine {
            writes: 1,
            bytes: 10,
            sum: sum.0,
        };
        assert!(w.held_by(b"mail 1 ab\n"));
        assert!(w.held_by(b"mail 1 ab\nmail 2 cd\n"));
        assert!(!w.held_by(b"mail 1 ab"));
        assert!(!w.held_by(b"mail 1 xy\n"));
        assert!(!w.held_by(b""));
        let empty = DiskLine {
            writes: 0,
            bytes: 0,
            sum: Fnv64::default().0,
        };
        assert!(empty.held_by(b""));
    }
}
