//! The matrix: each case is a handover, a fault, the step or message it
//! strikes at, and the outcome the handover's rules promise.

use serde::Serialize;

/// The handover a case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Desktop -> server.
    Migrate,
    /// Server -> desktop (after a clean migration).
    Reintegrate,
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// SIGKILL of the desktop agent, restarted after.
    KillAgent,
    /// SIGKILL of the server daemon, restarted after.
    KillServer,
    /// SIGKILL of the QEMU the VM leaves.
    KillSourceQemu,
    /// SIGKILL of the QEMU the VM goes to.
    KillDestQemu,
    /// The server's LAN link down for a while, then up.
    LinkDown,
    /// A message not sent, its connection closed.
    DropReply,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 6] = [
        Fault::KillAgent,
        Fault::KillServer,
        Fault::KillSourceQemu,
        Fault::KillDestQemu,
        Fault::LinkDown,
        Fault::DropReply,
    ];
}

/// Where the VM must run once the daemons have settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// At home.
    Desktop,
    /// On the consolidation server.
    Server,
}

/// One case of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Case {
    /// Its name.
    pub name: &'static str,
    /// The handover.
    pub op: Op,
    /// The fault.
    pub fault: Fault,
    /// A persisted step (`agent:<state>`, `server:<state>`) for the faults
    /// that strike at one, or a message kind for [`Fault::DropReply`].
    pub step: &'static str,
    /// Where the VM runs afterwards.
    pub runs_at: Side,
    /// Whether the VM must have been restarted from its last consistent
    /// state (`None`: either is correct; a guest left running by a killed
    /// agent, for one, is resumed if its QEMU outlived the agent).
    pub rolled_back: Option<bool>,
}

const fn case(
    name: &'static str,
    op: Op,
    fault: Fault,
    step: &'static str,
    runs_at: Side,
    rolled_back: Option<bool>,
) -> Case {
    Case {
        name,
        op,
        fault,
        step,
        runs_at,
        rolled_back,
    }
}

use Fault::*;
use Op::*;
use Side::*;

/// The whole matrix run on real test hosts.
pub const ALL: &[Case] = &[
    // Before the commit the desktop keeps the VM; after it, the server.
    case(
        "kill-agent-at-transferring",
        Migrate,
        KillAgent,
        "agent:Transferring",
        Desktop,
        None,
    ),
    case(
        "kill-agent-at-away",
        Migrate,
        KillAgent,
        "agent:Away",
        Server,
        Some(false),
    ),
    case(
        "kill-agent-at-ready",
        Reintegrate,
        KillAgent,
        "agent:Ready",
        Server,
        Some(false),
    ),
    case(
        "kill-server-at-loaded",
        Migrate,
        KillServer,
        "server:Loaded",
        Desktop,
        Some(false),
    ),
    // The server dies with the only running copy: a guest crash, rolled
    // back to the snapshot of the way out (it had not run there yet).
    case(
        "kill-server-at-running",
        Migrate,
        KillServer,
        "server:Running",
        Desktop,
        Some(true),
    ),
    case(
        "kill-server-at-released",
        Reintegrate,
        KillServer,
        "server:Released",
        Desktop,
        Some(false),
    ),
    case(
        "kill-source-qemu-at-transferring",
        Migrate,
        KillSourceQemu,
        "agent:Transferring",
        Server,
        Some(false),
    ),
    case(
        "kill-dest-qemu-at-loaded",
        Migrate,
        KillDestQemu,
        "server:Loaded",
        Desktop,
        Some(true),
    ),
    case(
        "kill-source-qemu-at-sending",
        Reintegrate,
        KillSourceQemu,
        "server:Sending",
        Desktop,
        Some(false),
    ),
    case(
        "kill-dest-qemu-at-ready",
        Reintegrate,
        KillDestQemu,
        "agent:Ready",
        Desktop,
        Some(true),
    ),
    case(
        "link-down-at-transferring",
        Migrate,
        LinkDown,
        "agent:Transferring",
        Server,
        Some(false),
    ),
    case(
        "link-down-at-sending",
        Reintegrate,
        LinkDown,
        "server:Sending",
        Desktop,
        Some(false),
    ),
    case(
        "drop-migrate-loaded",
        Migrate,
        DropReply,
        "MigrateLoaded",
        Desktop,
        Some(false),
    ),
    case(
        "drop-migrate-commit",
        Migrate,
        DropReply,
        "MigrateCommit",
        Server,
        Some(false),
    ),
    case(
        "drop-migrate-committed",
        Migrate,
        DropReply,
        "MigrateCommitted",
        Server,
        Some(false),
    ),
    case(
        "drop-reintegrate-ready",
        Reintegrate,
        DropReply,
        "ReintegrateReady",
        Server,
        Some(false),
    ),
    case(
        "drop-reintegrate-committed",
        Reintegrate,
        DropReply,
        "ReintegrateCommitted",
        Desktop,
        Some(false),
    ),
];

/// The quick subset (CI): every fault once.
pub const QUICK: &[&str] = &[
    "kill-agent-at-away",
    "kill-server-at-loaded",
    "kill-source-qemu-at-transferring",
    "kill-dest-qemu-at-loaded",
    "link-down-at-transferring",
    "drop-reintegrate-committed",
];

/// The cases to run: the quick subset, or all.
pub fn select(quick: bool) -> Vec<Case> {
    ALL.iter()
        .filter(|c| !quick || QUICK.contains(&c.name))
        .copied()
        .collect()
}

/// Which daemon a case's fault is armed in (`true`: the agent).
pub fn armed_in_agent(c: &Case) -> bool {
    match c.fault {
        // The sender of the message drops it.
        DropReply => matches!(c.step, "MigrateCommit" | "ReintegrateReady"),
        _ => c.step.starts_with("agent:"),
    }
}

/// The value of `JETTISON_FAULT` for a case: a pause at its step (the
/// harness strikes during it), or a dropped message.
pub fn fault_spec(c: &Case, pause_ms: u64) -> String {
    match c.fault {
        DropReply => format!("drop@{}", c.step),
        _ => format!("pause@{}:{pause_ms}", c.step),
    }
}

/// Whether the QEMU struck by a QEMU fault is the desktop's.
pub fn qemu_on_desktop(c: &Case) -> Option<bool> {
    match (c.fault, c.op) {
        (KillSourceQemu, Migrate) | (KillDestQemu, Reintegrate) => Some(true),
        (KillSourceQemu, Reintegrate) | (KillDestQemu, Migrate) => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_quick_names_exist() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(ALL[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
        }
        for q in QUICK {
            assert!(ALL.iter().any(|c| c.name == *q), "{q}");
        }
    }

    #[test]
    fn quick_and_all_cover_every_fault_and_all_has_a_dozen() {
        for f in Fault::ALL {
            assert!(select(true).iter().any(|c| c.fault == f), "{f:?}");
        }
        assert!(ALL.len() >= 12);
    }

    #[test]
    fn steps_name_persisted_states_or_messages() {
        let states = [
            "agent:Transferring",
            "agent:Away",
            "agent:Ready",
            "server:Loaded",
            "server:Running",
            "server:Sending",
            "server:Released",
        ];
        for c in ALL {
            match c.fault {
                DropReply => assert!(c.step.chars().next().unwrap().is_uppercase(), "{c:?}"),
                _ => assert!(states.contains(&c.step), "{c:?}"),
            }
        }
    }

    #[test]
    fn faults_are_armed_in_the_right_daemon() {
        let by = |name| ALL.iter().find(|c| c.name == name).unwrap();
        assert!(armed_in_agent(by("kill-agent-at-away")));
        assert!(!armed_in_agent(by("kill-server-at-loaded")));
        assert!(armed_in_agent(by("drop-migrate-commit")));
        assert!(!armed_in_agent(by("drop-migrate-loaded")));
        assert_eq!(
            fault_spec(by("drop-migrate-loaded"), 1),
            "drop@MigrateLoaded"
        );
        assert_eq!(
            fault_spec(by("kill-agent-at-away"), 3000),
            "pause@agent:Away:3000"
        );
        assert_eq!(qemu_on_desktop(by("kill-dest-qemu-at-loaded")), Some(false));
        assert_eq!(qemu_on_desktop(by("kill-dest-qemu-at-ready")), Some(true));
    }
}
