//! Whether a VM may come to this server, decided in `prepare` before
//! anything of it is made (no tap, lazy file, replica, QEMU or record).
//!
//! Per VM, its description must be within the operator's limits
//! ([`Limits`]: memory, vCPUs) and sane (memory and disk sizes in whole
//! pages). Across VMs, a ledger counts every VM this server holds in any
//! state (being prepared included) with its guest memory and replica bytes
//! (memory plus disk, which `prepare` reserves on disk: see
//! `MountOptions::reserve_replicas`). A new VM is admitted only if, with it,
//! the number of VMs, the total guest memory and the total replica bytes
//! stay within their limits, and the filesystem of the replicas keeps
//! `min_free_mib` free after its replicas (and those of VMs admitted but
//! not yet allocated) are allocated; the state directory's filesystem, if
//! another, must have `min_free_mib` free. The check and the entry are made
//! under one lock, so two concurrent prepares cannot both squeeze into the
//! last room. The entry lives from then until the VM leaves the guest table
//! (or its prepare fails: its `Ticket` drops it). A VM resumed from a
//! checkpoint is entered without the checks: it was admitted before.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use jettison_wire::{MachineDesc, PAGE_SIZE};
use serde::Deserialize;

/// The operator's limits (the server configuration's `[limits]` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most guest memory of one VM, MiB.
    #[serde(default = "default_vm_memory_mib")]
    pub max_vm_memory_mib: u64,
    /// Most vCPUs of one VM.
    #[serde(default = "default_vm_cpus")]
    pub max_vm_cpus: u32,
    /// Most VMs on this server, in any state.
    #[serde(default = "default_vms")]
    pub max_vms: usize,
    /// Most guest memory of all VMs together, MiB; unset: twice this
    /// host's RAM (resolved at start-up).
    #[serde(default)]
    pub max_total_memory_mib: Option<u64>,
    /// Most replica bytes (memory plus disk) of all VMs together, MiB.
    #[serde(default = "default_total_replica_mib")]
    pub max_total_replica_mib: u64,
    /// Space kept free on the filesystems of the replicas and of the state
    /// directory (checkpoints, records), MiB.
    #[serde(default = "default_min_free_mib")]
    pub min_free_mib: u64,
}

fn default_vm_memory_mib() -> u64 {
    64 << 10
}
fn default_vm_cpus() -> u32 {
    64
}
fn default_vms() -> usize {
    128
}
fn default_total_replica_mib() -> u64 {
    1 << 20
}
fn default_min_free_mib() -> u64 {
    1024
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_vm_memory_mib: default_vm_memory_mib(),
            max_vm_cpus: default_vm_cpus(),
            max_vms: default_vms(),
            max_total_memory_mib: None,
            max_total_replica_mib: default_total_replica_mib(),
            min_free_mib: default_min_free_mib(),
        }
    }
}

/// What one VM takes of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Usage {
    /// Guest memory, MiB.
    pub(crate) memory_mib: u64,
    /// Replica bytes: memory plus disk.
    pub(crate) replica_bytes: u64,
}

/// What a VM of `desc` takes (`None`: its sizes overflow).
pub(crate) fn usage(desc: &MachineDesc) -> Option<Usage> {
    let replica_bytes = desc
        .memory_mib
        .checked_mul(1 << 20)?
        .checked_add(desc.disk_bytes.unwrap_or(0))?;
    Some(Usage {
        memory_mib: desc.memory_mib,
        replica_bytes,
    })
}

/// A filesystem the server writes to, as `statvfs` sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filesystem {
    /// A directory on it (for messages).
    pub(crate) path: PathBuf,
    /// Bytes available to the server.
    pub(crate) available: u64,
    /// Whether the replicas live on it.
    pub(crate) replicas: bool,
}

/// Why a VM is not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Its description makes no sense.
    #[error("VM {vm}: {why}")]
    Invalid {
        /// The VM.
        vm: String,
        /// What is wrong.
        why: String,
    },
    /// It is bigger than one VM may be here.
    #[error(
        "VM {vm} asks for {asked} {what}; this server takes at most {limit} per VM (`{setting}`)"
    )]
    PerVm {
        /// The VM.
        vm: String,
        /// What (e.g. "MiB of memory").
        what: &'static str,
        /// Its value.
        asked: u64,
        /// The limit.
        limit: u64,
        /// The configuration setting.
        setting: &'static str,
    },
    /// Already here, or being prepared.
    #[error("VM {0} is already on this server or being prepared")]
    Busy(String),
    /// It does not fit beside the VMs here.
    #[error(
        "no room for VM {vm}: {what}: {used} in use + {asked} asked > limit {limit} (`{setting}`)"
    )]
    Full {
        /// The VM.
        vm: String,
        /// What is short.
        what: &'static str,
        /// In use by the VMs here.
        used: u64,
        /// The new VM's.
        asked: u64,
        /// The limit.
        limit: u64,
        /// The configuration setting.
        setting: &'static str,
    },
    /// A filesystem lacks the space.
    #[error(
        "no room for VM {vm} on the filesystem of {path}: {available} bytes free, {pending} \
         promised to VMs being prepared, {asked} needed for its replicas, {min_free} kept free \
         (`min_free_mib`)"
    )]
    Disk {
        /// The VM.
        vm: String,
        /// A directory on the filesystem.
        path: String,
        /// Bytes free now.
        available: u64,
        /// Bytes of VMs admitted but not yet allocated.
        pending: u64,
        /// Bytes this VM needs there.
        asked: u64,
        /// Bytes kept free.
        min_free: u64,
    },
    /// The free space could not be read.
    #[error("VM {vm}: cannot read the free space of the server's disks: {why}")]
    Probe {
        /// The VM.
        vm: String,
        /// The error.
        why: String,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    usage: Usage,
    /// Its replicas are allocated (no longer counted as pending).
    allocated: bool,
}

/// The ledger of VMs on this server and the limits it enforces.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Limits,
    vms: Mutex<HashMap<String, Entry>>,
}

impl Admission {
    /// An empty ledger enforcing `limits` (an unset total memory: none).
    pub(crate) fn new(limits: Limits) -> Self {
        Admission {
            limits,
            vms: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.vms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks `desc` against the per-VM limits; returns what it takes.
    pub(crate) fn check_machine(&self, vm: &str, desc: &MachineDesc) -> Result<Usage, Refusal> {
        let l = &self.limits;
        let invalid = |why: String| Refusal::Invalid { vm: vm.into(), why };
        if desc.memory_mib == 0 || desc.cpus == 0 {
            return Err(invalid("needs at least 1 MiB of memory and 1 vCPU".into()));
        }
        if desc.memory_mib > l.max_vm_memory_mib {
            return Err(Refusal::PerVm {
                vm: vm.into(),
                what: "MiB of memory",
                asked: desc.memory_mib,
                limit: l.max_vm_memory_mib,
                setting: "max_vm_memory_mib",
            });
        }
        if desc.cpus > l.max_vm_cpus {
            return Err(Refusal::PerVm {
                vm: vm.into(),
                what: "vCPUs",
                asked: desc.cpus.into(),
                limit: l.max_vm_cpus.into(),
                setting: "max_vm_cpus",
            });
        }
        let disk = desc.disk_bytes.unwrap_or(0);
        if desc.disk_bytes.is_some() && (disk == 0 || disk % PAGE_SIZE != 0) {
            return Err(invalid(format!(
                "a disk of {disk} bytes: it must be a non-zero multiple of {PAGE_SIZE}"
            )));
        }
        usage(desc).ok_or_else(|| invalid("memory and disk sizes overflow".into()))
    }

    /// Enters `vm` if it fits beside the VMs here, on the filesystems
    /// `probe` reports (read under the ledger's lock). The entry goes
    /// again when the ticket drops, unless it is kept.
    pub(crate) fn reserve(
        &self,
        vm: &str,
        usage: Usage,
        probe: impl FnOnce() -> std::io::Result<Vec<Filesystem>>,
    ) -> Result<Ticket<'_>, Refusal> {
        let l = &self.limits;
        let mut vms = self.map();
        if vms.contains_key(vm) {
            return Err(Refusal::Busy(vm.into()));
        }
        let full = |what, used: u64, asked: u64, limit: u64, setting| Refusal::Full {
            vm: vm.into(),
            what,
            used,
            asked,
            limit,
            setting,
        };
        if vms.len() >= l.max_vms {
            return Err(full(
                "VMs",
                vms.len() as u64,
                1,
                l.max_vms as u64,
                "max_vms",
            ));
        }
        let memory: u64 = vms.values().map(|e| e.usage.memory_mib).sum();
        if let Some(limit) = l.max_total_memory_mib {
            if memory.saturating_add(usage.memory_mib) > limit {
                let setting = "max_total_memory_mib";
                return Err(full(
                    "MiB of guest memory",
                    memory,
                    usage.memory_mib,
                    limit,
                    setting,
                ));
            }
        }
        let replicas: u64 = vms.values().map(|e| e.usage.replica_bytes).sum();
        let limit = l.max_total_replica_mib.saturating_mul(1 << 20);
        if replicas.saturating_add(usage.replica_bytes) > limit {
            let setting = "max_total_replica_mib";
            return Err(full(
                "replica bytes",
                replicas,
                usage.replica_bytes,
                limit,
                setting,
            ));
        }
        let pending: u64 = vms
            .values()
            .filter(|e| !e.allocated)
            .map(|e| e.usage.replica_bytes)
            .sum();
        let filesystems = probe().map_err(|e| Refusal::Probe {
            vm: vm.into(),
            why: e.to_string(),
        })?;
        let min_free = l.min_free_mib.saturating_mul(1 << 20);
        for fs in &filesystems {
            let (asked, pending) = if fs.replicas {
                (usage.replica_bytes, pending)
            } else {
                (0, 0)
            };
            let need = asked.saturating_add(pending).saturating_add(min_free);
            if fs.available < need {
                return Err(Refusal::Disk {
                    vm: vm.into(),
                    path: fs.path.display().to_string(),
                    available: fs.available,
                    pending,
                    asked,
                    min_free,
                });
            }
        }
        vms.insert(
            vm.into(),
            Entry {
                usage,
                allocated: false,
            },
        );
        Ok(Ticket {
            admission: self,
            vm: vm.into(),
            armed: true,
        })
    }

    /// Enters `vm` without the checks (a VM resumed from its checkpoint,
    /// admitted before), replacing an entry it may still have.
    pub(crate) fn reserve_restored(&self, vm: &str, usage: Usage) -> Ticket<'_> {
        let entry = Entry {
            usage,
            allocated: false,
        };
        self.map().insert(vm.into(), entry);
        Ticket {
            admission: self,
            vm: vm.into(),
            armed: true,
        }
    }

    /// `vm` left: its entry goes.
    pub(crate) fn release(&self, vm: &str) {
        self.map().remove(vm);
    }

    /// The VMs entered and their total usage.
    pub(crate) fn in_use(&self) -> (usize, Usage) {
        let vms = self.map();
        let total = vms.values().fold(Usage::default(), |a, e| Usage {
            memory_mib: a.memory_mib + e.usage.memory_mib,
            replica_bytes: a.replica_bytes + e.usage.replica_bytes,
        });
        (vms.len(), total)
    }
}

/// A VM's entry in the ledger while it is being prepared: dropped, the
/// entry goes; kept, it stays until the VM leaves.
#[derive(Debug)]
pub(crate) struct Ticket<'a> {
    admission: &'a Admission,
    vm: String,
    armed: bool,
}

impl Ticket<'_> {
    /// The VM's replicas are allocated and it is in the guest table.
    pub(crate) fn keep(mut self) {
        if let Some(e) = self.admission.map().get_mut(&self.vm) {
            e.allocated = true;
        }
        self.armed = false;
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.admission.release(&self.vm);
        }
    }
}

/// Admits `vm` on `host` (see the module documentation): its entry in the
/// ledger, to keep once the VM is in the guest table.
pub(crate) fn admit<'h, H: crate::guests::Host>(
    host: &'h H,
    vm: &str,
    machine: &MachineDesc,
) -> Result<Ticket<'h>, Refusal> {
    let admission = &host.handovers().admission;
    let usage = admission.check_machine(vm, machine)?;
    let ticket = admission.reserve(vm, usage, || host.filesystems())?;
    let (vms, total) = admission.in_use();
    tracing::info!(
        vm,
        memory_mib = usage.memory_mib,
        replica_bytes = usage.replica_bytes,
        vms,
        total_memory_mib = total.memory_mib,
        total_replica_bytes = total.replica_bytes,
        "admitted"
    );
    Ok(ticket)
}

/// `statvfs` of the replica and state directories (one entry per
/// filesystem; the replicas' if both are on one).
pub(crate) fn probe(
    replica_dir: &std::path::Path,
    state_dir: &std::path::Path,
) -> std::io::Result<Vec<Filesystem>> {
    use std::os::unix::fs::MetadataExt;
    let stat = |dir: &std::path::Path| -> std::io::Result<(u64, u64)> {
        let dev = std::fs::metadata(dir)?.dev();
        let v = rustix::fs::statvfs(dir)?;
        Ok((dev, v.f_bavail.saturating_mul(v.f_frsize)))
    };
    let (replica_dev, available) = stat(replica_dir)?;
    let mut out = vec![Filesystem {
        path: replica_dir.to_owned(),
        available,
        replicas: true,
    }];
    let (state_dev, available) = stat(state_dir)?;
    if state_dev != replica_dev {
        out.push(Filesystem {
            path: state_dir.to_owned(),
            available,
            replicas: false,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
