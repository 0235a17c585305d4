//! `cargo xtask setup`: make sure the host packages are installed.

use anyhow::{bail, Result};

use crate::sh::{cmd, probe, run_live};

/// Debian packages the project needs on the host: QEMU; busybox, cpio and
/// xz for the guest image; fuse3 (fusermount3) for the lazy memory
/// filesystem; iproute2 and util-linux (nsenter) for taps and test hosts;
/// e2fsprogs (debugfs) to read the guest's disk image in tests and the demo;
/// bubblewrap for the mount namespace of the server's confined QEMUs;
/// dbus-daemon (the power backend's private test bus) and ethtool (its
/// Wake-on-LAN, tested on a veth).
/// dpkg-dev (dpkg-shlibdeps), binutils (strip) and lintian for the Debian
/// packages (`cargo xtask package` and its test).
/// prometheus and chromium (with a font for its text) for the operations
/// demo (`cargo xtask demo -- --ops`) and its test, which scrape the daemons
/// and load the dashboard.
pub const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "fuse3",
    "cpio",
    "iproute2",
    "util-linux",
    "e2fsprogs",
    "bubblewrap",
    "dbus-daemon",
    "ethtool",
    "dpkg-dev",
    "binutils",
    "lintian",
    "prometheus",
    "chromium",
    "fonts-dejavu-core",
];

/// Whether `dpkg -s` output says the package is installed.
pub fn dpkg_installed(dpkg_s_output: &str) -> bool {
    dpkg_s_output
        .lines()
        .any(|l| l.starts_with("Status:") && l.split_whitespace().last() == Some("installed"))
}

/// Effective uid from the text of `/proc/self/status`.
pub fn euid_from_status(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether we run as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| euid_from_status(&s))
        == Some(0)
}

/// The packages of `wanted` that are not installed.
pub fn missing(wanted: &[&str]) -> Vec<String> {
    wanted
        .iter()
        .filter(|p| !probe(&mut cmd("dpkg", ["-s", p])).is_some_and(|o| dpkg_installed(&o)))
        .map(|p| p.to_string())
        .collect()
}

/// The apt command that installs `pkgs`.
pub fn apt_install_line(pkgs: &[String]) -> String {
    format!(
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
        pkgs.join(" ")
    )
}

/// The tun device as Debian's udev leaves it (mode 0666): the server's
/// QEMUs run as users of their own and open it to attach to their taps.
/// Some containers make it 0600; made 0666 here when root, said otherwise.
fn tun_for_everyone() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    const TUN: &str = "/dev/net/tun";
    let Ok(meta) = std::fs::metadata(TUN) else {
        return Ok(());
    };
    if meta.permissions().mode() & 0o666 == 0o666 {
        return Ok(());
    }
    if !is_root() {
        bail!("{TUN} is not 0666 (Debian's default), so unprivileged QEMUs cannot use taps; as root: chmod 666 {TUN}");
    }
    println!("== setup: chmod 666 {TUN} (Debian's default; the server's QEMUs run unprivileged)");
    std::fs::set_permissions(TUN, std::fs::Permissions::from_mode(0o666))?;
    Ok(())
}

/// Installs the missing packages (root) or explains what to do (non-root).
pub fn setup() -> Result<()> {
    tun_for_everyone()?;
    println!("== setup: checking host packages: {}", PACKAGES.join(" "));
    let miss = missing(PACKAGES);
    if miss.is_empty() {
        println!("== setup: all host packages present");
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing host packages: {}\nnot running as root, so they cannot be installed here; run as root:\n  {}",
            miss.join(" "),
            apt_install_line(&miss)
        );
    }
    println!("== setup: installing {}", miss.join(" "));
    run_live(&mut cmd("apt-get", ["update"]))?;
    run_live(
        cmd("apt-get", ["install", "-y", "--no-install-recommends"])
            .args(&miss)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let still = missing(PACKAGES);
    if !still.is_empty() {
        bail!(
            "packages still missing after apt-get install: {}",
            still.join(" ")
        );
    }
    println!("== setup: done");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dpkg_status() {
        assert!(dpkg_installed(
            "Package: cpio\nStatus: install ok installed\nVersion: 2\n"
        ));
        assert!(!dpkg_installed(
            "Package: cpio\nStatus: deinstall ok config-files\n"
        ));
        assert!(!dpkg_installed(""));
    }

    #[test]
    fn parses_euid() {
        let s = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t1\t1\t1\t1\n";
        assert_eq!(euid_from_status(s), Some(0));
        assert_eq!(euid_from_status("Name: x\n"), None);
    }

    #[test]
    fn install_line_lists_packages() {
        let l = apt_install_line(&["cpio".into(), "fuse3".into()]);
        assert!(l.ends_with("--no-install-recommends cpio fuse3"));
    }
}
