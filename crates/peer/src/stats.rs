//! Per-client counters, kept by the peer and reported by its status port.
//!
//! Pure bookkeeping: every event carries the time (milliseconds since the
//! peer started), so the logic is tested without clocks or sockets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the peer knows about one client id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientStats {
    /// Chat connections accepted (`HELLO`s).
    pub connections: u64,
    /// Chat connections that ended (close, error, or replaced by a
    /// reconnect of the same id).
    pub resets: u64,
    /// Whether a chat connection is open now.
    pub connected: bool,
    /// `HB` lines received.
    pub heartbeats: u64,
    /// Heartbeat sequence numbers skipped (sent by the client, never seen).
    pub hb_lost: u64,
    /// Last heartbeat sequence number received.
    pub last_hb: u64,
    /// Longest time between two consecutive heartbeats received, across
    /// connections (ms).
    pub max_hb_gap_ms: u64,
    /// `PING`s sent to the client.
    pub pings_sent: u64,
    /// `PONG`s received.
    pub pongs: u64,
    /// Lines that did not parse.
    pub bad_lines: u64,
    /// Mail polls answered.
    pub mail_polls: u64,
    /// When the client last said anything, chat or mail (ms since start).
    pub last_seen_ms: u64,
    /// When the last heartbeat arrived (ms since start), if any.
    pub last_hb_ms: Option<u64>,
}

impl ClientStats {
    /// The longest heartbeat gap in seconds.
    pub fn max_hb_gap_s(&self) -> f64 {
        self.max_hb_gap_ms as f64 / 1000.0
    }
}

/// The peer's whole state, as the status port reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Milliseconds since the peer started.
    pub uptime_ms: u64,
    /// Per client id.
    pub clients: BTreeMap<String, ClientStats>,
}

/// Identifies one chat connection.
pub type ConnId = u64;

/// The counters plus which connection is each client's current one.
#[derive(Debug, Default)]
pub struct Registry {
    clients: BTreeMap<String, ClientStats>,
    live: BTreeMap<String, ConnId>,
}

impl Registry {
    fn client(&mut self, id: &str, now_ms: u64) -> &mut ClientStats {
        let c = self.clients.entry(id.to_string()).or_default();
        c.last_seen_ms = c.last_seen_ms.max(now_ms);
        c
    }

    /// A chat connection `conn` said `HELLO id`. If the client already had a
    /// live connection, that one counts as reset now.
    pub fn hello(&mut self, id: &str, conn: ConnId, now_ms: u64) {
        let replaced = self.live.insert(id.to_string(), conn).is_some();
        let c = self.client(id, now_ms);
        c.connections += 1;
        c.connected = true;
        if replaced {
            c.resets += 1;
        }
    }

    /// Connection `conn` of `id` ended. Counts a reset unless a newer
    /// connection already replaced it.
    pub fn closed(&mut self, id: &str, conn: ConnId, now_ms: u64) {
        if self.live.get(id) != Some(&conn) {
            return;
        }
        self.live.remove(id);
        let c = self.client(id, now_ms);
        c.resets += 1;
        c.connected = false;
    }

    /// Heartbeat `seq` from `id`.
    pub fn heartbeat(&mut self, id: &str, seq: u64, now_ms: u64) {
        let c = self.client(id, now_ms);
        c.heartbeats += 1;
        if c.heartbeats > 1 && seq > c.last_hb + 1 {
            c.hb_lost += seq - c.last_hb - 1;
        }
        c.last_hb = c.last_hb.max(seq);
        if let Some(prev) = c.last_hb_ms {
            c.max_hb_gap_ms = c.max_hb_gap_ms.max(now_ms.saturating_sub(prev));
        }
        c.last_hb_ms = Some(now_ms);
    }

    /// A `PING` went to `id`.
    pub fn ping_sent(&mut self, id: &str) {
        if let Some(c) = self.clients.get_mut(id) {
            c.pings_sent += 1;
        }
    }

    /// A `PONG` came from `id`.
    pub fn pong(&mut self, id: &str, now_ms: u64) {
        self.client(id, now_ms).pongs += 1;
    }

    /// A line from `id` did not parse.
    pub fn bad_line(&mut self, id: &str, now_ms: u64) {
        self.client(id, now_ms).bad_lines += 1;
    }

    /// A mail poll from `id`; returns its poll number (1-based).
    pub fn mail_poll(&mut self, id: &str, now_ms: u64) -> u64 {
        let c = self.client(id, now_ms);
        c.mail_polls += 1;
        c.mail_polls
    }

    /// A snapshot for the status port.
    pub fn status(&self, uptime_ms: u64) -> PeerStatus {
        PeerStatus {
            uptime_ms,
            clients: self.clients.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_and_lost_heartbeats() {
        let mut r = Registry::default();
        r.hello("a", 1, 0);
        for (seq, t) in [(1, 1000), (2, 2000), (3, 3100), (6, 9100), (7, 10100)] {
            r.heartbeat("a", seq, t);
        }
        let c = &r.status(11000).clients["a"];
        assert_eq!(c.heartbeats, 5);
        assert_eq!(c.hb_lost, 2);
        assert_eq!(c.last_hb, 7);
        assert_eq!(c.max_hb_gap_ms, 6000);
        assert_eq!(c.max_hb_gap_s(), 6.0);
        assert_eq!(c.last_seen_ms, 10100);
    }

    #[test]
    fn first_heartbeat_may_start_anywhere() {
        let mut r = Registry::default();
        r.heartbeat("a", 40, 5);
        assert_eq!(r.status(0).clients["a"].hb_lost, 0);
        assert_eq!(r.status(0).clients["a"].max_hb_gap_ms, 0);
    }

    #[test]
    fn close_and_reconnect_count_resets_once() {
        let mut r = Registry::default();
        r.hello("a", 1, 0);
        r.closed("a", 1, 10); // ordinary close
        r.hello("a", 2, 20);
        r.hello("a", 3, 30); // reconnect while 2 still looked open
        r.closed("a", 2, 40); // the stale one finally errors: not counted again
        let c = &r.status(50).clients["a"];
        assert_eq!((c.connections, c.resets, c.connected), (3, 2, true));
        r.closed("a", 3, 60);
        let c = &r.status(70).clients["a"];
        assert_eq!((c.resets, c.connected), (3, false));
    }

    #[test]
    fn pings_pongs_polls_and_bad_lines() {
        let mut r = Registry::default();
        r.ping_sent("nobody"); // unknown ids are not created by pings
        r.hello("b", 1, 0);
        r.ping_sent("b");
        r.ping_sent("b");
        r.pong("b", 5);
        r.bad_line("b", 6);
        assert_eq!(r.mail_poll("b", 7), 1);
        assert_eq!(r.mail_poll("b", 8), 2);
        let s = r.status(9);
        assert!(!s.clients.contains_key("nobody"));
        let c = &s.clients["b"];
        assert_eq!(
            (c.pings_sent, c.pongs, c.bad_lines, c.mail_polls),
            (2, 1, 1, 2)
        );
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<PeerStatus>(&json).unwrap(), s);
    }
}
