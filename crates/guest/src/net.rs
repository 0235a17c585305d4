//! The chat client: one long-lived TCP connection to the office peer with
//! heartbeats in both directions (protocol of `jettison-peer`).
//!
//! ```text
//! guest                       peer
//!   HELLO <id>   ──▶                 once per connection
//!   HB <n>       ──▶                 every second; n counts across reconnects
//!                ◀──  ACK <n>
//!                ◀──  PING <m>       every second
//!   PONG <m>     ──▶
//! ```
//!
//! Console lines: `JTS NET connected ...`, `JTS NET reconnect n=<k> ...`
//! whenever an established connection is lost (then a new one after 1 s),
//! and `JTS NET hb=<n> acks=<n> pings=<n> reconnects=<k>` every 5 heartbeats.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A connection is declared dead after this long without a line from the
/// peer (it pings every second).
pub const SILENCE: Duration = Duration::from_secs(30);

/// The heartbeat line for sequence number `n`.
pub fn hb_line(n: u64) -> String {
    format!("HB {n}\n")
}

/// The greeting line.
pub fn hello_line(id: &str) -> String {
    format!("HELLO {id}\n")
}

/// A line from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerLine {
    /// `ACK <n>`.
    Ack(u64),
    /// `PING <m>`: answer with `PONG <m>`.
    Ping(u64),
    /// Anything else (e.g. `ERR ...`).
    Other(String),
}

/// Parses one line from the peer.
pub fn parse_peer_line(line: &str) -> PeerLine {
    let l = line.trim();
    let num = |p: &str| l.strip_prefix(p).and_then(|v| v.trim().parse().ok());
    if let Some(n) = num("ACK ") {
        PeerLine::Ack(n)
    } else if let Some(m) = num("PING ") {
        PeerLine::Ping(m)
    } else {
        PeerLine::Other(l.to_string())
    }
}

/// The client id: the setting, else the hostname (unless unset), else
/// `mac-<eth0 address without colons>`, else `guest`.
pub fn client_id(setting: Option<&str>, hostname: &str, eth0_mac: &str) -> String {
    if let Some(id) = setting {
        return id.to_string();
    }
    let h = hostname.trim();
    if !h.is_empty() && h != "(none)" && h != "localhost" {
        return h.to_string();
    }
    let mac: String = eth0_mac.trim().chars().filter(|c| *c != ':').collect();
    if mac.is_empty() {
        "guest".into()
    } else {
        format!("mac-{mac}")
    }
}

/// Counters shared by the sender and the reader.
#[derive(Debug, Default)]
struct Counters {
    hb: AtomicU64,
    acks: AtomicU64,
    pings: AtomicU64,
}

fn count(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Reads the peer's lines, answering PINGs through `w`; returns why it
/// stopped.
fn read_loop(rd: TcpStream, w: &Mutex<TcpStream>, c: &Counters, say: &dyn Fn(&str)) -> String {
    let _ = rd.set_read_timeout(Some(SILENCE));
    for line in BufReader::new(rd).lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return format!("read: {e}"),
        };
        match parse_peer_line(&line) {
            PeerLine::Ack(_) => {
                c.acks.fetch_add(1, Ordering::Relaxed);
            }
            PeerLine::Ping(m) => {
                c.pings.fetch_add(1, Ordering::Relaxed);
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = w.write_all(format!("PONG {m}\n").as_bytes()) {
                    return format!("write pong: {e}");
                }
            }
            PeerLine::Other(l) => say(&format!("JTS NET rx {l}")),
        }
    }
    "closed by peer".into()
}

/// Runs the chat client forever, reporting through `say` (one console line
/// per call, without the trailing newline).
pub fn run_chat(peer: SocketAddr, id: String, say: fn(&str)) -> ! {
    let c = Arc::new(Counters::default());
    let mut reconnects: u64 = 0;
    loop {
        let stream = match TcpStream::connect_timeout(&peer, Duration::from_secs(3)) {
            Ok(s) => s,
            Err(e) => {
                say(&format!("JTS NET connect-failed peer={peer} err={e}"));
                thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        say(&format!(
            "JTS NET connected peer={peer} id={id} reconnects={reconnects}"
        ));
        let _ = stream.set_nodelay(true);
        let reason = session(stream, &id, &c, reconnects, say);
        reconnects += 1;
        say(&format!(
            "JTS NET reconnect n={reconnects} peer={peer} reason={reason}"
        ));
        thread::sleep(Duration::from_secs(1));
    }
}

/// One connection: HELLO, then a heartbeat a second until either side fails.
fn session(
    stream: TcpStream,
    id: &str,
    c: &Arc<Counters>,
    reconnects: u64,
    say: fn(&str),
) -> String {
    let Ok(rd) = stream.try_clone() else {
        return "cannot clone socket".into();
    };
    let w = Arc::new(Mutex::new(stream));
    let (w2, c2) = (w.clone(), c.clone());
    let reader = thread::spawn(move || {
        let why = read_loop(rd, &w2, &c2, &say);
        let _ = w2.lock().map(|s| s.shutdown(Shutdown::Both));
        why
    });
    let mut first = Some(hello_line(id));
    let reason = loop {
        let n = c.hb.load(Ordering::Relaxed) + 1;
        let msg = first.take().unwrap_or_default() + &hb_line(n);
        let r = w
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(msg.as_bytes());
        if let Err(e) = r {
            break format!("write: {e}");
        }
        c.hb.store(n, Ordering::Relaxed);
        if n % 5 == 0 {
            say(&format!(
                "JTS NET hb={n} acks={} pings={} reconnects={reconnects}",
                count(&c.acks),
                count(&c.pings)
            ));
        }
        thread::sleep(Duration::from_secs(1));
        if reader.is_finished() {
            break String::new();
        }
    };
    let _ = w.lock().map(|s| s.shutdown(Shutdown::Both));
    match reader.join() {
        Ok(why) if reason.is_empty() => why,
        Ok(why) => format!("{reason} (reader: {why})"),
        Err(_) => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(hb_line(7), "HB 7\n");
        assert_eq!(hello_line("d0"), "HELLO d0\n");
        assert_eq!(parse_peer_line("ACK 12\r"), PeerLine::Ack(12));
        assert_eq!(parse_peer_line("PING 3"), PeerLine::Ping(3));
        assert_eq!(parse_peer_line("ACK x"), PeerLine::Other("ACK x".into()));
        assert_eq!(
            parse_peer_line("ERR HELLO first"),
            PeerLine::Other("ERR HELLO first".into())
        );
    }

    #[test]
    fn ids() {
        assert_eq!(client_id(Some("x"), "host", "52:54:00:00:00:01"), "x");
        assert_eq!(client_id(None, "desk\n", ""), "desk");
        assert_eq!(
            client_id(None, "(none)\n", "52:54:00:ab:cd:ef\n"),
            "mac-525400abcdef"
        );
        assert_eq!(client_id(None, "", ""), "guest");
    }
}
