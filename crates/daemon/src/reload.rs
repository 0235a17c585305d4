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

use std::path::{Path, PathBuf};
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

/// A [`ReadSettings`] for a daemon started from the configuration file
/// `path`: loads it with `load`, warns when it changed outside `[tls]`
/// (compared with `in_force` by their `Debug` forms, the `[tls]` sections
/// made equal: those settings take effect at the next restart only), and
/// returns its `[tls]` section (`tls`). Without a file, every reload is
/// refused.
pub fn from_config_file<C, L, T>(
    path: Option<PathBuf>,
    in_force: C,
    load: L,
    tls: T,
) -> ReadSettings
where
    C: std::fmt::Debug + Clone + Send + Sync + 'static,
    L: Fn(&Path) -> Result<C, String> + Send + Sync + 'static,
    T: Fn(&mut C) -> &mut TlsSettings + Send + Sync + 'static,
{
    let Some(path) = path else {
        return Box::new(|| Err("started without a configuration file to re-read".into()));
    };
    Box::new(move || {
        let mut new = load(&path)?;
        let settings = tls(&mut new).clone();
        let mut same_tls = new;
        *tls(&mut same_tls) = tls(&mut in_force.clone()).clone();
        if format!("{in_force:?}") != format!("{same_tls:?}") {
            tracing::warn!(
                "{} changed outside [tls]: those settings are not reloaded; \
                 they take effect at the next restart",
                path.display()
            );
        }
        Ok(settings)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, serde::Deserialize)]
    struct Toy {
        name: String,
        tls: TlsSettings,
    }

    fn load(path: &Path) -> Result<Toy, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        toml::from_str(&text).map_err(|e| e.to_string())
    }

    fn toy(dir: &Path, name: &str, peers: &[&str]) -> String {
        format!(
            "name = {name:?}\n[tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\nallowed_peers = {peers:?}\n",
            dir.join("ca.pem"),
            dir.join("srv.pem"),
            dir.join("srv.key"),
        )
    }

    #[test]
    fn reload_reads_the_tls_section_and_refuses_what_does_not_load() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        jettison_tls::certs::create_ca(d, "reload test", 2).unwrap();
        jettison_tls::certs::issue(d, "srv", &[], &[], d, 2).unwrap();
        let path = d.join("toy.toml");
        std::fs::write(&path, toy(d, "a", &["desk-1"])).unwrap();
        let in_force = load(&path).unwrap();
        assert_eq!(in_force.name, "a");
        let tls = TlsContext::load(&in_force.tls).unwrap();
        let unnamed = from_config_file(None, in_force.clone(), load, |c| &mut c.tls);
        let read = from_config_file(Some(path.clone()), in_force, load, |c| &mut c.tls);

        // Another peer, and a change outside [tls] (only logged).
        std::fs::write(&path, toy(d, "b", &["desk-2"])).unwrap();
        let r = reload_tls(&tls, &read).unwrap();
        assert_eq!((r.closed.len(), r.kept), (0, 0));
        assert_eq!(tls.allowed_peers(), vec!["desk-2".to_string()]);

        // A file that does not parse, then a key that is missing: refused,
        // the settings in force stay.
        std::fs::write(&path, "name = ").unwrap();
        assert!(reload_tls(&tls, &read).is_err());
        std::fs::write(
            &path,
            toy(d, "b", &["desk-3"]).replace("srv.key", "nope.key"),
        )
        .unwrap();
        let e = reload_tls(&tls, &read).unwrap_err();
        assert!(e.contains("nope.key"), "{e}");
        assert_eq!(tls.allowed_peers(), vec!["desk-2".to_string()]);

        let e = reload_tls(&tls, &unnamed).unwrap_err();
        assert!(e.contains("without a configuration file"), "{e}");
    }
}
