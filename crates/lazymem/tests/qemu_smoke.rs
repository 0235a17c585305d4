//! The real user: QEMU maps a `<vm>.mem` file of the mount as guest RAM
//! (`memory-backend-file,share=on`) and runs its firmware (SeaBIOS, TCG, no
//! disk) for a while. Skipped when `qemu-system-x86_64` is not installed.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Fixture, TestSource};
use jettison_lazymem::{MountOptions, PAGE_SIZE};

/// Kills QEMU if the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn qemu_runs_on_lazy_memory() {
    let fx = Fixture::new(MountOptions::default());
    let size = 64 << 20;
    let src = TestSource::new(size);
    let vm = fx.add("vm-qemu", &src);
    let path = fx.mount.file_path("vm-qemu");
    let backend = format!(
        "memory-backend-file,id=mem,size={size},mem-path={},share=on",
        path.display()
    );
    let child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-machine",
            "q35,memory-backend=mem",
            "-m",
            "64M",
        ])
        .args([
            "-object",
            &backend,
            "-nodefaults",
            "-vga",
            "none",
            "-display",
            "none",
        ])
        .args(["-monitor", "stdio", "-serial", "none"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut qemu = KillOnDrop(child);
    std::thread::sleep(Duration::from_secs(3));
    assert!(qemu.0.try_wait().unwrap().is_none(), "QEMU exited early");
    // Stop the guest, then fsync: every guest write reaches the daemon.
    let stdin = qemu.0.stdin.as_mut().unwrap();
    stdin.write_all(b"stop\n").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .sync_all()
        .unwrap();

    let s = vm.stats();
    let dirty = vm.dirty_pages();
    eprintln!(
        "QEMU/SeaBIOS on lazy memory: faults {} fetched {} of {} pages, dirty {}, p50 {} us p99 {} us",
        s.faults,
        s.pages_fetched,
        size / PAGE_SIZE,
        dirty.len(),
        s.fault_latency_us.p50,
        s.fault_latency_us.p99
    );
    assert!(
        s.faults > 0 && s.pages_fetched > 0,
        "the guest touched no memory"
    );
    assert!(
        s.pages_fetched < size / PAGE_SIZE / 2,
        "far more fetched than a BIOS touches"
    );
    assert!(!dirty.is_empty(), "the firmware wrote nothing back");
    assert_eq!(s.dirty_pages, dirty.len() as u64);
    stdin.write_all(b"quit\n").unwrap();
    let _ = stdin.flush();
    let status = qemu.0.wait().unwrap();
    assert!(status.success(), "QEMU: {status}");
}

/// Measures what one touch of a mapped page costs when the mapping is
/// advised MADV_HUGEPAGE, as QEMU does for all guest RAM: the kernel's THP
/// fault path reads two 2 MiB folios "even if readahead is disabled"
/// (mm/filemap.c), whatever `max_readahead` says, and PR_SET_THP_DISABLE
/// does not change it. Only the plain mapping is asserted; the others are
/// printed (1024 pages per touch on Linux 6.18).
#[test]
fn hugepage_advice_widens_faults() {
    let fx = Fixture::new(MountOptions::default());
    let size = 16 << 20;
    let mut fetched = Vec::new();
    let thp_off = "import ctypes\nassert ctypes.CDLL(None).prctl(41, 1, 0, 0, 0) == 0\n";
    let huge = "m.madvise(mmap.MADV_HUGEPAGE)\n";
    for (name, pre, advice) in [
        ("vm-plain", "", ""),
        ("vm-huge", "", huge),
        ("vm-thp-off", thp_off, huge),
    ] {
        let src = TestSource::new(size);
        let vm = fx.add(name, &src);
        let path = fx.mount.file_path(name);
        let script = format!(
            "{pre}import mmap\nf = open({:?}, 'r+b')\nm = mmap.mmap(f.fileno(), 0)\n{advice}x = m[5 * 4096 + 7]\nm.close()\n",
            path.to_str().unwrap()
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
        let s = vm.stats();
        eprintln!(
            "{name}: one byte touched -> {} READs, {} pages fetched",
            s.faults, s.pages_fetched
        );
        fetched.push(s.pages_fetched);
    }
    assert_eq!(fetched[0], 1, "max_readahead is not in effect");
}
