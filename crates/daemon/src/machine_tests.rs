//! Boot files by digest: found only as regular files in the image
//! directories; the desktop's paths, symlinks, FIFOs and devices are never
//! opened or hashed for it.

use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, CWD};

use super::*;
use crate::images::{BootIndex, DEFAULT_MAX_BOOT_FILE_BYTES};

fn spec(kernel: PathBuf) -> MachineSpec {
    MachineSpec {
        memory_mib: 256,
        cpus: 1,
        kernel: Some(kernel),
        initrd: None,
        append: Some("console=ttyS0".into()),
        nic_mac: Some("52:54:00:00:00:01".parse().unwrap()),
        disk_bytes: None,
    }
}

fn index(dirs: &[&Path]) -> BootIndex {
    BootIndex::new(
        dirs.iter().map(|d| d.to_path_buf()).collect(),
        DEFAULT_MAX_BOOT_FILE_BYTES,
    )
}

fn digest_of(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[test]
fn describe_then_resolve_finds_the_same_content_in_the_image_dirs() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    std::fs::write(a.path().join("vmlinuz"), b"kernel bytes").unwrap();
    // Another name on the server: the content decides.
    std::fs::write(b.path().join("kernel-6.1"), b"kernel bytes").unwrap();
    let desc = describe_machine(&spec(a.path().join("vmlinuz"))).unwrap();
    let kernel = desc.kernel.clone().unwrap();
    assert_eq!(kernel.name, "vmlinuz");
    assert_eq!(kernel.blake3, digest_of(b"kernel bytes"));
    std::fs::remove_file(a.path().join("vmlinuz")).unwrap();
    let resolved = resolve_machine(&desc, &index(&[b.path()])).unwrap();
    assert_eq!(resolved.kernel.unwrap(), b.path().join("kernel-6.1"));
    assert_eq!(resolved.memory_mib, 256);
    assert_eq!(resolved.nic_mac, desc.nic_mac);
}

#[test]
fn an_unknown_digest_is_refused_naming_it_even_if_the_desktop_path_exists() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    std::fs::write(a.path().join("vmlinuz"), b"kernel bytes").unwrap();
    std::fs::write(b.path().join("vmlinuz"), b"other kernel").unwrap();
    let desc = describe_machine(&spec(a.path().join("vmlinuz"))).unwrap();
    // The desktop's own path exists on this host too: it is not looked at.
    let err = resolve_machine(&desc, &index(&[b.path()])).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, MachineError::UnknownBootFile { .. }),
        "{text}"
    );
    assert!(text.contains(&digest_of(b"kernel bytes")), "{text}");
    assert!(text.contains("image_dirs"), "{text}");
    assert!(text.contains(&b.path().display().to_string()), "{text}");
}

#[test]
fn missing_local_boot_file_is_a_read_error() {
    let err = describe_machine(&spec(PathBuf::from("/nonexistent/vmlinuz"))).unwrap_err();
    assert!(matches!(err, MachineError::Read { .. }));
}

/// Symlinks (to a real kernel, or to /dev/zero), FIFOs and device nodes in
/// an image directory are skipped without being opened: a scan neither
/// blocks on the FIFO nor reads the device, and none is found by digest.
#[test]
fn only_regular_files_are_indexed() {
    let outside = tempfile::tempdir().unwrap();
    let images = tempfile::tempdir().unwrap();
    let real = outside.path().join("secret");
    std::fs::write(&real, b"not a boot file").unwrap();
    std::os::unix::fs::symlink(&real, images.path().join("link")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", images.path().join("zero-link")).unwrap();
    rustix::fs::mkfifoat(CWD, images.path().join("fifo"), Mode::from_raw_mode(0o600)).unwrap();
    let dev = images.path().join("zero");
    let have_dev = rustix::fs::mknodat(
        CWD,
        &dev,
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o600),
        rustix::fs::makedev(1, 5),
    )
    .is_ok();
    if !have_dev {
        eprintln!("not root: no device node in the test");
    }
    std::fs::create_dir(images.path().join("subdir")).unwrap();
    std::fs::write(images.path().join("subdir/nested"), b"nested").unwrap();
    std::fs::write(images.path().join("ok"), b"a kernel").unwrap();

    let idx = index(&[images.path()]);
    let report = idx.scan();
    assert_eq!(report.files, 1, "{report:?}");
    let skipped: Vec<String> = report
        .skipped
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in ["link", "zero-link", "fifo", "subdir"] {
        assert!(skipped.contains(&name.to_string()), "{name}: {report:?}");
    }
    if have_dev {
        assert!(skipped.contains(&"zero".to_string()), "{report:?}");
    }
    assert!(report
        .skipped
        .iter()
        .all(|(_, why)| why.contains("not a regular file")));
    for content in [&b"not a boot file"[..], b"nested", &[0u8; 4096]] {
        let err = idx.find(&digest_of(content), "x").unwrap_err();
        assert!(matches!(err, MachineError::UnknownBootFile { .. }));
    }
    assert_eq!(
        idx.find(&digest_of(b"a kernel"), "x").unwrap(),
        images.path().join("ok")
    );
}

#[test]
fn files_over_the_size_bound_are_not_hashed() {
    let images = tempfile::tempdir().unwrap();
    std::fs::write(images.path().join("big"), [7u8; 100]).unwrap();
    std::fs::write(images.path().join("small"), [7u8; 10]).unwrap();
    let idx = BootIndex::new(vec![images.path().to_owned()], 64);
    let report = idx.scan();
    assert_eq!(report.files, 1);
    assert!(
        report.skipped[0].1.contains("over the 64-byte limit"),
        "{report:?}"
    );
    assert!(idx.find(&digest_of(&[7u8; 100]), "big").is_err());
    assert!(idx.find(&digest_of(&[7u8; 10]), "small").is_ok());
}

#[test]
fn a_miss_rescans_and_changed_files_are_hashed_again() {
    let images = tempfile::tempdir().unwrap();
    let idx = index(&[images.path()]);
    assert_eq!(idx.scan().files, 0);
    // Copied in after the start-up scan: found on the miss.
    std::fs::write(images.path().join("k"), b"v1").unwrap();
    assert_eq!(
        idx.find(&digest_of(b"v1"), "k").unwrap(),
        images.path().join("k")
    );
    // A rescan of unchanged files hashes nothing.
    assert_eq!(idx.scan().hashed, 0);
    // Replaced by other content: the old digest no longer matches it.
    std::fs::remove_file(images.path().join("k")).unwrap();
    std::fs::write(images.path().join("k"), b"version 2").unwrap();
    assert!(idx.find(&digest_of(b"v1"), "k").is_err());
    assert!(idx.find(&digest_of(b"version 2"), "k").is_ok());
}
