//! What exists on the server for its VMs: links in its network namespace,
//! files in its mount, replica, run and state directories, and QEMU
//! processes on its lazy files. Snapshots before and after an attack, and a
//! watcher sampling meanwhile, tell what the attack created (even for a
//! moment: a QEMU that started and failed leaves no trace afterwards) and
//! what it removed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jettison_testbed::Host;

/// One thing on the server (`link <name>`, `file <dir>/<path>`,
/// `qemu <pid> <name>`).
pub type Item = String;

/// A snapshot.
pub type Footprint = BTreeSet<Item>;

/// What changed across an attack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// Items that appeared at any moment (and were not there before).
    pub created: Vec<Item>,
    /// Items that were there before and are gone after.
    pub removed: Vec<Item>,
}

/// Compares `before` with everything `seen` during and after the attack,
/// and with what is there `after`; `removable` says which vanished items
/// count (the victim's).
pub fn change(
    before: &Footprint,
    seen: &Footprint,
    after: &Footprint,
    removable: &Footprint,
) -> Change {
    Change {
        created: seen
            .union(after)
            .filter(|i| !before.contains(*i))
            .cloned()
            .collect(),
        removed: removable
            .iter()
            .filter(|i| before.contains(*i) && !after.contains(*i))
            .cloned()
            .collect(),
    }
}

/// Where the server keeps what it makes for a VM.
#[derive(Debug, Clone)]
pub struct ServerPlaces {
    /// The server's test host (its namespace has the taps).
    pub host: Host,
    /// Directories to list, by a short label: mount, replica, run, state.
    pub dirs: Vec<(String, PathBuf)>,
    /// QEMUs whose command line names this path are the server's.
    pub qemu_marker: String,
}

impl ServerPlaces {
    /// The places of a cluster's server (its work directory's layout).
    pub fn of(host: Host, work_dir: &Path, mount_dir: &Path) -> Self {
        ServerPlaces {
            host,
            dirs: vec![
                ("mnt".into(), mount_dir.to_owned()),
                ("replica".into(), work_dir.join("replica")),
                ("server-run".into(), work_dir.join("server-run")),
                ("server-state".into(), work_dir.join("server-state")),
            ],
            qemu_marker: mount_dir.display().to_string(),
        }
    }

    /// A snapshot; call it on a thread inside the server's namespace (see
    /// [`ServerPlaces::snapshot`]) for the links to be the server's.
    fn sample_here(&self) -> Footprint {
        let mut f = Footprint::new();
        if let Ok(dev) = std::fs::read_to_string("/proc/thread-self/net/dev") {
            f.extend(links(&dev).into_iter().map(|l| format!("link {l}")));
        }
        for (label, dir) in &self.dirs {
            list(dir, label, &mut f);
        }
        f.extend(
            qemus(&self.qemu_marker)
                .into_iter()
                .map(|(pid, name)| format!("qemu {pid} {name}")),
        );
        f
    }

    /// A snapshot of the server now.
    pub fn snapshot(&self) -> anyhow::Result<Footprint> {
        let me = self.clone();
        Ok(self.host.run_in(move || me.sample_here())?)
    }

    /// Starts sampling every 50 ms until the watcher is finished.
    pub fn watch(&self) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Footprint::new()));
        let (me, s, seen2) = (self.clone(), stop.clone(), seen.clone());
        let host = self.host.clone();
        let thread = std::thread::spawn(move || {
            let _ = host.run_in(move || {
                while !s.load(Ordering::SeqCst) {
                    let sample = me.sample_here();
                    seen2
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(sample);
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        });
        Watcher {
            stop,
            seen,
            thread: Some(thread),
        }
    }
}

/// A running sampler of the server's footprint.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Footprint>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Stops sampling; everything seen.
    pub fn finish(mut self) -> Footprint {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Interface names of a `/proc/net/dev` listing.
pub fn links(dev: &str) -> Vec<String> {
    dev.lines()
        .skip(2)
        .filter_map(|l| Some(l.split_once(':')?.0.trim().to_string()))
        .filter(|n| !n.is_empty())
        .collect()
}

/// Lists `dir` recursively into `out` as `file <label>/<relative path>`;
/// checkpoints churn by themselves and are left out.
fn list(dir: &Path, label: &str, out: &mut Footprint) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = format!("{label}/{name}");
        if rel == "server-state/checkpoints" {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            list(&e.path(), &rel, out);
        } else {
            out.insert(format!("file {rel}"));
        }
    }
}

/// QEMU processes whose command line names `marker`: pid and `-name`.
pub fn qemus(marker: &str) -> Vec<(i32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            qemu_name(&args, marker).map(|n| (pid, n))
        })
        .collect()
}

/// The `-name` of a QEMU command line that names `marker`.
pub fn qemu_name(args: &[String], marker: &str) -> Option<String> {
    let prog = args.first()?;
    let base = prog.rsplit('/').next().unwrap_or(prog);
    if !base.starts_with("qemu-system") || !args.iter().any(|a| a.contains(marker)) {
        return None;
    }
    let name = args
        .iter()
        .position(|a| a == "-name")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.split(',').next().unwrap_or(n).to_string())
        .unwrap_or_default();
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> Footprint {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_transient_item_counts_as_created() {
        let before = set(&["link br0", "file mnt/v.mem"]);
        let seen = set(&["link br0", "file mnt/v.mem", "qemu 7 x", "link jtapx"]);
        let after = set(&["link br0", "file mnt/v.mem", "file server-run/x.log"]);
        let c = change(&before, &seen, &after, &before);
        assert_eq!(
            c.created,
            vec!["file server-run/x.log", "link jtapx", "qemu 7 x"]
        );
        assert!(c.removed.is_empty());
    }

    #[test]
    fn only_the_victims_items_count_as_removed() {
        let before = set(&["file mnt/v.mem", "file mnt/v-disk.mem", "file mnt/old.mem"]);
        let after = set(&["file mnt/v.mem"]);
        let victim = set(&["file mnt/v.mem", "file mnt/v-disk.mem"]);
        let c = change(&before, &after, &after, &victim);
        assert_eq!(c.removed, vec!["file mnt/v-disk.mem"]);
        assert!(c.created.is_empty());
    }

    #[test]
    fn parses_links_and_qemu_command_lines() {
        let dev = "Inter-|   Receive\n face |bytes\n    lo: 0 0\n  br0: 1 2\njtap0123456789: 3\n";
        assert_eq!(links(dev), vec!["lo", "br0", "jtap0123456789"]);
        let args: Vec<String> = [
            "/usr/bin/qemu-system-x86_64",
            "-name",
            "vm1,debug-threads=on",
            "-object",
            "memory-backend-file,mem-path=/w/mnt/vm1.mem",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(qemu_name(&args, "/w/mnt"), Some("vm1".into()));
        assert_eq!(qemu_name(&args, "/elsewhere"), None);
        let not_qemu: Vec<String> = vec!["bash".into(), "/w/mnt".into()];
        assert_eq!(qemu_name(&not_qemu, "/w/mnt"), None);
    }
}
