//! Server memory per consolidated VM: what the server daemon, the VM's QEMU,
//! the replica file and the page cache hold, against the VM's memory.

use std::os::unix::fs::MetadataExt;

use anyhow::Context;

use jettison_demo::procs::qemu_pids;

use crate::fleet::Fleet;
use crate::results::ServerMemory;

/// `VmRSS` of a process, in bytes.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .with_context(|| format!("no VmRSS for pid {pid}"))
}

/// Bytes of `path` in the page cache (util-linux `fincore`).
pub(crate) fn page_cache_bytes(path: &std::path::Path) -> anyhow::Result<u64> {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .context("running fincore (package util-linux)")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| {
            format!(
                "fincore {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Measures VM `i` (of `memory_mib`) while it is consolidated.
pub async fn server_memory(
    fleet: &Fleet,
    i: usize,
    memory_mib: u64,
) -> anyhow::Result<ServerMemory> {
    let vm = &fleet.desktops[i].vm;
    let lazy = fleet.lazy_file(i);
    let fetched = fleet
        .server_status()
        .await?
        .into_iter()
        .find(|s| &s.vm == vm)
        .and_then(|s| s.memory)
        .map_or(0, |m| m.bytes_fetched);
    let daemon = fleet.server_pid().map(rss_bytes).transpose()?.unwrap_or(0);
    let qemu = qemu_pids(&lazy.display().to_string())
        .first()
        .map(|&pid| rss_bytes(pid as u32))
        .transpose()?
        .unwrap_or(0);
    let replica = fleet.replica_dir.join(format!("{vm}.replica"));
    let replica_bytes = std::fs::metadata(&replica)
        .with_context(|| format!("replica {}", replica.display()))?
        .blocks()
        * 512;
    let vm_bytes = memory_mib << 20;
    Ok(ServerMemory {
        memory_mib,
        fetched_bytes: fetched,
        daemon_rss_bytes: daemon,
        qemu_rss_bytes: qemu,
        replica_bytes,
        page_cache_bytes: page_cache_bytes(&lazy)?,
        // The replica is allocated whole when the VM arrives (so that a full
        // disk fails no running VM): what it holds of the VM is what was
        // fetched.
        fraction_of_vm: (qemu + fetched) as f64 / vm_bytes as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_rss_and_page_cache() {
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
        let exe = std::env::current_exe().unwrap();
        // Our own executable is mapped, so some of it is cached.
        assert!(page_cache_bytes(&exe).unwrap() > 0);
    }
}
