//! What the Linux backend decides from what logind says, as pure code: which
//! session tells the user's presence, whether the user came back, and
//! whether the desktop may sleep given the sessions and inhibitors logind
//! lists. [`crate::logind`] asks logind; this module only judges.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One logind session, as its `org.freedesktop.login1.Session` properties
/// describe it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionInfo {
    /// `Id`.
    pub id: String,
    /// `Name`: the user's name.
    pub user: String,
    /// `Class`: `user`, `greeter`, `lock-screen`, `background`, `manager` ...
    pub class: String,
    /// `Type`: `x11`, `wayland`, `mir`, `tty`, `unspecified`.
    pub kind: String,
    /// `Remote`: logged in over the network (ssh, a remote desktop).
    pub remote: bool,
    /// `RemoteHost`: where from, when known.
    pub remote_host: String,
    /// `State`: `online`, `active` or `closing`.
    pub state: String,
    /// `IdleHint`.
    pub idle: bool,
    /// `IdleSinceHintMonotonic`, CLOCK_MONOTONIC µs (0: never set).
    pub idle_since_monotonic_us: u64,
}

impl SessionInfo {
    /// A graphical session of a user (not a greeter or lock screen).
    pub fn is_graphical_user(&self) -> bool {
        self.class == "user" && matches!(self.kind.as_str(), "x11" | "wayland" | "mir")
    }

    /// A user's session from another machine: `Remote`, or a terminal
    /// session with a remote host (ssh sets both; some PAM stacks only the
    /// host).
    pub fn is_remote(&self) -> bool {
        self.class == "user"
            && (self.remote || (self.kind == "tty" && !self.remote_host.is_empty()))
    }

    /// Idle for at least `secs` at CLOCK_MONOTONIC `now_us`.
    pub fn idle_for(&self, secs: u64, now_us: u64) -> bool {
        self.idle && now_us.saturating_sub(self.idle_since_monotonic_us) >= secs * 1_000_000
    }
}

/// One inhibitor lock, as `Manager.ListInhibitors` returns it
/// (`a(ssssuu)`: what, who, why, mode, uid, pid).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inhibitor {
    /// Colon-separated: `sleep`, `shutdown`, `idle`, `handle-lid-switch` ...
    pub what: String,
    /// The program that took it.
    pub who: String,
    /// Its reason.
    pub why: String,
    /// `block` or `delay`.
    pub mode: String,
    /// Its user.
    pub uid: u32,
    /// Its process.
    pub pid: u32,
}

impl Inhibitor {
    /// From a `ListInhibitors` entry.
    pub fn from_tuple(t: (String, String, String, String, u32, u32)) -> Self {
        let (what, who, why, mode, uid, pid) = t;
        Self {
            what,
            who,
            why,
            mode,
            uid,
            pid,
        }
    }

    /// Whether it blocks sleep (mode `block`, `sleep` among its whats).
    pub fn blocks_sleep(&self) -> bool {
        self.mode == "block" && inhibits_sleep(&self.what)
    }
}

/// Whether a colon-separated list of inhibited operations (an inhibitor's
/// `what`, the Manager's `BlockInhibited`) names `sleep`.
pub fn inhibits_sleep(what: &str) -> bool {
    what.split(':').any(|w| w == "sleep")
}

/// What an active remote (ssh, remote desktop) session means for sleep.
/// Default: it blocks sleep, so that a desktop does not suspend under an
/// administrator's ssh command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemoteSessions {
    /// Any remote session of a user blocks sleep.
    #[default]
    Block,
    /// Remote sessions do not matter.
    Ignore,
    /// A remote session blocks sleep until logind says it has been idle
    /// (`IdleHint`, from its terminal's last input) for this long.
    #[serde(rename = "idle_after_s")]
    IdleAfterS(u64),
}

/// Why the desktop may not sleep now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    /// Another program holds a block inhibitor on sleep.
    Inhibitor(Inhibitor),
    /// A remote session is active and the policy says it blocks.
    RemoteSession(SessionInfo),
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inhibitor(i) => write!(
                f,
                "{} (pid {}, uid {}) holds a block inhibitor on {}: {}",
                i.who, i.pid, i.uid, i.what, i.why
            ),
            Self::RemoteSession(s) => {
                let from = if s.remote_host.is_empty() {
                    String::new()
                } else {
                    format!(" from {}", s.remote_host)
                };
                write!(
                    f,
                    "remote session {} of {}{from} is {} (remote_sessions policy)",
                    s.id,
                    s.user,
                    if s.idle { "idle too briefly" } else { "active" }
                )
            }
        }
    }
}

/// Everything that keeps the desktop awake now, block inhibitors first; an
/// empty list means it may sleep. Delay inhibitors never block (logind
/// waits for them, at most `InhibitDelayMaxSec`). `now_us` is
/// CLOCK_MONOTONIC, for the remote sessions' idle time.
pub fn sleep_blockers(
    inhibitors: &[Inhibitor],
    sessions: &[SessionInfo],
    remote: RemoteSessions,
    now_us: u64,
) -> Vec<Blocker> {
    let mut out: Vec<Blocker> = inhibitors
        .iter()
        .filter(|i| i.blocks_sleep())
        .cloned()
        .map(Blocker::Inhibitor)
        .collect();
    let blocks = |s: &SessionInfo| match remote {
        RemoteSessions::Block => true,
        RemoteSessions::Ignore => false,
        RemoteSessions::IdleAfterS(secs) => !s.idle_for(secs, now_us),
    };
    out.extend(
        sessions
            .iter()
            .filter(|s| s.is_remote() && s.state != "closing" && blocks(s))
            .cloned()
            .map(Blocker::RemoteSession),
    );
    out
}

/// What the user is doing, as the backend last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Nothing tells: no session, no input device.
    Unknown,
    /// At the desk (the session is not idle, or input arrived).
    Active,
    /// Away since this CLOCK_MONOTONIC time (µs; 0: unknown).
    IdleSince(u64),
}

impl Presence {
    /// From a session's idle hint.
    pub fn from_hint(idle: bool, since_monotonic_us: u64) -> Self {
        if idle {
            Self::IdleSince(since_monotonic_us)
        } else {
            Self::Active
        }
    }

    /// Whether going from `self` to `next` is the user's return (idle, or
    /// unknown, then active).
    pub fn is_return(self, next: Self) -> bool {
        next == Self::Active && self != Self::Active
    }
}

/// Which session tells the user's presence: the seat's active session if
/// it is a user's graphical one; a greeter, lock screen or text console
/// does not count (`None`: fall back to input devices).
pub fn presence_session(active: Option<&SessionInfo>) -> Option<&SessionInfo> {
    active.filter(|s| s.is_graphical_user())
}

#[cfg(test)]
#[path = "logind_policy_tests.rs"]
mod tests;
