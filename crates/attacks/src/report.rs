//! The rows of the report, how a row is judged from what was measured, the
//! JSON report and the readable table (pure).

use serde::Serialize;
use serde_json::{json, Value};

use crate::footprint::Change;

/// What the server answered to an attack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An error reply, with the server's text.
    Error(String),
    /// Anything else (the attack was served), by kind.
    Served(String),
    /// No reply: the connection failed or was refused (TLS, closed).
    NoReply(String),
}

impl Reply {
    /// Whether the server said no: an error reply, or a connection it
    /// refused before any request was served.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Reply::Served(_))
    }

    /// The text of the reply, for the row's detail.
    pub fn text(&self) -> String {
        match self {
            Reply::Error(e) => format!("error: {e}"),
            Reply::Served(k) => format!("served: {k}"),
            Reply::NoReply(e) => format!("no reply: {e}"),
        }
    }
}

/// The victim as checked right after an attack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VictimCheck {
    /// The server reports it consolidated (running).
    pub running: bool,
    /// The office peer heard a new heartbeat from its guest.
    pub heartbeat: bool,
    /// Its handover record on the server is byte for byte the same.
    pub record_unchanged: bool,
    /// None of its files, taps or QEMU went away.
    pub nothing_removed: bool,
    /// It came home afterwards with its memory (and disk) checks passing
    /// (`None`: not brought home yet).
    pub came_home: Option<bool>,
}

impl VictimCheck {
    /// Whether every check passed.
    pub fn intact(&self) -> bool {
        self.running
            && self.heartbeat
            && self.record_unchanged
            && self.nothing_removed
            && self.came_home != Some(false)
    }

    /// The failed checks, for the detail.
    pub fn failures(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if !self.running {
            v.push("not running on the server");
        }
        if !self.heartbeat {
            v.push("no heartbeat");
        }
        if !self.record_unchanged {
            v.push("record changed");
        }
        if !self.nothing_removed {
            v.push("files or devices removed");
        }
        if self.came_home == Some(false) {
            v.push("did not come home intact");
        }
        v
    }
}

/// One attack's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The attack.
    pub name: String,
    /// The server said no and created nothing for it.
    pub refused: bool,
    /// The victim VM is untouched.
    pub victim_intact: bool,
    /// Bytes of the victim's memory or disk (and device state) received.
    pub bytes_leaked: u64,
    /// The server's reply, what was created, and what failed.
    pub detail: String,
    /// Requests the server accepted before it refused one (capacity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<u32>,
    /// The victim's checks.
    pub victim: VictimCheck,
}

impl Row {
    /// Records whether the victim came home intact after this attack.
    pub fn came_home(&mut self, ok: bool) {
        let before = self.victim_intact;
        self.victim.came_home = Some(self.victim.came_home.unwrap_or(true) && ok);
        self.victim_intact = self.victim.intact();
        if before && !self.victim_intact {
            self.detail += "; victim: did not come home intact";
        }
    }
}

/// Everything an attack measured, before judgement.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The attack.
    pub name: String,
    /// The server's reply.
    pub reply: Reply,
    /// What appeared or vanished on the server meanwhile.
    pub change: Change,
    /// Victim bytes received.
    pub bytes_leaked: u64,
    /// The victim's state afterwards.
    pub victim: VictimCheck,
    /// Anything else worth saying (an oracle, the encoding used).
    pub note: String,
    /// Whether something beyond the reply makes the attack a success
    /// (e.g. a digest oracle: the reply differs with the real digest).
    pub succeeded_anyway: bool,
    /// For capacity: requests accepted before the refusal.
    pub accepted: Option<u32>,
}

impl Measured {
    /// A measurement with nothing beyond the reply.
    pub fn new(name: &str, reply: Reply) -> Self {
        Measured {
            name: name.into(),
            reply,
            change: Change::default(),
            bytes_leaked: 0,
            victim: VictimCheck::default(),
            note: String::new(),
            succeeded_anyway: false,
            accepted: None,
        }
    }
}

/// Judges an attack: refused when the server said no, nothing was created
/// for it (not even for a moment, as far as 50 ms sampling sees) nor
/// removed, nothing leaked and nothing else makes it a success.
pub fn judge(m: &Measured) -> Row {
    let refused = m.reply.is_refusal()
        && m.change.created.is_empty()
        && m.change.removed.is_empty()
        && m.bytes_leaked == 0
        && !m.succeeded_anyway;
    let mut detail = vec![m.reply.text()];
    if !m.change.created.is_empty() {
        detail.push(format!("created: {}", m.change.created.join(", ")));
    }
    if !m.change.removed.is_empty() {
        detail.push(format!("removed: {}", m.change.removed.join(", ")));
    }
    let failures = m.victim.failures();
    if !failures.is_empty() {
        detail.push(format!("victim: {}", failures.join(", ")));
    }
    if !m.note.is_empty() {
        detail.push(m.note.clone());
    }
    Row {
        name: m.name.clone(),
        refused,
        victim_intact: m.victim.intact(),
        bytes_leaked: m.bytes_leaked,
        detail: detail.join("; "),
        accepted: m.accepted,
        victim: m.victim.clone(),
    }
}

/// The fault latency over one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Window {
    /// Seconds the window lasted.
    pub seconds: f64,
    /// Faults the server served in it (for the victim).
    pub faults: u64,
    /// Their 99th percentile, µs, from the server's per-fault log
    /// (`None`: no fault in the window).
    pub fault_p99_us: Option<u64>,
    /// The probe's own reads of never-touched pages: count and p99, µs
    /// (what a faulting guest waits, as seen from outside the server).
    pub probe_reads: u64,
    /// The probe's p99, µs.
    pub probe_p99_us: Option<u64>,
}

/// What the unauthenticated flood did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Flood {
    /// The ports attacked (`ip:port`).
    pub targets: Vec<String>,
    /// Connections the attacker held at once (target).
    pub connections: u32,
    /// Connections opened in all (reopened when a server closed one).
    pub opened: u64,
    /// Connects that failed (refused, timed out).
    pub connect_failures: u64,
    /// Connections the servers closed during the hold.
    pub closed_by_server: u64,
    /// Legitimate mTLS handshakes to each port during the hold that
    /// succeeded, out of those tried.
    pub legit_handshakes_ok: u64,
    /// Tried.
    pub legit_handshakes_tried: u64,
    /// Daemons still alive after it.
    pub daemons_alive: bool,
    /// The daemons' log lines about refused or failed accepts (counts).
    pub accept_errors: u64,
}

/// The fuzz pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fuzz {
    /// Inputs run (targets that completed).
    pub inputs: u64,
    /// Targets that panicked or failed.
    pub panics: u64,
    /// How the pass ended (`ok`, or what went wrong).
    pub status: String,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// One row per attack.
    pub attacks: Vec<Row>,
    /// Fault latency without the flood.
    pub baseline: Window,
    /// Fault latency during the flood.
    pub slowloris: Window,
    /// The flood itself.
    pub flood: Flood,
    /// The wire fuzz pass.
    pub fuzz: Fuzz,
    /// The quick variant.
    pub quick: bool,
    /// The final homecomings of the victim (what each covers, and how it went).
    pub homecomings: Vec<String>,
    /// Seconds the suite took.
    pub seconds: f64,
}

impl Report {
    /// The JSON report: `attacks`, `slowloris.fault_p99_us`,
    /// `baseline.fault_p99_us`, `fuzz.inputs`, `fuzz.panics`, and the rest.
    pub fn to_json(&self) -> Value {
        let mut slowloris = serde_json::to_value(&self.slowloris).unwrap_or(Value::Null);
        if let Value::Object(o) = &mut slowloris {
            o.insert(
                "flood".into(),
                serde_json::to_value(&self.flood).unwrap_or(Value::Null),
            );
        }
        json!({
            "attacks": self.attacks,
            "slowloris": slowloris,
            "baseline": self.baseline,
            "fuzz": self.fuzz,
            "quick": self.quick,
            "homecomings": self.homecomings,
            "summary": {
                "attacks": self.attacks.len(),
                "not_refused": self.unrefused().len(),
                "victim_not_intact": self.attacks.iter().filter(|r| !r.victim_intact).count(),
                "bytes_leaked": self.attacks.iter().map(|r| r.bytes_leaked).sum::<u64>(),
            },
            "seconds": self.seconds,
        })
    }

    /// The attacks the server did not refuse.
    pub fn unrefused(&self) -> Vec<&str> {
        self.attacks
            .iter()
            .filter(|r| !r.refused)
            .map(|r| r.name.as_str())
            .collect()
    }

    /// A readable table.
    pub fn table(&self) -> String {
        let w = self
            .attacks
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let mut s = format!("{:<w$}  refused  intact  leaked  detail\n", "attack");
        for r in &self.attacks {
            let mut detail = r.detail.clone();
            if detail.len() > 110 {
                let mut cut = 110;
                while !detail.is_char_boundary(cut) {
                    cut -= 1;
                }
                detail.truncate(cut);
                detail.push_str("...");
            }
            s += &format!(
                "{:<w$}  {:<7}  {:<6}  {:>6}  {}\n",
                r.name,
                yes(r.refused),
                yes(r.victim_intact),
                r.bytes_leaked,
                detail
            );
        }
        let p99 = |v: Option<u64>| v.map(|x| format!("{x} us")).unwrap_or_else(|| "-".into());
        s += &format!(
            "fault p99: baseline {} ({} faults, {:.0} s), slowloris {} ({} faults); probe p99 {} vs {}\n",
            p99(self.baseline.fault_p99_us),
            self.baseline.faults,
            self.baseline.seconds,
            p99(self.slowloris.fault_p99_us),
            self.slowloris.faults,
            p99(self.baseline.probe_p99_us),
            p99(self.slowloris.probe_p99_us),
        );
        let f = &self.flood;
        s += &format!(
            "flood: {} connections held on {}; {} opened, {} closed by the servers, {} connect failures; \
             legitimate handshakes {}/{}; daemons alive: {}\n",
            f.connections,
            f.targets.join(" "),
            f.opened,
            f.closed_by_server,
            f.connect_failures,
            f.legit_handshakes_ok,
            f.legit_handshakes_tried,
            yes(f.daemons_alive)
        );
        s += &format!(
            "fuzz: {} inputs, {} panics ({})\n",
            self.fuzz.inputs, self.fuzz.panics, self.fuzz.status
        );
        for h in &self.homecomings {
            s += &format!("homecoming: {h}\n");
        }
        s
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intact() -> VictimCheck {
        VictimCheck {
            running: true,
            heartbeat: true,
            record_unchanged: true,
            nothing_removed: true,
            came_home: None,
        }
    }

    #[test]
    fn an_error_with_nothing_created_is_a_refusal() {
        let mut m = Measured::new("x", Reply::Error("no".into()));
        m.victim = intact();
        let r = judge(&m);
        assert!(r.refused && r.victim_intact, "{r:?}");
        assert_eq!(r.detail, "error: no");
    }

    #[test]
    fn an_error_after_something_was_created_is_not() {
        let mut m = Measured::new("x", Reply::Error("qemu failed".into()));
        m.change.created = vec!["link tap1".into(), "qemu 12".into()];
        m.victim = intact();
        let r = judge(&m);
        assert!(!r.refused);
        assert!(
            r.detail.contains("created: link tap1, qemu 12"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn served_leaking_or_an_oracle_is_not_refused() {
        assert!(!judge(&Measured::new("x", Reply::Served("Prepared".into()))).refused);
        let mut leak = Measured::new("x", Reply::Error("aborted".into()));
        leak.bytes_leaked = 4096;
        assert!(!judge(&leak).refused);
        let mut oracle = Measured::new("x", Reply::Error("other".into()));
        oracle.succeeded_anyway = true;
        assert!(!judge(&oracle).refused);
        // A connection refused in the TLS handshake is a refusal.
        assert!(judge(&Measured::new("x", Reply::NoReply("tls".into()))).refused);
    }

    #[test]
    fn the_victim_is_intact_only_if_every_check_passes() {
        assert!(intact().intact());
        for broken in [
            VictimCheck {
                running: false,
                ..intact()
            },
            VictimCheck {
                heartbeat: false,
                ..intact()
            },
            VictimCheck {
                record_unchanged: false,
                ..intact()
            },
            VictimCheck {
                nothing_removed: false,
                ..intact()
            },
            VictimCheck {
                came_home: Some(false),
                ..intact()
            },
        ] {
            assert!(!broken.intact());
            assert_eq!(broken.failures().len(), 1);
        }
        let mut m = Measured::new("x", Reply::Error("no".into()));
        m.victim = VictimCheck {
            heartbeat: false,
            ..intact()
        };
        m.change.removed = vec!["file mnt/v-disk.mem".into()];
        let r = judge(&m);
        assert!(!r.refused && !r.victim_intact);
        assert!(r
            .detail
            .contains("removed: file mnt/v-disk.mem; victim: no heartbeat"));
    }

    #[test]
    fn a_failed_homecoming_marks_the_row() {
        let mut m = Measured::new("x", Reply::Error("no".into()));
        m.victim = intact();
        let mut r = judge(&m);
        r.came_home(true);
        assert!(r.victim_intact && r.victim.came_home == Some(true));
        r.came_home(false);
        assert!(!r.victim_intact);
        assert!(r.detail.ends_with("did not come home intact"));
        r.came_home(true);
        assert_eq!(r.victim.came_home, Some(false));
    }

    #[test]
    fn the_json_report_has_the_keys_of_the_issue() {
        let mut m = Measured::new("reintegrate", Reply::Served("ReintegrateBegin".into()));
        m.bytes_leaked = 300_000;
        let report = Report {
            attacks: vec![judge(&m)],
            baseline: Window {
                fault_p99_us: Some(900),
                ..Window::default()
            },
            slowloris: Window {
                fault_p99_us: Some(1500),
                ..Window::default()
            },
            fuzz: Fuzz {
                inputs: 5000,
                panics: 0,
                status: "ok".into(),
            },
            ..Report::default()
        };
        let v = report.to_json();
        assert_eq!(v["attacks"][0]["name"], "reintegrate");
        assert_eq!(v["attacks"][0]["refused"], false);
        assert_eq!(v["attacks"][0]["bytes_leaked"], 300_000);
        assert!(v["attacks"][0]["victim_intact"].is_boolean());
        assert_eq!(v["slowloris"]["fault_p99_us"], 1500);
        assert_eq!(v["baseline"]["fault_p99_us"], 900);
        assert_eq!(v["fuzz"]["inputs"], 5000);
        assert_eq!(v["fuzz"]["panics"], 0);
        assert_eq!(v["summary"]["not_refused"], 1);
        assert_eq!(report.unrefused(), vec!["reintegrate"]);
        let t = report.table();
        assert!(
            t.contains("reintegrate") && t.contains("NO") && t.contains("1500 us"),
            "{t}"
        );
    }
}
