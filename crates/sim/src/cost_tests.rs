//! Hand-computed periods with the default profile: idle 60 W, asleep 3 W,
//! suspend 3 s / 180 J, full resume 5 s / 400 J, service resume (CPU, memory,
//! NIC) 2.5 s / 200 J, the rest 2.5 s / 200 J; the agent's 250 ms tick.

use jettison_power_model::policy::{FixedTimeout, NeverSleep};

use super::*;
use crate::online::run_period;
use crate::oracle::oracle_period;
use crate::report::Outcome;
use crate::trace::Span;

fn span(end_ms: u64) -> Span {
    Span {
        start_ms: 0,
        end_ms,
    }
}

fn online(selective: bool, end_ms: u64, misses: &[u64]) -> (f64, Outcome) {
    let (j, _, o) = online_wait(selective, end_ms, misses);
    (j, o)
}

/// Joules, the return's wait (ms) and the counts.
fn online_wait(selective: bool, end_ms: u64, misses: &[u64]) -> (f64, u64, Outcome) {
    let p = PowerProfile::default();
    let mut o = Outcome::default();
    let mut pol = FixedTimeout { timeout_ms: 30_000 };
    let w = Wakes::new(&p, selective);
    let (j, wait) = run_period(&p, &w, &mut pol, span(end_ms), misses, 250, 0, &mut o);
    (j, wait, o)
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-6, "{a} vs {b}");
}

#[test]
fn service_resume_of_the_default_profile() {
    let w = Wakes::new(&PowerProfile::default(), true);
    assert_eq!(w.page.latency_ms, 2_500);
    close(w.page.energy_j, 200.0);
    close(w.rest_j, 200.0);
    assert_eq!(w.rest.latency_ms, 2_500);
    let w = Wakes::new(&PowerProfile::default(), false);
    close(w.page.energy_j, 400.0);
    close(w.rest_j, 0.0);
}

#[test]
fn full_resumes_by_hand() {
    // a miss at 60 s, the user back at 600 s; sleep after 30 s quiet
    let (j, o) = online(false, 600_000, &[60_000]);
    // sleep at 30 s: suspend, asleep 60 - 30 - 3 = 27 s, woken at 60 s,
    // up at 65 s
    let g1 = 60.0 * 30.0 + 180.0 + 3.0 * 27.0 + 400.0;
    // quiet from 65 s: sleep at 95 s (a tick after the wake's end), asleep
    // until the user, whose full resume ends at 600 s: 600 - 95 - 8 = 497 s
    let g2 = 60.0 * 30.0 + 180.0 + 400.0 + 3.0 * 497.0;
    close(j, g1 + g2);
    assert_eq!((o.sleeps, o.delayed_requests), (2, 1));
    // one wake by the miss, which waited for the whole resume
    assert_eq!(o.page_wakes, 1);
    assert_eq!(o.stalls.summary().max, 5_000);
    // asleep at the return: the user waits for the full resume
    assert_eq!(online_wait(false, 600_000, &[60_000]).1, 5_000);
}

#[test]
fn decisions_wait_for_the_tick() {
    // quiet from 0: a 30 s timeout fires at the tick at 30 s, not before; a
    // miss 100 ms after a tick is served awake, the next decision a tick on
    let p = PowerProfile::default();
    let w = Wakes::new(&p, false);
    let mut o = Outcome::default();
    let mut pol = FixedTimeout { timeout_ms: 10_100 };
    // quiet from the miss at 100 ms: 10.1 s later is 10.2 s, the tick at 10.25 s
    let (j, _) = run_period(&p, &w, &mut pol, span(20_250), &[100], 250, 0, &mut o);
    assert_eq!(
        (o.stalls.count(), o.stalls.summary().max),
        (1, 0),
        "served awake"
    );
    assert_eq!(o.sleeps, 1);
    close(j, 60.0 * 10.25 + 180.0 + 400.0 + 3.0 * 2.0);
}

#[test]
fn a_miss_during_the_suspend_wakes_it_at_the_suspend_end() {
    let p = PowerProfile::default();
    let w = Wakes::new(&p, false);
    let mut o = Outcome::default();
    let mut pol = FixedTimeout { timeout_ms: 30_000 };
    // sleep at 30 s; a miss at 31 s waits for the suspend (33 s) and the
    // resume (38 s); the user comes back at 38 s + 10 s, awake meanwhile
    let (j, wait) = run_period(&p, &w, &mut pol, span(48_000), &[31_000], 250, 0, &mut o);
    close(j, 60.0 * 30.0 + 180.0 + 400.0 + 60.0 * 10.0);
    // it waited from 31 s to 38 s; the user finds the desktop up
    assert_eq!((o.stalls.summary().max, wait), (7_000, 0));
    assert_eq!((o.sleeps, o.delayed_requests), (1, 1));
}

#[test]
fn selective_resume_charges_the_service_resume_for_page_wakes() {
    let (j, o) = online(true, 600_000, &[60_000]);
    // woken at 60 s for 2.5 s of service resume: up at 62.5 s, asleep again
    // at 92.5 s until the user: 600 - 92.5 - 3 - 5 = 499.5 s
    let g1 = 60.0 * 30.0 + 180.0 + 3.0 * 27.0 + 200.0;
    let g2 = 60.0 * 30.0 + 180.0 + 400.0 + 3.0 * 499.5;
    close(j, g1 + g2);
    assert_eq!((o.sleeps, o.delayed_requests), (2, 1));
}

#[test]
fn the_user_returning_to_a_desktop_woken_for_pages_pays_the_rest() {
    // miss at 60 s, user back 20 s later: up from 62.5 s, the rest of the
    // resume (2.5 s, 200 J) ends at the return, replacing 2.5 s of idle
    let (j, o) = online(true, 80_000, &[60_000]);
    let g1 = 60.0 * 30.0 + 180.0 + 3.0 * 27.0 + 200.0;
    close(j, g1 + 60.0 * 17.5 + 200.0 - 60.0 * 2.5);
    assert_eq!(o.sleeps, 1);
    // the rest of the devices resume when the user is back
    assert_eq!(online_wait(true, 80_000, &[60_000]).1, 2_500);
    // without selective resume the desktop is fully resumed already
    let (j, _) = online(false, 80_000, &[60_000]);
    close(j, 60.0 * 30.0 + 180.0 + 3.0 * 27.0 + 400.0 + 60.0 * 15.0);
    // a desktop that never slept pays nothing at the return
    let p = PowerProfile::default();
    let mut o = Outcome::default();
    let w = Wakes::new(&p, true);
    let (j, wait) = run_period(
        &p,
        &w,
        &mut NeverSleep,
        span(80_000),
        &[60_000],
        250,
        0,
        &mut o,
    );
    close(j, 60.0 * 80.0);
    assert_eq!(wait, 0);
}

#[test]
fn oracle_by_hand() {
    let p = PowerProfile::default();
    let mut o = Outcome::default();
    let j = oracle_period(&p, &Wakes::new(&p, false), span(600_000), &[60_000], &mut o);
    // sleep at 0, woken at 60 s (asleep 57 s), up at 65 s, asleep until the
    // user's resume: 600 - 65 - 8 = 527 s
    close(j, 2.0 * 580.0 + 3.0 * 57.0 + 3.0 * 527.0);
    assert_eq!((o.sleeps, o.delayed_requests), (2, 1));
    // selective, user back 20 s after the miss: sleeping both stretches
    // costs (180 + 200 + 3 x 57) + (180 + 400 + 3 x 9.5) = 1159.5 J, less
    // than staying up for the return or never sleeping
    let mut o = Outcome::default();
    let j = oracle_period(&p, &Wakes::new(&p, true), span(80_000), &[60_000], &mut o);
    close(j, 1159.5);
    assert_eq!(o.sleeps, 2);
    // stretches under the break-even time (~10 s) are not slept
    let mut o = Outcome::default();
    let misses = [2_000, 4_000, 6_000];
    let j = oracle_period(&p, &Wakes::new(&p, true), span(8_000), &misses, &mut o);
    close(j, 60.0 * 8.0);
    assert_eq!(o.sleeps, 0);
}

#[test]
fn the_oracle_bounds_the_online_policy_by_hand() {
    let p = PowerProfile::default();
    for selective in [false, true] {
        let w = Wakes::new(&p, selective);
        for misses in [
            &[60_000u64][..],
            &[31_000],
            &[1, 2, 3, 40_000, 40_001, 90_000],
        ] {
            for end in [48_000, 80_000, 600_000] {
                let mut o = Outcome::default();
                let misses: Vec<u64> = misses.iter().copied().filter(|&m| m < end).collect();
                let mut pol = FixedTimeout { timeout_ms: 10_000 };
                let (on, _) = run_period(&p, &w, &mut pol, span(end), &misses, 250, 0, &mut o);
                let or = oracle_period(&p, &w, span(end), &misses, &mut o);
                assert!(or <= on + 1e-9, "{selective} {misses:?} {end}: {or} > {on}");
            }
        }
    }
}
