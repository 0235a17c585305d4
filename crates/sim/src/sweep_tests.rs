use super::*;
use crate::config::{PolicySpec, SelectiveResume};
use jettison_power_model::PrefetchConfig;

fn plan(knobs: Vec<(Knob, Vec<f64>)>, seeds: u32) -> Plan {
    Plan {
        params: SynthParams {
            desktops: 3,
            days: 7,
            ..SynthParams::default()
        },
        seeds,
        config: SimConfig {
            policies: vec![PolicySpec::BreakEven],
            prefetch: vec![PrefetchConfig::Neighbourhood { pages: 64 }],
            selective_resume: SelectiveResume::On,
            ..SimConfig::default()
        },
        combination: "break-even+neighbourhood-64+selective".into(),
        knobs,
    }
}

#[test]
fn every_knob_keeps_the_profile_valid() {
    for (knob, values) in Knob::all() {
        for v in values {
            let (mut params, mut profile) = (SynthParams::default(), PowerProfile::default());
            knob.apply(v, &mut params, &mut profile);
            profile
                .validate()
                .unwrap_or_else(|e| panic!("{knob:?} = {v}: {e}"));
            let back = knob.default_value(&params, &profile);
            if !matches!(knob, Knob::ColdRate | Knob::TimerRate) {
                assert!((back - v).abs() < 1e-3, "{knob:?}: {back} vs {v}");
            }
        }
        // the default is among the values swept
        let d = knob.default_value(&SynthParams::default(), &PowerProfile::default());
        let values: Vec<f64> = Knob::all().into_iter().find(|k| k.0 == knob).unwrap().1;
        assert!(values.contains(&d), "{knob:?}: default {d} in {values:?}");
    }
}

#[test]
fn the_service_share_moves_the_selective_resume_only() {
    let (mut params, mut profile) = (SynthParams::default(), PowerProfile::default());
    Knob::ServiceShare.apply(0.2, &mut params, &mut profile);
    assert_eq!(profile.service_resume().latency_ms, 1_000);
    assert!((profile.service_resume().energy_j - 80.0).abs() < 1e-6);
    assert_eq!(profile.resume, PowerProfile::default().resume);
    Knob::ResumeMs.apply(8_000.0, &mut params, &mut profile);
    // the same average power, the same split
    assert!((profile.resume.energy_j - 640.0).abs() < 1e-6);
    assert_eq!(profile.service_resume().latency_ms, 1_600);
}

#[test]
fn the_cold_rate_is_a_multiple_capped_at_one() {
    let (mut params, mut profile) = (SynthParams::default(), PowerProfile::default());
    Knob::ColdRate.apply(10.0, &mut params, &mut profile);
    assert_eq!(params.cold_p, 1.0);
    let mut params = SynthParams::default();
    Knob::ColdRate.apply(0.1, &mut params, &mut profile);
    assert!((params.cold_p - 0.01).abs() < 1e-12);
}

#[test]
fn sweeps_give_intervals_and_move_the_way_they_should() {
    let knobs = vec![
        (Knob::PartialVmsPerServer, vec![10.0, 90.0, 270.0]),
        (Knob::AsleepW, vec![1.0, 3.0, 13.0]),
        (Knob::ColdRate, vec![0.1, 1.0, 10.0]),
    ];
    let sweeps = plan(knobs, 2).run(|_| {});
    assert_eq!(sweeps.len(), 3);
    for sw in &sweeps {
        assert_eq!(sw.points.len(), 3);
        assert_eq!(
            sw.points.iter().filter(|p| p.default).count(),
            1,
            "{}",
            sw.key
        );
        for p in &sw.points {
            assert_eq!(p.savings.seeds, 2);
            assert!(p.savings.lo <= p.savings.mean && p.savings.mean <= p.savings.hi);
        }
    }
    let s = |sw: &Sweep| -> Vec<f64> { sw.points.iter().map(|p| p.savings.mean).collect() };
    // more VMs per server: a smaller share each, more saved; full migration unmoved
    let share = &sweeps[0];
    let v = s(share);
    assert!(v[0] < v[1] && v[1] < v[2], "{v:?}");
    assert_eq!(
        share.points[0].full_migration,
        share.points[2].full_migration
    );
    let x = share.crossover.expect("a crossover");
    assert!(x.mean > 10.0 && x.mean < 270.0, "{x:?}");
    // a hungrier sleep saves less, for both
    let asleep = &sweeps[1];
    let v = s(asleep);
    assert!(v[0] > v[2], "{v:?}");
    assert!(asleep.points[0].full_migration.mean > asleep.points[2].full_migration.mean);
    // more cold pages: more wakes, less saved
    let cold = &sweeps[2];
    let v = s(cold);
    assert!(v[0] > v[2], "{v:?}");
    assert!(cold.points[0].wakes_per_idle_hour < cold.points[2].wakes_per_idle_hour);
    // one seed: the interval collapses to the mean
    let one = plan(vec![(Knob::AsleepW, vec![3.0])], 1).run(|_| {});
    let p = &one[0].points[0];
    assert_eq!(
        (p.savings.lo, p.savings.hi),
        (p.savings.mean, p.savings.mean)
    );
}
