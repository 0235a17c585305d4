//! A VM's virtual hardware as QEMU launches it ([`MachineSpec`]) and as it
//! travels ([`MachineDesc`]). The desktop describes its machine from its own
//! configuration (its boot files are paths it trusts, sent as digests); the
//! server turns a description into a spec with boot files found only by
//! digest in its own image directories ([`BootIndex`]). QEMU arguments
//! never travel: each host adds its own ([`jettison_qemu::LaunchOptions`]).

use std::path::PathBuf;

use jettison_qemu::MachineSpec;
use jettison_wire::{BootFile, MachineDesc};

use crate::images::{digest_file, BootIndex};

/// Why a machine description cannot be made or used on this host.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// A local boot file could not be read.
    #[error("cannot read boot file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A local boot file's path has no file name to show the other host.
    #[error("boot file {0} has no usable file name")]
    BadName(PathBuf),
    /// No file in this host's image directories has the digest sent.
    #[error(
        "this server has no boot file with BLAKE3 digest {digest} (the desktop's {name}) in its \
         image_dirs ({dirs}): copy that file there"
    )]
    UnknownBootFile {
        /// The desktop's name for it.
        name: String,
        /// The digest sent.
        digest: String,
        /// The directories searched.
        dirs: String,
    },
}

fn boot_file(path: &Option<PathBuf>) -> Result<Option<BootFile>, MachineError> {
    let Some(p) = path else { return Ok(None) };
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| jettison_wire::machine::check_boot_name(n).is_ok())
        .ok_or_else(|| MachineError::BadName(p.clone()))?;
    let blake3 = digest_file(p).map_err(|source| MachineError::Read {
        path: p.clone(),
        source,
    })?;
    Ok(Some(BootFile { name, blake3 }))
}

/// Describes a machine for the wire, hashing its boot files (blocking).
pub fn describe_machine(spec: &MachineSpec) -> Result<MachineDesc, MachineError> {
    Ok(MachineDesc {
        memory_mib: spec.memory_mib,
        cpus: spec.cpus,
        kernel: boot_file(&spec.kernel)?,
        initrd: boot_file(&spec.initrd)?,
        append: spec.append.clone(),
        nic_mac: spec.nic_mac,
        disk_bytes: spec.disk_bytes,
    })
}

fn locate(file: &Option<BootFile>, images: &BootIndex) -> Result<Option<PathBuf>, MachineError> {
    file.as_ref()
        .map(|f| images.find(&f.blake3, &f.name))
        .transpose()
}

/// Turns a received description into a launchable spec, each boot file
/// found by digest in `images` (blocking: see [`BootIndex`]).
pub fn resolve_machine(
    desc: &MachineDesc,
    images: &BootIndex,
) -> Result<MachineSpec, MachineError> {
    Ok(MachineSpec {
        memory_mib: desc.memory_mib,
        cpus: desc.cpus,
        kernel: locate(&desc.kernel, images)?,
        initrd: locate(&desc.initrd, images)?,
        append: desc.append.clone(),
        nic_mac: desc.nic_mac,
        disk_bytes: desc.disk_bytes,
    })
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
