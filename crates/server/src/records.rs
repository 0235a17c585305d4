//! The server's durable handover records, one file per VM
//! (`<state_dir>/handover/<vm>.json`): its [`ServerState`], the desktop that
//! brought it and where that desktop answers. Written at every transition
//! before the server acts on it; a `Released` record outlives the VM as a
//! tombstone until the desktop says the VM runs at home.

use std::path::{Path, PathBuf};

use jettison_daemon::durable;
use jettison_handover::ServerState;
use jettison_wire::MachineDesc;
use serde::{Deserialize, Serialize};

/// One VM's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Where the handover is.
    pub state: ServerState,
    /// The desktop's certificate name.
    pub desktop: String,
    /// The desktop's state server, as the server dials it.
    pub state_server: String,
    /// The VM's virtual hardware, to run it again from a checkpoint after a
    /// restart (absent in records written before checkpoints; one this
    /// version cannot use reads as absent, so the record still answers
    /// for its state).
    #[serde(default, deserialize_with = "usable_machine")]
    pub machine: Option<MachineDesc>,
}

fn usable_machine<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<MachineDesc>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| match serde_json::from_value(v) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!("a recorded machine description is not usable here: {e}");
            None
        }
    }))
}

/// The directory of records.
#[derive(Debug)]
pub struct Records {
    dir: PathBuf,
}

impl Records {
    /// Records kept in `dir` (made if missing).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Records { dir: dir.into() })
    }

    fn path(&self, vm: &str) -> PathBuf {
        self.dir.join(format!("{vm}.json"))
    }

    /// Writes `vm`'s record durably.
    pub fn save(&self, vm: &str, record: &Record) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        durable::write_atomic(&self.path(vm), &bytes)
    }

    /// Removes `vm`'s record durably.
    pub fn remove(&self, vm: &str) -> std::io::Result<()> {
        durable::remove(&self.path(vm))
    }

    /// The VMs that have a record.
    pub fn names(&self) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(vm) = name.strip_suffix(".json") {
                if !vm.starts_with('.') {
                    out.push(vm.to_owned());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// `vm`'s record, if any (an unreadable one is an error).
    pub fn load(&self, vm: &str) -> std::io::Result<Option<Record>> {
        match std::fs::read(self.path(vm)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let r = Records::open(&dir.path().join("handover")).unwrap();
        assert_eq!(r.load("vm").unwrap(), None);
        let rec = Record {
            state: ServerState::Loaded,
            desktop: "desk-1".into(),
            state_server: "10.0.0.2:7071".into(),
            machine: None,
        };
        r.save("vm", &rec).unwrap();
        assert_eq!(r.load("vm").unwrap(), Some(rec));
        assert_eq!(r.names().unwrap(), ["vm"]);
        r.remove("vm").unwrap();
        assert_eq!(r.load("vm").unwrap(), None);
        assert!(r.names().unwrap().is_empty());
    }

    #[test]
    fn records_from_before_checkpoints_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let r = Records::open(dir.path()).unwrap();
        std::fs::write(
            dir.path().join("old.json"),
            r#"{"state":"Running","desktop":"d","state_server":"s:1"}"#,
        )
        .unwrap();
        let rec = r.load("old").unwrap().unwrap();
        assert_eq!((rec.state, rec.machine), (ServerState::Running, None));
    }

    /// A record whose description this version refuses (a MAC with a
    /// comma) still answers for its state, without a machine.
    #[test]
    fn a_record_with_an_unusable_machine_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let r = Records::open(dir.path()).unwrap();
        std::fs::write(
            dir.path().join("tomb.json"),
            r#"{"state":"Released","desktop":"d","state_server":"s:1","machine":
            {"memory_mib":64,"cpus":1,"kernel":null,"initrd":null,"append":null,
            "extra_args":["-S"],"nic_mac":"52:54:00:00:00:01,romfile=x","disk_bytes":null}}"#,
        )
        .unwrap();
        let rec = r.load("tomb").unwrap().unwrap();
        assert_eq!((rec.state, rec.machine), (ServerState::Released, None));
    }
}
