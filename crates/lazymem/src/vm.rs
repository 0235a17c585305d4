//! One consolidated VM's memory: the local replica file and the page states.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::stats::Stats;
use crate::{LazyMemError, PageSource, PAGE_SIZE};

/// Not on the server yet.
pub(crate) const ABSENT: u8 = 0;
/// In the replica, identical to the desktop's copy.
pub(crate) const PRESENT: u8 = 1;
/// In the replica, written on the server (present + dirty).
pub(crate) const DIRTY: u8 = 2;
/// In the replica, fetched (ahead of use) and not read by the VM yet.
pub(crate) const UNREAD: u8 = 3;

/// Presence of every page, plus the pages whose fetch is under way.
#[derive(Debug)]
pub(crate) struct PageState {
    /// One of [`ABSENT`], [`PRESENT`], [`DIRTY`], [`UNREAD`] per page.
    pub(crate) pages: Vec<u8>,
    /// Pages being fetched; the receiver's channel closes when the fetch ends.
    pub(crate) inflight: HashMap<u64, watch::Receiver<()>>,
    /// Number of [`DIRTY`] pages.
    pub(crate) dirty: u64,
    /// Pages written since the last [`VmMemory::take_written`] (what the
    /// next checkpoint must copy).
    pub(crate) written: BTreeSet<u64>,
}

/// The memory of one consolidated VM as served by the mount.
///
/// Obtained from [`crate::LazyMemMount::add_vm`]; stays usable (for reading
/// the dirty pages) after the VM is removed from the mount, until dropped.
pub struct VmMemory {
    name: String,
    ino: u64,
    size: u64,
    created: SystemTime,
    replica: File,
    replica_path: PathBuf,
    state: Mutex<PageState>,
    pub(crate) source: Arc<dyn PageSource>,
    pub(crate) stats: Stats,
    /// Neighbourhood group size in pages (at least 1).
    pub(crate) group: u64,
    /// The working set to fetch at the first miss; taken by that miss.
    working_set: Mutex<Option<Vec<u64>>>,
    cancelled: AtomicBool,
    /// Owner of the file in the mount, `uid << 32 | gid` (root at first).
    owner: AtomicU64,
}

impl fmt::Debug for VmMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VmMemory")
            .field("name", &self.name)
            .field("ino", &self.ino)
            .field("size", &self.size)
            .field("replica", &self.replica_path)
            .finish_non_exhaustive()
    }
}

impl VmMemory {
    /// Creates the VM's state with a fresh replica at `replica_path`:
    /// sparse, or with all its blocks allocated if `reserve`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: &str,
        ino: u64,
        size: u64,
        replica_path: &Path,
        source: Arc<dyn PageSource>,
        group: u64,
        working_set: Vec<u64>,
        reserve: bool,
        observer: Option<Arc<dyn crate::MemObserver>>,
    ) -> Result<Self, LazyMemError> {
        let ctx = || format!("replica {}", replica_path.display());
        let replica = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(replica_path)
            .map_err(|e| LazyMemError::io(ctx(), e))?;
        replica
            .set_len(size)
            .map_err(|e| LazyMemError::io(ctx(), e))?;
        if reserve {
            if let Err(e) = reserve_blocks(&replica, size) {
                let _ = std::fs::remove_file(replica_path);
                return Err(LazyMemError::io(
                    format!(
                        "reserving {size} bytes for replica {}",
                        replica_path.display()
                    ),
                    e,
                ));
            }
        }
        let npages = usize::try_from(size / PAGE_SIZE).map_err(|_| LazyMemError::BadSize(size))?;
        Ok(Self {
            name: name.to_owned(),
            ino,
            size,
            created: SystemTime::now(),
            replica,
            replica_path: replica_path.to_owned(),
            state: Mutex::new(PageState {
                pages: vec![ABSENT; npages],
                inflight: HashMap::new(),
                dirty: 0,
                written: BTreeSet::new(),
            }),
            source,
            stats: Stats::new(observer.map(|o| (name.to_owned(), o))),
            group: group.max(1),
            working_set: Mutex::new(Some(working_set)),
            cancelled: AtomicBool::new(false),
            owner: AtomicU64::new(0),
        })
    }

    /// Gives the file to `uid`:`gid` (mode 0600): with the mount's
    /// `allow_other` and `default_permissions`, a process of that user may
    /// open it, and no other user but root may. Set before the VM's QEMU,
    /// running as that user, opens it.
    pub fn set_owner(&self, uid: u32, gid: u32) {
        self.owner
            .store(u64::from(uid) << 32 | u64::from(gid), Ordering::SeqCst);
    }

    /// The file's owner, `(uid, gid)`.
    pub fn owner(&self) -> (u32, u32) {
        let o = self.owner.load(Ordering::SeqCst);
        ((o >> 32) as u32, o as u32)
    }

    /// The VM's name (the file is `<name>.mem`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Memory size in bytes (the file's size).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Path of the local replica file.
    pub fn replica_path(&self) -> &Path {
        &self.replica_path
    }

    /// Number of pages.
    pub fn pages(&self) -> u64 {
        self.size / PAGE_SIZE
    }

    /// A snapshot of the VM's counters.
    pub fn stats(&self) -> jettison_wire::VmMemStats {
        let dirty = self.lock_state().dirty;
        self.stats.snapshot(dirty)
    }

    /// Pages written on the server (page numbers, ascending). Call after
    /// `fsync` of the file so that every guest write has reached the daemon.
    pub fn dirty_pages(&self) -> Vec<u64> {
        let st = self.lock_state();
        (0u64..)
            .zip(&st.pages)
            .filter(|(_, s)| **s == DIRTY)
            .map(|(p, _)| p)
            .collect()
    }

    /// Pages written since the previous call (or since the VM was added),
    /// ascending, and starts a new interval: what a checkpoint copies. Call
    /// with the VM stopped and after `fsync` of the file.
    pub fn take_written(&self) -> Vec<u64> {
        std::mem::take(&mut self.lock_state().written)
            .into_iter()
            .collect()
    }

    /// Puts a page restored from a checkpoint: stored in the replica as
    /// written on the server ([`DIRTY`], so it goes home with the others),
    /// and not counted as written since the checkpoint. For a VM added
    /// with no QEMU on its file yet.
    pub fn put_restored(&self, page: u64, data: &[u8]) -> io::Result<()> {
        let data = data
            .get(..PAGE_SIZE as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "data below a page"))?;
        let mut st = self.lock_state();
        let state =
            st.pages.get(page as usize).copied().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "page beyond the end")
            })?;
        self.replica.write_all_at(data, page * PAGE_SIZE)?;
        if state != DIRTY {
            st.pages[page as usize] = DIRTY;
            st.dirty += 1;
        }
        Ok(())
    }

    /// Reads one page from the replica into `buf` (at least [`PAGE_SIZE`]
    /// bytes); an error if the page is not on the server.
    pub fn read_page(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        let buf = buf
            .get_mut(..PAGE_SIZE as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "buffer below a page"))?;
        let st = self.lock_state();
        match st.pages.get(page as usize) {
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "page beyond the end",
            )),
            Some(&ABSENT) => Err(io::Error::new(io::ErrorKind::NotFound, "page not present")),
            Some(_) => self.replica.read_exact_at(buf, page * PAGE_SIZE),
        }
    }

    /// Page numbers in the order they were fetched from the source.
    pub fn fetched_pages(&self) -> Vec<u64> {
        self.stats.fetched_pages()
    }

    /// The pages the VM used: those fetched from the source (in fetch order)
    /// that it then read or wrote, leaving out pages fetched ahead (by a
    /// neighbourhood group or a working set) and never touched. This is the
    /// period's working set to record.
    pub fn used_pages(&self) -> Vec<u64> {
        let fetched = self.fetched_pages();
        let st = self.lock_state();
        fetched
            .into_iter()
            .filter(|&p| st.pages.get(p as usize).is_some_and(|s| *s != UNREAD))
            .collect()
    }

    /// Takes the working set to prefetch: `Some` (non-empty) at the VM's
    /// first call only.
    pub(crate) fn take_working_set(&self) -> Option<Vec<u64>> {
        let mut ws = self.working_set.lock().unwrap_or_else(|p| p.into_inner());
        ws.take().filter(|w| !w.is_empty())
    }

    /// Whether `page` is on the server (fetched or written).
    pub fn is_present(&self, page: u64) -> bool {
        self.lock_state()
            .pages
            .get(page as usize)
            .is_some_and(|s| *s != ABSENT)
    }

    pub(crate) fn ino(&self) -> u64 {
        self.ino
    }

    pub(crate) fn created(&self) -> SystemTime {
        self.created
    }

    pub(crate) fn lock_state(&self) -> MutexGuard<'_, PageState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops pending and future fetches (the VM is being removed or unmounted).
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Clamps a request to the file: the byte count available at `offset`.
    pub(crate) fn clamp(&self, offset: u64, len: u64) -> u64 {
        len.min(self.size.saturating_sub(offset))
    }

    /// Reads `len` bytes at `offset` if every page they touch is present.
    /// `len` must already be clamped and non-zero.
    /// The pages read are marked used (no longer [`UNREAD`]).
    pub(crate) fn read_if_present(&self, offset: u64, len: u64) -> Option<io::Result<Vec<u8>>> {
        let mut st = self.lock_state();
        let all = page_range(offset, len).all(|p| st.pages[p as usize] != ABSENT);
        if !all {
            return None;
        }
        for p in page_range(offset, len) {
            let s = &mut st.pages[p as usize];
            if *s == UNREAD {
                *s = PRESENT;
            }
        }
        Some(self.read_locked(offset, len))
    }

    /// Reads `len` bytes at `offset`, every touched page being present.
    pub(crate) fn read_present(&self, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        self.read_if_present(offset, len)
            .unwrap_or_else(|| Err(io::Error::other("page vanished after fetch")))
    }

    fn read_locked(&self, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len as usize];
        self.replica.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// Pages only partly covered by a write at `offset` that are absent:
    /// they must be fetched before the write can patch them.
    pub(crate) fn partial_absent(&self, offset: u64, len: u64) -> Vec<u64> {
        let end = offset + len;
        let st = self.lock_state();
        page_range(offset, len)
            .filter(|&p| offset > p * PAGE_SIZE || end < (p + 1) * PAGE_SIZE)
            .filter(|&p| st.pages[p as usize] == ABSENT)
            .collect()
    }

    /// Writes `data` at `offset` to the replica and marks the pages dirty.
    /// Partly covered pages must be present (see [`Self::partial_absent`]).
    pub(crate) fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut st = self.lock_state();
        self.replica.write_all_at(data, offset)?;
        for p in page_range(offset, data.len() as u64) {
            let s = &mut st.pages[p as usize];
            if *s != DIRTY {
                *s = DIRTY;
                st.dirty += 1;
            }
            st.written.insert(p);
        }
        Ok(())
    }

    /// Stores fetched pages starting at page `first` as [`UNREAD`],
    /// skipping pages that became present meanwhile (a write must never be
    /// overwritten).
    pub(crate) fn store_fetched(&self, first: u64, data: &[u8]) -> io::Result<()> {
        let mut st = self.lock_state();
        for (p, chunk) in (first..).zip(data.chunks(PAGE_SIZE as usize)) {
            if st.pages[p as usize] == ABSENT {
                self.replica.write_all_at(chunk, p * PAGE_SIZE)?;
                st.pages[p as usize] = UNREAD;
            }
        }
        Ok(())
    }
}

/// Page numbers touched by `len` (> 0) bytes at `offset`.
pub(crate) fn page_range(offset: u64, len: u64) -> std::ops::Range<u64> {
    offset / PAGE_SIZE..(offset + len).div_ceil(PAGE_SIZE)
}

/// Allocates every block of `file` up to `size` (reads still give zeros).
fn reserve_blocks(file: &File, size: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = i64::try_from(size).map_err(std::io::Error::other)?;
    nix::fcntl::fallocate(
        file.as_raw_fd(),
        nix::fcntl::FallocateFlags::empty(),
        0,
        len,
    )
    .map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoSource;
    impl PageSource for NoSource {
        fn fetch(
            &self,
            _: u64,
            _: u64,
        ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, crate::FetchError>> {
            Box::pin(async { Err(crate::FetchError::new("no source in this test")) })
        }
    }

    fn vm(dir: &Path) -> VmMemory {
        let replica = dir.join("vm.replica");
        VmMemory::new(
            "vm",
            2,
            8 * PAGE_SIZE,
            &replica,
            Arc::new(NoSource),
            1,
            vec![],
            false,
            None,
        )
        .unwrap()
    }

    #[test]
    fn writes_are_taken_once_per_checkpoint_interval() {
        let dir = tempfile::tempdir().unwrap();
        let m = vm(dir.path());
        m.write(PAGE_SIZE, &vec![1u8; PAGE_SIZE as usize]).unwrap();
        m.write(5 * PAGE_SIZE + 10, b"xy").unwrap();
        assert_eq!(m.take_written(), [1, 5]);
        assert!(m.take_written().is_empty(), "a new interval starts empty");
        m.write(PAGE_SIZE, b"again").unwrap();
        assert_eq!(m.take_written(), [1]);
        assert_eq!(m.dirty_pages(), [1, 5], "dirty pages stay dirty");
    }

    #[test]
    fn restored_pages_are_dirty_readable_and_not_written_since() {
        let dir = tempfile::tempdir().unwrap();
        let m = vm(dir.path());
        let page = vec![7u8; PAGE_SIZE as usize];
        m.put_restored(3, &page).unwrap();
        m.put_restored(3, &page).unwrap();
        assert_eq!(m.dirty_pages(), [3]);
        assert_eq!(
            m.stats().dirty_pages,
            1,
            "a page restored twice counts once"
        );
        assert!(m.take_written().is_empty());
        let mut buf = vec![0u8; PAGE_SIZE as usize];
        m.read_page(3, &mut buf).unwrap();
        assert_eq!(buf, page);
        assert!(m.put_restored(8, &page).is_err(), "beyond the end");
        assert!(m.put_restored(0, b"short").is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(page_range(0, 1), 0..1);
        assert_eq!(page_range(4095, 2), 0..2);
        assert_eq!(page_range(4096, 4096), 1..2);
        assert_eq!(page_range(4096, 8193), 1..4);
    }
}
