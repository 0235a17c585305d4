//! A cgroup (v1) of the bench's own, in the `memory` and `cpuacct`
//! hierarchies, that the measured processes join: its memory accounting
//! (anonymous memory, page cache and shmem each charged once, to the group
//! whose task brought the page in) and its CPU time. Charges do not move
//! with a task (this kernel has no `memory.move_charge_at_immigrate`): a
//! task joins before it allocates what is measured. Unique name; removed on
//! drop (members moved back to the root first), also on failure.

use std::path::{Path, PathBuf};

use anyhow::Context;

const ROOT: &str = "/sys/fs/cgroup";
const CONTROLLERS: [&str; 2] = ["memory", "cpuacct"];

/// The group in both hierarchies.
#[derive(Debug)]
pub struct BenchCgroup {
    name: String,
    dirs: Vec<PathBuf>,
}

impl BenchCgroup {
    /// Creates `jettison-bench-<tag>-<pid>-<n>` in both hierarchies.
    pub fn create(tag: &str) -> anyhow::Result<BenchCgroup> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("jettison-bench-{tag}-{}-{n}", std::process::id());
        let mut group = BenchCgroup {
            name,
            dirs: Vec::new(),
        };
        for c in CONTROLLERS {
            let dir = Path::new(ROOT).join(c).join(&group.name);
            std::fs::create_dir(&dir)
                .with_context(|| format!("creating cgroup {} (v1 {c} hierarchy)", dir.display()))?;
            group.dirs.push(dir);
        }
        Ok(group)
    }

    fn dir(&self, controller: &str) -> &Path {
        let i = CONTROLLERS.iter().position(|c| *c == controller);
        &self.dirs[i.expect("a controller of the group")]
    }

    fn read(&self, controller: &str, file: &str) -> anyhow::Result<String> {
        let p = self.dir(controller).join(file);
        std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
    }

    /// The group's name (the same in both hierarchies).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `cgroup.procs` files a shell can write `$$` to, to join the group
    /// before it `exec`s what is measured.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Moves process `pid` (all its threads) into the group.
    pub fn add(&self, pid: u32) -> anyhow::Result<()> {
        for c in CONTROLLERS {
            let p = self.dir(c).join("cgroup.procs");
            std::fs::write(&p, pid.to_string())
                .with_context(|| format!("moving {pid} into {}", p.display()))?;
        }
        Ok(())
    }

    /// Whether process `pid` is in the group (both hierarchies).
    pub fn contains(&self, pid: u32) -> bool {
        let procs = |c| self.read(c, "cgroup.procs").unwrap_or_default();
        let pid = pid.to_string();
        CONTROLLERS
            .iter()
            .all(|c| procs(c).lines().any(|l| l.trim() == pid))
    }

    /// `memory.stat` of the group.
    pub fn memory_stat(&self) -> anyhow::Result<String> {
        self.read("memory", "memory.stat")
    }

    /// `memory.usage_in_bytes` of the group.
    pub fn memory_usage(&self) -> anyhow::Result<u64> {
        Ok(self
            .read("memory", "memory.usage_in_bytes")?
            .trim()
            .parse()?)
    }

    /// CPU time the group's tasks consumed so far, ns (`cpuacct.usage`).
    pub fn cpu_ns(&self) -> anyhow::Result<u64> {
        Ok(self.read("cpuacct", "cpuacct.usage")?.trim().parse()?)
    }
}

impl Drop for BenchCgroup {
    fn drop(&mut self) {
        for (c, dir) in CONTROLLERS.iter().zip(&self.dirs) {
            let root = Path::new(ROOT).join(c).join("cgroup.procs");
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines() {
                let _ = std::fs::write(&root, pid.trim());
            }
            if let Err(e) = std::fs::remove_dir(dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "cgroup not removed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_joins_is_charged_and_the_group_goes_away() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: cgroups need root");
            return;
        }
        let group = BenchCgroup::create("unit").unwrap();
        let dirs = group.dirs.clone();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        group.add(child.id()).unwrap();
        assert!(group.contains(child.id()));
        assert!(!group.contains(std::process::id()));
        let _ = group.cpu_ns().unwrap();
        assert!(group.memory_stat().unwrap().contains("total_rss "));
        let _ = group.memory_usage().unwrap();
        drop(group);
        // The living member went back to the root; the group is gone.
        assert!(dirs.iter().all(|d| !d.exists()));
        let _ = child.kill();
        let _ = child.wait();
    }
}
