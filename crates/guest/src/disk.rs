//! The mail cache on the guest's disk: every few seconds a record is
//! appended to `/mnt/disk/<file>` and `fsync`ed. The running checksum is
//! FNV-1a 64 over the whole file (what was there at start included), so a
//! test can compare it with the disk image. Prints
//! `JTS DISK writes=<n> bytes=<file size> sum=<hex>` after every write.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use crate::SplitMix64;

/// FNV-1a 64, fed incrementally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv64(pub u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Record `seq`: `mail <seq> ` and four random words in hex, one line.
pub fn record(seq: u64, rng: &mut SplitMix64) -> String {
    let words: Vec<String> = (0..4)
        .map(|_| format!("{:016x}", rng.next_nonzero()))
        .collect();
    format!("mail {seq} {}\n", words.join(" "))
}

/// Whether `mounts` (`/proc/mounts`) has something mounted at `dir`.
pub fn is_mounted(mounts: &str, dir: &str) -> bool {
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(dir))
}

/// Reads the existing file (if any): `(size, checksum)`.
fn existing(path: &Path) -> std::io::Result<(u64, Fnv64)> {
    let mut sum = Fnv64::default();
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, sum)),
        Err(e) => return Err(e),
    };
    let (mut buf, mut size) = (vec![0u8; 64 * 1024], 0u64);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((size, sum));
        }
        sum.update(&buf[..n]);
        size += n as u64;
    }
}

fn append(path: &Path, line: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(line.as_bytes())?;
    f.sync_all()
}

/// Appends a record every `interval` forever.
pub fn run_disk(dir: &Path, file: &str, interval: Duration, seed: u64, say: fn(&str)) -> ! {
    let path: PathBuf = dir.join(file);
    let (mut bytes, mut sum) = existing(&path).unwrap_or_else(|e| {
        say(&format!("JTS DISK cannot read {}: {e}", path.display()));
        (0, Fnv64::default())
    });
    say(&format!(
        "JTS DISK start file={} existing={bytes} sum={:016x}",
        path.display(),
        sum.0
    ));
    let (mut rng, mut writes, mut fail) = (SplitMix64::new(seed ^ 0xd15c), 0u64, 0u64);
    loop {
        thread::sleep(interval);
        let line = record(writes + 1, &mut rng);
        match append(&path, &line) {
            Ok(()) => {
                writes += 1;
                bytes += line.len() as u64;
                sum.update(line.as_bytes());
                say(&format!(
                    "JTS DISK writes={writes} bytes={bytes} sum={:016x}",
                    sum.0
                ));
            }
            Err(e) => {
                fail += 1;
                say(&format!("JTS DISK write-failed fail={fail} err={e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_incremental_and_known() {
        let mut a = Fnv64::default();
        a.update(b"");
        assert_eq!(a.0, 0xcbf2_9ce4_8422_2325);
        a.update(b"a");
        assert_eq!(a.0, 0xaf63_dc4c_8601_ec8c); // FNV-1a 64 of "a"
        let (mut x, mut y) = (Fnv64::default(), Fnv64::default());
        x.update(b"hello world");
        y.update(b"hello ");
        y.update(b"world");
        assert_eq!(x, y);
    }

    #[test]
    fn records_are_lines() {
        let mut rng = SplitMix64::new(1);
        let r = record(3, &mut rng);
        assert!(r.starts_with("mail 3 ") && r.ends_with('\n'));
        assert_eq!(r.split_whitespace().count(), 6);
        assert_ne!(r, record(3, &mut rng));
    }

    #[test]
    fn mounts() {
        let m = "proc /proc proc rw 0 0\n/dev/vda /mnt/disk ext4 rw 0 0\n";
        assert!(is_mounted(m, "/mnt/disk"));
        assert!(!is_mounted(m, "/mnt"));
    }

    #[test]
    fn appends_and_sums_a_real_file() {
        struct Gone(PathBuf);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir = std::env::temp_dir().join(format!("jts-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _gone = Gone(dir.clone());
        let p = dir.join("c.log");
        append(&p, "one\n").unwrap();
        append(&p, "two\n").unwrap();
        let (size, sum) = existing(&p).unwrap();
        let mut want = Fnv64::default();
        want.update(b"one\ntwo\n");
        assert_eq!((size, sum), (8, want));
        assert_eq!(existing(&dir.join("none")).unwrap().0, 0);
    }
}
