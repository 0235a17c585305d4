//! Which of an idle period's requests reach the desktop under a prefetch
//! policy, and what crosses the network.
//!
//! A trace's requests are the VM's first touch of each page in the period
//! (what it would fetch with no prefetching). During a period the server
//! keeps every page it fetched; a request for a page already there (fetched
//! earlier in the period, with a miss's neighbourhood group, or with the
//! working set at the period's first miss) is served by the server: the
//! desktop is not asked and its sleep policy does not see it. Only misses are
//! fetch events; each carries the missing page, its group, and at the
//! period's first miss the VM's working set
//! ([`PrefetchConfig::first_wake`]). The server forgets the VM's pages when it
//! goes home, so every period starts empty.
//!
//! The working set comes from the VM's *history*: per earlier period, the
//! pages it used (its requests, hits included). With no prefetching these
//! are exactly the pages it fetched; recording fetched pages under
//! prefetching instead would keep every page once prefetched in the working
//! set whether the VM used it or not.

use std::ops::Range;

use jettison_power_model::PrefetchConfig;

use crate::trace::IdlePeriod;

/// Bytes of a guest page.
pub const PAGE_BYTES: u64 = 4096;

/// Bytes of a VM's device state (CPU, devices, firmware ROM) for one move,
/// as measured in this project's demo (`crates/demo`, the migrate step's
/// device state). A consolidated period moves it twice: out and home.
pub const DEVICE_STATE_BYTES: u64 = 380_533;

/// The pages present on the server during one period: a bit set that
/// remembers the words it touched, so clearing costs what filling did.
#[derive(Clone, Debug, Default)]
pub(crate) struct Present {
    bits: Vec<u64>,
    words: Vec<usize>,
    count: usize,
}

impl Present {
    /// Sets the bits of `mask` in word `w`; returns how many were new.
    fn set(&mut self, w: usize, mask: u64) -> u32 {
        if w >= self.bits.len() {
            self.bits.resize(w + 1, 0);
        }
        let word = &mut self.bits[w];
        if *word == 0 && mask != 0 {
            self.words.push(w);
        }
        let new = (mask & !*word).count_ones();
        *word |= mask;
        self.count += new as usize;
        new
    }

    /// Adds `page`; true if it was not there.
    pub(crate) fn insert(&mut self, page: u64) -> bool {
        self.set((page / 64) as usize, 1u64 << (page % 64)) == 1
    }

    /// Adds the pages of `range`.
    pub(crate) fn insert_range(&mut self, range: Range<u64>) {
        let mut p = range.start;
        while p < range.end {
            let (w, lo) = (p / 64, p % 64);
            let hi = (range.end - w * 64).min(64);
            let mask = if hi - lo == 64 {
                u64::MAX
            } else {
                ((1u64 << (hi - lo)) - 1) << lo
            };
            self.set(w as usize, mask);
            p = w * 64 + hi;
        }
    }

    /// Adds `pages`, sorted ascending.
    pub(crate) fn insert_sorted(&mut self, pages: &[u64]) {
        let mut i = 0;
        while i < pages.len() {
            let w = pages[i] / 64;
            let mut mask = 0;
            while i < pages.len() && pages[i] / 64 == w {
                mask |= 1u64 << (pages[i] % 64);
                i += 1;
            }
            self.set(w as usize, mask);
        }
    }

    /// The pages there, ascending; empties the set.
    pub(crate) fn drain_sorted(&mut self) -> Vec<u64> {
        self.words.sort_unstable();
        let mut out = Vec::with_capacity(self.count);
        for &w in &self.words {
            let mut bits = self.bits[w];
            while bits != 0 {
                out.push(w as u64 * 64 + u64::from(bits.trailing_zeros()));
                bits &= bits - 1;
            }
        }
        self.clear();
        out
    }

    /// Whether `page` is there.
    pub(crate) fn contains(&self, page: u64) -> bool {
        self.bits
            .get((page / 64) as usize)
            .is_some_and(|w| w & (1u64 << (page % 64)) != 0)
    }

    /// Pages added since the last clear.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Empties the set.
    pub(crate) fn clear(&mut self) {
        for w in self.words.drain(..) {
            self.bits[w] = 0;
        }
        self.count = 0;
    }
}

/// One period's fetches under one prefetch policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Fetches {
    /// Times of the misses, ms since the trace's start, sorted.
    pub times: Vec<u64>,
    /// Pages that crossed the network.
    pub pages: u64,
    /// Pages on the server once each miss is served (as `times`).
    pub present_after: Vec<u64>,
}

/// The fetches of `period` with neighbourhood groups of `group` pages within
/// `total` pages, `first_wake` the pages to fetch at the first miss (sorted).
/// `present` must be empty; it is left empty.
pub(crate) fn fetches(
    period: &IdlePeriod,
    group: u64,
    total: u64,
    first_wake: &[u64],
    present: &mut Present,
) -> Fetches {
    let mut out = Fetches::default();
    for r in &period.requests {
        let page = u64::from(r.page);
        if present.contains(page) {
            continue;
        }
        if out.times.is_empty() {
            present.insert_sorted(first_wake);
        }
        out.times
            .push(period.span.start_ms + u64::from(r.offset_ms));
        // a page beyond the VM's size (a foreign trace) comes alone
        let g = if page < total {
            jettison_power_model::prefetch::group_of(page, group, total)
        } else {
            page..page + 1
        };
        present.insert_range(g);
        out.present_after.push(present.len() as u64);
    }
    out.pages = present.len() as u64;
    present.clear();
    out
}

/// The pages `period` used, sorted and distinct; `present` must be empty
/// and is left empty.
pub(crate) fn used_pages(period: &IdlePeriod, present: &mut Present) -> Vec<u64> {
    for r in &period.requests {
        present.insert(u64::from(r.page));
    }
    present.drain_sorted()
}

/// A VM's history of used pages, the most recent `keep` periods.
#[derive(Clone, Debug, Default)]
pub(crate) struct History {
    periods: Vec<Vec<u64>>,
    keep: usize,
}

impl History {
    /// A history long enough for every config of `configs`.
    pub(crate) fn for_configs(configs: &[PrefetchConfig]) -> Self {
        let keep = configs
            .iter()
            .map(|c| match *c {
                PrefetchConfig::WorkingSet { periods, .. }
                | PrefetchConfig::Combined { periods, .. } => periods as usize,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        Self {
            periods: Vec::new(),
            keep,
        }
    }

    /// The recorded periods, oldest first.
    pub(crate) fn periods(&self) -> &[Vec<u64>] {
        &self.periods
    }

    /// Whether it records anything (some policy uses a working set).
    pub(crate) fn keeps(&self) -> bool {
        self.keep > 0
    }

    /// Records a period's used pages.
    pub(crate) fn push(&mut self, pages: Vec<u64>) {
        if self.keep == 0 {
            return;
        }
        if self.periods.len() == self.keep {
            self.periods.remove(0);
        }
        self.periods.push(pages);
    }
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
