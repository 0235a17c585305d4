//! The dashboard page as HTML, from a [`Page`] (pure: no I/O).

use std::fmt::Write;

use serde::Serialize;

use crate::fleet::{utc_date, DayEnergy};

/// One desktop's row of the fleet table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesktopRow {
    /// Its name (its certificate's).
    pub desktop: String,
    /// Its power state as this server knows it.
    pub power: String,
    /// Since when (Unix ms).
    pub power_since_ms: u64,
    /// Its VMs.
    pub vms: Vec<VmRow>,
}

/// One VM of a desktop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmRow {
    /// Its name.
    pub vm: String,
    /// Where it runs (`server`, `home`, `arriving`, `returning home`).
    pub runs: String,
    /// Since when (Unix ms).
    pub since_ms: u64,
}

/// Fault service latency of one VM here (µs), from its histogram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmLatency {
    /// The VM.
    pub vm: String,
    /// Its figures.
    pub fault_latency_us: jettison_wire::LatencySummary,
    /// Pages fetched for it.
    pub pages_fetched: u64,
}

/// Everything the dashboard shows (also served as JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// This server's name.
    pub server: String,
    /// When the page was made (Unix ms).
    pub now_ms: u64,
    /// The fleet table.
    pub desktops: Vec<DesktopRow>,
    /// Estimated energy per UTC day.
    pub days: Vec<DayEnergy>,
    /// Faults served since the server started.
    pub faults: u64,
    /// Their mean service time, ms.
    pub fault_mean_ms: f64,
    /// Per VM here.
    pub latency: Vec<VmLatency>,
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time in ms.
pub fn utc_time(ms: u64) -> String {
    let s = ms / 1000;
    format!(
        "{} {:02}:{:02}:{:02}",
        utc_date(s / 86_400),
        s % 86_400 / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// How long ago, in words.
fn ago(now_ms: u64, ms: u64) -> String {
    let s = now_ms.saturating_sub(ms) / 1000;
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        _ => format!("{:.1} h ago", s as f64 / 3600.0),
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.3em .7em;text-align:left}\
th{background:#f0f0f0}td.n{text-align:right}\
img{max-width:100%;border:1px solid #ddd}";

/// The page: the fleet table, each desktop's timeline (an SVG at
/// `/timeline/<desktop>`), energy saved per day, fault latency. It reloads
/// itself every `refresh_s` seconds.
pub fn render(p: &Page, refresh_s: u32) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{refresh_s}\">\
         <title>jettison: {server}</title><style>{STYLE}</style></head><body>\n\
         <h1>jettison server {server}</h1>\n<p>{now} UTC; this page reloads every {refresh_s} s \
         (JSON: <a href=\"/api/dashboard\">/api/dashboard</a>, metrics: \
         <a href=\"/metrics\">/metrics</a>).</p>\n",
        server = esc(&p.server),
        now = utc_time(p.now_ms),
    );
    h.push_str(
        "<h2>Fleet</h2>\n<table id=\"fleet\"><tr><th>desktop</th><th>power state</th>\
                <th>since</th><th>VM</th><th>runs on</th><th>since</th></tr>\n",
    );
    if p.desktops.is_empty() {
        h.push_str("<tr><td colspan=\"6\">no desktop has brought a VM here yet</td></tr>\n");
    }
    for d in &p.desktops {
        let n = d.vms.len().max(1);
        let _ = write!(
            h,
            "<tr><td rowspan=\"{n}\">{}</td><td rowspan=\"{n}\">{}</td><td rowspan=\"{n}\">{}</td>",
            esc(&d.desktop),
            esc(&d.power),
            ago(p.now_ms, d.power_since_ms)
        );
        if d.vms.is_empty() {
            h.push_str("<td></td><td></td><td></td></tr>\n");
        }
        for (i, v) in d.vms.iter().enumerate() {
            if i > 0 {
                h.push_str("<tr>");
            }
            let runs = if v.runs == "server" || v.runs == "returning home" {
                format!("{} ({})", esc(&p.server), esc(&v.runs))
            } else {
                esc(&v.runs)
            };
            let _ = writeln!(
                h,
                "<td>{}</td><td>{runs}</td><td>{} ({})</td></tr>",
                esc(&v.vm),
                utc_time(v.since_ms),
                ago(p.now_ms, v.since_ms)
            );
        }
    }
    h.push_str("</table>\n<h2>Power timelines</h2>\n");
    for d in &p.desktops {
        let name = esc(&d.desktop);
        let _ = writeln!(
            h,
            "<h3>{name}</h3>\n<img alt=\"power timeline of {name}\" src=\"/timeline/{name}\">"
        );
    }
    h.push_str(
        "<h2>Energy saved per day</h2>\n<p>Estimated from this server's view of each desktop \
         (awake, asleep, waking) with the default power profile, against the desktops left \
         on.</p>\n<table id=\"energy\"><tr><th>day (UTC)</th><th>used, Wh</th>\
         <th>left on, Wh</th><th>saved, Wh</th></tr>\n",
    );
    for day in &p.days {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td>\
             <td class=\"n\">{:.1}</td></tr>",
            day.day,
            day.used_wh,
            day.baseline_wh,
            day.saved_wh()
        );
    }
    let _ = write!(
        h,
        "</table>\n<h2>Fault latency</h2>\n<p id=\"faults\">{} faults served since the server \
         started, mean {:.2} ms.</p>\n<table id=\"latency\"><tr><th>VM</th><th>faults</th>\
         <th>p50, ms</th><th>p90, ms</th><th>p99, ms</th><th>max, ms</th>\
         <th>pages fetched</th></tr>\n",
        p.faults, p.fault_mean_ms
    );
    for l in &p.latency {
        let s = &l.fault_latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td>\
             <td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td>\
             <td class=\"n\">{}</td></tr>",
            esc(&l.vm),
            s.count,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max),
            l.pages_fetched
        );
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_780_000_000_000;

    fn page() -> Page {
        Page {
            server: "consol-1".into(),
            now_ms: NOW,
            desktops: vec![DesktopRow {
                desktop: "desk<1>".into(),
                power: "asleep".into(),
                power_since_ms: NOW - 90_000,
                vms: vec![VmRow {
                    vm: "vm-a".into(),
                    runs: "server".into(),
                    since_ms: NOW - 600_000,
                }],
            }],
            days: vec![DayEnergy {
                day: "2026-05-28".into(),
                used_wh: 10.0,
                baseline_wh: 60.0,
            }],
            faults: 42,
            fault_mean_ms: 1.5,
            latency: vec![VmLatency {
                vm: "vm-a".into(),
                fault_latency_us: jettison_wire::LatencySummary {
                    count: 42,
                    p50: 800,
                    p90: 1500,
                    p99: 9000,
                    max: 12_000,
                    mean: 1500.0,
                },
                pages_fetched: 77,
            }],
        }
    }

    #[test]
    fn the_page_shows_the_fleet_energy_and_latency() {
        let h = render(&page(), 5);
        assert!(h.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(h.contains("<td rowspan=\"1\">desk&lt;1&gt;</td><td rowspan=\"1\">asleep</td><td rowspan=\"1\">90 s ago</td>"), "{h}");
        assert!(h.contains("<td>vm-a</td><td>consol-1 (server)</td>"), "{h}");
        assert!(h.contains("src=\"/timeline/desk&lt;1&gt;\""), "{h}");
        assert!(h.contains("<td>2026-05-28</td><td class=\"n\">10.0</td><td class=\"n\">60.0</td><td class=\"n\">50.0</td>"), "{h}");
        assert!(h.contains("42 faults served since the server started, mean 1.50 ms"));
        assert!(
            h.contains(
                "<td class=\"n\">0.80</td><td class=\"n\">1.50</td><td class=\"n\">9.00</td>"
            ),
            "{h}"
        );
        assert!(!h.contains("desk<1>"), "names are escaped");
    }

    #[test]
    fn an_empty_fleet_says_so() {
        let mut p = page();
        p.desktops.clear();
        assert!(render(&p, 5).contains("no desktop has brought a VM here yet"));
    }

    #[test]
    fn times() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00");
        assert_eq!(utc_time(86_400_000 + 3_723_000), "1970-01-02 01:02:03");
        assert_eq!(ago(10_000_000, 10_000_000 - 7_200_000), "2.0 h ago");
    }
}
