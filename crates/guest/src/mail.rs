//! The mail client: a new connection per poll, `POLL <id>` answered by
//! `OK <count> <bytes>` (protocol of `jettison-peer`). Prints
//! `JTS MAIL polls=<n> fail=<n> ...` after every poll.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

/// `(count, bytes)` from an `OK <count> <bytes>` reply.
pub fn parse_ok(line: &str) -> Option<(u64, u64)> {
    let mut it = line.trim().strip_prefix("OK ")?.split_whitespace();
    let count = it.next()?.parse().ok()?;
    let bytes = it.next()?.parse().ok()?;
    it.next().is_none().then_some((count, bytes))
}

/// One poll.
fn poll(server: SocketAddr, id: &str) -> Result<(u64, u64), String> {
    let t = Duration::from_secs(5);
    let mut s = TcpStream::connect_timeout(&server, t).map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_read_timeout(Some(t));
    s.write_all(format!("POLL {id}\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| format!("read: {e}"))?;
    parse_ok(&line).ok_or_else(|| format!("bad reply {:?}", line.trim()))
}

/// Polls `server` every `interval` forever.
pub fn run_mail(server: SocketAddr, id: String, interval: Duration, say: fn(&str)) -> ! {
    let (mut polls, mut fail, mut msgs) = (0u64, 0u64, 0u64);
    loop {
        thread::sleep(interval);
        polls += 1;
        match poll(server, &id) {
            Ok((count, _)) => {
                msgs += count;
                say(&format!("JTS MAIL polls={polls} fail={fail} msgs={msgs}"));
            }
            Err(e) => {
                fail += 1;
                say(&format!(
                    "JTS MAIL polls={polls} fail={fail} msgs={msgs} err={e}"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_lines() {
        assert_eq!(parse_ok("OK 2 3072\n"), Some((2, 3072)));
        assert_eq!(parse_ok("OK 0 0"), Some((0, 0)));
        assert_eq!(parse_ok("OK 1"), None);
        assert_eq!(parse_ok("OK 1 2 3"), None);
        assert_eq!(parse_ok("ERR nope"), None);
    }
}
