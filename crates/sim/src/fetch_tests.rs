use jettison_power_model::prefetch::working_set;

use super::*;
use crate::trace::{Request, Span};

fn period(start_ms: u64, reqs: &[(u32, u32)]) -> IdlePeriod {
    IdlePeriod {
        span: Span {
            start_ms,
            end_ms: start_ms + 3_600_000,
        },
        requests: reqs
            .iter()
            .map(|&(offset_ms, page)| Request { offset_ms, page })
            .collect(),
    }
}

#[test]
fn present_set_inserts_once_and_clears() {
    let mut s = Present::default();
    assert!(s.insert(5) && s.insert(700) && !s.insert(5));
    assert!(s.contains(700) && !s.contains(6) && !s.contains(1 << 40));
    assert_eq!(s.len(), 2);
    s.clear();
    assert!(!s.contains(5) && !s.contains(700));
    assert_eq!(s.len(), 0);
    s.insert_range(60..200);
    s.insert_sorted(&[3, 63, 64, 199, 300]);
    s.insert_range(0..0);
    assert_eq!(s.len(), 140 + 2);
    let all = s.drain_sorted();
    let mut want: Vec<u64> = (60..200).collect();
    want.extend([3, 300]);
    want.sort_unstable();
    assert_eq!(all, want);
    assert_eq!(s.len(), 0);
    assert!(!s.contains(100));
}

#[test]
fn without_prefetching_every_distinct_page_is_a_miss() {
    let pe = period(1000, &[(10, 7), (20, 8), (30, 7), (40, 9)]);
    let mut s = Present::default();
    let f = fetches(&pe, 1, 1 << 20, &[], &mut s);
    assert_eq!(f.times, vec![1010, 1020, 1040]);
    assert_eq!(f.pages, 3);
    assert_eq!(s.len(), 0, "left empty");
}

#[test]
fn a_neighbourhood_group_serves_the_next_pages() {
    // pages 8..16 come with page 8; page 16 is the next group
    let pe = period(0, &[(10, 8), (20, 9), (30, 15), (40, 16)]);
    let f = fetches(&pe, 8, 1 << 20, &[], &mut Present::default());
    assert_eq!(f.times, vec![10, 40]);
    assert_eq!(f.pages, 16);
    // groups are clipped to the VM's memory
    let pe = period(0, &[(10, 99)]);
    let f = fetches(&pe, 64, 100, &[], &mut Present::default());
    assert_eq!(f.pages, 36);
    // a page beyond it comes alone
    let pe = period(0, &[(10, 150)]);
    let f = fetches(&pe, 64, 100, &[], &mut Present::default());
    assert_eq!((f.times.len(), f.pages), (1, 1));
}

#[test]
fn the_working_set_arrives_with_the_first_miss() {
    // working set {3, 4, 5}: the first miss (page 9) brings it, so the
    // requests for 3 and 5 are hits; 6 is a miss
    let pe = period(0, &[(10, 9), (20, 3), (30, 5), (40, 6)]);
    let f = fetches(&pe, 1, 1 << 20, &[3, 4, 5], &mut Present::default());
    assert_eq!(f.times, vec![10, 40]);
    assert_eq!(f.pages, 5);
    // no request, no fetch: the working set is not sent
    let f = fetches(&period(0, &[]), 1, 1 << 20, &[3], &mut Present::default());
    assert_eq!(f, Fetches::default());
}

#[test]
fn history_keeps_the_longest_window_of_used_pages() {
    let ws = PrefetchConfig::WorkingSet {
        max_pages: 10,
        periods: 2,
    };
    let mut h = History::for_configs(&[PrefetchConfig::None, ws]);
    assert!(h.keeps());
    for pages in [vec![1], vec![2], vec![3, 3]] {
        let reqs: Vec<(u32, u32)> = pages.iter().map(|&p| (0, p)).collect();
        h.push(used_pages(&period(0, &reqs), &mut Present::default()));
    }
    assert_eq!(h.periods(), &[vec![2], vec![3]]);
    assert_eq!(ws.first_wake(h.periods()), working_set(h.periods(), 2, 10));
    assert!(!History::for_configs(&[PrefetchConfig::None]).keeps());
}
