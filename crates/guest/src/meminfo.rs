//! Parsing `/proc/meminfo` and sizing the memory fill.

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;

/// Headroom always left free below MemTotal so the guest never OOMs.
pub const HEADROOM: u64 = 64 * MIB;

/// Values of interest from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total: u64,
    /// `MemAvailable`, if the kernel reports it.
    pub available: Option<u64>,
}

/// Parses the text of `/proc/meminfo`; `None` if `MemTotal` is missing.
pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some(kib * 1024)
        })
    };
    Some(MemInfo {
        total: field("MemTotal")?,
        available: field("MemAvailable"),
    })
}

/// Bytes to fill for `fill_pct` percent of MemTotal, capped so that at least
/// [`HEADROOM`] of MemTotal (and 16 MiB of MemAvailable) stays free after the
/// fill and the other buffers (`reserved` bytes) are allocated. Rounded down
/// to whole MiB.
pub fn fill_bytes(info: MemInfo, fill_pct: u32, reserved: u64) -> u64 {
    let want = info.total / 100 * u64::from(fill_pct.min(100));
    let mut cap = info.total.saturating_sub(HEADROOM + reserved);
    if let Some(avail) = info.available {
        cap = cap.min(avail.saturating_sub(16 * MIB + reserved));
    }
    want.min(cap) / MIB * MIB
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "MemTotal:         492340 kB\nMemFree:          470000 kB\n\
                          MemAvailable:     460000 kB\nBuffers:               0 kB\n";

    #[test]
    fn parses_total_and_available() {
        let m = parse_meminfo(SAMPLE).unwrap();
        assert_eq!(m.total, 492_340 * 1024);
        assert_eq!(m.available, Some(460_000 * 1024));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn fill_is_share_of_total() {
        let m = MemInfo {
            total: 1000 * MIB,
            available: None,
        };
        assert_eq!(fill_bytes(m, 50, 0), 500 * MIB);
        assert_eq!(fill_bytes(m, 0, 0), 0);
    }

    #[test]
    fn fill_is_capped_by_headroom_and_available() {
        let m = MemInfo {
            total: 512 * MIB,
            available: None,
        };
        assert_eq!(fill_bytes(m, 100, 20 * MIB), 428 * MIB);
        let m = MemInfo {
            total: 512 * MIB,
            available: Some(300 * MIB),
        };
        assert_eq!(fill_bytes(m, 100, 20 * MIB), 264 * MIB);
        let tiny = MemInfo {
            total: 32 * MIB,
            available: None,
        };
        assert_eq!(fill_bytes(tiny, 100, 0), 0);
    }
}
