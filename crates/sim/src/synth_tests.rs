use super::*;
use crate::synth_vm::Vm;
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
        assert!(d.idle.iter().all(|p| p.span.len_ms() > 0));
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

#[test]
fn pareto_sampler_mean_and_tail() {
    let mut r = Rng::new(21);
    let n = 200_000;
    // shape 3: mean 1.5 x the scale
    let xs: Vec<f64> = (0..n).map(|_| r.pareto(2.0, 3.0)).collect();
    assert!(xs.iter().all(|&x| x >= 2.0));
    let m = xs.iter().sum::<f64>() / n as f64;
    assert!((m - 3.0).abs() < 0.06, "{m}");
    // shape 1.3 (the default): P(X > 10 min) = 10^-1.3, P(X > 100 min) = 100^-1.3
    let xs: Vec<f64> = (0..n).map(|_| r.pareto(1.0, 1.3)).collect();
    let tail = |t: f64| xs.iter().filter(|&&x| x > t).count() as f64 / n as f64;
    let (t10, t100) = (tail(10.0), tail(100.0));
    assert!((t10 - 10f64.powf(-1.3)).abs() < 0.003, "{t10}");
    assert!((t100 - 100f64.powf(-1.3)).abs() < 0.0006, "{t100}");
    // heavy-tailed: far more mass beyond 10x the scale than an exponential
    // of the same mean (1.3/0.3 = 4.33) puts beyond 100x
    assert!(t100 > (-100.0f64 / 4.33).exp() * 1e6);
}

#[test]
fn absences_are_cut_at_their_longest() {
    let p = SynthParams {
        absence_max_ms: 30 * 60_000,
        ..SynthParams::default()
    };
    let mut r = Rng::new(2);
    let xs: Vec<u64> = (0..100_000).map(|_| absence_ms(&p, &mut r)).collect();
    assert!(xs
        .iter()
        .all(|&x| (p.absence_min_ms..=p.absence_max_ms).contains(&x)));
    assert!(xs.contains(&p.absence_max_ms), "some absences hit the cut");
}

#[test]
fn idle_periods_start_when_the_agent_detects_the_absence() {
    let p = SynthParams {
        desktops: 20,
        ..small(13)
    };
    let t = generate(&p);
    let mut brief = 0;
    for d in &t.desktops {
        for pe in &d.idle {
            // the VM moves away_after_ms after the last activity (or the trace's start)
            let left = pe.span.start_ms - p.away_after_ms;
            assert!(
                left == 0 || d.activity.iter().any(|a| a.end_ms == left),
                "period at {} follows no activity",
                pe.span.start_ms
            );
            assert!(
                d.activity.iter().any(|a| a.start_ms == pe.span.end_ms)
                    || pe.span.end_ms == t.wall_ms()
            );
            brief += usize::from(pe.span.len_ms() < 600_000);
        }
        // every absence longer than the detection delay is a period, no other
        let mut gaps = 0;
        let mut prev = 0;
        for a in d.activity.iter().chain(std::iter::once(&Span {
            start_ms: t.wall_ms(),
            end_ms: t.wall_ms(),
        })) {
            gaps += usize::from(a.start_ms > prev + p.away_after_ms);
            prev = a.end_ms;
        }
        assert_eq!(gaps, d.idle.len());
        // short absences exist and move nothing
        let short = d
            .activity
            .windows(2)
            .filter(|w| w[1].start_ms - w[0].end_ms < p.away_after_ms)
            .count();
        assert!(short > 10, "{short} absences under the detection delay");
    }
    // heavy tail: some periods end minutes after the move (wasted migrations)
    assert!(brief > 20, "{brief} periods under 10 min");
}

#[test]
fn a_longer_detection_delay_makes_fewer_shorter_periods() {
    let quick = generate(&SynthParams {
        away_after_ms: 120_000,
        ..small(4)
    });
    let slow = generate(&small(4));
    let n = |t: &FleetTrace| t.desktops.iter().map(|d| d.idle.len()).sum::<usize>();
    let ms = |t: &FleetTrace| {
        t.desktops
            .iter()
            .flat_map(|d| &d.idle)
            .map(|p| p.span.len_ms())
            .sum::<u64>()
    };
    assert!(n(&quick) > n(&slow), "{} vs {}", n(&quick), n(&slow));
    assert!(ms(&quick) > ms(&slow));
    // the activity is the same: only the detection differs
    assert_eq!(quick.desktops[0].activity, slow.desktops[0].activity);
}

#[test]
fn the_hot_set_drifts_at_its_rate() {
    let p = SynthParams::default();
    let mut r = Rng::new(8);
    let mut vm = Vm::new(&p, &mut r);
    let before = vm.hot_pages();
    // no time, or no drift, moves nothing
    vm.drift(&p, &mut r, 0);
    assert_eq!(vm.hot_pages(), before);
    let still = SynthParams {
        hot_drift_per_day: 0.0,
        ..p.clone()
    };
    vm.drift(&still, &mut r, 30 * DAY_MS);
    assert_eq!(vm.hot_pages(), before);
    // a week at 10 % a day replaces 1 - e^-0.7 = 50 % of the runs
    vm.drift(&p, &mut r, 7 * DAY_MS);
    let after = vm.hot_pages();
    let kept = before
        .iter()
        .filter(|x| after.binary_search(x).is_ok())
        .count();
    let kept = kept as f64 / before.len() as f64;
    assert!((kept - (-0.7f64).exp()).abs() < 0.1, "kept {kept}");
    // the set keeps its size (runs keep their lengths; overlaps aside)
    assert!(after.len() as f64 > 0.95 * before.len() as f64);
}

#[test]
fn drift_makes_old_periods_predict_less() {
    let still = generate(&SynthParams {
        hot_drift_per_day: 0.0,
        ..small(6)
    });
    let drifting = generate(&SynthParams {
        hot_drift_per_day: 0.5,
        ..small(6)
    });
    // pages of the first long period found again in the last one
    let overlap = |t: &FleetTrace| {
        let ps = long_periods(t, 0);
        let set = |pe: &IdlePeriod| -> std::collections::BTreeSet<u32> {
            pe.requests.iter().map(|r| r.page).collect()
        };
        let (a, b) = (set(ps[0]), set(ps[ps.len() - 1]));
        a.intersection(&b).count() as f64 / a.len() as f64
    };
    let (s, d) = (overlap(&still), overlap(&drifting));
    assert!(s > 0.6, "{s}");
    assert!(d < s / 2.0, "{d} vs {s}");
}

#[test]
fn every_parameter_is_documented_once_with_a_source() {
    let p = SynthParams::default();
    let docs = p.documented();
    let json = serde_json::to_value(&p).unwrap();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(docs.len(), keys.len(), "{keys:?}");
    for k in keys {
        assert_eq!(
            docs.iter().filter(|d| d.name == k.as_str()).count(),
            1,
            "{k}"
        );
    }
    for d in &docs {
        assert!(
            !d.source.is_empty() && !d.value.is_empty() && !d.meaning.is_empty(),
            "{d:?}"
        );
    }
    // what is not cited says so
    assert!(docs.iter().any(|d| d.source == "assumed"));
    assert!(docs
        .iter()
        .any(|d| d.source.starts_with("measured on this machine")));
}

#[test]
fn the_memory_copy_scales_with_guest_memory() {
    let p = SynthParams::default();
    // 1.2 s per 256 MiB: 19.2 s for 4 GiB
    assert_eq!(p.durable_copy_ms(), 19_200);
    let small_vm = SynthParams {
        vm_pages: 65_536,
        ..p
    };
    assert_eq!(small_vm.durable_copy_ms(), 1_200);
}

#[test]
fn a_scan_adds_bursts_of_cold_pages_to_long_periods_only() {
    let base = SynthParams {
        desktops: 4,
        days: 7,
        hot_pages: 256,
        arrival_accesses: 64,
        ..SynthParams::default()
    };
    let calm = generate(&base);
    let stormy = generate(&SynthParams {
        scan_p: 1.0,
        ..base.clone()
    });
    let long = |t: &FleetTrace| -> Vec<usize> {
        t.desktops
            .iter()
            .flat_map(|d| &d.idle)
            .filter(|p| p.span.len_ms() >= base.scan_min_period_ms)
            .map(|p| p.requests.len())
            .collect()
    };
    let (a, b) = (long(&calm), long(&stormy));
    assert_eq!(a.len(), b.len());
    assert!(!a.is_empty());
    let scan = (base.scan_bursts * base.scan_burst_pages) as usize;
    for (x, y) in a.iter().zip(&b) {
        // nearly every scanned page is fresh (uniform over 4 GiB)
        assert!(y >= &(x + scan * 9 / 10), "{x} -> {y}");
    }
    stormy.validate().unwrap();
    // still one trace per seed
    assert_eq!(generate(&base), calm);
}
