//! The mount namespace a confined QEMU runs in: through bubblewrap
//! (`bwrap`, Debian package `bubblewrap`), started as QEMU's own user (a
//! user namespace needs no privilege), QEMU sees the system's programs,
//! libraries and firmware read-only (`/usr` and the merged-`/usr` links),
//! a minimal `/dev` (plus the tun device and `/dev/kvm` when it uses
//! them), its own `/proc`, its boot files read-only, and its run directory,
//! memory file and disk image; nothing else of the host. Same paths inside
//! as outside, so sockets and files are named alike on both sides. The
//! network namespace is the host's (its tap is there). QEMU stays in
//! `bwrap`'s process group, which the daemon kills whole (no
//! `--die-with-parent`: its death signal follows the thread that started
//! `bwrap`, which for the huge-page filter is a short-lived one).

use std::path::{Path, PathBuf};

use crate::spec::{Accel, LaunchOptions, MachineSpec};

/// The bubblewrap binary, from `PATH`.
pub const BWRAP: &str = "bwrap";

/// The jail's `bwrap` arguments for `spec` on `opts`, to put before QEMU's
/// own binary and arguments.
pub fn bwrap_args(spec: &MachineSpec, opts: &LaunchOptions) -> Vec<String> {
    let mut a: Vec<String> = [
        "--unshare-user",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--ro-bind",
        "/usr",
        "/usr",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match std::fs::read_link(top) {
            Ok(target) => a.extend(["--symlink".into(), target.display().to_string(), top.into()]),
            Err(_) if Path::new(top).is_dir() => {
                a.extend(["--ro-bind".into(), top.into(), top.into()]);
            }
            Err(_) => {}
        }
    }
    let mut bind = |flag: &str, p: &Path| {
        let p = p.display().to_string();
        a.extend([flag.to_string(), p.clone(), p]);
    };
    if opts.tap.is_some() {
        bind("--dev-bind", Path::new("/dev/net/tun"));
    }
    if opts.accel == Accel::Kvm {
        bind("--dev-bind", Path::new("/dev/kvm"));
    }
    for f in [&spec.kernel, &spec.initrd].into_iter().flatten() {
        bind("--ro-bind", f);
    }
    let rw: Vec<&PathBuf> = [
        Some(&opts.run_dir),
        Some(&opts.mem_path),
        opts.disk_path.as_ref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    for p in rw {
        bind("--bind", p);
    }
    a.push("--".into());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jail_binds_only_what_the_vm_uses() {
        let spec = MachineSpec {
            kernel: Some("/img/vmlinuz".into()),
            initrd: Some("/img/initrd".into()),
            ..MachineSpec::default()
        };
        let opts = LaunchOptions {
            tap: Some("jtap1".into()),
            disk_path: Some("/mnt/vm1.disk.mem".into()),
            mem_path: "/mnt/vm1.mem".into(),
            ..LaunchOptions::new("vm1", "/run/j/vm1")
        };
        let a = bwrap_args(&spec, &opts).join(" ");
        for want in [
            "--unshare-user",
            "--ro-bind /usr /usr",
            "--dev-bind /dev/net/tun /dev/net/tun",
            "--ro-bind /img/vmlinuz /img/vmlinuz",
            "--ro-bind /img/initrd /img/initrd",
            "--bind /run/j/vm1 /run/j/vm1",
            "--bind /mnt/vm1.mem /mnt/vm1.mem",
            "--bind /mnt/vm1.disk.mem /mnt/vm1.disk.mem",
        ] {
            assert!(a.contains(want), "{want} missing: {a}");
        }
        assert!(a.ends_with(" --"), "{a}");
        assert!(!a.contains("/dev/kvm"), "TCG needs no /dev/kvm: {a}");
        assert!(
            !a.contains("--unshare-net"),
            "the tap is in the host's network: {a}"
        );
        assert!(!a.contains("/etc"), "nothing of /etc: {a}");
    }
}
