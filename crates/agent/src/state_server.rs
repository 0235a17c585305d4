//! The desktop's state server: answers the consolidation server's fetches of
//! a consolidated VM's memory, by offset, from the VM's memory file, and its
//! questions about a handover it is in doubt about.

use std::sync::Arc;

use jettison_daemon::{next_request, ConnectionHandler, Peer};
use jettison_tls::TlsConn;
use jettison_wire::{validate_fetch, ErrorCode, Message, Transport};

use crate::Agent;

/// Fetches up to this many bytes are read on the connection's task.
const INLINE_READ_MAX: u64 = 256 * 1024;

impl ConnectionHandler<TlsConn> for Agent {
    async fn handle(self: Arc<Self>, peer: Peer, mut t: Transport<TlsConn>) {
        while let Some(req) = next_request(&mut t, &peer).await {
            let reply = self.answer_fetch(req).await;
            if let Err(e) = t.send(&reply).await {
                tracing::warn!(peer = %peer.addr, "state server: reply failed: {e}");
                return;
            }
        }
    }
}

impl Agent {
    async fn answer_fetch(&self, req: Message) -> Message {
        if let Message::HandoverQuery { vm } = req {
            // The server settles a handover it is in doubt about.
            return match self.slot(&vm) {
                Some(slot) => Message::HandoverState {
                    vm,
                    custody: slot.record.get().custody(),
                },
                None => Message::HandoverState {
                    vm,
                    custody: jettison_wire::Custody::Unknown,
                },
            };
        }
        if self.gate.dozing() {
            // Announced asleep: serve nothing until resumed (see `doze`).
            return Message::error(
                ErrorCode::WrongState,
                "the desktop is going to sleep; wake it first",
            );
        }
        let Message::Fetch { vm, file, ranges } = req else {
            return Message::error(
                ErrorCode::NotAllowed,
                format!(
                    "the state server only answers Fetch and HandoverQuery, not {}",
                    req.kind()
                ),
            );
        };
        let Some(slot) = self.slot(&vm) else {
            return Message::error(
                ErrorCode::UnknownVm,
                format!("no VM {vm:?} on this desktop"),
            );
        };
        if !slot.serving() {
            return Message::error(
                ErrorCode::WrongState,
                format!("VM {vm:?} is running at home; its memory is not served"),
            );
        }
        let (reader, size) = match slot.reader(file) {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Message::error(
                    ErrorCode::UnknownVm,
                    format!("VM {vm:?} has no {file:?} file"),
                )
            }
            Err(e) => {
                return Message::error(
                    ErrorCode::Failed,
                    format!("opening the {file:?} file of {vm}: {e}"),
                )
            }
        };
        if let Err(why) = validate_fetch(&ranges, size) {
            tracing::warn!(vm = %vm, "refused fetch: {why}");
            return Message::error(ErrorCode::OutOfRange, why);
        }
        // A small read is a copy out of the page cache (the memory file is
        // on tmpfs): done in place, it saves two thread hand-offs per fault.
        let total: u64 = ranges.iter().map(|r| r.len).sum();
        let read = if total <= INLINE_READ_MAX {
            Ok(crate::vm::read_ranges(&reader, &ranges))
        } else {
            tokio::task::spawn_blocking(move || crate::vm::read_ranges(&reader, &ranges)).await
        };
        match read {
            Ok(Ok(chunks)) => {
                if let Some(p) = &self.power {
                    let page = jettison_wire::PAGE_SIZE;
                    let first = chunks.iter().map(|c| c.offset / page).min().unwrap_or(0);
                    let pages = chunks.iter().map(|c| c.data.len() as u64 / page).sum();
                    p.served(file, first, pages);
                }
                Message::Chunks { chunks }
            }
            Ok(Err(e)) => Message::error(ErrorCode::Failed, format!("reading memory of {vm}: {e}")),
            Err(e) => Message::error(ErrorCode::Failed, format!("reader task failed: {e}")),
        }
    }
}
