//! Reintegration, as a procedure over the seam: an incoming [`VmControl`]
//! at home, a transport to the server, the VM's files and its durable
//! record. The desktop makes everything it received durable and loads it
//! into a paused guest before it says `ReintegrateReady`; the server's
//! durable release is the commit, and only its `ReintegrateCommitted` lets
//! the guest run at home.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jettison_qemu::VmControl;
use jettison_wire::{FileKind, Message, Transport, VmMemStats};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::handover_out::{ms, require_handover_minor, unexpected};
use crate::record::VmRecord;
use crate::vm::{digest_file, write_pages};
use crate::AgentError;

/// The VM's files at home: each path and size.
#[derive(Debug, Clone)]
pub struct HomeFiles {
    /// The memory file.
    pub memory: (PathBuf, u64),
    /// The disk image, if the VM has one.
    pub disk: Option<(PathBuf, u64)>,
}

impl HomeFiles {
    fn get(&self, kind: FileKind) -> Option<&(PathBuf, u64)> {
        match kind {
            FileKind::Memory => Some(&self.memory),
            FileKind::Disk => self.disk.as_ref(),
        }
    }
}

/// What arrived from the server.
#[derive(Debug, Clone)]
pub struct Received {
    /// The device state the guest was loaded with.
    pub device_state_bytes: u64,
    /// Memory pages written.
    pub dirty_pages: u64,
    /// Disk blocks written.
    pub dirty_disk_blocks: u64,
    /// The server's counters.
    pub remote: VmMemStats,
    /// Its disk counters.
    pub remote_disk: Option<VmMemStats>,
    /// Seconds the VM ran on the server.
    pub remote_seconds: f64,
    /// The memory file's digest before the guest resumed (with `verify`).
    pub digest: Option<String>,
    /// Time spent on that digest.
    pub verify_ms: f64,
    /// Time to make the pages, blocks and state durable.
    pub fsync_ms: f64,
}

/// How a reintegration ended.
#[derive(Debug)]
pub enum InOutcome {
    /// The VM runs at home.
    Home(Received),
    /// The server kept the VM (it runs there); the error says why.
    StayedAway(AgentError),
    /// Ready was recorded but the server's answer was lost: only asking the
    /// server settles it. The guest stays loaded and paused.
    InDoubt(AgentError),
}

/// Brings `vm` home from the server through `t` into `incoming` (a QEMU
/// waiting for a state). `verify` digests the memory file before resuming.
pub async fn bring_home<V: VmControl, S: AsyncRead + AsyncWrite + Unpin>(
    record: &VmRecord,
    incoming: &V,
    files: &HomeFiles,
    t: &mut Transport<S>,
    vm: &str,
    verify: bool,
    timeout: Duration,
) -> InOutcome {
    if let Err(e) = require_handover_minor(t) {
        return InOutcome::StayedAway(e);
    }
    if let Err(e) = record.advance(|s| s.begin_return()) {
        return InOutcome::StayedAway(e);
    }
    let received = async {
        t.send(&Message::Reintegrate { vm: vm.into() }).await?;
        let r = receive(record, files, t, timeout).await?;
        incoming.load_state(&r.1).await?;
        record.advance(|s| s.ready())?;
        Ok::<_, AgentError>(r.0)
    }
    .await;
    let mut received = match received {
        Ok(r) => r,
        Err(e) => {
            if let Err(re) = record.advance(|s| s.abort_return()) {
                return InOutcome::InDoubt(AgentError::WrongState(format!(
                    "reintegration of {vm} failed ({e}) and could not be recorded as given up ({re})"
                )));
            }
            let _ = t
                .send(&Message::ReintegrateAbort {
                    vm: vm.into(),
                    reason: e.to_string(),
                })
                .await;
            return InOutcome::StayedAway(e);
        }
    };
    if verify {
        let started = Instant::now();
        let path = files.memory.0.clone();
        match tokio::task::spawn_blocking(move || digest_file(&path)).await {
            Ok(Ok(d)) => received.digest = Some(d),
            Ok(Err(e)) => tracing::warn!(vm, "digest of the memory file failed: {e}"),
            Err(e) => tracing::warn!(vm, "digest task: {e}"),
        }
        received.verify_ms = ms(started.elapsed());
    }
    let ready = Message::ReintegrateReady { vm: vm.into() };
    if jettison_daemon::fault::drops(ready.kind()) {
        return InOutcome::InDoubt(AgentError::Wire(jettison_wire::WireError::Closed));
    }
    match t.request(&ready, timeout).await {
        Ok(Message::ReintegrateCommitted { .. }) => {}
        Ok(other) => return InOutcome::InDoubt(unexpected("ReintegrateCommitted", &other)),
        Err(e) => return InOutcome::InDoubt(e.into()),
    }
    if let Err(e) = finish_home(record, incoming).await {
        return InOutcome::InDoubt(e);
    }
    // Lets the server drop its record; it also does when it next asks us.
    let _ = t.send(&Message::ReintegrateDone { vm: vm.into() }).await;
    InOutcome::Home(received)
}

/// The server committed the return: record home, then run the guest. Once
/// it runs, the memory file moves on and the snapshot no longer matches it.
pub async fn finish_home<V: VmControl>(record: &VmRecord, vm: &V) -> Result<(), AgentError> {
    record.advance(|s| s.committed_home())?;
    vm.cont().await?;
    if let Err(e) = record.drop_snapshot() {
        tracing::warn!("dropping the stale snapshot: {e}");
    }
    Ok(())
}

/// Receives the device state and the dirty pages, writes the pages into
/// the files and makes them and the state durable. Returns the counts and
/// the device state.
async fn receive<S: AsyncRead + AsyncWrite + Unpin>(
    record: &VmRecord,
    files: &HomeFiles,
    t: &mut Transport<S>,
    timeout: Duration,
) -> Result<(Received, Vec<u8>), AgentError> {
    let first = t.recv_within(timeout).await?;
    let Message::ReintegrateBegin {
        device_state,
        dirty_pages,
        dirty_disk_blocks,
        remote,
        remote_disk,
        remote_seconds,
        ..
    } = first
    else {
        return Err(unexpected("ReintegrateBegin", &first));
    };
    // The files change now: the snapshot of the way out no longer matches.
    record.drop_snapshot()?;
    let mut written = [0u64; 2];
    let mut open: [Option<std::sync::Arc<std::fs::File>>; 2] = [None, None];
    loop {
        match t.recv_within(timeout).await? {
            Message::DirtyPages { file: kind, pages } => {
                let (path, size) = files.get(kind).cloned().ok_or_else(|| {
                    AgentError::Protocol(format!("dirty {kind:?} pages for a VM without one"))
                })?;
                let i = (kind == FileKind::Disk) as usize;
                written[i] += pages.len() as u64;
                if open[i].is_none() {
                    let f = std::fs::OpenOptions::new().write(true).open(&path)?;
                    open[i] = Some(std::sync::Arc::new(f));
                }
                let file = open[i].clone().expect("opened above");
                tokio::task::spawn_blocking(move || write_pages(&file, size, &pages))
                    .await
                    .map_err(|e| AgentError::Protocol(format!("page writer task: {e}")))??;
            }
            Message::ReintegrateEnd { .. } => break,
            other => return Err(unexpected("DirtyPages", &other)),
        }
    }
    if written != [dirty_pages, dirty_disk_blocks] {
        return Err(AgentError::Protocol(format!(
            "server announced {dirty_pages} dirty pages and {dirty_disk_blocks} disk blocks but sent {} and {}",
            written[0], written[1]
        )));
    }
    let started = Instant::now();
    let files_written: Vec<_> = open.into_iter().flatten().collect();
    tokio::task::spawn_blocking(move || files_written.iter().try_for_each(|f| f.sync_all()))
        .await
        .map_err(|e| AgentError::Protocol(format!("fsync task: {e}")))??;
    record.save_snapshot(&device_state)?;
    let fsync_ms = ms(started.elapsed());
    Ok((
        Received {
            device_state_bytes: device_state.len() as u64,
            dirty_pages,
            dirty_disk_blocks,
            remote,
            remote_disk,
            remote_seconds,
            digest: None,
            verify_ms: 0.0,
            fsync_ms,
        },
        device_state,
    ))
}
