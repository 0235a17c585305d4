//! Migration out, as a procedure over the seam: a [`VmControl`] for the
//! guest at home, a transport to the server and the VM's durable record.
//! The commit is the record's move to `Away`; before it every failure
//! aborts (the server is told, the guest resumes at home), after it the VM
//! is the server's even if the server's last reply is lost (it asks us).

use std::time::{Duration, Instant};

use jettison_qemu::VmControl;
use jettison_wire::{Message, MigrateReport, Transport, HANDOVER_MINOR, MACHINE_MINOR};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::record::VmRecord;
use crate::AgentError;

/// Timeouts of a migration.
#[derive(Debug, Clone, Copy)]
pub struct OutTimeouts {
    /// For the server to prepare, and to load the state.
    pub server: Duration,
    /// For the commit's reply and the abort's delivery.
    pub short: Duration,
}

impl Default for OutTimeouts {
    fn default() -> Self {
        OutTimeouts {
            server: Duration::from_secs(120),
            short: Duration::from_secs(10),
        }
    }
}

/// What a migration asks of the server.
#[derive(Debug, Clone)]
pub struct OutRequest {
    /// The `MigratePrepare` to send.
    pub prepare: Message,
    /// The VM's name.
    pub vm: String,
    /// The server's certificate name, recorded: the desktop serves the
    /// VM's memory only to that server.
    pub server: String,
}

/// Refuses a handover on a connection whose minor has no commit step.
pub(crate) fn require_handover_minor<S: AsyncRead + AsyncWrite + Unpin>(
    t: &Transport<S>,
) -> Result<(), AgentError> {
    if t.minor() < HANDOVER_MINOR {
        return Err(AgentError::Server(format!(
            "the server speaks protocol {}.{}, which has no commit step for handovers \
             (1.{HANDOVER_MINOR} or later is needed): upgrade jettison-server",
            jettison_wire::PROTOCOL_MAJOR,
            t.minor()
        )));
    }
    Ok(())
}

/// Migrates the guest `vm` (running at home) through `t`. On `Ok` the VM is
/// away (committed); on `Err` the record says where it is: `Home` with the
/// guest resumed, or, if even the abort could not be recorded, still
/// `Migrating` with the guest stopped (the error says so).
pub async fn migrate_out<V: VmControl, S: AsyncRead + AsyncWrite + Unpin>(
    record: &VmRecord,
    vm: &V,
    t: &mut Transport<S>,
    req: &OutRequest,
    timeouts: OutTimeouts,
) -> Result<MigrateReport, AgentError> {
    require_handover_minor(t)?;
    if t.minor() < MACHINE_MINOR {
        return Err(AgentError::Server(format!(
            "the server speaks protocol {}.{}, which takes a VM with free-form QEMU arguments \
             and boot paths (1.{MACHINE_MINOR} or later is needed): upgrade jettison-server",
            jettison_wire::PROTOCOL_MAJOR,
            t.minor()
        )));
    }
    record.advance(|s| s.begin_migration(&req.server))?;
    // The latency counts from the guest's stop (after the server is ready).
    let mut started = Instant::now();
    let mut report = MigrateReport {
        vm: req.vm.clone(),
        ..Default::default()
    };
    let before_commit = async {
        expect(t.request(&req.prepare, timeouts.server).await?, "Prepared")?;
        started = Instant::now();
        vm.stop().await?;
        let device_state = vm.save_state().await?;
        report.save_ms = ms(started.elapsed());
        report.device_state_bytes = device_state.len() as u64;
        // The memory file no longer changes: with this state it is the VM's
        // consistent snapshot until it comes home.
        record.save_snapshot(&device_state)?;
        record.advance(|s| s.transferring())?;
        let load = Message::MigrateLoad {
            vm: req.vm.clone(),
            device_state,
        };
        match t.request(&load, timeouts.server).await? {
            Message::MigrateLoaded { restore_ms, .. } => report.restore_ms = restore_ms,
            other => return Err(unexpected("MigrateLoaded", &other)),
        }
        Ok::<_, AgentError>(())
    }
    .await;
    if let Err(e) = before_commit {
        return Err(abort(record, vm, t, &req.vm, e, timeouts.short).await);
    }
    // The commit.
    let since_ms = jettison_qemu::unix_ms() as u64;
    if let Err(e) = record.advance(|s| s.commit_away(since_ms)) {
        return Err(abort(record, vm, t, &req.vm, e, timeouts.short).await);
    }
    let commit = Message::MigrateCommit { vm: req.vm.clone() };
    let sent = if jettison_daemon::fault::drops(commit.kind()) {
        Err(jettison_wire::WireError::Closed)
    } else {
        t.request(&commit, timeouts.short).await
    };
    match sent {
        Ok(Message::MigrateCommitted { .. }) => {}
        Ok(other) => tracing::warn!(
            vm = %req.vm,
            "the server answered the commit with {}; it settles by asking us",
            other.kind()
        ),
        Err(e) => tracing::warn!(
            vm = %req.vm,
            "the commit's reply was lost ({e}); the VM is the server's, which settles by asking us"
        ),
    }
    report.latency_ms = ms(started.elapsed());
    report.bytes_sent = t.bytes_sent();
    Ok(report)
}

/// Gives a migration up before its commit: recorded home first, then the
/// server told (best effort; it also settles by asking), then the guest
/// resumed. Returns the error to report.
async fn abort<V: VmControl, S: AsyncRead + AsyncWrite + Unpin>(
    record: &VmRecord,
    vm: &V,
    t: &mut Transport<S>,
    name: &str,
    cause: AgentError,
    timeout: Duration,
) -> AgentError {
    if let Err(e) = record.advance(|s| s.abort_migration()) {
        // Without the record, resuming here could run the VM twice after a
        // restart (the server may hold it loaded): leave it stopped.
        return AgentError::WrongState(format!(
            "migration of {name} failed ({cause}) and the abort could not be recorded ({e}); \
             the guest stays stopped at home until the record is repaired (see docs/runbook.md)"
        ));
    }
    let msg = Message::MigrateAbort {
        vm: name.into(),
        reason: cause.to_string(),
    };
    if let Err(e) = t.request(&msg, timeout).await {
        tracing::info!(
            vm = name,
            "the server did not take the abort ({e}); it settles by asking"
        );
    }
    match vm.cont().await {
        Ok(()) => {
            // The guest runs again: the snapshot no longer matches its memory.
            let _ = record.drop_snapshot();
            tracing::error!(
                vm = name,
                "migration failed, the VM runs at home again: {cause}"
            );
            cause
        }
        Err(e) => AgentError::WrongState(format!(
            "migration of {name} failed ({cause}) and the guest at home could not resume ({e}): \
             boot it again (jettison start {name})"
        )),
    }
}

pub(crate) fn expect(reply: Message, what: &str) -> Result<Message, AgentError> {
    if reply.kind() == what {
        Ok(reply)
    } else {
        Err(unexpected(what, &reply))
    }
}

pub(crate) fn unexpected(what: &str, got: &Message) -> AgentError {
    match got {
        Message::Error(e) => AgentError::Server(format!("server refused: {}", e.message)),
        other => AgentError::Protocol(format!("expected {what}, got {}", other.kind())),
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
