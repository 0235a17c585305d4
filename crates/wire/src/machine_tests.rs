//! The machine description: typed, checked while decoding, and the retired
//! layout still recognised so that it can be refused.

use serde::{Deserialize, Serialize};

use super::*;

fn desc() -> MachineDesc {
    MachineDesc {
        memory_mib: 256,
        cpus: 2,
        kernel: Some(BootFile {
            name: "vmlinuz".into(),
            blake3: "ab".repeat(32),
        }),
        initrd: None,
        append: Some("console=ttyS0 quiet".into()),
        nic_mac: Some("52:54:00:12:34:56".parse().unwrap()),
        disk_bytes: Some(64 << 20),
    }
}

fn prepare(machine: MachineDesc) -> Message {
    Message::MigratePrepare {
        vm: "vm".into(),
        machine,
        state_server: "10.0.0.2:7401".into(),
    }
}

/// `MigratePrepare`'s encoding with the MAC's six bytes replaced.
fn with_mac_bytes(octets: [u8; 6]) -> Vec<u8> {
    let good: MacAddr = "52:54:00:12:34:56".parse().unwrap();
    let bytes = encode(&prepare(desc())).unwrap();
    let at = bytes
        .windows(6)
        .position(|w| w == good.octets())
        .expect("the MAC is in the encoding");
    let mut out = bytes.clone();
    out[at..at + 6].copy_from_slice(&octets);
    out
}

#[test]
fn a_valid_description_round_trips_in_postcard_and_json() {
    let m = prepare(desc());
    assert_eq!(decode(&encode(&m).unwrap()).unwrap(), m);
    let json = serde_json::to_string(&desc()).unwrap();
    assert!(json.contains("\"nic_mac\":\"52:54:00:12:34:56\""), "{json}");
    assert_eq!(serde_json::from_str::<MachineDesc>(&json).unwrap(), desc());
}

#[test]
fn macs_parse_display_and_refuse_malformed_text() {
    let mac: MacAddr = "52:54:00:AB:cd:0f".parse().unwrap();
    assert_eq!(mac.to_string(), "52:54:00:ab:cd:0f");
    assert_eq!(mac.octets(), [0x52, 0x54, 0, 0xab, 0xcd, 0x0f]);
    for bad in [
        "",
        "52:54:00:12:34",
        "52:54:00:12:34:56:78",
        "52:54:00:12:34:5",
        "52-54-00-12-34-56",
        "52:54:00:12:34:56,romfile=/etc/shadow",
        "52:54:00:12:34:5g",
        " 52:54:00:12:34:56",
        "+2:54:00:12:34:56",
    ] {
        let err = bad.parse::<MacAddr>().unwrap_err();
        assert!(matches!(err, MacError::Syntax(_)), "{bad:?}: {err}");
        assert!(err.to_string().contains("six hex pairs"), "{err}");
    }
    let err = "01:00:5e:00:00:01".parse::<MacAddr>().unwrap_err();
    assert!(err.to_string().contains("multicast"), "{err}");
    assert_eq!(
        "00:00:00:00:00:00".parse::<MacAddr>().unwrap_err(),
        MacError::Zero
    );
}

#[test]
fn a_multicast_or_zero_mac_is_refused_while_decoding() {
    let ok = with_mac_bytes([0x02, 0, 0, 0, 0, 1]);
    assert!(decode(&ok).is_ok());
    for octets in [[0x01, 0, 0x5e, 0, 0, 1], [0; 6], [0xff; 6]] {
        let err = decode(&with_mac_bytes(octets)).unwrap_err();
        assert!(matches!(err, WireError::Malformed(_)), "{err}");
        assert!(err.to_string().contains("MAC address"), "{err}");
    }
}

#[test]
fn a_mac_with_a_comma_in_a_record_is_refused() {
    let json = serde_json::to_string(&desc())
        .unwrap()
        .replace("52:54:00:12:34:56", "52:54:00:12:34:56,romfile=x");
    let err = serde_json::from_str::<MachineDesc>(&json).unwrap_err();
    assert!(err.to_string().contains("six hex pairs"), "{err}");
}

#[test]
fn a_long_or_control_character_command_line_is_refused_while_decoding() {
    let ok = "a".repeat(MAX_APPEND_BYTES);
    let m = prepare(MachineDesc {
        append: Some(ok),
        ..desc()
    });
    assert!(decode(&encode(&m).unwrap()).is_ok());
    for (bad, why) in [
        ("a".repeat(MAX_APPEND_BYTES + 1), "bytes"),
        ("console=ttyS0\n-device evil".into(), "control character"),
        ("console=ttyS0\0x".into(), "control character"),
        ("x\u{7f}".into(), "control character"),
    ] {
        let m = prepare(MachineDesc {
            append: Some(bad),
            ..desc()
        });
        let err = decode(&encode(&m).unwrap()).unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
    }
}

#[test]
fn boot_files_need_a_digest_and_a_printable_name() {
    let bad_digest = |d: &str| {
        let m = prepare(MachineDesc {
            kernel: Some(BootFile {
                name: "vmlinuz".into(),
                blake3: d.into(),
            }),
            ..desc()
        });
        decode(&encode(&m).unwrap()).unwrap_err().to_string()
    };
    assert!(bad_digest("ab").contains("64 lowercase hex"));
    assert!(bad_digest(&"AB".repeat(32)).contains("64 lowercase hex"));
    assert!(bad_digest(&"zz".repeat(32)).contains("64 lowercase hex"));
    for name in [
        String::new(),
        "a\nb".into(),
        "n".repeat(MAX_BOOT_NAME_BYTES + 1),
    ] {
        let m = prepare(MachineDesc {
            initrd: Some(BootFile {
                name,
                blake3: "cd".repeat(32),
            }),
            ..desc()
        });
        let err = decode(&encode(&m).unwrap()).unwrap_err();
        assert!(err.to_string().contains("boot file name"), "{err}");
    }
}

/// What a record written before minor 2 holds (boot files by path, QEMU
/// arguments, the MAC as text) still loads: the arguments are dropped, the
/// path is only a name.
#[test]
fn an_old_record_loads_without_its_arguments() {
    let json = format!(
        r#"{{"memory_mib":64,"cpus":1,"kernel":{{"path":"/srv/vmlinuz","blake3":"{}"}},
        "initrd":null,"append":"console=ttyS0","extra_args":["-S"],
        "nic_mac":"52:54:00:00:00:01","disk_bytes":null}}"#,
        "0f".repeat(32)
    );
    let d: MachineDesc = serde_json::from_str(&json).unwrap();
    assert_eq!(d.kernel.unwrap().name, "/srv/vmlinuz");
    assert_eq!(d.nic_mac.unwrap().to_string(), "52:54:00:00:00:01");
}

/// A test-only copy of the protocol 1.1 layout, as an old agent encodes it.
#[derive(Serialize, Deserialize)]
struct OldBootFile {
    path: String,
    blake3: String,
}

#[derive(Serialize, Deserialize)]
struct OldMachineDesc {
    memory_mib: u64,
    cpus: u32,
    kernel: Option<OldBootFile>,
    initrd: Option<OldBootFile>,
    append: Option<String>,
    extra_args: Vec<String>,
    nic_mac: Option<String>,
    disk_bytes: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[allow(dead_code, clippy::large_enum_variant)]
enum OldMessage {
    Hello(Hello),
    Welcome(Welcome),
    Error(ErrorReply),
    MigratePrepare {
        vm: String,
        machine: OldMachineDesc,
        state_server: String,
    },
}

#[test]
fn an_old_layout_prepare_decodes_as_the_retired_request() {
    let old = OldMessage::MigratePrepare {
        vm: "vm".into(),
        machine: OldMachineDesc {
            memory_mib: 256,
            cpus: 1,
            kernel: Some(OldBootFile {
                path: "/etc/shadow".into(),
                blake3: "00".repeat(32),
            }),
            initrd: None,
            append: None,
            extra_args: vec!["-chardev".into(), "file,path=/etc/shadow".into()],
            nic_mac: Some("52:54:00:00:00:01,romfile=/x".into()),
            disk_bytes: None,
        },
        state_server: "1.2.3.4:1".into(),
    };
    let bytes = postcard::to_allocvec(&old).unwrap();
    match decode(&bytes).unwrap() {
        m @ Message::MigratePrepareV1 { .. } => {
            assert_eq!(m.kind(), "MigratePrepareV1");
            let Message::MigratePrepareV1 { machine, .. } = m else {
                unreachable!()
            };
            assert_eq!(machine.extra_args.len(), 2);
        }
        other => panic!("decoded as {}", other.kind()),
    }
}
