//! The desktop's state server: answers the consolidation server's fetches of
//! a consolidated VM's memory, by offset, from the VM's memory file, and its
//! questions about a handover it is in doubt about.
//!
//! Only to the server that holds the VM: the one its durable record names
//! (by certificate name; a record written before names it by this agent's
//! `server` address, which stands for `server_name`), and for fetches only
//! while the record says the memory is served ([`DesktopState::serves_memory`]:
//! the guest stopped at home, away, or coming back). Another server the
//! TLS configuration allows is refused a fetch (`NotAllowed`, before any
//! file is opened) and hears `Unknown` to a `HandoverQuery` (the VM is
//! nothing of its business; a server settles `Unknown` as it settles
//! `Holds`).

use std::sync::Arc;

use jettison_daemon::{next_request, ConnectionHandler, Peer};
use jettison_handover::DesktopState;
use jettison_tls::TlsConn;
use jettison_wire::{validate_fetch, Custody, ErrorCode, Message, Transport};

use crate::Agent;

/// Fetches up to this many bytes are read on the connection's task.
const INLINE_READ_MAX: u64 = 256 * 1024;

impl ConnectionHandler<TlsConn> for Agent {
    async fn handle(self: Arc<Self>, peer: Peer, mut t: Transport<TlsConn>) {
        while let Some(req) = next_request(&mut t, &peer).await {
            let reply = self.answer(peer.identity.as_deref(), req).await;
            if let Err(e) = t.send(&reply).await {
                tracing::warn!(peer = %peer.addr, "state server: reply failed: {e}");
                return;
            }
        }
    }
}

/// What the desktop answers a server (`holds`: whether the server its
/// record names is the one asking) about a VM in `state`.
pub(crate) fn custody_for(state: &DesktopState, holds: impl FnOnce(&str) -> bool) -> Custody {
    match state.server() {
        Some(server) if holds(server) => state.custody(),
        _ => Custody::Unknown,
    }
}

/// Whether the memory of `vm`, in `state`, may be served to the server
/// `peer` (`holds`: whether the server its record names is `peer`).
pub(crate) fn may_serve(
    state: &DesktopState,
    vm: &str,
    peer: &str,
    holds: impl FnOnce(&str) -> bool,
) -> Result<(), (ErrorCode, String)> {
    if !state.serves_memory() {
        return Err((
            ErrorCode::WrongState,
            format!("VM {vm:?} is {state}, not away: its memory is not served"),
        ));
    }
    match state.server() {
        Some(server) if holds(server) => Ok(()),
        _ => Err((
            ErrorCode::NotAllowed,
            format!(
                "VM {vm:?} is not consolidated on {peer}: its memory is served only to the \
                 server that holds it"
            ),
        )),
    }
}

impl Agent {
    /// Whether the server whose certificate names `peer` is the one a
    /// record names as `recorded`.
    fn holds(&self, recorded: &str, peer: Option<&str>) -> bool {
        let Some(peer) = peer else { return false };
        recorded == peer || (recorded == self.config.server && peer == self.config.server_name)
    }

    /// Answers a request of the server whose certificate names `peer`.
    pub(crate) async fn answer(&self, peer: Option<&str>, req: Message) -> Message {
        if let Message::HandoverQuery { vm } = req {
            // The server settles a handover it is in doubt about.
            let custody = self.slot(&vm).map_or(Custody::Unknown, |slot| {
                slot.record
                    .inspect(|s| custody_for(s, |r| self.holds(r, peer)))
            });
            return Message::HandoverState { vm, custody };
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
        let allowed = slot.record.inspect(|s| {
            may_serve(s, &vm, peer.unwrap_or("an unnamed peer"), |r| {
                self.holds(r, peer)
            })
        });
        if let Err((code, why)) = allowed {
            if code == ErrorCode::NotAllowed {
                tracing::warn!(vm = %vm, peer = ?peer, "refused fetch: {why}");
            }
            return Message::error(code, why);
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
                let bytes: u64 = chunks.iter().map(|c| c.data.len() as u64).sum();
                self.metrics.served(bytes / jettison_wire::PAGE_SIZE, bytes);
                if let Some(p) = &self.power {
                    let page = jettison_wire::PAGE_SIZE;
                    let first = chunks.iter().map(|c| c.offset / page).min().unwrap_or(0);
                    let pages = chunks.iter().map(|c| c.data.len() as u64 / page).sum();
                    p.served(&vm, file, first, pages);
                }
                Message::Chunks { chunks }
            }
            Ok(Err(e)) => Message::error(ErrorCode::Failed, format!("reading memory of {vm}: {e}")),
            Err(e) => Message::error(ErrorCode::Failed, format!("reader task failed: {e}")),
        }
    }
}
