//! Pulling the rest of a VM's memory on a real FUSE mount (run as root):
//! every page fetched once, faults served meanwhile, failures retried, a
//! removed VM's pull stopped.

mod common;

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, TestSource};
use jettison_lazymem::{MountOptions, PullError, PAGE_SIZE};

const P: u64 = PAGE_SIZE;

fn read_page(path: &std::path::Path, page: u64) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap();
    let mut buf = vec![0; P as usize];
    file.read_exact_at(&mut buf, page * P).unwrap();
    buf
}

#[test]
fn a_pull_fetches_every_absent_page_once_while_faults_go_on() {
    let fx = Fixture::new(MountOptions::default());
    let pages = 2048; // 8 MiB
    let src = TestSource::with(pages * P, 3, Duration::from_millis(2));
    let vm = fx.add("vm-pull", &src);
    let path = fx.mount.file_path("vm-pull");
    // a written page is never fetched (nor overwritten)
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&vec![0xAB; P as usize], 9 * P).unwrap();
    assert_eq!(vm.absent_pages(), pages - 1);

    let progress = Arc::new(AtomicU64::new(0));
    let seen = progress.clone();
    let pull = {
        let vm = vm.clone();
        fx.rt.spawn(async move {
            vm.pull_absent(16 << 20, |b| seen.store(b, Ordering::SeqCst))
                .await
        })
    };
    // faults during the pull are served, from anywhere in the file
    for p in [2000, 1500, 3, 1024] {
        assert_eq!(read_page(&path, p), src.page(p), "page {p}");
    }
    let done = fx.rt.block_on(pull).unwrap().unwrap();

    assert_eq!(vm.absent_pages(), 0);
    let stats = vm.stats();
    assert_eq!(stats.pages_fetched, pages - 1, "every page fetched once");
    assert_eq!(stats.bytes_fetched, (pages - 1) * P);
    assert!(
        stats.fetch_retries >= 3,
        "the pull's failed fetches were retried"
    );
    // the four faults may have fetched their pages before the pull did
    assert!((pages - 5..pages).contains(&done.pages), "{done:?}");
    assert_eq!(progress.load(Ordering::SeqCst), done.pages * P);
    assert!(done.fetches >= done.pages / 128);
    assert!(
        vm.used_pages().len() <= 4,
        "pulled pages are not a working set"
    );
    // every page reads from the replica now: no more fetches
    let calls = src.calls();
    for p in (0..pages).step_by(97) {
        let want = if p == 9 {
            vec![0xAB; P as usize]
        } else {
            src.page(p).to_vec()
        };
        assert_eq!(read_page(&path, p), want, "page {p}");
    }
    assert_eq!(
        read_page(&path, 9),
        vec![0xAB; P as usize],
        "the write was kept"
    );
    assert_eq!(src.calls(), calls);
}

#[test]
fn removing_the_vm_stops_its_pull() {
    let fx = Fixture::new(MountOptions::default());
    let pages = 4096; // 16 MiB at 1 MiB/s: 16 s unless stopped
    let src = TestSource::new(pages * P);
    let vm = fx.add("vm-gone", &src);
    let pull = {
        let vm = vm.clone();
        fx.rt
            .spawn(async move { vm.pull_absent(1 << 20, |_| ()).await })
    };
    std::thread::sleep(Duration::from_millis(300));
    fx.mount.remove_vm("vm-gone").unwrap();
    let r = fx.rt.block_on(pull).unwrap();
    assert!(matches!(r, Err(PullError::Cancelled)), "{r:?}");
    assert!(vm.absent_pages() > 0);
}
