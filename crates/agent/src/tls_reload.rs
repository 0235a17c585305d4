//! What SIGHUP re-reads on the agent: the `[tls]` section of its
//! configuration file (see `jettison_daemon::reload`), refused if it would
//! drop the agent's own server from `allowed_peers`.

use std::path::PathBuf;

use jettison_daemon::reload::{from_config_file, ReadSettings};

use crate::{Agent, AgentConfig};

impl Agent {
    /// Names the configuration file a reload (SIGHUP) re-reads; without it a
    /// reload is refused with a log line.
    pub fn reload_from(mut self, config_file: PathBuf) -> Self {
        self.config_file = Some(config_file);
        self
    }

    /// Reads the `[tls]` settings of the configuration file anew.
    pub(crate) fn tls_reader(&self) -> ReadSettings {
        let read = from_config_file(
            self.config_file.clone(),
            self.config.clone(),
            |p| AgentConfig::load(p).map_err(|e| e.to_string()),
            |c| &mut c.tls,
        );
        let server = self.config.server_name.clone();
        Box::new(move || {
            let settings = read()?;
            if !settings
                .allowed_peers
                .iter()
                .any(|p| p.eq_ignore_ascii_case(&server))
            {
                return Err(format!(
                    "server_name {server:?} is not in the new tls.allowed_peers: \
                     this desktop would refuse its own server"
                ));
            }
            Ok(settings)
        })
    }
}
