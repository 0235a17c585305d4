//! The boot files a server boots, found by content: an index of the regular
//! files directly in its `image_dirs`, by BLAKE3 digest. A desktop names a
//! boot file only by digest (and a display name), so nothing outside those
//! directories is ever opened on its behalf.
//!
//! What is indexed: each entry of each directory (not recursive) that is a
//! regular file by `lstat` (symlinks, FIFOs, devices, sockets and
//! directories are skipped, never opened), at most `max_bytes` long, opened
//! with `O_NOFOLLOW | O_NONBLOCK` and checked again with `fstat` (the same
//! regular file as `lstat` saw), then hashed as a stream (a bounded read,
//! never the whole file in memory). A digest is kept per file identity
//! (device, inode, size, modification time), so a rescan hashes only new or
//! changed files.
//!
//! All of it is blocking I/O: callers on an async runtime run [`BootIndex::scan`]
//! and [`BootIndex::find`] with `spawn_blocking`. The server scans at
//! start-up and again on a miss (a file copied in since), so a file added
//! to an image directory is found without a restart.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{Mode, OFlags};

use crate::MachineError;

/// The default most bytes of a boot file the index hashes (1 GiB).
pub const DEFAULT_MAX_BOOT_FILE_BYTES: u64 = 1 << 30;

/// Which file a digest was taken of, to hash it again only if it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileId {
    fn of(m: &std::fs::Metadata) -> Self {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }
}

#[derive(Debug, Default)]
struct Known {
    /// Digest -> path.
    by_digest: HashMap<String, PathBuf>,
    /// Path -> the file's identity and digest when it was hashed.
    hashed: HashMap<PathBuf, (FileId, String)>,
}

/// What one scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Regular files indexed.
    pub files: usize,
    /// Of them, hashed in this scan (new or changed).
    pub hashed: usize,
    /// Entries skipped, each with the reason (not regular, too large,
    /// unreadable).
    pub skipped: Vec<(PathBuf, String)>,
}

/// The boot files of a host's image directories, by digest.
#[derive(Debug)]
pub struct BootIndex {
    dirs: Vec<PathBuf>,
    max_bytes: u64,
    known: Mutex<Known>,
}

impl BootIndex {
    /// An index of `dirs` (not scanned yet) that hashes files of at most
    /// `max_bytes`.
    pub fn new(dirs: Vec<PathBuf>, max_bytes: u64) -> Self {
        BootIndex {
            dirs,
            max_bytes,
            known: Mutex::new(Known::default()),
        }
    }

    /// The directories indexed.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Indexes the directories again (blocking): new and changed files are
    /// hashed, vanished ones dropped. An unreadable directory is reported
    /// among the skipped entries.
    pub fn scan(&self) -> ScanReport {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = ScanReport::default();
        let mut fresh = Known::default();
        for dir in &self.dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) => {
                    report
                        .skipped
                        .push((dir.clone(), format!("unreadable: {e}")));
                    continue;
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match self.index_one(&path, &known) {
                    Ok((id, digest, hashed)) => {
                        report.files += 1;
                        report.hashed += usize::from(hashed);
                        // The first directory listed wins a duplicate.
                        fresh
                            .by_digest
                            .entry(digest.clone())
                            .or_insert_with(|| path.clone());
                        fresh.hashed.insert(path, (id, digest));
                    }
                    Err(why) => report.skipped.push((path, why)),
                }
            }
        }
        *known = fresh;
        report
    }

    /// One entry: its identity and digest, and whether it was hashed now.
    fn index_one(&self, path: &Path, known: &Known) -> Result<(FileId, String, bool), String> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| format!("lstat: {e}"))?;
        if !meta.file_type().is_file() {
            return Err(format!("not a regular file ({:?})", meta.file_type()));
        }
        if meta.size() > self.max_bytes {
            return Err(format!(
                "{} bytes, over the {}-byte limit for boot files",
                meta.size(),
                self.max_bytes
            ));
        }
        let id = FileId::of(&meta);
        if let Some((seen, digest)) = known.hashed.get(path) {
            if *seen == id {
                return Ok((id, digest.clone(), false));
            }
        }
        let digest = self.hash(path, id)?;
        Ok((id, digest, true))
    }

    /// Hashes the regular file `path` whose `lstat` gave `id`, refusing
    /// anything else that may have taken its place.
    fn hash(&self, path: &Path, id: FileId) -> Result<String, String> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| format!("open: {e}"))?;
        let file = std::fs::File::from(fd);
        let meta = file.metadata().map_err(|e| format!("fstat: {e}"))?;
        if !meta.file_type().is_file() || (meta.dev(), meta.ino()) != (id.dev, id.ino) {
            return Err("replaced while being indexed".into());
        }
        let mut hasher = blake3::Hasher::new();
        let mut limited = file.take(self.max_bytes + 1);
        let mut buf = vec![0u8; 1 << 16];
        let mut total: u64 = 0;
        loop {
            let n = limited.read(&mut buf).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > self.max_bytes {
                return Err(format!(
                    "grew over the {}-byte limit while being read",
                    self.max_bytes
                ));
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher.finalize().to_hex().to_string())
    }

    /// The path of the file with `digest` (blocking). A miss, or a file
    /// changed since it was indexed, rescans once; still missing is
    /// [`MachineError::UnknownBootFile`].
    pub fn find(&self, digest: &str, name: &str) -> Result<PathBuf, MachineError> {
        if let Some(p) = self.lookup(digest) {
            return Ok(p);
        }
        let report = self.scan();
        tracing::info!(
            files = report.files,
            hashed = report.hashed,
            skipped = report.skipped.len(),
            "image directories rescanned for a boot file"
        );
        self.lookup(digest)
            .ok_or_else(|| MachineError::UnknownBootFile {
                name: name.into(),
                digest: digest.into(),
                dirs: self
                    .dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The indexed path of `digest`, if it is still the file indexed.
    fn lookup(&self, digest: &str) -> Option<PathBuf> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let path = known.by_digest.get(digest)?;
        let (id, _) = known.hashed.get(path)?;
        let now = std::fs::symlink_metadata(path).ok()?;
        (now.file_type().is_file() && FileId::of(&now) == *id).then(|| path.clone())
    }
}

/// The BLAKE3 digest of a local file, read as a stream (the desktop's own
/// boot files, named by its operator's configuration).
pub fn digest_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(path)?)?;
    Ok(hasher.finalize().to_hex().to_string())
}
