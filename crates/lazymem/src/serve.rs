//! READ and WRITE service, the only callbacks that touch page data.

use std::time::Instant;

use fuser::{Errno, INodeNo, ReplyData, ReplyWrite};
use tracing::{error, info, warn};

use crate::fault::RunClaim;
use crate::fs::LazyFs;
use crate::vm::{page_range, VmMemory};

/// The `tracing` target of the per-fault latency events (`debug`): enable
/// it (`RUST_LOG=info,jettison_lazymem::fault_latency=debug`) to read the
/// fault latency of a window from the log, e.g. `fault served vm=a us=812`.
pub const FAULT_LATENCY_TARGET: &str = "jettison_lazymem::fault_latency";

impl LazyFs {
    /// READ: a hit is served from the replica on the session thread; a miss
    /// is handed to the runtime, which fetches, stores and replies.
    pub(crate) fn serve_read(&self, ino: INodeNo, offset: u64, size: u32, reply: ReplyData) {
        let arrival = Instant::now();
        let Some(vm) = self.vm(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let len = vm.clamp(offset, u64::from(size));
        if len == 0 {
            return reply.data(&[]);
        }
        match vm.read_if_present(offset, len) {
            Some(Ok(buf)) => {
                vm.stats.replica_hit();
                reply.data(&buf);
            }
            Some(Err(e)) => {
                error!(vm = vm.name(), offset, len, error = %e, "replica read failed");
                reply.error(Errno::EIO);
            }
            None => {
                self.runtime.spawn(async move {
                    // The period's first miss also brings the working set,
                    // after its own reply.
                    let working_set = vm.take_working_set();
                    let wanted: Vec<u64> = page_range(offset, len).collect();
                    let res = match vm.ensure_present(&wanted).await {
                        Ok(()) => vm.read_present(offset, len).map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    // Claimed before the reply, so that no fault it lets
                    // through can fetch a working-set page on its own.
                    let prefetch = working_set
                        .filter(|_| res.is_ok())
                        .map(|ws| (vm.claim_runs(&ws), ws.len()));
                    // Counted just before the reply, so a reader that sees its
                    // data also sees the fault in the counters.
                    let service = arrival.elapsed();
                    vm.stats.fault(service);
                    // One event per fault: a window of the log gives the
                    // latency of that window (the counters are cumulative).
                    tracing::debug!(
                        target: FAULT_LATENCY_TARGET,
                        vm = vm.name(),
                        us = u64::try_from(service.as_micros()).unwrap_or(u64::MAX),
                        "fault served"
                    );
                    match res {
                        Ok(buf) => reply.data(&buf),
                        Err(e) => {
                            error!(vm = vm.name(), offset, len, error = %e, "fault failed");
                            reply.error(Errno::EIO);
                        }
                    }
                    if let Some((claims, n)) = prefetch {
                        prefetch_working_set(&vm, claims, n).await;
                    }
                });
            }
        }
    }

    /// WRITE: applied to the replica and marked dirty; a partly covered
    /// absent page is fetched first (on the runtime), then patched.
    pub(crate) fn serve_write(&self, ino: INodeNo, offset: u64, data: &[u8], reply: ReplyWrite) {
        let Some(vm) = self.vm(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let len = data.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > vm.size()) {
            return reply.error(Errno::EFBIG);
        }
        if len == 0 {
            return reply.written(0);
        }
        let need = vm.partial_absent(offset, len);
        if need.is_empty() {
            return match vm.write(offset, data) {
                Ok(()) => reply.written(len as u32),
                Err(e) => {
                    error!(vm = vm.name(), offset, len, error = %e, "replica write failed");
                    reply.error(Errno::EIO)
                }
            };
        }
        // A partly covered absent page must be fetched before it is patched.
        let data = data.to_vec();
        self.runtime.spawn(async move {
            let working_set = vm.take_working_set();
            let res = match vm.ensure_present(&need).await {
                Ok(()) => vm.write(offset, &data).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let prefetch = working_set
                .filter(|_| res.is_ok())
                .map(|ws| (vm.claim_runs(&ws), ws.len()));
            match res {
                Ok(()) => reply.written(len as u32),
                Err(e) => {
                    error!(vm = vm.name(), offset, len, error = %e, "write failed");
                    reply.error(Errno::EIO);
                }
            }
            if let Some((claims, n)) = prefetch {
                prefetch_working_set(&vm, claims, n).await;
            }
        });
    }
}

/// Fetches a VM's claimed working set (of `n` pages) after its first miss
/// was answered.
async fn prefetch_working_set(vm: &VmMemory, claims: Vec<RunClaim<'_>>, n: usize) {
    let started = Instant::now();
    match vm.fetch_claimed(claims).await {
        Ok((fetched, fetches)) => info!(
            vm = vm.name(),
            working_set = n,
            fetched,
            fetches,
            ms = started.elapsed().as_millis() as u64,
            "working set prefetched"
        ),
        Err(e) => warn!(vm = vm.name(), error = %e, "working set prefetch ended"),
    }
}
