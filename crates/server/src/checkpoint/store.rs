//! A consolidated VM's checkpoints on the server's disk, in
//! `<state_dir>/checkpoints/<vm>/`:
//!
//! * `state-<seq>`: the device state saved at checkpoint `seq`;
//! * `seg-<seq>`: the pages written on the server since the checkpoint
//!   before (memory and disk, 4 KiB each), as records
//!   `kind (1 byte) | page (u64 LE) | data (4096 bytes)` after an 8-byte
//!   magic;
//! * `manifest.json`: the last complete checkpoint: its device state and the
//!   segments that, applied in order over the desktop's copy, give the VM's
//!   memory and disk at that point.
//!
//! A checkpoint is complete once its manifest is in place: segment and state
//! are written and fsynced first, the manifest is renamed over the old one
//! (through [`jettison_daemon::durable`]), and only then are files no
//! manifest names removed. A crash at any instruction leaves the previous
//! manifest and everything it names intact; [`CheckpointStore::clean`] drops
//! the rest. Segments pile up; past [`MAX_SEGMENTS`] they are merged into
//! one (latest version of each page), off the guest's pause. A checkpoint
//! that fails to write (a full disk) removes what it wrote and leaves the
//! previous one complete; the caller logs it and copies every written page
//! the next time (the pages it took are nowhere else).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use jettison_daemon::durable;
use jettison_wire::{FileKind, PAGE_SIZE};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"JTSCKPT1";
const RECORD: u64 = 1 + 8 + PAGE_SIZE;
/// Segments kept before they are merged into one.
pub const MAX_SEGMENTS: usize = 8;

/// One page of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Memory or disk.
    pub kind: FileKind,
    /// Page (4 KiB block) number in its file.
    pub page: u64,
    /// Its content, [`PAGE_SIZE`] bytes.
    pub data: Vec<u8>,
}

/// The last complete checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Increases with every checkpoint.
    pub seq: u64,
    /// When the guest was paused for it (Unix ms).
    pub taken_unix_ms: u64,
    /// The device state's file.
    pub device_state: String,
    /// Segment files, oldest first, with their page counts.
    pub segments: Vec<(String, u64)>,
    /// Taken at a planned stop, the guest left paused at it: resuming
    /// from it loses nothing.
    #[serde(default)]
    pub at_stop: bool,
}

impl Manifest {
    /// Pages stored in all segments (a page may be in several).
    #[cfg(test)]
    pub fn stored_pages(&self) -> u64 {
        self.segments.iter().map(|(_, n)| n).sum()
    }
}

/// What a checkpoint gives back: the device state and the latest content
/// of every page written on the server.
#[derive(Debug, Default)]
pub struct Restored {
    /// The device state.
    pub device_state: Vec<u8>,
    /// Memory pages, by page number.
    pub memory: BTreeMap<u64, Vec<u8>>,
    /// Disk blocks, by block number.
    pub disk: BTreeMap<u64, Vec<u8>>,
}

/// One VM's checkpoint directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// The store of `vm` under `root` (made if missing).
    pub fn open(root: &Path, vm: &str) -> io::Result<Self> {
        let dir = root.join(vm);
        std::fs::create_dir_all(&dir)?;
        Ok(CheckpointStore { dir })
    }

    /// The store of `vm` under `root` if it has a complete checkpoint.
    pub fn existing(root: &Path, vm: &str) -> io::Result<Option<(Self, Manifest)>> {
        let store = CheckpointStore { dir: root.join(vm) };
        Ok(store.manifest()?.map(|m| (store, m)))
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.join("manifest.json")
    }

    /// The last complete checkpoint, if any.
    pub fn manifest(&self) -> io::Result<Option<Manifest>> {
        match std::fs::read(self.manifest_path()) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Records a checkpoint: `pages` are those written since the previous
    /// one (with `full`, every page written on the server, and the older
    /// segments are dropped). Returns the new manifest and the bytes
    /// written.
    ///
    /// A failure (a full disk, say) leaves the previous checkpoint complete
    /// and removes what this one had written, so that it holds no space.
    pub fn commit(
        &self,
        taken_unix_ms: u64,
        at_stop: bool,
        device_state: &[u8],
        pages: &[Page],
        full: bool,
    ) -> io::Result<(Manifest, u64)> {
        let done = self.try_commit(taken_unix_ms, at_stop, device_state, pages, full);
        if done.is_err() {
            if let Err(e) = self.clean() {
                tracing::warn!(dir = %self.dir.display(), "cleaning a failed checkpoint: {e}");
            }
        }
        done
    }

    fn try_commit(
        &self,
        taken_unix_ms: u64,
        at_stop: bool,
        device_state: &[u8],
        pages: &[Page],
        full: bool,
    ) -> io::Result<(Manifest, u64)> {
        let old = self.manifest()?;
        let seq = old.as_ref().map_or(0, |m| m.seq + 1);
        let mut segments = match (&old, full) {
            (Some(m), false) => m.segments.clone(),
            _ => Vec::new(),
        };
        let mut bytes = device_state.len() as u64;
        if !pages.is_empty() {
            let name = format!("seg-{seq}");
            bytes += write_segment(&self.dir.join(&name), pages.iter().map(Ok::<_, io::Error>))?;
            segments.push((name, pages.len() as u64));
        }
        let state = format!("state-{seq}");
        durable::write_atomic(&self.dir.join(&state), device_state)?;
        if segments.len() > MAX_SEGMENTS {
            let (name, n, b) = self.merge(seq, &segments)?;
            segments = vec![(name, n)];
            bytes += b;
        }
        let manifest = Manifest {
            seq,
            taken_unix_ms,
            device_state: state,
            segments,
            at_stop,
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
        durable::write_atomic(&self.manifest_path(), &json)?;
        self.clean()?;
        Ok((manifest, bytes))
    }

    /// Merges `segments` into `merged-<seq>`, the latest version of each
    /// page kept; returns its name, page count and size.
    fn merge(&self, seq: u64, segments: &[(String, u64)]) -> io::Result<(String, u64, u64)> {
        let latest = self.read_pages(segments)?;
        let name = format!("merged-{seq}");
        let n = latest.len() as u64;
        let pages = latest.into_iter().map(|((kind, page), data)| {
            Ok(Page {
                kind: kind_of(kind)?,
                page,
                data,
            })
        });
        let b = write_segment(&self.dir.join(&name), pages)?;
        Ok((name, n, b))
    }

    /// Reads the last complete checkpoint.
    pub fn load(&self) -> io::Result<Option<Restored>> {
        let Some(m) = self.manifest()? else {
            return Ok(None);
        };
        let device_state = std::fs::read(self.dir.join(&m.device_state))?;
        let mut out = Restored {
            device_state,
            ..Restored::default()
        };
        for ((kind, page), data) in self.read_pages(&m.segments)? {
            match kind_of(kind)? {
                FileKind::Memory => out.memory.insert(page, data),
                FileKind::Disk => out.disk.insert(page, data),
            };
        }
        Ok(Some(out))
    }

    /// Every page of `segments`, the later version winning.
    fn read_pages(&self, segments: &[(String, u64)]) -> io::Result<BTreeMap<(u8, u64), Vec<u8>>> {
        let mut latest = BTreeMap::new();
        for (name, count) in segments {
            let path = self.dir.join(name);
            let len = std::fs::metadata(&path)?.len();
            if len != MAGIC.len() as u64 + count * RECORD {
                return Err(bad(&path, "size does not match its page count"));
            }
            let mut r = BufReader::new(File::open(&path)?);
            let mut magic = [0u8; 8];
            r.read_exact(&mut magic)?;
            if &magic != MAGIC {
                return Err(bad(&path, "not a checkpoint segment"));
            }
            for _ in 0..*count {
                let mut head = [0u8; 9];
                r.read_exact(&mut head)?;
                let mut data = vec![0u8; PAGE_SIZE as usize];
                r.read_exact(&mut data)?;
                let page = u64::from_le_bytes(head[1..].try_into().expect("8 bytes"));
                latest.insert((head[0], page), data);
            }
        }
        Ok(latest)
    }

    /// Removes every file the manifest does not name (a checkpoint cut
    /// short, or older ones).
    pub fn clean(&self) -> io::Result<()> {
        let m = self.manifest()?;
        let keep: Vec<&str> = m
            .iter()
            .flat_map(|m| {
                std::iter::once(m.device_state.as_str())
                    .chain(m.segments.iter().map(|(s, _)| s.as_str()))
            })
            .chain(["manifest.json"])
            .collect();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name.as_str()) {
                durable::remove(&entry.path())?;
            }
        }
        Ok(())
    }

    /// Removes the VM's checkpoints.
    pub fn remove(root: &Path, vm: &str) -> io::Result<()> {
        match std::fs::remove_dir_all(root.join(vm)) {
            Ok(()) => durable::sync_dir(root),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn kind_byte(kind: FileKind) -> u8 {
    match kind {
        FileKind::Memory => 0,
        FileKind::Disk => 1,
    }
}

fn kind_of(b: u8) -> io::Result<FileKind> {
    match b {
        0 => Ok(FileKind::Memory),
        1 => Ok(FileKind::Disk),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown page kind {b} in a checkpoint"),
        )),
    }
}

fn bad(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

/// Writes a segment and fsyncs it (the directory entry is made durable by
/// the manifest's rename, which syncs the directory). Returns its size.
fn write_segment<I, P>(path: &Path, pages: I) -> io::Result<u64>
where
    I: Iterator<Item = io::Result<P>>,
    P: std::borrow::Borrow<Page>,
{
    let file = File::create(path)?;
    let mut w = BufWriter::new(file);
    w.write_all(MAGIC)?;
    let mut size = MAGIC.len() as u64;
    for p in pages {
        let p = p?;
        let p = p.borrow();
        if p.data.len() as u64 != PAGE_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a checkpoint page is not 4 KiB",
            ));
        }
        w.write_all(&[kind_byte(p.kind)])?;
        w.write_all(&p.page.to_le_bytes())?;
        w.write_all(&p.data)?;
        size += RECORD;
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(size)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
