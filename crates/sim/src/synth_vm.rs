//! The synthetic VM's memory use while its user is away.
//!
//! Source and assumptions: Bila et al. (Jettison, EuroSys 2012; ACM TOCS
//! 2015) observe that an idle desktop VM touches a small set of pages, much
//! the same from one idle period to the next, so that partial migration
//! moves under a tenth of the VM's memory. That observation is the only
//! measured input here; **every size and rate below is an assumption**
//! chosen within it ([`SynthParams`] defaults):
//!
//! * Each VM has a **hot set** of `hot_pages` pages (4096 pages, 16 MiB,
//!   0.4 % of 4 GiB), drawn once per desktop: runs of consecutive pages
//!   (kernel structures, the code and heaps of the background services),
//!   run lengths `1 + Exp(hot_run_mean_pages - 1)` (mean about 16), each at
//!   a uniform place in guest memory. It **drifts**: between two periods
//!   `d` days apart each run is replaced by a fresh one of the same length
//!   at a uniform place with probability `1 - exp(-hot_drift_per_day d)`
//!   (10 % a day by default: about half the hot set is new after a week),
//!   so the working sets of past periods predict less the older they are.
//! * An **access** is hot with probability `1 - cold_p` (0.9): consecutive
//!   pages of a run of the hot set, the run chosen with skewed popularity
//!   (index `floor(n u^hot_skew)` for `u` uniform, `hot_skew` 2: the first
//!   quarter of the runs gets half the accesses), from a uniform page of it, about
//!   `access_mean_pages` (8) long, clipped to the run's end (spatial
//!   locality). Otherwise it is **cold**: one page uniform in guest memory
//!   (page cache, fresh allocations), which almost never recurs.
//! * When the VM arrives on the server it makes `arrival_accesses` (2048)
//!   accesses at uniform times over `burst_ms` (20 s): it resumes and its
//!   services catch up.
//! * Then **timer bursts** come as a Poisson process of
//!   `timer_bursts_per_hour` (12), each of `1 + Poisson(timer_extra_accesses)`
//!   (mean 4) accesses within `timer_spread_ms` (1 s): background services
//!   wake together on timers and heartbeats.
//!
//! * A **scan** (none in the default model): with probability `scan_p`
//!   a period of at least `scan_min_period_ms` holds `scan_bursts` bursts
//!   `scan_interval_ms` apart, each of `scan_burst_pages` uniform pages
//!   (a virus scan, an indexer or an update reading files into the page
//!   cache): demand that wakes a sleeping desktop at every burst, the wake
//!   storm of [`jettison_power_model::PullPolicy`].
//!
//! A period's requests are each page's first touch in the period (later
//! touches find it on the server whatever the prefetching). With these
//! defaults a period asks for about 2,900 pages (11 MiB, 0.3 % of memory)
//! in its first 20 s, about 200 of them cold, then a few hundred over a
//! night; most of a period's pages were also asked for in the VM's previous
//! period (fewer the longer ago it was, by the drift). The cold rate, the
//! timer rate and the hot set's size are swept by `jettison simulate
//! --sweeps` (x0.1 to x10 for the cold rate).
//!
//! [`SynthParams`]: crate::synth::SynthParams

use crate::fetch::Present;
use crate::synth::{Rng, SynthParams};
use crate::trace::Request;

const HOUR: f64 = 3_600_000.0;

/// One VM: its hot set, and scratch space for a period's requests.
#[derive(Clone, Debug)]
pub(crate) struct Vm {
    /// Runs of the hot set: (first page, pages).
    runs: Vec<(u32, u32)>,
    touched: Present,
}

impl Vm {
    /// A VM with a fresh hot set drawn from `rng`.
    pub(crate) fn new(p: &SynthParams, rng: &mut Rng) -> Self {
        let total = p.vm_pages.max(1);
        let (mut runs, mut pages) = (Vec::new(), 0u32);
        while pages < p.hot_pages.min(total) {
            let len = 1 + rng.exp((p.hot_run_mean_pages - 1.0).max(0.0)) as u32;
            let len = len.min(p.hot_pages - pages).min(total);
            let start = (rng.next_u64() % u64::from(total - len + 1)) as u32;
            runs.push((start, len));
            pages += len;
        }
        Self {
            runs,
            touched: Present::default(),
        }
    }

    /// Lets `elapsed_ms` pass: each run of the hot set is replaced, with
    /// probability `1 - exp(-hot_drift_per_day x days)`, by a run of the
    /// same length at a uniform place.
    pub(crate) fn drift(&mut self, p: &SynthParams, rng: &mut Rng, elapsed_ms: u64) {
        let days = elapsed_ms as f64 / crate::trace::DAY_MS as f64;
        let replace = 1.0 - (-p.hot_drift_per_day.max(0.0) * days).exp();
        if replace <= 0.0 {
            return;
        }
        let total = p.vm_pages.max(1);
        for run in &mut self.runs {
            if rng.unit() < replace {
                let len = run.1.min(total);
                run.0 = (rng.next_u64() % u64::from(total - len + 1)) as u32;
            }
        }
    }

    /// The pages of the hot set, sorted (for tests).
    #[cfg(test)]
    pub(crate) fn hot_pages(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.runs.iter().flat_map(|&(s, l)| s..s + l).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The pages of one access at `at_ms`, appended to `out`.
    fn access(&self, p: &SynthParams, rng: &mut Rng, at_ms: u32, out: &mut Vec<Request>) {
        let cold = rng.unit() < p.cold_p || self.runs.is_empty();
        if cold {
            let page = (rng.next_u64() % u64::from(p.vm_pages.max(1))) as u32;
            out.push(Request {
                offset_ms: at_ms,
                page,
            });
            return;
        }
        // run i of n with probability density ~ (i/n)^(1/skew - 1): popular runs first
        let u = rng.unit();
        let u = if p.hot_skew == 2.0 {
            u * u
        } else {
            u.powf(p.hot_skew.max(1.0))
        };
        let (start, len) = self.runs[(u * self.runs.len() as f64) as usize];
        let from = (rng.next_u64() % u64::from(len)) as u32;
        let want = 1 + rng.exp((p.access_mean_pages - 1.0).max(0.0)) as u32;
        for page in start + from..start + len.min(from.saturating_add(want)) {
            out.push(Request {
                offset_ms: at_ms,
                page,
            });
        }
    }

    /// A scan (the wake storm): `scan_bursts` bursts `scan_interval_ms`
    /// apart, each of `scan_burst_pages` uniform pages, starting uniform
    /// between the arrival burst's end `from` and the latest start that
    /// ends before `limit` (ms into the period), appended to `out`.
    fn scan(&self, p: &SynthParams, rng: &mut Rng, from: f64, limit: f64, out: &mut Vec<Request>) {
        let length = p.scan_interval_ms as f64 * f64::from(p.scan_bursts.saturating_sub(1));
        let latest = (limit - length - 1.0).max(from);
        let first = rng.range(from, latest.max(from + 1.0));
        for k in 0..p.scan_bursts {
            let at = first + p.scan_interval_ms as f64 * f64::from(k);
            if at >= limit {
                break;
            }
            for _ in 0..p.scan_burst_pages {
                let page = (rng.next_u64() % u64::from(p.vm_pages.max(1))) as u32;
                out.push(Request {
                    offset_ms: at as u32,
                    page,
                });
            }
        }
    }

    /// The VM's requests over an idle period of `len_ms`: each page's first
    /// touch, sorted by time.
    pub(crate) fn requests(&mut self, p: &SynthParams, rng: &mut Rng, len_ms: u64) -> Vec<Request> {
        let limit = len_ms.min(u64::from(u32::MAX)) as f64;
        let burst = (p.burst_ms as f64).min(limit);
        // the accesses' times first, sorted, then their pages in time order
        let mut times: Vec<u32> = (0..p.arrival_accesses)
            .map(|_| rng.range(0.0, burst) as u32)
            .collect();
        if p.timer_bursts_per_hour > 0.0 {
            let mut t = burst;
            loop {
                t += rng.exp(HOUR / p.timer_bursts_per_hour);
                if t >= limit {
                    break;
                }
                for _ in 0..1 + rng.poisson(p.timer_extra_accesses) {
                    let at = t + rng.range(0.0, p.timer_spread_ms as f64);
                    if at < limit {
                        times.push(at as u32);
                    }
                }
            }
        }
        times.sort_unstable();
        let mut all = Vec::with_capacity(times.len() * 4);
        for at in times {
            self.access(p, rng, at, &mut all);
        }
        if p.scan_p > 0.0 && len_ms >= p.scan_min_period_ms && rng.unit() < p.scan_p {
            self.scan(p, rng, burst, limit, &mut all);
            all.sort_by_key(|r| r.offset_ms);
        }
        all.retain(|r| self.touched.insert(u64::from(r.page)));
        self.touched.clear();
        all
    }
}
