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

#[test]
fn synthetic_fleet_report_has_every_combination_and_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("sim.json");
    let md = dir.path().join("sim.md");
    let png = dir.path().join("sim.png");
    let mut args = SMALL.to_vec();
    args.extend([
        "--json",
        json.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
        "--plot",
        png.to_str().unwrap(),
    ]);
    let out = jettison(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    for want in [
        "oracle (",
        "full migration",
        "Most energy, whatever the delay",
        "Selective resume",
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
