//! The user's input where no graphical session tells presence: the kernel's
//! input devices (`/dev/input/event*`, read as root or by the `input`
//! group). Every event read counts as the user's input; nothing is grabbed,
//! so the desktop's own input handling sees the same events.
//!
//! Only the error paths (no devices, none readable, no directory) and the
//! reading itself (from a FIFO standing in for a device) are tested here:
//! the test hosts have no keyboard.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::PowerError;

/// Reader threads on the input devices, counting the events read.
#[derive(Debug)]
pub struct InputWatch {
    events: Arc<AtomicU64>,
    devices: Vec<PathBuf>,
}

/// The `event*` devices of `dir`, sorted; a clear error if there are none
/// or none can be read.
pub fn input_devices(dir: &Path) -> Result<Vec<PathBuf>, PowerError> {
    let entries = std::fs::read_dir(dir).map_err(PowerError::io(format!(
        "listing the input devices in {}",
        dir.display()
    )))?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("event"))
        .map(|e| e.path())
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(PowerError::Invalid(format!(
            "no input devices (event*) in {}: the user's return cannot be told without a logind session",
            dir.display()
        )));
    }
    let readable: Vec<PathBuf> = found
        .iter()
        .filter(|p| nix::unistd::access(p.as_path(), nix::unistd::AccessFlags::R_OK).is_ok())
        .cloned()
        .collect();
    if readable.is_empty() {
        return Err(PowerError::Invalid(format!(
            "none of the {} input devices in {} is readable (run as root or in the `input` group)",
            found.len(),
            dir.display()
        )));
    }
    Ok(readable)
}

impl InputWatch {
    /// Starts a reader thread on each readable `event*` device of `dir`.
    pub fn start(dir: &Path) -> Result<Self, PowerError> {
        let devices = input_devices(dir)?;
        let events = Arc::new(AtomicU64::new(0));
        for dev in &devices {
            let (dev, events) = (dev.clone(), events.clone());
            std::thread::Builder::new()
                .name("jettison-input".into())
                .spawn(move || read_device(&dev, &events))
                .map_err(PowerError::io("starting an input reader thread"))?;
        }
        tracing::info!(devices = ?devices, "reading input devices for the user's return");
        Ok(Self { events, devices })
    }

    /// The devices read.
    pub fn devices(&self) -> &[PathBuf] {
        &self.devices
    }

    /// Events read so far (any device).
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Acquire)
    }
}

fn read_device(dev: &Path, events: &AtomicU64) {
    let mut file = match std::fs::File::open(dev) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(device = %dev.display(), "input device not opened: {e}");
            return;
        }
    };
    let mut buf = [0u8; 24 * 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {
                events.fetch_add(1, Ordering::AcqRel);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(device = %dev.display(), "input device read failed: {e}");
                return;
            }
        }
    }
}
