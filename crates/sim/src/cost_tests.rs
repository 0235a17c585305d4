//! Hand-computed periods with the default profile: idle 60 W, asleep 3 W,
//! suspend 3 s / 180 J, full resume 5 s / 400 J, service resume (CPU, memory,
//! NIC) 2.5 s / 200 J.

use jettison_power::policy::{FixedTimeout, NeverSleep};

use super::*;

fn span(end_ms: u64) -> Span {
    Span {
        start_ms: 0,
        end_ms,
    }
}

fn online(selective: bool, end_ms: u64, misses: &[u64]) -> (f64, Outcome) {
    let p = PowerProfile::default();
    let mut o = Outcome::default();
    let mut pol = FixedTimeout { timeout_ms: 30_000 };
    let j = run_period(
        &p,
        &Wakes::new(&p, selective),
        &mut pol,
        span(end_ms),
        misses,
        &mut o,
    );
    (j, o)
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
    let w = Wakes::new(&PowerProfile::default(), false);
    close(w.page.energy_j, 400.0);
    close(w.rest_j, 0.0);
}

#[test]
fn full_resumes_by_hand() {
    // a miss at 60 s, the user back at 600 s; sleep after 30 s quiet
    let (j, o) = online(false, 600_000, &[60_000]);
    // gap 1: 30 s idle, suspend, resume, asleep 60 - 30 - 3 - 5 = 22 s
    let g1 = 60.0 * 30.0 + 180.0 + 400.0 + 3.0 * 22.0;
    // gap 2: 30 s idle, suspend, resume, asleep 540 - 30 - 8 = 502 s
    let g2 = 60.0 * 30.0 + 180.0 + 400.0 + 3.0 * 502.0;
    close(j, g1 + g2);
    assert_eq!((o.sleeps, o.delayed_requests), (2, 1));
}

#[test]
fn selective_resume_charges_the_service_resume_for_page_wakes() {
    let (j, o) = online(true, 600_000, &[60_000]);
    // gap 1 ends in a miss: service resume, asleep 60 - 30 - 3 - 2.5 = 24.5 s
    let g1 = 60.0 * 30.0 + 180.0 + 200.0 + 3.0 * 24.5;
    // gap 2 ends with the user: full resume
    let g2 = 60.0 * 30.0 + 180.0 + 400.0 + 3.0 * 502.0;
    close(j, g1 + g2);
    close(j, 6139.5);
    assert_eq!((o.sleeps, o.delayed_requests), (2, 1));
    // without selective resume: 6332 J
    close(online(false, 600_000, &[60_000]).0, 6332.0);
}

#[test]
fn the_user_returning_to_a_desktop_woken_for_pages_pays_the_rest() {
    // miss at 60 s, user back 20 s later: the second gap is spent awake
    let (j, o) = online(true, 80_000, &[60_000]);
    let g1 = 60.0 * 30.0 + 180.0 + 200.0 + 3.0 * 24.5;
    close(j, g1 + 60.0 * 20.0 + 200.0);
    assert_eq!(o.sleeps, 1);
    // without selective resume the desktop is fully resumed already
    let (j, _) = online(false, 80_000, &[60_000]);
    close(j, 60.0 * 30.0 + 180.0 + 400.0 + 3.0 * 22.0 + 60.0 * 20.0);
    // a desktop that never slept pays nothing at the return
    let p = PowerProfile::default();
    let mut o = Outcome::default();
    let w = Wakes::new(&p, true);
    let j = run_period(&p, &w, &mut NeverSleep, span(80_000), &[60_000], &mut o);
    close(j, 60.0 * 80.0);
}

#[test]
fn oracle_by_hand() {
    let p = PowerProfile::default();
    let mut o = Outcome::default();
    let j = oracle_period(&p, &Wakes::new(&p, false), span(600_000), &[60_000], &mut o);
    close(j, 1160.0 + 3.0 * 52.0 + 3.0 * 532.0);
    assert_eq!((o.sleeps, o.delayed_requests), (2, 0));
    // selective, user back 20 s after the miss: sleeping both gaps costs
    // (180 + 200 + 3 x 54.5) + (180 + 400 + 3 x 12) = 1159.5 J, less than
    // staying up for the return (543.5 + 1200 + 200) or never sleeping
    let mut o = Outcome::default();
    let j = oracle_period(&p, &Wakes::new(&p, true), span(80_000), &[60_000], &mut o);
    close(j, 1159.5);
    assert_eq!(o.sleeps, 2);
    // gaps under the break-even time (~10 s) are not slept
    let mut o = Outcome::default();
    let misses = [2_000, 4_000, 6_000];
    let j = oracle_period(&p, &Wakes::new(&p, true), span(8_000), &misses, &mut o);
    close(j, 60.0 * 8.0);
    assert_eq!(o.sleeps, 0);
}

#[test]
fn gaps_skip_simultaneous_misses() {
    let g: Vec<_> = gaps(span(100), &[0, 10, 10, 50]).collect();
    assert_eq!(g, vec![(0, 10, true), (10, 50, true), (50, 100, false)]);
}
