//! Prefetch policies on a real FUSE mount (run as root): the recorded
//! working set fetched at a VM's first miss, after that miss's reply.

mod common;

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::{Fixture, TestSource};
use jettison_lazymem::{MountOptions, PrefetchConfig, PAGE_SIZE};

const P: u64 = PAGE_SIZE;

fn read_page(path: &std::path::Path, page: u64) -> (Vec<u8>, Duration) {
    let file = std::fs::File::open(path).unwrap();
    let mut buf = vec![0; P as usize];
    let t = Instant::now();
    file.read_exact_at(&mut buf, page * P).unwrap();
    (buf, t.elapsed())
}

fn combined() -> MountOptions {
    MountOptions {
        prefetch: PrefetchConfig::Combined {
            pages: 4,
            max_pages: 100,
            periods: 4,
        },
        ..MountOptions::default()
    }
}

#[test]
fn first_miss_replies_then_fetches_the_working_set_in_runs() {
    let fx = Fixture::new(combined());
    let delay = Duration::from_millis(300);
    let src = TestSource::with(256 * P, 0, delay);
    // Two earlier periods. Page 49 is in the first miss's group, so it is
    // present by the time the working set is fetched and must not be
    // fetched again.
    let history = vec![vec![10, 11, 12, 13, 100], vec![40, 41, 13, 12, 49]];
    let vm = fx
        .mount
        .add_vm_with_history(
            "vm-ws",
            256 * P,
            &fx.replica("vm-ws"),
            src.clone(),
            &history,
        )
        .unwrap();
    let path = fx.mount.file_path("vm-ws");

    // The first miss: its group (48..52) first, answered after one fetch.
    let (buf, took) = read_page(&path, 50);
    assert_eq!(buf, src.page(50));
    assert!(
        took < delay * 2,
        "the first miss waited for the working set: {took:?}"
    );
    // A fault on a working-set page in flight waits for its run: no second fetch.
    let (buf, took) = read_page(&path, 100);
    assert_eq!(buf, src.page(100));
    assert!(took >= delay, "page 100 was not waited for: {took:?}");
    let want = vec![
        (48 * P, 4 * P),
        (10 * P, 4 * P),
        (40 * P, 2 * P),
        (100 * P, P),
    ];
    assert_eq!(*src.requests.lock().unwrap(), want);

    // Later misses fetch their group only.
    let (buf, _) = read_page(&path, 61);
    assert_eq!(buf, src.page(61));
    assert_eq!(src.calls(), 5);
    assert_eq!(src.requests.lock().unwrap()[4], (60 * P, 4 * P));

    // Each page once, never zeros.
    let mut fetched = vm.fetched_pages();
    fetched.sort_unstable();
    let mut expect: Vec<u64> = [48, 49, 50, 51, 10, 11, 12, 13, 40, 41, 100, 60, 61, 62, 63].into();
    expect.sort_unstable();
    assert_eq!(fetched, expect);
    for page in [10, 11, 12, 13, 40, 41, 49] {
        let mut b = vec![0; P as usize];
        vm.read_page(page, &mut b).unwrap();
        assert_eq!(b, src.page(page), "page {page}");
    }
    assert_eq!(src.calls(), 5);

    // Used: the pages the VM read (or wrote), not those fetched ahead.
    let mut used = vm.used_pages();
    used.sort_unstable();
    assert_eq!(used, vec![50, 61, 100]);
}

#[test]
fn without_history_or_with_a_neighbourhood_policy_nothing_more_is_fetched() {
    let fx = Fixture::new(combined());
    let src = TestSource::new(64 * P);
    fx.add("vm-new", &src);
    let path = fx.mount.file_path("vm-new");
    assert_eq!(read_page(&path, 5).0, src.page(5));
    assert_eq!(*src.requests.lock().unwrap(), vec![(4 * P, 4 * P)]);

    let fx = Fixture::new(MountOptions {
        prefetch: PrefetchConfig::Neighbourhood { pages: 4 },
        ..MountOptions::default()
    });
    let src = TestSource::new(64 * P);
    fx.mount
        .add_vm_with_history(
            "vm-nb",
            64 * P,
            &fx.replica("vm-nb"),
            src.clone(),
            &[vec![30]],
        )
        .unwrap();
    assert_eq!(read_page(&fx.mount.file_path("vm-nb"), 5).0, src.page(5));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(*src.requests.lock().unwrap(), vec![(4 * P, 4 * P)]);
}

#[test]
fn a_failing_source_delays_the_working_set_but_never_zero_fills() {
    let fx = Fixture::new(MountOptions {
        prefetch: PrefetchConfig::WorkingSet {
            max_pages: 10,
            periods: 1,
        },
        ..MountOptions::default()
    });
    // The first fetch (the miss) succeeds after two failures; the working
    // set arrives after.
    let src = TestSource::with(32 * P, 2, Duration::ZERO);
    let vm = fx
        .mount
        .add_vm_with_history(
            "vm-flaky",
            32 * P,
            &fx.replica("vm-flaky"),
            src.clone(),
            &[vec![7, 8, 20]],
        )
        .unwrap();
    let path = fx.mount.file_path("vm-flaky");
    assert_eq!(read_page(&path, 3).0, src.page(3));
    for page in [7, 8, 20] {
        assert_eq!(read_page(&path, page).0, src.page(page));
    }
    assert_eq!(vm.stats().fetch_retries, 2);
    let mut fetched = vm.fetched_pages();
    fetched.sort_unstable();
    assert_eq!(fetched, vec![3, 7, 8, 20]);
    assert_eq!(src.calls(), 2 + 3);
}
