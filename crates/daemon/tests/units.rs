//! The packaged systemd units are hardened, and the server's keeps its FUSE
//! mount visible to the host. Checked offline with `systemd-analyze` (part
//! of systemd, present on every Debian host; nothing here needs systemd to
//! run as PID 1).

use std::path::Path;
use std::process::Command;

const SERVER: &str = include_str!("../../../packaging/jettison-server.service");
const AGENT: &str = include_str!("../../../packaging/jettison-agent.service");

/// Exposure levels as `systemd-analyze security --threshold` takes them
/// (ten times the printed 0.0-10.0 score). Before hardening both were 96.
/// The server's is 55: the capabilities that start each VM's QEMU as a user
/// of its own (`CAP_SETUID` ...) cost it 0.7, and the namespaces of its
/// jail (`RestrictNamespaces=user mnt ipc uts cgroup`) 0.5.
const SERVER_MAX_EXPOSURE: u32 = 55;
const AGENT_MAX_EXPOSURE: u32 = 30;

/// Settings whose value in `unit` is `key=...` lines (trimmed).
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .collect()
}

/// Writes `unit` as `name` into `dir`, with its `ExecStart=` binary replaced
/// by one that exists, so that `verify` checks the unit and not the install.
fn stage(dir: &Path, name: &str, unit: &str) -> std::path::PathBuf {
    let text: String = unit
        .lines()
        .map(|l| match l.strip_prefix("ExecStart=") {
            Some(cmd) => {
                let args = cmd.split_once(' ').map_or("", |(_, a)| a);
                format!("ExecStart=/bin/true {args}\n")
            }
            None => format!("{l}\n"),
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn systemd_analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze (Debian package systemd) must be installed to check the units")
}

fn check(name: &str, unit: &str, max_exposure: u32) {
    let dir = tempfile::tempdir().unwrap();
    let path = stage(dir.path(), name, unit);
    let path = path.to_str().unwrap();
    // The man pages named in Documentation= are the packages' (checked by
    // the package test, where they are installed), not this host's.
    let verify = systemd_analyze(&["verify", "--man=no", path]);
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && stderr.trim().is_empty(),
        "{name}: systemd-analyze verify: {stderr}"
    );
    let threshold = format!("--threshold={max_exposure}");
    let security = systemd_analyze(&["security", "--offline=true", &threshold, "--no-pager", path]);
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(
        security.status.success(),
        "{name}: exposure above {max_exposure}:\n{report}"
    );
}

#[test]
fn the_server_unit_is_hardened_and_scores_below_its_threshold() {
    assert_eq!(values(SERVER, "NoNewPrivileges"), ["yes"]);
    assert_eq!(
        values(SERVER, "CapabilityBoundingSet"),
        ["CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SETUID CAP_SETGID CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE \
          CAP_KILL"]
    );
    check("jettison-server.service", SERVER, SERVER_MAX_EXPOSURE);
}

/// Any of these gives the service its own mount namespace, in which the lazy
/// memory filesystem would be mounted out of the operators' sight.
#[test]
fn the_server_unit_has_no_private_mount_namespace() {
    for key in [
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateMounts",
        "ReadWritePaths",
        "ReadOnlyPaths",
        "InaccessiblePaths",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectProc",
        "TemporaryFileSystem",
        "BindPaths",
        "MountFlags",
    ] {
        assert!(values(SERVER, key).is_empty(), "{key}= in the server unit");
    }
}

#[test]
fn the_agent_unit_is_hardened_and_scores_below_its_threshold() {
    assert_eq!(values(AGENT, "NoNewPrivileges"), ["yes"]);
    assert_eq!(values(AGENT, "ProtectSystem"), ["strict"]);
    assert_eq!(values(AGENT, "CapabilityBoundingSet"), ["CAP_NET_ADMIN"]);
    // Its state (records, memory copies, disks) stays writable.
    assert_eq!(values(AGENT, "ReadWritePaths"), ["/var/lib/jettison"]);
    check("jettison-agent.service", AGENT, AGENT_MAX_EXPOSURE);
}

/// Both daemons say when they are ready and feed a watchdog (see
/// `jettison_daemon::notify`); only the daemon itself may notify.
#[test]
fn both_units_wait_for_readiness_and_keep_a_watchdog() {
    for unit in [SERVER, AGENT] {
        assert_eq!(values(unit, "Type"), ["notify"]);
        assert_eq!(values(unit, "NotifyAccess"), ["main"]);
        let watchdog: Vec<u64> = values(unit, "WatchdogSec")
            .iter()
            .map(|v| v.parse().expect("WatchdogSec in seconds"))
            .collect();
        assert!(
            matches!(watchdog[..], [s] if (10..=120).contains(&s)),
            "{watchdog:?}"
        );
    }
}
