//! Machine descriptions as an attacker writes them: a JSON value (field
//! names of today's `MachineDesc`), sent as the server's own wire type when
//! that type can hold it, and otherwise, or on purpose, as a frame in
//! today's layout, encoded with a private copy of it. So this crate keeps
//! compiling when the wire type changes, and a frame of the old layout
//! still reaches a new server (which must refuse it).

use jettison_wire::{encode, MachineDesc, Message};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A boot file in today's layout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LegacyBootFile {
    /// The sender's path.
    pub path: String,
    /// Hex BLAKE3.
    pub blake3: String,
}

/// `MachineDesc` as the protocol 1.1 lays it out (postcard: fields in order).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LegacyMachine {
    /// Guest memory.
    pub memory_mib: u64,
    /// vCPUs.
    pub cpus: u32,
    /// Kernel.
    pub kernel: Option<LegacyBootFile>,
    /// Initramfs.
    pub initrd: Option<LegacyBootFile>,
    /// Kernel command line.
    pub append: Option<String>,
    /// Free-form QEMU arguments.
    pub extra_args: Vec<String>,
    /// NIC MAC.
    pub nic_mac: Option<String>,
    /// Disk size.
    pub disk_bytes: Option<u64>,
}

/// The first variants of protocol 1.1's `Message`, so that postcard gives
/// `MigratePrepare` its index (3).
#[derive(Debug, Serialize)]
// Only their position matters: they are never sent.
#[allow(dead_code)]
enum LegacyMessage {
    Hello(()),
    Welcome(()),
    Error(()),
    MigratePrepare {
        vm: String,
        machine: Box<LegacyMachine>,
        state_server: String,
    },
}

/// A `MigratePrepare` frame payload in protocol 1.1's layout.
pub fn legacy_prepare(vm: &str, machine: &Value, state_server: &str) -> anyhow::Result<Vec<u8>> {
    let machine: Box<LegacyMachine> = Box::new(serde_json::from_value(machine.clone())?);
    Ok(postcard::to_stdvec(&LegacyMessage::MigratePrepare {
        vm: vm.into(),
        machine,
        state_server: state_server.into(),
    })?)
}

/// How a prepare was encoded, for the row's detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoding {
    /// The server's wire type held the description.
    Current,
    /// Today's layout, because the wire type could not hold it (why).
    Legacy(String),
    /// Today's layout, on purpose.
    LegacyOnPurpose,
}

impl Encoding {
    /// For the detail.
    pub fn note(&self) -> String {
        match self {
            Encoding::Current => String::new(),
            Encoding::Legacy(why) => {
                format!("sent in protocol 1.1's layout (the wire type refuses it: {why})")
            }
            Encoding::LegacyOnPurpose => "sent in protocol 1.1's layout".into(),
        }
    }
}

/// A `MigratePrepare` payload for `machine`: the current wire type if it
/// holds the description, else today's layout.
pub fn prepare_payload(
    vm: &str,
    machine: &Value,
    state_server: &str,
    force_legacy: bool,
) -> anyhow::Result<(Vec<u8>, Encoding)> {
    if force_legacy {
        return Ok((
            legacy_prepare(vm, machine, state_server)?,
            Encoding::LegacyOnPurpose,
        ));
    }
    match serde_json::from_value::<MachineDesc>(machine.clone()) {
        Ok(desc) => {
            let msg = Message::MigratePrepare {
                vm: vm.into(),
                machine: desc,
                state_server: state_server.into(),
            };
            Ok((encode(&msg)?, Encoding::Current))
        }
        Err(e) => Ok((
            legacy_prepare(vm, machine, state_server)?,
            Encoding::Legacy(e.to_string()),
        )),
    }
}

/// A boot file's JSON.
pub fn boot_file(path: &str, blake3: &str) -> Value {
    json!({ "path": path, "blake3": blake3 })
}

/// A well-formed description: the test guest's kernel and initramfs (by
/// their real digests), `memory_mib`, one vCPU, no NIC, no disk.
pub fn base_machine(kernel: &Value, initrd: &Value, memory_mib: u64) -> Value {
    json!({
        "memory_mib": memory_mib,
        "cpus": 1,
        "kernel": kernel,
        "initrd": initrd,
        "append": "console=ttyS0",
        "extra_args": [],
        "nic_mac": null,
        "disk_bytes": null,
    })
}

/// `base` with `key` set to `value`.
pub fn with(base: &Value, key: &str, value: Value) -> Value {
    let mut v = base.clone();
    v[key] = value;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Value {
        base_machine(
            &boot_file("/img/vmlinuz", "ab"),
            &boot_file("/img/initrd", "cd"),
            64,
        )
    }

    #[test]
    fn the_legacy_layout_is_postcard_of_the_fields_in_order() {
        let m = with(
            &machine(),
            "extra_args",
            json!(["-drive", "file=/etc/shadow"]),
        );
        let bytes = legacy_prepare("v", &m, "s:1").unwrap();
        // Variant 3, then "v", then memory 64, 1 cpu, Some(kernel)...
        assert_eq!(&bytes[..6], &[3, 1, b'v', 64, 1, 1]);
        let tail = String::from_utf8_lossy(&bytes);
        assert!(
            tail.contains("file=/etc/shadow") && tail.ends_with("s:1"),
            "{tail}"
        );
        // Options after the extra arguments: no MAC, no disk.
        let n = bytes.len();
        assert_eq!(&bytes[n - 6..n - 4], &[0, 0]);
    }

    #[test]
    fn an_undescribable_machine_falls_back_to_the_legacy_layout() {
        let (_, enc) = prepare_payload("v", &machine(), "s:1", true).unwrap();
        assert_eq!(enc, Encoding::LegacyOnPurpose);
        let broken = with(&machine(), "memory_mib", json!("lots"));
        assert!(prepare_payload("v", &broken, "s:1", false).is_err());
        // A description the wire type holds goes as the wire type.
        let (payload, enc) = prepare_payload("v", &machine(), "s:1", false).unwrap();
        if enc == Encoding::Current {
            assert!(matches!(
                jettison_wire::decode(&payload),
                Ok(Message::MigratePrepare { .. })
            ));
        }
    }
}
