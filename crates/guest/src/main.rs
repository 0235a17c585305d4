//! `jettison-guest`: the workload program of the jettison test guest.
//!
//! Runs as `/init`'s final `exec` in a busybox initramfs. Reads its settings
//! from `/proc/cmdline` (`jettison.<key>=<value>`), fills memory, then runs
//! the heartbeat, the integrity checker, the page-touching timer and the
//! optional office apps (chat, mail, disk cache), reporting `JTS ...` lines on stdout (the serial
//! console). See the crate documentation of `jettison_guest`.

#![forbid(unsafe_code)]

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use jettison_guest::check::CheckRegion;
use jettison_guest::meminfo::{fill_bytes, parse_meminfo, MIB};
use jettison_guest::{disk, mail, net, parse_cmdline, Settings, SplitMix64};

/// Size of the "cache" buffer dirtied by the timer.
const CACHE_BYTES: usize = 4 * 1024 * 1024;
/// Where `/init` mounts the disk (`/dev/vda`), if there is one.
const DISK_DIR: &str = "/mnt/disk";
/// Words per 4 KiB page.
const PAGE_WORDS: usize = 512;

/// Result with a boxed error (the guest has no dependencies beyond std, so
/// no anyhow here).
type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Prints one console line and flushes it.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Guest monotonic clock in ms: `/proc/uptime` at start plus elapsed time.
#[derive(Debug, Clone, Copy)]
struct Clock {
    base_ms: u64,
    start: Instant,
}

impl Clock {
    fn new() -> Self {
        let base_ms = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0, |s| (s * 1000.0) as u64);
        Self {
            base_ms,
            start: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.base_ms + self.start.elapsed().as_millis() as u64
    }
}

/// Allocates `bytes` and fills them with non-zero pseudo-random data,
/// touching every page and printing progress every 10%.
fn fill_memory(bytes: u64, seed: u64) -> Vec<u64> {
    let words = (bytes / 8) as usize;
    let mut v = vec![0u64; words];
    let mut rng = SplitMix64::new(seed ^ 0xf111);
    let step = (words / 10).max(1);
    for (i, chunk) in v.chunks_mut(step).enumerate() {
        chunk.iter_mut().for_each(|w| *w = rng.next_nonzero());
        let done = ((i + 1) * step).min(words) as u64 * 8;
        say(&format!("JTS FILL mib={}/{}", done / MIB, bytes / MIB));
    }
    black_box(&v);
    v
}

/// Prints `JTS HB` lines every `interval` forever.
fn heartbeat(clock: Clock, interval: Duration) -> ! {
    let mut next = Instant::now();
    let mut seq: u64 = 0;
    loop {
        seq += 1;
        say(&format!("JTS HB seq={seq} up_ms={}", clock.now_ms()));
        next += interval;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else if now - next > interval * 10 {
            next = now; // far behind (e.g. the host paused us): resynchronise
        }
    }
}

/// Verifies the check region every `interval` forever, rewriting a few
/// pages with a new generation after each check.
fn checker(mut region: CheckRegion, interval: Duration, rewrite_pages: usize) -> ! {
    let (mut n, mut total_fail) = (0u64, 0u64);
    loop {
        thread::sleep(interval);
        let o = region.verify(4);
        n += 1;
        total_fail += o.failures;
        for m in &o.mismatches {
            say(&format!(
                "JTS CORRUPT offset={:#x} expected={:#018x} got={:#018x}",
                m.offset, m.expected, m.got
            ));
        }
        region.rewrite(rewrite_pages);
        say(&format!(
            "JTS CHECK n={n} fail={total_fail} words={}",
            o.words
        ));
    }
}

/// Dirties `pages` random pages of the cache buffer every second forever.
fn toucher(mut cache: Vec<u64>, pages: usize, seed: u64) -> ! {
    let mut rng = SplitMix64::new(seed ^ 0x70c4);
    let npages = (cache.len() / PAGE_WORDS) as u64;
    loop {
        thread::sleep(Duration::from_secs(1));
        for _ in 0..pages {
            let p = rng.below(npages) as usize;
            let w = p * PAGE_WORDS + rng.below(PAGE_WORDS as u64) as usize;
            cache[w] = rng.next_nonzero();
        }
        black_box(&cache);
    }
}

/// Reads the next `mib` MiB of `filled` every `every` forever (see
/// [`jettison_guest::scan`]), saying how long each piece took.
fn scanner(filled: std::sync::Arc<Vec<u64>>, every: Duration, mib: u32) -> ! {
    let words = (u64::from(mib) * MIB / 8) as usize;
    let mut n = 0u64;
    loop {
        thread::sleep(every);
        let t = Instant::now();
        let range = jettison_guest::scan::piece(n, words, filled.len());
        // one word a page: every page of the piece is touched
        let sum = filled[range.clone()]
            .iter()
            .step_by(PAGE_WORDS)
            .fold(0u64, |a, w| a.wrapping_add(*w));
        black_box(sum);
        say(&format!(
            "JTS SCAN n={n} mib={} ms={}",
            (range.len() * 8) as u64 / MIB,
            t.elapsed().as_millis()
        ));
        n += 1;
    }
}

/// The chat client, the mail client and the disk writer, each if set up.
fn start_office_apps(s: &Settings) -> Result<()> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let id = net::client_id(
        s.id.as_deref(),
        &read("/proc/sys/kernel/hostname"),
        &read("/sys/class/net/eth0/address"),
    );
    match s.peer {
        Some(peer) => {
            let id = id.clone();
            thread::Builder::new()
                .name("net".into())
                .spawn(move || net::run_chat(peer, id, say))?;
        }
        None => say("JTS NET off (no jettison.peer)"),
    }
    match s.mail {
        Some(server) => {
            let iv = Duration::from_secs(u64::from(s.mail_interval_s));
            thread::Builder::new()
                .name("mail".into())
                .spawn(move || mail::run_mail(server, id, iv, say))?;
        }
        None => say("JTS MAIL off (no jettison.mail)"),
    }
    if disk::is_mounted(&read("/proc/mounts"), DISK_DIR) {
        let (iv, file, seed) = (
            Duration::from_secs(u64::from(s.disk_interval_s)),
            s.disk_file.clone(),
            s.seed,
        );
        thread::Builder::new()
            .name("disk".into())
            .spawn(move || disk::run_disk(Path::new(DISK_DIR), &file, iv, seed, say))?;
    } else {
        say(&format!("JTS DISK off (nothing mounted at {DISK_DIR})"));
    }
    Ok(())
}

fn run() -> Result<()> {
    let clock = Clock::new();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let (s, warnings): (Settings, _) = parse_cmdline(&cmdline);
    for w in &warnings {
        say(&format!("JTS WARN {w}"));
    }
    say(&format!(
        "JTS START up_ms={} settings={s:?}",
        clock.now_ms()
    ));

    let info = parse_meminfo(&std::fs::read_to_string("/proc/meminfo")?)
        .ok_or("no MemTotal in /proc/meminfo")?;
    let check_bytes = u64::from(s.check_mib) * MIB;
    let fill = fill_bytes(info, s.fill_pct, check_bytes + CACHE_BYTES as u64);
    say(&format!(
        "JTS FILL start mib={} mem_total_mib={}",
        fill / MIB,
        info.total / MIB
    ));
    let t = Instant::now();
    let filled = fill_memory(fill, s.seed);
    let region = CheckRegion::new(s.seed, check_bytes as usize);
    let mut cache = vec![0u64; CACHE_BYTES / 8];
    let mut rng = SplitMix64::new(s.seed ^ 0xcac4e);
    cache.iter_mut().for_each(|w| *w = rng.next_nonzero());
    say(&format!(
        "JTS READY fill_mib={} check_mib={} fill_ms={} up_ms={}",
        fill / MIB,
        s.check_mib,
        t.elapsed().as_millis(),
        clock.now_ms()
    ));

    if s.check_mib > 0 {
        let (iv, rw) = (
            Duration::from_secs(u64::from(s.check_interval_s)),
            s.rewrite_pages as usize,
        );
        thread::Builder::new()
            .name("check".into())
            .spawn(move || checker(region, iv, rw))?;
    }
    let (tp, seed) = (s.touch_pages as usize, s.seed);
    thread::Builder::new()
        .name("touch".into())
        .spawn(move || toucher(cache, tp, seed))?;
    start_office_apps(&s)?;
    let filled = std::sync::Arc::new(filled);
    if s.scan_every_s > 0 {
        let (f, every, mib) = (
            filled.clone(),
            Duration::from_secs(u64::from(s.scan_every_s)),
            s.scan_mib,
        );
        thread::Builder::new()
            .name("scan".into())
            .spawn(move || scanner(f, every, mib))?;
    }
    black_box(&filled);
    heartbeat(clock, Duration::from_millis(u64::from(s.hb_interval_ms)))
}

fn main() {
    if let Err(e) = run() {
        say(&format!("JTS FATAL {e}"));
        // As PID 1 we must not exit (the kernel would panic): idle instead.
        loop {
            thread::sleep(Duration::from_secs(3600));
        }
    }
}
