//! Refused connections, logged without letting a flood of them flood the
//! log: each listener logs the first [`BURST`] refusals of a
//! [`WINDOW`], then one line with how many more it refused in it. A
//! slow-loris or garbage flood of thousands of connections a second then
//! costs a few lines, not a disk.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refusals logged one by one per window.
pub const BURST: u32 = 20;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// What to log for one refusal.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log this refusal.
    Log,
    /// Log this refusal, and that `n` more were refused, unlogged, in the
    /// window that just ended.
    LogAfterSuppressed(u64),
    /// Count it, log nothing.
    Suppress,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// One listener's refusal counter.
#[derive(Debug)]
pub struct RefusalLog {
    window: Mutex<Option<Window>>,
}

impl Default for RefusalLog {
    fn default() -> Self {
        Self::new()
    }
}

impl RefusalLog {
    /// No refusal yet.
    pub fn new() -> Self {
        RefusalLog {
            window: Mutex::new(None),
        }
    }

    /// The verdict for a refusal at `now`.
    pub fn refused(&self, now: Instant) -> Verdict {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let suppressed = match w.as_ref() {
            Some(cur) if now.saturating_duration_since(cur.start) < WINDOW => None,
            Some(cur) => Some(cur.suppressed),
            None => Some(0),
        };
        if let Some(before) = suppressed {
            *w = Some(Window {
                start: now,
                logged: 1,
                suppressed: 0,
            });
            return match before {
                0 => Verdict::Log,
                n => Verdict::LogAfterSuppressed(n),
            };
        }
        let cur = w.as_mut().expect("a window");
        if cur.logged < BURST {
            cur.logged += 1;
            Verdict::Log
        } else {
            cur.suppressed += 1;
            Verdict::Suppress
        }
    }

    /// Logs a refusal of `peer` for `why` as its verdict says.
    pub fn log(&self, peer: &str, why: &dyn std::fmt::Display) {
        match self.refused(Instant::now()) {
            Verdict::Log => tracing::warn!(peer, "connection refused: {why}"),
            Verdict::LogAfterSuppressed(n) => {
                tracing::warn!(
                    suppressed = n,
                    "{n} more connections refused in the last window, not logged one by one"
                );
                tracing::warn!(peer, "connection refused: {why}");
            }
            Verdict::Suppress => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_logged_then_counted_then_summed_up() {
        let log = RefusalLog::new();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert_eq!(log.refused(t0), Verdict::Log);
        }
        for i in 0..1000u32 {
            let t = t0 + Duration::from_millis(u64::from(i) * 9);
            assert_eq!(log.refused(t), Verdict::Suppress);
        }
        let next = t0 + WINDOW;
        assert_eq!(log.refused(next), Verdict::LogAfterSuppressed(1000));
        assert_eq!(log.refused(next), Verdict::Log, "a new window logs again");
    }

    #[test]
    fn a_quiet_window_reports_nothing_suppressed() {
        let log = RefusalLog::new();
        let t0 = Instant::now();
        assert_eq!(log.refused(t0), Verdict::Log);
        assert_eq!(log.refused(t0 + WINDOW * 3), Verdict::Log);
    }
}
