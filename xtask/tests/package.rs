//! `cargo xtask package`, for real: the packages of the debug build (the
//! release build is minutes; `--binaries-from` packages the same way)
//! are checked with `dpkg-deb -I`/`-c` and `lintian`, extracted to run
//! `--check-config` on the shipped configurations, and installed with
//! `dpkg -i` in a mount namespace over a throwaway overlay of `/` (the
//! host's `/etc` and dpkg database are never touched). Needs root and
//! `cargo xtask setup` (dpkg-dev, binutils, lintian).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The directory of the workspace's debug build (beside xtask's binary).
fn build_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_xtask"))
        .parent()
        .expect("target/debug")
        .to_path_buf()
}

fn run(c: &mut Command) -> Output {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"));
    eprintln!(
        "$ {c:?} -> {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs and requires success; gives stdout and stderr.
fn ok(c: &mut Command) -> String {
    let out = run(c);
    assert!(out.status.success(), "{c:?} failed");
    text(&out)
}

const PACKAGES: [&str; 3] = ["jettison-cli", "jettison-agent", "jettison-server"];

fn deb(dir: &Path, pkg: &str) -> PathBuf {
    let found = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb"))
        });
    found.unwrap_or_else(|| panic!("no {pkg} package in {}", dir.display()))
}

#[test]
fn packages_carry_their_files_pass_lintian_check_configs_and_install() {
    let bins = build_dir();
    for b in [
        "jettison",
        "jettison-agent",
        "jettison-server",
        "jettison-manuals",
    ] {
        assert!(
            bins.join(b).is_file(),
            "{} missing: build the workspace (cargo build -p jettison)",
            bins.join(b).display()
        );
    }
    let tmp = tempfile::Builder::new()
        .prefix("jts-pkg-")
        .tempdir()
        .unwrap();
    let out = tmp.path().join("debs");
    ok(Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["package", "--fast", "--binaries-from"])
        .arg(&bins)
        .arg("--out")
        .arg(&out));

    contents_and_fields(&out);
    lintian(&out);
    let root = tmp.path().join("root");
    for pkg in PACKAGES {
        ok(Command::new("dpkg-deb")
            .arg("-x")
            .arg(deb(&out, pkg))
            .arg(&root));
    }
    shipped_configs(&root, tmp.path());
    install_in_overlay(&out, tmp.path());
}

/// `dpkg-deb -I` and `-c`: the fields, conffiles and files each package
/// must carry.
fn contents_and_fields(out: &Path) {
    for pkg in PACKAGES {
        let info = ok(Command::new("dpkg-deb").arg("-I").arg(deb(out, pkg)));
        assert!(info.contains(&format!(" Package: {pkg}\n")), "{info}");
        assert!(info.contains(" Depends: libc6 "), "{info}");
        let files = ok(Command::new("dpkg-deb").arg("-c").arg(deb(out, pkg)));
        let bin = pkg.strip_suffix("-cli").unwrap_or(pkg);
        let section = if pkg == "jettison-cli" { 1 } else { 8 };
        for path in [
            format!("./usr/bin/{bin}"),
            format!("./usr/share/man/man{section}/{bin}.{section}.gz"),
            format!("./usr/share/bash-completion/completions/{bin}"),
            format!("./usr/share/zsh/vendor-completions/_{bin}"),
            format!("./usr/share/fish/vendor_completions.d/{bin}.fish"),
            format!("./usr/share/doc/{pkg}/copyright"),
            format!("./usr/share/doc/{pkg}/changelog.gz"),
            format!("./usr/share/doc/{pkg}/README.md.gz"),
            format!("./usr/share/lintian/overrides/{pkg}"),
        ] {
            assert!(
                files.contains(&format!(" {path}\n")),
                "{path} in {pkg}:\n{files}"
            );
        }
        if pkg == "jettison-cli" {
            assert!(
                files.contains(" ./usr/share/man/man1/jettison-power.1.gz\n"),
                "{files}"
            );
            assert!(!files.contains("./etc/"), "{files}");
            continue;
        }
        let config = if pkg == "jettison-agent" {
            "agent"
        } else {
            "server"
        };
        for path in [
            format!("./etc/jettison/{config}.toml"),
            format!("./lib/systemd/system/{pkg}.service"),
            format!("./usr/share/doc/{pkg}/runbook.md.gz"),
        ] {
            assert!(
                files.contains(&format!(" {path}\n")),
                "{path} in {pkg}:\n{files}"
            );
        }
        assert!(info.contains(" jettison-cli (= "), "{info}");
        assert!(info.contains(" qemu-system-x86"), "{info}");
        // The configuration is a conffile (kept across upgrades, asked about).
        let control = tempfile::tempdir().unwrap();
        ok(Command::new("dpkg-deb")
            .arg("-e")
            .arg(deb(out, pkg))
            .arg(control.path()));
        let listed = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
        assert_eq!(listed, format!("/etc/jettison/{config}.toml\n"));
    }
    let server = ok(Command::new("dpkg-deb")
        .arg("-I")
        .arg(deb(out, "jettison-server")));
    assert!(
        server.contains("bubblewrap") && server.contains("fuse3"),
        "{server}"
    );
}

/// lintian at every level; the exceptions are the overrides the packages
/// carry, each explained there (`xtask/src/debian.rs`).
fn lintian(out: &Path) {
    let mut c = Command::new("lintian");
    c.args([
        "--pedantic",
        "--display-experimental",
        "--display-info",
        "--fail-on",
        "error,warning,info,pedantic",
    ]);
    for pkg in PACKAGES {
        c.arg(deb(out, pkg));
    }
    let o = run(&mut c);
    let report: Vec<String> = text(&o)
        .lines()
        .filter(|l| !l.contains("running with root privileges"))
        .map(str::to_string)
        .collect();
    assert!(
        o.status.success() && report.is_empty(),
        "lintian:\n{}",
        report.join("\n")
    );
}

/// `--check-config` on the configurations as shipped: they name
/// certificates and a VM disk each site makes, so the only problems are the
/// missing TLS material and disk image (and, for the server, the image
/// directory the package makes at install); with certificates made by the
/// packaged `jettison certs`, a disk image, and the paths pointed at them,
/// both are valid.
fn shipped_configs(root: &Path, tmp: &Path) {
    let bin = |b: &str| root.join("usr/bin").join(b);
    let check = |daemon: &str, config: &Path| {
        run(Command::new(bin(daemon))
            .arg("--check-config")
            .arg("--config")
            .arg(config))
    };
    let agent_toml = root.join("etc/jettison/agent.toml");
    let server_toml = root.join("etc/jettison/server.toml");
    let o = check("jettison-agent", &agent_toml);
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("invalid (2 problems):"), "{t}");
    assert!(
        t.contains("tls: cannot read /etc/jettison/tls/ca.pem"),
        "{t}"
    );
    // the VM's disk is the site's to make (never created by the agent)
    assert!(
        t.contains("disk image /var/lib/jettison/disks/desk-17.img of VM desk-17 does not exist"),
        "{t}"
    );
    let o = check("jettison-server", &server_toml);
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("invalid (2 problems):"), "{t}");
    assert!(
        t.contains("tls: cannot read /etc/jettison/tls/ca.pem"),
        "{t}"
    );
    assert!(t.contains("image_dirs: /var/lib/jettison/images"), "{t}");

    let pki = tmp.join("pki");
    let certs = |args: &[&str]| ok(Command::new(bin("jettison")).arg("certs").args(args));
    let dir = pki.to_str().unwrap();
    certs(&["init", "--dir", dir]);
    for host in ["desk-17", "consol-1", "retired"] {
        certs(&["issue", "--dir", dir, "--host", host]);
    }
    certs(&["revoke", "--dir", dir, "--host", "retired"]);
    let point = |from: &Path, to: &Path, extra: &[(&str, String)]| {
        let mut s = std::fs::read_to_string(from)
            .unwrap()
            .replace("/etc/jettison/tls/", &format!("{dir}/"));
        for (a, b) in extra {
            s = s.replace(a, b);
        }
        std::fs::write(to, s).unwrap();
    };
    let agent = tmp.join("agent.toml");
    let disk = tmp.join("desk-17.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    point(
        &agent_toml,
        &agent,
        &[(
            "/var/lib/jettison/disks/desk-17.img",
            disk.display().to_string(),
        )],
    );
    let images = root.join("var/lib/jettison/images").display().to_string();
    let server = tmp.join("server.toml");
    point(
        &server_toml,
        &server,
        &[("/var/lib/jettison/images", images)],
    );
    for (daemon, config) in [("jettison-agent", &agent), ("jettison-server", &server)] {
        let o = check(daemon, config);
        assert_eq!(o.status.code(), Some(0), "{daemon}: {}", text(&o));
        assert!(text(&o).contains(": valid"), "{}", text(&o));
    }
    // A CRL that is not the CA's is refused by the check, as at start.
    std::fs::write(pki.join("ca.crl"), b"not a CRL").unwrap();
    let o = check("jettison-agent", &agent);
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    assert!(text(&o).contains("ca.crl"), "{}", text(&o));
}

/// The install script run in a private mount namespace: a tmpfs holds the
/// overlay's upper layer over `/`; dpkg runs chrooted into the overlay.
const INSTALL: &str = r#"
set -eu
T=$1; DEBS=$2
mount -t tmpfs jts-pkg "$T"
mkdir "$T/upper" "$T/work" "$T/root"
mount -t overlay jts-pkg -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$T/root"
mount --rbind /dev "$T/root/dev"
mount -t proc proc "$T/root/proc"
mkdir -p "$T/root/tmp/jts-debs"
cp "$DEBS"/*.deb "$T/root/tmp/jts-debs/"
in_root() { chroot "$T/root" "$@"; }
in_root sh -c 'dpkg -i /tmp/jts-debs/jettison-cli_*.deb /tmp/jts-debs/jettison-agent_*.deb /tmp/jts-debs/jettison-server_*.deb'
for p in jettison-cli jettison-agent jettison-server; do
  echo "status $p: $(in_root dpkg-query -W -f '${Status}' $p)"
done
in_root systemd-analyze verify /lib/systemd/system/jettison-agent.service /lib/systemd/system/jettison-server.service \
  && echo "units verified"
in_root jettison-agent --check-config && echo "agent check 0" || echo "agent check $?"
in_root sh -c 'cd /etc/jettison/tls 2>/dev/null || mkdir -p /etc/jettison/tls
  jettison certs init --dir /etc/jettison/tls >/dev/null
  for h in desk-17 consol-1 retired; do jettison certs issue --dir /etc/jettison/tls --host $h >/dev/null; done
  jettison certs revoke --dir /etc/jettison/tls --host retired >/dev/null'
in_root sh -c 'mkdir -p /var/lib/jettison/disks && truncate -s 8M /var/lib/jettison/disks/desk-17.img'
in_root jettison-agent --check-config && echo "agent check 0" || echo "agent check $?"
in_root jettison-server --check-config && echo "server check 0" || echo "server check $?"
in_root man -w jettison-agent jettison-server jettison && echo "man pages found"
in_root dpkg --purge jettison-server jettison-agent
test ! -e "$T/root/etc/jettison/agent.toml" && echo "conffile purged"
test -e /etc/jettison/agent.toml || echo "host untouched"
"#;

/// `dpkg -i` of the three packages inside a throwaway overlay of `/`.
fn install_in_overlay(out: &Path, tmp: &Path) {
    let host_had = |p: &str| Path::new(p).exists();
    assert!(
        !host_had("/usr/bin/jettison-agent"),
        "the host has jettison installed: the test would not see its own install"
    );
    let mount_point = tmp.join("overlay");
    std::fs::create_dir(&mount_point).unwrap();
    let o = run(Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "bash",
            "-c",
            INSTALL,
            "install",
        ])
        .arg(&mount_point)
        .arg(out));
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for line in [
        "status jettison-cli: install ok installed",
        "status jettison-agent: install ok installed",
        "status jettison-server: install ok installed",
        "units verified",
        // Before certificates: the shipped configuration is refused.
        "agent check 78",
        // With them (and the image directory the package makes): valid.
        "agent check 0",
        "server check 0",
        "man pages found",
        "conffile purged",
        "host untouched",
    ] {
        assert!(t.contains(line), "{line:?} in:\n{t}");
    }
    // The host's own dpkg database knows nothing of it.
    let host = run(Command::new("dpkg-query").args(["-W", "jettison-agent"]));
    assert!(!host.status.success(), "{}", text(&host));
    assert!(!host_had("/usr/bin/jettison-agent"));
}
