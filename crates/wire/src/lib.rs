//! The protocol spoken between jettison's daemons and its operator command.
//!
//! # Connections
//!
//! | from -> to                            | role in `Hello` | carries                                    |
//! |---------------------------------------|-----------------|--------------------------------------------|
//! | desktop agent -> consolidation server | `Agent`         | migrate-in, reintegrate                    |
//! | consolidation server -> state server  | `Server`        | fetch (memory chunks on demand)            |
//! | `jettison` command -> daemon control  | `Operator`      | migrate, reintegrate, start, status, pause |
//!
//! The state server runs inside the desktop agent; the control endpoint of
//! each daemon is a Unix socket.
//!
//! # Framing
//!
//! Every message is one frame: a 4-byte big-endian payload length, then the
//! [`Message`] encoded with postcard. Frames over [`MAX_FRAME_BYTES`] are
//! refused before their payload is read, and a frame's buffer grows with the
//! bytes that arrive, not with the length its prefix claims. The sequences in
//! messages have most-element bounds ([`MAX_RANGES`], [`DIRTY_BATCH_PAGES`],
//! [`MAX_STATUS_VMS`]), checked while decoding, so a frame decodes into
//! little more than its own size. A machine description is checked while
//! decoding too (module [`machine`]): a MAC is six bytes, unicast; a kernel
//! command line at most [`MAX_APPEND_BYTES`] without control characters; a
//! boot file a BLAKE3 digest and a display name, never a path; and there
//! are no QEMU arguments. A frame that does not decode, has
//! trailing bytes, or ends early gets an `Error { BadRequest }` reply (when the
//! socket still takes one) and the connection is closed; the daemon and its
//! other connections carry on. The framing only needs a byte stream, so TLS
//! wraps the socket without any change here.
//!
//! # Fuzzing
//!
//! `tests/fuzz/` fuzzes the frame decoder ([`Transport::recv`] over a stream
//! cut into arbitrary reads), the message decoder ([`decode`]) and both
//! halves of the handshake ([`handshake::accept`], [`handshake::connect`]
//! over an in-memory stream, a paused clock for its timeout), with proptest
//! on stable Rust: raw bytes, and valid encodings of every variant with bytes
//! flipped, inserted, removed or cut off and frame lengths rewritten. The
//! property: no panic, an answer in bounded time, every error a clean
//! [`WireError`], and valid encodings round-trip. `cargo test` runs 1,000
//! hostile inputs per target; the long form sets `JETTISON_FUZZ_CASES` (and
//! `JETTISON_FUZZ_SEED`):
//!
//! ```text
//! JETTISON_FUZZ_CASES=250000 cargo test --release -p jettison-wire --test fuzz -- --nocapture
//! ```
//!
//! `tests/alloc_bound.rs` runs under a counting allocator (`cap`): a length
//! prefix of 4 GiB is refused without allocating, a stalled 64 MiB claim
//! holds a few KiB, and frames of millions of minimal elements are refused
//! before they decode into more than the frame limit.
//!
//! # Sequence
//!
//! A handover (either way) has a commit step: the destination loads the
//! device state into a paused guest; the source's durable record is the
//! commit; only then does the destination run the guest. The states behind
//! it are `jettison-handover`'s.
//!
//! ```text
//!  agent (desktop)                     server                      state server (desktop)
//!    |-- Hello{Agent} ------------------->|                                   |
//!    |<------------------ Welcome{minor}  |  minor in force: the lower one     |
//!    |  record Migrating/Preparing        |                                   |
//!    |-- MigratePrepare{vm,machine,addr}->|  record Preparing; start QEMU      |
//!    |<---------------------- Prepared{vm}|  -incoming defer on <mount>/<vm>.mem
//!    |  stop VM, save device state,       |                                   |
//!    |  record Migrating/Transferring     |                                   |
//!    |-- MigrateLoad{vm,device_state} --->|  load, wait completed, stay paused |
//!    |<----------- MigrateLoaded{vm}      |  record Loaded (in doubt)          |
//!    |  record Away  == THE COMMIT ==     |                                   |
//!    |-- MigrateCommit{vm} -------------->|  record Running, cont              |
//!    |<---------- MigrateCommitted{vm}    |                                   |
//!    |  quit desktop QEMU (memory file    |-- Hello{Server} ----------------->|
//!    |  stays in /dev/shm)                |<---------------------- Welcome    |
//!    |                                    |-- Fetch{vm,ranges} (each miss) -->|
//!    |                                    |<------------------ Chunks{..}     |
//!    |-- GoingToSleep{mac,wol_addr} ----->|  (no fetch until it is awake)      |
//!    |<------------------------- OpOk     |                                   |
//!    |   ... the desktop sleeps; a miss: magic packet, probe, then Fetch ...   |
//!    |  record Returning/Receiving        |                                   |
//!    |-- Reintegrate{vm} ---------------->|  stop VM, fsync, save state,       |
//!    |<-- ReintegrateBegin{state,n} ------|  record Sending                    |
//!    |<-- DirtyPages{pages} x k ----------|                                   |
//!    |<-- ReintegrateEnd{vm} -------------|                                   |
//!    |  write pages, fsync them, save the |                                   |
//!    |  state, load it (paused),          |                                   |
//!    |  record Returning/Ready            |                                   |
//!    |-- ReintegrateReady{vm} ----------->|  record Released == THE COMMIT ==  |
//!    |<------- ReintegrateCommitted{vm}   |  quit QEMU, drop the replica       |
//!    |  record Home, cont                 |                                   |
//!    |-- ReintegrateDone{vm} ------------>|  drop the record (tombstone)       |
//! ```
//!
//! Before its commit either side gives up: the agent sends `MigrateAbort`
//! (the server drops the VM) or `ReintegrateAbort` (the server resumes it).
//! A side whose record is in doubt (Transferring or Ready on the desktop,
//! Loaded on the server) and lost the other's answer asks
//! `HandoverQuery{vm}` and gets `HandoverState{vm, custody}`: the agent asks
//! the server on an `Agent` connection, the server asks the desktop's state
//! server on a `Server` connection. Nobody guesses.
//!
//! # Ownership
//!
//! Mutual TLS admits a peer; what it may then do is bounded by its
//! certificate name. On the server a VM belongs to the desktop whose agent
//! connection brought it (its guest and durable record keep that name).
//! Every agent request that names a VM (`MigrateLoad`, `MigrateCommit`,
//! `MigrateAbort`, `Reintegrate`, `ReintegrateDone`) about another
//! desktop's VM gets `Error { NotAllowed }` ("belongs to another desktop")
//! and nothing happens to that VM; a `HandoverQuery` about it gets
//! `HandoverState { custody: Unknown }` (the asking desktop's VM of that
//! name is not there). We answer `NotAllowed` rather than `UnknownVm`
//! because a name's existence is no secret among a server's desktops: a
//! `MigratePrepare` of a name another desktop's VM holds (a guest, a
//! prepare under way, or a record, tombstones included) must be refused
//! anyway, with `Error { NotAllowed }` ("taken on this server by another
//! desktop's VM"): VM names are unique among the desktops of one server.
//! `GoingToSleep` is refused (`NotAllowed`) unless its MAC is unicast and
//! `wol_addr` lies on the server's LAN (its `wol_networks`). The desktop's
//! state server answers a `Fetch` only from the server its record names as
//! holding the VM, and only while the VM's memory is served
//! (`Error { NotAllowed }` to another server, `WrongState` when not served);
//! it answers that server's `HandoverQuery` truly and any other's
//! `Unknown`. The operator's requests come over a local socket and are not
//! bounded this way.
//!
//! # Versioning rule
//!
//! `Hello` carries a magic, a major and a minor version. The majors must be
//! equal, or the accepting side answers `Error { VersionMismatch }` and closes.
//! The minor in force is the lower of the two, and both sides keep it for
//! the connection ([`Transport::minor`]). Within a major, variants are only
//! appended to [`Message`] and fields are never changed (postcard encodes a
//! variant by its index, so old variants keep their encoding); a side never
//! sends a variant introduced after the minor in force. A new minor may
//! retire an old request: the side that no longer serves it refuses it with
//! a clear error, never by guessing a meaning. Any other change bumps the
//! major.
//!
//! | minor | adds |
//! |-------|------|
//! | 0 | the first protocol: `MigrateIn` runs the guest on arrival, `ReintegrateDone` after the agent resumed |
//! | 1 | the handover's commit step: `MigrateLoad`, `MigrateLoaded`, `MigrateCommit`, `MigrateCommitted`, `MigrateAbort`, `ReintegrateReady`, `ReintegrateCommitted`, `HandoverQuery`, `HandoverState`; `ReintegrateDone` now follows `ReintegrateCommitted`; the operator's `OpStart` (boot a VM at home) |
//! | 2 | the typed machine description: `MigratePrepare` (appended) carries a [`MachineDesc`] with no QEMU arguments, boot files by digest and a six-byte MAC; the old request, renamed `MigratePrepareV1` (same index, same encoding), is retired |
//!
//! Minor 1 changes what a handover needs, not what a message means: a
//! minor-1 server refuses `MigratePrepare` and `Reintegrate` on a connection
//! of minor 0 (`Error { VersionMismatch }`: "upgrade jettison-agent") and no
//! longer serves `MigrateIn`; a minor-1 agent refuses to start a handover
//! with a minor-0 server ("upgrade jettison-server"). Fetches, sleep
//! announcements and operator requests work across both. So a fleet
//! upgrades with its VMs at home (a server's restart loses the VMs it runs,
//! and a VM that left under minor 0 has no snapshot to restart from):
//! bring them home, then upgrade servers and desktops in either order.
//!
//! Minor 2 retires `MigratePrepareV1`, whose description let a desktop put
//! any argument on the server's QEMU command line (run as root) and name any
//! path for the server to read: a minor-2 server refuses it on every
//! connection (`Error { VersionMismatch }`: "upgrade jettison-agent"), and
//! `MigratePrepare` on a connection below minor 2 the same way; a minor-2
//! agent refuses to migrate to a server below minor 2 ("upgrade
//! jettison-server"). Reintegration, fetches, sleep announcements and
//! operator requests work across minors 1 and 2, so a VM that left under
//! minor 1 comes home from a minor-2 server.

mod bounded;
mod codec;
pub mod handshake;
pub mod machine;
pub mod messages;
pub mod reports;
pub mod stats;
pub mod transport;

pub use bounded::{MAX_LEGACY_EXTRA_ARGS, MAX_RANGES, MAX_STATUS_VMS};
pub use machine::{MacError, MAX_APPEND_BYTES, MAX_BOOT_NAME_BYTES};
pub use messages::*;
pub use stats::{LatencySummary, VmMemStats};
pub use transport::{decode, encode, Transport, MAX_FRAME_BYTES};

use std::time::Duration;

/// First bytes of every `Hello`.
pub const MAGIC: [u8; 8] = *b"JETTISON";
/// Protocol major version.
pub const PROTOCOL_MAJOR: u16 = 1;
/// Protocol minor version.
pub const PROTOCOL_MINOR: u16 = 2;
/// The first minor with the handover's commit step ([`Message::MigrateLoad`]
/// and the messages after it). Migration and reintegration need it on both
/// sides: a daemon refuses them on a connection of a lower minor.
pub const HANDOVER_MINOR: u16 = 1;
/// The first minor with the typed machine description
/// ([`Message::MigratePrepare`]): a migration needs it on both sides.
pub const MACHINE_MINOR: u16 = 2;
/// Page size of guest memory.
pub const PAGE_SIZE: u64 = 4096;
/// Most bytes one `Fetch` may ask for.
pub const MAX_FETCH_BYTES: u64 = 16 << 20;
/// Pages per `DirtyPages` frame.
pub const DIRTY_BATCH_PAGES: usize = 256;

/// What can go wrong on a connection.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed.
    #[error("connection error: {0}")]
    Io(std::io::Error),
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// No frame within the time allowed.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// A frame could not be decoded.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A message could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// A message arrived where another was expected.
    #[error("protocol violation: expected {expected}, got {got}")]
    Unexpected {
        /// What was expected.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
    /// Major versions differ.
    #[error("protocol version mismatch: ours {ours}.x, peer {theirs}.x")]
    Version {
        /// Our major.
        ours: u16,
        /// The peer's major.
        theirs: u16,
    },
    /// We refused the peer.
    #[error("refused: {0}")]
    Refused(String),
    /// The peer answered with an error.
    #[error("peer refused ({:?}): {}", .0.code, .0.message)]
    Remote(ErrorReply),
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Io(e)
    }
}

/// Whether a VM name is usable on the wire and in file and device names on
/// every host: 1 to 64 characters from `[A-Za-z0-9_-]`.
pub fn valid_vm_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks the ranges of a `Fetch` against a memory file of `file_size` bytes:
/// page-aligned, non-empty, inside the file, at most [`MAX_FETCH_BYTES`] in all.
pub fn validate_fetch(ranges: &[Range], file_size: u64) -> Result<(), String> {
    if ranges.is_empty() {
        return Err("fetch of no ranges".into());
    }
    let mut total: u64 = 0;
    for r in ranges {
        if r.len == 0 || r.offset % PAGE_SIZE != 0 || r.len % PAGE_SIZE != 0 {
            return Err(format!(
                "range {}+{} is empty or not page-aligned",
                r.offset, r.len
            ));
        }
        let end = r
            .offset
            .checked_add(r.len)
            .ok_or_else(|| format!("range {}+{} overflows", r.offset, r.len))?;
        if end > file_size {
            return Err(format!(
                "range {}+{} ends beyond the memory file ({file_size} bytes)",
                r.offset, r.len
            ));
        }
        total = total.saturating_add(r.len);
    }
    if total > MAX_FETCH_BYTES {
        return Err(format!(
            "fetch of {total} bytes exceeds the {MAX_FETCH_BYTES}-byte limit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod machine_tests;
#[cfg(test)]
mod tests;
