//! The FUSE callbacks: a flat root directory of `<vm>.mem` files.
//!
//! Runs on fuser's single session thread. Anything that may wait on the
//! network (a READ miss, a WRITE patching an absent page) is handed to the
//! tokio runtime together with its reply object; hits and plain writes are
//! served from the local replica right away.

use std::ffi::OsStr;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use tokio::runtime::Handle;
use tracing::{info, warn};

use crate::registry::Registry;
use crate::vm::VmMemory;
use crate::{MountOptions, PAGE_SIZE};

/// How long the kernel may cache attributes and entries. Sizes never change;
/// the bound only limits how long a removed VM's entry lingers.
const TTL: Duration = Duration::from_secs(1);

/// The filesystem given to fuser.
#[derive(Debug)]
pub(crate) struct LazyFs {
    pub(crate) registry: Arc<Registry>,
    pub(crate) runtime: Handle,
    pub(crate) opts: MountOptions,
}

fn dir_attr() -> FileAttr {
    attr(INodeNo::ROOT, 0, UNIX_EPOCH, FileType::Directory, 0o755, 2)
}

fn file_attr(vm: &VmMemory) -> FileAttr {
    let (uid, gid) = vm.owner();
    FileAttr {
        uid,
        gid,
        ..attr(
            INodeNo(vm.ino()),
            vm.size(),
            vm.created(),
            FileType::RegularFile,
            0o600,
            1,
        )
    }
}

fn attr(ino: INodeNo, size: u64, t: SystemTime, kind: FileType, perm: u16, nlink: u32) -> FileAttr {
    FileAttr {
        ino,
        size,
        blocks: size.div_ceil(512),
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        kind,
        perm,
        nlink,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: PAGE_SIZE as u32,
        flags: 0,
    }
}

impl LazyFs {
    pub(crate) fn vm(&self, ino: INodeNo) -> Option<Arc<VmMemory>> {
        self.registry.by_ino(ino.0)
    }
}

impl Filesystem for LazyFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // The kernel keeps max_readahead / 4096 pages of readahead; fuser
        // refuses 0, and 1 byte already means "no readahead".
        let wanted = self.opts.max_readahead.max(1);
        let set = match config.set_max_readahead(wanted) {
            Ok(_) => wanted,
            Err(nearest) => {
                let _ = config.set_max_readahead(nearest);
                nearest
            }
        };
        info!(
            max_readahead = set,
            prefetch = %self.opts.prefetch.name(),
            "lazy memory fs initialised"
        );
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let vm = name.to_str().and_then(|n| self.registry.by_file_name(n));
        match vm {
            Some(vm) if parent == INodeNo::ROOT => {
                reply.entry(&TTL, &file_attr(&vm), Generation(0));
            }
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino == INodeNo::ROOT {
            return reply.attr(&TTL, &dir_attr());
        }
        match self.vm(ino) {
            Some(vm) => reply.attr(&TTL, &file_attr(&vm)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let Some(vm) = self.vm(ino) else {
            return reply.error(Errno::EPERM);
        };
        // Only a no-op truncate (to the same size) is allowed; times are ignored.
        if size.is_some_and(|s| s != vm.size()) || mode.is_some() || uid.is_some() || gid.is_some()
        {
            warn!(vm = vm.name(), ?size, ?mode, ?uid, ?gid, "refused setattr");
            return reply.error(Errno::EPERM);
        }
        reply.attr(&TTL, &file_attr(&vm));
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // KEEP_CACHE: the daemon is the only source of the content, so the
        // kernel's cache never goes stale, and an open (say, to fsync) must not
        // invalidate the page cache under QEMU's mapping. Never DIRECT_IO:
        // mmap needs the page cache.
        match self.vm(ino) {
            Some(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.serve_read(ino, offset, size, reply);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.serve_write(ino, offset, data, reply);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // The kernel has written back every dirty page (as WRITEs, applied to
        // the replica synchronously) before it sends FSYNC. The replica is a
        // cache that dies with the daemon, so it needs no fsync of its own.
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino != INodeNo::ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let dots = [
            (INodeNo::ROOT, FileType::Directory, ".".to_owned()),
            (INodeNo::ROOT, FileType::Directory, "..".to_owned()),
        ];
        let files = self.registry.list().into_iter().map(|vm| {
            (
                INodeNo(vm.ino()),
                FileType::RegularFile,
                format!("{}.mem", vm.name()),
            )
        });
        for (i, (ino, kind, name)) in dots
            .into_iter()
            .chain(files)
            .enumerate()
            .skip(offset as usize)
        {
            if reply.add(ino, i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let vms = self.registry.list();
        let blocks = vms.iter().map(|vm| vm.size() / PAGE_SIZE).sum();
        reply.statfs(
            blocks,
            0,
            0,
            vms.len() as u64,
            0,
            PAGE_SIZE as u32,
            255,
            PAGE_SIZE as u32,
        );
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Permissions are checked by the kernel (default_permissions).
        if ino == INodeNo::ROOT || self.vm(ino).is_some() {
            reply.ok();
        } else {
            reply.error(Errno::ENOENT);
        }
    }
}
