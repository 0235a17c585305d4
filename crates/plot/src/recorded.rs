//! The figure's input from a recorded [`Timeline`] (the agent's power
//! record in the demo, the server's view of a desktop on its dashboard).

use jettison_power_model::{
    HostState, Placement as VmPlacement, PowerProfile, Timeline, WakeReason,
};

use crate::{Placement, PowerState, TimelineInput};

fn state(s: HostState) -> PowerState {
    match s {
        HostState::Active => PowerState::Active,
        HostState::Idle => PowerState::Idle,
        HostState::Suspending => PowerState::Suspending,
        HostState::Asleep => PowerState::Asleep,
        HostState::Resuming => PowerState::Resuming,
    }
}

/// A wake's label in the figure.
pub fn wake_label(r: &WakeReason) -> String {
    match r {
        WakeReason::PageMiss => "page miss".into(),
        WakeReason::UserReturn => "user return".into(),
        WakeReason::Other(s) => s.clone(),
    }
}

/// What to draw of a recorded timeline.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    /// The host's states, wakes and VM placements (the first VM's is drawn).
    pub timeline: &'a Timeline,
    /// The profile that gives each state's watts.
    pub profile: &'a PowerProfile,
    /// Pages fetched: `(t_ms, pages)` per fetch, in any order.
    pub fetches: &'a [(u64, u64)],
    /// The time axis: from `from_ms` (its 0 s) to `until_ms`, on the
    /// timeline's clock.
    pub from_ms: u64,
    /// The end of the time axis.
    pub until_ms: u64,
}

/// The figure's input for `rec`, titled `title`.
pub fn from_recorded(title: &str, rec: &Recorded<'_>) -> TimelineInput {
    let (from, until) = (rec.from_ms, rec.until_ms.max(rec.from_ms));
    let secs = |ms: u64| ms.clamp(from, until).saturating_sub(from) as f64 / 1000.0;
    let intervals = rec.timeline.intervals(until);
    let desktop_states = intervals
        .iter()
        .filter(|&&(_, _, b)| b > from)
        .map(|&(s, a, b)| (secs(a), secs(b), state(s)))
        .filter(|(a, b, _)| b > a)
        .collect();
    let desktop_watts = intervals
        .iter()
        .filter(|&&(_, _, b)| b > from)
        .map(|&(s, a, _)| (secs(a), jettison_power_model::energy::watts(rec.profile, s)))
        .collect();
    let mut vm_placement = Vec::new();
    if let Some(events) = rec.timeline.vms.values().next() {
        let mut last = (from, Placement::Home);
        for &(t, p) in events {
            if t > last.0 {
                vm_placement.push((secs(last.0), secs(t), last.1));
            }
            let p = match p {
                VmPlacement::Server => Placement::Server,
                VmPlacement::Desktop => Placement::Home,
            };
            last = (t.max(from), p);
        }
        if until > last.0 {
            vm_placement.push((secs(last.0), secs(until), last.1));
        }
        vm_placement.retain(|(a, b, _)| b > a);
    }
    let mut fetches = rec.fetches.to_vec();
    // Fetches served concurrently may be recorded in completion order.
    fetches.sort_unstable();
    let mut total = 0u64;
    let mut pages_fetched = vec![(0.0, 0)];
    for &(t, n) in &fetches {
        total += n;
        pages_fetched.push((secs(t), total));
    }
    let wakes = rec
        .timeline
        .wakes
        .iter()
        .filter(|(t, _)| (from..=until).contains(t))
        .map(|(t, r)| (secs(*t), wake_label(r)))
        .collect();
    TimelineInput {
        title: title.into(),
        duration_s: secs(until).max(0.001),
        desktop_states,
        vm_placement,
        pages_fetched,
        wakes,
        desktop_watts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_of_a_timeline_is_shifted_to_zero() {
        let mut t = Timeline::starting(10_000, HostState::Idle);
        t.record_placement(10_000, "vm", VmPlacement::Server)
            .unwrap();
        t.record(12_000, HostState::Suspending).unwrap();
        t.record(13_000, HostState::Asleep).unwrap();
        t.record_wake(20_000, WakeReason::PageMiss).unwrap();
        t.record(21_000, HostState::Idle).unwrap();
        t.record_placement(25_000, "vm", VmPlacement::Desktop)
            .unwrap();
        let profile = PowerProfile::default();
        let input = from_recorded(
            "t",
            &Recorded {
                timeline: &t,
                profile: &profile,
                fetches: &[(21_500, 3), (20_900, 1)],
                from_ms: 10_000,
                until_ms: 30_000,
            },
        );
        input.validate().unwrap();
        assert_eq!(input.duration_s, 20.0);
        assert_eq!(
            input.desktop_states.first(),
            Some(&(0.0, 2.0, PowerState::Idle))
        );
        assert!(input
            .desktop_states
            .contains(&(3.0, 10.0, PowerState::Asleep)));
        assert_eq!(
            input.vm_placement,
            vec![
                (0.0, 15.0, Placement::Server),
                (15.0, 20.0, Placement::Home)
            ]
        );
        assert_eq!(input.pages_fetched, vec![(0.0, 0), (10.9, 1), (11.5, 4)]);
        assert_eq!(input.wakes, vec![(10.0, "page miss".to_string())]);
        assert!(crate::render_svg_string(&input, 900, 600)
            .unwrap()
            .starts_with("<svg"));
    }
}
