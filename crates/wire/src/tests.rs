use super::*;
use crate::handshake::{accept, connect, judge_hello};
use tokio::io::AsyncWriteExt;

fn sample_messages() -> Vec<Message> {
    vec![
        Message::Hello(Hello {
            magic: MAGIC,
            major: 1,
            minor: 0,
            role: Role::Agent,
            host: "d1".into(),
        }),
        Message::Fetch {
            vm: "vm".into(),
            file: FileKind::Memory,
            ranges: vec![Range {
                offset: 4096,
                len: 8192,
            }],
        },
        Message::Chunks {
            chunks: vec![Chunk {
                offset: 4096,
                data: vec![7; 8192],
            }],
        },
        Message::MigrateIn {
            vm: "vm".into(),
            device_state: vec![1, 2, 3],
        },
        Message::DirtyPages {
            file: FileKind::Disk,
            pages: vec![Chunk {
                offset: 0,
                data: vec![9; 4096],
            }],
        },
        Message::OpStatus,
        Message::error(ErrorCode::OutOfRange, "nope"),
    ]
}

#[test]
fn every_message_round_trips() {
    for m in sample_messages() {
        let bytes = encode(&m).unwrap();
        assert_eq!(decode(&bytes).unwrap(), m, "{}", m.kind());
    }
}

#[test]
fn page_payload_overhead_is_small() {
    let pages: Vec<Chunk> = (0..DIRTY_BATCH_PAGES as u64)
        .map(|i| Chunk {
            offset: (1 << 30) + i * PAGE_SIZE,
            data: vec![0xAB; PAGE_SIZE as usize],
        })
        .collect();
    let bytes = encode(&Message::DirtyPages {
        file: FileKind::Memory,
        pages,
    })
    .unwrap();
    let payload = DIRTY_BATCH_PAGES as u64 * PAGE_SIZE;
    let overhead = bytes.len() as u64 - payload;
    assert!(
        overhead <= 8 * DIRTY_BATCH_PAGES as u64 + 8,
        "overhead {overhead} bytes"
    );
}

#[test]
fn garbage_and_trailing_bytes_are_malformed() {
    assert!(matches!(
        decode(&[0xff, 0xff, 0xff, 0xff, 0xff]),
        Err(WireError::Malformed(_))
    ));
    assert!(matches!(decode(&[]), Err(WireError::Malformed(_))));
    let mut bytes = encode(&Message::OpStatus).unwrap();
    bytes.push(0);
    assert!(matches!(decode(&bytes), Err(WireError::Malformed(_))));
    // A truncated encoding of a large message.
    let bytes = encode(&Message::MigrateIn {
        vm: "vm".into(),
        device_state: vec![5; 1000],
    })
    .unwrap();
    assert!(matches!(
        decode(&bytes[..bytes.len() - 10]),
        Err(WireError::Malformed(_))
    ));
}

#[test]
fn fetch_validation() {
    let size = 1 << 20;
    let ok = [
        Range {
            offset: 0,
            len: 4096,
        },
        Range {
            offset: size - 4096,
            len: 4096,
        },
    ];
    assert!(validate_fetch(&ok, size).is_ok());
    assert!(validate_fetch(&[], size).is_err());
    assert!(validate_fetch(
        &[Range {
            offset: size,
            len: 4096
        }],
        size
    )
    .is_err());
    assert!(validate_fetch(
        &[Range {
            offset: size - 4096,
            len: 8192
        }],
        size
    )
    .is_err());
    assert!(validate_fetch(
        &[Range {
            offset: 100,
            len: 4096
        }],
        size
    )
    .is_err());
    assert!(validate_fetch(&[Range { offset: 0, len: 0 }], size).is_err());
    assert!(validate_fetch(
        &[Range {
            offset: u64::MAX - 4095,
            len: 8192
        }],
        u64::MAX
    )
    .is_err());
    let big = 64 << 20;
    assert!(validate_fetch(
        &[Range {
            offset: 0,
            len: MAX_FETCH_BYTES + 4096
        }],
        big
    )
    .is_err());
}

#[test]
fn hello_judgement() {
    let good = Message::Hello(Hello {
        magic: MAGIC,
        major: PROTOCOL_MAJOR,
        minor: 7,
        role: Role::Server,
        host: "s".into(),
    });
    let (_, reply) = judge_hello(&good, &[Role::Server], "d").unwrap();
    assert!(matches!(
        reply,
        Message::Welcome(Welcome {
            minor: PROTOCOL_MINOR,
            ..
        })
    ));
    assert!(judge_hello(&good, &[Role::Agent], "d").is_err());
    let bad_major = Message::Hello(Hello {
        magic: MAGIC,
        major: 99,
        minor: 0,
        role: Role::Server,
        host: "s".into(),
    });
    let (_, reply) = *judge_hello(&bad_major, &[Role::Server], "d").unwrap_err();
    assert!(matches!(
        reply,
        Message::Error(ErrorReply {
            code: ErrorCode::VersionMismatch,
            ..
        })
    ));
    let bad_magic = Message::Hello(Hello {
        magic: *b"NOTJETTS",
        major: 1,
        minor: 0,
        role: Role::Server,
        host: "s".into(),
    });
    assert!(judge_hello(&bad_magic, &[Role::Server], "d").is_err());
    assert!(judge_hello(&Message::OpStatus, &[Role::Server], "d").is_err());
}

#[tokio::test]
async fn handshake_over_a_socket_pair() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(async move {
        let mut t = Transport::new(b);
        accept(&mut t, &[Role::Agent], "srv").await
    });
    let mut t = Transport::new(a);
    let welcome = connect(&mut t, Role::Agent, "desk").await.unwrap();
    assert_eq!(welcome.host, "srv");
    assert_eq!(server.await.unwrap().unwrap().host, "desk");
    assert!(t.bytes_sent() > 4 && t.bytes_received() > 4);
}

#[tokio::test]
async fn garbage_gets_an_error_reply() {
    let (mut a, b) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(async move {
        let mut t = Transport::new(b);
        accept(&mut t, &[Role::Agent], "srv").await
    });
    a.write_all(&[0, 0, 0, 3, 0xde, 0xad, 0xbe]).await.unwrap();
    let err = server.await.unwrap().unwrap_err();
    assert!(matches!(err, WireError::Malformed(_)), "{err}");
    let mut t = Transport::new(a);
    let reply = t.recv().await.unwrap().unwrap();
    assert!(matches!(
        reply,
        Message::Error(ErrorReply {
            code: ErrorCode::BadRequest,
            ..
        })
    ));
}

#[tokio::test]
async fn oversized_and_truncated_frames_are_refused() {
    let (mut a, b) = tokio::io::duplex(1 << 16);
    a.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
    let mut t = Transport::new(b);
    assert!(matches!(t.recv().await, Err(WireError::Malformed(_))));

    let (mut a, b) = tokio::io::duplex(1 << 16);
    a.write_all(&[0, 0, 0, 100, 1, 2, 3]).await.unwrap();
    drop(a);
    let mut t = Transport::new(b);
    assert!(matches!(t.recv().await, Err(WireError::Malformed(_))));
}

#[test]
fn vm_names() {
    assert!(valid_vm_name("desk-17_A"));
    assert!(valid_vm_name(&"x".repeat(64)));
    for bad in ["", "a.b", "a/b", "..", "ä", "a b", &"x".repeat(65)] {
        assert!(!valid_vm_name(bad), "{bad:?}");
    }
}

#[test]
fn handover_messages_round_trip() {
    let vm = || "vm".to_string();
    for m in [
        Message::MigrateLoad {
            vm: vm(),
            device_state: vec![4; 100],
        },
        Message::MigrateLoaded {
            vm: vm(),
            restore_ms: 1.5,
        },
        Message::MigrateCommit { vm: vm() },
        Message::MigrateCommitted { vm: vm() },
        Message::MigrateAbort {
            vm: vm(),
            reason: "why".into(),
        },
        Message::ReintegrateReady { vm: vm() },
        Message::ReintegrateCommitted { vm: vm() },
        Message::HandoverQuery { vm: vm() },
        Message::HandoverState {
            vm: vm(),
            custody: Custody::InDoubt,
        },
        Message::OpStart { vm: vm() },
    ] {
        let bytes = encode(&m).unwrap();
        assert_eq!(decode(&bytes).unwrap(), m, "{}", m.kind());
    }
}

/// Minor 1 only appended variants: the encodings of minor 0's messages are
/// what a minor-0 peer sends and expects, byte for byte (postcard: the
/// variant index, then the fields).
#[test]
fn minor_zero_encodings_are_unchanged() {
    assert_eq!(encode(&Message::OpStatus).unwrap(), [19]);
    assert_eq!(encode(&Message::OpOk).unwrap(), [23]);
    assert_eq!(
        encode(&Message::OpPowerReply { json: "x".into() }).unwrap(),
        [26, 1, b'x']
    );
    assert_eq!(
        encode(&Message::ReintegrateDone { vm: "a".into() }).unwrap(),
        [11, 1, b'a']
    );
    // The first variant of minor 1 comes right after minor 0's last.
    assert_eq!(
        encode(&Message::MigrateCommit { vm: "a".into() }).unwrap()[0],
        29
    );
    // Minor 1's last variants: the handover's, then the operator's start.
    assert_eq!(
        encode(&Message::HandoverQuery { vm: "a".into() }).unwrap(),
        [34, 1, b'a']
    );
    assert_eq!(
        encode(&Message::OpStart { vm: "a".into() }).unwrap(),
        [36, 1, b'a']
    );
    // Minor 2 renamed minor 0's `MigratePrepare` (still index 3) and
    // appended the typed one.
    let v1 = Message::MigratePrepareV1 {
        vm: "a".into(),
        machine: LegacyMachineDesc {
            memory_mib: 1,
            cpus: 1,
            kernel: None,
            initrd: None,
            append: None,
            extra_args: vec![],
            nic_mac: None,
            disk_bytes: None,
        },
        state_server: String::new(),
    };
    assert_eq!(
        encode(&v1).unwrap(),
        [3, 1, b'a', 1, 1, 0, 0, 0, 0, 0, 0, 0]
    );
    let typed = Message::MigratePrepare {
        vm: "a".into(),
        machine: MachineDesc {
            memory_mib: 1,
            cpus: 1,
            kernel: None,
            initrd: None,
            append: None,
            nic_mac: None,
            disk_bytes: None,
        },
        state_server: String::new(),
    };
    assert_eq!(encode(&typed).unwrap()[0], 37);
}

#[test]
fn the_lower_minor_is_in_force() {
    let old = Message::Hello(Hello {
        magic: MAGIC,
        major: PROTOCOL_MAJOR,
        minor: 0,
        role: Role::Agent,
        host: "old".into(),
    });
    let (_, reply) = judge_hello(&old, &[Role::Agent], "new").unwrap();
    assert!(matches!(reply, Message::Welcome(Welcome { minor: 0, .. })));
}

/// A minor-0 server answers `Welcome { minor: 0 }`; the connection then
/// runs at minor 0 on our side, and the daemons refuse a handover on it.
#[tokio::test]
async fn a_connection_to_an_old_peer_runs_at_its_minor() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let old_server = tokio::spawn(async move {
        let mut t = Transport::new(b);
        let hello = t.recv().await.unwrap().unwrap();
        assert!(matches!(
            hello,
            Message::Hello(Hello {
                minor: PROTOCOL_MINOR,
                ..
            })
        ));
        t.send(&Message::Welcome(Welcome {
            major: PROTOCOL_MAJOR,
            minor: 0,
            host: "old".into(),
        }))
        .await
        .unwrap();
    });
    let mut t = Transport::new(a);
    assert_eq!(t.minor(), PROTOCOL_MINOR);
    connect(&mut t, Role::Agent, "new").await.unwrap();
    old_server.await.unwrap();
    assert_eq!(t.minor(), 0);
    assert!(t.minor() < HANDOVER_MINOR);
}

#[tokio::test]
async fn an_accepted_old_peer_runs_at_its_minor() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(async move {
        let mut t = Transport::new(b);
        accept(&mut t, &[Role::Agent], "srv").await.unwrap();
        t.minor()
    });
    let mut t = Transport::new(a);
    t.send(&Message::Hello(Hello {
        magic: MAGIC,
        major: PROTOCOL_MAJOR,
        minor: 0,
        role: Role::Agent,
        host: "old".into(),
    }))
    .await
    .unwrap();
    let _welcome = t.recv().await.unwrap();
    assert_eq!(server.await.unwrap(), 0);
}

#[tokio::test]
async fn a_closed_transport_ends_cleanly_at_the_peer() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let mut left = Transport::new(a);
    let mut right = Transport::new(b);
    left.send(&Message::OpOk).await.unwrap();
    left.close().await.unwrap();
    assert_eq!(right.recv().await.unwrap(), Some(Message::OpOk));
    assert_eq!(right.recv().await.unwrap(), None);
}

#[test]
fn sequences_over_their_bound_are_malformed() {
    let page = Chunk {
        offset: 0,
        data: vec![],
    };
    let at_most = Message::DirtyPages {
        file: FileKind::Memory,
        pages: vec![page.clone(); DIRTY_BATCH_PAGES],
    };
    assert_eq!(decode(&encode(&at_most).unwrap()).unwrap(), at_most);
    let over = Message::DirtyPages {
        file: FileKind::Memory,
        pages: vec![page; DIRTY_BATCH_PAGES + 1],
    };
    assert!(matches!(
        decode(&encode(&over).unwrap()),
        Err(WireError::Malformed(_))
    ));
    let ranges = |n| Message::Fetch {
        vm: "vm".into(),
        file: FileKind::Disk,
        ranges: vec![Range { offset: 0, len: 0 }; n],
    };
    assert!(decode(&encode(&ranges(MAX_RANGES)).unwrap()).is_ok());
    assert!(decode(&encode(&ranges(MAX_RANGES + 1)).unwrap()).is_err());
    // A count claimed but not followed by its elements.
    let mut bytes = encode(&Message::Chunks { chunks: vec![] }).unwrap();
    bytes.pop();
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(decode(&bytes), Err(WireError::Malformed(_))));
}

#[tokio::test]
async fn a_claimed_length_is_not_reserved_before_it_arrives() {
    // The prefix claims the frame limit; a few bytes come, then nothing.
    let (mut a, b) = tokio::io::duplex(1 << 16);
    a.write_all(&(MAX_FRAME_BYTES as u32).to_be_bytes())
        .await
        .unwrap();
    a.write_all(&[0; 100]).await.unwrap();
    let mut t = Transport::new(b);
    let waited = t.recv_within(std::time::Duration::from_millis(50)).await;
    assert!(matches!(waited, Err(WireError::Timeout(_))), "{waited:?}");
    assert!(t.read_capacity() < 1 << 20);
}

#[tokio::test]
async fn frames_cut_anywhere_arrive_whole() {
    let msgs = sample_messages();
    let mut bytes = Vec::new();
    for m in &msgs {
        let p = encode(m).unwrap();
        bytes.extend_from_slice(&(p.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&p);
    }
    let (mut a, b) = tokio::io::duplex(1 << 20);
    let writer = tokio::spawn(async move {
        for piece in bytes.chunks(3) {
            a.write_all(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let mut t = Transport::new(b);
    for m in &msgs {
        assert_eq!(&t.recv().await.unwrap().unwrap(), m);
    }
    writer.await.unwrap();
    assert!(t.recv().await.unwrap().is_none());
}
