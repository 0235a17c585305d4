//! Settings from the kernel command line (`jettison.<key>=<value>`).

use std::net::SocketAddr;
use std::str::FromStr;

/// Prefix of our keys on the kernel command line.
pub const PREFIX: &str = "jettison.";

/// Workload settings. Every field has a default; see [`Settings::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Share of MemTotal (percent, 0..=100) to allocate and fill at start.
    pub fill_pct: u32,
    /// Size of the integrity-checked region in MiB (0 disables the checker).
    pub check_mib: u32,
    /// Seconds between integrity checks (>= 1).
    pub check_interval_s: u32,
    /// Pages of the check region rewritten with a new generation per check.
    pub rewrite_pages: u32,
    /// Milliseconds between heartbeats (>= 1).
    pub hb_interval_ms: u32,
    /// Random pages of the 4 MiB cache buffer dirtied every second.
    pub touch_pages: u32,
    /// Seed of the pattern and of the fill data.
    pub seed: u64,
    /// Chat peer to keep a TCP connection to, if any.
    pub peer: Option<SocketAddr>,
    /// Client id announced to the peer (default: hostname, else eth0's MAC).
    pub id: Option<String>,
    /// Mail server to poll, if any.
    pub mail: Option<SocketAddr>,
    /// Seconds between mail polls (>= 1).
    pub mail_interval_s: u32,
    /// Seconds between mail-cache writes to the disk (>= 1).
    pub disk_interval_s: u32,
    /// File name of the mail cache in `/mnt/disk` (no `/`).
    pub disk_file: String,
    /// Seconds between two pieces of the memory scan (0: no scan).
    pub scan_every_s: u32,
    /// MiB of filled memory read per piece of the scan.
    pub scan_mib: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            fill_pct: 50,
            check_mib: 16,
            check_interval_s: 2,
            rewrite_pages: 64,
            hb_interval_ms: 1000,
            touch_pages: 8,
            seed: 0x4a54_535f_6775_6573,
            peer: None,
            id: None,
            mail: None,
            mail_interval_s: 10,
            disk_interval_s: 5,
            disk_file: "mail-cache.log".into(),
            scan_every_s: 0,
            scan_mib: 4,
        }
    }
}

/// Parses `value` as `T` and checks it with `ok`; on failure keeps `slot` and
/// records a warning.
fn set<T: FromStr>(
    slot: &mut T,
    key: &str,
    value: &str,
    ok: impl Fn(&T) -> bool,
    warnings: &mut Vec<String>,
) {
    match value.parse::<T>() {
        Ok(v) if ok(&v) => *slot = v,
        _ => warnings.push(format!(
            "bad value {value:?} for jettison.{key}, using default"
        )),
    }
}

/// Whether `v` is 1..=`max` printable ASCII characters without spaces.
fn valid_name(v: &str, max: usize) -> bool {
    !v.is_empty() && v.len() <= max && v.bytes().all(|b| b.is_ascii_graphic())
}

/// Parses a kernel command line. Returns the settings (defaults for missing
/// or invalid keys) and human-readable warnings for every value ignored.
/// Keys used by the init script (`ip`, `gw`) are accepted and ignored here.
pub fn parse_cmdline(cmdline: &str) -> (Settings, Vec<String>) {
    let mut s = Settings::default();
    let mut w = Vec::new();
    for token in cmdline.split_whitespace() {
        let Some(rest) = token.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((key, value)) = rest.split_once('=') else {
            w.push(format!(
                "ignoring {token:?}: expected jettison.<key>=<value>"
            ));
            continue;
        };
        match key {
            "fill_pct" => set(&mut s.fill_pct, key, value, |v| *v <= 100, &mut w),
            "check_mib" => set(&mut s.check_mib, key, value, |v| *v <= 4096, &mut w),
            "check_interval_s" => set(&mut s.check_interval_s, key, value, |v| *v >= 1, &mut w),
            "rewrite_pages" => set(&mut s.rewrite_pages, key, value, |_| true, &mut w),
            "hb_interval_ms" => set(&mut s.hb_interval_ms, key, value, |v| *v >= 1, &mut w),
            "touch_pages" => set(&mut s.touch_pages, key, value, |_| true, &mut w),
            "seed" => set(&mut s.seed, key, value, |_| true, &mut w),
            "peer" => match value.parse::<SocketAddr>() {
                Ok(a) => s.peer = Some(a),
                Err(_) => w.push(format!(
                    "bad value {value:?} for jettison.peer (want ip:port), no peer"
                )),
            },
            "mail" => match value.parse::<SocketAddr>() {
                Ok(a) => s.mail = Some(a),
                Err(_) => w.push(format!(
                    "bad value {value:?} for jettison.mail (want ip:port), no mail"
                )),
            },
            "id" => match value {
                v if valid_name(v, 64) => s.id = Some(v.to_string()),
                _ => w.push(format!(
                    "bad value {value:?} for jettison.id, using default"
                )),
            },
            "mail_interval_s" => set(&mut s.mail_interval_s, key, value, |v| *v >= 1, &mut w),
            "disk_interval_s" => set(&mut s.disk_interval_s, key, value, |v| *v >= 1, &mut w),
            "disk_file" => match value {
                v if valid_name(v, 100) && !v.contains('/') && !v.starts_with('.') => {
                    s.disk_file = v.to_string()
                }
                _ => w.push(format!(
                    "bad value {value:?} for jettison.disk_file, using default"
                )),
            },
            "scan_every_s" => set(&mut s.scan_every_s, key, value, |_| true, &mut w),
            "scan_mib" => set(&mut s.scan_mib, key, value, |v| *v >= 1, &mut w),
            "ip" | "gw" => {}
            _ => w.push(format!("unknown key jettison.{key}, ignored")),
        }
    }
    (s, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_absent() {
        let (s, w) = parse_cmdline("console=ttyS0 quiet panic=-1 rdinit=/init");
        assert_eq!(s, Settings::default());
        assert!(w.is_empty());
        assert_eq!((s.fill_pct, s.check_mib, s.check_interval_s), (50, 16, 2));
        assert_eq!((s.hb_interval_ms, s.touch_pages, s.peer), (1000, 8, None));
    }

    #[test]
    fn overrides() {
        let (s, w) = parse_cmdline(
            "console=ttyS0 jettison.fill_pct=30 jettison.check_mib=4 jettison.check_interval_s=5 \
             jettison.hb_interval_ms=250 jettison.touch_pages=2 jettison.seed=9 \
             jettison.rewrite_pages=3 jettison.peer=10.0.0.2:7000 jettison.ip=10.0.0.5/24\n",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.fill_pct, 30);
        assert_eq!(s.check_mib, 4);
        assert_eq!(s.check_interval_s, 5);
        assert_eq!(s.hb_interval_ms, 250);
        assert_eq!(s.touch_pages, 2);
        assert_eq!(s.seed, 9);
        assert_eq!(s.rewrite_pages, 3);
        assert_eq!(s.peer, Some("10.0.0.2:7000".parse().unwrap()));
    }

    #[test]
    fn garbage_gives_default_and_warning() {
        let (s, w) = parse_cmdline(
            "jettison.fill_pct=lots jettison.fill_pct=101 jettison.check_interval_s=0 \
             jettison.hb_interval_ms=-5 jettison.peer=nowhere jettison.bogus=1 jettison.novalue",
        );
        assert_eq!(s, Settings::default());
        assert_eq!(w.len(), 7, "{w:?}");
        assert!(w[0].contains("fill_pct"));
        assert!(w[5].contains("unknown"));
    }

    #[test]
    fn office_settings() {
        let (s, w) = parse_cmdline(
            "jettison.id=desk-7 jettison.mail=10.0.0.3:1110 jettison.mail_interval_s=3 \
             jettison.disk_interval_s=2 jettison.disk_file=cache.log jettison.gw=10.0.0.1",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.id.as_deref(), Some("desk-7"));
        assert_eq!(s.mail, Some("10.0.0.3:1110".parse().unwrap()));
        assert_eq!((s.mail_interval_s, s.disk_interval_s), (3, 2));
        assert_eq!(s.disk_file, "cache.log");
        let (s, w) = parse_cmdline(
            "jettison.disk_file=../x jettison.disk_file=.hidden jettison.mail=x \
             jettison.mail_interval_s=0 jettison.id=",
        );
        assert_eq!(w.len(), 5, "{w:?}");
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn scan_settings() {
        let (s, w) = parse_cmdline("jettison.scan_every_s=15 jettison.scan_mib=8");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!((s.scan_every_s, s.scan_mib), (15, 8));
        assert_eq!(Settings::default().scan_every_s, 0, "no scan by default");
        let (s, w) = parse_cmdline("jettison.scan_mib=0 jettison.scan_every_s=x");
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn last_valid_value_wins() {
        let (s, w) = parse_cmdline("jettison.fill_pct=10 jettison.fill_pct=x jettison.fill_pct=20");
        assert_eq!(s.fill_pct, 20);
        assert_eq!(w.len(), 1);
    }
}
