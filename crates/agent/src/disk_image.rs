//! A VM's disk image as the agent accepts it: an existing raw image. The
//! agent never creates one (a mistyped path would boot the guest on an
//! empty disk), and refuses formats it cannot serve page by page (qcow2).

use std::io::Read;
use std::path::Path;

/// The first bytes of a qcow2 image (`QFI\xfb`, both versions 2 and 3).
pub const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";

/// What the first bytes of an image say it is (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// No header of a known format: taken as raw.
    Raw,
    /// A qcow2 image.
    Qcow2,
}

/// Recognises an image by its first bytes.
pub fn image_format(head: &[u8]) -> ImageFormat {
    if head.starts_with(&QCOW2_MAGIC) {
        ImageFormat::Qcow2
    } else {
        ImageFormat::Raw
    }
}

/// Why a VM's disk image is refused.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// No file at the path.
    #[error(
        "disk image {path} of VM {vm} does not exist: the agent never creates a disk (a \
         mistyped path would give the guest an empty one); fix `disk` in the configuration, \
         or create an empty raw image on purpose (`truncate -s 8G {path}`)"
    )]
    Missing {
        /// The VM.
        vm: String,
        /// The configured path.
        path: String,
    },
    /// A qcow2 image.
    #[error(
        "disk image {path} of VM {vm} is qcow2: jettison serves raw images only (the server \
         fetches the disk's blocks at their offsets); convert it with \
         `qemu-img convert -O raw {path} <new>.img` and point `disk` at the result"
    )]
    Qcow2 {
        /// The VM.
        vm: String,
        /// The configured path.
        path: String,
    },
    /// Not a regular file, empty, or unreadable.
    #[error("disk image {path} of VM {vm}: {why}")]
    Unusable {
        /// The VM.
        vm: String,
        /// The configured path.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// Checks that `path` is an existing, non-empty raw image; gives its size.
pub fn check_disk(vm: &str, path: &Path) -> Result<u64, DiskError> {
    let p = path.display().to_string();
    let unusable = |why: String| DiskError::Unusable {
        vm: vm.into(),
        path: p.clone(),
        why,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DiskError::Missing {
                vm: vm.into(),
                path: p,
            })
        }
        Err(e) => return Err(unusable(format!("cannot stat it: {e}"))),
    };
    if !meta.is_file() {
        return Err(unusable("not a regular file".into()));
    }
    if meta.len() == 0 {
        return Err(unusable(
            "empty (0 bytes): give it the disk's size (`truncate -s 8G`)".into(),
        ));
    }
    let mut head = [0u8; 4];
    let mut file =
        std::fs::File::open(path).map_err(|e| unusable(format!("cannot open it: {e}")))?;
    let n = file
        .read(&mut head)
        .map_err(|e| unusable(format!("cannot read it: {e}")))?;
    match image_format(&head[..n]) {
        ImageFormat::Raw => Ok(meta.len()),
        ImageFormat::Qcow2 => Err(DiskError::Qcow2 {
            vm: vm.into(),
            path: p,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qcow2_is_known_by_its_magic_and_anything_else_is_raw() {
        assert_eq!(image_format(b"QFI\xfb\x00\x00\x00\x03"), ImageFormat::Qcow2);
        assert_eq!(image_format(b"QFI\xfb"), ImageFormat::Qcow2);
        assert_eq!(image_format(b"QFI"), ImageFormat::Raw);
        assert_eq!(image_format(b"QFI\xfa\x00"), ImageFormat::Raw);
        assert_eq!(image_format(&[0; 512]), ImageFormat::Raw);
        assert_eq!(image_format(b""), ImageFormat::Raw);
    }

    #[test]
    fn a_missing_disk_is_refused_and_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("typo.img");
        let e = check_disk("vm", &path).unwrap_err();
        assert!(matches!(e, DiskError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert!(!path.exists(), "the check created the disk");
    }

    #[test]
    fn a_raw_image_gives_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.img");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(3 << 20)
            .unwrap();
        assert_eq!(check_disk("vm", &path).unwrap(), 3 << 20);
    }

    #[test]
    fn a_qcow2_image_is_refused_with_the_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.qcow2");
        let mut bytes = QCOW2_MAGIC.to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 3]);
        bytes.resize(4096, 0);
        std::fs::write(&path, bytes).unwrap();
        let e = check_disk("vm", &path).unwrap_err();
        assert!(matches!(e, DiskError::Qcow2 { .. }), "{e}");
        assert!(e.to_string().contains("qemu-img convert -O raw"), "{e}");
    }

    #[test]
    fn an_empty_file_or_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.img");
        std::fs::write(&empty, b"").unwrap();
        let e = check_disk("vm", &empty).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = check_disk("vm", dir.path()).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
