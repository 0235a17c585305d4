use super::*;

const T0: u64 = 20_000 * DAY_MS + 8 * 3_600_000; // 08:00 UTC on a day

#[test]
fn a_desktop_goes_idle_sleeps_is_woken_and_comes_back() {
    let f = Fleet::default();
    f.awake("desk-1", T0);
    f.vm("desk-1", "vm1", "arriving", true, T0 + 1000);
    f.vm("desk-1", "vm1", "server", true, T0 + 2000);
    f.asleep("desk-1", T0 + 10_000);
    f.waking("desk-1", T0 + 60_000);
    f.fetched("vm1", 2, T0 + 62_000);
    f.fetched("vm1", 3, T0 + 62_500);
    f.fetched("other-vm", 7, T0 + 62_500);
    f.awake("desk-1", T0 + 61_000);
    let d = &f.desktops()["desk-1"];
    assert_eq!(d.state(), HostState::Idle, "a VM of it runs here");
    assert_eq!(d.timeline.wakes, vec![(T0 + 60_000, WakeReason::PageMiss)]);
    assert_eq!(d.fetches, vec![(T0 + 62_000, 5)], "one point per second");
    assert_eq!(d.vms["vm1"].since_ms, T0 + 2000);
    f.asleep("desk-1", T0 + 100_000);
    // It talks again without our wake: its user came back.
    f.awake("desk-1", T0 + 200_000);
    f.vm("desk-1", "vm1", "home", false, T0 + 210_000);
    let d = &f.desktops()["desk-1"];
    assert_eq!(
        d.timeline.wakes.last(),
        Some(&(T0 + 200_000, WakeReason::UserReturn))
    );
    assert_eq!(d.state(), HostState::Active, "no VM of it here any more");
    assert_eq!(d.since_ms(), T0 + 210_000);
    assert_eq!(
        d.timeline.vms["vm1"],
        vec![
            (T0 + 1000, Placement::Server),
            (T0 + 210_000, Placement::Desktop)
        ]
    );
}

#[test]
fn sleep_saves_energy_and_days_are_split_at_midnight() {
    let f = Fleet::default();
    let start = T0 + 14 * 3_600_000; // 22:00
    f.awake("d", start);
    f.vm("d", "vm", "server", true, start);
    f.asleep("d", start + 60_000);
    let now = start + 4 * 3_600_000; // 02:00 next day
    let days = energy_per_day(&f.desktops(), &PowerProfile::default(), now);
    assert_eq!(days.len(), 2, "{days:?}");
    assert_eq!(days[0].day, utc_date(T0 / DAY_MS));
    assert_eq!(days[1].day, utc_date(T0 / DAY_MS + 1));
    for d in &days {
        assert!(d.saved_wh() > 0.0, "asleep most of the time: {d:?}");
        assert!(d.baseline_wh > d.used_wh);
    }
    // Two hours each side of midnight, asleep for nearly all of it: the
    // first day's baseline is the idle desktop's two hours.
    let idle_w = PowerProfile::default().desktop.idle_w;
    assert!(
        (days[0].baseline_wh - 2.0 * idle_w).abs() < 0.01,
        "{days:?}"
    );
    assert!(
        (days[1].baseline_wh - 2.0 * idle_w).abs() < 0.01,
        "{days:?}"
    );
}

#[test]
fn a_window_keeps_the_state_at_its_start() {
    let mut t = Timeline::starting(1000, HostState::Idle);
    t.record(2000, HostState::Suspending).unwrap();
    t.record(2000, HostState::Asleep).unwrap();
    t.record_wake(9000, WakeReason::PageMiss).unwrap();
    t.record_placement(1000, "vm", Placement::Server).unwrap();
    let w = window(&t, 5000, 8000).unwrap();
    assert_eq!(w.events, vec![(5000, HostState::Asleep)]);
    assert!(w.wakes.is_empty());
    assert_eq!(w.vms["vm"], vec![(5000, Placement::Server)]);
    assert!(
        window(&t, 0, 500).is_none(),
        "nothing before the first event"
    );
}

#[test]
fn dates() {
    assert_eq!(utc_date(0), "1970-01-01");
    assert_eq!(utc_date(20_454), "2026-01-01");
}

#[test]
fn history_is_kept_for_35_days_only() {
    let f = Fleet::default();
    let day = 24 * 3_600_000;
    // A desktop that sleeps and is woken every night for 50 days, and one
    // that brought a VM once and took it home.
    f.vm("desk-gone", "vm-gone", "server", true, T0);
    f.vm("desk-gone", "vm-gone", "home", false, T0 + 1000);
    for n in 0..50 {
        let t = T0 + n * day;
        f.awake("desk-1", t);
        f.vm("desk-1", "vm1", "server", true, t + 1000);
        f.asleep("desk-1", t + 10_000);
        f.waking("desk-1", t + 20_000);
        f.fetched("vm1", 1, t + 21_000);
        f.awake("desk-1", t + 22_000);
        f.vm("desk-1", "vm1", "home", false, t + 30_000);
    }
    let all = f.desktops();
    assert!(!all.contains_key("desk-gone"), "forgotten after 35 days");
    let d = &all["desk-1"];
    let last = T0 + 49 * day + 30_000;
    assert!(
        d.first_ms() >= last - KEEP_MS,
        "{} days kept",
        (last - d.first_ms()) / day
    );
    assert!(d.first_ms() < last - KEEP_MS + day);
    assert_eq!(d.fetches.len(), 35, "one point a night for 35 nights");
    assert!(d.timeline.wakes.len() <= 36, "{}", d.timeline.wakes.len());
    assert!(
        d.timeline.events.len() <= 36 * 6,
        "{}",
        d.timeline.events.len()
    );
    assert_eq!(d.state(), HostState::Active);
}

#[test]
fn fetch_points_drop_the_oldest_when_full() {
    let f = Fleet::default();
    f.vm("desk-1", "vm1", "server", true, T0);
    let n = MAX_FETCH_POINTS as u64 + 5;
    for i in 0..n {
        f.fetched("vm1", 1, T0 + i * FETCH_POINT_MS);
    }
    let d = &f.desktops()["desk-1"];
    assert!(d.fetches.len() <= MAX_FETCH_POINTS);
    assert_eq!(d.fetches.last(), Some(&(T0 + (n - 1) * FETCH_POINT_MS, 1)));
    assert_eq!(
        d.fetches[0].0,
        T0 + (MAX_FETCH_POINTS as u64 / 10) * FETCH_POINT_MS
    );
}
