use super::*;

fn page(kind: FileKind, page: u64, byte: u8) -> Page {
    Page {
        kind,
        page,
        data: vec![byte; PAGE_SIZE as usize],
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn no_checkpoint_loads_nothing() {
    let root = tempfile::tempdir().unwrap();
    let s = CheckpointStore::open(root.path(), "vm").unwrap();
    assert!(s.manifest().unwrap().is_none());
    assert!(s.load().unwrap().is_none());
    assert!(CheckpointStore::existing(root.path(), "vm")
        .unwrap()
        .is_none());
}

#[test]
fn later_checkpoints_overlay_earlier_ones() {
    let root = tempfile::tempdir().unwrap();
    let s = CheckpointStore::open(root.path(), "vm").unwrap();
    let (m0, b0) = s.commit(10, false, b"state0", &[], true).unwrap();
    assert_eq!((m0.seq, m0.segments.len(), b0), (0, 0, 6));
    let pages = [page(FileKind::Memory, 1, 1), page(FileKind::Disk, 1, 2)];
    let (m1, b1) = s.commit(20, false, b"state1", &pages, false).unwrap();
    assert_eq!(m1.seq, 1);
    assert_eq!(b1, 6 + 8 + 2 * RECORD);
    let (m2, _) = s
        .commit(
            30,
            false,
            b"state2",
            &[page(FileKind::Memory, 1, 9), page(FileKind::Memory, 7, 3)],
            false,
        )
        .unwrap();
    assert_eq!(m2.segments.len(), 2);
    assert_eq!(m2.stored_pages(), 4);
    let r = s.load().unwrap().unwrap();
    assert_eq!(r.device_state, b"state2");
    assert_eq!(r.memory.keys().copied().collect::<Vec<_>>(), [1, 7]);
    assert_eq!(r.memory[&1][0], 9, "the later version wins");
    assert_eq!(r.disk[&1][0], 2, "disk and memory are apart");
    assert_eq!(
        files(&s.dir),
        ["manifest.json", "seg-1", "seg-2", "state-2"],
        "older device states go"
    );
    let (_, found) = CheckpointStore::existing(root.path(), "vm")
        .unwrap()
        .unwrap();
    assert_eq!(found, m2);
}

#[test]
fn a_full_checkpoint_replaces_the_segments() {
    let root = tempfile::tempdir().unwrap();
    let s = CheckpointStore::open(root.path(), "vm").unwrap();
    s.commit(1, false, b"a", &[page(FileKind::Memory, 1, 1)], false)
        .unwrap();
    let (m, _) = s
        .commit(2, false, b"b", &[page(FileKind::Memory, 2, 2)], true)
        .unwrap();
    assert_eq!(m.segments, [("seg-1".to_string(), 1)]);
    let r = s.load().unwrap().unwrap();
    assert_eq!(r.memory.keys().copied().collect::<Vec<_>>(), [2]);
}

#[test]
fn many_segments_are_merged_with_the_latest_pages() {
    let root = tempfile::tempdir().unwrap();
    let s = CheckpointStore::open(root.path(), "vm").unwrap();
    for i in 0..=(MAX_SEGMENTS as u64 + 1) {
        let pages = [
            page(FileKind::Memory, 5, i as u8),
            page(FileKind::Memory, 100 + i, 1),
        ];
        s.commit(i, false, format!("s{i}").as_bytes(), &pages, false)
            .unwrap();
    }
    let m = s.manifest().unwrap().unwrap();
    assert!(m.segments.len() <= MAX_SEGMENTS, "{:?}", m.segments);
    assert!(m.segments[0].0.starts_with("merged-"), "{:?}", m.segments);
    let r = s.load().unwrap().unwrap();
    assert_eq!(r.memory[&5][0], MAX_SEGMENTS as u8 + 1);
    assert_eq!(r.memory.len(), MAX_SEGMENTS + 3);
    assert_eq!(r.device_state, format!("s{}", MAX_SEGMENTS + 1).as_bytes());
}

#[test]
fn a_checkpoint_cut_short_leaves_the_last_complete_one() {
    let root = tempfile::tempdir().unwrap();
    let s = CheckpointStore::open(root.path(), "vm").unwrap();
    s.commit(1, false, b"good", &[page(FileKind::Memory, 3, 3)], false)
        .unwrap();
    // A crash after the next segment and state were written, before the manifest.
    std::fs::write(s.dir.join("seg-1"), b"JTSCKPT1 half a record").unwrap();
    std::fs::write(s.dir.join("state-1"), b"newer").unwrap();
    let r = s.load().unwrap().unwrap();
    assert_eq!(r.device_state, b"good");
    assert_eq!(r.memory[&3][0], 3);
    s.clean().unwrap();
    assert_eq!(files(&s.dir), ["manifest.json", "seg-0", "state-0"]);
}

#[test]
fn a_damaged_segment_is_an_error_not_a_silent_rollback() {
    let root = tempfile::tempdir().unwrap();
    let s = CheckpointStore::open(root.path(), "vm").unwrap();
    s.commit(1, false, b"x", &[page(FileKind::Disk, 3, 3)], false)
        .unwrap();
    let seg = s.dir.join("seg-0");
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let e = s.load().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    assert!(e.to_string().contains("seg-0"), "{e}");
}

#[test]
fn removing_takes_every_file() {
    let root = tempfile::tempdir().unwrap();
    let s = CheckpointStore::open(root.path(), "vm").unwrap();
    s.commit(1, false, b"x", &[page(FileKind::Memory, 0, 0)], false)
        .unwrap();
    CheckpointStore::remove(root.path(), "vm").unwrap();
    assert!(!root.path().join("vm").exists());
    CheckpointStore::remove(root.path(), "vm").unwrap();
}

/// A checkpoint onto a full disk (root: a loop-mounted ext4) fails with
/// ENOSPC, leaves the previous checkpoint complete and loadable, and holds
/// no space afterwards; once there is room the next one succeeds.
#[test]
fn a_full_disk_fails_a_checkpoint_cleanly() {
    if !jettison_testbed::is_root() {
        eprintln!("skipped: needs root (loop mount)");
        return;
    }
    let disk = jettison_testbed::LoopFs::create("ckpt", 32).unwrap();
    let s = CheckpointStore::open(disk.path(), "vm").unwrap();
    let first = [page(FileKind::Memory, 3, 3)];
    s.commit(10, false, b"state0", &first, true).unwrap();
    let before = files(&disk.path().join("vm"));
    // Something else fills the disk.
    let filler = disk.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![1u8; 1 << 20];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
    while std::io::Write::write_all(&mut f, &block[..4096]).is_ok() {}
    let _ = f.sync_all();
    let many: Vec<Page> = (0..64).map(|p| page(FileKind::Disk, p, 9)).collect();
    let err = s.commit(20, false, b"state1", &many, false).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(28), "{err}");
    assert_eq!(
        files(&disk.path().join("vm")),
        before,
        "the failed one left files"
    );
    let restored = s.load().unwrap().unwrap();
    assert_eq!(restored.device_state, b"state0");
    assert_eq!(restored.memory.keys().copied().collect::<Vec<_>>(), [3]);
    assert!(restored.disk.is_empty());
    drop(f);
    std::fs::remove_file(&filler).unwrap();
    let (m, _) = s.commit(30, false, b"state2", &many, true).unwrap();
    assert_eq!(m.seq, 1);
    assert_eq!(s.load().unwrap().unwrap().disk.len(), 64);
}
