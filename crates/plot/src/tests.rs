//! Validation tests and in-memory SVG rendering tests.

use super::*;

fn valid() -> TimelineInput {
    sample_input()
}

#[test]
fn sample_is_valid() {
    valid().validate().unwrap();
}

#[test]
fn rejects_bad_duration() {
    for d in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let mut input = valid();
        input.duration_s = d;
        assert!(matches!(
            input.validate(),
            Err(PlotError::InvalidDuration(_))
        ));
    }
}

#[test]
fn rejects_empty_input() {
    let mut input = valid();
    input.desktop_states.clear();
    input.vm_placement.clear();
    input.pages_fetched.clear();
    assert!(matches!(input.validate(), Err(PlotError::EmptyInput)));
    // One series alone is enough to draw.
    input.pages_fetched.push((1.0, 3));
    input.validate().unwrap();
}

#[test]
fn rejects_reversed_span() {
    let mut input = valid();
    input.vm_placement[1] = (120.0, 110.0, Placement::Migrating);
    let err = input.validate().unwrap_err();
    assert!(
        matches!(
            err,
            PlotError::ReversedSpan {
                field: "vm_placement",
                index: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("vm_placement[1]"));
}

#[test]
fn rejects_times_beyond_duration() {
    let mut input = valid();
    input
        .desktop_states
        .push((600.0, 601.0, PowerState::Active));
    assert!(matches!(
        input.validate(),
        Err(PlotError::OutOfRange {
            field: "desktop_states",
            ..
        })
    ));
    let mut input = valid();
    input.wakes.push((-1.0, "early".into()));
    assert!(matches!(
        input.validate(),
        Err(PlotError::OutOfRange { field: "wakes", .. })
    ));
}

#[test]
fn rejects_nan_everywhere() {
    let mut input = valid();
    input.desktop_states[0].1 = f64::NAN;
    assert!(matches!(
        input.validate(),
        Err(PlotError::NonFinite {
            field: "desktop_states",
            index: 0
        })
    ));
    let mut input = valid();
    input.pages_fetched[2].0 = f64::NAN;
    assert!(matches!(
        input.validate(),
        Err(PlotError::NonFinite {
            field: "pages_fetched",
            index: 2
        })
    ));
    let mut input = valid();
    input.desktop_watts[1].1 = f64::NAN;
    assert!(matches!(
        input.validate(),
        Err(PlotError::NonFinite {
            field: "desktop_watts",
            index: 1
        })
    ));
}

#[test]
fn rejects_overlapping_spans_and_unsorted_series() {
    let mut input = valid();
    input.desktop_states.push((50.0, 70.0, PowerState::Asleep));
    assert!(matches!(
        input.validate(),
        Err(PlotError::Overlap {
            field: "desktop_states",
            ..
        })
    ));
    let mut input = valid();
    input.pages_fetched.swap(3, 4);
    assert!(matches!(
        input.validate(),
        Err(PlotError::Unordered {
            field: "pages_fetched",
            index: 4
        })
    ));
    let mut input = valid();
    input.desktop_watts[2].1 = -3.0;
    assert!(matches!(
        input.validate(),
        Err(PlotError::NegativeWatts { index: 2, .. })
    ));
}

#[test]
fn spans_may_be_unsorted_and_touching() {
    let mut input = valid();
    input.desktop_states.reverse();
    input.validate().unwrap();
}

#[test]
fn rejects_tiny_images() {
    let err = render_svg_string(&valid(), 100, 100).unwrap_err();
    assert!(matches!(err, PlotError::TooSmall { .. }), "{err}");
}

#[test]
fn svg_has_title_legend_and_wakes() {
    let svg = render_svg_string(&valid(), 1200, 800).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains("jettison demo"));
    for text in [
        "asleep",
        "server",
        "page miss",
        "user return",
        "time (s)",
        "pages fetched",
    ] {
        assert!(svg.contains(text), "missing {text}");
    }
}

#[test]
fn renders_without_optional_series() {
    let mut input = valid();
    input.desktop_watts.clear();
    input.wakes.clear();
    input.pages_fetched.clear();
    let svg = render_svg_string(&input, 800, 500).unwrap();
    assert!(svg.contains("desktop"));
    assert!(!svg.contains("power (W)"));
}

#[test]
fn many_close_wakes_still_render() {
    let mut input = valid();
    input.wakes = (0..40)
        .map(|i| (100.0 + f64::from(i), format!("miss {i}")))
        .collect();
    let svg = render_svg_string(&input, 800, 500).unwrap();
    assert!(svg.contains("miss 0"));
    // Not every label fits in the strip; the ones that do not are dropped.
    let shown = svg.matches("\nmiss ").count();
    assert!((3..40).contains(&shown), "{shown} labels shown");
}

#[test]
fn input_round_trips_through_json() {
    let input = valid();
    let json = serde_json::to_string(&input).unwrap();
    let back: TimelineInput = serde_json::from_str(&json).unwrap();
    assert_eq!(back, input);
    // `desktop_watts` may be omitted.
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value.as_object_mut().unwrap().remove("desktop_watts");
    let back: TimelineInput = serde_json::from_value(value).unwrap();
    assert!(back.desktop_watts.is_empty());
}

#[test]
fn svg_escapes_markup_in_text() {
    let mut input = valid();
    input.title = "a < b & c".into();
    input.wakes[0].1 = "<miss>".into();
    let svg = render_svg_string(&input, 800, 500).unwrap();
    assert!(svg.contains("a &lt; b &amp; c"));
    assert!(svg.contains("&lt;miss&gt;"));
}
