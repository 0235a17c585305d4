//! A made-up but plausible timeline, for examples, tests and previews.

use crate::{Placement, PowerState, TimelineInput};

/// Typical draw of a desktop in each state, in watts (sample data only).
fn watts_of(state: PowerState) -> f64 {
    match state {
        PowerState::Active => 55.0,
        PowerState::Idle => 32.0,
        PowerState::Suspending => 40.0,
        PowerState::Asleep => 2.5,
        PowerState::Resuming => 62.0,
    }
}

/// A 600 s run: the desktop idles, its VM is partially migrated and the
/// desktop sleeps; a page miss wakes it once, then the user comes back and
/// the VM is reintegrated.
pub fn sample_input() -> TimelineInput {
    use Placement::*;
    use PowerState::*;
    let desktop_states = vec![
        (0.0, 60.0, Active),
        (60.0, 118.0, Idle),
        (118.0, 124.0, Suspending),
        (124.0, 250.0, Asleep),
        (250.0, 254.0, Resuming),
        (254.0, 270.0, Idle),
        (270.0, 276.0, Suspending),
        (276.0, 460.0, Asleep),
        (460.0, 464.0, Resuming),
        (464.0, 600.0, Active),
    ];
    let vm_placement = vec![
        (0.0, 110.0, Home),
        (110.0, 117.5, Migrating),
        (117.5, 466.0, Server),
        (466.0, 474.0, Returning),
        (474.0, 600.0, Home),
    ];
    let pages_fetched = vec![
        (0.0, 0),
        (117.5, 0),
        (118.0, 900),
        (119.0, 1_700),
        (121.0, 2_200),
        (124.0, 2_350),
        (250.0, 2_350),
        (254.5, 2_600),
        (256.0, 4_100),
        (260.0, 5_000),
        (270.0, 5_300),
        (466.0, 5_300),
        (600.0, 5_300),
    ];
    let wakes = vec![
        (250.0, "page miss".to_string()),
        (460.0, "user return".to_string()),
    ];
    let desktop_watts = desktop_states
        .iter()
        .map(|&(start, _, state)| (start, watts_of(state)))
        .collect();
    TimelineInput {
        title: "jettison demo: desktop sleeps while its VM runs on the server".to_string(),
        duration_s: 600.0,
        desktop_states,
        vm_placement,
        pages_fetched,
        wakes,
        desktop_watts,
    }
}
