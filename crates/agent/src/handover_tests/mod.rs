//! Every failure path of migration and reintegration on the desktop's side,
//! with a fake VM (no QEMU, no root) and a scripted server on the other end
//! of an in-memory connection: the way out in `outgoing`, the way home in
//! `incoming`; here what both use.

mod incoming;
mod outgoing;

use std::time::Duration;

use jettison_wire::Message;

use crate::handover_out::OutTimeouts;
use crate::record::VmRecord;

pub(super) const T: OutTimeouts = OutTimeouts {
    server: Duration::from_secs(5),
    short: Duration::from_secs(2),
};

/// What the scripted server does with each request it receives: reply with
/// a message, or close the connection.
#[derive(Debug, Clone)]
pub(super) enum Step {
    Reply(Box<Message>),
    /// Close after reading the next message.
    Close,
    /// Close without reading anything more.
    Hangup,
}

pub(super) fn reply(m: Message) -> Step {
    Step::Reply(Box::new(m))
}

pub(super) fn kinds(msgs: &[Message]) -> Vec<&'static str> {
    msgs.iter().map(Message::kind).collect()
}

pub(super) struct Desk {
    pub(super) _dir: tempfile::TempDir,
    pub(super) record: VmRecord,
}

pub(super) fn desk() -> Desk {
    let dir = tempfile::tempdir().unwrap();
    let record = VmRecord::load(dir.path(), "vm").unwrap();
    Desk { _dir: dir, record }
}
