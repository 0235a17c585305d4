use super::*;

#[test]
fn state_colours_are_distinct() {
    let colours: Vec<_> = PowerState::ALL.iter().map(|&s| state_color(s)).collect();
    for (i, a) in colours.iter().enumerate() {
        for b in &colours[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert_eq!(state_color(PowerState::Asleep), RGBColor(63, 81, 181));
}

#[test]
fn placement_colours_are_distinct() {
    let colours: Vec<_> = Placement::ALL.iter().map(|&p| placement_color(p)).collect();
    for (i, a) in colours.iter().enumerate() {
        for b in &colours[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn merge_joins_touching_same_kind_and_sorts() {
    let spans = [
        (10.0, 20.0, PowerState::Asleep),
        (0.0, 5.0, PowerState::Active),
        (5.0, 10.0, PowerState::Active),
        (20.0, 30.0, PowerState::Asleep),
        (30.0, 31.0, PowerState::Resuming),
    ];
    let merged = merge_spans(&spans, 1e-9);
    assert_eq!(
        merged,
        vec![
            (0.0, 10.0, PowerState::Active),
            (10.0, 30.0, PowerState::Asleep),
            (30.0, 31.0, PowerState::Resuming),
        ]
    );
}

#[test]
fn merge_keeps_gaps_and_drops_empty_spans() {
    let spans = [
        (0.0, 1.0, Placement::Home),
        (2.0, 3.0, Placement::Home),
        (3.0, 3.0, Placement::Server),
    ];
    let merged = merge_spans(&spans, 1e-9);
    assert_eq!(
        merged,
        vec![(0.0, 1.0, Placement::Home), (2.0, 3.0, Placement::Home)]
    );
    assert!(merge_spans::<Placement>(&[], 0.0).is_empty());
}

#[test]
fn kinds_present_follow_legend_order() {
    let spans = [(0.0, 1.0, Placement::Server), (1.0, 2.0, Placement::Home)];
    assert_eq!(
        kinds_present(&spans, &Placement::ALL),
        vec![Placement::Home, Placement::Server]
    );
}

#[test]
fn nice_ceil_rounds_up_to_nice_numbers() {
    assert_eq!(nice_ceil(0.0), 1.0);
    assert_eq!(nice_ceil(f64::NAN), 1.0);
    assert_eq!(nice_ceil(1.0), 1.0);
    assert_eq!(nice_ceil(1.3), 1.5);
    assert_eq!(nice_ceil(2.2), 2.5);
    assert_eq!(nice_ceil(3.5), 4.0);
    assert_eq!(nice_ceil(7.0), 8.0);
    assert_eq!(nice_ceil(9.0), 10.0);
    assert_eq!(nice_ceil(100.0), 100.0);
    assert_eq!(nice_ceil(5830.0), 6000.0);
    assert!((nice_ceil(0.045) - 0.05).abs() < 1e-12);
}

#[test]
fn axis_ranges_have_head_room() {
    assert_eq!(pages_axis_max(&[]), 10.0);
    assert_eq!(pages_axis_max(&[(0.0, 0), (5.0, 3)]), 10.0);
    assert_eq!(pages_axis_max(&[(0.0, 0), (5.0, 1000)]), 1200.0);
    assert_eq!(pages_axis_max(&[(5.0, 5300)]), 6000.0);
    assert_eq!(watts_axis_max(&[]), None);
    assert_eq!(watts_axis_max(&[(0.0, 60.0), (10.0, 3.0)]), Some(80.0));
    assert_eq!(watts_axis_max(&[(0.0, 0.0)]), Some(1.0));
}

#[test]
fn step_points_hold_values_until_next_sample() {
    let pts = step_points(&[(0.0, 50.0), (10.0, 2.0)], 30.0);
    assert_eq!(
        pts,
        vec![(0.0, 50.0), (10.0, 50.0), (10.0, 2.0), (30.0, 2.0)]
    );
    assert!(step_points(&[], 30.0).is_empty());
    assert_eq!(step_points(&[(30.0, 1.0)], 30.0), vec![(30.0, 1.0)]);
}

#[test]
fn tick_formats() {
    assert_eq!(format_seconds(12.0, 120.0), "12");
    assert_eq!(format_seconds(1.5, 5.0), "1.5");
    assert_eq!(format_count(950.0), "950");
    assert_eq!(format_count(1500.0), "1.5k");
    assert_eq!(format_count(5000.0), "5k");
    assert_eq!(format_count(2_000_000.0), "2M");
    assert_eq!(format_count(25_000.0), "25k");
    assert_eq!(format_count(3_200_000.0), "3.2M");
}

#[test]
fn label_rows_stack_overlapping_labels() {
    // Second label overlaps the first, third fits after the first.
    let rows = label_rows(&[(0, 100), (50, 100), (110, 50)], 5, 3);
    assert_eq!(rows, vec![Some(0), Some(1), Some(0)]);
    // Input order does not matter; overflow beyond max_rows is dropped.
    let rows = label_rows(&[(20, 100), (0, 100), (10, 100)], 0, 2);
    assert_eq!(rows, vec![None, Some(0), Some(1)]);
    assert!(label_rows(&[], 0, 2).is_empty());
}

#[test]
fn font_sizes_scale_and_clamp() {
    let small = font_sizes(300, 200);
    assert_eq!(small.label, 11.0);
    let big = font_sizes(1600, 1000);
    assert_eq!(big.label, 20.0);
    assert_eq!(big.title, 30.0);
    assert!(big.small < big.label);
    assert_eq!(font_sizes(10_000, 10_000).label, 28.0);
}
