//! Fetching the Debian kernel package without installing it on the host.
//!
//! `apt-cache depends linux-image-amd64` names the versioned package
//! (`linux-image-<release>`), `apt-get download` fetches its .deb into
//! `target/jettison-guest/deb/`, and `dpkg-deb -x` unpacks it there.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::setup::is_root;
use crate::sh::{cmd, run, run_live};

/// The meta package that points at the current kernel.
pub const META: &str = "linux-image-amd64";

/// The unpacked kernel package.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// Versioned package name, e.g. `linux-image-6.1.0-56-amd64`.
    pub package: String,
    /// Package version, e.g. `6.1.192-2`.
    pub version: String,
    /// Kernel release (`uname -r`), e.g. `6.1.0-56-amd64`.
    pub release: String,
    /// Root of the unpacked package.
    pub root: PathBuf,
}

impl Kernel {
    /// `boot/vmlinuz-<release>` in the unpacked package.
    pub fn vmlinuz(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("vmlinuz-{}", self.release))
    }
    /// `boot/config-<release>` in the unpacked package.
    pub fn config(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("config-{}", self.release))
    }
    /// `lib/modules/<release>`: the full modules tree, kept for later use.
    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }
}

/// The versioned image package from `apt-cache depends linux-image-amd64`.
pub fn parse_depends(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && !p.starts_with('<'))
        .map(str::to_string)
}

/// `(Version, basename of Filename)` from `apt-cache show --no-all-versions`.
pub fn parse_show(text: &str) -> Option<(String, String)> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(':')
                .map(|v| v.trim().to_string())
        })
    };
    let file = field("Filename")?;
    let base = file.rsplit('/').next()?.to_string();
    Some((field("Version")?, base))
}

/// The kernel release from a `vmlinuz-<release>` file name.
pub fn release_from_vmlinuz(name: &str) -> Option<&str> {
    name.strip_prefix("vmlinuz-").filter(|r| !r.is_empty())
}

fn apt_lists_present() -> bool {
    fs::read_dir("/var/lib/apt/lists").is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
    })
}

/// Resolves, downloads (if not cached) and unpacks the kernel into `deb_dir`.
pub fn fetch(deb_dir: &Path) -> Result<Kernel> {
    if !apt_lists_present() {
        if !is_root() {
            bail!("apt package lists are empty and we are not root: run `apt-get update` as root");
        }
        run_live(&mut cmd("apt-get", ["update"]))?;
    }
    let deps = run(&mut cmd("apt-cache", ["depends", META]))?;
    let package = parse_depends(&deps).with_context(|| {
        format!("no linux-image-* dependency in `apt-cache depends {META}`:\n{deps}")
    })?;
    let show = run(&mut cmd(
        "apt-cache",
        ["show", "--no-all-versions", &package],
    ))?;
    let (version, deb_name) =
        parse_show(&show).with_context(|| format!("no Version/Filename for {package}"))?;
    println!("== guest: kernel package {package} {version}");

    fs::create_dir_all(deb_dir)?;
    let deb = deb_dir.join(&deb_name);
    if deb.exists() {
        println!("== guest: using cached {}", deb.display());
    } else {
        for e in fs::read_dir(deb_dir)?.flatten() {
            if e.file_name().to_string_lossy().ends_with(".deb") {
                fs::remove_file(e.path())?; // an older kernel: do not pile them up
            }
        }
        println!("== guest: downloading {package}={version} (about 70 MB)");
        run(cmd("apt-get", ["download", &format!("{package}={version}")]).current_dir(deb_dir))?;
        if !deb.exists() {
            bail!("apt-get download did not produce {}", deb.display());
        }
    }

    let root = deb_dir.join("root");
    let marker = root.join(".jettison-unpacked");
    if fs::read_to_string(&marker).ok().as_deref() != Some(deb_name.as_str()) {
        if root.exists() {
            fs::remove_dir_all(&root)?;
        }
        println!("== guest: unpacking {deb_name}");
        run(cmd("dpkg-deb", ["-x"]).arg(&deb).arg(&root))?;
        fs::write(&marker, &deb_name)?;
    }
    let release = fs::read_dir(root.join("boot"))?
        .flatten()
        .find_map(|e| release_from_vmlinuz(&e.file_name().to_string_lossy()).map(str::to_string))
        .context("no boot/vmlinuz-* in the kernel package")?;
    Ok(Kernel {
        package,
        version,
        release,
        root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_apt_cache_depends() {
        let t = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_depends(t).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(
            parse_depends("linux-image-amd64\n  Depends: <linux-image-x>\n"),
            None
        );
        assert_eq!(parse_depends(""), None);
    }

    #[test]
    fn parses_apt_cache_show() {
        let t = "Package: linux-image-6.1.0-56-amd64\nSource: linux-signed-amd64 (6.1.192+2)\n\
                 Version: 6.1.192-2\nFilename: pool/main/l/linux-signed-amd64/linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb\n";
        assert_eq!(
            parse_show(t),
            Some((
                "6.1.192-2".into(),
                "linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb".into()
            ))
        );
        assert_eq!(parse_show("Version: 1\n"), None);
    }

    #[test]
    fn release_from_name() {
        assert_eq!(
            release_from_vmlinuz("vmlinuz-6.1.0-56-amd64"),
            Some("6.1.0-56-amd64")
        );
        assert_eq!(release_from_vmlinuz("config-6.1.0-56-amd64"), None);
    }
}
