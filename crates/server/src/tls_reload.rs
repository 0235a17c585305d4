//! What SIGHUP re-reads on the server: the `[tls]` section of its
//! configuration file (see `jettison_daemon::reload`).

use std::path::PathBuf;

use jettison_daemon::reload::{from_config_file, ReadSettings};

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
        from_config_file(
            self.config_file.clone(),
            self.config.clone(),
            ServerConfig::load,
            |c| &mut c.tls,
        )
    }
}
