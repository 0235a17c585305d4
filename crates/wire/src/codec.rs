//! The frame codec: a 4-byte big-endian payload length, then the payload.
//!
//! A length over [`MAX_FRAME_BYTES`] is refused as soon as its 4 bytes are
//! in. Below it, the buffer grows with the bytes that arrive, not with the
//! length promised: a peer that sends a 4-byte prefix claiming 64 MiB and
//! stalls costs a few KiB, not 64 MiB (the `alloc_bound` test measures it).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::{WireError, MAX_FRAME_BYTES};

/// Bytes of the length prefix.
const HEAD: usize = 4;
/// Most the decoder reserves ahead of the bytes it already holds: at most
/// this, or as much again as it holds, whichever is more.
const RESERVE_STEP: usize = 64 << 10;

/// Splits a byte stream into frame payloads, and prefixes payloads sent.
#[derive(Debug, Default)]
pub(crate) struct FrameCodec {
    /// Payload length of the frame being read, once its prefix is in.
    want: Option<usize>,
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, WireError> {
        let n = match self.want {
            Some(n) => n,
            None => {
                if src.len() < HEAD {
                    return Ok(None);
                }
                let n = src.get_u32() as usize;
                if n > MAX_FRAME_BYTES {
                    return Err(WireError::Malformed(format!(
                        "frame of {n} bytes, over the {MAX_FRAME_BYTES}-byte limit"
                    )));
                }
                self.want = Some(n);
                n
            }
        };
        if src.len() < n {
            // Room for the next reads, in proportion to what came so far.
            let ahead = (n - src.len()).min(RESERVE_STEP.max(src.len()));
            src.reserve(ahead);
            return Ok(None);
        }
        self.want = None;
        Ok(Some(src.split_to(n)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, WireError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() && self.want.is_none() => Ok(None),
            None => Err(WireError::Malformed(
                "stream ended in the middle of a frame".into(),
            )),
        }
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = WireError;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), WireError> {
        if payload.len() > MAX_FRAME_BYTES {
            return Err(WireError::Encode(format!(
                "frame of {} bytes, over the {MAX_FRAME_BYTES}-byte limit",
                payload.len()
            )));
        }
        dst.reserve(HEAD + payload.len());
        dst.put_u32(payload.len() as u32);
        dst.extend_from_slice(&payload);
        Ok(())
    }
}
