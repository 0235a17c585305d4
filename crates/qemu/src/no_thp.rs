//! Spawning QEMU so that its guest RAM is not advised as huge-page memory.
//!
//! QEMU calls `madvise(MADV_HUGEPAGE)` on every RAM block. On a file mapping
//! the kernel then serves a fault with huge-page readahead (two 2 MiB blocks,
//! "even if readahead is disabled"), whatever the filesystem's
//! `max_readahead` says. For the server's lazy memory file that would turn
//! every guest fault into a 4 MiB fetch from the desktop. So the server's QEMU
//! is started from a thread carrying a seccomp filter under which exactly
//! that `madvise` call fails with `EINVAL` (QEMU ignores the failure); the
//! filter is inherited by the child and kept across `execve`. Everything else
//! is allowed.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// `MADV_HUGEPAGE` from `<linux/mman.h>`.
const MADV_HUGEPAGE: u64 = 14;

/// The filter: `madvise(_, _, MADV_HUGEPAGE)` fails with `EINVAL`.
pub(crate) fn filter() -> Result<BpfProgram, String> {
    let cond = SeccompCondition::new(2, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, MADV_HUGEPAGE)
        .map_err(|e| e.to_string())?;
    let rule = SeccompRule::new(vec![cond]).map_err(|e| e.to_string())?;
    let rules = BTreeMap::from([(libc_madvise(), vec![rule])]);
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    let f = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(22), arch)
        .map_err(|e| e.to_string())?;
    f.try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())
}

/// The `madvise` system call number on this architecture.
fn libc_madvise() -> i64 {
    #[cfg(target_arch = "x86_64")]
    {
        28
    }
    #[cfg(target_arch = "aarch64")]
    {
        233
    }
}

/// Runs `spawn` on a fresh thread that first installs [`filter`]; the thread
/// ends afterwards, so the filter stays with the child only.
pub(crate) fn spawn_filtered<T: Send + 'static>(
    spawn: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let runtime = tokio::runtime::Handle::try_current().ok();
    std::thread::spawn(move || {
        let _guard = runtime.as_ref().map(|r| r.enter());
        let prog = filter().map_err(std::io::Error::other)?;
        seccompiler::apply_filter(&prog)
            .map_err(|e| std::io::Error::other(format!("seccomp: {e}")))?;
        spawn()
    })
    .join()
    .map_err(|_| std::io::Error::other("QEMU spawner thread panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADVISE: &str = "import mmap\nm = mmap.mmap(-1, 4 << 20)\nm.madvise(mmap.MADV_HUGEPAGE)\nm.madvise(mmap.MADV_DONTNEED)\n";

    fn python() -> std::process::Command {
        let mut c = std::process::Command::new("python3");
        c.arg("-c")
            .arg(ADVISE)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        c
    }

    #[test]
    fn hugepage_advice_fails_only_under_the_filter() {
        let plain = python().output().unwrap();
        assert!(
            plain.status.success(),
            "{}",
            String::from_utf8_lossy(&plain.stderr)
        );
        let filtered = spawn_filtered(|| python().spawn())
            .unwrap()
            .wait_with_output()
            .unwrap();
        assert!(
            !filtered.status.success(),
            "MADV_HUGEPAGE must fail under the filter"
        );
        let err = String::from_utf8_lossy(&filtered.stderr);
        assert!(err.contains("Invalid argument"), "{err}");
        // The calling thread is not filtered.
        assert!(python().output().unwrap().status.success());
    }
}
