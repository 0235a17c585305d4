//! Real-FUSE tests of the lazy memory filesystem (run as root).

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{drop_caches, Fixture, TestSource};
use jettison_lazymem::{LazyMemError, MountOptions, PrefetchConfig, PAGE_SIZE};

#[test]
fn whole_file_read_fetches_each_page_once() {
    let fx = Fixture::new(MountOptions::default());
    let pages = 1024;
    let src = TestSource::new(pages * PAGE_SIZE);
    let vm = fx.add("vm-read", &src);
    let path = fx.mount.file_path("vm-read");

    let data = std::fs::read(&path).unwrap();
    assert!(data == *src.data, "content differs from the source");
    let s = vm.stats();
    eprintln!(
        "whole-file read of {pages} pages: faults {} fetches {} p50 {} us p90 {} us p99 {} us max {} us mean {:.1} us",
        s.faults, src.calls(), s.fault_latency_us.p50, s.fault_latency_us.p90,
        s.fault_latency_us.p99, s.fault_latency_us.max, s.fault_latency_us.mean
    );
    assert_eq!(s.pages_fetched, pages);
    assert_eq!(s.bytes_fetched, pages * PAGE_SIZE);
    // Readahead is off: every fault is a READ of one page.
    assert_eq!(s.faults, pages);
    assert_eq!(s.fault_latency_us.count, pages);
    assert_eq!(
        src.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.1 != PAGE_SIZE)
            .count(),
        0
    );
    let mut order = vm.fetched_pages();
    order.sort_unstable();
    assert_eq!(order, (0..pages).collect::<Vec<_>>());

    // Again: served by the page cache, nothing fetched.
    assert!(std::fs::read(&path).unwrap() == *src.data);
    // After the kernel dropped its clean pages: served by the replica.
    drop_caches();
    let hits_before = vm.stats().replica_hits;
    assert!(std::fs::read(&path).unwrap() == *src.data);
    let s = vm.stats();
    assert_eq!((s.pages_fetched, src.calls()), (pages, pages));
    assert!(
        s.replica_hits > hits_before,
        "re-read did not reach the replica"
    );
    assert!((0..pages).all(|p| vm.is_present(p)));
    assert!(vm.dirty_pages().is_empty());
}

#[test]
fn write_marks_dirty_and_patches_absent_pages() {
    let fx = Fixture::new(MountOptions::default());
    let src = TestSource::new(64 * PAGE_SIZE);
    let vm = fx.add("vm-write", &src);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(fx.mount.file_path("vm-write"))
        .unwrap();

    // A whole page: written without fetching.
    file.write_all_at(&[0xAB; PAGE_SIZE as usize], 5 * PAGE_SIZE)
        .unwrap();
    file.sync_all().unwrap();
    assert_eq!(vm.dirty_pages(), vec![5]);
    assert_eq!(src.calls(), 0);
    let mut buf = vec![0; PAGE_SIZE as usize];
    vm.read_page(5, &mut buf).unwrap();
    assert!(buf.iter().all(|b| *b == 0xAB));
    assert!(!vm.is_present(4) && !vm.is_present(6));
    assert!(vm.read_page(6, &mut buf).is_err());

    // Part of an absent page: fetched first, then patched.
    file.write_all_at(b"0123456789", 9 * PAGE_SIZE + 100)
        .unwrap();
    file.sync_all().unwrap();
    assert_eq!(vm.dirty_pages(), vec![5, 9]);
    assert_eq!(vm.fetched_pages(), vec![9]);
    vm.read_page(9, &mut buf).unwrap();
    let mut want = src.page(9).to_vec();
    want[100..110].copy_from_slice(b"0123456789");
    assert_eq!(buf, want);

    // Reads through the mount see the writes, without fetching them again.
    drop_caches();
    let mut back = vec![0; 2 * PAGE_SIZE as usize];
    file.read_exact_at(&mut back, 8 * PAGE_SIZE).unwrap();
    assert_eq!(&back[..PAGE_SIZE as usize], src.page(8));
    assert_eq!(&back[PAGE_SIZE as usize..], &want[..]);
    assert_eq!(vm.fetched_pages(), vec![9, 8]);
    assert_eq!(vm.stats().dirty_pages, 2);

    // Writing past the end fails like on a full fixed-size file.
    assert!(file.write_all_at(b"x", 64 * PAGE_SIZE).is_err());
}

#[test]
fn mmap_writes_come_back_as_dirty_pages() {
    let fx = Fixture::new(MountOptions::default());
    let src = TestSource::new(64 * PAGE_SIZE);
    let vm = fx.add("vm-mmap", &src);
    let path = fx.mount.file_path("vm-mmap");
    let writes: [(u64, &str); 5] = [
        (10, "AA"),
        (3 * 4096, "BB"),
        (3 * 4096 + 100, "CC"),
        (17 * 4096 + 4094, "DD"),
        (40 * 4096 + 1, "EE"),
    ];
    let script = format!(
        "import mmap\nf = open({path:?}, 'r+b')\nm = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)\n\
         for off, s in {writes:?}:\n    m[off:off + len(s)] = s.encode()\nm.flush()\nm.close()\nf.close()\n",
        path = path.to_str().unwrap(),
        writes = writes,
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .sync_all()
        .unwrap();

    assert_eq!(vm.dirty_pages(), vec![0, 3, 17, 40]);
    // Each touched page was faulted in (one page per fault), nothing else.
    let mut fetched = vm.fetched_pages();
    fetched.sort_unstable();
    assert_eq!(fetched, vec![0, 3, 17, 40]);
    let mut buf = vec![0; PAGE_SIZE as usize];
    for page in [0, 3, 17, 40] {
        let mut want = src.page(page).to_vec();
        for (off, s) in writes.iter().filter(|(o, _)| o / PAGE_SIZE == page) {
            let at = (off % PAGE_SIZE) as usize;
            want[at..at + s.len()].copy_from_slice(s.as_bytes());
        }
        vm.read_page(page, &mut buf).unwrap();
        assert_eq!(buf, want, "page {page}");
    }
}

#[test]
fn failing_source_is_retried_never_zero_filled() {
    let fx = Fixture::new(MountOptions::default());
    let src = TestSource::with(16 * PAGE_SIZE, 3, Duration::ZERO);
    let vm = fx.add("vm-flaky", &src);
    let file = std::fs::File::open(fx.mount.file_path("vm-flaky")).unwrap();
    let mut buf = vec![0; PAGE_SIZE as usize];
    file.read_exact_at(&mut buf, 2 * PAGE_SIZE).unwrap();
    assert_eq!(buf, src.page(2));
    let s = vm.stats();
    assert_eq!((s.fetch_retries, s.pages_fetched, src.calls()), (3, 1, 4));
    // 50 + 100 + 200 ms of backoff.
    assert!(
        s.fault_latency_us.max >= 350_000,
        "{:?}",
        s.fault_latency_us
    );
}

/// Reads one page per thread, all at once; returns what each thread read.
fn concurrent_reads(path: &std::path::Path, pages: &[u64]) -> Vec<Vec<u8>> {
    let barrier = Arc::new(Barrier::new(pages.len()));
    let threads: Vec<_> = pages
        .iter()
        .map(|&page| {
            let (path, barrier) = (path.to_owned(), barrier.clone());
            std::thread::spawn(move || {
                let file = std::fs::File::open(path).unwrap();
                let mut buf = vec![0; PAGE_SIZE as usize];
                barrier.wait();
                file.read_exact_at(&mut buf, page * PAGE_SIZE).unwrap();
                buf
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn concurrent_misses_share_one_fetch() {
    let fx = Fixture::new(MountOptions {
        prefetch: PrefetchConfig::Neighbourhood { pages: 4 },
        ..MountOptions::default()
    });
    let src = TestSource::with(64 * PAGE_SIZE, 0, Duration::from_millis(200));
    let vm = fx.add("vm-conc", &src);
    let path = fx.mount.file_path("vm-conc");

    // The same page from 8 threads.
    for buf in concurrent_reads(&path, &[7; 8]) {
        assert_eq!(buf, src.page(7));
    }
    assert_eq!(src.calls(), 1);
    assert_eq!(vm.fetched_pages(), vec![4, 5, 6, 7]);

    // Different pages of one fetch group: separate FUSE READs, one fetch.
    let got = concurrent_reads(&path, &[8, 9, 10, 11, 9, 10]);
    for (buf, page) in got.iter().zip([8, 9, 10, 11, 9, 10]) {
        assert_eq!(buf, src.page(page));
    }
    assert_eq!(src.calls(), 2);
    assert_eq!(
        src.requests.lock().unwrap()[1],
        (8 * PAGE_SIZE, 4 * PAGE_SIZE)
    );
    let s = vm.stats();
    assert_eq!(s.pages_fetched, 8);
    assert!(s.faults >= 2);
}

#[test]
fn names_sizes_eof_and_metadata() {
    let fx = Fixture::new(MountOptions::default());
    let src = TestSource::new(8 * PAGE_SIZE);
    for bad in ["", "../x", "x/y", "a b", ".x", "x.", "a..b"] {
        let err = fx
            .mount
            .add_vm(bad, 8 * PAGE_SIZE, &fx.replica("bad"), src.clone());
        assert!(
            matches!(err, Err(LazyMemError::BadName(_))),
            "{bad:?}: {err:?}"
        );
    }
    for size in [0, 4097, PAGE_SIZE * 3 + 1] {
        let err = fx
            .mount
            .add_vm("sized", size, &fx.replica("sized"), src.clone());
        assert!(
            matches!(err, Err(LazyMemError::BadSize(_))),
            "{size}: {err:?}"
        );
    }
    let vm = fx.add("vm-meta", &src);
    let err = fx
        .mount
        .add_vm("vm-meta", 8 * PAGE_SIZE, &fx.replica("other"), src.clone());
    assert!(matches!(err, Err(LazyMemError::Exists(_))));
    assert!(matches!(
        fx.mount.remove_vm("nope"),
        Err(LazyMemError::NotFound(_))
    ));

    let path = fx.mount.file_path("vm-meta");
    let md = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (md.len(), md.mode() & 0o7777, md.uid(), md.is_file()),
        (8 * PAGE_SIZE, 0o600, 0, true)
    );
    let names: Vec<_> = std::fs::read_dir(fx.mount.mountpoint())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["vm-meta.mem"]);
    // A suffixed name (a VM's disk) is a file of its own beside it, and
    // goes on its own.
    fx.add("vm-meta.disk", &src);
    let mut names: Vec<_> = std::fs::read_dir(fx.mount.mountpoint())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, vec!["vm-meta.disk.mem", "vm-meta.mem"]);
    assert!(fx.mount.vm("vm-meta.disk").is_some());
    fx.mount.remove_vm("vm-meta.disk").unwrap();
    assert!(fx.mount.vm("vm-meta").is_some(), "its VM's file stays");

    // Reads at and across the end behave like a normal file.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut buf = vec![0; PAGE_SIZE as usize];
    assert_eq!(file.read_at(&mut buf, 8 * PAGE_SIZE).unwrap(), 0);
    assert_eq!(file.read_at(&mut buf, 100 * PAGE_SIZE).unwrap(), 0);
    assert_eq!(file.read_at(&mut buf, 8 * PAGE_SIZE - 100).unwrap(), 100);
    assert_eq!(&buf[..100], &src.page(7)[PAGE_SIZE as usize - 100..]);

    // Truncation: only to the same size.
    file.set_len(8 * PAGE_SIZE).unwrap();
    let err = file.set_len(4 * PAGE_SIZE).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(nix::libc::EPERM));
    drop(file);

    // Removal: the file disappears and the replica is deleted.
    fx.mount.remove_vm("vm-meta").unwrap();
    assert!(!fx.replica("vm-meta").exists());
    assert!(std::fs::metadata(&path).is_err());
    assert_eq!(vm.stats().pages_fetched, 1);
}
