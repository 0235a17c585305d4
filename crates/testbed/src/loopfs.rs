//! A small filesystem of its own for a test that fills a disk: an ext4
//! image loop-mounted in a unique temporary directory (root only),
//! unmounted and deleted on drop, also while unwinding from a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::TestbedError;

/// A mounted loop filesystem.
#[derive(Debug)]
pub struct LoopFs {
    root: PathBuf,
    mountpoint: PathBuf,
    mounted: bool,
}

fn run(program: &str, args: &[&str]) -> Result<(), TestbedError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TestbedError::Spawn(program.into(), e))?;
    if !out.status.success() {
        return Err(TestbedError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

impl LoopFs {
    /// Makes an ext4 filesystem of `mib` MiB and mounts it (`mount -o loop`)
    /// under a fresh directory named after `tag`.
    pub fn create(tag: &str, mib: u64) -> Result<Self, TestbedError> {
        static N: AtomicU64 = AtomicU64::new(0);
        let root = std::env::temp_dir().join(format!(
            "jettison-loopfs-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let mountpoint = root.join("mnt");
        std::fs::create_dir_all(&mountpoint)
            .map_err(|e| TestbedError::State(mountpoint.clone(), e))?;
        let mut fs = LoopFs {
            root,
            mountpoint,
            mounted: false,
        };
        let image = fs.root.join("fs.img");
        let file =
            std::fs::File::create(&image).map_err(|e| TestbedError::State(image.clone(), e))?;
        file.set_len(mib << 20)
            .map_err(|e| TestbedError::State(image.clone(), e))?;
        let image = image.to_string_lossy().into_owned();
        let mnt = fs.mountpoint.to_string_lossy().into_owned();
        run("mkfs.ext4", &["-q", "-F", "-m", "0", &image])?;
        run("mount", &["-o", "loop", &image, &mnt])?;
        fs.mounted = true;
        Ok(fs)
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if self.mounted {
            let mnt = self.mountpoint.to_string_lossy().into_owned();
            if run("umount", &[&mnt]).is_err() {
                // Busy (a file still open): detach it now, freed once closed.
                let _ = run("umount", &["-l", &mnt]);
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
