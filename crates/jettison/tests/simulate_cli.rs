//! `jettison simulate` end to end: the report's keys for every combination,
//! the power profile and prefetch options, and clear errors for bad input.

use std::process::{Command, Output};

fn jettison(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jettison"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const SMALL: [&str; 6] = ["simulate", "--synthetic", "--desktops", "4", "--days", "7"];

/// Runs the small fleet with `extra` options, writing the JSON report, the
/// Markdown page and the plot into `dir`; returns their paths.
fn run_small(
    dir: &std::path::Path,
    extra: &[&str],
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
    Output,
) {
    let json = dir.join("sim.json");
    let md = dir.join("sim.md");
    let png = dir.join("sim.png");
    let mut args = SMALL.to_vec();
    args.extend(extra);
    args.extend([
        "--json",
        json.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
        "--plot",
        png.to_str().unwrap(),
    ]);
    let out = jettison(&args);
    (json, md, png, out)
}

#[test]
fn synthetic_fleet_report_has_every_combination_and_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let (json, md, png, out) = run_small(dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    for want in [
        "oracle (",
        "full migration",
        "Most energy, whatever the delay",
        "Selective resume",
        "Idle detection:",
        "of full migration's savings",
    ] {
        assert!(table.contains(want), "{want} in {table}");
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let policies = v["policies"].as_object().unwrap();
    // 4 sleep policies x 4 default prefetch policies x 2 resumes
    assert_eq!(policies.len(), 32, "{:?}", policies.keys());
    for key in [
        "break-even",
        "ski-rental+selective",
        "break-even+working-set",
        "break-even+combined-64+selective",
    ] {
        assert!(policies.contains_key(key), "{key} in {:?}", policies.keys());
    }
    assert_eq!(v["oracles"].as_object().unwrap().len(), 8);
    for scheme in policies
        .values()
        .chain([&v["oracle"], &v["full_migration"]])
    {
        assert!(scheme["savings_pct"].as_f64().unwrap() > 0.0);
        assert!(scheme["network_bytes"].as_u64().unwrap() > 0);
        assert!(scheme["wasted_migrations"].is_u64(), "{scheme}");
        for bucket in ["10-30m", "30-60m", "1h+", "overnight"] {
            assert!(
                scheme["savings_by_idle_bucket"][bucket].is_number(),
                "{bucket} missing in {scheme}"
            );
        }
    }
    let page = std::fs::read_to_string(&md).unwrap();
    for want in [
        "| oracle, none |",
        "44-91 %",
        "5-point target",
        "Over full migration",
        "10-30 min",
        "![Energy saved by idle-period length](sim.png)",
        "## The synthetic model",
        "under 10 min",
    ] {
        assert!(page.contains(want), "{want} in {page}");
    }
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    assert!(
        page.contains("`jettison simulate --synthetic --desktops 4 --days 7"),
        "{page}"
    );
    // the oracle bounds every combination
    let oracle = v["oracle"]["savings_pct"].as_f64().unwrap();
    for p in policies.values() {
        assert!(p["savings_pct"].as_f64().unwrap() <= oracle + 1e-9);
    }
}

#[test]
fn profile_and_prefetch_options() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.toml");
    // a desktop whose sleep is almost free: sleeping saves more
    std::fs::write(&profile, "[desktop]\nasleep_w = 0.5\n").unwrap();
    let json = dir.path().join("sim.json");
    let run = |extra: &[&str]| {
        let mut args = SMALL.to_vec();
        args.extend([
            "--prefetch",
            "none,working-set-100-2",
            "--selective-resume",
            "off",
        ]);
        args.extend(["--json", json.to_str().unwrap()]);
        args.extend(extra);
        let out = jettison(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        v
    };
    let default = run(&[]);
    let keys: Vec<&String> = default["policies"].as_object().unwrap().keys().collect();
    // 4 sleep policies x 2 prefetch policies
    assert_eq!(keys.len(), 8, "{keys:?}");
    assert!(
        default["policies"]["break-even+working-set-100-2"].is_object(),
        "{keys:?}"
    );
    let custom = run(&["--profile", profile.to_str().unwrap()]);
    let saved = |v: &serde_json::Value| v["plain_sleep"]["savings_pct"].as_f64().unwrap();
    assert!(saved(&custom) > saved(&default));
}

#[test]
fn bad_input_is_a_clear_error() {
    let out = jettison(&["simulate"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--synthetic, or --trace PATH"),
        "{}",
        stderr(&out)
    );

    let mut args = SMALL.to_vec();
    args.extend(["--profile", "/nonexistent/profile.toml"]);
    let out = jettison(&args);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("reading the power profile /nonexistent/profile.toml")
            && err.contains("No such file"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[desktop]\nidle_w = \"lots\"\n").unwrap();
    let mut args = SMALL.to_vec();
    args.extend(["--profile", bad.to_str().unwrap()]);
    let out = jettison(&args);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("power profile"), "{}", stderr(&out));

    for prefetch in ["sometimes", "neighbourhood-3"] {
        let mut args = SMALL.to_vec();
        args.extend(["--prefetch", prefetch]);
        let out = jettison(&args);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains(&format!("--prefetch {prefetch:?}")),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn sweeps_have_intervals_plots_and_a_json_section() {
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        "--prefetch",
        "neighbourhood-64",
        "--sweeps",
        "--sweep-seeds",
        "2",
    ];
    let (json, md, _, out) = run_small(dir.path(), &extra);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    // the keys that existed before the sweeps stay
    for key in ["best_under_budget", "crossover_partial_vms_per_server"] {
        assert!(v.get(key).is_some(), "{key}");
    }
    let sweeps = v["sweeps"].as_array().unwrap();
    let keys: Vec<&str> = sweeps.iter().map(|s| s["key"].as_str().unwrap()).collect();
    for want in [
        "partial_vms_per_server",
        "idle_w",
        "asleep_w",
        "resume_ms",
        "service_share",
        "cold_rate",
        "timer_rate",
        "hot_pages",
        "away_after_min",
    ] {
        assert!(keys.contains(&want), "{want} in {keys:?}");
    }
    for sw in sweeps {
        let points = sw["points"].as_array().unwrap();
        assert!(points.len() >= 4, "{sw}");
        assert_eq!(points.iter().filter(|p| p["default"] == true).count(), 1);
        for p in points {
            let s = &p["savings"];
            assert_eq!(s["seeds"], 2);
            assert!(s["lo"].as_f64().unwrap() <= s["hi"].as_f64().unwrap());
        }
        let key = sw["key"].as_str().unwrap();
        let plot = dir.path().join(format!("sim-sweep-{key}.png"));
        assert!(
            std::fs::read(&plot).unwrap().starts_with(b"\x89PNG"),
            "{key}"
        );
    }
    // the cold-page rate from x0.1 to x10
    let cold = sweeps.iter().find(|s| s["key"] == "cold_rate").unwrap();
    let values: Vec<f64> = cold["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert_eq!((values[0], values[values.len() - 1]), (0.1, 10.0));
    let page = std::fs::read_to_string(&md).unwrap();
    for want in [
        "## The synthetic model",
        "| `away_after_ms` |",
        "## Sensitivity",
        "![cold-page rate (x the default)](sim-sweep-cold_rate.png)",
        "wasted migrations",
    ] {
        assert!(page.contains(want), "{want} in {page}");
    }
}

#[test]
fn sweeps_need_the_synthetic_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    std::fs::write(&trace, r#"{"days":1,"desktops":[]}"#).unwrap();
    let out = jettison(&["simulate", "--trace", trace.to_str().unwrap(), "--sweeps"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--synthetic"), "{}", stderr(&out));
}

#[test]
fn a_measured_density_sets_the_server_share() {
    let dir = tempfile::tempdir().unwrap();
    let density = dir.path().join("density.json");
    // a bench report: 7x less memory, 20 % more CPU per partially migrated VM
    std::fs::write(
        &density,
        r#"{"density": {"partial": {"mem_mib_per_vm": 40.0, "cpu_pct_per_vm": 2.4},
                        "full": {"mem_mib_per_vm": 280.0, "cpu_pct_per_vm": 2.0}}}"#,
    )
    .unwrap();
    let json = dir.path().join("sim.json");
    let run = |extra: &[&str]| {
        let mut args = SMALL.to_vec();
        args.extend(["--seeds", "1", "--json", json.to_str().unwrap()]);
        args.extend(extra);
        let out = jettison(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(&json).unwrap()).unwrap()
    };
    let assumed = run(&[]);
    assert!(assumed.get("density").is_none());
    let both = run(&["--density", density.to_str().unwrap()]);
    assert_eq!(
        both["density"]["partial_vms_per_server"], 25,
        "30 x min(7, 1/1.2)"
    );
    assert_eq!(both["density"]["binding"], "both");
    let memory = run(&[
        "--density",
        density.to_str().unwrap(),
        "--density-binding",
        "memory",
    ]);
    assert_eq!(memory["density"]["partial_vms_per_server"], 210, "30 x 7");
    // the larger share charged per VM costs partial migration energy
    let best = |v: &serde_json::Value| {
        v["policies"]
            .as_object()
            .unwrap()
            .values()
            .map(|o| o["savings_pct"].as_f64().unwrap())
            .fold(f64::MIN, f64::max)
    };
    assert!(best(&both) < best(&assumed) && best(&assumed) < best(&memory));
    // a file without the figures is a clear error
    std::fs::write(&density, r#"{"density": {"partial": {}}}"#).unwrap();
    let out = jettison(&[SMALL.as_slice(), &["--density", density.to_str().unwrap()]].concat());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no density measurement"),
        "{}",
        stderr(&out)
    );
}
