//! Certificate expiry: which warnings are due, and the status line (pure).
//!
//! A daemon warns when its own certificate or the CA expires within the
//! window of `expiry_warning_days` (default 30): at start, at each reload
//! and daily ([`crate::TlsContext::warn_if_expiring`]), and shows both dates
//! in its status ([`status_text`]).

use std::fmt;

/// When this host's certificate and the CA stop being valid (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertExpiry {
    /// End of validity of this host's certificate.
    pub own_not_after: i64,
    /// End of validity of the CA (the earliest, if the CA file holds several).
    pub ca_not_after: i64,
}

/// Which certificate a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiring {
    /// This host's certificate.
    Own,
    /// The deployment CA's certificate.
    Ca,
}

/// A certificate that expires within the warning window (or has expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryWarning {
    /// Which certificate.
    pub what: Expiring,
    /// Its end of validity (Unix seconds).
    pub not_after: i64,
    /// Whole days left (negative once expired).
    pub days_left: i64,
}

const DAY: i64 = 86_400;

/// Whole days from `now` to `not_after`, rounded down (negative once past).
pub fn days_left(not_after: i64, now: i64) -> i64 {
    (not_after - now).div_euclid(DAY)
}

/// The warnings due at `now` with a window of `window_days`: one for each
/// certificate whose end of validity is less than `window_days` days away
/// (or past). A window of 0 warns only about expired certificates.
pub fn expiry_warnings(expiry: &CertExpiry, now: i64, window_days: u32) -> Vec<ExpiryWarning> {
    let window = i64::from(window_days) * DAY;
    [
        (Expiring::Own, expiry.own_not_after),
        (Expiring::Ca, expiry.ca_not_after),
    ]
    .into_iter()
    .filter(|(_, not_after)| *not_after - now < window || *not_after <= now)
    .map(|(what, not_after)| ExpiryWarning {
        what,
        not_after,
        days_left: days_left(not_after, now),
    })
    .collect()
}

/// A date (UTC) as `YYYY-MM-DD`.
pub fn date(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => {
            let d = t.date();
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        }
        Err(_) => format!("@{unix}"),
    }
}

impl fmt::Display for Expiring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expiring::Own => "this host's certificate",
            Expiring::Ca => "the CA certificate",
        })
    }
}

impl fmt::Display for ExpiryWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.days_left < 0 {
            write!(f, "{} expired on {}", self.what, date(self.not_after))
        } else {
            write!(
                f,
                "{} expires on {} (in {} days)",
                self.what,
                date(self.not_after),
                self.days_left
            )
        }
    }
}

/// The status line: both dates and days left, each marked `WARNING` when
/// it is within the window, e.g. `certificate until 2027-05-01 (412 days),
/// CA until 2035-04-28 (3650 days)`.
pub fn status_text(expiry: &CertExpiry, now: i64, window_days: u32) -> String {
    let warned = expiry_warnings(expiry, now, window_days);
    let item = |what: Expiring, label: &str, not_after: i64| {
        let days = days_left(not_after, now);
        let mut s = if days < 0 {
            format!("{label} EXPIRED on {}", date(not_after))
        } else {
            format!("{label} until {} ({days} days)", date(not_after))
        };
        if warned.iter().any(|w| w.what == what) {
            s.push_str(" WARNING: renew it");
        }
        s
    };
    format!(
        "{}, {}",
        item(Expiring::Own, "certificate", expiry.own_not_after),
        item(Expiring::Ca, "CA", expiry.ca_not_after)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-01-01T00:00:00Z
    const NOW: i64 = 1_767_225_600;

    fn expiry(own_days: i64, ca_days: i64) -> CertExpiry {
        CertExpiry {
            own_not_after: NOW + own_days * DAY,
            ca_not_after: NOW + ca_days * DAY,
        }
    }

    #[test]
    fn days_left_rounds_down() {
        assert_eq!(days_left(NOW + 30 * DAY, NOW), 30);
        assert_eq!(days_left(NOW + 30 * DAY - 1, NOW), 29);
        assert_eq!(days_left(NOW, NOW), 0);
        assert_eq!(days_left(NOW - 1, NOW), -1);
        assert_eq!(days_left(NOW - DAY - 1, NOW), -2);
    }

    #[test]
    fn nothing_outside_the_window() {
        assert!(expiry_warnings(&expiry(31, 3650), NOW, 30).is_empty());
        assert!(expiry_warnings(&expiry(30, 30), NOW, 30).is_empty());
    }

    #[test]
    fn warns_inside_the_window() {
        let w = expiry_warnings(&expiry(29, 3650), NOW, 30);
        assert_eq!(
            w,
            vec![ExpiryWarning {
                what: Expiring::Own,
                not_after: NOW + 29 * DAY,
                days_left: 29
            }]
        );
        assert_eq!(
            w[0].to_string(),
            "this host's certificate expires on 2026-01-30 (in 29 days)"
        );
        // One second inside the window.
        let e = CertExpiry {
            own_not_after: NOW + 30 * DAY - 1,
            ca_not_after: NOW + 10 * DAY,
        };
        let w = expiry_warnings(&e, NOW, 30);
        assert_eq!(w.len(), 2);
        assert_eq!(w[1].what, Expiring::Ca);
        assert_eq!(w[1].days_left, 10);
    }

    #[test]
    fn expired_certificates_warn_even_with_no_window() {
        let w = expiry_warnings(&expiry(-2, 5), NOW, 0);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].days_left, -2);
        assert_eq!(
            w[0].to_string(),
            "this host's certificate expired on 2025-12-30"
        );
        assert!(expiry_warnings(&expiry(1, 1), NOW, 0).is_empty());
    }

    #[test]
    fn a_larger_window_warns_earlier() {
        let e = expiry(60, 3650);
        assert!(expiry_warnings(&e, NOW, 30).is_empty());
        assert_eq!(expiry_warnings(&e, NOW, 90).len(), 1);
        // Later, the same certificate enters the 30-day window.
        assert_eq!(expiry_warnings(&e, NOW + 31 * DAY, 30).len(), 1);
    }

    #[test]
    fn status_line() {
        assert_eq!(
            status_text(&expiry(412, 3650), NOW, 30),
            "certificate until 2027-02-17 (412 days), CA until 2035-12-30 (3650 days)"
        );
        assert_eq!(
            status_text(&expiry(12, 3650), NOW, 30),
            "certificate until 2026-01-13 (12 days) WARNING: renew it, CA until 2035-12-30 (3650 days)"
        );
        assert_eq!(
            status_text(&expiry(-1, 20), NOW, 30),
            "certificate EXPIRED on 2025-12-31 WARNING: renew it, CA until 2026-01-21 (20 days) WARNING: renew it"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(NOW), "2026-01-01");
        assert_eq!(date(NOW - 1), "2025-12-31");
    }
}
