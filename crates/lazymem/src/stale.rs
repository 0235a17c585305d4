//! Preparing a mountpoint: creating it, and clearing a FUSE mount left there
//! by a daemon that was killed (its connection is dead: ENOTCONN).

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags};
use tracing::warn;

use crate::LazyMemError;

/// One line of `/proc/self/mountinfo`, reduced to what we need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub(crate) mount_point: PathBuf,
    pub(crate) fstype: String,
}

/// Parses `/proc/self/mountinfo` text.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let mount_point = pre.split(' ').nth(4)?;
            let fstype = post.split(' ').next()?;
            Some(MountEntry {
                mount_point: PathBuf::from(unescape(mount_point)),
                fstype: fstype.to_owned(),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` for space etc.).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) => {
                out.push(
                    d.iter()
                        .fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mounts_at(path: &Path) -> Result<Vec<MountEntry>, LazyMemError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| LazyMemError::io("reading /proc/self/mountinfo", e))?;
    Ok(parse_mountinfo(&text)
        .into_iter()
        .filter(|m| m.mount_point == path)
        .collect())
}

/// The absolute, symlink-free form of `path`, resolved without touching
/// `path` itself (a dead FUSE mount there fails every stat).
fn absolute(path: &Path) -> Result<PathBuf, LazyMemError> {
    let ctx = || format!("mountpoint {}", path.display());
    let name = path
        .file_name()
        .ok_or_else(|| LazyMemError::io(ctx(), io::ErrorKind::InvalidInput.into()))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| LazyMemError::io(ctx(), e))?;
    let parent = parent
        .canonicalize()
        .map_err(|e| LazyMemError::io(ctx(), e))?;
    Ok(parent.join(name))
}

/// Whether the filesystem mounted at `path` has lost its daemon. Opening
/// the directory always reaches the daemon (attributes may be cached).
fn is_dead(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(_) => false,
        Err(e) => {
            matches!(e.raw_os_error(), Some(c) if c == nix::libc::ENOTCONN || c == nix::libc::ECONNABORTED)
        }
    }
}

/// Makes `path` ready to be mounted on: creates it if missing, and lazily
/// unmounts dead FUSE mounts left there. A live mount there is an error.
/// Returns the absolute mountpoint.
pub(crate) fn prepare_mountpoint(path: &Path) -> Result<PathBuf, LazyMemError> {
    let path = absolute(path)?;
    // Stacked mounts are cleared one by one, the top first.
    for _ in 0..64 {
        let Some(top) = mounts_at(&path)?.pop() else {
            break;
        };
        if !top.fstype.starts_with("fuse") {
            return Err(LazyMemError::ForeignMount {
                path,
                fstype: top.fstype,
            });
        }
        if !is_dead(&path) {
            return Err(LazyMemError::Mount {
                op: "mount at",
                path,
                source: io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "a live FUSE filesystem is mounted there",
                ),
            });
        }
        warn!(mountpoint = %path.display(), fstype = %top.fstype, "lazily unmounting a stale FUSE mount left by a dead daemon");
        umount2(&path, MntFlags::MNT_DETACH).map_err(|e| LazyMemError::Mount {
            op: "unmount stale mount at",
            path: path.clone(),
            source: e.into(),
        })?;
    }
    std::fs::create_dir_all(&path)
        .map_err(|e| LazyMemError::io(format!("creating mountpoint {}", path.display()), e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    90 22 0:50 / /tmp/a\\040b rw,nosuid,nodev,relatime shared:40 - fuse.jettison jettison-lazymem rw,user_id=0\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].mount_point, PathBuf::from("/tmp/a b"));
        assert_eq!(m[1].fstype, "fuse.jettison");
        assert_eq!(unescape("x\\134y\\011"), "x\\y\t");
    }
}
