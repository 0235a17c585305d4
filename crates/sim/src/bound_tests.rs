//! The policies' competitive bounds
//! ([`jettison_power_model::bound::competitive_bound`]) against the
//! per-period oracle, over random and adversarial miss sequences; and the
//! oracle against brute force on small periods.

use jettison_power_model::bound::competitive_bound;
use jettison_power_model::policy::policy_profile;
use jettison_power_model::PowerProfile;
use proptest::prelude::*;

use crate::config::PolicySpec;
use crate::cost::{gap_j, page_cycle, Wakes};
use crate::online::run_period;
use crate::oracle::oracle_period;
use crate::report::Outcome;
use crate::trace::Span;

const TICK: u64 = 250;

/// Joules above the asleep floor of the online policy (mean over `draws`
/// seeds for ski rental) and of the oracle.
fn above_floor(spec: &PolicySpec, selective: bool, misses: &[u64], end: u64) -> (f64, f64) {
    let p = PowerProfile::default();
    let w = Wakes::new(&p, selective);
    let span = Span {
        start_ms: 0,
        end_ms: end,
    };
    let floor = p.desktop.asleep_w * end as f64 / 1000.0;
    let prof = policy_profile(&p, selective);
    let draws = if matches!(spec, PolicySpec::SkiRental(_)) {
        64
    } else {
        1
    };
    let mut on = 0.0;
    for d in 0..draws {
        let mut pol = spec.build(&prof, d);
        on += run_period(
            &p,
            &w,
            pol.as_mut(),
            span,
            misses,
            TICK,
            0,
            &mut Outcome::default(),
        )
        .0;
    }
    let opt = oracle_period(&p, &w, span, misses, &mut Outcome::default());
    (on / f64::from(draws as u32) - floor, opt - floor)
}

/// Asserts the bound of `spec` on one period; returns ON / OPT.
fn check(spec: &PolicySpec, selective: bool, misses: &[u64], end: u64) -> f64 {
    let p = PowerProfile::default();
    let prof = policy_profile(&p, selective);
    let b = competitive_bound(&p, selective, TICK, spec.bounded(&prof).unwrap()).unwrap();
    let (on, opt) = above_floor(spec, selective, misses, end);
    assert!(
        on <= b.ratio * opt + b.additive_j + 1e-6,
        "{} selective={selective}: {on:.1} J > {:.3} x {opt:.1} + {:.1} J; misses {misses:?}, end {end}",
        spec.name(),
        b.ratio,
        b.additive_j
    );
    on / opt.max(1e-9)
}

fn specs() -> [PolicySpec; 4] {
    [
        PolicySpec::BreakEven,
        PolicySpec::BreakEvenTimeout,
        PolicySpec::FixedTimeout(60_000),
        PolicySpec::SkiRental(3),
    ]
}

/// Misses from gaps; the period ends `tail` after the last.
fn from_gaps(gaps: &[u64], tail: u64) -> (Vec<u64>, u64) {
    let mut t = 0;
    let misses: Vec<u64> = gaps
        .iter()
        .map(|g| {
            t += g;
            t
        })
        .collect();
    (misses, t + tail.max(1))
}

/// Gaps around the model's edges: within a tick, around the suspend, the
/// transitions, both break-even times, just past a timeout and its tick,
/// and long ones.
fn gap() -> impl Strategy<Value = u64> {
    prop_oneof![
        1u64..300,
        2_700u64..3_300,
        5_300u64..5_700,
        6_300u64..6_700,
        7_800u64..8_300,
        9_700u64..10_100,
        10_000u64..10_300,
        10_000u64..60_000,
        60_000u64..60_600,
        60_000u64..900_000,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn every_policy_within_its_bound(
        gaps in prop::collection::vec(gap(), 0..30),
        tail in gap(),
        selective in any::<bool>(),
    ) {
        let (misses, end) = from_gaps(&gaps, tail);
        for spec in specs() {
            check(&spec, selective, &misses, end);
        }
    }
}

#[test]
fn adversaries_stay_within_the_bounds_and_make_them_bite() {
    // just past the timeout and its tick: each gap slept into at its end
    for selective in [false, true] {
        let p = policy_profile(&PowerProfile::default(), selective);
        let be = jettison_power_model::break_even_ms(&p).unwrap();
        let (m, end) = from_gaps(&vec![be + TICK + 1; 40], be + TICK + 1);
        let r = check(&PolicySpec::BreakEvenTimeout, selective, &m, end);
        assert!(r > 1.3, "the timeout's adversary: {r}");
        // two long gaps, then one just after a sleep at once, over and over
        let pattern = [120_000, 120_000, 3_100];
        let gaps: Vec<u64> = pattern.iter().cycle().take(60).copied().collect();
        let (m, end) = from_gaps(&gaps, 100);
        check(&PolicySpec::BreakEven, selective, &m, end);
        // a burst of misses during each resume
        let gaps: Vec<u64> = [30_000, 2_000, 2_000, 1_000]
            .iter()
            .cycle()
            .take(80)
            .copied()
            .collect();
        let (m, end) = from_gaps(&gaps, 30_000);
        for spec in specs() {
            check(&spec, selective, &m, end);
        }
    }
}

#[test]
fn many_seeds_of_random_periods() {
    let mut rng = crate::synth::Rng::new(99);
    for _ in 0..300 {
        let n = (rng.next_u64() % 25) as usize;
        let mean = rng.range(500.0, 90_000.0);
        let gaps: Vec<u64> = (0..n).map(|_| rng.exp(mean) as u64 + 1).collect();
        let (m, end) = from_gaps(&gaps, rng.exp(mean) as u64);
        let selective = rng.unit() < 0.5;
        for spec in specs() {
            check(&spec, selective, &m, end);
        }
    }
}

/// The least joules of any schedule that sleeps at an awake point or at a
/// multiple of `grid` ms, by exhaustive search over those choices (no
/// memory of the oracle's argument): from an awake moment, sleep now, at a
/// later grid point before the next miss, or stay up for that miss.
fn brute(p: &PowerProfile, w: &Wakes, end: u64, misses: &[u64], grid: u64) -> f64 {
    fn go(
        p: &PowerProfile,
        w: &Wakes,
        end: u64,
        misses: &[u64],
        grid: u64,
        a: u64,
        woken_at: Option<u64>,
    ) -> f64 {
        let k = misses.partition_point(|&m| m <= a);
        let next = misses.get(k).copied();
        let idle = |ms: u64| p.desktop.idle_w * ms as f64 / 1000.0;
        let mut best = f64::INFINITY;
        let stop = next.unwrap_or(end);
        let mut starts = vec![a];
        starts.extend((a / grid + 1..).map(|i| i * grid).take_while(|&t| t < stop));
        for s in starts {
            let j = match next {
                None => idle(s - a) + gap_j(p, end - s, Some(0), &p.resume),
                Some(r) => {
                    let (c, back) = page_cycle(p, w, s, r);
                    let head = idle(s - a) + c;
                    if back >= end {
                        head + w.rest_j
                    } else {
                        head + go(p, w, end, misses, grid, back, Some(back))
                    }
                }
            };
            best = best.min(j);
        }
        let stay = match next {
            None => {
                let rest = woken_at.map_or(0.0, |t| {
                    w.rest_j - p.desktop.idle_w * (end - t).min(w.rest.latency_ms) as f64 / 1000.0
                });
                idle(end - a) + rest
            }
            Some(r) => idle(r - a) + go(p, w, end, misses, grid, r, woken_at),
        };
        best.min(stay)
    }
    go(p, w, end, misses, grid, 0, None)
}

#[test]
fn the_oracle_is_the_brute_force_optimum_on_small_periods() {
    let p = PowerProfile::default();
    let mut rng = crate::synth::Rng::new(7);
    for case in 0..400 {
        let end = 10_000 + rng.next_u64() % 50_000;
        let n = (rng.next_u64() % 5) as usize;
        let mut misses: Vec<u64> = (0..n).map(|_| 1 + rng.next_u64() % (end - 1)).collect();
        misses.sort_unstable();
        for selective in [false, true] {
            let w = Wakes::new(&p, selective);
            let span = Span {
                start_ms: 0,
                end_ms: end,
            };
            let opt = oracle_period(&p, &w, span, &misses, &mut Outcome::default());
            let bf = brute(&p, &w, end, &misses, 2_500);
            assert!(
                opt <= bf + 1e-6,
                "case {case}: oracle {opt} > brute {bf}, {misses:?} {end}"
            );
            // equal, but for the oracle's optimistic rest after a page wake
            // (it assumes the wake at least the rest's latency before the return)
            let slack = if selective {
                p.desktop.idle_w * 2.5
            } else {
                0.0
            };
            assert!(
                bf <= opt + slack + 1e-6,
                "case {case}: brute {bf} > oracle {opt}, {misses:?} {end}"
            );
        }
    }
}
