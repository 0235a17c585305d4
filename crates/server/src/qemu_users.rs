//! The users the server's QEMUs run as: one of its own per VM, taken from a
//! range of ids that no account uses (`qemu_first_uid` and the `max_vms`
//! after it), held while the VM's QEMU lives and given back when its guest
//! goes. Its group is the `kvm` group where guests use KVM (to open
//! `/dev/kvm`), its own id otherwise. Pure bookkeeping and one directory
//! per lease: the files are given to the user by the caller.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jettison_qemu::Confinement;

/// The range and who holds what.
#[derive(Debug)]
pub struct QemuUsers {
    jail: bool,
    first: u32,
    count: u32,
    gid: Option<u32>,
    taken: Mutex<BTreeSet<u32>>,
}

/// One VM's user, given back when dropped (after its QEMU: see `Guest`),
/// with its run directory removed.
#[derive(Debug)]
pub struct Lease {
    users: Arc<QemuUsers>,
    /// Who its QEMU runs as.
    pub confinement: Confinement,
    /// Its QEMU's run directory (sockets), removed with the lease.
    pub run_dir: PathBuf,
}

impl QemuUsers {
    /// Ids `first .. first + count`; every QEMU in group `gid`, or in a
    /// group of its own id when `None`; in a mount namespace of its own with
    /// `jail`.
    pub fn new(first: u32, count: u32, gid: Option<u32>, jail: bool) -> Arc<Self> {
        Arc::new(QemuUsers {
            jail,
            first,
            count,
            gid,
            taken: Mutex::new(BTreeSet::new()),
        })
    }

    /// The lowest free id, for a QEMU whose run directory is `run_dir`;
    /// `None` when all are taken.
    pub fn lease(self: &Arc<Self>, run_dir: PathBuf) -> Option<Lease> {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        let uid =
            (self.first..self.first.saturating_add(self.count)).find(|u| !taken.contains(u))?;
        taken.insert(uid);
        Some(Lease {
            users: self.clone(),
            confinement: Confinement {
                uid,
                gid: self.gid.unwrap_or(uid),
                jail: self.jail,
            },
            run_dir,
        })
    }

    /// Ids held now.
    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        self.taken.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.run_dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.run_dir.display(), "QEMU run directory not removed: {e}");
            }
        }
        let mut taken = self.users.taken.lock().unwrap_or_else(|p| p.into_inner());
        taken.remove(&self.confinement.uid);
    }
}

/// The gid of group `kvm`, if this host has one.
pub fn kvm_gid() -> Option<u32> {
    nix::unistd::Group::from_name("kvm")
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_distinct_bounded_and_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let users = QemuUsers::new(5000, 2, None, true);
        let a = users.lease(dir.path().join("a")).unwrap();
        std::fs::create_dir(&a.run_dir).unwrap();
        let b = users.lease(dir.path().join("b")).unwrap();
        assert_eq!((a.confinement.uid, a.confinement.gid), (5000, 5000));
        assert_eq!(b.confinement.uid, 5001);
        assert!(users.lease(dir.path().join("c")).is_none(), "range full");
        let run = a.run_dir.clone();
        drop(a);
        assert!(!run.exists(), "run directory removed with the lease");
        assert_eq!(users.in_use(), 1);
        let c = users.lease(dir.path().join("c")).unwrap();
        assert_eq!(c.confinement.uid, 5000, "the freed id is taken again");
    }

    #[test]
    fn a_shared_group_is_used_when_given() {
        let users = QemuUsers::new(7000, 4, Some(36), false);
        let l = users.lease(PathBuf::from("/nonexistent/x")).unwrap();
        assert_eq!((l.confinement.uid, l.confinement.gid), (7000, 36));
    }
}
