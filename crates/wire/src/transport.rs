//! Framing: each message is one frame, a 4-byte big-endian length followed by
//! the message encoded with postcard. The transport is generic over any byte
//! stream, so TLS can wrap the socket without touching the messages.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use crate::codec::FrameCodec;

use crate::messages::Message;
use crate::WireError;

/// Largest frame either side accepts (64 MiB). Larger frames are refused
/// before their payload is read, and a frame's buffer grows with the bytes
/// that arrive, not with the length its prefix claims.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// A framed, typed connection. Counts the bytes it moves, framing included.
#[derive(Debug)]
pub struct Transport<S> {
    framed: Framed<S, FrameCodec>,
    bytes_sent: u64,
    bytes_received: u64,
    minor: u16,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Transport<S> {
    /// Wraps a connected byte stream.
    pub fn new(stream: S) -> Self {
        Transport {
            framed: Framed::new(stream, FrameCodec::default()),
            bytes_sent: 0,
            bytes_received: 0,
            minor: crate::PROTOCOL_MINOR,
        }
    }

    /// Encodes and sends one message.
    pub async fn send(&mut self, msg: &Message) -> Result<(), WireError> {
        let payload = encode(msg)?;
        let len = payload.len() as u64;
        self.framed.send(Bytes::from(payload)).await?;
        self.bytes_sent += len + 4;
        Ok(())
    }

    /// Receives one message; `Ok(None)` on a clean end of stream between frames.
    pub async fn recv(&mut self) -> Result<Option<Message>, WireError> {
        match self.framed.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(e),
            Some(Ok(frame)) => {
                self.bytes_received += frame.len() as u64 + 4;
                decode(&frame).map(Some)
            }
        }
    }

    /// Receives one message, failing on end of stream or after `timeout`.
    pub async fn recv_within(&mut self, timeout: Duration) -> Result<Message, WireError> {
        match tokio::time::timeout(timeout, self.recv()).await {
            Err(_) => Err(WireError::Timeout(timeout)),
            Ok(Ok(Some(m))) => Ok(m),
            Ok(Ok(None)) => Err(WireError::Closed),
            Ok(Err(e)) => Err(e),
        }
    }

    /// Sends a request and waits for its reply; an [`Message::Error`] reply
    /// becomes [`WireError::Remote`].
    pub async fn request(
        &mut self,
        msg: &Message,
        timeout: Duration,
    ) -> Result<Message, WireError> {
        self.send(msg).await?;
        match self.recv_within(timeout).await? {
            Message::Error(e) => Err(WireError::Remote(e)),
            other => Ok(other),
        }
    }

    /// Flushes and shuts the stream down (over TLS: sends `close_notify`),
    /// so that the peer sees a clean end rather than a lost connection.
    pub async fn close(&mut self) -> Result<(), WireError> {
        SinkExt::<Bytes>::close(&mut self.framed).await
    }

    /// Bytes written so far, framing included.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Bytes read so far, framing included.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// The protocol minor version in force on this connection: ours until
    /// the handshake, then the lower of both sides' (see the versioning rule).
    pub fn minor(&self) -> u16 {
        self.minor
    }

    /// Records the minor version the handshake agreed on.
    pub(crate) fn set_minor(&mut self, minor: u16) {
        self.minor = minor;
    }

    /// Capacity of the read buffer (what a half-read frame holds).
    #[cfg(test)]
    pub(crate) fn read_capacity(&self) -> usize {
        self.framed.read_buffer().capacity()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        self.framed.get_ref()
    }
}

/// Encodes a message into a frame payload.
pub fn encode(msg: &Message) -> Result<Vec<u8>, WireError> {
    postcard::to_stdvec(msg).map_err(|e| WireError::Encode(e.to_string()))
}

/// Decodes a frame payload. Trailing bytes are an error: a frame holds exactly
/// one message.
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    crate::machine::take_refusal();
    let (msg, rest) = postcard::take_from_bytes::<Message>(frame).map_err(|e| {
        // postcard keeps no text of a check's error: the check left it.
        match crate::machine::take_refusal() {
            Some(why) => WireError::Malformed(format!("refused while decoding: {why}")),
            None => {
                WireError::Malformed(format!("undecodable frame of {} bytes: {e}", frame.len()))
            }
        }
    })?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes after a {}",
            rest.len(),
            msg.kind()
        )));
    }
    Ok(msg)
}
