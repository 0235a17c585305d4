//! Arming Wake-on-LAN (magic packet) on the desktop's NIC before a suspend,
//! with the `ethtool` command (package `ethtool`). The `ethtool` crate's
//! netlink API offers no Wake-on-LAN request, so the command it is; the log
//! says so at each arming. Tested only on its error paths (no such program;
//! a veth, which has no Wake-on-LAN): the test hosts have no NIC that can
//! wake them.

use crate::linux::{parse_wake_on, wol_commands};
use crate::PowerError;

/// Runs `program` with `args`; its standard output, or a clear error.
async fn run(program: &str, args: &[String]) -> Result<String, PowerError> {
    let shown = format!("{program} {}", args.join(" "));
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                PowerError::Invalid(format!(
                    "Wake-on-LAN: the `{program}` command is not installed (Debian package `ethtool`)"
                ))
            } else {
                PowerError::io(format!("running {shown}"))(source)
            }
        })?;
    if !out.status.success() {
        return Err(PowerError::Command {
            command: shown,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Arms magic-packet wake on `iface` with `program` (`ethtool`) and checks
/// that it took (`Wake-on: g`); an interface that cannot wake is an error,
/// since a desktop the server cannot wake must not sleep.
pub async fn arm_wol(program: &str, iface: &str) -> Result<(), PowerError> {
    let [arm, check] = wol_commands(iface);
    run(program, &arm).await.map_err(|e| {
        PowerError::Invalid(format!(
            "Wake-on-LAN cannot be armed on {iface} (does its NIC support it?): {e}"
        ))
    })?;
    let shown = run(program, &check).await?;
    match parse_wake_on(&shown).as_deref() {
        Some("g") => {
            tracing::info!(
                iface,
                "Wake-on-LAN armed (magic packet) with the ethtool command"
            );
            Ok(())
        }
        other => Err(PowerError::Invalid(format!(
            "Wake-on-LAN on {iface} reads {other:?} after `ethtool -s {iface} wol g`, not \"g\""
        ))),
    }
}
