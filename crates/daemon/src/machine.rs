//! A VM's virtual hardware as QEMU launches it ([`MachineSpec`]) and as it
//! travels ([`MachineDesc`]): boot files go by path plus BLAKE3 digest, and the
//! receiving host must find the very same file.

use std::path::{Path, PathBuf};

use jettison_qemu::MachineSpec;
use jettison_wire::{BootFile, MachineDesc};

/// Why a machine description cannot be used on this host.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// A boot file could not be read.
    #[error("cannot read boot file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No local copy of a boot file has the digest the desktop sent.
    #[error(
        "this host has no copy of boot file {name} with digest {digest} (looked in: {looked})"
    )]
    MissingBootFile {
        /// File name.
        name: String,
        /// Expected digest.
        digest: String,
        /// Paths tried.
        looked: String,
    },
}

fn digest(path: &Path) -> Result<String, MachineError> {
    let bytes = std::fs::read(path).map_err(|source| MachineError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

fn boot_file(path: &Option<PathBuf>) -> Result<Option<BootFile>, MachineError> {
    path.as_ref()
        .map(|p| {
            Ok(BootFile {
                path: p.display().to_string(),
                blake3: digest(p)?,
            })
        })
        .transpose()
}

/// Describes a machine for the wire, hashing its boot files.
pub fn describe_machine(spec: &MachineSpec) -> Result<MachineDesc, MachineError> {
    Ok(MachineDesc {
        memory_mib: spec.memory_mib,
        cpus: spec.cpus,
        kernel: boot_file(&spec.kernel)?,
        initrd: boot_file(&spec.initrd)?,
        append: spec.append.clone(),
        extra_args: spec.extra_args.clone(),
        nic_mac: spec.nic_mac.clone(),
        disk_bytes: spec.disk_bytes,
    })
}

fn locate(
    file: &Option<BootFile>,
    image_dirs: &[PathBuf],
) -> Result<Option<PathBuf>, MachineError> {
    let Some(file) = file else { return Ok(None) };
    let sent = PathBuf::from(&file.path);
    let name = sent
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.path.clone());
    let mut candidates: Vec<PathBuf> = image_dirs.iter().map(|d| d.join(&name)).collect();
    candidates.push(sent);
    for c in &candidates {
        if c.is_file() && digest(c)? == file.blake3 {
            return Ok(Some(c.clone()));
        }
    }
    let looked = candidates
        .iter()
        .map(|c| c.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Err(MachineError::MissingBootFile {
        name,
        digest: file.blake3.clone(),
        looked,
    })
}

/// Turns a received description into a launchable spec, finding each boot
/// file in `image_dirs` (by file name) or at the sender's path, and checking
/// its digest.
pub fn resolve_machine(
    desc: &MachineDesc,
    image_dirs: &[PathBuf],
) -> Result<MachineSpec, MachineError> {
    Ok(MachineSpec {
        memory_mib: desc.memory_mib,
        cpus: desc.cpus,
        kernel: locate(&desc.kernel, image_dirs)?,
        initrd: locate(&desc.initrd, image_dirs)?,
        append: desc.append.clone(),
        extra_args: desc.extra_args.clone(),
        nic_mac: desc.nic_mac.clone(),
        disk_bytes: desc.disk_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kernel: PathBuf) -> MachineSpec {
        MachineSpec {
            memory_mib: 256,
            cpus: 1,
            kernel: Some(kernel),
            initrd: None,
            append: Some("console=ttyS0".into()),
            extra_args: vec![],
            nic_mac: Some("52:54:00:00:00:01".into()),
            disk_bytes: None,
        }
    }

    #[test]
    fn describe_then_resolve_finds_the_same_file_elsewhere() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("vmlinuz"), b"kernel bytes").unwrap();
        std::fs::write(b.path().join("vmlinuz"), b"kernel bytes").unwrap();
        let desc = describe_machine(&spec(a.path().join("vmlinuz"))).unwrap();
        std::fs::remove_file(a.path().join("vmlinuz")).unwrap();
        let resolved = resolve_machine(&desc, &[b.path().to_owned()]).unwrap();
        assert_eq!(resolved.kernel.unwrap(), b.path().join("vmlinuz"));
        assert_eq!(resolved.memory_mib, 256);
    }

    #[test]
    fn a_different_file_of_the_same_name_is_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("vmlinuz"), b"kernel bytes").unwrap();
        std::fs::write(b.path().join("vmlinuz"), b"other kernel").unwrap();
        let desc = describe_machine(&spec(a.path().join("vmlinuz"))).unwrap();
        std::fs::write(a.path().join("vmlinuz"), b"changed").unwrap();
        let err = resolve_machine(&desc, &[b.path().to_owned()]).unwrap_err();
        assert!(
            err.to_string().contains("no copy of boot file vmlinuz"),
            "{err}"
        );
    }

    #[test]
    fn missing_boot_file_is_a_read_error() {
        let err = describe_machine(&spec(PathBuf::from("/nonexistent/vmlinuz"))).unwrap_err();
        assert!(matches!(err, MachineError::Read { .. }));
    }
}
