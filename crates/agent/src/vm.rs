//! One VM of the desktop: where it runs, its memory file, and the record of
//! that kept on disk so that a restarted agent still serves a consolidated
//! VM's memory.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use jettison_qemu::{LaunchOptions, MachineSpec, Qemu};
use serde::{Deserialize, Serialize};

use jettison_daemon::tap::Tap;
use jettison_wire::FileKind;

use crate::config::{AgentConfig, VmConfig};
use crate::AgentError;

/// Where a VM is, as the agent sees it.
#[derive(Debug)]
pub enum Placement {
    /// Not running anywhere (not booted yet, or its QEMU exited).
    Off,
    /// Running at home.
    Home(Box<Running>),
    /// Running on the consolidation server.
    Away {
        /// The server it went to.
        server: String,
        /// When it left.
        since: SystemTime,
    },
}

/// A VM running at home: its QEMU and the tap of its NIC.
#[derive(Debug)]
pub struct Running {
    /// The QEMU process.
    pub qemu: Qemu,
    /// Removed when the VM leaves (after QEMU).
    tap: Option<Tap>,
}

impl Running {
    /// Quits QEMU, then removes the tap.
    pub async fn quit(self) {
        if let Err(e) = self.qemu.quit().await {
            tracing::warn!("QEMU did not quit cleanly: {e}");
        }
        drop(self.tap);
    }
}

/// What survives an agent restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedState {
    /// Server the VM runs on.
    pub server: String,
    /// Unix time in ms when it left.
    pub since_ms: u64,
}

/// An open file of a VM (memory or disk) and its size.
pub type Reader = (Arc<File>, u64);

/// A VM slot: configuration, memory file, placement.
#[derive(Debug)]
pub struct VmSlot {
    /// Its configuration.
    pub config: VmConfig,
    /// Its memory file (`<memory_dir>/<name>.mem`).
    pub mem_path: PathBuf,
    /// Where it runs; held across a whole migration or reintegration.
    pub placement: tokio::sync::Mutex<Placement>,
    /// Whether the state server may serve its memory (only while the VM is
    /// stopped at home: consolidated, or between stop and hand-over).
    serving: AtomicBool,
    state_file: PathBuf,
    /// Files opened once for the state server (memory, disk) and their sizes.
    readers: std::sync::Mutex<[Option<Reader>; 2]>,
}

impl VmSlot {
    /// A slot for a configured VM; picks up a saved "away" state.
    pub fn new(cfg: &AgentConfig, vm: &VmConfig) -> std::io::Result<Self> {
        let state_file = cfg.state_dir.join(format!("{}.json", vm.name));
        let placement = match std::fs::read(&state_file) {
            Ok(bytes) => match serde_json::from_slice::<SavedState>(&bytes) {
                Ok(s) => Placement::Away {
                    server: s.server,
                    since: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(s.since_ms),
                },
                Err(e) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("corrupt state file {}: {e}", state_file.display()),
                    ))
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Placement::Off,
            Err(e) => return Err(e),
        };
        let away = matches!(placement, Placement::Away { .. });
        Ok(VmSlot {
            config: vm.clone(),
            mem_path: cfg.memory_dir.join(format!("{}.mem", vm.name)),
            placement: tokio::sync::Mutex::new(placement),
            serving: AtomicBool::new(away),
            state_file,
            readers: std::sync::Mutex::new([None, None]),
        })
    }

    /// Size of the memory file in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.config.memory_mib << 20
    }

    /// The machine spec.
    pub fn machine(&self) -> MachineSpec {
        self.config.machine()
    }

    /// Whether fetches are answered now.
    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
    }

    /// Starts or stops answering fetches.
    pub fn set_serving(&self, on: bool) {
        self.serving.store(on, Ordering::SeqCst);
    }

    /// Records that the VM is away (written atomically).
    pub fn save_away(&self, server: &str, since: SystemTime) -> std::io::Result<()> {
        let since_ms = since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let text = serde_json::to_vec(&SavedState {
            server: server.into(),
            since_ms,
        })
        .map_err(std::io::Error::other)?;
        if let Some(dir) = self.state_file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.state_file.with_extension("json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, &self.state_file)
    }

    /// Records that the VM is home.
    pub fn clear_saved(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.state_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Bytes of the memory file resident in memory (tmpfs blocks in use).
    pub fn resident_bytes(&self) -> u64 {
        std::fs::metadata(&self.mem_path)
            .map(|m| m.blocks() * 512)
            .unwrap_or(0)
    }

    /// The disk image and its size, if the VM has a disk.
    pub fn disk(&self) -> Option<(PathBuf, u64)> {
        let path = self.config.disk.clone()?;
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Some((path, len))
    }

    /// The file behind a fetch or dirty-page request, and its size.
    pub fn file(&self, kind: FileKind) -> Option<(PathBuf, u64)> {
        match kind {
            FileKind::Memory => Some((self.mem_path.clone(), self.memory_bytes())),
            FileKind::Disk => self.disk(),
        }
    }

    /// The file behind a fetch, opened once and kept for later fetches (the
    /// page-fault path should not open a file per page), with its size.
    pub fn reader(&self, kind: FileKind) -> std::io::Result<Option<Reader>> {
        let mut readers = self.readers.lock().expect("readers lock");
        let slot = &mut readers[(kind == FileKind::Disk) as usize];
        if slot.is_none() {
            let Some((path, size)) = self.file(kind) else {
                return Ok(None);
            };
            *slot = Some((Arc::new(File::open(path)?), size));
        }
        Ok(slot.clone())
    }

    /// Starts this VM's QEMU at home (waiting for state if `incoming`), with
    /// its tap and disk.
    pub async fn launch(&self, cfg: &AgentConfig, incoming: bool) -> Result<Running, AgentError> {
        if let Some(disk) = &self.config.disk {
            ensure_disk(disk, self.config.disk_mib << 20)?;
        }
        let tap = match (&self.config.mac, &cfg.bridge) {
            (Some(_), Some(bridge)) => Some(Tap::create(&self.config.name, bridge)?),
            _ => None,
        };
        let mut opts = self.launch_options(cfg, incoming);
        opts.tap = tap.as_ref().map(|t| t.name().to_string());
        let qemu = Qemu::launch(&self.machine(), &opts).await?;
        Ok(Running { qemu, tap })
    }

    /// Launch options for this VM's QEMU on this desktop.
    pub fn launch_options(&self, cfg: &AgentConfig, incoming: bool) -> LaunchOptions {
        LaunchOptions {
            binary: cfg.qemu_binary.clone(),
            accel: cfg.accel,
            mem_path: self.mem_path.clone(),
            run_dir: cfg.run_dir.clone(),
            console_log: Some(cfg.run_dir.join(format!("{}.console", self.config.name))),
            incoming,
            name: self.config.name.clone(),
            deny_hugepage_advice: false,
            tap: None,
            disk_path: self.config.disk.clone(),
        }
    }
}

/// Reads `ranges` of a memory file or disk image.
pub fn read_ranges(
    file: &File,
    ranges: &[jettison_wire::Range],
) -> std::io::Result<Vec<jettison_wire::Chunk>> {
    ranges
        .iter()
        .map(|r| {
            let mut data = vec![0u8; r.len as usize];
            file.read_exact_at(&mut data, r.offset)?;
            Ok(jettison_wire::Chunk {
                offset: r.offset,
                data,
            })
        })
        .collect()
}

/// Writes pages into a memory file, refusing any beyond its end.
pub fn write_pages(
    file: &std::fs::File,
    size: u64,
    pages: &[jettison_wire::Chunk],
) -> std::io::Result<()> {
    for p in pages {
        let end = p.offset.checked_add(p.data.len() as u64);
        if p.offset % jettison_wire::PAGE_SIZE != 0 || end.is_none_or(|e| e > size) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "dirty page at {}+{} is outside the {size}-byte memory file",
                    p.offset,
                    p.data.len()
                ),
            ));
        }
        file.write_all_at(&p.data, p.offset)?;
    }
    Ok(())
}

/// BLAKE3 of a whole file, hex.
pub fn digest_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(path)?)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Creates a sparse disk image of `size` bytes if there is none.
fn ensure_disk(path: &Path, size: u64) -> std::io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => {
            tracing::info!(disk = %path.display(), size, "created an empty disk image");
            f.set_len(size)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("creating disk image {}: {e}", path.display()),
        )),
    }
}
