//! Pulling every absent page of a VM's file, rate-limited, in the
//! background (against wake storms: the server's `[pull]` policy decides
//! when). The pull uses the faults' fetch path: it claims a few runs of
//! absent pages at a time (as the working-set prefetch does), so that a
//! fault on one of them waits for its run instead of fetching it again,
//! fetches them once each with the same retry and backoff, and stores them
//! as fetched ahead of use (so a recorded working set leaves them out). It
//! holds no lock across a fetch: faults of the VM go on meanwhile, and
//! never wait for more than one of its runs.

use std::time::{Duration, Instant};

use crate::fault::FaultError;
use crate::vm::{VmMemory, ABSENT};
use crate::PAGE_SIZE;

/// Pages claimed per round of the pull (512 KiB): a fault that needs one of
/// them waits for at most this much of the pull.
const ROUND_PAGES: usize = 128;

/// How long the pull waits when every absent page left is in flight (being
/// fetched by faults).
const IN_FLIGHT_PAUSE: Duration = Duration::from_millis(50);

/// Why a pull stopped before every page was present.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The VM was removed or the filesystem unmounted.
    #[error("VM removed during the pull")]
    Cancelled,
    /// The replica could not be written.
    #[error("replica: {0}")]
    Replica(std::io::Error),
}

impl From<FaultError> for PullError {
    fn from(e: FaultError) -> Self {
        match e {
            FaultError::Cancelled => PullError::Cancelled,
            FaultError::Replica(e) => PullError::Replica(e),
        }
    }
}

/// What a finished pull fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PullDone {
    /// Pages the pull itself fetched (faults fetched the others).
    pub pages: u64,
    /// Fetches it made (one per run).
    pub fetches: u64,
}

/// How long after its start a transfer at `rate_bytes_per_s` may have sent
/// `bytes` (the rate limiter: the pull sleeps until then).
pub fn paced(bytes: u64, rate_bytes_per_s: u64) -> Duration {
    let rate = u128::from(rate_bytes_per_s.max(1));
    let ns = u128::from(bytes) * 1_000_000_000 / rate;
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// Up to `max` absent pages not in flight, from page `from` on (ascending),
/// and the page to continue from.
fn next_round(
    pages: &[u8],
    inflight: impl Fn(u64) -> bool,
    from: u64,
    max: usize,
) -> (Vec<u64>, u64) {
    let mut out = Vec::new();
    let mut p = from;
    while (p as usize) < pages.len() && out.len() < max {
        if pages[p as usize] == ABSENT && !inflight(p) {
            out.push(p);
        }
        p += 1;
    }
    (out, p)
}

impl VmMemory {
    /// Pages not on the server (neither fetched nor written).
    pub fn absent_pages(&self) -> u64 {
        let st = self.lock_state();
        st.pages.iter().filter(|&&s| s == ABSENT).count() as u64
    }

    /// Fetches every absent page, at most `rate_bytes_per_s` on average,
    /// telling `progress` the bytes it fetched so far after each round.
    /// Ends when every page is present, or with [`PullError::Cancelled`]
    /// when the VM goes. A failing fetch (the desktop unreachable) is
    /// retried with backoff as a fault's is.
    pub async fn pull_absent(
        &self,
        rate_bytes_per_s: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<PullDone, PullError> {
        let started = Instant::now();
        let mut done = PullDone::default();
        let mut cursor = 0;
        loop {
            if self.is_cancelled() {
                return Err(PullError::Cancelled);
            }
            let round = {
                let st = self.lock_state();
                let (round, next) = next_round(
                    &st.pages,
                    |p| st.inflight.contains_key(&p),
                    cursor,
                    ROUND_PAGES,
                );
                cursor = next;
                round
            };
            if round.is_empty() {
                if self.absent_pages() == 0 {
                    return Ok(done);
                }
                // the rest was in flight (faults): look again from the start
                cursor = 0;
                tokio::time::sleep(IN_FLIGHT_PAUSE).await;
                continue;
            }
            let claims = self.claim_runs(&round);
            let (pages, fetches) = self.fetch_claimed(claims).await?;
            done.pages += pages;
            done.fetches += fetches;
            progress(done.pages * PAGE_SIZE);
            let due = paced(done.pages * PAGE_SIZE, rate_bytes_per_s);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
#[path = "pull_tests.rs"]
mod tests;
