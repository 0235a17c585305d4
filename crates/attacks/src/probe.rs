//! Page faults while the victim is away, measured over a window: a probe
//! reads never-read pages of the victim's memory file through the server's
//! lazy filesystem at a steady rate (each a miss the server must fetch from
//! the desktop, as a guest's touch would be), and the server's per-fault
//! log events (`jettison_lazymem::fault_latency`, debug) give the fault
//! service latency of exactly the window (the status counters are
//! cumulative).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jettison_wire::PAGE_SIZE;

use crate::report::Window;

/// Probe reads per second.
const RATE_HZ: u64 = 20;

/// Page `k` of a sequence that visits every page of `pages` once, spread
/// over the file (a multiplicative walk; `pages` a power of two).
pub fn page_of(k: u64, pages: u64, offset: u64) -> u64 {
    (k.wrapping_mul(40_503).wrapping_add(offset)) % pages.max(1)
}

/// The reader: reads page after page until stopped; the latency of each
/// read, µs.
#[derive(Debug)]
pub struct Probe {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<u64>>>,
}

impl Probe {
    /// Starts reading `file` (`pages` pages), from step `from` of the walk.
    pub fn start(file: PathBuf, pages: u64, from: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut lat = Vec::new();
            let Ok(f) = std::fs::File::open(&file) else {
                return lat;
            };
            let mut buf = vec![0u8; PAGE_SIZE as usize];
            let mut k = from;
            while !s.load(Ordering::SeqCst) {
                let page = page_of(k, pages, 7);
                k += 1;
                let t = Instant::now();
                if f.read_exact_at(&mut buf, page * PAGE_SIZE).is_ok() {
                    lat.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                }
                std::thread::sleep(Duration::from_millis(1000 / RATE_HZ));
            }
            lat
        });
        Probe {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops; the latencies.
    pub fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The 99th percentile (nearest rank) of `v`.
pub fn p99(v: &[u64]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let rank = (s.len() * 99).div_ceil(100).max(1);
    Some(s[rank - 1])
}

/// The fault latencies (µs) of `vm` in a stretch of the server's log.
pub fn fault_latencies(log: &str, vm: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("fault served"))
        .filter_map(|l| {
            let mut this_vm = false;
            let mut us = None;
            for w in l.split_whitespace() {
                if let Some(v) = w.strip_prefix("vm=") {
                    this_vm = v.trim_matches('"') == vm;
                } else if let Some(v) = w.strip_prefix("us=") {
                    us = v.parse().ok();
                }
            }
            us.filter(|_| this_vm)
        })
        .collect()
}

/// The size of a log file (where a window starts).
pub fn log_len(log: &Path) -> u64 {
    std::fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

/// The log from `from` on.
pub fn log_since(log: &Path, from: u64) -> String {
    let all = std::fs::read(log).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(all.len());
    String::from_utf8_lossy(&all[from..]).into_owned()
}

/// A window's figures from the probe's latencies and the server's log.
pub fn window(seconds: f64, probe: &[u64], server: &[u64]) -> Window {
    Window {
        seconds,
        faults: server.len() as u64,
        fault_p99_us: p99(server),
        probe_reads: probe.len() as u64,
        probe_p99_us: p99(probe),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_p99() {
        assert_eq!(p99(&[]), None);
        assert_eq!(p99(&[5]), Some(5));
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(p99(&v), Some(99));
        let v: Vec<u64> = (1..=1000).rev().collect();
        assert_eq!(p99(&v), Some(990));
    }

    #[test]
    fn reads_the_victims_faults_out_of_the_log() {
        let log = "2025-01-01T00:00:00Z DEBUG jettison_lazymem::fault_latency: fault served vm=\"v1\" us=812\n\
                   2025-01-01T00:00:00Z DEBUG jettison_lazymem::fault_latency: fault served vm=v1-disk us=90\n\
                   2025-01-01T00:00:01Z  INFO jettison_server: something else us=5 vm=v1\n\
                   2025-01-01T00:00:02Z DEBUG jettison_lazymem::fault_latency: fault served vm=v1 us=1500\n";
        assert_eq!(fault_latencies(log, "v1"), vec![812, 1500]);
        assert_eq!(fault_latencies(log, "v1-disk"), vec![90]);
        let w = window(10.0, &[3, 4], &[812, 1500]);
        assert_eq!(
            (w.faults, w.fault_p99_us, w.probe_p99_us),
            (2, Some(1500), Some(4))
        );
    }

    #[test]
    fn the_walk_visits_every_page_once() {
        let pages = 1024;
        let mut seen: Vec<u64> = (0..pages).map(|k| page_of(k, pages, 7)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len() as u64, pages);
    }
}
