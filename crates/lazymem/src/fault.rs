//! Fault service: fetching absent pages from the source, once each.
//!
//! A fault claims the absent pages it will fetch in [`PageState::inflight`]
//! (under the state mutex) and releases them when the fetch ends; a concurrent
//! fault that needs a claimed page waits for that claim instead of fetching
//! the page again, then re-checks presence.

use std::collections::BTreeSet;
use std::io;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::watch;
use tracing::{debug, warn};

use jettison_power_model::prefetch::group_of;

use crate::vm::{PageState, VmMemory, ABSENT};
use crate::{FetchError, PAGE_SIZE};

/// First retry delay after a failed fetch.
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// Longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Why a fault could not be served (the reply is then EIO, never zeros).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FaultError {
    /// The VM was removed or the filesystem unmounted.
    #[error("VM removed while the fault was pending")]
    Cancelled,
    /// The replica could not be written.
    #[error("replica: {0}")]
    Replica(#[from] io::Error),
}

/// Pages claimed by one fault; dropping it releases them and wakes waiters.
struct Claim<'a> {
    vm: &'a VmMemory,
    pages: Vec<u64>,
    /// Dropped after the claims are removed: closes the waiters' channel.
    _done: watch::Sender<()>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut st = self.vm.lock_state();
        for p in &self.pages {
            st.inflight.remove(p);
        }
    }
}

/// A run of pages claimed for a prefetch ([`VmMemory::claim_runs`]).
pub(crate) struct RunClaim<'a> {
    first: u64,
    count: u64,
    _claim: Claim<'a>,
}

impl VmMemory {
    /// Makes every page in `wanted` present, fetching absent ones (with their
    /// aligned neighbourhood group) from the source, each at most once.
    pub(crate) async fn ensure_present(&self, wanted: &[u64]) -> Result<(), FaultError> {
        loop {
            if self.is_cancelled() {
                return Err(FaultError::Cancelled);
            }
            let (claim, waits) = {
                let mut st = self.lock_state();
                let (pages, waits) = self.plan(&st, wanted);
                if pages.is_empty() && waits.is_empty() {
                    return Ok(());
                }
                let claim = (!pages.is_empty()).then(|| {
                    let (done, rx) = watch::channel(());
                    for &p in &pages {
                        st.inflight.insert(p, rx.clone());
                    }
                    Claim {
                        vm: self,
                        pages,
                        _done: done,
                    }
                });
                (claim, waits)
            };
            if let Some(claim) = claim {
                let runs = runs(&claim.pages);
                let results = join_all(runs.iter().map(|&(p, n)| self.fetch_run(p, n))).await;
                drop(claim);
                results.into_iter().collect::<Result<Vec<()>, _>>()?;
            }
            for mut rx in waits {
                // Never sent on: returns when the claiming fault ends.
                let _ = rx.changed().await;
            }
        }
    }

    /// Which absent pages to claim (wanted ones plus their groups, unless
    /// already in flight) and which in-flight claims to wait for.
    fn plan(&self, st: &PageState, wanted: &[u64]) -> (Vec<u64>, Vec<watch::Receiver<()>>) {
        let absent = |p: u64| st.pages[p as usize] == ABSENT;
        let mut claim = BTreeSet::new();
        let mut waits = Vec::new();
        for &p in wanted.iter().filter(|&&p| absent(p)) {
            if let Some(rx) = st.inflight.get(&p) {
                waits.push(rx.clone());
                continue;
            }
            let g = group_of(p, self.group, self.pages());
            let (g0, g1) = (g.start, g.end);
            claim.extend((g0..g1).filter(|&q| absent(q) && !st.inflight.contains_key(&q)));
        }
        (claim.into_iter().collect(), waits)
    }

    /// Claims `pages` (a working set) for fetching ahead of use: the absent
    /// ones not in flight, in runs of consecutive pages (at most
    /// [`MAX_RUN_PAGES`] each). From now on a fault on any of them waits
    /// for its run instead of fetching it again; [`Self::fetch_claimed`]
    /// fetches them (dropping the claims releases them unfetched).
    pub(crate) fn claim_runs(&self, pages: &[u64]) -> Vec<RunClaim<'_>> {
        let mut st = self.lock_state();
        let todo: BTreeSet<u64> = pages
            .iter()
            .copied()
            .filter(|&p| p < self.pages())
            .filter(|&p| st.pages[p as usize] == ABSENT && !st.inflight.contains_key(&p))
            .collect();
        let todo: Vec<u64> = todo.into_iter().collect();
        runs(&todo)
            .into_iter()
            .flat_map(|(first, count)| split(first, count, MAX_RUN_PAGES))
            .map(|(first, count)| {
                let (done, rx) = watch::channel(());
                for p in first..first + count {
                    st.inflight.insert(p, rx.clone());
                }
                RunClaim {
                    first,
                    count,
                    _claim: Claim {
                        vm: self,
                        pages: (first..first + count).collect(),
                        _done: done,
                    },
                }
            })
            .collect()
    }

    /// Fetches claimed runs in ascending order, one fetch each, releasing
    /// each claim as its run is stored. Returns the pages and fetches made.
    pub(crate) async fn fetch_claimed(
        &self,
        claims: Vec<RunClaim<'_>>,
    ) -> Result<(u64, u64), FaultError> {
        let (mut pages, mut fetches) = (0, 0);
        for run in claims {
            self.fetch_run(run.first, run.count).await?;
            pages += run.count;
            fetches += 1;
        }
        Ok((pages, fetches))
    }

    /// Fetches pages `first..first+count` and stores them, retrying failures
    /// with backoff until they succeed or the VM is cancelled.
    async fn fetch_run(&self, first: u64, count: u64) -> Result<(), FaultError> {
        let (offset, len) = (first * PAGE_SIZE, count * PAGE_SIZE);
        let mut delay = RETRY_FIRST;
        loop {
            if self.is_cancelled() {
                return Err(FaultError::Cancelled);
            }
            let err = match self.source.fetch(offset, len).await {
                Ok(data) if data.len() as u64 == len => {
                    debug!(vm = self.name(), offset, len, "fetched");
                    self.stats.fetched(first, count, len);
                    self.store_fetched(first, &data)?;
                    return Ok(());
                }
                Ok(data) => FetchError::new(format!("short reply: {} of {len} bytes", data.len())),
                Err(e) => e,
            };
            self.stats.retry();
            warn!(
                vm = self.name(),
                offset,
                len,
                error = %err,
                "fetch failed, retrying in {} ms",
                delay.as_millis()
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    }
}

/// Most pages in one working-set fetch (the wire's limit on a fetch).
const MAX_RUN_PAGES: u64 = jettison_wire::MAX_FETCH_BYTES / PAGE_SIZE;

/// Cuts a run into pieces of at most `max` pages.
fn split(first: u64, count: u64, max: u64) -> Vec<(u64, u64)> {
    (0..count.div_ceil(max))
        .map(|i| (first + i * max, max.min(count - i * max)))
        .collect()
}

/// Splits ascending page numbers into runs of consecutive pages `(first, count)`.
pub fn runs(pages: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &p in pages {
        match out.last_mut() {
            Some((first, count)) if *first + *count == p => *count += 1,
            _ => out.push((p, 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_runs() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[3]), vec![(3, 1)]);
        assert_eq!(runs(&[1, 2, 3, 7, 8, 10]), vec![(1, 3), (7, 2), (10, 1)]);
    }

    #[test]
    fn long_runs_are_split() {
        assert_eq!(split(10, 5, 2), vec![(10, 2), (12, 2), (14, 1)]);
        assert_eq!(split(0, 4, 4), vec![(0, 4)]);
        assert_eq!(split(3, 0, 4), vec![]);
        assert_eq!(MAX_RUN_PAGES, 4096);
    }
}
