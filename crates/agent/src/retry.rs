//! When to try again after a failed idle migration: exponential backoff
//! with a cap (pure; the power loop keeps one per VM and asks it on each
//! tick, so a server that refuses is not asked again every 250 ms).

/// The first wait after a failure (ms).
pub const FIRST_RETRY_MS: u64 = 5_000;
/// The longest wait between two attempts (ms).
pub const MAX_RETRY_MS: u64 = 300_000;

/// The retry schedule of one VM's idle migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryBackoff {
    first_ms: u64,
    max_ms: u64,
    /// Failures since the last success (or reset).
    failures: u32,
    /// No attempt before this time (ms, the power backend's clock).
    not_before_ms: u64,
}

impl Default for RetryBackoff {
    fn default() -> Self {
        RetryBackoff::new(FIRST_RETRY_MS, MAX_RETRY_MS)
    }
}

impl RetryBackoff {
    /// A schedule that waits `first_ms` after the first failure, twice as
    /// long after each next one, never more than `max_ms`.
    pub fn new(first_ms: u64, max_ms: u64) -> Self {
        RetryBackoff {
            first_ms,
            max_ms: max_ms.max(first_ms),
            failures: 0,
            not_before_ms: 0,
        }
    }

    /// Whether an attempt may be made at `now_ms`.
    pub fn may_try(&self, now_ms: u64) -> bool {
        now_ms >= self.not_before_ms
    }

    /// Records a failed attempt at `now_ms`; returns how long to wait (ms)
    /// before the next one.
    pub fn failed(&mut self, now_ms: u64) -> u64 {
        let wait = self
            .first_ms
            .saturating_mul(1u64.checked_shl(self.failures).unwrap_or(u64::MAX))
            .min(self.max_ms);
        self.failures = self.failures.saturating_add(1);
        self.not_before_ms = now_ms.saturating_add(wait);
        wait
    }

    /// An attempt succeeded, or the situation changed (the user came
    /// back): the next failure waits `first_ms` again.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.not_before_ms = 0;
    }

    /// Failures since the last success or reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_schedule_tries_at_once() {
        let b = RetryBackoff::new(5, 100);
        assert!(b.may_try(0));
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn waits_double_after_each_failure_up_to_the_cap() {
        let mut b = RetryBackoff::new(5_000, 60_000);
        let mut now = 1_000;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let w = b.failed(now);
            waits.push(w);
            assert!(!b.may_try(now + w - 1), "tried before the wait was over");
            assert!(b.may_try(now + w));
            now += w;
        }
        assert_eq!(waits, [5_000, 10_000, 20_000, 40_000, 60_000, 60_000]);
        assert_eq!(b.failures(), 6);
    }

    #[test]
    fn no_attempt_on_the_ticks_within_a_wait() {
        // The power loop's 250 ms tick: one attempt per wait, not one per tick.
        let mut b = RetryBackoff::default();
        let mut attempts = 0;
        for tick in 0..(60_000 / 250) {
            let now = tick * 250;
            if b.may_try(now) {
                attempts += 1;
                b.failed(now);
            }
        }
        // At 0, 5 s, 15 s, 35 s within the first minute.
        assert_eq!(attempts, 4);
    }

    #[test]
    fn a_reset_starts_over() {
        let mut b = RetryBackoff::new(10, 1_000);
        b.failed(0);
        b.failed(10);
        b.failed(30);
        b.reset();
        assert!(b.may_try(31));
        assert_eq!(b.failed(31), 10);
    }

    #[test]
    fn many_failures_neither_overflow_nor_pass_the_cap() {
        let mut b = RetryBackoff::new(5_000, MAX_RETRY_MS);
        for i in 0..200 {
            assert!(b.failed(u64::MAX - 10 + i % 3) <= MAX_RETRY_MS);
        }
        assert_eq!(b.failures(), 200);
        // The deadline saturates instead of wrapping to the past.
        assert!(!b.may_try(u64::MAX - 11));
    }

    #[test]
    fn a_cap_below_the_first_wait_is_the_first_wait() {
        let mut b = RetryBackoff::new(1_000, 10);
        assert_eq!(b.failed(0), 1_000);
        assert_eq!(b.failed(1_000), 1_000);
    }
}
