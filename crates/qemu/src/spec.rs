//! Machine description, per-host launch options and the QEMU command line built from them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use jettison_wire::MacAddr;

use crate::error::{QemuError, Result};

/// QEMU accelerator. `tcg` works everywhere (and is the only one that boots guests on the
/// development machines), `kvm` is for production hosts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Software emulation (`-accel tcg`).
    #[default]
    Tcg,
    /// Hardware virtualisation (`-accel kvm`).
    Kvm,
}

impl Accel {
    /// The name QEMU uses for it (`tcg` / `kvm`).
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of [`Accel::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown accelerator `{0}` (expected `tcg` or `kvm`)")]
pub struct ParseAccelError(pub String);

impl FromStr for Accel {
    type Err = ParseAccelError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tcg" => Ok(Accel::Tcg),
            "kvm" => Ok(Accel::Kvm),
            _ => Err(ParseAccelError(s.to_string())),
        }
    }
}

/// Everything that must be identical on both hosts for a migration to load.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MachineSpec {
    /// Guest RAM in MiB (also the exact size of the memory file).
    pub memory_mib: u64,
    /// Number of vCPUs (`-smp`).
    pub cpus: u32,
    /// Guest kernel (`-kernel`), if any. Without one SeaBIOS runs and finds no boot device.
    pub kernel: Option<PathBuf>,
    /// Initramfs (`-initrd`).
    pub initrd: Option<PathBuf>,
    /// Kernel command line (`-append`).
    pub append: Option<String>,
    /// MAC address of the VM's virtio NIC, if it has one; the host side is
    /// the tap in [`LaunchOptions::tap`].
    #[serde(default)]
    pub nic_mac: Option<MacAddr>,
    /// Size of the VM's virtio disk, if it has one; its image is
    /// [`LaunchOptions::disk_path`] on each host.
    #[serde(default)]
    pub disk_bytes: Option<u64>,
}

impl Default for MachineSpec {
    fn default() -> Self {
        MachineSpec {
            memory_mib: 256,
            cpus: 1,
            kernel: None,
            initrd: None,
            append: None,
            nic_mac: None,
            disk_bytes: None,
        }
    }
}

impl MachineSpec {
    /// Size of guest RAM in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mib * 1024 * 1024
    }
}

/// Where this host's instance keeps its files.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchOptions {
    /// The QEMU binary (`qemu-system-x86_64`).
    pub binary: PathBuf,
    /// Accelerator.
    pub accel: Accel,
    /// `memory-backend-file` mem-path: a file of exactly `memory_mib` MiB, mapped `share=on`.
    pub mem_path: PathBuf,
    /// Directory for this instance's sockets (QMP, serial, migration).
    pub run_dir: PathBuf,
    /// Guest serial lines are appended here as `"<unix ms> <line>\n"`.
    pub console_log: Option<PathBuf>,
    /// Start with `-incoming defer` (the instance waits for [`crate::Qemu::migrate_in`]).
    pub incoming: bool,
    /// VM name, used in file names and logs.
    pub name: String,
    /// Make QEMU's `madvise(MADV_HUGEPAGE)` on guest RAM fail (see
    /// `no_thp`): needed when guest RAM is a lazily served FUSE file.
    pub deny_hugepage_advice: bool,
    /// Host tap device for the VM's NIC (required when the machine has one).
    pub tap: Option<String>,
    /// Raw disk image on this host (required when the machine has a disk).
    pub disk_path: Option<PathBuf>,
    /// This host's own further QEMU arguments, appended verbatim: from its
    /// operator's configuration only (the agent's `extra_args` of a VM, the
    /// server's `extra_qemu_args`), never from the other host. Not part of
    /// the [`MachineSpec`], so they must not change the machine's device
    /// state (e.g. a second monitor, `-no-reboot`).
    pub extra_args: Vec<String>,
    /// Run QEMU unprivileged and sandboxed (see [`Confinement`]); `None`
    /// runs it as the daemon's own user, unsandboxed.
    pub confine: Option<Confinement>,
}

/// How a QEMU that runs another host's VM is held in:
/// - it runs as `uid`:`gid` from its first instruction (`setgid`, `setuid`
///   and the supplementary groups dropped before `exec`);
/// - its run directory (sockets, and nothing else) is made its own, mode
///   0700, and the migration socket the daemon listens on is given to it;
/// - `-sandbox on` with privilege elevation, spawning, resource control and
///   obsolete calls denied (QEMU's own seccomp filter).
///
/// - with `jail`, in a mount namespace of its own (`crate::jail`).
///
/// Its memory and disk files must already be its own (the server's lazy
/// files are: `VmMemory::set_owner`), and its boot files readable by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Confinement {
    /// The user QEMU runs as (an id of its own: no other process's).
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// Also in a mount namespace of its own (see `jail`), through `bwrap`
    /// (from `PATH`): only its own files, `/usr` and a minimal `/dev`
    /// visible.
    pub jail: bool,
}

/// QEMU's sandbox options under a [`Confinement`].
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

impl LaunchOptions {
    /// Defaults: binary `qemu-system-x86_64` from `PATH`, TCG, memory in
    /// `/dev/shm/<name>.mem`, no console log, not incoming.
    pub fn new(name: impl Into<String>, run_dir: impl Into<PathBuf>) -> Self {
        let name = name.into();
        LaunchOptions {
            binary: PathBuf::from("qemu-system-x86_64"),
            accel: Accel::Tcg,
            mem_path: PathBuf::from(format!("/dev/shm/{name}.mem")),
            run_dir: run_dir.into(),
            console_log: None,
            incoming: false,
            name,
            deny_hugepage_advice: false,
            tap: None,
            disk_path: None,
            extra_args: Vec::new(),
            confine: None,
        }
    }

    /// Path of the QMP socket.
    pub fn qmp_socket(&self) -> PathBuf {
        self.run_dir.join(format!("{}.qmp", self.name))
    }

    /// Path of the serial console socket.
    pub fn serial_socket(&self) -> PathBuf {
        self.run_dir.join(format!("{}.serial", self.name))
    }

    /// Where QEMU's stdout and stderr go (truncated at each launch): a
    /// file, not a pipe, so that what a QEMU says after the daemon that
    /// started it is gone is kept, and a daemon that takes it over
    /// ([`crate::Qemu::adopt`]) reads it on.
    pub fn stderr_log(&self) -> PathBuf {
        self.run_dir.join(format!("{}.log", self.name))
    }

    /// Path of the unix socket used for migration streams.
    pub fn migration_socket(&self) -> PathBuf {
        self.run_dir.join(format!("{}.migrate", self.name))
    }
}

/// QEMU's option parser treats `,` as a separator; a literal comma is written `,,`.
pub(crate) fn escape_opt(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// The QEMU arguments (without the binary itself) for `spec` on this host.
///
/// No default devices, no VGA, no NIC (`-nodefaults` implies no `-net`), so that the only
/// non-shared RAM blocks are the small BIOS/ACPI ROMs and the migration stream stays small.
pub fn command_line(spec: &MachineSpec, opts: &LaunchOptions) -> Vec<String> {
    let mem = format!("{}M", spec.memory_mib);
    let mut a: Vec<String> = [
        "-nodefaults",
        "-vga",
        "none",
        "-display",
        "none",
        "-no-user-config",
        "-machine",
        "q35,memory-backend=mem",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.splice(0..0, ["-name".to_string(), opts.name.replace(',', ",,")]);
    a.push("-object".into());
    a.push(format!(
        "memory-backend-file,id=mem,size={mem},mem-path={},share=on",
        escape_opt(&opts.mem_path)
    ));
    a.extend(["-m".into(), mem]);
    a.extend(["-smp".into(), spec.cpus.to_string()]);
    a.extend(["-accel".into(), opts.accel.to_string()]);
    a.push("-qmp".into());
    a.push(format!(
        "unix:{},server=on,wait=off",
        escape_opt(&opts.qmp_socket())
    ));
    a.push("-chardev".into());
    a.push(format!(
        "socket,id=ser0,path={},server=on,wait=off",
        escape_opt(&opts.serial_socket())
    ));
    a.extend(["-serial".into(), "chardev:ser0".into()]);
    if let Some(k) = &spec.kernel {
        a.extend(["-kernel".into(), k.display().to_string()]);
    }
    if let Some(i) = &spec.initrd {
        a.extend(["-initrd".into(), i.display().to_string()]);
    }
    if let Some(ap) = &spec.append {
        a.extend(["-append".into(), ap.clone()]);
    }
    if let (Some(mac), Some(tap)) = (&spec.nic_mac, &opts.tap) {
        a.push("-netdev".into());
        a.push(format!("tap,id=net0,ifname={tap},script=no,downscript=no"));
        a.push("-device".into());
        // romfile= keeps the NIC's option ROM out of the migration stream.
        a.push(format!("virtio-net-pci,netdev=net0,mac={mac},romfile="));
    }
    if let (Some(bytes), Some(disk)) = (spec.disk_bytes, &opts.disk_path) {
        a.push("-drive".into());
        a.push(format!(
            "file={},if=none,id=disk0,format=raw,cache=writeback,discard=ignore,file.locking=off",
            escape_opt(disk)
        ));
        a.push("-device".into());
        // An explicit geometry: otherwise QEMU reads sector 0 at start-up to
        // guess one, which on the server is a fetch from a desktop whose VM
        // still runs (and must not be served yet).
        let cyls = bytes.div_ceil(16 * 63 * 512).clamp(1, 65535);
        a.push(format!(
            "virtio-blk-pci,drive=disk0,cyls={cyls},heads=16,secs=63"
        ));
    }
    if opts.confine.is_some() {
        a.extend(["-sandbox".into(), SANDBOX.into()]);
    }
    a.extend(opts.extra_args.iter().cloned());
    if opts.incoming {
        a.extend(["-incoming".into(), "defer".into()]);
    }
    a
}

/// `-device` arguments in `extra_args` that would add an option ROM: a NIC without
/// `romfile=` loads e.g. `efi-virtio.rom`, a non-shared RAM block carried in every
/// migration stream (and the ROM must then exist on both hosts).
pub fn option_rom_devices(opts: &LaunchOptions) -> Vec<String> {
    opts.extra_args
        .windows(2)
        .filter(|w| w[0] == "-device")
        .map(|w| &w[1])
        .filter(|d| {
            let driver = d.split(',').next().unwrap_or("");
            let nic = driver.contains("net") || driver.starts_with("e1000") || driver == "rtl8139";
            nic && !d.split(',').any(|o| o.starts_with("romfile="))
        })
        .cloned()
        .collect()
}

/// Makes sure `path` is a memory file of exactly `size` bytes: creates it (sparse) if it
/// does not exist, fails if it exists with another size. Never truncates existing data.
pub fn ensure_mem_file(path: &Path, size: u64) -> Result<()> {
    let err = |reason: String| QemuError::MemFile {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(err("exists but is not a regular file".into())),
        Ok(m) if m.len() != size => Err(err(format!(
            "exists with size {} bytes, expected {size} bytes",
            m.len()
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| err(format!("cannot create: {e}")))?;
            f.set_len(size)
                .map_err(|e| err(format!("cannot set length {size}: {e}")))?;
            tracing::debug!(path = %path.display(), size, "created memory file");
            Ok(())
        }
        Err(e) => Err(err(format!("cannot stat: {e}"))),
    }
}
