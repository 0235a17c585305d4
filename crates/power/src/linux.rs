//! What the Linux backend does on a real desktop that is pure: its
//! settings, the Wake-on-LAN command and the parsing of its output, and the
//! classification of a wake from the kernel's wakeup sources. The logind
//! side is judged in [`crate::logind_policy`] and spoken over D-Bus in
//! [`crate::logind`]; [`crate::linux_backend`] puts them together.
//!
//! * Suspend: check that nothing blocks sleep (block inhibitors, remote
//!   sessions: [`crate::logind_policy::sleep_blockers`]), arm Wake-on-LAN
//!   (`ethtool -s <iface> wol g`, then `ethtool <iface>` to check
//!   `Wake-on: g`; the `ethtool` crate's netlink API has no Wake-on-LAN
//!   request, so the command it is), flush file systems (`sync`), then
//!   either logind's `Manager.Suspend(false)` over D-Bus (which runs the
//!   sleep hooks and honours inhibitors) or writing `mem` to
//!   `/sys/power/state` (needs root; blocks until resume).
//! * Wake reason: `/sys/power/pm_wakeup_irq` (the IRQ that woke the system,
//!   if the kernel knows) and the `/sys/class/wakeup/wakeup*/` sources whose
//!   `event_count` went up across the sleep (NIC: page miss; power button,
//!   input or USB: user return).

use std::path::PathBuf;

use jettison_power_model::timeline::WakeReason;
use serde::{Deserialize, Serialize};

use crate::logind_policy::RemoteSessions;

/// How to enter S3.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuspendMethod {
    /// logind's `Manager.Suspend(false)` over D-Bus.
    #[default]
    Logind,
    /// Write `mem` to `/sys/power/state` directly (no logind hooks, no
    /// `PrepareForSleep`; block inhibitors and remote sessions are still
    /// checked first).
    SysPowerState,
}

/// The Linux backend's settings (`[power.linux]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinuxConfig {
    /// The NIC that must wake the desktop (e.g. `enp0s31f6`).
    pub iface: String,
    /// How to suspend.
    #[serde(default)]
    pub method: SuspendMethod,
    /// The seat whose active session tells the user's presence.
    #[serde(default = "seat0")]
    pub seat: String,
    /// A fixed logind session to watch instead of the seat's active one
    /// (an override for odd set-ups; session ids change at every login).
    #[serde(default)]
    pub session: Option<String>,
    /// What an active remote (ssh) session means for sleep; default: it
    /// blocks.
    #[serde(default)]
    pub remote_sessions: RemoteSessions,
    /// The system bus's address (default: `DBUS_SYSTEM_BUS_ADDRESS`, else
    /// `unix:path=/run/dbus/system_bus_socket`).
    #[serde(default)]
    pub bus_address: Option<String>,
    /// Where the input devices (`event*`) are read while no graphical
    /// session is active.
    #[serde(default = "dev_input")]
    pub input_dir: PathBuf,
    /// Names of the NIC's wakeup sources in `/sys/class/wakeup` (often its
    /// PCI address, e.g. `0000:00:1f.6`); the interface name always counts.
    #[serde(default)]
    pub nic_wakeup_sources: Vec<String>,
}

fn seat0() -> String {
    "seat0".into()
}

fn dev_input() -> PathBuf {
    "/dev/input".into()
}

impl LinuxConfig {
    /// The settings with their defaults for the NIC `iface`.
    pub fn new(iface: impl Into<String>) -> Self {
        Self {
            iface: iface.into(),
            method: SuspendMethod::default(),
            seat: seat0(),
            session: None,
            remote_sessions: RemoteSessions::default(),
            bus_address: None,
            input_dir: dev_input(),
            nic_wakeup_sources: Vec::new(),
        }
    }
}

/// `/sys/power/state`.
pub const SYS_POWER_STATE: &str = "/sys/power/state";
/// `/sys/power/pm_wakeup_irq`.
pub const PM_WAKEUP_IRQ: &str = "/sys/power/pm_wakeup_irq";
/// `/sys/class/wakeup`.
pub const WAKEUP_CLASS: &str = "/sys/class/wakeup";

/// The `ethtool` arguments that arm magic-packet wake on `iface`, then those
/// that print its settings for [`parse_wake_on`] to check.
pub fn wol_commands(iface: &str) -> [Vec<String>; 2] {
    [
        ["-s", iface, "wol", "g"].map(String::from).to_vec(),
        vec![iface.to_owned()],
    ]
}

/// The `Wake-on:` modes `ethtool <iface>` reports (skipping `Supports Wake-on:`).
pub fn parse_wake_on(ethtool_output: &str) -> Option<String> {
    ethtool_output
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("Wake-on:"))
        .map(|v| v.trim().to_owned())
}

/// Parses `/sys/power/pm_wakeup_irq` (absent or unreadable: unknown).
pub fn parse_wakeup_irq(text: &str) -> Option<u32> {
    text.trim().parse().ok()
}

/// One `/sys/class/wakeup/wakeupN` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WakeupSource {
    /// Its `name` (device name, e.g. `PNP0C0C:00`, `0000:00:1f.6`).
    pub name: String,
    /// Its `event_count`.
    pub event_count: u64,
}

impl WakeupSource {
    /// From the `name` and `event_count` files' contents.
    pub fn parse(name: &str, event_count: &str) -> Option<Self> {
        Some(Self {
            name: name.trim().to_owned(),
            event_count: event_count.trim().parse().ok()?,
        })
    }
}

/// Why the desktop woke, from the wakeup sources read before and after the
/// sleep: a NIC source that fired means a magic packet (a page miss), a
/// power button (`PNP0C0C`, `LNXPWRBN`), input or USB device means the user;
/// otherwise the first source that fired, or the wakeup IRQ.
pub fn classify_wake(
    config: &LinuxConfig,
    before: &[WakeupSource],
    after: &[WakeupSource],
    irq: Option<u32>,
) -> WakeReason {
    let fired: Vec<&str> = after
        .iter()
        .filter(|a| {
            before
                .iter()
                .find(|b| b.name == a.name)
                .is_none_or(|b| a.event_count > b.event_count)
        })
        .map(|a| a.name.as_str())
        .collect();
    let is_nic = |n: &str| n == config.iface || config.nic_wakeup_sources.iter().any(|s| s == n);
    let is_user = |n: &str| {
        let l = n.to_ascii_lowercase();
        ["pnp0c0c", "lnxpwrbn", "input", "usb", "kbd", "mouse"]
            .iter()
            .any(|k| l.contains(k))
    };
    if fired.iter().any(|n| is_nic(n)) {
        WakeReason::PageMiss
    } else if fired.iter().any(|n| is_user(n)) {
        WakeReason::UserReturn
    } else if let Some(n) = fired.first() {
        WakeReason::Other(format!("wakeup source {n}"))
    } else {
        WakeReason::Other(irq.map_or_else(|| "unknown".to_owned(), |i| format!("irq {i}")))
    }
}

#[cfg(test)]
#[path = "linux_tests.rs"]
mod tests;
