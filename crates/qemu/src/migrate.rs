//! Partial migration (`x-ignore-shared`): device state out to bytes, bytes back in.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast::error::RecvError;

use crate::error::{QemuError, Result};
use crate::instance::{remove_stale, Qemu};
use crate::qmp::{
    Migrate, MigrateIncoming, MigrateSetCapabilities, MigrationInfo, MigrationStatus, QueryMigrate,
};

/// Capabilities set on both sides. `events` makes QEMU emit `MIGRATION` events.
/// Never add `mapped-ram` or postcopy here (they do not combine with `x-ignore-shared`).
pub const CAPABILITIES: &[&str] = &["x-ignore-shared", "events"];

/// Aborts a task when dropped (so an error path leaves nothing running).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Qemu {
    /// Outgoing partial migration: sets `x-ignore-shared`, runs `migrate` to a unix socket
    /// this function listens on, reads the whole stream and waits for `completed`.
    /// Returns the device-state bytes. Stop the VM first (caller's job).
    pub async fn migrate_out(&self) -> Result<Vec<u8>> {
        let started = Instant::now();
        let deadline = started + self.migration_timeout();
        let sock = self.opts.migration_socket();
        remove_stale(&sock)?;
        let listener = UnixListener::bind(&sock)
            .map_err(|e| QemuError::io(format!("bind {}", sock.display()), e))?;
        if let Some(c) = self.opts.confine {
            // A confined QEMU connects as its own user.
            crate::instance::give(&sock, c)?;
        }
        let mut reader = AbortOnDrop(tokio::spawn(async move {
            let (mut s, _) = listener.accept().await?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        }));
        let result = async {
            self.checked(self.qmp.execute(&MigrateSetCapabilities::enable(CAPABILITIES)))
                .await?;
            let mut events = self.qmp.subscribe();
            let uri = format!("unix:{}", sock.display());
            self.checked(self.qmp.execute(&Migrate { uri })).await?;
            let info = self.wait_migration(&mut events, deadline).await?;
            self.wait_postmigrate(deadline).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            let bytes = tokio::time::timeout(left, &mut reader.0)
                .await
                .map_err(|_| QemuError::Migration("migration stream did not end".into()))?
                .map_err(|e| QemuError::Migration(format!("stream reader: {e}")))?
                .map_err(|e| QemuError::io("read migration stream", e))?;
            tracing::info!(vm = %self.name, bytes = bytes.len(), ms = started.elapsed().as_millis() as u64,
                qemu_total_ms = ?info.total_time, "migrated device state out");
            Ok(bytes)
        }
        .await;
        let _ = std::fs::remove_file(&sock);
        result
    }

    /// Waits until the run state is `postmigrate`. QEMU reports `completed`
    /// a moment before it sets that state; a `cont` sent in between runs the
    /// guest but leaves the state `postmigrate`, and every later migration
    /// (the next checkpoint, the way home) is then refused ("paused due to
    /// previous migration").
    async fn wait_postmigrate(&self, deadline: Instant) -> Result<()> {
        loop {
            let state = self.status().await?;
            if state == crate::RunState::Postmigrate {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(QemuError::Migration(format!(
                    "the guest is {state:?}, not postmigrate, after the migration"
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Incoming partial migration (only with `incoming = true`): sets `x-ignore-shared`,
    /// runs `migrate-incoming` on a unix socket, writes `state` into it and waits for
    /// `completed` (error on `failed` or timeout). Does NOT `cont`: the caller does, and
    /// only after this returns (a `cont` sent earlier silently leaves the guest paused).
    pub async fn migrate_in(&self, state: &[u8]) -> Result<()> {
        if !self.opts.incoming {
            return Err(QemuError::NotIncoming(self.name.clone()));
        }
        let started = Instant::now();
        let deadline = started + self.migration_timeout();
        let sock = self.opts.migration_socket();
        remove_stale(&sock)?;
        let result = async {
            self.checked(self.qmp.execute(&MigrateSetCapabilities::enable(CAPABILITIES)))
                .await?;
            let mut events = self.qmp.subscribe();
            let uri = format!("unix:{}", sock.display());
            self.checked(self.qmp.execute(&MigrateIncoming { uri })).await?;
            let send = async {
                let mut s = UnixStream::connect(&sock).await?;
                s.write_all(state).await?;
                s.shutdown().await?;
                Ok::<_, std::io::Error>(s)
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let stream = match tokio::time::timeout(left, send).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    return Err(match self.child.exited_error() {
                        Some(ex) => ex,
                        None => QemuError::io("send migration stream", e),
                    })
                }
                Err(_) => return Err(QemuError::Migration("sending the stream timed out".into())),
            };
            let info = self.wait_migration(&mut events, deadline).await?;
            drop(stream);
            tracing::info!(vm = %self.name, bytes = state.len(), ms = started.elapsed().as_millis() as u64,
                qemu_total_ms = ?info.total_time, "migrated device state in");
            Ok(())
        }
        .await;
        let _ = std::fs::remove_file(&sock);
        result
    }

    /// Polls `query-migrate` (woken early by `MIGRATION` events) until `completed`.
    async fn wait_migration(
        &self,
        events: &mut tokio::sync::broadcast::Receiver<crate::qmp::QmpEvent>,
        deadline: Instant,
    ) -> Result<MigrationInfo> {
        loop {
            if let Some(e) = self.child.exited_error() {
                return Err(e);
            }
            let info = self.checked(self.qmp.execute(&QueryMigrate {})).await?;
            match info.status {
                Some(MigrationStatus::Completed) => return Ok(info),
                Some(s @ (MigrationStatus::Failed | MigrationStatus::Cancelled)) => {
                    return Err(QemuError::Migration(format!(
                        "status {s:?}: {}",
                        info.error_desc.as_deref().unwrap_or("no error description")
                    )))
                }
                _ => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(QemuError::Migration(format!(
                    "not completed in time (last status {:?})",
                    info.status
                )));
            }
            let nap = Duration::from_millis(20).min(deadline - now);
            let _ = tokio::time::timeout(nap, async {
                loop {
                    match events.recv().await {
                        Ok(ev) if ev.event == "MIGRATION" => break,
                        Ok(_) | Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => std::future::pending::<()>().await,
                    }
                }
            })
            .await;
        }
    }
}
