//! What the agent checks of its configuration before it acts on anything:
//! run at start-up by [`crate::Agent::new`] and alone by
//! `jettison-agent --check-config`, so the two cannot disagree. Every
//! problem is collected (not only the first), each naming the setting or
//! file at fault.

use std::path::Path;
use std::sync::Arc;

use jettison_tls::TlsContext;

use crate::config::AgentConfig;
use crate::record::VmRecord;

/// What the checks loaded, for the start-up to use.
#[derive(Debug)]
pub struct Checked {
    /// The TLS context (certificate, key, CA, CRL).
    pub tls: Arc<TlsContext>,
}

/// The problems of a configuration (shared with the other daemon).
pub use jettison_daemon::paths::Problems;

/// Checks `config` without acting: the TLS material (certificate, key,
/// CA, CRL) loads and names the server among the allowed peers, the QEMU
/// binary and each VM's boot files exist, the directories exist or can be
/// made, each VM's record reads, the `[power]` settings hold.
pub fn check(config: &AgentConfig) -> Result<Checked, Problems> {
    let mut problems = Vec::new();
    let tls = match TlsContext::load(&config.tls) {
        Ok(tls) => {
            if !tls.is_allowed(&config.server_name) {
                problems.push(format!(
                    "server_name {:?} is not in tls.allowed_peers: this desktop would refuse its own server",
                    config.server_name
                ));
            }
            Some(tls)
        }
        Err(e) => {
            problems.push(format!(
                "tls: {e} (host certificates: `jettison certs issue`)"
            ));
            None
        }
    };
    if let Err(e) = jettison_daemon::paths::find_program(&config.qemu_binary) {
        problems.push(format!("qemu_binary: {e}"));
    }
    for (what, dir) in [
        ("state_dir", &config.state_dir),
        ("run_dir", &config.run_dir),
        ("memory_dir", &config.memory_dir),
    ] {
        if let Err(e) = jettison_daemon::paths::dir_can_be(dir) {
            problems.push(format!("{what}: {e}"));
        }
    }
    for vm in &config.vms {
        for (what, file) in [("kernel", &vm.kernel), ("initrd", &vm.initrd)] {
            if let Some(file) = file {
                if let Err(e) = readable_file(file) {
                    problems.push(format!("vm {:?}: {what}: {e}", vm.name));
                }
            }
        }
        if let Some(disk) = &vm.disk {
            // existing and raw: never created, qcow2 refused
            if let Err(e) = crate::disk_image::check_disk(&vm.name, disk) {
                problems.push(e.to_string());
            }
        }
        if config.state_dir.is_dir() {
            if let Err(e) = VmRecord::load(&config.state_dir, &vm.name) {
                problems.push(format!("vm {:?}: its record: {e}", vm.name));
            }
        }
    }
    if let Some(Err(e)) = config.power.as_ref().map(crate::power::check) {
        problems.push(e.to_string());
    }
    match tls {
        Some(tls) if problems.is_empty() => Ok(Checked { tls }),
        _ => Err(Problems { problems }),
    }
}

fn readable_file(path: &Path) -> Result<(), String> {
    std::fs::File::open(path)
        .and_then(|f| f.metadata())
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|m| {
            m.is_file()
                .then_some(())
                .ok_or_else(|| format!("{}: not a regular file", path.display()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_listed_and_nothing_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let file = t.join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let text = format!(
            "server = \"s:7400\"\nserver_name = \"srv\"\nqemu_binary = \"/nonexistent/qemu\"\n\
             advertise = \"10.0.0.17:7401\"\n\
             state_dir = {:?}\nrun_dir = {:?}\nmemory_dir = {:?}\n\
             [tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\nallowed_peers = [\"srv\"]\n\
             [[vm]]\nname = \"a\"\nmemory_mib = 64\nkernel = {:?}\n",
            file.join("state"),
            t.join("run"),
            t.join("shm"),
            t.join("ca.pem"),
            t.join("h.pem"),
            t.join("h.key"),
            t.join("vmlinuz"),
        );
        let config = AgentConfig::parse(&text).unwrap();
        let problems = check(&config).unwrap_err().problems;
        let want = [
            "tls: cannot read",
            "qemu_binary: /nonexistent/qemu",
            "state_dir: ",
            "vm \"a\": kernel: ",
        ];
        assert_eq!(problems.len(), want.len(), "{problems:#?}");
        for (p, w) in problems.iter().zip(want) {
            assert!(p.starts_with(w), "{p:?} should start with {w:?}");
        }
        assert!(problems[2].contains("cannot be made"), "{problems:#?}");
        assert!(!t.join("run").exists() && !t.join("shm").exists());
    }
}
