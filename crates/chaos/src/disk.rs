//! No completed disk write lost. The guest appends a record to its mail
//! cache on its disk every second, `fsync`s it and only then prints
//! `JTS DISK writes=<n> bytes=<b> sum=<hex>` (`sum`: FNV-1a 64 of the whole
//! file): each such line is a completed write. Once a case has settled, the
//! VM is stopped where it runs and the mail cache is read out of the disk it
//! ends with (the desktop's image, or the server's view of it through the
//! lazy filesystem); every completed write the guest reported must be in it
//! (its first `b` bytes hash to `sum`).
//!
//! A VM restarted from its last consistent state (rolled back) may lose
//! what it wrote after that state was saved: that is what it ran on the
//! server after the fault's step (the snapshot is saved when the guest
//! stops to leave the desktop, or when a return's pages and blocks are
//! durable at home, both before the step). Those lines are not promised;
//! every other one is, the writes of the guest restarted at home included.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jettison_demo::disk::{cat_command, cat_output, timed_disk_lines, DiskLine, MAIL_CACHE};
use jettison_demo::procs::qemu_pids;
use jettison_demo::Cluster;
use jettison_wire::Message;

use crate::cases::Side;

/// The completed writes the VM's final disk must hold, from the guest's
/// console logs on the desktop and on the server: every write line, except,
/// for a rolled-back VM (`rolled_back_since`: host ms of the fault's step),
/// those printed on the server after that time. One per distinct write
/// (a guest restarted from a snapshot reports some writes again), by size.
pub fn promised(
    desktop_log: &str,
    server_log: &str,
    rolled_back_since: Option<u64>,
) -> Vec<DiskLine> {
    let on_server = timed_disk_lines(server_log)
        .into_iter()
        .filter(|(ms, _)| rolled_back_since.is_none_or(|since| *ms <= since));
    let mut lines: Vec<DiskLine> = timed_disk_lines(desktop_log)
        .into_iter()
        .chain(on_server)
        .map(|(_, line)| line)
        .collect();
    lines.sort_by_key(|l| (l.bytes, l.sum, l.writes));
    lines.dedup_by_key(|l| (l.bytes, l.sum));
    lines
}

/// How many of the `promised` writes `content` does not hold.
pub fn lost(content: &[u8], promised: &[DiskLine]) -> u64 {
    promised.iter().filter(|l| !l.held_by(content)).count() as u64
}

/// How long to wait for the guest's next write where it runs, after the
/// case settled.
const NEXT_WRITE: Duration = Duration::from_secs(15);

/// Waits (up to 15 s) until the guest, where it runs (`at`), reports a
/// write after `after_ms` (host ms), so that the check covers the disk it
/// ends with being written, not only read. Whether it did: a guest whose
/// QEMU was left by a killed agent writes with nobody reading its console.
pub async fn next_write(cluster: &Cluster, at: Side, after_ms: u64) -> bool {
    let deadline = Instant::now() + NEXT_WRITE;
    let log = match at {
        Side::Desktop => 0,
        Side::Server => 1,
    };
    while Instant::now() < deadline {
        let logs = cluster.console_logs();
        if timed_disk_lines(&logs[log])
            .iter()
            .any(|(ms, _)| *ms > after_ms)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// How long reading the mail cache out of a disk may take (through the
/// lazy filesystem it may fetch a few blocks from the desktop).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Stops the VM where it runs (`at`) and reads its mail cache out of the
/// disk it ends with. At home: the agent is killed (so that it does not act
/// on its QEMU's end), then every QEMU on the desktop's memory file; what
/// the guest `fsync`ed is in the image file. On the server: the operator's
/// pause (the guest stops, the server keeps its disk's replica), then the
/// file is read through the lazy filesystem (blocks it never wrote come
/// from the desktop's image). Leaves the cluster fit only for teardown.
pub async fn read_final(cluster: &mut Cluster, at: Side) -> anyhow::Result<Vec<u8>> {
    let image = match at {
        Side::Desktop => {
            cluster.kill_agent();
            let needle = cluster.mem_path.display().to_string();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let pids = qemu_pids(&needle);
                if pids.is_empty() {
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "the desktop's QEMU did not die");
                for pid in pids {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            cluster.disk_path.clone().context("the VM has no disk")?
        }
        Side::Server => {
            let pause = Message::OpPause {
                vm: cluster.vm.clone(),
            };
            match cluster.server_request(pause).await? {
                Message::OpOk => {}
                other => bail!("pausing the VM on the server: {}", other.kind()),
            }
            cluster.mount_dir.join(format!("{}.disk.mem", cluster.vm))
        }
    };
    read_mail_cache(&image).await
}

async fn read_mail_cache(image: &Path) -> anyhow::Result<Vec<u8>> {
    let mut cmd = tokio::process::Command::from(cat_command(image, MAIL_CACHE));
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(READ_TIMEOUT, cmd.output())
        .await
        .with_context(|| format!("reading {} took over {READ_TIMEOUT:?}", image.display()))?
        .context("running debugfs (package e2fsprogs)")?;
    cat_output(out).with_context(|| format!("reading the mail cache of {}", image.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jettison_guest::disk::Fnv64;

    /// A console log of writes of `records` (appended in turn), from `ms`
    /// on, one per second, and the file they make.
    fn writes(records: &[&str], first: u64, ms: u64) -> (String, Vec<u8>) {
        let (mut log, mut file) = (String::new(), Vec::new());
        for (i, r) in records.iter().enumerate() {
            file.extend_from_slice(r.as_bytes());
            let mut sum = Fnv64::default();
            sum.update(&file);
            log += &format!(
                "{} JTS DISK writes={} bytes={} sum={:016x}\n{} JTS HB seq={i}\n",
                ms + 1000 * i as u64,
                first + i as u64,
                file.len(),
                sum.0,
                ms + 1000 * i as u64 + 1,
            );
        }
        (log, file)
    }

    #[test]
    fn every_write_is_promised_and_a_lost_one_is_counted() {
        let (home, _) = writes(&["a\n", "b\n"], 1, 1_000);
        let (both, file) = writes(&["a\n", "b\n", "c\n", "d\n"], 1, 1_000);
        // The server's log repeats none of home's lines: take its tail.
        let server: String = both.lines().skip(4).map(|l| format!("{l}\n")).collect();
        let p = promised(&home, &server, None);
        assert_eq!(p.iter().map(|l| l.writes).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(lost(&file, &p), 0);
        assert_eq!(lost(b"a\nb\nc\nd\nmore\n", &p), 0);
        assert_eq!(lost(b"a\nb\nc\n", &p), 1);
        assert_eq!(lost(b"a\nB\nc\nd\n", &p), 3);
        assert_eq!(lost(b"", &p), 4);
    }

    #[test]
    fn a_rollback_may_lose_only_the_servers_writes_after_the_step() {
        // Home wrote a, b; the guest stopped to leave; the server wrote c
        // after the step (10 s); the guest was rolled back and wrote c2 at
        // home.
        let (home, _) = writes(&["a\n", "b\n"], 1, 1_000);
        let (server, _) = writes(&["a\n", "b\n", "c\n"], 1, 8_000);
        let server: String = server.lines().skip(4).map(|l| format!("{l}\n")).collect();
        let server = server.replace("10000 JTS DISK", "12000 JTS DISK");
        let (after, file) = writes(&["a\n", "b\n", "c2\n"], 1, 30_000);
        let home = home
            + &after
                .lines()
                .skip(4)
                .map(|l| format!("{l}\n"))
                .collect::<String>();
        let strict = promised(&home, &server, None);
        assert_eq!(lost(&file, &strict), 1, "{strict:?}");
        let weak = promised(&home, &server, Some(10_000));
        assert_eq!(weak.len(), 3);
        assert_eq!(lost(&file, &weak), 0);
        // Home's writes are promised even so.
        assert_eq!(lost(b"a\nb\n", &weak), 1);
        // Server lines before the step (a return's) stay promised.
        assert_eq!(promised("", &server, Some(12_000)).len(), 1);
    }

    #[test]
    fn a_write_reported_twice_is_promised_once() {
        let (log, file) = writes(&["a\n", "b\n"], 1, 1_000);
        let p = promised(&log, &log, None);
        assert_eq!(p.len(), 2);
        assert_eq!(lost(&file, &p), 0);
        assert!(promised("", "1 JTS HB seq=1\n", None).is_empty());
    }
}
