//! Typed QMP commands (QEMU 7.2 schema, only what Jettison uses).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A QMP command: its serialized form is the `arguments` object.
pub trait Command: Serialize {
    /// The QMP command name.
    const NAME: &'static str;
    /// The type of the `return` payload.
    type Response: DeserializeOwned;
}

/// The `{}` reply of commands that return nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

macro_rules! unit_command {
    ($(#[$doc:meta])* $ty:ident, $name:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
        pub struct $ty {}
        impl Command for $ty {
            const NAME: &'static str = $name;
            type Response = Empty;
        }
    };
}

unit_command!(
    /// Leave capabilities negotiation mode (must be the first command).
    QmpCapabilities,
    "qmp_capabilities"
);
unit_command!(
    /// Pause the guest.
    Stop,
    "stop"
);
unit_command!(
    /// Resume the guest.
    Cont,
    "cont"
);
unit_command!(
    /// Terminate QEMU.
    Quit,
    "quit"
);
unit_command!(
    /// Press the ACPI power button: asks the guest to shut down (it may
    /// ignore it).
    SystemPowerdown,
    "system_powerdown"
);

/// `query-status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueryStatus {}
impl Command for QueryStatus {
    const NAME: &'static str = "query-status";
    type Response = StatusInfo;
}

/// VM run state (QEMU's `RunState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum RunState {
    Debug,
    Inmigrate,
    InternalError,
    IoError,
    Paused,
    Postmigrate,
    Prelaunch,
    FinishMigrate,
    RestoreVm,
    Running,
    SaveVm,
    Shutdown,
    Suspended,
    Watchdog,
    GuestPanicked,
    Colo,
    /// A state this crate does not know.
    #[serde(other)]
    Unknown,
}

/// Reply of `query-status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// The run state.
    pub status: RunState,
    /// Whether vCPUs run.
    pub running: bool,
}

/// One migration capability and its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationCapabilityStatus {
    /// Capability name, e.g. `x-ignore-shared`, `events`.
    pub capability: String,
    /// On or off.
    pub state: bool,
}

/// `migrate-set-capabilities`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MigrateSetCapabilities {
    /// Capabilities to set.
    pub capabilities: Vec<MigrationCapabilityStatus>,
}
impl Command for MigrateSetCapabilities {
    const NAME: &'static str = "migrate-set-capabilities";
    type Response = Empty;
}

impl MigrateSetCapabilities {
    /// Turns every named capability on.
    pub fn enable(names: &[&str]) -> Self {
        MigrateSetCapabilities {
            capabilities: names
                .iter()
                .map(|n| MigrationCapabilityStatus {
                    capability: (*n).to_string(),
                    state: true,
                })
                .collect(),
        }
    }
}

/// `migrate` (outgoing; returns at once, progress via `query-migrate`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Migrate {
    /// Destination, e.g. `unix:/path/to/socket`.
    pub uri: String,
}
impl Command for Migrate {
    const NAME: &'static str = "migrate";
    type Response = Empty;
}

/// `migrate-incoming` (only with `-incoming defer`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MigrateIncoming {
    /// Where to listen, e.g. `unix:/path/to/socket`.
    pub uri: String,
}
impl Command for MigrateIncoming {
    const NAME: &'static str = "migrate-incoming";
    type Response = Empty;
}

/// `query-migrate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueryMigrate {}
impl Command for QueryMigrate {
    const NAME: &'static str = "query-migrate";
    type Response = MigrationInfo;
}

/// Migration status (QEMU's `MigrationStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum MigrationStatus {
    None,
    Setup,
    Cancelling,
    Cancelled,
    Active,
    PostcopyActive,
    PostcopyPaused,
    PostcopyRecover,
    Completed,
    Failed,
    Colo,
    PreSwitchover,
    Device,
    WaitUnplug,
    /// A status this crate does not know.
    #[serde(other)]
    Unknown,
}

/// Reply of `query-migrate` (the fields Jettison looks at).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MigrationInfo {
    /// Absent before any migration.
    pub status: Option<MigrationStatus>,
    /// Total time in ms (once completed).
    pub total_time: Option<u64>,
    /// Downtime in ms (once completed).
    pub downtime: Option<u64>,
    /// RAM statistics, as QEMU gives them.
    pub ram: Option<serde_json::Value>,
    /// Why it failed.
    pub error_desc: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_arguments() {
        let c = MigrateSetCapabilities::enable(&["x-ignore-shared", "events"]);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"capabilities":[{"capability":"x-ignore-shared","state":true},{"capability":"events","state":true}]})
        );
        assert_eq!(serde_json::to_value(Stop {}).unwrap(), json!({}));
        assert_eq!(
            serde_json::to_value(Migrate {
                uri: "unix:/a".into()
            })
            .unwrap(),
            json!({"uri":"unix:/a"})
        );
    }

    #[test]
    fn parses_replies() {
        let s: StatusInfo = serde_json::from_value(
            json!({"status":"finish-migrate","singlestep":false,"running":false}),
        )
        .unwrap();
        assert_eq!(s.status, RunState::FinishMigrate);
        let s: StatusInfo =
            serde_json::from_value(json!({"status":"brand-new","running":false})).unwrap();
        assert_eq!(s.status, RunState::Unknown);
        let m: MigrationInfo = serde_json::from_value(json!({})).unwrap();
        assert_eq!(m.status, None);
        let m: MigrationInfo = serde_json::from_value(
            json!({"status":"failed","error-desc":"boom","total-time":3,"blocked":false}),
        )
        .unwrap();
        assert_eq!(m.status, Some(MigrationStatus::Failed));
        assert_eq!(m.error_desc.as_deref(), Some("boom"));
        assert_eq!(m.total_time, Some(3));
        let _: Empty = serde_json::from_value(json!({})).unwrap();
    }
}
