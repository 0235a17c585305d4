//! The established connections of a context, so that a reload can close
//! those whose peer the new settings refuse (revoked, no longer in
//! `allowed_peers`, another CA).
//!
//! Each connection's TCP stream is a [`TrackedTcp`]: after the handshake it
//! holds an [`Entry`] (the peer's certificate chain and a duplicate of the
//! socket's descriptor); the [`Registry`] keeps only weak references, so an
//! entry goes with its connection. Closing is `shutdown(2)` on the socket:
//! the connection's reads end and its writes fail, as when the peer
//! vanishes, and the peer sees the connection close; the task that owns
//! the connection handles it as any lost connection.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Which end of the handshake we were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Side {
    /// We accepted a client.
    Accepted,
    /// We dialled a server that had to prove it is `name`.
    Dialed {
        /// The name we expected.
        name: String,
    },
}

/// One established connection.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) peer: String,
    pub(crate) side: Side,
    pub(crate) chain: Vec<CertificateDer<'static>>,
    fd: OwnedFd,
}

impl Entry {
    /// Shuts the socket down both ways (the connection's owner sees it end).
    pub(crate) fn close(&self) -> io::Result<()> {
        let dup = self.fd.try_clone()?;
        std::net::TcpStream::from(dup).shutdown(Shutdown::Both)
    }
}

/// The TCP stream under a [`crate::TlsConn`]: a `TcpStream` that a reload
/// can close.
#[derive(Debug)]
pub struct TrackedTcp {
    tcp: TcpStream,
    entry: Option<Arc<Entry>>,
}

impl TrackedTcp {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        TrackedTcp { tcp, entry: None }
    }

    /// The TCP stream.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }
}

/// The live connections of a context.
#[derive(Debug, Default)]
pub(crate) struct Registry(Mutex<Vec<Weak<Entry>>>);

impl Registry {
    /// Records `stream`'s connection, with the peer's chain.
    pub(crate) fn track(
        &self,
        stream: &mut TrackedTcp,
        peer: &str,
        side: Side,
        chain: Vec<CertificateDer<'static>>,
    ) -> io::Result<()> {
        let fd = stream.tcp.as_fd().try_clone_to_owned()?;
        let entry = Arc::new(Entry {
            peer: peer.to_owned(),
            side,
            chain,
            fd,
        });
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&entry));
        stream.entry = Some(entry);
        Ok(())
    }

    /// The connections still open.
    pub(crate) fn live(&self) -> Vec<Arc<Entry>> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.iter().filter_map(Weak::upgrade).collect()
    }
}

impl AsyncRead for TrackedTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}
