//! Names and addresses of a LAN: pure functions, no I/O.
//!
//! Every run-scoped name starts with a *run id* `jt<pid>x<n>`: the owning
//! process id and a per-process counter (the lead's cluster names its VMs
//! the same way). Cleanup finds a dead run's leftovers by parsing run ids
//! back out of namespace names, `/dev/shm` file names, mount points and
//! QEMU command lines.
//!
//! Addresses: LAN `n` of a process uses `10.213.<o>.0/24` with
//! `o = 1 + (hash(pid, n) % 250)`. The namespaces are not connected to the
//! host or to each other, so two LANs sharing an octet would still not
//! interfere; the spread just keeps captures and logs unambiguous. Inside a
//! LAN: server `.2`, peer `.3`, desktops `.10`, `.11`, ..., VMs `.100 + i`.

use std::net::Ipv4Addr;

/// A run id `jt<pid>x<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId {
    /// The owning process.
    pub pid: u32,
    /// Counter within that process.
    pub n: u32,
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "jt{}x{}", self.pid, self.n)
    }
}

fn digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

/// Parses a run id at the start of `s` and returns it with the rest.
pub fn parse_run_id(s: &str) -> Option<(RunId, &str)> {
    let rest = s.strip_prefix("jt")?;
    let (pid, rest) = digits(rest);
    let rest = rest.strip_prefix('x')?;
    let (n, rest) = digits(rest);
    Some((
        RunId {
            pid: pid.parse().ok()?,
            n: n.parse().ok()?,
        },
        rest,
    ))
}

/// Every run id appearing anywhere in `text` (e.g. a command line), each
/// once, in order of first appearance. A run id must not be glued to a
/// preceding letter or digit.
pub fn run_ids_in(text: &str) -> Vec<RunId> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("jt") {
        let glued = text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        if glued {
            continue;
        }
        if let Some((id, _)) = parse_run_id(&text[i..]) {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

/// FNV-1a over `bytes`: a small stable hash for addresses and MACs.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The third octet of a run's subnet (1..=250).
pub fn subnet_octet(id: RunId) -> u8 {
    (1 + fnv1a(id.to_string().as_bytes()) % 250) as u8
}

/// The address of host `.last` on the run's subnet.
pub fn lan_addr(id: RunId, last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 213, subnet_octet(id), last)
}

/// Last octet of desktop `i` (`.10 + i`).
pub fn desktop_last(i: usize) -> Option<u8> {
    u8::try_from(10 + i).ok().filter(|&o| o < 100)
}

/// Last octet of VM `i` (`.100 + i`, at most `.254`).
pub fn vm_last(i: usize) -> Option<u8> {
    u8::try_from(100 + i).ok().filter(|&o| o < 255)
}

/// A MAC `<first>:<h>:<h>:<h>:<a>:<b>`-style address: `first` then
/// three hash bytes of the run id, then `tail` (big-endian).
fn mac(first: [u8; 2], id: RunId, tail: u16) -> String {
    let h = fnv1a(id.to_string().as_bytes()).to_be_bytes();
    let t = tail.to_be_bytes();
    let b = [first[0], first[1], h[0], h[1], t[0], t[1]];
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// VM `i`'s MAC: QEMU's `52:54:00` prefix, then two run-hash bytes and `i`.
pub fn vm_mac(id: RunId, i: u8) -> String {
    let h = fnv1a(id.to_string().as_bytes()).to_be_bytes();
    format!("52:54:00:{:02x}:{:02x}:{i:02x}", h[0], h[1])
}

/// A host bridge's fixed MAC (locally administered `02:..`), so that
/// enslaving a tap never changes the bridge's address.
pub fn bridge_mac(id: RunId, host_index: u16) -> String {
    mac([0x02, 0x6a], id, host_index)
}

/// Whether `name` is a namespace of ours (`jt<pid>x<n>-...`).
pub fn netns_run_id(name: &str) -> Option<RunId> {
    match parse_run_id(name)? {
        (id, rest) if rest.starts_with('-') => Some(id),
        _ => None,
    }
}

/// The state record of a LAN, one `key=value` per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The owning process id.
    pub owner_pid: u32,
    /// The owner's start time (`/proc/<pid>/stat` field 22), guarding
    /// against pid reuse.
    pub owner_start: u64,
    /// Namespaces of the LAN.
    pub netns: Vec<String>,
}

impl Record {
    /// The text form.
    pub fn render(&self) -> String {
        let mut s = format!(
            "owner_pid={}\nowner_start={}\n",
            self.owner_pid, self.owner_start
        );
        for n in &self.netns {
            s.push_str(&format!("netns={n}\n"));
        }
        s
    }

    /// Parses [`Record::render`]'s output; `None` if a field is missing.
    pub fn parse(text: &str) -> Option<Self> {
        let (mut pid, mut start, mut netns) = (None, None, Vec::new());
        for l in text.lines() {
            match l.split_once('=') {
                Some(("owner_pid", v)) => pid = v.trim().parse().ok(),
                Some(("owner_start", v)) => start = v.trim().parse().ok(),
                Some(("netns", v)) => netns.push(v.trim().to_string()),
                _ => {}
            }
        }
        Some(Self {
            owner_pid: pid?,
            owner_start: start?,
            netns,
        })
    }
}

/// Field 22 (`starttime`) of a `/proc/<pid>/stat` line.
pub fn stat_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces: skip past its ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: RunId = RunId {
        pid: 4194303,
        n: 12,
    };

    #[test]
    fn run_ids_round_trip_and_parse() {
        assert_eq!(ID.to_string(), "jt4194303x12");
        assert_eq!(parse_run_id("jt4194303x12-sw"), Some((ID, "-sw")));
        assert_eq!(parse_run_id("jt12x"), None);
        assert_eq!(parse_run_id("jtx1"), None);
        assert_eq!(parse_run_id("xjt1x2"), None);
        assert_eq!(netns_run_id("jt5x0-d0"), Some(RunId { pid: 5, n: 0 }));
        assert_eq!(netns_run_id("jt5x0"), None);
        assert_eq!(netns_run_id("other"), None);
    }

    #[test]
    fn finds_run_ids_in_command_lines() {
        let cmd =
            "qemu-system-x86_64\0-mem-path\0/dev/shm/jt7x1.mem\0-name\0jt7x1\0x=jt8x2v0 adjt9x9";
        assert_eq!(
            run_ids_in(cmd),
            vec![RunId { pid: 7, n: 1 }, RunId { pid: 8, n: 2 }]
        );
        assert!(run_ids_in("nothing here").is_empty());
    }

    #[test]
    fn addresses() {
        let o = subnet_octet(ID);
        assert!((1..=250).contains(&o));
        assert_eq!(lan_addr(ID, 2), Ipv4Addr::new(10, 213, o, 2));
        assert_eq!(desktop_last(0), Some(10));
        assert_eq!(desktop_last(89), Some(99));
        assert_eq!(desktop_last(90), None);
        assert_eq!(vm_last(0), Some(100));
        assert_eq!(vm_last(154), Some(254));
        assert_eq!(vm_last(155), None);
        // Different runs spread over the octets.
        let octets: std::collections::BTreeSet<u8> = (0..50)
            .map(|n| subnet_octet(RunId { pid: 1000, n }))
            .collect();
        assert!(octets.len() > 30, "{octets:?}");
    }

    #[test]
    fn macs() {
        let m = vm_mac(ID, 3);
        assert!(
            m.starts_with("52:54:00:") && m.ends_with(":03") && m.len() == 17,
            "{m}"
        );
        assert_ne!(vm_mac(ID, 3), vm_mac(ID, 4));
        assert_ne!(vm_mac(ID, 3), vm_mac(RunId { pid: 1, n: 0 }, 3));
        let b = bridge_mac(ID, 258);
        assert!(b.starts_with("02:6a:") && b.ends_with(":01:02"), "{b}");
    }

    #[test]
    fn records() {
        let r = Record {
            owner_pid: 42,
            owner_start: 123456,
            netns: vec!["jt42x0-sw".into(), "jt42x0-srv".into()],
        };
        assert_eq!(Record::parse(&r.render()), Some(r));
        assert_eq!(Record::parse("owner_pid=1\n"), None);
    }

    #[test]
    fn start_time_from_stat() {
        let stat = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(stat_start_time(stat), Some(987654));
        assert_eq!(stat_start_time("garbage"), None);
    }
}
