//! What the bench's integration tests share.

use std::path::PathBuf;

use jettison_bench::run::Settings;
use jettison_demo::{Binaries, GuestImage};

/// A unique work directory under the system's temporary directory.
pub fn work_dir(tag: &str) -> PathBuf {
    let work = std::env::temp_dir().join(format!("jt-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    work
}

/// Settings for TCG guests three quarters full, with the daemons built
/// beside the test and the guest image of `cargo xtask test`.
pub fn settings(work: &std::path::Path, fault_samples: usize, touch_pages: u64) -> Settings {
    Settings {
        bins: Binaries::beside_current_exe()
            .expect("daemons built beside the test (cargo xtask test)"),
        image: GuestImage::locate().expect("guest image (run `cargo xtask test`)"),
        accel: "tcg".into(),
        fill_pct: 75,
        work_root: work.to_path_buf(),
        fault_samples,
        touch_pages,
    }
}
