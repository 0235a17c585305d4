use super::*;
use crate::vm::PRESENT;

#[test]
fn the_pace_is_bytes_over_rate() {
    assert_eq!(paced(0, 1000), Duration::ZERO);
    assert_eq!(paced(1000, 1000), Duration::from_secs(1));
    assert_eq!(paced(50_000_000, 50_000_000), Duration::from_secs(1));
    assert_eq!(paced(1, 2), Duration::from_millis(500));
    // a zero rate is taken as one byte a second, never a division by zero
    assert_eq!(paced(3, 0), Duration::from_secs(3));
    // no overflow at the extremes
    assert!(paced(u64::MAX, 1) >= Duration::from_secs(u64::MAX / 1_000_000_000));
}

#[test]
fn the_pace_grows_with_the_bytes_sent() {
    let rate = 50_000_000;
    let mut last = Duration::ZERO;
    for round in 1..=20u64 {
        let due = paced(round * 128 * PAGE_SIZE, rate);
        assert!(due > last);
        last = due;
    }
    // twenty rounds of 512 KiB at 50 MB/s: 210 ms
    assert_eq!(last.as_millis(), 209);
}

#[test]
fn a_round_takes_absent_pages_not_in_flight_from_the_cursor() {
    let mut pages = vec![ABSENT; 10];
    pages[1] = PRESENT;
    pages[4] = PRESENT;
    let inflight = |p: u64| p == 2;
    let (round, next) = next_round(&pages, inflight, 0, 3);
    assert_eq!(round, [0, 3, 5]);
    assert_eq!(next, 6);
    let (round, next) = next_round(&pages, inflight, next, 3);
    assert_eq!(round, [6, 7, 8]);
    let (round, next) = next_round(&pages, inflight, next, 3);
    assert_eq!((round, next), (vec![9], 10));
    let (round, next) = next_round(&pages, inflight, next, 3);
    assert_eq!((round, next), (vec![], 10));
    // from the start again, the page that was in flight is still skipped
    assert_eq!(
        next_round(&pages, inflight, 0, 100).0,
        [0, 3, 5, 6, 7, 8, 9]
    );
}
