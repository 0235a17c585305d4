//! Building the guest initramfs: busybox-static, `/init`, the workload
//! binary and the few kernel modules, packed as a gzipped newc cpio.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::kernel::Kernel;
use crate::modfiles;
use crate::modules::{self, Plan};
use crate::sh::{cmd, pipeline, run};

/// The `/init` script.
pub const INIT_SCRIPT: &str = include_str!("init.sh");

/// Where busybox-static installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Per-module outcome, for the report.
pub type ModuleReport = Vec<(&'static str, Plan)>;

fn write_exec(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Decides which modules to ship; see [`modules::plan`].
pub fn module_plan(kernel: &Kernel) -> Result<ModuleReport> {
    let config = fs::read_to_string(kernel.config()).unwrap_or_default();
    let mdir = kernel.modules_dir();
    let builtin = fs::read_to_string(mdir.join("modules.builtin")).unwrap_or_default();
    let mut found = BTreeMap::new();
    if mdir.join("kernel").is_dir() {
        modfiles::find(&mdir, &mdir.join("kernel"), &mut found)?;
    }
    Ok(modules::plan(&config, &builtin, &found))
}

/// Populates `staging` (wiped first) and packs it into `out` (gzipped newc).
pub fn build(
    staging: &Path,
    out: &Path,
    kernel: &Kernel,
    guest_bin: &Path,
    plan: &ModuleReport,
) -> Result<()> {
    if staging.exists() {
        fs::remove_dir_all(staging)?;
    }
    for d in [
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "etc/jettison",
        "usr",
        "root",
    ] {
        fs::create_dir_all(staging.join(d))?;
    }
    for (link, to) in [
        ("sbin", "bin"),
        ("usr/bin", "../bin"),
        ("usr/sbin", "../bin"),
    ] {
        symlink(to, staging.join(link))?;
    }

    let bb =
        fs::read(BUSYBOX).with_context(|| format!("reading {BUSYBOX} (package busybox-static)"))?;
    if crate::elf::is_static(&bb) != Some(true) {
        bail!("{BUSYBOX} is not a static executable: install busybox-static");
    }
    write_exec(&staging.join("bin/busybox"), &bb)?;
    let applets = run(&mut cmd(BUSYBOX, ["--list"]))?;
    for a in applets
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        symlink("busybox", staging.join("bin").join(a))?;
    }
    // /init starts with `#!/bin/sh`, the busybox symlink made above.
    write_exec(&staging.join("init"), INIT_SCRIPT.as_bytes())?;
    write_exec(&staging.join("bin/jettison-guest"), &fs::read(guest_bin)?)?;

    let mdst = staging.join("lib/modules").join(&kernel.release);
    let (mut names, mut installed, mut deps) = (Vec::new(), BTreeMap::new(), BTreeMap::new());
    for (name, p) in plan {
        if let Plan::Load(rel) = p {
            let dst_rel = modfiles::install(&kernel.modules_dir(), &mdst, rel)?;
            let d = modules::modinfo_depends(&fs::read(mdst.join(&dst_rel))?);
            println!("   module {name}: {dst_rel} (depends: {})", d.join(","));
            names.push(*name);
            installed.insert(name.to_string(), dst_rel);
            deps.insert(name.to_string(), d);
        }
    }
    let builtin =
        fs::read_to_string(kernel.modules_dir().join("modules.builtin")).unwrap_or_default();
    let unmet = modules::unmet_dependencies(&deps, &builtin);
    if !unmet.is_empty() {
        bail!("modules with dependencies neither shipped nor built in (add them to modules::ORDER): {unmet:?}");
    }
    let mut order = String::new();
    for n in modules::load_order(&names, &deps) {
        order.push_str(&installed[&n]);
        order.push('\n');
    }
    println!(
        "   load order: {}",
        modules::load_order(&names, &deps).join(" ")
    );
    fs::write(staging.join("etc/jettison/modules"), order)?;
    fs::write(
        staging.join("etc/jettison/kernel-release"),
        format!("{}\n", kernel.release),
    )?;

    let tmp = out.with_extension("img.tmp");
    pipeline(
        &format!(
            "find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --reproducible --quiet | gzip -n -6 > '{}'",
            tmp.display()
        ),
        staging,
    )?;
    fs::rename(&tmp, out)?;
    Ok(())
}
