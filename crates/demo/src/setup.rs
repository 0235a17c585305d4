//! Pieces of a cluster's set-up: certificates, the desktop's power section,
//! ports, and thawing a sleeping agent before it is stopped.

use std::path::Path;
use std::process::Child;

use jettison_testbed::Lan;

/// A sleeping (frozen) agent handles no signal, not even SIGKILL: thaw its
/// freezer group (`jettison-desktop-<pid>`, see the agent's power module)
/// before stopping it.
pub(crate) fn thaw_agent(agent: Option<&Child>) {
    if let Some(c) = agent {
        let state = format!(
            "/sys/fs/cgroup/freezer/jettison-desktop-{}/freezer.state",
            c.id()
        );
        if std::path::Path::new(&state).exists() {
            let _ = std::fs::write(state, "THAWED");
        }
    }
}

/// Port of the emulated keyboard on the desktop host.
pub const USER_PORT: u16 = 9999;

/// The desktop's `[power]` section: emulated backend, its NIC's MAC, magic
/// packets by LAN broadcast, the emulated keyboard, selective resume on or off.
pub(crate) fn power_section(lan: &Lan, away_after_s: Option<u64>, selective: bool) -> String {
    let (net, _) = lan.subnet();
    let o = net.octets();
    let away = away_after_s
        .map(|s| format!("away_after_s = {s}\n"))
        .unwrap_or_default();
    format!(
        "[power]\nbackend = \"emulated\"\nnic_mac = \"{}\"\nwol_listen = \"0.0.0.0:9\"\n\
         wol_broadcast = \"{}.{}.{}.255:9\"\nuser_listen = \"0.0.0.0:{USER_PORT}\"\nverify_on_return = true\nselective_resume = {selective}\n{away}",
        jettison_testbed::names::bridge_mac(lan.run_id(), 0),
        o[0],
        o[1],
        o[2]
    )
}

/// A second desktop of the run's fleet, which the server accepts but which
/// runs no agent: tests speak as it to check that a desktop acts only on
/// its own VMs.
pub const OTHER_DESKTOP: &str = "other-desktop";

/// A second server of the run's fleet, which the desktop accepts but which
/// runs no daemon: tests speak as it to check that a desktop serves a VM's
/// memory only to the server that holds it.
pub const OTHER_SERVER: &str = "other-server";

/// A CA and the certificates of the two hosts, `desktop` and `server`, of
/// [`OTHER_DESKTOP`] and [`OTHER_SERVER`], and of any `extra` desktops.
pub(crate) fn make_certs(dir: &Path, extra: &[String]) -> anyhow::Result<()> {
    jettison_tls::certs::create_ca(dir, "jettison test run", 2)?;
    let hosts = ["desktop", "server", OTHER_DESKTOP, OTHER_SERVER]
        .into_iter()
        .chain(extra.iter().map(String::as_str));
    for host in hosts {
        jettison_tls::certs::issue(dir, host, &[], &[], dir, 2)?;
    }
    Ok(())
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
