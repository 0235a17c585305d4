//! The text of the Debian packages' metadata (pure): control files,
//! copyright (machine-readable format), changelog, lintian overrides.

use jettison_programs::DebPackage;

/// Who the packages name as their maintainer.
pub const MAINTAINER: &str = "jettison developers <jettison@users.noreply.github.com>";

/// What every package's long description starts with.
const ABOUT: &str = "\
jettison moves an idle desktop's virtual machine to a consolidation
server with only its CPU and device state; its memory follows page by
page on demand, and the desktop sleeps while the VM is away. The VM
comes home with the pages it changed when the user returns.";

/// What one package adds to the description.
fn about_package(name: &str) -> &'static str {
    match name {
        "jettison-agent" => {
            "\
This package runs on each desktop: the agent daemon (jettison-agent) that
runs the desktop's VM under QEMU, migrates it and serves its memory, with
its systemd unit and an annotated configuration."
        }
        "jettison-server" => {
            "\
This package runs on the consolidation server: the daemon
(jettison-server) that takes desktops' VMs and runs them on a FUSE file
whose pages come from the desktop, with its systemd unit and an annotated
configuration."
        }
        _ => {
            "\
This package has the operator's command (jettison): migrate, bring home,
start and inspect VMs, show a desktop's power record, make the
deployment's certificates, simulate a fleet."
        }
    }
}

/// The `DEBIAN/control` file.
pub fn control(
    pkg: &DebPackage,
    version: &str,
    arch: &str,
    installed_kib: u64,
    shlib_depends: &str,
) -> String {
    let mut depends: Vec<String> = shlib_depends
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect();
    for d in pkg.depends {
        // Our own packages come in the same version.
        if d.starts_with("jettison") {
            depends.push(format!("{d} (= {version})"));
        } else {
            depends.push((*d).to_string());
        }
    }
    let mut s = format!(
        "Package: {}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: {MAINTAINER}\n\
         Installed-Size: {installed_kib}\n",
        pkg.name
    );
    if !depends.is_empty() {
        s += &format!("Depends: {}\n", depends.join(", "));
    }
    if !pkg.recommends.is_empty() {
        s += &format!("Recommends: {}\n", pkg.recommends.join(", "));
    }
    s += "Section: admin\nPriority: optional\n";
    s += &format!("Description: {}\n", pkg.summary);
    s += &indent(ABOUT);
    s += " .\n";
    s += &indent(about_package(pkg.name));
    s
}

/// Description lines start with a space.
fn indent(text: &str) -> String {
    text.lines().map(|l| format!(" {l}\n")).collect()
}

/// `/usr/share/doc/<package>/copyright` in the machine-readable format,
/// with the workspace's license.
pub fn copyright(license: &str, year: &str) -> String {
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: jettison\n\
         Comment: The programs are statically linked with Rust crates from\n \
         crates.io, each under its own license (MIT, Apache-2.0 or both, for\n \
         the most part); `cargo metadata` in the source lists them.\n\
         \n\
         Files: *\n\
         Copyright: {year} The jettison authors\n\
         License: {license}\n\
         \n\
         License: {license}\n \
         Licensed under the Apache License, Version 2.0 (the \"License\"); you may\n \
         not use this software except in compliance with the License.\n \
         .\n \
         On Debian systems, the complete text of the Apache License, Version 2.0\n \
         can be found in \"/usr/share/common-licenses/Apache-2.0\".\n"
    )
}

/// The changelog of a native package (`changelog.gz`), one entry.
pub fn changelog(pkg: &str, version: &str, date: &str) -> String {
    format!(
        "{pkg} ({version}) unstable; urgency=medium\n\n  \
         * Built by `cargo xtask package` from the jettison workspace.\n\n \
         -- {MAINTAINER}  {date}\n"
    )
}

/// The lintian tags the packages carry on purpose, each with why
/// (`/usr/share/lintian/overrides/<package>`).
pub fn lintian_overrides(pkg: &str) -> String {
    let mut s = String::new();
    s += "# Rust programs: the compiler does not use glibc's _FORTIFY_SOURCE\n\
          # wrappers (bounds are checked by the language instead).\n";
    s += &format!("{pkg}: hardening-no-fortify-functions [usr/bin/*]\n");
    if pkg != "jettison-cli" {
        s += "# The daemons run under systemd only (Type=, sandboxing, reload and\n\
              # stop semantics are the unit's); there is no sysvinit script.\n";
        s += &format!(
            "{pkg}: package-supports-alternative-init-but-no-init.d-script [lib/systemd/system/{pkg}.service]\n"
        );
    }
    s
}

/// The `DEBIAN/conffiles` file.
pub fn conffiles(paths: &[String]) -> String {
    paths.iter().map(|p| format!("{p}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jettison_programs::{DEB_AGENT, DEB_CLI};

    #[test]
    fn control_has_the_fields_and_our_packages_pinned() {
        let c = control(
            &DEB_AGENT,
            "0.1.0",
            "amd64",
            12345,
            "libc6 (>= 2.34), libgcc-s1 (>= 4.2)",
        );
        for line in [
            "Package: jettison-agent\n",
            "Version: 0.1.0\n",
            "Architecture: amd64\n",
            "Installed-Size: 12345\n",
            "Depends: libc6 (>= 2.34), libgcc-s1 (>= 4.2), jettison-cli (= 0.1.0), qemu-system-x86, iproute2\n",
            "Recommends: ethtool\n",
            "Description: partial desktop VM migration - desktop agent\n",
        ] {
            assert!(c.contains(line), "{line:?} in\n{c}");
        }
        // Every line of the description is indented; no empty line.
        let desc = &c[c.find("Description:").unwrap()..];
        assert!(
            desc.lines()
                .skip(1)
                .all(|l| l.starts_with(' ') && l.len() > 1 && l.len() <= 80),
            "{desc}"
        );
        assert!(c.ends_with('\n') && !c.contains("\n\n"), "{c}");
    }

    #[test]
    fn the_cli_has_no_recommends_and_only_library_depends() {
        let c = control(&DEB_CLI, "0.1.0", "amd64", 1, "libc6 (>= 2.34)");
        assert!(c.contains("Depends: libc6 (>= 2.34)\n"), "{c}");
        assert!(!c.contains("Recommends"), "{c}");
    }

    #[test]
    fn copyright_is_machine_readable_with_the_license() {
        let c = copyright("Apache-2.0", "2026");
        assert!(c.starts_with(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        ));
        assert!(
            c.contains("\nFiles: *\nCopyright: 2026 The jettison authors\nLicense: Apache-2.0\n")
        );
        assert!(c.contains("/usr/share/common-licenses/Apache-2.0"));
        // Paragraphs are separated by one empty line; continuation lines start with a space.
        for para in c.split("\n\n") {
            for l in para.lines() {
                assert!(
                    l.starts_with(' ') || l.contains(": ") || l.ends_with(':'),
                    "{l:?}"
                );
            }
        }
    }

    #[test]
    fn changelog_entry_has_the_trailer() {
        let c = changelog("jettison-cli", "0.1.0", "Wed, 02 Dec 2026 11:00:00 +0000");
        assert!(c.starts_with("jettison-cli (0.1.0) unstable; urgency=medium\n"));
        assert!(c.contains(&format!(
            "\n -- {MAINTAINER}  Wed, 02 Dec 2026 11:00:00 +0000\n"
        )));
    }

    #[test]
    fn every_override_is_explained() {
        for pkg in ["jettison-cli", "jettison-agent", "jettison-server"] {
            let text = lintian_overrides(pkg);
            let mut explained = false;
            for l in text.lines() {
                if l.starts_with('#') {
                    explained = true;
                } else {
                    assert!(explained, "{l:?} has no comment above it");
                    assert!(l.starts_with(&format!("{pkg}: ")), "{l}");
                }
            }
        }
    }
}
