//! What SIGHUP re-reads on the agent: the `[tls]` section of its
//! configuration file (see `jettison_daemon::reload`), refused if it would
//! drop the agent's own server from `allowed_peers`.

use std::path::PathBuf;

use jettison_daemon::reload::{warn_if_other_settings_changed, ReadSettings};

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
        let Some(path) = self.config_file.clone() else {
            return Box::new(|| {
                Err("the agent was started without a configuration file to re-read".into())
            });
        };
        let in_force = self.config.clone();
        Box::new(move || {
            let new = AgentConfig::load(&path).map_err(|e| e.to_string())?;
            warn_if_other_settings_changed(&in_force, &new, |c| c.tls = in_force.tls.clone());
            let server = &in_force.server_name;
            if !new
                .tls
                .allowed_peers
                .iter()
                .any(|p| p.eq_ignore_ascii_case(server))
            {
                return Err(format!(
                    "server_name {server:?} is not in the new tls.allowed_peers: \
                     this desktop would refuse its own server"
                ));
            }
            Ok(new.tls)
        })
    }
}
