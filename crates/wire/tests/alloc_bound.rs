//! Hostile input cannot make the wire crate allocate beyond the frame limit.
//!
//! This binary's global allocator is `cap::Cap`, which counts the bytes
//! allocated and refuses any allocation past a limit (the `#[global_allocator]`
//! static is safe code: the `unsafe` is inside `cap`). A global allocator is
//! per binary, hence a test binary of its own, with one test so that no
//! other test allocates meanwhile. Two measures:
//!
//! - *held*: what a stalled connection keeps allocated after a length prefix
//!   and a few bytes (`allocated()` while the transport waits);
//! - *peak*: the limit is set to what was allocated plus the bound before a
//!   decode; an allocation past it fails, and the binary aborts with
//!   "memory allocation of N bytes failed" (a failed test).

#[allow(dead_code)]
#[path = "fuzz/gen.rs"]
mod gen;

use std::alloc::System;
use std::time::Duration;

use cap::Cap;
use jettison_wire::{decode, encode, FileKind, LegacyMachineDesc, Message, Transport, WireError};
use jettison_wire::{MAX_FRAME_BYTES, PROTOCOL_MAJOR};
use proptest::test_runner::{Config, RngSeed, TestRunner};
use tokio::io::AsyncWriteExt;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// Most a stalled connection may hold beyond the bytes it was sent: the
/// transport's buffers, nothing in proportion to the length it was promised.
const HELD_SLACK: usize = 256 << 10;

/// Runs `f` with allocations limited to what is allocated now plus `bound`.
fn within<T>(bound: usize, f: impl FnOnce() -> T) -> T {
    ALLOC.set_limit(ALLOC.allocated() + bound).unwrap();
    let out = f();
    ALLOC.set_limit(usize::MAX).unwrap();
    out
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// `msg` encoded, with its empty sequence at `at` (the length byte 0)
/// replaced by a sequence of `n` elements of `elem` each.
fn inflate(msg: &Message, at: usize, n: u64, elem: &[u8]) -> Vec<u8> {
    let bytes = encode(msg).unwrap();
    assert_eq!(bytes[at], 0, "no empty sequence at {at} in {bytes:?}");
    let mut out = bytes[..at].to_vec();
    varint(n, &mut out);
    for _ in 0..n {
        out.extend_from_slice(elem);
    }
    out.extend_from_slice(&bytes[at + 1..]);
    out
}

/// Payloads of `n` minimal elements in each sequence of `Message`: every
/// element takes a few bytes on the wire and more in memory.
fn amplifiers(n: u64) -> Vec<(&'static str, Vec<u8>)> {
    let prepare = Message::MigratePrepareV1 {
        vm: "a".into(),
        machine: LegacyMachineDesc {
            memory_mib: 0,
            cpus: 0,
            kernel: None,
            initrd: None,
            append: None,
            extra_args: vec![],
            nic_mac: None,
            disk_bytes: None,
        },
        state_server: String::new(),
    };
    let last = |m: &Message| encode(m).unwrap().len() - 1;
    let fetch = Message::Fetch {
        vm: String::new(),
        file: FileKind::Memory,
        ranges: vec![],
    };
    let pages = Message::DirtyPages {
        file: FileKind::Disk,
        pages: vec![],
    };
    let chunks = Message::Chunks { chunks: vec![] };
    let status = Message::OpStatusReply {
        host: String::new(),
        vms: vec![],
    };
    vec![
        // The retired layout's extra_args (decoded only to be refused):
        // then nic_mac, disk_bytes, state_server follow.
        ("extra_args", inflate(&prepare, last(&prepare) - 3, n, &[0])),
        ("ranges", inflate(&fetch, last(&fetch), n, &[0, 0])),
        ("pages", inflate(&pages, last(&pages), n, &[0, 0])),
        ("chunks", inflate(&chunks, last(&chunks), n, &[0, 0])),
        ("vms", inflate(&status, last(&status), n, &[0; 5])),
    ]
}

/// A length prefix promising `claim` bytes, a few of them sent, and the
/// sender stalled: refused if over the limit, else waiting, holding little.
async fn stalled_claim(claim: u32) {
    let (mut peer, ours) = tokio::io::duplex(1 << 16);
    let mut sent = claim.to_be_bytes().to_vec();
    sent.extend_from_slice(&[0u8; 100]);
    peer.write_all(&sent).await.unwrap();
    let before = ALLOC.allocated();
    let mut t = Transport::new(ours);
    ALLOC
        .set_limit(ALLOC.allocated() + MAX_FRAME_BYTES + HELD_SLACK)
        .unwrap();
    let res = tokio::time::timeout(Duration::from_millis(100), t.recv()).await;
    ALLOC.set_limit(usize::MAX).unwrap();
    let held = ALLOC.allocated().saturating_sub(before);
    if claim as usize > MAX_FRAME_BYTES {
        assert!(
            matches!(res, Ok(Err(WireError::Malformed(_)))),
            "{claim}: {res:?}"
        );
    } else {
        assert!(
            res.is_err(),
            "claim {claim}: a frame out of 100 bytes: {res:?}"
        );
    }
    assert!(
        held <= HELD_SLACK,
        "a stalled claim of {claim} bytes holds {held} bytes after sending {}",
        sent.len()
    );
    drop(t);
    drop(peer);
}

#[test]
fn hostile_input_allocates_within_the_frame_limit() {
    // The crafted payloads are what they claim to be.
    for (name, bytes) in amplifiers(3) {
        let m = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let n = match &m {
            Message::MigratePrepareV1 { machine, .. } => machine.extra_args.len(),
            Message::Fetch { ranges, .. } => ranges.len(),
            Message::DirtyPages { pages, .. } => pages.len(),
            Message::Chunks { chunks } => chunks.len(),
            Message::OpStatusReply { vms, .. } => vms.len(),
            _ => unreachable!(),
        };
        assert_eq!(n, 3, "{name}");
    }

    // Length prefixes: 4 GiB, just over the limit, the limit, and below.
    let limit = MAX_FRAME_BYTES as u32;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for claim in [u32::MAX, limit + 1, limit, limit / 2, 1 << 20] {
        rt.block_on(stalled_claim(claim));
    }

    // Sequences of millions of minimal elements in one frame (each a few
    // bytes on the wire, 16 to 200 in memory): the decoder must not build
    // them beyond the frame limit.
    for (name, bytes) in amplifiers(6 << 20) {
        assert!(bytes.len() <= MAX_FRAME_BYTES, "{name}");
        let res = within(MAX_FRAME_BYTES, || decode(&bytes).map(|m| m.kind()));
        println!("{name}: {} bytes -> {res:?}", bytes.len());
    }

    // And the fuzz inputs, through the transport.
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(u64::from(PROTOCOL_MAJOR)),
        ..Config::default()
    });
    runner
        .run(&gen::stream(), |data| {
            within(MAX_FRAME_BYTES + HELD_SLACK, || {
                rt.block_on(async {
                    let mut t = Transport::new(tokio::io::join(&data[..], tokio::io::sink()));
                    while let Ok(Some(_)) = t.recv().await {}
                })
            });
            Ok(())
        })
        .unwrap();
}
