//! The VMs served by one mount, by name and by inode number.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::vm::VmMemory;

/// Shared between the mount handle (adds, removes) and the FUSE callbacks.
#[derive(Debug)]
pub(crate) struct Registry {
    maps: RwLock<Maps>,
    /// Inode numbers are never reused, so a stale kernel reference to a removed
    /// VM can never reach a newer one. 1 is the root directory.
    next_ino: AtomicU64,
}

#[derive(Debug, Default)]
struct Maps {
    by_name: BTreeMap<String, Arc<VmMemory>>,
    by_ino: HashMap<u64, Arc<VmMemory>>,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self {
            maps: RwLock::new(Maps::default()),
            next_ino: AtomicU64::new(2),
        }
    }

    pub(crate) fn alloc_ino(&self) -> u64 {
        self.next_ino.fetch_add(1, Ordering::Relaxed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.read().by_name.contains_key(name)
    }

    pub(crate) fn by_ino(&self, ino: u64) -> Option<Arc<VmMemory>> {
        self.read().by_ino.get(&ino).cloned()
    }

    /// Looks up a directory entry name (`<vm>.mem`).
    pub(crate) fn by_file_name(&self, file: &str) -> Option<Arc<VmMemory>> {
        let name = file.strip_suffix(".mem")?;
        self.read().by_name.get(name).cloned()
    }

    /// All VMs, ordered by name.
    pub(crate) fn list(&self) -> Vec<Arc<VmMemory>> {
        self.read().by_name.values().cloned().collect()
    }

    /// Adds `vm`; false if its name is taken.
    pub(crate) fn insert(&self, vm: Arc<VmMemory>) -> bool {
        let mut m = self.write();
        if m.by_name.contains_key(vm.name()) {
            return false;
        }
        m.by_ino.insert(vm.ino(), vm.clone());
        m.by_name.insert(vm.name().to_owned(), vm);
        true
    }

    pub(crate) fn remove(&self, name: &str) -> Option<Arc<VmMemory>> {
        let mut m = self.write();
        let vm = m.by_name.remove(name)?;
        m.by_ino.remove(&vm.ino());
        Some(vm)
    }
}
