//! Fault service while the desktop is awake: pages of a consolidated VM's
//! memory file read on the server, one 4 KiB read at a time, through the
//! FUSE file the guest's RAM is mapped from (the path a guest fault takes:
//! FUSE, the server daemon, TLS over the LAN, the desktop's state server,
//! the replica; without the guest's own TCG overhead).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::stats::{summarize, Summary};

/// Bytes per page.
pub const PAGE: u64 = 4096;

/// A small seeded generator (xorshift64*), for page orders.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded (0 is replaced by a constant).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random permutation of `pages` (Fisher-Yates).
    pub fn shuffle(&mut self, pages: &mut [u64]) {
        for i in (1..pages.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            pages.swap(i, j);
        }
    }
}

/// Latencies of reading `pages` one by one, in microseconds.
pub fn read_pages(file: &Path, pages: &[u64]) -> anyhow::Result<Vec<f64>> {
    let f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut buf = vec![0u8; PAGE as usize];
    let mut out = Vec::with_capacity(pages.len());
    for &p in pages {
        let t = Instant::now();
        f.read_exact_at(&mut buf, p * PAGE)
            .with_context(|| format!("reading page {p} of {}", file.display()))?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(out)
}

/// A region of memory touched page by page.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Touch {
    /// Bytes touched.
    pub bytes: u64,
    /// Seconds it took.
    pub seconds: f64,
    /// MiB per second.
    pub mib_per_s: f64,
    /// Per-page latency, microseconds.
    pub latency_us: Summary,
}

/// Touches `count` pages from `first`, in order or shuffled with `rng`.
pub fn touch(file: &Path, first: u64, count: u64, rng: Option<&mut Rng>) -> anyhow::Result<Touch> {
    let mut pages: Vec<u64> = (first..first + count).collect();
    if let Some(r) = rng {
        r.shuffle(&mut pages);
    }
    let t = Instant::now();
    let lat = read_pages(file, &pages)?;
    let seconds = t.elapsed().as_secs_f64();
    let bytes = count * PAGE;
    Ok(Touch {
        bytes,
        seconds,
        mib_per_s: bytes as f64 / (1 << 20) as f64 / seconds.max(1e-9),
        latency_us: summarize(&lat),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffles_are_permutations_and_seeded() {
        let mut a: Vec<u64> = (0..1000).collect();
        let mut b = a.clone();
        Rng::new(7).shuffle(&mut a);
        Rng::new(7).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
        a.sort_unstable();
        assert_eq!(a, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn reads_a_real_file_page_by_page() {
        let dir = std::env::temp_dir().join(format!("jt-bench-faults-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mem");
        std::fs::write(&path, vec![1u8; 8 * PAGE as usize]).unwrap();
        let t = touch(&path, 2, 4, Some(&mut Rng::new(1))).unwrap();
        assert_eq!((t.bytes, t.latency_us.count), (4 * PAGE, 4));
        assert!(read_pages(&path, &[8]).is_err(), "past the end");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
