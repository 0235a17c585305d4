//! Prefetching: which pages a consolidated VM's miss fetches besides the
//! one it asked for. Pure code shared by the server and the simulator.
//!
//! * `none`: the missing page only.
//! * `neighbourhood`: the aligned group of `pages` pages around the miss
//!   (a power of two), so a scan faults once per group.
//! * `working-set`: at the period's first miss, also the pages this VM
//!   fetched in its last `periods` consolidated periods, most often fetched
//!   first, at most `max_pages`; later misses fetch their page only.
//! * `combined`: both.
//!
//! Every miss wakes a sleeping desktop, so each page fetched ahead is a wake
//! avoided if the VM asks for it later in the period.
//!
//! In TOML: `prefetch = "none"`, `prefetch = { neighbourhood = { pages = 64 } }`,
//! `prefetch = { working-set = { max_pages = 8192, periods = 4 } }`,
//! `prefetch = { combined = { pages = 64, max_pages = 8192, periods = 4 } }`.

use std::collections::HashMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// A prefetch policy, as configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum PrefetchConfig {
    /// The missing page only.
    #[default]
    None,
    /// The aligned group of `pages` around each miss.
    Neighbourhood {
        /// Group size in pages, a power of two from 1 to 1024.
        pages: u32,
    },
    /// The recorded working set at the first miss.
    WorkingSet {
        /// At most this many pages.
        max_pages: u32,
        /// Recorded periods taken into account (the most recent ones).
        periods: u32,
    },
    /// Neighbourhood groups, and the working set at the first miss.
    Combined {
        /// Group size in pages, a power of two from 1 to 1024.
        pages: u32,
        /// At most this many working-set pages.
        max_pages: u32,
        /// Recorded periods taken into account.
        periods: u32,
    },
}

impl PrefetchConfig {
    /// Its name in reports: `none`, `neighbourhood-64`, `working-set`, `combined-64`.
    pub fn name(&self) -> String {
        match self {
            Self::None => "none".into(),
            Self::Neighbourhood { pages } => format!("neighbourhood-{pages}"),
            Self::WorkingSet { .. } => "working-set".into(),
            Self::Combined { pages, .. } => format!("combined-{pages}"),
        }
    }

    /// Checks the group size and the bounds.
    pub fn validate(&self) -> Result<(), String> {
        let group_ok = |p: u32| p.is_power_of_two() && p <= 1024;
        match *self {
            Self::None => Ok(()),
            Self::Neighbourhood { pages } | Self::Combined { pages, .. } if !group_ok(pages) => {
                Err(format!(
                    "prefetch group of {pages} pages: use a power of two from 1 to 1024"
                ))
            }
            Self::WorkingSet { periods: 0, .. } | Self::Combined { periods: 0, .. } => {
                Err("prefetch working set over 0 periods: use at least 1".into())
            }
            _ => Ok(()),
        }
    }

    /// Pages per neighbourhood group (1 without one).
    pub fn group_pages(&self) -> u64 {
        match *self {
            Self::Neighbourhood { pages } | Self::Combined { pages, .. } => u64::from(pages.max(1)),
            _ => 1,
        }
    }

    /// The pages to fetch with the period's first miss, from the fetched
    /// pages of earlier periods (`history`, oldest first); sorted.
    pub fn first_wake(&self, history: &[Vec<u64>]) -> Vec<u64> {
        match *self {
            Self::WorkingSet { max_pages, periods }
            | Self::Combined {
                max_pages, periods, ..
            } => working_set(history, periods as usize, max_pages as usize),
            _ => Vec::new(),
        }
    }
}

/// The aligned group of `group` pages holding `page`, within `total` pages.
pub fn group_of(page: u64, group: u64, total: u64) -> Range<u64> {
    let g = group.max(1);
    let start = page - page % g;
    start..(start + g).min(total)
}

/// The pages fetched in the last `periods` periods of `history` (oldest
/// first): those fetched in most periods first, ties to the most recently
/// fetched, then the lower page; at most `max_pages`; returned sorted.
pub fn working_set(history: &[Vec<u64>], periods: usize, max_pages: usize) -> Vec<u64> {
    let recent = &history[history.len().saturating_sub(periods)..];
    // page -> (periods it was fetched in, last period index)
    let mut seen: HashMap<u64, (u32, usize)> = HashMap::new();
    for (i, pages) in recent.iter().enumerate() {
        for &p in pages {
            let e = seen.entry(p).or_insert((0, i));
            if e.1 != i || e.0 == 0 {
                e.0 += 1;
            }
            e.1 = i;
        }
    }
    let mut ranked: Vec<(u64, (u32, usize))> = seen.into_iter().collect();
    ranked.sort_by(|a, b| (b.1 .0, b.1 .1, a.0).cmp(&(a.1 .0, a.1 .1, b.0)));
    let mut out: Vec<u64> = ranked.into_iter().take(max_pages).map(|(p, _)| p).collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_aligned_and_clipped() {
        assert_eq!(group_of(5, 1, 100), 5..6);
        assert_eq!(group_of(5, 4, 100), 4..8);
        assert_eq!(group_of(99, 64, 100), 64..100);
        assert_eq!(group_of(0, 0, 10), 0..1);
    }

    #[test]
    fn working_set_ranks_by_frequency_then_recency() {
        let h = vec![vec![1, 2, 3], vec![2, 3, 9], vec![3, 7]];
        assert_eq!(working_set(&h, 3, 1), vec![3]);
        assert_eq!(working_set(&h, 3, 2), vec![2, 3]);
        // 7 (last period) beats 9 and 1 among the once-fetched.
        assert_eq!(working_set(&h, 3, 3), vec![2, 3, 7]);
        assert_eq!(working_set(&h, 3, 100), vec![1, 2, 3, 7, 9]);
        // Only the last period.
        assert_eq!(working_set(&h, 1, 100), vec![3, 7]);
        assert!(working_set(&[], 4, 100).is_empty());
    }

    #[test]
    fn duplicates_within_a_period_count_once() {
        let h = vec![vec![5, 5, 5], vec![6]];
        assert_eq!(working_set(&h, 2, 1), vec![6]);
    }

    #[test]
    fn config_from_toml_and_validation() {
        #[derive(Deserialize)]
        struct T {
            prefetch: PrefetchConfig,
        }
        let p = |s: &str| toml::from_str::<T>(s).map(|t| t.prefetch);
        assert_eq!(p("prefetch = \"none\"").unwrap(), PrefetchConfig::None);
        let n = p("prefetch = { neighbourhood = { pages = 64 } }").unwrap();
        assert_eq!(n, PrefetchConfig::Neighbourhood { pages: 64 });
        assert_eq!(n.group_pages(), 64);
        assert_eq!(n.name(), "neighbourhood-64");
        let c = p("prefetch = { combined = { pages = 8, max_pages = 2, periods = 1 } }").unwrap();
        assert_eq!(c.first_wake(&[vec![1], vec![4, 5, 6]]), vec![4, 5]);
        assert!(n.first_wake(&[vec![1]]).is_empty());
        assert!(p("prefetch = \"sometimes\"").is_err());
        assert!(PrefetchConfig::Neighbourhood { pages: 3 }
            .validate()
            .is_err());
        assert!(PrefetchConfig::WorkingSet {
            max_pages: 1,
            periods: 0
        }
        .validate()
        .is_err());
        assert!(c.validate().is_ok());
    }
}
