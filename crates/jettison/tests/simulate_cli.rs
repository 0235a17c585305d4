//! `jettison simulate` end to end: the report's keys, and a clear error
//! without input.

use std::process::Command;

fn jettison() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jettison"))
}

#[test]
fn synthetic_fleet_report_has_every_scheme_and_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("sim.json");
    let md = dir.path().join("sim.md");
    let out = jettison()
        .args([
            "simulate",
            "--synthetic",
            "--desktops",
            "6",
            "--days",
            "7",
            "--json",
        ])
        .arg(&json)
        .arg("--markdown")
        .arg(&md)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("oracle") && table.contains("full migration"),
        "{table}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let policies = v["policies"].as_object().unwrap();
    assert!(
        policies.contains_key("break-even") && policies.contains_key("ski-rental"),
        "{policies:?}"
    );
    for scheme in policies
        .values()
        .chain([&v["oracle"], &v["full_migration"]])
    {
        assert!(scheme["savings_pct"].as_f64().unwrap() > 0.0);
        for bucket in ["10-30m", "30-60m", "1h+", "overnight"] {
            assert!(
                scheme["savings_by_idle_bucket"][bucket].is_number(),
                "{bucket} missing in {scheme}"
            );
        }
    }
    let table = std::fs::read_to_string(&md).unwrap();
    assert!(
        table.contains("| oracle (offline optimum) |") && table.contains("44-91 %"),
        "{table}"
    );
    // The oracle bounds the online policies.
    let oracle = v["oracle"]["savings_pct"].as_f64().unwrap();
    for p in policies.values() {
        assert!(p["savings_pct"].as_f64().unwrap() <= oracle + 1e-9);
    }
}

#[test]
fn nothing_to_simulate_is_a_clear_error() {
    let out = jettison()
        .arg("simulate")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--synthetic, or --trace PATH"));
}
