use super::*;

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

#[test]
fn requests_burst_then_sparse() {
    let p = small(5);
    let t = generate(&p);
    let pe = t.desktops[0]
        .idle
        .iter()
        .find(|i| i.span.len_ms() > 10 * HOUR as u64)
        .unwrap();
    let burst = pe
        .requests
        .iter()
        .filter(|r| u64::from(r.offset_ms) < p.burst_ms)
        .count();
    assert!(burst >= p.working_set_pages as usize);
    let sparse = pe.requests.len() - burst;
    let hours = pe.span.len_ms() as f64 / HOUR;
    let expected = hours * p.sparse_per_hour;
    assert!(
        (sparse as f64 - expected).abs() < 4.0 * expected.sqrt() + 2.0,
        "{sparse} vs {expected}"
    );
    assert!(pe.requests.iter().all(|r| r.page < p.vm_pages));
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
