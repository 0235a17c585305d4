//! `cargo xtask package`: the Debian packages (`jettison-cli`,
//! `jettison-agent`, `jettison-server`) into `target/debian/`, built with
//! `dpkg-deb` from a staged tree (no cargo-deb, no debhelper).
//!
//! The programs come from a release build of the `jettison` package
//! (without the test-host features), or, with `--binaries-from DIR`,
//! from an existing build (the package test reuses the debug binaries).
//! Manual pages and completions are written by `jettison-manuals`, built
//! beside them from the same clap definitions.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use jettison_programs::{DebPackage, DEB_PACKAGES};

use crate::debian;
use crate::paths::Paths;
use crate::sh::{cmd, pipeline, run, run_live};

/// Debian packages the packaging runs: dpkg-deb, dpkg-shlibdeps (dpkg-dev),
/// strip (binutils).
const TOOLS: &[&str] = &["dpkg-dev", "binutils"];

/// Options of `cargo xtask package`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Take the programs (and `jettison-manuals`) from here instead of
    /// building them in release.
    pub binaries_from: Option<PathBuf>,
    /// Where the `.deb` files go (default `target/debian`).
    pub out: Option<PathBuf>,
    /// Compress quickly (gzip -1) rather than small (xz): for tests.
    pub fast: bool,
}

/// The files of the source tree each package installs, beside its
/// programs, manual pages and completions: (source, destination, mode).
fn extra_files(pkg: &str) -> Vec<(&'static str, String, u32)> {
    let doc = |f: &str| format!("usr/share/doc/{pkg}/{f}");
    let mut files = vec![("README.md", doc("README.md"), 0o644)];
    let (config, unit) = match pkg {
        "jettison-agent" => ("packaging/agent.toml", "packaging/jettison-agent.service"),
        "jettison-server" => ("packaging/server.toml", "packaging/jettison-server.service"),
        _ => return files,
    };
    let name = |p: &'static str| p.rsplit('/').next().unwrap_or(p).to_string();
    files.push(("docs/runbook.md", doc("runbook.md"), 0o644));
    files.push((config, format!("etc/jettison/{}", name(config)), 0o644));
    files.push((unit, format!("lib/systemd/system/{}", name(unit)), 0o644));
    files
}

/// Builds the packages; gives the paths of the `.deb` files.
pub fn package(paths: &Paths, opts: &Options) -> Result<Vec<PathBuf>> {
    let missing = crate::setup::missing(TOOLS);
    if !missing.is_empty() {
        bail!(
            "packaging needs {} (`cargo xtask setup` as root installs them, or: {})",
            missing.join(" "),
            crate::setup::apt_install_line(&missing)
        );
    }
    let bins = match &opts.binaries_from {
        Some(dir) => dir.clone(),
        None => {
            run_live(paths.cargo().args([
                "build",
                "--release",
                "-p",
                "jettison",
                "--bin",
                "jettison",
                "--bin",
                "jettison-agent",
                "--bin",
                "jettison-server",
                "--bin",
                "jettison-manuals",
            ]))?;
            paths.target.join("release")
        }
    };
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| paths.target.join("debian"));
    let work = out.join("stage");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    let manuals = work.join("manuals");
    run(std::process::Command::new(bins.join("jettison-manuals")).arg(&manuals))
        .context("generating the manual pages and completions")?;
    let version = workspace_field(&paths.root, "version")?;
    let license = workspace_field(&paths.root, "license")?;
    let arch = run(&mut cmd("dpkg", ["--print-architecture"]))?
        .trim()
        .to_string();
    let date = pipeline(
        "git log -1 --format=%cD 2>/dev/null || date -R",
        &paths.root,
    )?
    .trim()
    .to_string();
    let year = date.split_whitespace().nth(3).unwrap_or("2026").to_string();
    let mut debs = Vec::new();
    for pkg in DEB_PACKAGES {
        let tree = work.join(pkg.name);
        stage(paths, &pkg, &bins, &manuals, &tree)?;
        let doc = tree.join(format!("usr/share/doc/{}", pkg.name));
        std::fs::write(doc.join("copyright"), debian::copyright(&license, &year))?;
        gzip_to(
            debian::changelog(pkg.name, &version, &date).as_bytes(),
            &doc.join("changelog.gz"),
        )?;
        let overrides = tree.join("usr/share/lintian/overrides");
        std::fs::create_dir_all(&overrides)?;
        std::fs::write(
            overrides.join(pkg.name),
            debian::lintian_overrides(pkg.name),
        )?;
        let shlibs = shlib_depends(&tree, &pkg, &work)?;
        let control_dir = tree.join("DEBIAN");
        std::fs::create_dir_all(&control_dir)?;
        let conffiles = conffiles_of(&tree)?;
        if !conffiles.is_empty() {
            std::fs::write(control_dir.join("conffiles"), debian::conffiles(&conffiles))?;
        }
        pipeline(
            "find . -path ./DEBIAN -prune -o -type f -printf '%P\\0' | sort -z | xargs -0 -r md5sum > DEBIAN/md5sums",
            &tree,
        )?;
        std::fs::write(
            control_dir.join("control"),
            debian::control(&pkg, &version, &arch, installed_kib(&tree)?, &shlibs),
        )?;
        let deb = out.join(format!("{}_{version}_{arch}.deb", pkg.name));
        let mut build = cmd("dpkg-deb", ["--root-owner-group"]);
        if opts.fast {
            build.args(["-Zgzip", "-z1"]);
        }
        run(build.arg("--build").arg(&tree).arg(&deb))?;
        println!("== package: {}", deb.display());
        debs.push(deb);
    }
    Ok(debs)
}

/// Lays out one package's files under `tree`.
fn stage(paths: &Paths, pkg: &DebPackage, bins: &Path, manuals: &Path, tree: &Path) -> Result<()> {
    let bin_dir = tree.join("usr/bin");
    std::fs::create_dir_all(&bin_dir)?;
    for p in pkg.programs {
        let from = bins.join(p.bin);
        if !from.is_file() {
            bail!(
                "{} missing: build it (cargo build -p jettison)",
                from.display()
            );
        }
        let to = bin_dir.join(p.bin);
        // Stripped as dh_strip does; the release build's line tables go.
        run(cmd(
            "strip",
            [
                "--strip-unneeded",
                "--remove-section=.comment",
                "--remove-section=.note",
                "-o",
            ],
        )
        .arg(&to)
        .arg(&from))?;
        set_mode(&to, 0o755)?;
        let section = if p.bin == "jettison" { "1" } else { "8" };
        let man_dir = tree.join(format!("usr/share/man/man{section}"));
        std::fs::create_dir_all(&man_dir)?;
        for entry in std::fs::read_dir(manuals.join("man"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let page = name
                .strip_suffix(&format!(".{section}"))
                .unwrap_or_default();
            // `jettison.1` and `jettison-<sub>.1` go with the command; a
            // daemon has one page of its own.
            let ours = page == p.bin
                || (p.bin == "jettison" && page.starts_with("jettison-") && section == "1");
            if ours {
                gzip_to(
                    &std::fs::read(entry.path())?,
                    &man_dir.join(format!("{name}.gz")),
                )?;
            }
        }
        let completions = manuals.join("completions");
        for (shell, from, to) in [
            (
                "bash",
                p.bin.to_string(),
                format!("usr/share/bash-completion/completions/{}", p.bin),
            ),
            (
                "zsh",
                format!("_{}", p.bin),
                format!("usr/share/zsh/vendor-completions/_{}", p.bin),
            ),
            (
                "fish",
                format!("{}.fish", p.bin),
                format!("usr/share/fish/vendor_completions.d/{}.fish", p.bin),
            ),
        ] {
            copy(&completions.join(shell).join(from), &tree.join(to), 0o644)?;
        }
    }
    for (from, to, mode) in extra_files(pkg.name) {
        let dest = tree.join(&to);
        if to.starts_with("usr/share/doc/") {
            gzip_to(
                &std::fs::read(paths.root.join(from))?,
                &dest.with_extension("md.gz"),
            )?;
        } else {
            copy(&paths.root.join(from), &dest, mode)?;
        }
    }
    if pkg.name == "jettison-server" {
        // The packaged configuration's image_dirs: boot files go there.
        std::fs::create_dir_all(tree.join("var/lib/jettison/images"))?;
    }
    Ok(())
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    set_mode(to, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// `gzip -9n` of `data` into `to` (no name nor time stamp: reproducible).
fn gzip_to(data: &[u8], to: &Path) -> Result<()> {
    use std::io::Write;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut child = cmd("gzip", ["-9n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(to)?)
        .spawn()
        .context("running gzip")?;
    child
        .stdin
        .take()
        .context("gzip's stdin")?
        .write_all(data)?;
    let status = child.wait()?;
    if !status.success() {
        bail!("gzip failed ({status}) for {}", to.display());
    }
    set_mode(to, 0o644)
}

/// The files under `etc/` of a staged tree, as absolute paths.
fn conffiles_of(tree: &Path) -> Result<Vec<String>> {
    let listed = pipeline("test -d etc && find etc -type f | sort || true", tree)?;
    Ok(listed.lines().map(|l| format!("/{l}")).collect())
}

/// The installed size in KiB, as dpkg counts it (each file rounded up).
fn installed_kib(tree: &Path) -> Result<u64> {
    let sizes = pipeline(
        "find . -path ./DEBIAN -prune -o -type f -printf '%s\\n'",
        tree,
    )?;
    Ok(sizes
        .lines()
        .filter_map(|l| l.parse::<u64>().ok())
        .map(|b| b.div_ceil(1024))
        .sum::<u64>()
        .max(1))
}

/// The shared libraries' packages the programs need (`dpkg-shlibdeps`, run
/// in a scratch source tree as it expects).
fn shlib_depends(tree: &Path, pkg: &DebPackage, work: &Path) -> Result<String> {
    let scratch = work.join(format!("shlibs-{}", pkg.name));
    std::fs::create_dir_all(scratch.join("debian"))?;
    std::fs::write(
        scratch.join("debian/control"),
        format!(
            "Source: jettison\n\nPackage: {}\nArchitecture: any\n",
            pkg.name
        ),
    )?;
    let mut c = cmd("dpkg-shlibdeps", ["-O"]);
    for p in pkg.programs {
        c.arg(format!("-e{}", tree.join("usr/bin").join(p.bin).display()));
    }
    let out = run(c.current_dir(&scratch))?;
    std::fs::remove_dir_all(&scratch)?;
    Ok(out
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .unwrap_or_default()
        .to_string())
}

/// A `[workspace.package]` field of the root Cargo.toml.
fn workspace_field(root: &Path, key: &str) -> Result<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let section = text
        .split("[workspace.package]")
        .nth(1)
        .context("no [workspace.package] in Cargo.toml")?;
    section
        .lines()
        .take_while(|l| !l.starts_with('['))
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
        .with_context(|| format!("no {key} in [workspace.package]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_version_and_license_are_read() {
        let root = Paths::new().root;
        assert_eq!(workspace_field(&root, "license").unwrap(), "Apache-2.0");
        let v = workspace_field(&root, "version").unwrap();
        assert!(v.split('.').count() == 3, "{v}");
    }

    #[test]
    fn daemons_carry_their_unit_and_configuration_the_cli_only_docs() {
        let agent = extra_files("jettison-agent");
        let dests: Vec<&str> = agent.iter().map(|f| f.1.as_str()).collect();
        assert!(dests.contains(&"etc/jettison/agent.toml"), "{dests:?}");
        assert!(
            dests.contains(&"lib/systemd/system/jettison-agent.service"),
            "{dests:?}"
        );
        let cli = extra_files("jettison-cli");
        assert_eq!(cli.len(), 1);
        for (from, _, _) in agent.iter().chain(&extra_files("jettison-server")) {
            assert!(Paths::new().root.join(from).is_file(), "{from}");
        }
    }
}
