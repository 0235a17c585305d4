//! One VM of the desktop: where it runs, its memory file, and the record of
//! that kept on disk so that a restarted agent still serves a consolidated
//! VM's memory.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jettison_qemu::{LaunchOptions, MachineSpec, Qemu, Shutdown};

use jettison_daemon::tap::Tap;
use jettison_handover::DesktopState;
use jettison_wire::FileKind;

use crate::config::{AgentConfig, VmConfig};
use crate::handover_in::HomeFiles;
use crate::record::VmRecord;
use crate::AgentError;

/// Where a VM is, as the agent sees it at run time (its durable record,
/// [`VmRecord`], says where it is committed). The lock on it is held only
/// to look or to flip, never across a network wait.
#[derive(Debug)]
pub enum Placement {
    /// Not running anywhere (not booted yet, or its QEMU exited).
    Off,
    /// Running at home.
    Home(Box<Running>),
    /// A migration or reintegration owns it now.
    Busy(&'static str),
    /// Running on the consolidation server.
    Away {
        /// The server it went to.
        server: String,
    },
    /// Its record is in doubt (or was left mid-handover by a crash): the
    /// settling task asks the server and decides. Holds the guest at home
    /// (stopped, or loaded and paused), if there is one.
    Unsettled(Option<Box<Running>>),
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
    /// A VM running at home in this QEMU, on this tap (launched here, or
    /// taken over from a previous agent: managed the same way).
    pub(crate) fn new(qemu: Qemu, tap: Option<Tap>) -> Self {
        Running { qemu, tap }
    }

    /// Quits QEMU, then removes the tap.
    pub async fn quit(self) {
        if let Err(e) = self.qemu.quit().await {
            tracing::warn!("QEMU did not quit cleanly: {e}");
        }
        drop(self.tap);
    }

    /// Presses the guest's power button and waits up to `timeout` for it to
    /// power off (QEMU is quit after that), then removes the tap.
    pub async fn shutdown(self, timeout: std::time::Duration) {
        let vm = self.qemu.name().to_string();
        match self.qemu.shutdown(timeout).await {
            Ok(Shutdown::PoweredOff(_)) => tracing::info!(vm, "the guest powered off"),
            Ok(Shutdown::Quit(_)) => tracing::warn!(
                vm,
                ?timeout,
                "the guest did not power off in time; QEMU was quit"
            ),
            Err(e) => tracing::warn!(vm, "QEMU did not stop cleanly: {e}"),
        }
        drop(self.tap);
    }

    /// Leaves the guest running without us: QEMU and its tap outlive the
    /// agent. Gives QEMU's pid.
    pub fn detach(self) -> Option<u32> {
        let pid = self.qemu.detach();
        if let Some(tap) = self.tap {
            tap.keep();
        }
        pid
    }
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
    /// Where it runs now.
    pub placement: tokio::sync::Mutex<Placement>,
    /// Its durable handover record.
    pub record: VmRecord,
    /// Files opened once for the state server (memory, disk) and their sizes.
    readers: std::sync::Mutex<[Option<Reader>; 2]>,
}

impl VmSlot {
    /// A slot for a configured VM, with its durable record: a VM recorded
    /// away is served again; one left mid-handover is to be settled.
    pub fn new(cfg: &AgentConfig, vm: &VmConfig) -> Result<Self, AgentError> {
        let record = VmRecord::load(&cfg.state_dir, &vm.name)?;
        let placement = match record.get() {
            DesktopState::Home => Placement::Off,
            DesktopState::Away { server, .. } => Placement::Away { server },
            DesktopState::Migrating { .. } | DesktopState::Returning { .. } => {
                Placement::Unsettled(None)
            }
        };
        Ok(VmSlot {
            config: vm.clone(),
            mem_path: cfg.memory_dir.join(format!("{}.mem", vm.name)),
            placement: tokio::sync::Mutex::new(placement),
            record,
            readers: std::sync::Mutex::new([None, None]),
        })
    }

    /// Takes the guest running at home for a handover (the placement says
    /// `Busy` until [`VmSlot::set_placement`]).
    pub async fn take_home(&self, why: &'static str) -> Result<Box<Running>, AgentError> {
        let mut p = self.placement.lock().await;
        match std::mem::replace(&mut *p, Placement::Busy(why)) {
            Placement::Home(r) => Ok(r),
            other => {
                let e = AgentError::WrongState(format!(
                    "VM {} is not running at home ({})",
                    self.config.name,
                    describe(&other)
                ));
                *p = other;
                Err(e)
            }
        }
    }

    /// Marks a consolidated VM busy for its return; gives its server.
    pub async fn take_away(&self, why: &'static str) -> Result<String, AgentError> {
        let mut p = self.placement.lock().await;
        match &*p {
            Placement::Away { server } => {
                let server = server.clone();
                *p = Placement::Busy(why);
                Ok(server)
            }
            other => Err(AgentError::WrongState(format!(
                "VM {} is not consolidated ({})",
                self.config.name,
                describe(other)
            ))),
        }
    }

    /// Sets where the VM is now.
    pub async fn set_placement(&self, p: Placement) {
        *self.placement.lock().await = p;
    }

    /// Fails unless the memory file exists: a VM that is not home must
    /// never come back on a new, empty one (the desktop lost its memory,
    /// e.g. in a reboot).
    pub fn require_memory_file(&self) -> Result<(), AgentError> {
        if self.mem_path.is_file() {
            return Ok(());
        }
        Err(AgentError::WrongState(format!(
            "the memory file {} of VM {} is gone (the desktop lost it, e.g. in a reboot): \
             the VM cannot come home onto an empty one (see docs/runbook.md)",
            self.mem_path.display(),
            self.config.name
        )))
    }

    /// The VM's files at home.
    pub fn home_files(&self) -> HomeFiles {
        HomeFiles {
            memory: (self.mem_path.clone(), self.memory_bytes()),
            disk: self.disk(),
        }
    }

    /// Size of the memory file in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.config.memory_mib << 20
    }

    /// The machine spec.
    pub fn machine(&self) -> MachineSpec {
        self.config.machine()
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

    /// How many of its files the state server has opened so far.
    #[cfg(test)]
    pub(crate) fn files_opened(&self) -> usize {
        self.readers
            .lock()
            .expect("readers lock")
            .iter()
            .flatten()
            .count()
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
    /// its tap and disk. Refused while a QEMU this agent does not manage
    /// answers on the VM's QMP socket (one it could not take over): never a
    /// second QEMU on the same memory file.
    pub async fn launch(&self, cfg: &AgentConfig, incoming: bool) -> Result<Running, AgentError> {
        if let Some(qmp) = self.unmanaged_qemu(cfg).await {
            return Err(AgentError::Unmanaged {
                vm: self.config.name.clone(),
                qmp,
            });
        }
        if let Some(disk) = &self.config.disk {
            // Never a new empty disk; never a format QEMU would take as raw.
            crate::disk_image::check_disk(&self.config.name, disk)?;
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
            extra_args: self.config.extra_args.clone(),
            confine: None,
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

/// A placement in words, for errors and status.
pub fn describe(p: &Placement) -> String {
    match p {
        Placement::Off => "off".into(),
        Placement::Home(_) => "at home".into(),
        Placement::Busy(why) => format!("busy: {why}"),
        Placement::Away { server } => format!("consolidated on {server}"),
        Placement::Unsettled(_) => "in doubt: settling with the server".into(),
    }
}
