//! The guest image built by `cargo xtask guest`.

use std::path::PathBuf;

use anyhow::bail;

/// Kernel, initramfs and base command line of the test guest.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// Directory holding the image.
    pub dir: PathBuf,
    /// The kernel.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// Base kernel command line.
    pub cmdline: String,
}

impl GuestImage {
    /// Finds the image: `$JETTISON_GUEST_DIR`, else `target/jettison-guest`
    /// of this workspace.
    pub fn locate() -> anyhow::Result<Self> {
        let dir = std::env::var_os("JETTISON_GUEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/jettison-guest")
            });
        let kernel = dir.join("vmlinuz");
        let initrd = dir.join("initrd.img");
        if !kernel.is_file() || !initrd.is_file() {
            bail!(
                "no guest image in {} (vmlinuz, initrd.img): build it with `cargo xtask guest` (as root)",
                dir.display()
            );
        }
        let cmdline = std::fs::read_to_string(dir.join("cmdline"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "console=ttyS0 quiet panic=-1 rdinit=/init".into());
        Ok(GuestImage {
            dir: dir.canonicalize()?,
            kernel: kernel.canonicalize()?,
            initrd: initrd.canonicalize()?,
            cmdline,
        })
    }
}
