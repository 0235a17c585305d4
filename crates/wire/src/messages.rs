//! The messages of the protocol. See the crate documentation for the sequence.

use serde::{Deserialize, Serialize};

pub use crate::machine::{BootFile, LegacyBootFile, LegacyMachineDesc, MacAddr, MachineDesc};
pub use crate::reports::{MigrateReport, ReintegrateReport, VmStatus};
use crate::stats::VmMemStats;

/// Who is speaking on a connection; sent in [`Hello`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// A desktop agent talking to the consolidation server.
    Agent,
    /// The consolidation server talking to a desktop's state server.
    Server,
    /// The operator's `jettison` command talking to a daemon's control socket.
    Operator,
}

/// First frame of every connection, sent by the side that connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`crate::MAGIC`]; anything else is not a jettison peer.
    pub magic: [u8; 8],
    /// Protocol major version: must be equal on both sides.
    pub major: u16,
    /// Protocol minor version: the lower of the two is in force.
    pub minor: u16,
    /// What the connecting side is.
    pub role: Role,
    /// The connecting host's name, for logs.
    pub host: String,
}

/// Reply to an accepted [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The accepting side's major version (equal to the client's).
    pub major: u16,
    /// The minor version in force on this connection.
    pub minor: u16,
    /// The accepting host's name, for logs.
    pub host: String,
}

/// Which of a VM's files a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileKind {
    /// The guest's memory file.
    Memory,
    /// The guest's disk image.
    Disk,
}

/// A byte range of a VM's memory file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// Offset in bytes, page-aligned.
    pub offset: u64,
    /// Length in bytes, page-aligned, non-zero.
    pub len: u64,
}

/// Bytes of a VM's memory file at an offset.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Offset in bytes.
    pub offset: u64,
    /// The content.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Chunk {{ offset: {}, len: {} }}",
            self.offset,
            self.data.len()
        )
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The peer's frame could not be decoded, or came out of sequence.
    BadRequest,
    /// Major versions differ, or the magic is wrong.
    VersionMismatch,
    /// The role may not send this request.
    NotAllowed,
    /// No such VM here.
    UnknownVm,
    /// The VM is not in a state where this request makes sense.
    WrongState,
    /// A range beyond the end of the memory file, unaligned, or too large.
    OutOfRange,
    /// The request was valid but carrying it out failed.
    Failed,
}

/// An error reply; the connection may stay open unless the error was about
/// the framing itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

/// Every message of the protocol. New variants are only ever appended (see the
/// versioning rule in the crate documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Opens a connection.
    Hello(Hello),
    /// Accepts a connection.
    Welcome(Welcome),
    /// A refusal or failure.
    Error(ErrorReply),

    /// Agent -> server (minor 0 and 1 only): get ready to take this VM,
    /// described with free-form QEMU arguments and boot files by path. A
    /// server of minor 2 or later refuses it (`VersionMismatch`: upgrade
    /// jettison-agent); see [`Message::MigratePrepare`].
    MigratePrepareV1 {
        /// VM name.
        vm: String,
        /// Its virtual hardware, in the retired layout.
        machine: LegacyMachineDesc,
        /// Address of the desktop's state server.
        state_server: String,
    },
    /// Server -> agent: ready for [`Message::MigrateIn`].
    Prepared {
        /// VM name.
        vm: String,
    },
    /// Agent -> server (minor 0 only): the VM's CPU and device state; load
    /// it and resume. A server of minor 1 or later refuses it: it has no
    /// commit step (see [`Message::MigrateLoad`]).
    MigrateIn {
        /// VM name.
        vm: String,
        /// The QEMU migration stream (x-ignore-shared: no shared RAM in it).
        #[serde(with = "serde_bytes")]
        device_state: Vec<u8>,
    },
    /// Server -> agent: the VM runs on the server.
    MigrateInDone {
        /// VM name.
        vm: String,
        /// Server-side time from receiving the state to the guest running.
        restore_ms: f64,
    },
    /// Agent -> server: send this VM home.
    Reintegrate {
        /// VM name.
        vm: String,
    },
    /// Server -> agent: first frame of a VM coming home.
    ReintegrateBegin {
        /// VM name.
        vm: String,
        /// The QEMU migration stream out of the server.
        #[serde(with = "serde_bytes")]
        device_state: Vec<u8>,
        /// How many memory pages follow in [`Message::DirtyPages`] frames.
        dirty_pages: u64,
        /// How many 4 KiB disk blocks follow in [`Message::DirtyPages`] frames.
        dirty_disk_blocks: u64,
        /// The server's counters for the consolidated period.
        remote: VmMemStats,
        /// The same for the disk, if the VM has one.
        remote_disk: Option<VmMemStats>,
        /// Seconds the VM ran on the server.
        remote_seconds: f64,
        /// Server-side time from the request to this frame.
        server_ms: f64,
    },
    /// Server -> agent: a batch of dirty pages (offset = page number x 4096)
    /// of the memory file or the disk image.
    DirtyPages {
        /// Which file.
        file: FileKind,
        /// The pages; each chunk is exactly one page (at most
        /// [`crate::DIRTY_BATCH_PAGES`]).
        #[serde(deserialize_with = "crate::bounded::pages")]
        pages: Vec<Chunk>,
    },
    /// Server -> agent: all dirty pages were sent.
    ReintegrateEnd {
        /// VM name.
        vm: String,
    },
    /// Agent -> server (minor 0 only): the VM runs at home; the server may
    /// forget it. Minor 1 has [`Message::ReintegrateReady`] instead.
    ReintegrateDone {
        /// VM name.
        vm: String,
    },
    /// Agent -> server: reintegration failed at home; keep (and resume) the VM.
    ReintegrateAbort {
        /// VM name.
        vm: String,
        /// Why.
        reason: String,
    },

    /// Server -> state server: send these ranges of a VM's memory file or disk.
    Fetch {
        /// VM name.
        vm: String,
        /// Which file.
        file: FileKind,
        /// Ranges, page-aligned, within the file (at most
        /// [`crate::MAX_RANGES`]).
        #[serde(deserialize_with = "crate::bounded::ranges")]
        ranges: Vec<Range>,
    },
    /// State server -> server: the content of the ranges asked for, in order.
    Chunks {
        /// One chunk per requested range (at most [`crate::MAX_RANGES`]).
        #[serde(deserialize_with = "crate::bounded::ranges")]
        chunks: Vec<Chunk>,
    },

    /// Operator -> agent: migrate this VM to the server.
    OpMigrate {
        /// VM name.
        vm: String,
    },
    /// Agent -> operator: migration done.
    OpMigrated(MigrateReport),
    /// Operator -> agent: bring this VM home.
    OpReintegrate {
        /// VM name.
        vm: String,
        /// Digest the desktop's memory file before resuming it.
        verify: bool,
    },
    /// Agent -> operator: reintegration done.
    OpReintegrated(ReintegrateReport),
    /// Operator -> daemon: what runs here?
    OpStatus,
    /// Daemon -> operator: the VMs it knows.
    OpStatusReply {
        /// Daemon role and host, for display.
        host: String,
        /// One entry per VM (at most [`crate::MAX_STATUS_VMS`]).
        #[serde(deserialize_with = "crate::bounded::vms")]
        vms: Vec<VmStatus>,
    },
    /// Operator -> server: pause a consolidated VM and flush its dirty pages
    /// (for inspection of its memory through the filesystem).
    OpPause {
        /// VM name.
        vm: String,
    },
    /// Operator -> server: resume a paused consolidated VM.
    OpResume {
        /// VM name.
        vm: String,
    },
    /// Daemon -> operator: done.
    OpOk,

    /// Agent -> server: this desktop goes to sleep now; wake it with a
    /// magic packet for `mac` sent to `wol_addr` before fetching from it.
    GoingToSleep {
        /// The desktop's MAC (its NIC's, armed for Wake-on-LAN).
        mac: String,
        /// Where to send magic packets (the LAN broadcast, port 9).
        wol_addr: String,
    },
    /// Operator -> agent: the power timeline and what it served.
    OpPower,
    /// Agent -> operator: the power record, as JSON (the agent's
    /// `PowerRecord`, of jettison-power-model's types).
    OpPowerReply {
        /// The record.
        json: String,
    },

    // Minor 1: the handover's commit step.
    /// Agent -> server (minor 1): the VM's CPU and device state; load it and
    /// keep the guest paused until [`Message::MigrateCommit`].
    MigrateLoad {
        /// VM name.
        vm: String,
        /// The QEMU migration stream (x-ignore-shared: no shared RAM in it).
        #[serde(with = "serde_bytes")]
        device_state: Vec<u8>,
    },
    /// Server -> agent (minor 1): the state is loaded, the guest paused, and
    /// the server has recorded the VM as in doubt.
    MigrateLoaded {
        /// VM name.
        vm: String,
        /// Server-side time from receiving the state to the guest loaded.
        restore_ms: f64,
    },
    /// Agent -> server (minor 1): the agent has durably recorded the VM as
    /// away on this server; run it.
    MigrateCommit {
        /// VM name.
        vm: String,
    },
    /// Server -> agent (minor 1): the guest runs on the server.
    MigrateCommitted {
        /// VM name.
        vm: String,
    },
    /// Agent -> server (minor 1): give up a migration before its commit; the
    /// server forgets the prepared or loaded VM and answers `OpOk`.
    MigrateAbort {
        /// VM name.
        vm: String,
        /// Why.
        reason: String,
    },
    /// Agent -> server (minor 1), after `ReintegrateEnd`: every dirty page and
    /// disk block is durable at home and the device state is loaded in a
    /// paused guest. The server may now give its copy up.
    ReintegrateReady {
        /// VM name.
        vm: String,
    },
    /// Server -> agent (minor 1): the server has durably recorded that its
    /// copy will never run again; run the VM at home.
    ReintegrateCommitted {
        /// VM name.
        vm: String,
    },
    /// Either side -> the other (minor 1): what do you hold of this VM? Asked
    /// by a side whose handover is in doubt, to settle it.
    HandoverQuery {
        /// VM name.
        vm: String,
    },
    /// Reply to [`Message::HandoverQuery`].
    HandoverState {
        /// VM name.
        vm: String,
        /// What the answering side holds.
        custody: Custody,
    },
    /// Operator -> agent (minor 1): boot this VM at home from its disk (one
    /// never booted, or whose guest powered off); answered `OpOk`, or an
    /// error if it is away, in a handover or already running.
    OpStart {
        /// VM name.
        vm: String,
    },

    // Minor 2: the typed machine description.
    /// Agent -> server (minor 2): get ready to take this VM (start its
    /// QEMU, waiting for the state). The description is typed and checked
    /// while decoding; the server adds its own QEMU arguments and finds the
    /// boot files by digest in its image directories.
    MigratePrepare {
        /// VM name.
        vm: String,
        /// Its virtual hardware.
        machine: MachineDesc,
        /// Address of the desktop's state server, as the server should dial it.
        state_server: String,
    },
}

/// What one side holds of a VM, as it answers a [`Message::HandoverQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Custody {
    /// No record of the VM (never had it, or prepared it and gave it up).
    Unknown,
    /// The VM is committed to the answering side: it runs there, or may.
    Holds,
    /// Loaded and paused on the answering side, waiting for the asker's
    /// decision.
    InDoubt,
    /// The answering side committed the VM to the asker: its own copy will
    /// never run again.
    Released,
}

impl Message {
    /// A short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "Hello",
            Message::Welcome(_) => "Welcome",
            Message::Error(_) => "Error",
            Message::MigratePrepareV1 { .. } => "MigratePrepareV1",
            Message::Prepared { .. } => "Prepared",
            Message::MigrateIn { .. } => "MigrateIn",
            Message::MigrateInDone { .. } => "MigrateInDone",
            Message::Reintegrate { .. } => "Reintegrate",
            Message::ReintegrateBegin { .. } => "ReintegrateBegin",
            Message::DirtyPages { .. } => "DirtyPages",
            Message::ReintegrateEnd { .. } => "ReintegrateEnd",
            Message::ReintegrateDone { .. } => "ReintegrateDone",
            Message::ReintegrateAbort { .. } => "ReintegrateAbort",
            Message::Fetch { .. } => "Fetch",
            Message::Chunks { .. } => "Chunks",
            Message::OpMigrate { .. } => "OpMigrate",
            Message::OpMigrated(_) => "OpMigrated",
            Message::OpReintegrate { .. } => "OpReintegrate",
            Message::OpReintegrated(_) => "OpReintegrated",
            Message::OpStatus => "OpStatus",
            Message::OpStatusReply { .. } => "OpStatusReply",
            Message::OpPause { .. } => "OpPause",
            Message::OpResume { .. } => "OpResume",
            Message::OpOk => "OpOk",
            Message::GoingToSleep { .. } => "GoingToSleep",
            Message::OpPower => "OpPower",
            Message::OpPowerReply { .. } => "OpPowerReply",
            Message::MigrateLoad { .. } => "MigrateLoad",
            Message::MigrateLoaded { .. } => "MigrateLoaded",
            Message::MigrateCommit { .. } => "MigrateCommit",
            Message::MigrateCommitted { .. } => "MigrateCommitted",
            Message::MigrateAbort { .. } => "MigrateAbort",
            Message::ReintegrateReady { .. } => "ReintegrateReady",
            Message::ReintegrateCommitted { .. } => "ReintegrateCommitted",
            Message::HandoverQuery { .. } => "HandoverQuery",
            Message::HandoverState { .. } => "HandoverState",
            Message::OpStart { .. } => "OpStart",
            Message::MigratePrepare { .. } => "MigratePrepare",
        }
    }

    /// Shorthand for an error reply.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Message::Error(ErrorReply {
            code,
            message: message.into(),
        })
    }
}
