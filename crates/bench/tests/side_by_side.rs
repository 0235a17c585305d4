//! One guest size measured for real: a 256 MiB guest on a 1 Gbit/s test LAN
//! moved by jettison and by QEMU precopy and postcopy, with the fault test
//! and the server memory; checks that the figures are of the right kind
//! (not their speed: this machine is shared) and that nothing is left
//! behind.

mod common;

use jettison_bench::run::{one_size, Extra};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_guest_moved_three_ways_on_a_shaped_lan() {
    let work = common::work_dir("bench-test");
    let settings = common::settings(&work, 200, 256);
    let out = one_size(&settings, 256, 1000, Extra::Faults).await.unwrap();
    let _ = std::fs::remove_dir_all(&work);

    let m = &out.migration;
    assert!(m.jettison_bytes > 0 && m.jettison_bytes < 1 << 20, "{m:?}");
    // Three quarters of 256 MiB hold data: a full migration sends them.
    for full in [&m.precopy, &m.postcopy] {
        assert!(full.bytes > 150 << 20, "{full:?}");
        assert!(full.normal_pages > 150 * 256, "{full:?}");
    }
    assert!(m.postcopy.latency_ms <= m.postcopy.total_ms, "{m:?}");
    assert!(m.speedup_vs_precopy > 1.0, "{m:?}");

    let r = &out.reintegration;
    assert!(r.dirty_pct > 0.0 && r.dirty_pct < 50.0, "{r:?}");
    assert!(r.jettison_bytes < r.full.bytes, "{r:?}");

    let f = out.faults.expect("fault test asked for");
    assert_eq!(f.latency_us.count, 200);
    assert!(f.latency_us.p50 > 0.0 && f.latency_us.p50 <= f.latency_us.p99);
    assert!(
        f.server_faults >= 150,
        "most sampled pages were misses: {f:?}"
    );
    assert!(f.breakdown_us["3_of_which_tcp_p50"] > 0.0, "{f:?}");
    assert_eq!(f.sequential.latency_us.count, 256);
    assert_eq!(f.random.bytes, 256 * 4096);

    let mem = &out.memory;
    assert!(mem.replica_bytes > 0 && mem.qemu_rss_bytes > 0, "{mem:?}");
    assert!(mem.fraction_of_vm < 1.0, "{mem:?}");
}
