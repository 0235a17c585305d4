//! Test fixtures: an in-memory page source and a mounted filesystem that
//! cleans up (unmount, temp dir) on drop, also when a test fails.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use jettison_lazymem::{FetchError, LazyMemMount, MountOptions, PageSource, VmMemory, PAGE_SIZE};

/// Deterministic content of byte `i`: never zero, differs from page to page.
pub fn pattern(size: u64) -> Vec<u8> {
    (0..size)
        .map(|i| (((i.wrapping_mul(2_654_435_761) >> 7) ^ (i / PAGE_SIZE)) as u8) | 1)
        .collect()
}

/// Stands in for the desktop's state server: serves `data`, counts calls,
/// fails the first `fail_first` calls, answers after `delay`.
#[derive(Debug)]
pub struct TestSource {
    pub data: Arc<Vec<u8>>,
    pub calls: AtomicU64,
    pub fail_first: u64,
    pub delay: Duration,
    /// Every request, in order: (offset, len).
    pub requests: Mutex<Vec<(u64, u64)>>,
}

impl TestSource {
    pub fn new(size: u64) -> Arc<Self> {
        Self::with(size, 0, Duration::ZERO)
    }

    pub fn with(size: u64, fail_first: u64, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            data: Arc::new(pattern(size)),
            calls: AtomicU64::new(0),
            fail_first,
            delay,
            requests: Mutex::new(Vec::new()),
        })
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn page(&self, page: u64) -> &[u8] {
        &self.data[(page * PAGE_SIZE) as usize..((page + 1) * PAGE_SIZE) as usize]
    }
}

impl PageSource for TestSource {
    fn fetch(&self, offset: u64, len: u64) -> BoxFuture<'static, Result<Vec<u8>, FetchError>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.requests.lock().unwrap().push((offset, len));
        let fail = n < self.fail_first;
        let (data, delay) = (self.data.clone(), self.delay);
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if fail {
                return Err(FetchError::new(format!("injected failure #{}", n + 1)));
            }
            Ok(data[offset as usize..(offset + len) as usize].to_vec())
        })
    }
}

/// A mounted filesystem in a fresh temp dir. Fields drop in order: the
/// mount first (unmount), then the temp dir, then the runtime.
pub struct Fixture {
    pub mount: LazyMemMount,
    pub dir: tempfile::TempDir,
    pub rt: tokio::runtime::Runtime,
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "jettison_lazymem=info".into()),
        )
        .try_init();
}

impl Fixture {
    pub fn new(opts: MountOptions) -> Self {
        init_tracing();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::Builder::new()
            .prefix("lazymem-test-")
            .tempdir()
            .unwrap();
        let mount =
            LazyMemMount::mount(&dir.path().join("mnt"), rt.handle().clone(), opts).unwrap();
        Self { mount, dir, rt }
    }

    pub fn replica(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.replica"))
    }

    pub fn add(&self, name: &str, source: &Arc<TestSource>) -> Arc<VmMemory> {
        let size = source.data.len() as u64;
        self.mount
            .add_vm(name, size, &self.replica(name), source.clone())
            .unwrap()
    }
}

/// Empties the kernel's page cache, so that reads reach the daemon again.
pub fn drop_caches() {
    std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
}
