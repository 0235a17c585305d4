//! What the Linux backend does on a real desktop, as pure data: the commands
//! and files it uses, in order, and the parsing of what it reads back.
//! [`crate::linux_backend`] executes these plans.
//!
//! **Not exercised on the test hosts** (they cannot suspend, have no
//! WoL-capable NIC and no logind session); only the construction and
//! parsing here are unit-tested.
//!
//! * Suspend: arm Wake-on-LAN (`ethtool -s <iface> wol g`, then
//!   `ethtool <iface>` to check `Wake-on: g`), flush file systems (`sync`),
//!   then either `systemctl suspend` (systemd-logind, which runs the sleep
//!   hooks and inhibitors) or writing `mem` to `/sys/power/state` (needs
//!   root; blocks until resume).
//! * Wake reason: `/sys/power/pm_wakeup_irq` (the IRQ that woke the system,
//!   if the kernel knows) and the `/sys/class/wakeup/wakeup*/` sources whose
//!   `event_count` went up across the sleep (NIC: page miss; power button,
//!   input or USB: user return).
//! * User idle: logind's idle hint (`loginctl show-session <id> -p IdleHint
//!   -p IdleSinceHintMonotonic`), which desktop environments set from input
//!   activity. Input-device event times (`/dev/input/event*`) would be the
//!   fallback for sessions without a hint; not implemented.

use std::fmt;
use std::path::PathBuf;

use jettison_power_model::timeline::WakeReason;
use serde::{Deserialize, Serialize};

/// How to enter S3.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuspendMethod {
    /// `systemctl suspend` through systemd-logind.
    #[default]
    Logind,
    /// Write `mem` to `/sys/power/state` directly.
    SysPowerState,
}

/// The Linux backend's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinuxConfig {
    /// The NIC that must wake the desktop (e.g. `enp0s31f6`).
    pub iface: String,
    /// How to suspend.
    #[serde(default)]
    pub method: SuspendMethod,
    /// The logind session whose idle hint tells user idleness.
    #[serde(default)]
    pub session: Option<String>,
    /// Names of the NIC's wakeup sources in `/sys/class/wakeup` (often its
    /// PCI address, e.g. `0000:00:1f.6`); the interface name always counts.
    #[serde(default)]
    pub nic_wakeup_sources: Vec<String>,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Run a program, which must succeed.
    Run {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// Write `contents` to a file.
    Write {
        /// The file.
        path: PathBuf,
        /// What to write.
        contents: String,
    },
}

impl Step {
    fn run(program: &str, args: &[&str]) -> Self {
        Self::Run {
            program: program.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Run { program, args } => write!(f, "{program} {}", args.join(" ")),
            Self::Write { path, contents } => write!(f, "echo {contents} > {}", path.display()),
        }
    }
}

/// `/sys/power/state`.
pub const SYS_POWER_STATE: &str = "/sys/power/state";
/// `/sys/power/pm_wakeup_irq`.
pub const PM_WAKEUP_IRQ: &str = "/sys/power/pm_wakeup_irq";
/// `/sys/class/wakeup`.
pub const WAKEUP_CLASS: &str = "/sys/class/wakeup";

/// Arms magic-packet wake on `iface`, then prints its settings for
/// [`parse_wake_on`] to check.
pub fn arm_wol_plan(iface: &str) -> Vec<Step> {
    vec![
        Step::run("ethtool", &["-s", iface, "wol", "g"]),
        Step::run("ethtool", &[iface]),
    ]
}

/// The suspend plan: arm WoL and check it, flush, suspend.
pub fn suspend_plan(config: &LinuxConfig) -> Vec<Step> {
    let mut plan = arm_wol_plan(&config.iface);
    plan.push(Step::run("sync", &[]));
    plan.push(match config.method {
        SuspendMethod::Logind => Step::run("systemctl", &["suspend"]),
        SuspendMethod::SysPowerState => Step::Write {
            path: SYS_POWER_STATE.into(),
            contents: "mem".into(),
        },
    });
    plan
}

/// The command that reads the session's idle hint.
pub fn idle_hint_command(session: &str) -> Step {
    Step::run(
        "loginctl",
        &[
            "show-session",
            session,
            "-p",
            "IdleHint",
            "-p",
            "IdleSinceHintMonotonic",
        ],
    )
}

/// The `Wake-on:` modes `ethtool <iface>` reports (skipping `Supports Wake-on:`).
pub fn parse_wake_on(ethtool_output: &str) -> Option<String> {
    ethtool_output
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("Wake-on:"))
        .map(|v| v.trim().to_owned())
}

/// logind's idle hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleHint {
    /// Whether the session is idle.
    pub idle: bool,
    /// Since when, in CLOCK_MONOTONIC microseconds (0 or absent: unknown).
    pub since_monotonic_us: Option<u64>,
}

/// Parses `loginctl show-session -p IdleHint -p IdleSinceHintMonotonic`.
pub fn parse_idle_hint(output: &str) -> Option<IdleHint> {
    let value = |key: &str| {
        output
            .lines()
            .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
    };
    let idle = match value("IdleHint")? {
        "yes" => true,
        "no" => false,
        _ => return None,
    };
    let since_monotonic_us = value("IdleSinceHintMonotonic")
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0);
    Some(IdleHint {
        idle,
        since_monotonic_us,
    })
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
