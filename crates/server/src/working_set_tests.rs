use super::*;

fn dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("working-sets-")
        .tempdir()
        .unwrap()
}

#[test]
fn runs_round_trip() {
    assert_eq!(runs(&[]), vec![]);
    assert_eq!(runs(&[1, 2, 3, 7, 9, 10]), vec![(1, 3), (7, 1), (9, 2)]);
    assert_eq!(expand(&runs(&[1, 2, 3, 7, 9, 10])), vec![1, 2, 3, 7, 9, 10]);
}

#[test]
fn records_periods_keeps_the_last_eight_and_reloads_them() {
    let d = dir();
    let ws = WorkingSets::load(d.path(), true).unwrap();
    assert!(ws.history("vm1").is_empty());
    // Fetch order, with a repeat: stored sorted and once.
    ws.record("vm1", &[9, 3, 4, 3, 5]).unwrap();
    assert_eq!(ws.history("vm1"), vec![vec![3, 4, 5, 9]]);
    for i in 0..10u64 {
        ws.record("vm1", &[100 + i]).unwrap();
    }
    ws.record("vm2", &[]).unwrap();
    let h = ws.history("vm1");
    assert_eq!(h.len(), KEEP_PERIODS);
    assert_eq!(h.first().unwrap(), &vec![102]);
    assert_eq!(h.last().unwrap(), &vec![109]);

    let text = std::fs::read_to_string(d.path().join("vm1.json")).unwrap();
    assert!(text.contains("\"version\":1"), "{text}");
    let again = WorkingSets::load(d.path(), true).unwrap();
    assert_eq!(again.history("vm1"), h);
    assert_eq!(again.history("vm2"), vec![Vec::<u64>::new()]);
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn a_broken_file_is_set_aside_and_a_stale_temporary_ignored() {
    let d = dir();
    std::fs::write(d.path().join("vm1.json"), b"{\"version\":1,\"periods\":[[").unwrap();
    // A crash between write and rename leaves only the temporary.
    std::fs::write(d.path().join(".vm2.json.tmp"), b"garbage").unwrap();
    let ws = WorkingSets::load(d.path(), true).unwrap();
    assert!(ws.history("vm1").is_empty() && ws.history("vm2").is_empty());
    assert!(d.path().join("vm1.json.bad").exists());
    assert!(!d.path().join("vm1.json").exists());
    ws.record("vm2", &[1]).unwrap();
    assert_eq!(
        WorkingSets::load(d.path(), true).unwrap().history("vm2"),
        vec![vec![1]]
    );
}

#[test]
fn the_history_feeds_the_prefetch_policy() {
    let d = dir();
    let ws = WorkingSets::load(d.path(), true).unwrap();
    ws.record("vm", &[1, 2, 3]).unwrap();
    ws.record("vm", &[2, 3, 9]).unwrap();
    let p = jettison_power_model::PrefetchConfig::WorkingSet {
        max_pages: 2,
        periods: 4,
    };
    assert_eq!(p.first_wake(&ws.history("vm")), vec![2, 3]);
}

#[test]
fn without_keep_nothing_is_recorded_and_old_files_go() {
    let d = dir();
    let ws = WorkingSets::load(d.path(), true).unwrap();
    ws.record("vm1", &[1, 2, 3]).unwrap();
    std::fs::write(d.path().join("vm2.json.bad"), b"{").unwrap();
    let off = WorkingSets::load(d.path(), false).unwrap();
    assert!(off.history("vm1").is_empty());
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    off.record("vm1", &[4, 5]).unwrap();
    assert!(off.history("vm1").is_empty());
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
}
