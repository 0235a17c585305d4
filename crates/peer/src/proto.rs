//! The line protocols (ASCII, one message per `\n`-terminated line).
//!
//! Chat (one long-lived connection per client):
//!
//! ```text
//! client                      peer
//!   HELLO <client-id>  ──▶              (once, first line)
//!   HB <n>             ──▶              (every second, n counts up across reconnects)
//!                      ◀──  ACK <n>     (answer to each HB)
//!                      ◀──  PING <m>    (every second, m counts up per connection)
//!   PONG <m>           ──▶              (answer to each PING)
//! ```
//!
//! Mail (one connection per poll): the client sends `POLL <client-id>`, the
//! peer answers `OK <count> <bytes>` and closes.
//!
//! Anything else gets `ERR <reason>`.

use thiserror::Error;

/// Longest accepted client id.
pub const MAX_ID_LEN: usize = 64;

/// A malformed line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtoError {
    /// The verb is not one we know.
    #[error("unknown verb {0:?}")]
    UnknownVerb(String),
    /// The argument is missing or not what the verb wants.
    #[error("bad argument for {verb}: {arg:?}")]
    BadArgument {
        /// The verb.
        verb: &'static str,
        /// What came after it.
        arg: String,
    },
}

/// A line a chat client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatLine {
    /// `HELLO <client-id>`.
    Hello(String),
    /// `HB <n>`.
    Hb(u64),
    /// `PONG <m>`.
    Pong(u64),
}

/// Whether `id` is acceptable as a client id: 1..=64 printable ASCII
/// characters without whitespace.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

fn split(line: &str) -> (&str, &str) {
    let line = line.trim_end_matches(['\r', '\n']).trim();
    match line.split_once(char::is_whitespace) {
        Some((v, a)) => (v, a.trim()),
        None => (line, ""),
    }
}

fn id_arg(verb: &'static str, arg: &str) -> Result<String, ProtoError> {
    if valid_id(arg) {
        Ok(arg.to_string())
    } else {
        Err(ProtoError::BadArgument {
            verb,
            arg: arg.to_string(),
        })
    }
}

fn num_arg(verb: &'static str, arg: &str) -> Result<u64, ProtoError> {
    arg.parse().map_err(|_| ProtoError::BadArgument {
        verb,
        arg: arg.to_string(),
    })
}

/// Parses one line from a chat client.
pub fn parse_chat(line: &str) -> Result<ChatLine, ProtoError> {
    match split(line) {
        ("HELLO", a) => id_arg("HELLO", a).map(ChatLine::Hello),
        ("HB", a) => num_arg("HB", a).map(ChatLine::Hb),
        ("PONG", a) => num_arg("PONG", a).map(ChatLine::Pong),
        (v, _) => Err(ProtoError::UnknownVerb(v.to_string())),
    }
}

/// Parses a mail client's `POLL <client-id>` line, returning the id.
pub fn parse_poll(line: &str) -> Result<String, ProtoError> {
    match split(line) {
        ("POLL", a) => id_arg("POLL", a),
        (v, _) => Err(ProtoError::UnknownVerb(v.to_string())),
    }
}

/// `ACK <n>\n`.
pub fn ack_line(n: u64) -> String {
    format!("ACK {n}\n")
}

/// `PING <m>\n`.
pub fn ping_line(m: u64) -> String {
    format!("PING {m}\n")
}

/// `OK <count> <bytes>\n`.
pub fn ok_line(count: u64, bytes: u64) -> String {
    format!("OK {count} {bytes}\n")
}

/// `ERR <reason>\n` (the reason on one line).
pub fn err_line(reason: &str) -> String {
    format!("ERR {}\n", reason.replace(['\r', '\n'], " "))
}

/// The fake mailbox for a client's `poll`-th poll (1-based): a few messages
/// now and then, deterministic so tests can predict it.
pub fn mailbox(poll: u64) -> (u64, u64) {
    let count = poll % 4;
    (count, count * 1536)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chat_lines() {
        assert_eq!(
            parse_chat("HELLO vm-1\n"),
            Ok(ChatLine::Hello("vm-1".into()))
        );
        assert_eq!(parse_chat("HB 42\r\n"), Ok(ChatLine::Hb(42)));
        assert_eq!(parse_chat("  PONG 7 "), Ok(ChatLine::Pong(7)));
    }

    #[test]
    fn rejects_bad_chat_lines() {
        assert!(matches!(
            parse_chat("HB x"),
            Err(ProtoError::BadArgument { verb: "HB", .. })
        ));
        assert!(matches!(
            parse_chat("HB"),
            Err(ProtoError::BadArgument { .. })
        ));
        assert!(matches!(
            parse_chat("HELLO"),
            Err(ProtoError::BadArgument { .. })
        ));
        assert!(matches!(
            parse_chat("HELLO a b"),
            Err(ProtoError::BadArgument { .. })
        ));
        assert_eq!(
            parse_chat("WAT 1"),
            Err(ProtoError::UnknownVerb("WAT".into()))
        );
        assert_eq!(parse_chat(""), Err(ProtoError::UnknownVerb(String::new())));
        let long = format!("HELLO {}", "a".repeat(MAX_ID_LEN + 1));
        assert!(parse_chat(&long).is_err());
    }

    #[test]
    fn parses_polls() {
        assert_eq!(parse_poll("POLL desk-3\n"), Ok("desk-3".into()));
        assert!(parse_poll("POLL").is_err());
        assert!(parse_poll("HB 1").is_err());
    }

    #[test]
    fn formats_replies() {
        assert_eq!(ack_line(3), "ACK 3\n");
        assert_eq!(ping_line(9), "PING 9\n");
        assert_eq!(ok_line(2, 3072), "OK 2 3072\n");
        assert_eq!(err_line("bad\nthing"), "ERR bad thing\n");
        assert_eq!(mailbox(1), (1, 1536));
        assert_eq!(mailbox(4), (0, 0));
    }
}
