//! Reading what the guest printed on its serial console. Each daemon appends
//! the guest's lines to a log, each prefixed with the host's Unix time in ms;
//! the logs of both hosts together tell whether the guest kept running.

use serde::Serialize;

/// What the guest's console lines say, over all hosts it ran on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConsoleSummary {
    /// Distinct heartbeats seen.
    pub heartbeats: u64,
    /// Longest time between consecutive heartbeats, by host clock, seconds.
    pub max_gap_s: f64,
    /// Integrity checks the guest reported.
    pub checks: u64,
    /// Failures the guest's integrity checker reported (cumulative).
    pub check_failures: u64,
    /// `JTS CORRUPT` lines.
    pub corrupt_lines: u64,
    /// Whether the guest said it was ready.
    pub ready: bool,
}

fn field(text: &str, key: &str) -> Option<u64> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Summarises console logs (one string per host's log). Heartbeat gaps do
/// not count the time inside `excluded` windows (host ms): deliberate pauses,
/// such as the one taken to compare memory images.
pub fn summarise(logs: &[&str], excluded: &[(u64, u64)]) -> ConsoleSummary {
    let mut beats: Vec<(u64, u64)> = Vec::new();
    let mut s = ConsoleSummary::default();
    for log in logs {
        for line in log.lines() {
            let Some((ms, text)) = line.split_once(' ') else {
                continue;
            };
            let Ok(ms) = ms.parse::<u64>() else { continue };
            if text.contains("JTS HB") {
                if let Some(seq) = field(text, "seq") {
                    beats.push((ms, seq));
                }
            } else if text.contains("JTS CHECK") {
                s.checks += 1;
                s.check_failures = s.check_failures.max(field(text, "fail").unwrap_or(0));
            } else if text.contains("JTS CORRUPT") {
                s.corrupt_lines += 1;
            } else if text.contains("JTS READY") {
                s.ready = true;
            }
        }
    }
    beats.sort();
    beats.dedup_by_key(|b| b.1);
    s.heartbeats = beats.len() as u64;
    s.max_gap_s = beats
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0].0, w[1].0);
            let paused: u64 = excluded
                .iter()
                .map(|&(x, y)| b.min(y).saturating_sub(a.max(x)))
                .sum();
            (b - a).saturating_sub(paused) as f64 / 1000.0
        })
        .fold(0.0, f64::max);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_hosts_and_measures_the_gap() {
        let home = "1000 JTS READY fill_mib=256\n1000 JTS HB seq=1 up_ms=5\n2000 JTS HB seq=2 up_ms=6\n2100 JTS CHECK n=1 fail=0 words=9\n";
        let away = "5500 JTS HB seq=3 up_ms=7\n6500 JTS HB seq=4 up_ms=8\n6600 JTS CHECK n=2 fail=0 words=9\n";
        let s = summarise(&[home, away], &[]);
        assert!(s.ready);
        assert_eq!(s.heartbeats, 4);
        assert!((s.max_gap_s - 3.5).abs() < 1e-9);
        assert_eq!(s.checks, 2);
        assert_eq!(s.check_failures, 0);
    }

    #[test]
    fn deliberate_pauses_do_not_count_as_gaps() {
        let log = "1000 JTS HB seq=1\n2000 JTS HB seq=2\n9000 JTS HB seq=3\n10000 JTS HB seq=4\n";
        assert!((summarise(&[log], &[]).max_gap_s - 7.0).abs() < 1e-9);
        let s = summarise(&[log], &[(2500, 8000), (500, 600)]);
        assert!((s.max_gap_s - 1.5).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn failures_and_garbage() {
        let log = "oops\n100 JTS CHECK n=1 fail=3 words=1\nabc JTS HB seq=1\n200 JTS CORRUPT offset=1 expected=2 got=3\n";
        let s = summarise(&[log], &[]);
        assert_eq!(s.check_failures, 3);
        assert_eq!(s.corrupt_lines, 1);
        assert_eq!(s.heartbeats, 0);
        assert_eq!(s.max_gap_s, 0.0);
    }
}
