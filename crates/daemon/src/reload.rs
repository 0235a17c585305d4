//! Reloading a daemon's TLS settings on SIGHUP, and the daily expiry check.
//!
//! On SIGHUP the daemon re-reads its configuration file and applies its
//! `[tls]` section ([`jettison_tls::TlsContext::reload`]): certificate,
//! key, CA, CRL, `allowed_peers` and `expiry_warning_days`. New handshakes
//! use them; established connections of peers they refuse are closed,
//! the others carry on; no VM is touched. A file that does not parse, or
//! settings that do not load, are refused with an error in the log and the
//! settings in force stay. Settings outside `[tls]` are not re-read (a log
//! line says so when they changed): they take effect at the next restart.

use std::sync::Arc;
use std::time::Duration;

use jettison_tls::{TlsContext, TlsSettings};
use tokio::signal::unix::{signal, SignalKind};

/// How often the expiry of our certificate and the CA is checked.
pub const EXPIRY_CHECK_EVERY: Duration = Duration::from_secs(86_400);

/// What a reload reads: the new `[tls]` settings, or why there are none.
pub type ReadSettings = Box<dyn Fn() -> Result<TlsSettings, String> + Send + Sync>;

/// Re-reads the settings with `read` and applies them to `tls` (the entry
/// point of SIGHUP). Logs the outcome; on error the settings in force stay.
pub fn reload_tls(tls: &TlsContext, read: &ReadSettings) -> Result<jettison_tls::Reloaded, String> {
    tracing::info!("reload requested: re-reading the TLS settings");
    let result = read().and_then(|settings| tls.reload(&settings).map_err(|e| e.to_string()));
    match &result {
        Ok(r) => tracing::info!(
            closed = r.closed.len(),
            kept = r.kept,
            "reload done: new handshakes use the new TLS settings"
        ),
        Err(e) => tracing::error!("reload refused, the TLS settings in force stay: {e}"),
    }
    result
}

/// Installs the SIGHUP handler now (so that a SIGHUP from here on reloads
/// rather than kills the process) and spawns the task that reloads on each
/// one and checks the expiry every [`EXPIRY_CHECK_EVERY`]. Abort the task
/// to stop.
pub fn spawn_tls_upkeep(
    tls: Arc<TlsContext>,
    read: ReadSettings,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        let start = tokio::time::Instant::now() + EXPIRY_CHECK_EVERY;
        let mut daily = tokio::time::interval_at(start, EXPIRY_CHECK_EVERY);
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    let _ = reload_tls(&tls, &read);
                }
                _ = daily.tick() => tls.warn_if_expiring(),
            }
        }
    }))
}

/// Warns when a re-read configuration differs from the one in force outside
/// `[tls]` (compared by their `Debug` forms with the `[tls]` sections made
/// equal): those settings take effect at the next restart only.
pub fn warn_if_other_settings_changed<C: std::fmt::Debug + Clone>(
    in_force: &C,
    reread: &C,
    same_tls: impl FnOnce(&mut C),
) {
    let mut reread = reread.clone();
    same_tls(&mut reread);
    if format!("{in_force:?}") != format!("{reread:?}") {
        tracing::warn!(
            "the configuration file changed outside [tls]: those settings are not reloaded; \
             they take effect at the next restart"
        );
    }
}
