//! The client's wait for the server's verdict on its certificate.
//!
//! In TLS 1.3 the client's handshake ends before the server has checked the
//! client's certificate. The server sends a session ticket (a handshake
//! message, never application data) once it has accepted the certificate, or
//! an alert if it refused it; the client reads TLS records until it sees one
//! or the other. Any application data that arrives meanwhile stays buffered
//! inside rustls and is returned by later reads.

use std::io;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::live::TrackedTcp;

use crate::TlsError;

/// `std::io::Read` over a tokio socket without blocking.
struct TryRead<'a>(&'a TcpStream);

impl io::Read for TryRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

/// Waits until the server has sent a session ticket (it accepted us) or
/// fails with the server's alert or closure.
pub(crate) async fn await_ticket(
    tls: &mut TlsStream<TrackedTcp>,
    peer: &str,
) -> Result<(), TlsError> {
    let io_err = |e: io::Error| TlsError::Handshake {
        peer: peer.to_owned(),
        detail: e.to_string(),
    };
    loop {
        let (tracked, conn) = tls.get_mut();
        let tcp = tracked.tcp();
        if conn.tls13_tickets_received() > 0 {
            return Ok(());
        }
        tcp.readable().await.map_err(io_err)?;
        match conn.read_tls(&mut TryRead(tcp)) {
            Ok(0) => {
                return Err(TlsError::Handshake {
                    peer: peer.to_owned(),
                    detail: "the server closed the connection without accepting our certificate"
                        .into(),
                })
            }
            Ok(_) => {
                conn.process_new_packets()
                    .map_err(|e| crate::context::refused(peer, &e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(io_err(e)),
        }
    }
}
