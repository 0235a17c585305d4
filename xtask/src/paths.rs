//! Where things live in the workspace.

use std::path::PathBuf;
use std::process::Command;

/// Workspace paths used by the tasks.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Workspace root.
    pub root: PathBuf,
    /// The workspace's normal `target/` directory.
    pub target: PathBuf,
    /// Output of `cargo xtask guest`: `target/jettison-guest`.
    pub guest: PathBuf,
}

impl Paths {
    /// Paths derived from the location of this crate (`<root>/xtask`).
    pub fn new() -> Self {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let root = manifest
            .parent()
            .map_or(manifest.clone(), |p| p.to_path_buf());
        let target = root.join("target");
        let guest = target.join("jettison-guest");
        Self {
            root,
            target,
            guest,
        }
    }

    /// A `cargo` command run at the workspace root that builds into the
    /// workspace's `target/` even if the caller set `CARGO_TARGET_DIR`.
    pub fn cargo(&self) -> Command {
        let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        c.current_dir(&self.root).env_remove("CARGO_TARGET_DIR");
        c
    }
}
