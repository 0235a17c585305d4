//! The server-side FUSE filesystem that serves consolidated VMs' memory lazily.
//!
//! One mount (a directory) holds one file `<vm>.mem` per consolidated VM, of
//! the VM's memory size. The server's QEMU maps that file `MAP_SHARED`
//! (`memory-backend-file,share=on`), so:
//!
//! * a guest touch of a page the server does not have becomes a FUSE `READ`;
//!   the daemon fetches the page from the VM's [`PageSource`] (the desktop's
//!   state server), stores it in the VM's local *replica* file and answers;
//! * guest writes come back as FUSE `WRITE`s at writeback (`fsync` of the file
//!   forces them), so the daemon knows every dirty page
//!   ([`VmMemory::dirty_pages`]).
//!
//! # Invariants
//!
//! * A page is fetched from the desktop at most once. The kernel may drop clean
//!   pages of the file at any time and read them again; they then come from the
//!   replica. Concurrent misses of one page share one fetch.
//! * A late fetch never overwrites a page that a write made present meanwhile.
//! * A fault never gets zero-filled data: a failing fetch is retried with
//!   backoff (50 ms doubling, capped at 2 s) for as long as the VM exists.
//! * The FUSE session thread never waits on the network: misses are served by
//!   tasks on the tokio runtime given at mount time.
//! * The daemon never touches QEMU's mapping, only its own replica files.
//!
//! # Prefetching
//!
//! [`MountOptions::prefetch`] (a [`PrefetchConfig`], pure policy code shared
//! with the simulator) decides what a miss fetches besides its page:
//!
//! * neighbourhood: the absent pages of the aligned group around the miss,
//!   in one fetch;
//! * working set: a VM added with the pages it used in earlier periods
//!   ([`LazyMemMount::add_vm_with_history`]) fetches, at its first miss,
//!   the faulting page's group first and replies, then the recorded working
//!   set ([`PrefetchConfig::first_wake`]) while the desktop is still awake:
//!   runs of consecutive absent pages, one fetch per run (at most
//!   [`jettison_wire::MAX_FETCH_BYTES`] each), each claimed in flight before
//!   the first fetch, so that a fault on one of them waits for its run.
//!
//! # Pulling
//!
//! [`VmMemory::pull_absent`] fetches every absent page of a file in the
//! background, rate-limited ([`paced`]), in claimed runs as the working-set
//! prefetch does (fetch-once, the same retry, never zero-filled), holding no
//! lock across a fetch so that faults keep going: the server's answer to a
//! wake storm (its `[pull]` policy decides when).
//!
//! Pages fetched ahead and never read stay marked *unread*:
//! [`VmMemory::used_pages`] leaves them out, so a working set recorded from
//! it holds the pages the VM really used, not what was prefetched for it.
//!
//! # Kernel settings
//!
//! * `max_readahead` defaults to 0: the kernel's readahead is switched off, so
//!   a guest fault is a READ of exactly the faulting page. The kernel default
//!   (128 KiB) would turn every fault into a 32-page fetch; prefetching is the
//!   job of a policy, expressed through [`MountOptions::prefetch`].
//!   Caveat: a mapping advised `MADV_HUGEPAGE` (QEMU does this for all guest
//!   RAM) takes the kernel's THP fault path, which reads two 2 MiB folios per
//!   fault whatever `max_readahead` says (see `tests/qemu_smoke.rs`).
//! * No FUSE writeback cache: writes from a shared mapping always go through
//!   the page cache and reach the daemon at writeback anyway; for `write(2)`
//!   write-through keeps the daemon's dirty set exact at once, and avoids the
//!   kernel's read-modify-write READs and its ownership of size and mtime.
//! * Files are opened with `FOPEN_KEEP_CACHE` (the daemon is the only source
//!   of the content, so the kernel's cache never goes stale); without it every
//!   `open` (e.g. the one made to `fsync` the file) would invalidate the page
//!   cache under QEMU's mapping. No `direct_io`: `mmap` needs the page cache.
#![forbid(unsafe_code)]

mod fault;
mod fs;
mod mount;
mod pull;
mod registry;
mod serve;
mod stale;
mod stats;
mod vm;

use std::io;
use std::path::PathBuf;

use futures::future::BoxFuture;

pub use fault::runs as page_runs;
pub use jettison_power_model::PrefetchConfig;
pub use mount::LazyMemMount;
pub use pull::{paced, PullDone, PullError};
pub use serve::FAULT_LATENCY_TARGET;
pub use stats::MemObserver;
pub use vm::VmMemory;

/// Size of a page: the unit of presence, fetching and dirty tracking.
pub const PAGE_SIZE: u64 = 4096;

/// Where a VM's memory comes from: the desktop's state server.
pub trait PageSource: Send + Sync + 'static {
    /// Fetch `len` bytes at `offset` (both page-aligned) of the VM's memory from the desktop.
    ///
    /// The future must yield exactly `len` bytes; a shorter reply is treated
    /// as a failure and retried.
    fn fetch(&self, offset: u64, len: u64) -> BoxFuture<'static, Result<Vec<u8>, FetchError>>;
}

/// A failed fetch from a [`PageSource`] (network error, refusal, short reply).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

impl FetchError {
    /// Creates an error carrying `msg`.
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// Errors of the lazy memory filesystem's management API.
#[derive(Debug, thiserror::Error)]
pub enum LazyMemError {
    /// A file name other than 1 to 100 characters, parts of `[A-Za-z0-9_-]` joined by `.`.
    #[error(
        "invalid file name {0:?} (allowed: 1-100 characters, parts of [A-Za-z0-9_-] joined by '.')"
    )]
    BadName(String),
    /// A memory size that is zero or not a multiple of [`PAGE_SIZE`].
    #[error("invalid memory size {0} (must be a non-zero multiple of {PAGE_SIZE})")]
    BadSize(u64),
    /// A VM of this name is already served.
    #[error("VM {0:?} already exists")]
    Exists(String),
    /// No VM of this name is served.
    #[error("no such VM {0:?}")]
    NotFound(String),
    /// Something other than a FUSE filesystem is mounted at the mountpoint.
    #[error("{path} holds a non-FUSE mount ({fstype}); refusing to unmount it")]
    ForeignMount {
        /// The mountpoint.
        path: PathBuf,
        /// Filesystem type found there.
        fstype: String,
    },
    /// Mounting or unmounting failed.
    #[error("{op} {path}: {source}")]
    Mount {
        /// What was attempted.
        op: &'static str,
        /// The mountpoint.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// A local I/O error (replica file, mountpoint).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        source: io::Error,
    },
}

impl LazyMemError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Options of one mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountOptions {
    /// Kernel readahead in bytes, given to the kernel in the FUSE init reply.
    /// The kernel uses `max_readahead / 4096` pages, so any value below 4096
    /// (the default, 0) disables readahead: a fault reads exactly one page.
    pub max_readahead: u32,
    /// What a miss fetches besides its page (see the module documentation):
    /// the aligned group of [`PrefetchConfig::group_pages`] around it (only
    /// the absent ones), and at a VM's first miss its recorded working set.
    pub prefetch: PrefetchConfig,
    /// Allocate each replica's blocks when the VM is added (`fallocate`),
    /// instead of leaving it sparse: then a full filesystem refuses a new
    /// VM (`add_vm` fails, nothing kept) and never fails a running VM's
    /// page store or write later. Needs a filesystem with `fallocate`
    /// (ext4, xfs, btrfs, tmpfs).
    pub reserve_replicas: bool,
}

impl Default for MountOptions {
    /// No readahead, no prefetching: a miss fetches its page only; sparse
    /// replicas.
    fn default() -> Self {
        Self {
            max_readahead: 0,
            prefetch: PrefetchConfig::None,
            reserve_replicas: false,
        }
    }
}

/// Checks a file's name (its stem: a VM name, or one with a suffix such as
/// `.disk`): 1 to 100 characters, non-empty parts of `[A-Za-z0-9_-]`
/// joined by `.` (so no hidden file, no `.` or `..`, and never a `/`).
pub(crate) fn valid_name(name: &str) -> bool {
    name.len() <= 100
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("vm-1_A"));
        assert!(valid_name("vm-1_A.disk"));
        for bad in [
            "",
            "a/b",
            "..",
            ".",
            ".hidden",
            "x.",
            "a..b",
            "ä",
            &"x".repeat(101),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
