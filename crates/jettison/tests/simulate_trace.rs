//! `jettison simulate --trace` on a desktop agent's trace files: rotated
//! files read in order, a torn last line skipped, the recorded run replayed
//! with every combination and, over its idle period, with the agent's own
//! settings against its recorded timeline.

use std::io::Write;
use std::process::Command;

use jettison_power_model::policy::{FixedTimeoutConfig, PolicyConfig};
use jettison_power_model::{HostState, Placement, PowerProfile, WakeReason};
use jettison_sim::recorded::{RecordedFile, TraceHeader, TraceRecord, TRACE_VERSION};

fn header() -> TraceRecord {
    TraceRecord::Header(TraceHeader {
        version: TRACE_VERSION,
        host: "desk".into(),
        clock_zero_unix_ms: 1_700_000_000_000,
        profile: PowerProfile::default(),
        policy: PolicyConfig::FixedTimeout(FixedTimeoutConfig { fixed_timeout_s: 2 }),
        selective_resume: false,
        tick_ms: 250,
    })
}

fn write(path: &std::path::Path, records: &[TraceRecord], torn: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    for r in records {
        writeln!(f, "{}", serde_json::to_string(r).unwrap()).unwrap();
    }
    f.write_all(torn.as_bytes()).unwrap();
}

/// The user leaves at 10 s, the desktop sleeps at 12 s (a 2 s timeout), a
/// fetch wakes it at 30 s, it sleeps again at 37 s, the user wakes it at
/// 60 s and it is in use at 65 s: on the profile's latencies, so the
/// replay meets the record; split across two files, the second torn.
#[test]
fn an_agents_rotated_trace_files_replay_over_their_idle_period() {
    use HostState::*;
    let state = |t_ms, state| TraceRecord::State { t_ms, state };
    let wake = |t_ms, reason| TraceRecord::Wake {
        t_ms,
        reason,
        service: false,
    };
    let place = |t_ms, placement| TraceRecord::Placement {
        t_ms,
        vm: "vm".into(),
        placement,
    };
    let fetch = |t_ms, first_page| TraceRecord::Fetch {
        t_ms,
        vm: "vm".into(),
        file: RecordedFile::Memory,
        first_page,
        pages: 64,
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    write(
        &a,
        &[
            header(),
            state(0, Active),
            fetch(9_990, 0),
            place(10_000, Placement::Server),
            state(10_000, Idle),
            state(12_000, Suspending),
            state(15_000, Asleep),
            fetch(35_010, 640),
        ],
        "",
    );
    write(
        &b,
        &[
            header(),
            wake(30_000, WakeReason::PageMiss),
            state(35_000, Idle),
            state(37_000, Suspending),
            state(40_000, Asleep),
            wake(60_000, WakeReason::UserReturn),
            state(65_000, Active),
            place(70_000, Placement::Desktop),
        ],
        r#"{"kind":"fetch","t_ms":71000,"vm":"v"#,
    );
    let json = dir.path().join("r.json");
    let out = Command::new(env!("CARGO_BIN_EXE_jettison"))
        .args(["simulate", "--trace"])
        .args([&a, &b])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("1 torn last line(s) skipped"), "{stderr}");
    assert!(stdout.contains("replay of the recorded run"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let r = &report["replay"];
    assert_eq!(r["combination"], "fixed-timeout-2s", "{r}");
    assert_eq!(
        (r["idle_periods"].as_u64(), r["requests"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        (r["sim_sleeps"].as_u64(), r["recorded_sleeps"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        (
            r["sim_page_wakes"].as_u64(),
            r["recorded_page_wakes"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert!(
        r["replay_diff_idle_pct"].as_f64().unwrap().abs() < 1e-6,
        "{r}"
    );
    // The what-if combinations ran on the same trace.
    assert_eq!(report["idle_ms"], 55_000);
    assert!(
        report["policies"]["break-even"]["energy_j"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // The first file alone (a trace cut short: the VM away, the desktop
    // asleep) replays too.
    let out = Command::new(env!("CARGO_BIN_EXE_jettison"))
        .args(["simulate", "--trace"])
        .arg(&a)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Records without a header are refused with a reason.
    let c = dir.path().join("c.jsonl");
    write(&c, &[state(0, Active)], "");
    let out = Command::new(env!("CARGO_BIN_EXE_jettison"))
        .args(["simulate", "--trace"])
        .arg(&c)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not start with a header"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
