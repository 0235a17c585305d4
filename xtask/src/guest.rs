//! `cargo xtask guest`: build the guest image into `target/jettison-guest/`.
//!
//! Outputs: `vmlinuz`, `initrd.img`, `cmdline`, `stamp`, and `deb/root/`
//! (the unpacked kernel package, whose `lib/modules/<release>` tree is kept
//! for later use). Rebuilds only when the stamp (kernel package version and
//! hashes of the guest binary, busybox, `/init` and xtask itself) changes.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::initramfs::{self, BUSYBOX, INIT_SCRIPT};
use crate::kernel;
use crate::modules::Plan;
use crate::paths::Paths;
use crate::sh::run_live;

/// Kernel command line every guest boots with.
pub const BASE_CMDLINE: &str = "console=ttyS0 quiet panic=-1 rdinit=/init";

/// The host triple the static guest is built for (no musl target here).
pub const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// The built image.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// Kernel image.
    pub vmlinuz: PathBuf,
    /// Initramfs.
    pub initrd: PathBuf,
    /// Full kernel command line.
    pub cmdline: String,
}

/// The kernel command line with user `key=value` settings (the `jettison.`
/// prefix is added when missing).
pub fn cmdline(extra: &[String]) -> String {
    let mut s = BASE_CMDLINE.to_string();
    for e in extra {
        s.push(' ');
        if !e.starts_with("jettison.") {
            s.push_str("jettison.");
        }
        s.push_str(e);
    }
    s
}

/// Builds the static guest binary and returns its path.
fn build_guest_binary(paths: &Paths) -> Result<PathBuf> {
    let target_dir = paths.target.join("guest-build");
    println!("== guest: building the static jettison-guest binary");
    run_live(
        paths
            .cargo()
            .args([
                "build",
                "--release",
                "-p",
                "jettison-guest",
                "--target",
                TRIPLE,
                "--target-dir",
            ])
            .arg(&target_dir)
            .env(
                "RUSTFLAGS",
                "-C target-feature=+crt-static -C strip=debuginfo",
            ),
    )?;
    let bin = target_dir.join(TRIPLE).join("release/jettison-guest");
    let bytes = fs::read(&bin).with_context(|| format!("reading {}", bin.display()))?;
    if crate::elf::is_static(&bytes) != Some(true) {
        bail!("{} is not statically linked", bin.display());
    }
    Ok(bin)
}

fn hash_file(p: &Path) -> Result<String> {
    Ok(
        blake3::hash(&fs::read(p).with_context(|| format!("reading {}", p.display()))?)
            .to_hex()
            .to_string(),
    )
}

/// Builds (or reuses) the guest image. `extra` are user `jettison.*` keys.
pub fn guest(paths: &Paths, extra: &[String]) -> Result<GuestImage> {
    let t0 = Instant::now();
    let out = &paths.guest;
    fs::create_dir_all(out)?;
    let bin = build_guest_binary(paths)?;
    let k = kernel::fetch(&out.join("deb"))?;
    let plan = initramfs::module_plan(&k)?;

    println!(
        "== guest: kernel {} ({} {}), modules:",
        k.release, k.package, k.version
    );
    for (name, p) in &plan {
        let what = match p {
            Plan::BuiltIn => "built in".to_string(),
            Plan::Load(rel) => format!("module {rel}"),
            Plan::Missing => "NOT AVAILABLE".to_string(),
        };
        println!("   {name:<22} {what}");
    }
    let stamp = format!(
        "kernel={} {}\nguest={}\nbusybox={}\ninit={}\nmodules={:?}\nxtask={}\n",
        k.package,
        k.version,
        hash_file(&bin)?,
        hash_file(Path::new(BUSYBOX))?,
        blake3::hash(INIT_SCRIPT.as_bytes()).to_hex(),
        plan,
        hash_file(&std::env::current_exe()?)?, // image layout logic changed: rebuild
    );
    let (vmlinuz, initrd, stamp_path) = (
        out.join("vmlinuz"),
        out.join("initrd.img"),
        out.join("stamp"),
    );
    let fresh = vmlinuz.exists()
        && initrd.exists()
        && fs::read_to_string(&stamp_path).ok() == Some(stamp.clone());
    if fresh {
        println!("== guest: image up to date (stamp matches)");
    } else {
        let _ = fs::remove_file(&stamp_path);
        println!("== guest: copying {}", k.vmlinuz().display());
        fs::copy(k.vmlinuz(), &vmlinuz)?;
        println!("== guest: building initramfs");
        initramfs::build(&out.join("initramfs"), &initrd, &k, &bin, &plan)?;
        fs::write(&stamp_path, &stamp)?;
    }
    let cmdline = cmdline(extra);
    fs::write(out.join("cmdline"), format!("{cmdline}\n"))?;
    println!("== guest: ready in {:.1}s", t0.elapsed().as_secs_f64());
    println!("   kernel:   {}", vmlinuz.display());
    println!(
        "   initrd:   {} ({} KiB)",
        initrd.display(),
        fs::metadata(&initrd)?.len() / 1024
    );
    println!("   modules:  {}", k.modules_dir().display());
    println!("   cmdline:  {cmdline}");
    Ok(GuestImage {
        vmlinuz,
        initrd,
        cmdline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_adds_prefix() {
        assert_eq!(cmdline(&[]), BASE_CMDLINE);
        let c = cmdline(&["fill_pct=30".into(), "jettison.peer=1.2.3.4:5".into()]);
        assert_eq!(
            c,
            format!("{BASE_CMDLINE} jettison.fill_pct=30 jettison.peer=1.2.3.4:5")
        );
    }
}
