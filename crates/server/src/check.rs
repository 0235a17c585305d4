//! What the server checks of its configuration before it acts on
//! anything: run at start-up by [`crate::Server::new`] and alone by
//! `jettison-server --check-config`, so the two cannot disagree. Every
//! problem is collected (not only the first), each naming the setting or
//! file at fault.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::sync::Arc;

use jettison_daemon::paths::{dir_can_be, existing_dir, find_program};
use jettison_tls::TlsContext;

use crate::config::ServerConfig;

/// What the checks loaded, for the start-up to use.
#[derive(Debug)]
pub struct Checked {
    /// The TLS context (certificate, key, CA, CRL).
    pub tls: Arc<TlsContext>,
}

/// The problems of a configuration (shared with the other daemon).
pub use jettison_daemon::paths::Problems;

/// The device the lazy memory filesystem is mounted through.
const FUSE: &str = "/dev/fuse";
/// The device confined QEMUs open to attach to their taps.
const TUN: &str = "/dev/net/tun";

/// Checks `config` without acting: the TLS material (certificate, key,
/// CA, CRL) loads, the QEMU binary is there, each of `image_dirs` is a
/// directory, the state, replica, run and mount directories exist or can
/// be made, `/dev/fuse` is there, and with `confine_qemu` bubblewrap runs
/// and (with a `bridge`) the tun device is usable by everyone.
pub fn check(config: &ServerConfig) -> Result<Checked, Problems> {
    let mut problems = Vec::new();
    let tls = TlsContext::load(&config.tls)
        .map_err(|e| {
            problems.push(format!(
                "tls: {e} (host certificates: `jettison certs issue`)"
            ))
        })
        .ok();
    if let Err(e) = find_program(&config.qemu_binary) {
        problems.push(format!("qemu_binary: {e}"));
    }
    for dir in &config.image_dirs {
        if let Err(e) = existing_dir(dir) {
            problems.push(format!("image_dirs: {e} (boot files are found there)"));
        }
    }
    for (what, dir) in [
        ("state_dir", &config.state_dir),
        ("replica_dir", &config.replica_dir),
        ("run_dir", &config.run_dir),
        ("mount_dir", &config.mount_dir),
    ] {
        if what == "mount_dir" && stale_mount(dir) {
            // a killed predecessor's FUSE mount: start-up clears it
            continue;
        }
        if let Err(e) = dir_can_be(dir) {
            problems.push(format!("{what}: {e}"));
        }
    }
    problems.extend(crate::pull::problems(&config.pull));
    match std::fs::metadata(FUSE) {
        Ok(m) if m.file_type().is_char_device() => {}
        _ => problems.push(format!(
            "{FUSE} is missing: the lazy memory filesystem needs FUSE (`modprobe fuse`)"
        )),
    }
    if config.confine_qemu {
        if let Err(e) = bwrap_runs() {
            problems.push(e);
        }
        if config.bridge.is_some() {
            if let Err(e) = tun_for_everyone() {
                problems.push(e);
            }
        }
    }
    match tls {
        Some(tls) if problems.is_empty() => Ok(Checked { tls }),
        _ => Err(Problems { problems }),
    }
}

/// Confined QEMUs open the tun device as their own users to attach to
/// their taps: it must be usable by everyone (Debian's udev makes it 0666).
/// Whether `dir` is a FUSE mount whose daemon is gone (`ENOTCONN`), as a
/// crashed server leaves its `mount_dir`; the next start unmounts it.
fn stale_mount(dir: &std::path::Path) -> bool {
    std::fs::metadata(dir)
        .is_err_and(|e| e.raw_os_error() == Some(nix::errno::Errno::ENOTCONN as i32))
}

fn tun_for_everyone() -> Result<(), String> {
    let mode = std::fs::metadata(TUN)
        .map_err(|e| format!("{TUN}: {e}"))?
        .permissions()
        .mode();
    if mode & 0o666 != 0o666 {
        return Err(format!(
            "{TUN} has mode {:o}: QEMUs running as users of their own (confine_qemu) cannot \
             attach to their taps; make it 0666 (Debian's default, `chmod 666 {TUN}`), or set \
             confine_qemu = false",
            mode & 0o777
        ));
    }
    Ok(())
}

/// Confined QEMUs run in a mount namespace of their own through
/// bubblewrap, which must be installed.
fn bwrap_runs() -> Result<(), String> {
    let found = std::process::Command::new(jettison_qemu::jail::BWRAP)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        Ok(())
    } else {
        Err(format!(
            "`{}` not found: QEMUs running as users of their own (confine_qemu) run in a mount \
             namespace through bubblewrap; install it (`apt install bubblewrap`), or set \
             confine_qemu = false",
            jettison_qemu::jail::BWRAP
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_listed_and_nothing_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let file = t.join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let text = format!(
            "qemu_binary = \"no-such-qemu-binary\"\nimage_dirs = [{:?}, {:?}]\n\
             state_dir = {:?}\nreplica_dir = {:?}\nrun_dir = {:?}\nmount_dir = {:?}\n\
             confine_qemu = false\n\
             [tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\nallowed_peers = [\"d\"]\n",
            t,
            t.join("images"),
            t.join("state"),
            file.join("replica"),
            t.join("run"),
            t.join("mnt"),
            t.join("ca.pem"),
            t.join("h.pem"),
            t.join("h.key"),
        );
        let config = ServerConfig::parse(&text).unwrap();
        let problems = check(&config).unwrap_err().problems;
        let want = [
            "tls: cannot read",
            "qemu_binary: no-such-qemu-binary",
            "image_dirs: ",
            "replica_dir: ",
        ];
        assert_eq!(problems.len(), want.len(), "{problems:#?}");
        for (p, w) in problems.iter().zip(want) {
            assert!(p.starts_with(w), "{p:?} should start with {w:?}");
        }
        assert!(problems[2].contains("images"), "{problems:#?}");
        for d in ["state", "run", "mnt"] {
            assert!(!t.join(d).exists(), "{d} created");
        }
    }
}
