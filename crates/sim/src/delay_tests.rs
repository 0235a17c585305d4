use super::*;

#[test]
fn stall_quantiles_count_zeros_and_cap_at_the_max() {
    let mut s = Stalls::default();
    assert_eq!(s.summary(), StallMs::default());
    s.add_n(0, 98);
    s.add(4_321);
    s.add(7_999);
    assert_eq!(s.count(), 100);
    // 98 of 100 waited nothing: p50 0, p99 the 99th (4,321 ms, its bin's
    // upper edge 4,330 ms), max exact
    assert_eq!(s.quantile_ms(0.5), 0);
    assert_eq!(s.quantile_ms(0.99), 4_330);
    assert_eq!(s.quantile_ms(1.0), 7_999);
    assert_eq!(s.summary().max, 7_999);
    let mut t = Stalls::default();
    t.add(20_000);
    t.absorb(&s);
    assert_eq!((t.count(), t.summary().max), (101, 20_000));
    assert_eq!(t.quantile_ms(0.5), 0);
    // a bin's upper edge never exceeds the maximum
    let mut u = Stalls::default();
    u.add(5);
    assert_eq!(u.quantile_ms(0.5), 5);
}

#[test]
fn returns_share_their_group_s_link() {
    let gib = 1u64 << 30;
    let rs = [
        Return {
            group: 1,
            bytes: gib,
            resume_ms: 5_000,
        },
        Return {
            group: 1,
            bytes: gib,
            resume_ms: 5_000,
        },
        Return {
            group: 2,
            bytes: 0,
            resume_ms: 0,
        },
    ];
    let l = return_groups(&rs, 1e9);
    // two GiB over 1 Gbit/s: 17.18 s each, after its 5 s resume
    assert!((l[0] - (5.0 + 2.0 * gib as f64 * 8.0 / 1e9)).abs() < 1e-9);
    assert_eq!(l[0], l[1]);
    assert_eq!(l[2], 0.0);
    let q = latency_quantiles(l);
    assert_eq!(q.p50, q.p99);
    assert_eq!(latency_quantiles(vec![]), ReturnLatency::default());
    let q = latency_quantiles((1..=100).map(f64::from).collect());
    assert_eq!((q.p50, q.p99), (50.0, 99.0));
}

#[test]
fn mornings_share_one_group_and_days_do_not() {
    let h = 3_600_000;
    let night = |d: u64| Span {
        start_ms: d * DAY_MS - 6 * h,
        end_ms: d * DAY_MS + 9 * h + d * 60_000,
    };
    assert_eq!(
        return_group(night(1), 60_000),
        return_group(night(1), 60_000)
    );
    assert_ne!(
        return_group(night(1), 60_000),
        return_group(night(2), 60_000)
    );
    let lunch = Span {
        start_ms: DAY_MS + 12 * h,
        end_ms: DAY_MS + 13 * h,
    };
    assert_eq!(return_group(lunch, 60_000), (DAY_MS + 13 * h) / 60_000);
    assert_ne!(return_group(lunch, 60_000), return_group(night(1), 60_000));
}
