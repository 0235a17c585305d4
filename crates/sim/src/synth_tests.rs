use super::*;
use crate::trace::Request;

fn small(seed: u64) -> SynthParams {
    SynthParams {
        seed,
        desktops: 4,
        days: 14,
        ..SynthParams::default()
    }
}

#[test]
fn deterministic_given_the_seed_and_valid() {
    let a = generate(&small(3));
    assert_eq!(a, generate(&small(3)));
    assert_ne!(a, generate(&small(4)));
    a.validate().unwrap();
    assert_eq!(a.desktops.len(), 4);
}

#[test]
fn office_hours_weekends_and_idle_periods() {
    let t = generate(&small(9));
    for d in &t.desktops {
        for a in &d.activity {
            let day = a.start_ms / DAY_MS;
            assert!(day % 7 < 5, "no work on weekends");
            let h = (a.start_ms % DAY_MS) as f64 / HOUR;
            assert!((8.0..19.0).contains(&h), "starts at {h}");
        }
        assert!(d.idle.iter().all(|p| p.span.len_ms() >= 600_000));
        // the weekend is one idle period longer than two days
        assert!(d.idle.iter().any(|p| p.span.len_ms() > 2 * DAY_MS));
        // a working day has breaks: more idle periods than days
        assert!(d.idle.len() > 14, "{}", d.idle.len());
    }
}

fn long_periods(t: &FleetTrace, d: usize) -> Vec<&IdlePeriod> {
    t.desktops[d]
        .idle
        .iter()
        .filter(|i| i.span.len_ms() > 10 * HOUR as u64)
        .collect()
}

#[test]
fn requests_are_first_touches_sorted_within_memory() {
    let p = small(5);
    let t = generate(&p);
    for pe in t.desktops.iter().flat_map(|d| &d.idle) {
        let mut pages: Vec<u32> = pe.requests.iter().map(|r| r.page).collect();
        assert!(pages.iter().all(|&x| x < p.vm_pages));
        pages.sort_unstable();
        let n = pages.len();
        pages.dedup();
        assert_eq!(n, pages.len(), "each page once per period");
    }
}

#[test]
fn arrival_burst_then_timer_bursts() {
    let p = small(5);
    let t = generate(&p);
    let pe = long_periods(&t, 0)[0];
    let in_burst = |r: &&Request| u64::from(r.offset_ms) < p.burst_ms;
    let burst = pe.requests.iter().filter(in_burst).count();
    // 2048 accesses of ~8 pages, mostly to the 4096 hot pages
    assert!((2000..4096).contains(&burst), "{burst}");
    // afterwards, requests come in bursts within a second of each other
    let times: Vec<u32> = pe.requests.iter().map(|r| r.offset_ms).collect();
    let later: Vec<&u32> = times
        .iter()
        .filter(|&&x| u64::from(x) >= p.burst_ms)
        .collect();
    let starts = later.windows(2).filter(|w| w[1] - w[0] > 1_000).count() + 1;
    let hours = pe.span.len_ms() as f64 / HOUR;
    let expected = hours * p.timer_bursts_per_hour;
    assert!(
        (starts as f64) < expected + 4.0 * expected.sqrt(),
        "{starts} bursts vs {expected}"
    );
}

#[test]
fn the_hot_set_recurs_period_after_period_with_locality() {
    let p = small(7);
    let t = generate(&p);
    let periods = long_periods(&t, 1);
    assert!(periods.len() >= 2);
    let pages = |pe: &IdlePeriod| -> std::collections::BTreeSet<u32> {
        pe.requests.iter().map(|r| r.page).collect()
    };
    let (a, b) = (pages(periods[0]), pages(periods[1]));
    let common = a.intersection(&b).count();
    // most of a long period's pages are hot, and most of them recur
    assert!(
        common as f64 > 0.6 * a.len() as f64,
        "{common} of {}",
        a.len()
    );
    // a long period asks for most of the hot set, well under a tenth of memory
    assert!(a.len() > p.hot_pages as usize / 2, "{}", a.len());
    assert!(a.len() < (p.vm_pages / 10) as usize);
    // spatial locality: most pages have a neighbour in the set
    let near = a
        .iter()
        .filter(|&&x| a.contains(&(x + 1)) || a.contains(&x.wrapping_sub(1)))
        .count();
    assert!(near as f64 > 0.8 * a.len() as f64, "{near} of {}", a.len());
    // another desktop has another hot set
    let other = pages(long_periods(&t, 2)[0]);
    assert!(a.intersection(&other).count() < a.len() / 20);
}

#[test]
fn rng_moments() {
    let mut r = Rng::new(11);
    let n = 50_000;
    let e = (0..n).map(|_| r.exp(2.0)).sum::<f64>() / n as f64;
    assert!((e - 2.0).abs() < 0.05, "{e}");
    let q = (0..n).map(|_| f64::from(r.poisson(1.5))).sum::<f64>() / n as f64;
    assert!((q - 1.5).abs() < 0.03, "{q}");
    assert!((0..n).all(|_| (0.0..1.0).contains(&r.unit())));
}
