//! The mount handle: mounting, adding and removing VMs, unmounting.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fuser::{BackgroundSession, INodeNo, MountOption};
use nix::mount::{umount2, MntFlags};
use tokio::runtime::Handle;
use tracing::{info, warn};

use crate::fs::LazyFs;
use crate::registry::Registry;
use crate::stale::prepare_mountpoint;
use crate::vm::VmMemory;
use crate::{valid_name, LazyMemError, MountOptions, PageSource, PAGE_SIZE};

/// A mounted lazy memory filesystem. Dropping it unmounts (like [`Self::unmount`]).
#[derive(Debug)]
pub struct LazyMemMount {
    mountpoint: PathBuf,
    registry: Arc<Registry>,
    opts: MountOptions,
    /// Serialises `add_vm`, so a refused duplicate never touches a replica.
    add_lock: Mutex<()>,
    session: Option<BackgroundSession>,
    /// Told of the VMs' faults and fetches (see [`Self::with_observer`]).
    observer: Option<Arc<dyn crate::MemObserver>>,
}

impl LazyMemMount {
    /// Mounts an empty filesystem at `mountpoint`, creating the directory if
    /// missing and clearing a stale mount a killed daemon left there.
    /// Faults are served by tasks on `runtime`.
    pub fn mount(
        mountpoint: &Path,
        runtime: Handle,
        opts: MountOptions,
    ) -> Result<Self, LazyMemError> {
        let mountpoint = prepare_mountpoint(mountpoint)?;
        let registry = Arc::new(Registry::new());
        let fs = LazyFs {
            registry: registry.clone(),
            runtime,
            opts,
        };
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            MountOption::FSName("jettison-lazymem".into()),
            MountOption::Subtype("jettison-lazymem".into()),
            MountOption::DefaultPermissions,
            MountOption::NoDev,
            MountOption::NoSuid,
        ];
        // `allow_other`: each VM's QEMU may run as its own user. Files are
        // 0600, owned by that user (`VmMemory::set_owner`), and the kernel
        // checks (`default_permissions`).
        config.acl = fuser::SessionACL::All;
        let session =
            fuser::spawn_mount(fs, &mountpoint, &config).map_err(|source| LazyMemError::Mount {
                op: "mount",
                path: mountpoint.clone(),
                source,
            })?;
        info!(mountpoint = %mountpoint.display(), ?opts, "lazy memory filesystem mounted");
        Ok(Self {
            mountpoint,
            registry,
            opts,
            add_lock: Mutex::new(()),
            session: Some(session),
            observer: None,
        })
    }

    /// Tells `observer` of the faults, fetches, retries and replica hits of
    /// the VMs added from now on (the server's metrics).
    pub fn with_observer(mut self, observer: Arc<dyn crate::MemObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The (absolute) mountpoint.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Serves a new VM as `<name>.mem` of `size` bytes, with a fresh
    /// replica at `replica` (created or truncated; sparse, or allocated
    /// whole with [`crate::MountOptions::reserve_replicas`]) and pages from
    /// `source`.
    ///
    /// Errors: name not 1-100 characters of `[A-Za-z0-9_-]` parts joined
    /// by `.`, size zero or not a multiple of [`PAGE_SIZE`], name already
    /// served, replica not creatable (or its space not reservable: the
    /// replica is removed again).
    pub fn add_vm(
        &self,
        name: &str,
        size: u64,
        replica: &Path,
        source: Arc<dyn PageSource>,
    ) -> Result<Arc<VmMemory>, LazyMemError> {
        self.add_vm_with_history(name, size, replica, source, &[])
    }

    /// Like [`Self::add_vm`], for a VM that used the pages of `history` in
    /// its earlier periods (oldest first): with a working-set prefetch
    /// policy, its first miss also fetches the working set taken from them
    /// ([`crate::PrefetchConfig::first_wake`]; pages beyond `size` ignored).
    pub fn add_vm_with_history(
        &self,
        name: &str,
        size: u64,
        replica: &Path,
        source: Arc<dyn PageSource>,
        history: &[Vec<u64>],
    ) -> Result<Arc<VmMemory>, LazyMemError> {
        if !valid_name(name) {
            return Err(LazyMemError::BadName(name.to_owned()));
        }
        if size == 0 || size % PAGE_SIZE != 0 {
            return Err(LazyMemError::BadSize(size));
        }
        let _guard = self.add_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.registry.contains(name) {
            return Err(LazyMemError::Exists(name.to_owned()));
        }
        let ino = self.registry.alloc_ino();
        let mut working_set = self.opts.prefetch.first_wake(history);
        working_set.retain(|&p| p < size / PAGE_SIZE);
        let ws_pages = working_set.len();
        let vm = Arc::new(VmMemory::new(
            name,
            ino,
            size,
            replica,
            source,
            self.opts.prefetch.group_pages(),
            working_set,
            self.opts.reserve_replicas,
            self.observer.clone(),
        )?);
        self.registry.insert(vm.clone());
        info!(vm = name, size, replica = %replica.display(), working_set = ws_pages, "VM memory added");
        Ok(vm)
    }

    /// The VM served under `name`, if any.
    pub fn vm(&self, name: &str) -> Option<Arc<VmMemory>> {
        self.registry.by_file_name(&format!("{name}.mem"))
    }

    /// Removes `<name>.mem` from the filesystem, ends its pending fetches
    /// (their reads fail with EIO) and deletes its replica. The VM's
    /// [`VmMemory`] handles stay usable for counters, not for page data.
    pub fn remove_vm(&self, name: &str) -> Result<(), LazyMemError> {
        let vm = self
            .registry
            .remove(name)
            .ok_or_else(|| LazyMemError::NotFound(name.to_owned()))?;
        vm.cancel();
        if let Some(session) = &self.session {
            // Best effort: the entry also expires by itself after its TTL.
            let file = format!("{name}.mem");
            let _ = session
                .notifier()
                .inval_entry(INodeNo::ROOT, OsStr::new(&file));
        }
        match std::fs::remove_file(vm.replica_path()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(LazyMemError::io(
                    format!("removing replica {}", vm.replica_path().display()),
                    e,
                ));
            }
            _ => {}
        }
        info!(vm = name, "VM memory removed");
        Ok(())
    }

    /// Path of the VM's memory file in the mount (`<mountpoint>/<name>.mem`).
    pub fn file_path(&self, name: &str) -> PathBuf {
        self.mountpoint.join(format!("{name}.mem"))
    }

    /// Unmounts. If the file is still in use (QEMU running), the mount is
    /// detached lazily and disappears when the last user closes it.
    pub fn unmount(mut self) -> Result<(), LazyMemError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LazyMemError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        for vm in self.registry.list() {
            vm.cancel();
        }
        if let Err(e) = session.umount_and_join() {
            let mounted = std::fs::read_to_string("/proc/self/mountinfo")
                .map(|t| {
                    crate::stale::parse_mountinfo(&t)
                        .iter()
                        .any(|m| m.mount_point == self.mountpoint)
                })
                .unwrap_or(true);
            if !mounted {
                warn!(mountpoint = %self.mountpoint.display(), error = %e, "FUSE session ended with an error");
                return Ok(());
            }
            warn!(mountpoint = %self.mountpoint.display(), error = %e, "unmount failed, detaching lazily");
            umount2(&self.mountpoint, MntFlags::MNT_DETACH).map_err(|e| LazyMemError::Mount {
                op: "unmount",
                path: self.mountpoint.clone(),
                source: e.into(),
            })?;
        }
        info!(mountpoint = %self.mountpoint.display(), "lazy memory filesystem unmounted");
        Ok(())
    }
}

impl Drop for LazyMemMount {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            warn!(error = %e, "unmount on drop failed");
        }
    }
}
