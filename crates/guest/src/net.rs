//! Minimal chat client: one TCP connection to a peer, a heartbeat line every
//! second, replies echoed to the console.
//!
//! Wire format (line-oriented, ASCII): the guest sends `HB <n>\n` with `n`
//! counting up across reconnects; whatever lines the peer sends back are
//! reported as `JTS NET rx <line>`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

/// The heartbeat line for sequence number `n`.
pub fn hb_line(n: u64) -> String {
    format!("HB {n}\n")
}

/// Runs the chat client forever, reporting through `say` (one console line
/// per call, without the trailing newline).
pub fn run_chat(peer: SocketAddr, say: impl Fn(&str) + Send + Sync + Clone + 'static) -> ! {
    let mut seq: u64 = 0;
    let mut connects: u64 = 0;
    loop {
        let stream = match TcpStream::connect_timeout(&peer, Duration::from_secs(3)) {
            Ok(s) => s,
            Err(e) => {
                say(&format!("JTS NET connect-failed peer={peer} err={e}"));
                thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        connects += 1;
        say(&format!("JTS NET connected peer={peer} n={connects}"));
        let _ = stream.set_nodelay(true);
        if let Ok(rd) = stream.try_clone() {
            let say = say.clone();
            thread::spawn(move || {
                for line in BufReader::new(rd).lines() {
                    match line {
                        Ok(l) => say(&format!("JTS NET rx {l}")),
                        Err(_) => break,
                    }
                }
            });
        }
        let mut w = stream;
        loop {
            seq += 1;
            if let Err(e) = w.write_all(hb_line(seq).as_bytes()) {
                say(&format!("JTS NET lost peer={peer} seq={seq} err={e}"));
                break;
            }
            thread::sleep(Duration::from_secs(1));
        }
        let _ = w.shutdown(std::net::Shutdown::Both);
        thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hb_line_format() {
        assert_eq!(hb_line(7), "HB 7\n");
    }
}
