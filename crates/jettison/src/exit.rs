//! The operator command's exit codes, one per class of failure, and the
//! error object it prints in JSON mode. Pure: the classes come from the
//! error's causes ([`classify`]), so they are unit-tested without daemons.

use jettison_daemon::ControlError;
use jettison_wire::{ErrorCode, WireError};

/// A class of failure of the `jettison` command, with its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Anything else: a local file, the simulator, certificates, a bug.
    Error,
    /// The command line is wrong (clap's own code).
    Usage,
    /// The daemon's control socket cannot be reached, or the daemon did
    /// not answer (closed the connection, no reply in time).
    Unreachable,
    /// The daemon refused: the VM is not where the request needs it
    /// (busy, away, at home, mid-handover), or the request is out of range.
    Refused,
    /// No such VM on that daemon.
    NotFound,
    /// The daemon does not allow this request (or this VM) from here.
    NotAllowed,
    /// The daemon accepted the request and failed carrying it out.
    Failed,
    /// The daemon and this command do not understand each other (protocol
    /// versions, an unexpected or malformed reply).
    Protocol,
}

impl Failure {
    /// Every class, in exit-code order.
    pub const ALL: [Failure; 8] = [
        Failure::Error,
        Failure::Usage,
        Failure::Unreachable,
        Failure::Refused,
        Failure::NotFound,
        Failure::NotAllowed,
        Failure::Failed,
        Failure::Protocol,
    ];

    /// The process's exit code.
    pub fn code(self) -> u8 {
        match self {
            Failure::Error => 1,
            Failure::Usage => 2,
            Failure::Unreachable => 3,
            Failure::Refused => 4,
            Failure::NotFound => 5,
            Failure::NotAllowed => 6,
            Failure::Failed => 7,
            Failure::Protocol => 8,
        }
    }

    /// Its name in JSON errors (`kind`).
    pub fn kind(self) -> &'static str {
        match self {
            Failure::Error => "error",
            Failure::Usage => "usage",
            Failure::Unreachable => "unreachable",
            Failure::Refused => "refused",
            Failure::NotFound => "not-found",
            Failure::NotAllowed => "not-allowed",
            Failure::Failed => "failed",
            Failure::Protocol => "protocol",
        }
    }

    /// The class of a daemon's error reply.
    pub fn of_code(code: ErrorCode) -> Failure {
        match code {
            ErrorCode::UnknownVm => Failure::NotFound,
            ErrorCode::NotAllowed => Failure::NotAllowed,
            ErrorCode::WrongState | ErrorCode::OutOfRange => Failure::Refused,
            ErrorCode::Failed => Failure::Failed,
            ErrorCode::BadRequest | ErrorCode::VersionMismatch => Failure::Protocol,
        }
    }

    /// The class of a failed exchange with a daemon.
    pub fn of_wire(e: &WireError) -> Failure {
        match e {
            WireError::Remote(reply) => Failure::of_code(reply.code),
            WireError::Io(_) | WireError::Closed | WireError::Timeout(_) => Failure::Unreachable,
            WireError::Malformed(_)
            | WireError::Encode(_)
            | WireError::Unexpected { .. }
            | WireError::Version { .. }
            | WireError::Refused(_) => Failure::Protocol,
        }
    }
}

/// A failure the command reports, already classified.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Classified {
    /// Its class.
    pub failure: Failure,
    /// What to tell the operator.
    pub message: String,
}

impl Classified {
    /// A failure of this class.
    pub fn new(failure: Failure, message: impl Into<String>) -> Self {
        Classified {
            failure,
            message: message.into(),
        }
    }
}

/// The class of an error: the first cause in its chain that says.
pub fn classify(err: &anyhow::Error) -> Failure {
    for cause in err.chain() {
        if let Some(c) = cause.downcast_ref::<Classified>() {
            return c.failure;
        }
        if let Some(c) = cause.downcast_ref::<ControlError>() {
            return match c {
                ControlError::Connect { .. } => Failure::Unreachable,
                ControlError::Wire(w) => Failure::of_wire(w),
            };
        }
        if let Some(w) = cause.downcast_ref::<WireError>() {
            return Failure::of_wire(w);
        }
    }
    Failure::Error
}

/// The JSON error object: `{"error": {"code", "kind", "message"}}`.
pub fn json(failure: Failure, message: &str) -> String {
    serde_json::json!({
        "error": { "code": failure.code(), "kind": failure.kind(), "message": message }
    })
    .to_string()
}

/// The exit codes, for `jettison --help` (and the runbook, which a test
/// holds to the same table).
pub const HELP: &str = "\
Exit codes:
  0  success
  1  error: anything else (a local file, the simulator, certificates)
  2  usage: the command line is wrong
  3  unreachable: no daemon at the control socket, or no answer from it
  4  refused: the VM is not where the request needs it (busy, away, home)
  5  not-found: no such VM on that daemon
  6  not-allowed: the daemon does not allow this request or VM from here
  7  failed: the daemon accepted the request and failed carrying it out
  8  protocol: the daemon and this command do not understand each other
With --format json an error is one object on stdout:
  {\"error\": {\"code\": 5, \"kind\": \"not-found\", \"message\": \"...\"}}";

#[cfg(test)]
mod tests {
    use super::*;
    use jettison_wire::ErrorReply;

    fn remote(code: ErrorCode) -> anyhow::Error {
        let e = ControlError::Wire(WireError::Remote(ErrorReply {
            code,
            message: "no".into(),
        }));
        anyhow::Error::new(e).context("OpMigrate via /run/x.sock")
    }

    #[test]
    fn codes_are_distinct_and_listed_in_the_help() {
        let mut codes: Vec<u8> = Failure::ALL.iter().map(|f| f.code()).collect();
        codes.dedup();
        assert_eq!(codes, (1..=8).collect::<Vec<u8>>());
        for f in Failure::ALL {
            let line = format!("  {}  {}: ", f.code(), f.kind());
            assert!(HELP.contains(&line), "{line:?} in the help");
        }
    }

    #[test]
    fn the_runbook_lists_the_same_codes() {
        let runbook = include_str!("../../../docs/runbook.md");
        for f in Failure::ALL {
            let row = format!("| {} | `{}` |", f.code(), f.kind());
            assert!(runbook.contains(&row), "{row:?} in docs/runbook.md");
        }
    }

    #[test]
    fn daemon_replies_map_to_their_class() {
        for (code, want) in [
            (ErrorCode::UnknownVm, Failure::NotFound),
            (ErrorCode::NotAllowed, Failure::NotAllowed),
            (ErrorCode::WrongState, Failure::Refused),
            (ErrorCode::OutOfRange, Failure::Refused),
            (ErrorCode::Failed, Failure::Failed),
            (ErrorCode::BadRequest, Failure::Protocol),
            (ErrorCode::VersionMismatch, Failure::Protocol),
        ] {
            assert_eq!(classify(&remote(code)), want, "{code:?}");
        }
    }

    #[test]
    fn transport_failures_are_unreachable_or_protocol() {
        let connect = ControlError::Connect {
            path: "/run/x.sock".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(classify(&connect.into()), Failure::Unreachable);
        for (w, want) in [
            (WireError::Closed, Failure::Unreachable),
            (
                WireError::Timeout(std::time::Duration::from_secs(1)),
                Failure::Unreachable,
            ),
            (WireError::Malformed("x".into()), Failure::Protocol),
            (WireError::Version { ours: 1, theirs: 2 }, Failure::Protocol),
        ] {
            let e = anyhow::Error::new(ControlError::Wire(w)).context("asking");
            assert_eq!(classify(&e), want);
        }
    }

    #[test]
    fn other_errors_are_plain_errors_and_classified_ones_keep_their_class() {
        assert_eq!(classify(&anyhow::anyhow!("disk full")), Failure::Error);
        let e = anyhow::Error::new(Classified::new(Failure::Protocol, "unexpected reply"))
            .context("status");
        assert_eq!(classify(&e), Failure::Protocol);
    }

    #[test]
    fn json_errors_carry_code_kind_and_message() {
        let v: serde_json::Value =
            serde_json::from_str(&json(Failure::NotFound, "no VM \"x\"")).unwrap();
        assert_eq!(v["error"]["code"], 5);
        assert_eq!(v["error"]["kind"], "not-found");
        assert_eq!(v["error"]["message"], "no VM \"x\"");
    }
}
