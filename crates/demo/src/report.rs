//! The demo's report: `report.json` (nested objects; the dotted names in the
//! docs are paths into it) and a summary for the terminal.

use serde_json::{json, Value};

use crate::cluster::ClusterOptions;
use crate::disk::DiskCheck;
use crate::scenario::RoundTrip;

const PAGE: u64 = 4096;

/// Builds the report of a round trip; `disk` is the check of the guest's
/// disk after the run, when the VM had one.
pub fn build(opts: &ClusterOptions, rt: &RoundTrip, disk: Option<&DiskCheck>, tls: bool) -> Value {
    let memory_bytes = opts.memory_mib << 20;
    let m = &rt.migrate;
    let r = &rt.reintegrate;
    let fetched_bytes = rt.remote.pages_fetched * PAGE;
    let pct = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 * 100.0 / whole as f64
        }
    };
    // What reintegration must carry: the dirty pages and disk blocks, and the
    // device state; anything above is framing.
    let bound = (r.dirty_pages + r.dirty_disk_blocks) * PAGE + r.device_state_bytes;
    json!({
        "guest": {
            "memory_mib": opts.memory_mib,
            "fill_pct": opts.fill_pct,
            "accel": opts.accel,
            "boot_to_ready_s": rt.boot_s,
        },
        "migrate": {
            "latency_ms": m.latency_ms,
            "device_state_bytes": m.device_state_bytes,
            "save_ms": m.save_ms,
            "restore_ms": m.restore_ms,
            "bytes_sent": m.bytes_sent,
            "desktop_resident_bytes": m.desktop_resident_bytes,
        },
        "remote": {
            "seconds": r.remote_seconds,
            "faults": rt.remote.faults,
            "replica_hits": rt.remote.replica_hits,
            "pages_fetched": rt.remote.pages_fetched,
            "bytes_fetched": rt.remote.bytes_fetched,
            "fetch_retries": rt.remote.fetch_retries,
            "pages_fetched_pct_of_memory": pct(fetched_bytes, memory_bytes),
            "pages_fetched_pct_of_resident": pct(fetched_bytes, m.desktop_resident_bytes),
            "fault_latency_us": {
                "count": rt.remote.fault_latency_us.count,
                "p50": rt.remote.fault_latency_us.p50,
                "p90": rt.remote.fault_latency_us.p90,
                "p99": rt.remote.fault_latency_us.p99,
                "max": rt.remote.fault_latency_us.max,
                "mean": rt.remote.fault_latency_us.mean,
            },
            "prefetch": opts.prefetch(),
            "prefetch_name": opts.prefetch().name(),
            "max_readahead": opts.max_readahead,
        },
        "reintegrate": {
            "latency_ms": r.latency_ms,
            "dirty_pages": r.dirty_pages,
            "dirty_pct_of_memory": pct(r.dirty_pages * PAGE, memory_bytes),
            "device_state_bytes": r.device_state_bytes,
            "bytes_sent": r.bytes_sent,
            "payload_bound_bytes": bound,
            "framing_overhead_bytes": r.bytes_sent as i64 - bound as i64,
        },
        "integrity": {
            "images_equal": rt.server_digest.as_ref().map(|d| r.image_digest.as_ref() == Some(d)),
            "server_digest": rt.server_digest,
            "desktop_digest": r.image_digest,
            "server_read_ms": rt.server_read_ms,
            "inspection_pause_s": (rt.inspection.1 - rt.inspection.0) as f64 / 1000.0,
            "desktop_digest_ms": r.verify_ms,
            "guest_checks": rt.console.checks,
            "guest_check_failures": rt.console.check_failures + rt.console.corrupt_lines,
        },
        "heartbeats": {
            "received": rt.console.heartbeats,
            "max_gap_s": rt.console.max_gap_s,
        },
        "presence": rt.presence.as_ref().map(|p| json!({
            "connections": p.connections,
            // Connections that ended; the one chat connection is still open.
            "connection_resets": p.resets,
            "connected": p.connected,
            "heartbeats_received": p.heartbeats,
            "heartbeats_lost": p.hb_lost,
            // As the peer saw it: includes the deliberate inspection pause
            // (integrity.inspection_pause_s) when the images were compared.
            "max_heartbeat_gap_s": p.max_hb_gap_ms as f64 / 1000.0,
            "pongs": p.pongs,
            "mail_polls": p.mail_polls,
        })),
        "tls": { "enabled": tls },
        "disk": rt.reintegrate.remote_disk.as_ref().map(|d| json!({
            "bytes": opts.disk_mib.unwrap_or(0) << 20,
            "bytes_fetched": d.bytes_fetched,
            "fetched_pct_of_disk": pct(d.bytes_fetched, opts.disk_mib.unwrap_or(0) << 20),
            "dirty_blocks": r.dirty_disk_blocks,
            "bytes_sent_home": r.dirty_disk_blocks * PAGE,
            "mail_cache": disk,
        })),
    })
}

/// A human-readable summary of the report.
pub fn summary(v: &Value) -> String {
    let g = |path: &str| -> String {
        let mut cur = v;
        for k in path.split('.') {
            cur = &cur[k];
        }
        match cur {
            Value::Number(n) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap_or(0.0)),
            other => other.to_string(),
        }
    };
    format!(
        "guest             {} MiB ({}% filled), {}\n\
         migrate           {} ms, device state {} bytes, desktop resident {} bytes\n\
         on the server     {} s, {} faults, {} pages fetched ({}% of memory, {}% of resident)\n\
         fault service     p50 {} us, p99 {} us\n\
         reintegrate       {} ms, {} dirty pages, {} bytes sent home (bound {} + framing {})\n\
         integrity         images equal: {}, guest check failures: {}\n\
         heartbeats        {} received, longest gap {} s\n\
         presence          chat connection resets {}, longest heartbeat gap at the peer {} s, mail polls {}\n\
         disk              {} bytes fetched, {} bytes sent home; mail cache at home matches: {} ({} records written on the server)\n\
         tls               {}\n\
         power             asleep {} of the consolidated period ({} s), {} sleeps, {} wakes ({} by Wake-on-LAN), fetches while asleep: {}\n\
         energy            {} Wh with jettison vs {} Wh left on: {} % saved; plot {}\n\
         replay            meter {} Wh, simulator {} Wh ({} %), sleeps {} vs {}; {} on a {} ms tick, prefetch {}, selective resume {}\n                   not modelled: {}\n\
         trace             the agent's trace files ({} records): idle periods {} s, recorded {} Wh, simulator {} Wh ({} %), sleeps {} vs {}\n",
        g("guest.memory_mib"),
        g("guest.fill_pct"),
        g("guest.accel"),
        g("migrate.latency_ms"),
        g("migrate.device_state_bytes"),
        g("migrate.desktop_resident_bytes"),
        g("remote.seconds"),
        g("remote.faults"),
        g("remote.pages_fetched"),
        g("remote.pages_fetched_pct_of_memory"),
        g("remote.pages_fetched_pct_of_resident"),
        g("remote.fault_latency_us.p50"),
        g("remote.fault_latency_us.p99"),
        g("reintegrate.latency_ms"),
        g("reintegrate.dirty_pages"),
        g("reintegrate.bytes_sent"),
        g("reintegrate.payload_bound_bytes"),
        g("reintegrate.framing_overhead_bytes"),
        g("integrity.images_equal"),
        g("integrity.guest_check_failures"),
        g("heartbeats.received"),
        g("heartbeats.max_gap_s"),
        g("presence.connection_resets"),
        g("presence.max_heartbeat_gap_s"),
        g("presence.mail_polls"),
        g("disk.bytes_fetched"),
        g("disk.bytes_sent_home"),
        g("disk.mail_cache.checksum_matches"),
        g("disk.mail_cache.writes_on_server"),
        g("tls.enabled"),
        g("power.asleep_fraction"),
        g("power.consolidated_s"),
        g("power.sleeps"),
        g("power.wakes"),
        g("power.wol_wakes"),
        g("power.fetches_while_asleep"),
        g("energy.jettison_wh"),
        g("energy.baseline_wh"),
        g("energy.savings_pct"),
        g("energy.plot"),
        g("replay.meter_wh"),
        g("replay.sim_wh"),
        g("replay.diff_pct"),
        g("replay.meter_sleeps"),
        g("replay.sim_sleeps"),
        g("replay.policy"),
        g("replay.decision_tick_ms"),
        g("replay.prefetch"),
        g("replay.selective_resume"),
        g("replay.model"),
        g("trace.records"),
        g("trace.replay.idle_s"),
        g("trace.replay.recorded_idle_wh"),
        g("trace.replay.sim_idle_wh"),
        g("trace.replay_diff_idle_pct"),
        g("trace.replay.recorded_sleeps"),
        g("trace.replay.sim_sleeps"),
    )
}

/// What a demo run promises, checked on its report.
#[derive(Debug, Clone, Copy)]
pub struct Promises {
    /// The memory images were compared across reintegration.
    pub images_compared: bool,
    /// The desktop could sleep while its VM was away.
    pub sleep: bool,
    /// Prometheus and Chromium watched the run (`--ops`).
    pub ops: bool,
}

impl Promises {
    /// Each promise the report shows broken, in words (none: the run passed).
    pub fn broken(&self, v: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |ok: bool, what: &str| {
            if !ok {
                out.push(what.to_owned());
            }
        };
        if self.images_compared {
            check(
                v["integrity"]["images_equal"] == true,
                "memory images differ across reintegration",
            );
        }
        check(
            v["integrity"]["guest_check_failures"] == 0,
            "the guest's integrity checker reported failures",
        );
        if let Some(cache) = v["disk"].get("mail_cache").filter(|c| !c.is_null()) {
            check(
                cache["checksum_matches"] == true && cache["holds_server_writes"] == true,
                "the mail cache at home does not hold what the guest wrote",
            );
        }
        if let Some(p) = v.get("presence").filter(|p| !p.is_null()) {
            check(
                p["connection_resets"] == 0 && p["connections"] == 1,
                "the chat connection did not survive the moves",
            );
        }
        match v.get("power").filter(|p| !p.is_null()) {
            Some(p) => {
                check(
                    p["fetches_while_asleep"] == 0,
                    "a page was served by a sleeping desktop",
                );
                check(
                    p["sleeps"].as_u64() >= Some(1),
                    "the desktop never slept while its VM was away",
                );
                check(
                    p["wol_wakes"].as_u64() >= Some(1),
                    "no page miss woke the desktop with Wake-on-LAN while its VM was away",
                );
            }
            None if self.sleep => check(false, "the run has no power record"),
            None => {}
        }
        if self.ops {
            let ops = &v["ops"];
            match ops["error"].as_str() {
                Some(e) => check(false, &format!("the operations demo failed: {e}")),
                None => check(
                    ops["metrics_samples"].as_u64() > Some(0) && ops["dashboard_png"].is_string(),
                    "the run has no operations report (Prometheus series, dashboard screenshot)",
                ),
            }
        }
        out
    }
}

#[cfg(test)]
mod promise_tests {
    use super::*;

    fn passing() -> Value {
        json!({
            "integrity": { "images_equal": true, "guest_check_failures": 0 },
            "disk": { "mail_cache": { "checksum_matches": true, "holds_server_writes": true } },
            "presence": { "connection_resets": 0, "connections": 1 },
            "power": { "fetches_while_asleep": 0, "sleeps": 2, "wol_wakes": 1 },
        })
    }

    const ALL: Promises = Promises {
        images_compared: true,
        sleep: true,
        ops: false,
    };

    #[test]
    fn a_good_run_keeps_every_promise() {
        assert!(ALL.broken(&passing()).is_empty());
    }

    #[test]
    fn a_run_that_never_slept_fails() {
        let mut v = passing();
        v["power"]["sleeps"] = json!(0);
        v["power"]["wol_wakes"] = json!(0);
        let broken = ALL.broken(&v);
        assert_eq!(broken.len(), 2, "{broken:?}");
        assert!(broken[0].contains("never slept"));
    }

    #[test]
    fn a_sleep_without_a_wake_on_lan_fails() {
        let mut v = passing();
        v["power"]["wol_wakes"] = json!(0);
        assert_eq!(ALL.broken(&v).len(), 1);
    }

    #[test]
    fn a_missing_power_record_fails_only_when_sleep_was_promised() {
        let mut v = passing();
        v.as_object_mut().unwrap().remove("power");
        assert_eq!(ALL.broken(&v).len(), 1);
        let awake = Promises {
            sleep: false,
            ..ALL
        };
        assert!(awake.broken(&v).is_empty());
    }

    #[test]
    fn each_integrity_failure_is_named() {
        let mut v = passing();
        v["integrity"]["images_equal"] = json!(false);
        v["integrity"]["guest_check_failures"] = json!(3);
        v["disk"]["mail_cache"]["holds_server_writes"] = json!(false);
        v["presence"]["connection_resets"] = json!(1);
        v["power"]["fetches_while_asleep"] = json!(4);
        assert_eq!(ALL.broken(&v).len(), 5);
        let unverified = Promises {
            images_compared: false,
            ..ALL
        };
        assert_eq!(unverified.broken(&v).len(), 4);
    }

    #[test]
    fn the_operations_demo_must_report_when_asked() {
        let ops = Promises { ops: true, ..ALL };
        let mut v = passing();
        assert_eq!(ops.broken(&v).len(), 1, "no ops report");
        assert!(ALL.broken(&v).is_empty(), "not asked, not checked");
        v["ops"] = json!({ "metrics_samples": 42, "dashboard_png": "/o/dashboard.png" });
        assert!(ops.broken(&v).is_empty());
        v["ops"]["metrics_samples"] = json!(0);
        assert_eq!(ops.broken(&v).len(), 1);
        v["ops"] = json!({ "error": "prometheus never saw a VM consolidated" });
        let broken = ops.broken(&v);
        assert!(
            broken[0].contains("never saw a VM consolidated"),
            "{broken:?}"
        );
    }
}
