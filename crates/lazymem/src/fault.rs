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

impl VmMemory {
    /// Makes every page in `wanted` present, fetching absent ones (with their
    /// aligned `fetch_pages` group) from the source, each at most once.
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
            let g0 = p - p % self.fetch_pages;
            let g1 = (g0 + self.fetch_pages).min(self.pages());
            claim.extend((g0..g1).filter(|&q| absent(q) && !st.inflight.contains_key(&q)));
        }
        (claim.into_iter().collect(), waits)
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

/// Splits ascending page numbers into runs of consecutive pages `(first, count)`.
fn runs(pages: &[u64]) -> Vec<(u64, u64)> {
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
}
