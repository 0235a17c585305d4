//! Inputs for the fuzz targets: valid messages of every variant, their
//! encodings and frames, and the structure-aware mutations of them that get a
//! decoder past its first byte. Shared by the `fuzz` and `alloc_bound` test
//! binaries.

use jettison_wire::{
    encode, Chunk, Custody, ErrorCode, FileKind, Hello, LatencySummary, MachineDesc, Message,
    MigrateReport, Range, ReintegrateReport, Role, VmMemStats, VmStatus, Welcome, MAGIC,
    MAX_FRAME_BYTES,
};
use proptest::prelude::*;

/// The free parts of a message; every variant is built from them.
#[derive(Debug, Clone)]
pub struct Params {
    pub text: String,
    pub n: u64,
    pub small: u16,
    pub x: f64,
    pub bytes: Vec<u8>,
    pub pick: u8,
}

fn params() -> impl Strategy<Value = Params> {
    (
        prop_oneof![Just(String::new()), "[a-z0-9_-]{1,12}", ".{0,24}"],
        prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), 0u64..5000],
        any::<u16>(),
        prop_oneof![any::<f64>(), Just(f64::NAN), Just(1.5f64)],
        proptest::collection::vec(any::<u8>(), 0..48),
        any::<u8>(),
    )
        .prop_map(|(text, n, small, x, bytes, pick)| Params {
            text,
            n,
            small,
            x,
            bytes,
            pick,
        })
}

fn stats(p: &Params) -> VmMemStats {
    VmMemStats {
        faults: p.n,
        bytes_fetched: p.small.into(),
        fault_latency_us: LatencySummary {
            count: 3,
            p99: p.n,
            mean: p.x,
            ..LatencySummary::default()
        },
        ..VmMemStats::default()
    }
}

/// One message of every variant of [`Message`], built from `p`.
pub fn every_variant(p: &Params) -> Vec<Message> {
    let vm = || p.text.clone();
    let role = [Role::Agent, Role::Server, Role::Operator][usize::from(p.pick % 3)];
    let file = if p.pick % 2 == 0 {
        FileKind::Memory
    } else {
        FileKind::Disk
    };
    let chunk = || Chunk {
        offset: p.n,
        data: p.bytes.clone(),
    };
    // Valid descriptions only: an invalid one is refused while decoding
    // (the mutations below produce those).
    let boot = || jettison_wire::BootFile {
        name: if jettison_wire::machine::check_boot_name(&p.text).is_ok() {
            p.text.clone()
        } else {
            "vmlinuz".into()
        },
        blake3: "ab".repeat(32),
    };
    let machine = MachineDesc {
        memory_mib: p.n,
        cpus: p.small.into(),
        kernel: (p.pick % 2 == 0).then(boot),
        initrd: (p.pick % 3 == 0).then(boot),
        append: jettison_wire::machine::check_append(&p.text)
            .is_ok()
            .then(|| p.text.clone()),
        nic_mac: (p.pick % 4 == 0)
            .then(|| jettison_wire::MacAddr::new([0x52, 0x54, 0, 0x12, 0x34, p.pick]).unwrap()),
        disk_bytes: (p.pick % 5 == 0).then_some(p.n),
    };
    let legacy_boot = || jettison_wire::LegacyBootFile {
        path: p.text.clone(),
        blake3: "ab".repeat(usize::from(p.pick % 5)),
    };
    let legacy = jettison_wire::LegacyMachineDesc {
        memory_mib: p.n,
        cpus: p.small.into(),
        kernel: (p.pick % 2 == 0).then(legacy_boot),
        initrd: (p.pick % 3 == 0).then(legacy_boot),
        append: Some(p.text.clone()),
        extra_args: vec![p.text.clone(); usize::from(p.pick % 3)],
        nic_mac: (p.pick % 4 == 0).then(|| "52:54:00:12:34:56".into()),
        disk_bytes: (p.pick % 5 == 0).then_some(p.n),
    };
    vec![
        Message::Hello(Hello {
            magic: MAGIC,
            major: jettison_wire::PROTOCOL_MAJOR,
            minor: p.small,
            role,
            host: vm(),
        }),
        Message::Welcome(Welcome {
            major: p.small,
            minor: 1,
            host: vm(),
        }),
        Message::error(ErrorCode::OutOfRange, vm()),
        Message::MigratePrepareV1 {
            vm: vm(),
            machine: legacy,
            state_server: "10.0.0.1:7000".into(),
        },
        Message::Prepared { vm: vm() },
        Message::MigrateIn {
            vm: vm(),
            device_state: p.bytes.clone(),
        },
        Message::MigrateInDone {
            vm: vm(),
            restore_ms: p.x,
        },
        Message::Reintegrate { vm: vm() },
        Message::ReintegrateBegin {
            vm: vm(),
            device_state: p.bytes.clone(),
            dirty_pages: p.n,
            dirty_disk_blocks: p.small.into(),
            remote: stats(p),
            remote_disk: (p.pick % 2 == 0).then(|| stats(p)),
            remote_seconds: p.x,
            server_ms: 2.0,
        },
        Message::DirtyPages {
            file,
            pages: vec![chunk(); usize::from(p.pick % 4)],
        },
        Message::ReintegrateEnd { vm: vm() },
        Message::ReintegrateDone { vm: vm() },
        Message::ReintegrateAbort {
            vm: vm(),
            reason: p.text.repeat(2),
        },
        Message::Fetch {
            vm: vm(),
            file,
            ranges: vec![
                Range {
                    offset: p.n,
                    len: p.small.into(),
                };
                usize::from(p.pick % 4)
            ],
        },
        Message::Chunks {
            chunks: vec![chunk(); usize::from(p.pick % 3)],
        },
        Message::OpMigrate { vm: vm() },
        Message::OpMigrated(MigrateReport {
            vm: vm(),
            latency_ms: p.x,
            bytes_sent: p.n,
            ..MigrateReport::default()
        }),
        Message::OpReintegrate {
            vm: vm(),
            verify: p.pick % 2 == 0,
        },
        Message::OpReintegrated(ReintegrateReport {
            vm: vm(),
            dirty_pages: p.n,
            remote_disk: Some(stats(p)),
            image_digest: Some(p.text.clone()),
            ..ReintegrateReport::default()
        }),
        Message::OpStatus,
        Message::OpStatusReply {
            host: vm(),
            vms: vec![
                VmStatus {
                    vm: vm(),
                    state: "Away".into(),
                    host: "srv".into(),
                    memory_mib: p.n,
                    memory: Some(stats(p)),
                };
                usize::from(p.pick % 3)
            ],
        },
        Message::OpPause { vm: vm() },
        Message::OpResume { vm: vm() },
        Message::OpOk,
        Message::GoingToSleep {
            mac: vm(),
            wol_addr: "192.168.1.255:9".into(),
        },
        Message::OpPower,
        Message::OpPowerReply { json: vm() },
        Message::MigrateLoad {
            vm: vm(),
            device_state: p.bytes.clone(),
        },
        Message::MigrateLoaded {
            vm: vm(),
            restore_ms: p.x,
        },
        Message::MigrateCommit { vm: vm() },
        Message::MigrateCommitted { vm: vm() },
        Message::MigrateAbort {
            vm: vm(),
            reason: vm(),
        },
        Message::ReintegrateReady { vm: vm() },
        Message::ReintegrateCommitted { vm: vm() },
        Message::HandoverQuery { vm: vm() },
        Message::HandoverState {
            vm: vm(),
            custody: [
                Custody::Unknown,
                Custody::Holds,
                Custody::InDoubt,
                Custody::Released,
            ][usize::from(p.pick % 4)],
        },
        Message::OpStart { vm: vm() },
        Message::MigratePrepare {
            vm: vm(),
            machine,
            state_server: "10.0.0.1:7000".into(),
        },
    ]
}

/// How many variants [`every_variant`] builds (one per variant of `Message`).
pub const VARIANTS: usize = 38;

/// Any valid message.
pub fn message() -> impl Strategy<Value = Message> {
    (params(), 0..VARIANTS).prop_map(|(p, i)| every_variant(&p).swap_remove(i))
}

/// One frame on the wire: the 4-byte big-endian length, then the payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// An edit of a valid encoding.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// XOR a byte.
    Flip(usize, u8),
    /// Overwrite a byte with one that often changes a varint or a tag.
    Set(usize, u8),
    /// Cut the input short.
    Truncate(usize),
    /// Insert bytes.
    Insert(usize, Vec<u8>),
    /// Remove a span.
    Remove(usize, usize),
    /// Overwrite the 4-byte length prefix of a frame (only for frames).
    Length(u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let big = MAX_FRAME_BYTES as u32;
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<usize>(),
            prop_oneof![Just(0u8), Just(0x7f), Just(0x80), Just(0xff), any::<u8>()]
        )
            .prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1..16usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
        prop_oneof![
            Just(0u32),
            Just(u32::MAX),
            Just(big),
            Just(big + 1),
            0u32..64,
            any::<u32>()
        ]
        .prop_map(Mutation::Length),
    ]
}

/// Applies `m` to `bytes`; `framed` says whether `bytes` starts with a length
/// prefix that `Mutation::Length` may rewrite.
pub fn apply(bytes: &mut Vec<u8>, m: &Mutation, framed: bool) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match m {
        Mutation::Flip(i, b) if !bytes.is_empty() => {
            let i = at(*i, bytes.len());
            bytes[i] ^= b;
        }
        Mutation::Set(i, b) if !bytes.is_empty() => {
            let i = at(*i, bytes.len());
            bytes[i] = *b;
        }
        Mutation::Truncate(i) => bytes.truncate(at(*i, bytes.len() + 1)),
        Mutation::Insert(i, b) => {
            let i = at(*i, bytes.len() + 1);
            bytes.splice(i..i, b.iter().copied());
        }
        Mutation::Remove(i, n) if !bytes.is_empty() => {
            let i = at(*i, bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Length(len) if framed && bytes.len() >= 4 => {
            bytes[..4].copy_from_slice(&len.to_be_bytes());
        }
        _ => {}
    }
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..4)
}

/// A message payload to decode: raw bytes, or a valid encoding mutated.
pub fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..256),
        3 => (message(), mutations()).prop_map(|(m, ms)| {
            let mut bytes = encode(&m).unwrap();
            for m in &ms {
                apply(&mut bytes, m, false);
            }
            bytes
        }),
    ]
}

/// A byte stream of frames: raw bytes, or valid frames with the first one or
/// the stream as a whole mutated.
pub fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..256),
        3 => (proptest::collection::vec(message(), 1..4), mutations(), any::<bool>()).prop_map(
            |(msgs, ms, whole)| {
                let mut frames: Vec<Vec<u8>> =
                    msgs.iter().map(|m| frame(&encode(m).unwrap())).collect();
                if whole {
                    let mut all = frames.concat();
                    for m in &ms {
                        apply(&mut all, m, true);
                    }
                    all
                } else {
                    for m in &ms {
                        apply(&mut frames[0], m, true);
                    }
                    frames.concat()
                }
            }
        ),
    ]
}

/// How a stream is cut into reads: sizes of successive reads (cycled).
pub fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![usize::MAX]),
        proptest::collection::vec(1..17usize, 1..6)
    ]
}
