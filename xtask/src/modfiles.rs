//! The module files: finding the wanted ones in the unpacked kernel
//! package and installing them (decompressed) into the initramfs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::modules::{module_name, ORDER};
use crate::sh::pipeline;

/// Walks `dir` and maps each wanted module name to its path relative to `base`.
pub fn find(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> Result<()> {
    for e in fs::read_dir(dir)?.flatten() {
        let path = e.path();
        if e.file_type()?.is_dir() {
            find(base, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(base) {
            let rel = rel.to_string_lossy();
            if let Some(name) = module_name(&rel) {
                if ORDER.iter().any(|(n, _)| *n == name) {
                    out.insert(name.to_string(), rel.into_owned());
                }
            }
        }
    }
    Ok(())
}

/// Copies `rel` from `src_root` to `dst_root` as a plain `.ko` (decompressing
/// `.ko.xz`/`.ko.zst`/`.ko.gz`) and returns the destination's relative path.
pub fn install(src_root: &Path, dst_root: &Path, rel: &str) -> Result<String> {
    let name = module_name(rel).unwrap_or(rel);
    let dir = rel.rsplit_once('/').map_or("", |(d, _)| d);
    let dst_rel = format!("{dir}/{name}.ko");
    let dst: PathBuf = dst_root.join(&dst_rel);
    fs::create_dir_all(dst.parent().unwrap_or(dst_root))?;
    let src = src_root.join(rel);
    let tool = match rel.rsplit('.').next() {
        Some("ko") => None,
        Some("xz") => Some("xz"),
        Some("zst") => Some("zstd"),
        Some("gz") => Some("gzip"),
        _ => bail!("unexpected module file {rel}"),
    };
    match tool {
        None => {
            fs::copy(&src, &dst)?;
        }
        Some(t) => {
            let script = format!("{t} -dc '{}' > '{}'", src.display(), dst.display());
            pipeline(&script, dst_root)
                .map_err(|e| e.context(format!("decompressing {rel} needs `{t}`")))?;
        }
    }
    Ok(dst_rel)
}
