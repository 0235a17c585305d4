//! What SIGHUP re-reads on the server: the `[tls]` section of its
//! configuration file (see `jettison_daemon::reload`).

use std::path::PathBuf;

use jettison_daemon::reload::{warn_if_other_settings_changed, ReadSettings};

use crate::{Server, ServerConfig};

impl Server {
    /// Names the configuration file a reload (SIGHUP) re-reads; without it a
    /// reload is refused with a log line.
    pub fn reload_from(mut self, config_file: PathBuf) -> Self {
        self.config_file = Some(config_file);
        self
    }

    /// Reads the `[tls]` settings of the configuration file anew.
    pub(crate) fn tls_reader(&self) -> ReadSettings {
        let Some(path) = self.config_file.clone() else {
            return Box::new(|| {
                Err("the server was started without a configuration file to re-read".into())
            });
        };
        let in_force = self.config.clone();
        Box::new(move || {
            let new = ServerConfig::load(&path)?;
            warn_if_other_settings_changed(&in_force, &new, |c| c.tls = in_force.tls.clone());
            Ok(new.tls)
        })
    }
}
