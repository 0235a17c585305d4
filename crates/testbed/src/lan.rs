//! An office LAN of network namespaces: desktops, a server and a peer,
//! joined by a bridge in a "switch" namespace.
//!
//! ```text
//!  <run>-sw:   sw0 (bridge) ── p0 ── p1 ── p2 ...        (veth ends)
//!                               │     │     │
//!  <run>-d0:   lan0 ─ br0 10.213.o.10   <run>-srv: lan0 ─ br0 .2   <run>-peer: lan0 ─ br0 .3
//!                     └─ taps of VMs (Host::add_tap)
//! ```
//!
//! Each host's address sits on a host-local bridge `br0` that also takes
//! the VMs' tap devices, so a VM is on the LAN as itself (own MAC and IP)
//! whichever host it runs on. Interface names are only unique per
//! namespace (`lan0`, `br0`, `p<i>`), so they never clash between LANs.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tracing::{info, warn};

use crate::host::{Host, Role};
use crate::names::{self, Record, RunId};
use crate::sys;
use crate::TestbedError;

/// Directory of the LAN state records (`<run id>` files).
pub const STATE_DIR: &str = "/run/jettison-testbed";

/// The LAN's subnet prefix length.
pub const PREFIX_LEN: u8 = 24;

/// How long processes get between SIGTERM and SIGKILL at teardown.
pub const GRACE: Duration = Duration::from_secs(3);

static SEQ: AtomicU32 = AtomicU32::new(0);

/// What to build.
#[derive(Debug, Clone)]
pub struct LanSpec {
    /// Number of desktops (1..=90).
    pub desktops: usize,
}

impl Default for LanSpec {
    fn default() -> Self {
        Self { desktops: 1 }
    }
}

/// A LAN of test hosts; torn down on drop (also on panic).
#[derive(Debug)]
pub struct Lan {
    id: RunId,
    switch: String,
    hosts: Vec<Host>,
    /// Namespaces actually created, for teardown.
    created: Vec<String>,
    record: PathBuf,
}

impl Lan {
    /// Creates the namespaces, the switch, and every host's `lan0`/`br0`.
    pub fn create(spec: &LanSpec) -> Result<Lan, TestbedError> {
        if spec.desktops == 0 || names::desktop_last(spec.desktops - 1).is_none() {
            return Err(TestbedError::Spec(format!(
                "{} desktops: want 1..=90",
                spec.desktops
            )));
        }
        let pid = std::process::id();
        let id = RunId {
            pid,
            n: SEQ.fetch_add(1, Ordering::SeqCst),
        };
        let host = |name: String, role, last| Host {
            netns: format!("{id}-{name}"),
            ip: names::lan_addr(id, last),
            name,
            role,
        };
        let mut hosts: Vec<Host> = (0..spec.desktops)
            .filter_map(|i| {
                Some(host(
                    format!("d{i}"),
                    Role::Desktop,
                    names::desktop_last(i)?,
                ))
            })
            .collect();
        hosts.push(host("srv".into(), Role::Server, 2));
        hosts.push(host("peer".into(), Role::Peer, 3));
        let switch = format!("{id}-sw");
        let record = PathBuf::from(STATE_DIR).join(id.to_string());
        let rec = Record {
            owner_pid: pid,
            owner_start: sys::start_time(pid).unwrap_or(0),
            netns: std::iter::once(switch.clone())
                .chain(hosts.iter().map(|h| h.netns.clone()))
                .collect(),
        };
        std::fs::create_dir_all(STATE_DIR)
            .and_then(|()| std::fs::write(&record, rec.render()))
            .map_err(|e| TestbedError::State(record.clone(), e))?;
        let mut lan = Lan {
            id,
            switch,
            hosts,
            created: Vec::new(),
            record,
        };
        lan.build()?; // on error, dropping `lan` removes what was made
        info!(run = %id, subnet = %lan.subnet().0, "LAN up");
        Ok(lan)
    }

    fn add_netns(&mut self, ns: &str) -> Result<(), TestbedError> {
        sys::ip(&["netns", "add", ns])?;
        self.created.push(ns.to_string());
        sys::ip(&["-n", ns, "link", "set", "lo", "up"]).map(|_| ())
    }

    fn build(&mut self) -> Result<(), TestbedError> {
        let sw = self.switch.clone();
        self.add_netns(&sw)?;
        let bridge = ["type", "bridge", "forward_delay", "0", "stp_state", "0"];
        sys::ip(&[&["-n", sw.as_str(), "link", "add", "sw0"][..], &bridge].concat())?;
        sys::ip(&["-n", &sw, "link", "set", "sw0", "up"])?;
        for (i, h) in self.hosts.clone().iter().enumerate() {
            let ns = h.netns.as_str();
            self.add_netns(ns)?;
            let port = format!("p{i}");
            let mac = names::bridge_mac(self.id, i as u16);
            sys::ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "lan0", "netns",
                ns,
            ])?;
            sys::ip(&["-n", &sw, "link", "set", &port, "master", "sw0", "up"])?;
            sys::ip(
                &[
                    &["-n", ns, "link", "add", "br0", "address", &mac][..],
                    &bridge,
                ]
                .concat(),
            )?;
            sys::ip(&["-n", ns, "link", "set", "lan0", "master", "br0", "up"])?;
            let addr = format!("{}/{PREFIX_LEN}", h.ip);
            sys::ip(&["-n", ns, "addr", "add", &addr, "dev", "br0"])?;
            sys::ip(&["-n", ns, "link", "set", "br0", "up"])?;
        }
        Ok(())
    }

    /// The run id (prefix of every name of this LAN), e.g. `jt1234x0`.
    pub fn prefix(&self) -> String {
        self.id.to_string()
    }

    /// The run id.
    pub fn run_id(&self) -> RunId {
        self.id
    }

    /// The switch namespace.
    pub fn switch_netns(&self) -> &str {
        &self.switch
    }

    /// All hosts: desktops, then server, then peer.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The desktops.
    pub fn desktops(&self) -> Vec<&Host> {
        self.by_role(Role::Desktop).collect()
    }

    /// Desktop `i` (panics if out of range).
    pub fn desktop(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// The server host.
    pub fn server(&self) -> &Host {
        self.by_role(Role::Server)
            .next()
            .expect("a LAN has a server")
    }

    /// The peer host.
    pub fn peer(&self) -> &Host {
        self.by_role(Role::Peer).next().expect("a LAN has a peer")
    }

    fn by_role(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |h| h.role == role)
    }

    /// The network address and prefix length (`10.213.<o>.0`, 24).
    pub fn subnet(&self) -> (Ipv4Addr, u8) {
        (names::lan_addr(self.id, 0), PREFIX_LEN)
    }

    /// VM `i`'s address (`.100 + i`; panics beyond `.254`).
    pub fn vm_ip(&self, i: usize) -> Ipv4Addr {
        names::lan_addr(self.id, names::vm_last(i).expect("at most 155 VMs per LAN"))
    }

    /// VM `i`'s MAC, `52:54:00:xx:xx:<i>`, unique per LAN and VM.
    pub fn vm_mac(&self, i: usize) -> String {
        names::vm_mac(self.id, u8::try_from(i).expect("at most 155 VMs per LAN"))
    }

    /// A name for VM `i` carrying the run id (`<run id>v<i>`), so cleanup
    /// recognises its memory file and QEMU process.
    pub fn vm_name(&self, i: usize) -> String {
        format!("{}v{i}", self.id)
    }

    /// The state record file.
    pub fn record_path(&self) -> &std::path::Path {
        &self.record
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        let pids = sys::kill_netns_processes(&self.created, GRACE);
        if !pids.is_empty() {
            info!(run = %self.id, ?pids, "stopped processes left in the namespaces");
        }
        for ns in self.created.iter().rev() {
            if let Err(e) = sys::delete_netns(ns) {
                warn!(ns, "cannot delete namespace: {e}");
            }
        }
        let _ = std::fs::remove_file(&self.record);
        info!(run = %self.id, "LAN down");
    }
}
