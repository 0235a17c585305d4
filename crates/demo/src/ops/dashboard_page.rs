//! What the server's dashboard shows, read from the DOM a browser built of
//! it, and checked against what a run expects (pure: no I/O).

use scraper::{ElementRef, Html, Selector};
use serde::Serialize;

/// One VM's row of the fleet table (with its desktop's cells).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetRow {
    /// The desktop.
    pub desktop: String,
    /// Its power state, as shown.
    pub power: String,
    /// The VM (empty for a desktop without one).
    pub vm: String,
    /// Where it runs, as shown (`home`, `server (server)`, …).
    pub runs: String,
}

/// What the page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Shown {
    /// The document's title.
    pub title: String,
    /// The fleet table.
    pub fleet: Vec<FleetRow>,
    /// The power timelines' image addresses.
    pub timelines: Vec<String>,
    /// Days in the energy table.
    pub energy_days: usize,
    /// Faults served, from the fault latency paragraph.
    pub faults: Option<u64>,
    /// VMs in the fault latency table.
    pub latency_vms: Vec<String>,
}

fn sel(s: &str) -> Selector {
    // The selectors are constants of this file, tested below.
    Selector::parse(s).unwrap_or_else(|e| panic!("selector {s:?}: {e}"))
}

fn text(e: ElementRef) -> String {
    e.text().collect::<String>().trim().to_owned()
}

/// Rows of cells (`td`) of the table `table`; header rows (no `td`) left out.
fn rows(doc: &Html, table: &str) -> Vec<Vec<String>> {
    let td = sel("td");
    doc.select(&sel(&format!("table{table} tr")))
        .map(|tr| tr.select(&td).map(text).collect::<Vec<_>>())
        .filter(|cells| !cells.is_empty())
        .collect()
}

/// Reads the page.
pub fn read(dom: &str) -> Shown {
    let doc = Html::parse_document(dom);
    let mut fleet: Vec<FleetRow> = Vec::new();
    for cells in rows(&doc, "#fleet") {
        match cells.len() {
            // desktop, power, since, VM, runs on, since
            6 => fleet.push(FleetRow {
                desktop: cells[0].clone(),
                power: cells[1].clone(),
                vm: cells[3].clone(),
                runs: cells[4].clone(),
            }),
            // A further VM of the desktop above (its cells span the rows).
            3 => {
                if let Some(above) = fleet.last().cloned() {
                    fleet.push(FleetRow {
                        vm: cells[0].clone(),
                        runs: cells[1].clone(),
                        ..above
                    });
                }
            }
            // "no desktop has brought a VM here yet"
            _ => {}
        }
    }
    let faults = doc
        .select(&sel("p#faults"))
        .next()
        .and_then(|p| text(p).split_whitespace().next()?.parse().ok());
    Shown {
        title: doc
            .select(&sel("title"))
            .next()
            .map(text)
            .unwrap_or_default(),
        fleet,
        timelines: doc
            .select(&sel("img"))
            .filter_map(|i| i.value().attr("src"))
            .filter(|s| s.starts_with("/timeline/"))
            .map(str::to_owned)
            .collect(),
        energy_days: rows(&doc, "#energy").len(),
        faults,
        latency_vms: rows(&doc, "#latency")
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect(),
    }
}

/// What a run expects the page to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The desktop of the run.
    pub desktop: String,
    /// Its VM.
    pub vm: String,
    /// Where the VM runs, as the page says it (`home`, `server (server)`).
    pub runs: String,
    /// How the desktop's power state begins (`awake`, `asleep`).
    pub power: String,
    /// At least this many faults served.
    pub min_faults: u64,
    /// The VM is on the server, so in the fault latency table.
    pub latency_row: bool,
}

/// Each check, passed or failed, in words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// The checks that passed.
    pub passed: Vec<String>,
    /// The checks that failed, with what the page showed.
    pub failed: Vec<String>,
}

/// Checks what the page shows against `e`.
pub fn check(s: &Shown, e: &Expect) -> Checked {
    let mut c = Checked::default();
    let mut check = |ok: bool, what: String, shown: String| {
        if ok {
            c.passed.push(what);
        } else {
            c.failed.push(format!("{what}: the page shows {shown}"));
        }
    };
    let fleet = format!("{:?}", s.fleet);
    check(
        s.title.starts_with("jettison"),
        "the page is jettison's dashboard".into(),
        format!("the title {:?}", s.title),
    );
    let desktop = s.fleet.iter().find(|r| r.desktop == e.desktop);
    check(
        desktop.is_some(),
        format!("the fleet table names desktop {:?}", e.desktop),
        fleet.clone(),
    );
    check(
        desktop.is_some_and(|r| r.power.starts_with(&e.power)),
        format!("its power state reads {:?}…", e.power),
        fleet.clone(),
    );
    check(
        s.fleet
            .iter()
            .any(|r| r.desktop == e.desktop && r.vm == e.vm && r.runs == e.runs),
        format!("VM {:?} runs on {:?}", e.vm, e.runs),
        fleet,
    );
    let timeline = format!("/timeline/{}", e.desktop);
    check(
        s.timelines.contains(&timeline),
        format!("the power timeline {timeline} is on the page"),
        format!("{:?}", s.timelines),
    );
    check(
        s.energy_days >= 1,
        "the energy table has a day".into(),
        format!("{} days", s.energy_days),
    );
    check(
        s.faults.is_some_and(|f| f >= e.min_faults),
        format!("at least {} faults served", e.min_faults),
        format!("{:?}", s.faults),
    );
    if e.latency_row {
        check(
            s.latency_vms.contains(&e.vm),
            format!("the fault latency table lists {:?}", e.vm),
            format!("{:?}", s.latency_vms),
        );
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page as Chromium serializes it (implicit `tbody`s, attributes
    /// kept), two desktops, the second with two VMs.
    const DOM: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5"><title>jettison: server</title></head><body>
<h1>jettison server server</h1>
<h2>Fleet</h2>
<table id="fleet"><tbody><tr><th>desktop</th><th>power state</th><th>since</th><th>VM</th><th>runs on</th><th>since</th></tr>
<tr><td rowspan="1">desktop</td><td rowspan="1">awake (its VMs at home)</td><td rowspan="1">12 s ago</td><td>jt1a</td><td>home</td><td>2026-12-02 15:00:00 (12 s ago)</td></tr>
<tr><td rowspan="2">desk2</td><td rowspan="2">asleep</td><td rowspan="2">3 min ago</td><td>vm-b</td><td>server (server)</td><td>x</td></tr>
<tr><td>vm-c</td><td>home</td><td>y</td></tr>
</tbody></table>
<h2>Power timelines</h2>
<h3>desktop</h3>
<img alt="power timeline of desktop" src="/timeline/desktop">
<h3>desk2</h3>
<img alt="power timeline of desk2" src="/timeline/desk2">
<h2>Energy saved per day</h2>
<table id="energy"><tbody><tr><th>day (UTC)</th><th>used, Wh</th><th>left on, Wh</th><th>saved, Wh</th></tr>
<tr><td>2026-12-02</td><td class="n">1.0</td><td class="n">2.0</td><td class="n">1.0</td></tr>
</tbody></table>
<h2>Fault latency</h2>
<p id="faults">311 faults served since the server started, mean 1.20 ms.</p>
<table id="latency"><tbody><tr><th>VM</th><th>faults</th></tr>
<tr><td>vm-b</td><td class="n">311</td></tr>
</tbody></table>
</body></html>"#;

    fn expect() -> Expect {
        Expect {
            desktop: "desktop".into(),
            vm: "jt1a".into(),
            runs: "home".into(),
            power: "awake".into(),
            min_faults: 1,
            latency_row: false,
        }
    }

    #[test]
    fn the_page_is_read_with_spanned_rows() {
        let s = read(DOM);
        assert_eq!(s.title, "jettison: server");
        assert_eq!(s.fleet.len(), 3);
        assert_eq!(
            s.fleet[0],
            FleetRow {
                desktop: "desktop".into(),
                power: "awake (its VMs at home)".into(),
                vm: "jt1a".into(),
                runs: "home".into(),
            }
        );
        assert_eq!(s.fleet[1].runs, "server (server)");
        assert_eq!(
            (s.fleet[2].desktop.as_str(), s.fleet[2].power.as_str()),
            ("desk2", "asleep"),
            "a spanned row keeps its desktop"
        );
        assert_eq!(s.fleet[2].vm, "vm-c");
        assert_eq!(s.timelines, ["/timeline/desktop", "/timeline/desk2"]);
        assert_eq!(s.energy_days, 1);
        assert_eq!(s.faults, Some(311));
        assert_eq!(s.latency_vms, ["vm-b"]);
    }

    #[test]
    fn a_matching_page_passes_every_check() {
        let c = check(&read(DOM), &expect());
        assert!(c.failed.is_empty(), "{c:?}");
        assert_eq!(c.passed.len(), 7);
        let away = Expect {
            desktop: "desk2".into(),
            vm: "vm-b".into(),
            runs: "server (server)".into(),
            power: "asleep".into(),
            min_faults: 300,
            latency_row: true,
        };
        let c = check(&read(DOM), &away);
        assert!(c.failed.is_empty(), "{c:?}");
        assert_eq!(c.passed.len(), 8);
    }

    #[test]
    fn each_difference_fails_its_check() {
        let s = read(DOM);
        let fails = |e: Expect| check(&s, &e).failed;
        let f = fails(Expect {
            desktop: "nobody".into(),
            ..expect()
        });
        // The desktop, its power state, its VM's row and its timeline.
        assert_eq!(f.len(), 4, "{f:?}");
        assert!(f[0].contains("names desktop \"nobody\""), "{f:?}");
        assert_eq!(
            fails(Expect {
                power: "asleep".into(),
                ..expect()
            })
            .len(),
            1
        );
        assert_eq!(
            fails(Expect {
                runs: "server (server)".into(),
                ..expect()
            })
            .len(),
            1
        );
        assert_eq!(
            fails(Expect {
                min_faults: 312,
                ..expect()
            })
            .len(),
            1
        );
        assert_eq!(
            fails(Expect {
                latency_row: true,
                ..expect()
            })
            .len(),
            1
        );
    }

    #[test]
    fn an_empty_fleet_or_another_page_shows_nothing_expected() {
        let empty = DOM.replace(
            &DOM[DOM.find("<tr><td rowspan=\"1\">desktop").unwrap()
                ..DOM.find("</tbody></table>\n<h2>Power").unwrap()],
            "<tr><td colspan=\"6\">no desktop has brought a VM here yet</td></tr>\n",
        );
        assert!(read(&empty).fleet.is_empty());
        let other = read("<html><head><title>Error</title></head><body>502</body></html>");
        assert_eq!(
            other,
            Shown {
                title: "Error".into(),
                ..Shown::default()
            }
        );
        assert_eq!(check(&other, &expect()).failed.len(), 7);
    }
}
