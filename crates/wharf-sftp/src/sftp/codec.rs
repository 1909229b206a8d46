//! SFTP packets on the channel's byte stream: cutting the stream into packets, decoding
//! requests with russh-sftp, and the two packets that carry file contents (`SSH_FXP_WRITE`
//! requests, `SSH_FXP_DATA` replies) handled without copying their payload again.
//!
//! Every SFTP packet is `uint32 length, byte type, payload`. A channel data message may carry
//! several packets or part of one, so bytes are gathered until a whole packet is there.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use russh_sftp::protocol::{Packet, Status, StatusCode};

/// Largest SFTP packet accepted from a client (type and payload, without the length), as
/// announced in `limits@openssh.com`. OpenSSH uses the same figure.
pub(crate) const MAX_PACKET_LEN: usize = 256 * 1024;

/// `SSH_FXP_INIT`.
pub(crate) const FXP_INIT: u8 = 1;
/// `SSH_FXP_READ`.
pub(crate) const FXP_READ: u8 = 5;
/// `SSH_FXP_WRITE`.
pub(crate) const FXP_WRITE: u8 = 6;
/// `SSH_FXP_DATA`.
const FXP_DATA: u8 = 103;

/// Bytes of an `SSH_FXP_DATA` packet before its payload: length, type, id, payload length.
pub(crate) const DATA_HEADER_LEN: usize = 4 + 1 + 4 + 4;

/// A buffer that grew for a large packet is given back once empty above this size, so an idle
/// session keeps little memory.
const IDLE_BUFFER_CAPACITY: usize = 64 * 1024;

/// Why the stream of packets cannot be followed any further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// A packet announced no type byte.
    #[error("empty SFTP packet")]
    Empty,
    /// A packet announced more bytes than a client may send.
    #[error("SFTP packet of {0} bytes exceeds the limit of {MAX_PACKET_LEN}")]
    TooLong(usize),
}

/// Gathers channel data and yields whole packets.
#[derive(Debug, Default)]
pub(crate) struct FrameDecoder {
    buffer: BytesMut,
}

impl FrameDecoder {
    /// Appends bytes received on the channel.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// Bytes received and not yet returned as packets.
    pub(crate) fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Whether a whole packet (or a malformed length, which is an error to report) is there.
    pub(crate) fn has_frame(&self) -> bool {
        match self.buffer.get(..4) {
            Some(header) => {
                let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
                len == 0 || len > MAX_PACKET_LEN || self.buffer.len() >= 4 + len
            }
            None => false,
        }
    }

    /// The next whole packet (type byte and payload), if one has arrived completely.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(header) = self.buffer.get(..4) else {
            self.release_if_idle();
            return Ok(None);
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > MAX_PACKET_LEN {
            return Err(FrameError::TooLong(len));
        }
        if self.buffer.len() < 4 + len {
            // Make room for the whole packet at once rather than growing step by step.
            self.buffer.reserve(4 + len - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(4);
        Ok(Some(self.buffer.split_to(len).freeze()))
    }

    fn release_if_idle(&mut self) {
        if self.buffer.is_empty() && self.buffer.capacity() > IDLE_BUFFER_CAPACITY {
            self.buffer = BytesMut::new();
        }
    }
}

/// Why a request could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The packet ended before its fields did.
    #[error("truncated {0} request")]
    Truncated(&'static str),
    /// russh-sftp could not decode the packet.
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// An `SSH_FXP_WRITE` request whose data is a slice of the received packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriteRequest {
    /// Request id.
    pub(crate) id: u32,
    /// The handle, as the client sent it.
    pub(crate) handle: Bytes,
    /// Where the data goes in the file.
    pub(crate) offset: u64,
    /// The data.
    pub(crate) data: Bytes,
}

/// A decoded client request.
#[derive(Debug)]
pub(crate) enum Request {
    /// A write, decoded without copying its data.
    Write(WriteRequest),
    /// Anything else, as russh-sftp decodes it.
    Other(Packet),
}

/// `SSH_FXP_EXTENDED`.
const FXP_EXTENDED: u8 = 200;

/// Whether `kind` is a request type of SFTP version 3 (`SSH_FXP_OPEN` to `SSH_FXP_SYMLINK`, or
/// `SSH_FXP_EXTENDED`).
pub(crate) fn is_request_type(kind: u8) -> bool {
    (3..=20).contains(&kind) || kind == FXP_EXTENDED
}

/// The request id of a packet, read before decoding it (to answer a malformed request).
/// `SSH_FXP_INIT` has none.
pub(crate) fn request_id(frame: &[u8]) -> Option<u32> {
    match frame {
        [kind, a, b, c, d, ..] if *kind != FXP_INIT => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Decodes one packet (type byte and payload).
pub(crate) fn decode_request(frame: Bytes) -> Result<Request, DecodeError> {
    if frame.first() == Some(&FXP_WRITE) {
        return decode_write(frame).map(Request::Write);
    }
    let mut frame = frame;
    Packet::try_from(&mut frame)
        .map(Request::Other)
        .map_err(|err| DecodeError::Malformed(err.to_string()))
}

fn take_u32(buf: &mut Bytes) -> Result<u32, DecodeError> {
    buf.try_get_u32().map_err(|_| DecodeError::Truncated("write"))
}

fn take_string(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    let len = take_u32(buf)? as usize;
    if buf.remaining() < len {
        return Err(DecodeError::Truncated("write"));
    }
    Ok(buf.split_to(len))
}

/// `byte 6, uint32 id, string handle, uint64 offset, string data`.
fn decode_write(mut frame: Bytes) -> Result<WriteRequest, DecodeError> {
    frame.advance(1);
    let id = take_u32(&mut frame)?;
    let handle = take_string(&mut frame)?;
    let offset = frame.try_get_u64().map_err(|_| DecodeError::Truncated("write"))?;
    let data = take_string(&mut frame)?;
    Ok(WriteRequest { id, handle, offset, data })
}

/// Appends the header of an `SSH_FXP_DATA` reply whose `payload_len` bytes follow.
pub(crate) fn put_data_header(out: &mut BytesMut, id: u32, payload_len: usize) {
    // The payload is at most a read block, far below u32::MAX.
    let payload_len = u32::try_from(payload_len).unwrap_or(u32::MAX);
    out.put_u32(1 + 4 + 4 + payload_len);
    out.put_u8(FXP_DATA);
    out.put_u32(id);
    out.put_u32(payload_len);
}

/// Encodes a reply packet, length included.
pub(crate) fn encode(packet: Packet) -> Bytes {
    match Bytes::try_from(packet) {
        Ok(bytes) => bytes,
        // Only lengths above 4 GiB fail to encode; replies are far smaller.
        Err(err) => {
            tracing::error!(error = %err, "could not encode an SFTP reply");
            Bytes::new()
        }
    }
}

/// Encodes an `SSH_FXP_STATUS` reply.
pub(crate) fn status(id: u32, code: StatusCode, message: &str) -> Bytes {
    encode(Packet::Status(Status {
        id,
        status_code: code,
        error_message: message.to_owned(),
        language_tag: "en".to_owned(),
    }))
}

/// An `SSH_FX_OK` status.
pub(crate) fn ok(id: u32) -> Bytes {
    status(id, StatusCode::Ok, "Success")
}

#[cfg(test)]
mod tests {
    use russh_sftp::protocol::{Data, Write};

    use super::*;

    fn framed(packet: Packet) -> Bytes {
        Bytes::try_from(packet).expect("encode")
    }

    #[test]
    fn frames_split_across_and_within_messages() {
        let a = framed(Packet::error(7, StatusCode::Eof));
        let b = framed(Packet::error(8, StatusCode::Failure));
        let mut stream = a.to_vec();
        stream.extend_from_slice(&b);
        let mut decoder = FrameDecoder::default();
        // One byte at a time, then everything at once.
        for byte in &stream[..5] {
            decoder.push(&[*byte]);
            assert_eq!(decoder.next_frame(), Ok(None));
        }
        assert!(!decoder.has_frame());
        decoder.push(&stream[5..]);
        assert!(decoder.has_frame());
        assert_eq!(decoder.next_frame().expect("ok").as_deref(), Some(&a[4..]));
        assert_eq!(decoder.next_frame().expect("ok").as_deref(), Some(&b[4..]));
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn oversized_and_empty_packets_are_errors() {
        let mut decoder = FrameDecoder::default();
        decoder.push(&((MAX_PACKET_LEN + 1) as u32).to_be_bytes());
        assert_eq!(decoder.next_frame(), Err(FrameError::TooLong(MAX_PACKET_LEN + 1)));
        let mut decoder = FrameDecoder::default();
        decoder.push(&0u32.to_be_bytes());
        assert_eq!(decoder.next_frame(), Err(FrameError::Empty));
    }

    #[test]
    fn write_decoding_matches_russh_sftp() {
        for size in [0usize, 1, 32 * 1024, 255 * 1024] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let packet = framed(Packet::Write(Write {
                id: 0xdead_beef,
                handle: "42".to_owned(),
                offset: (1 << 40) + 3,
                data: data.clone(),
            }));
            let mut decoder = FrameDecoder::default();
            decoder.push(&packet);
            let frame = decoder.next_frame().expect("ok").expect("whole");
            let Ok(Request::Write(write)) = decode_request(frame) else { panic!("not a write") };
            assert_eq!(write.id, 0xdead_beef);
            assert_eq!(&write.handle[..], b"42");
            assert_eq!(write.offset, (1 << 40) + 3);
            assert_eq!(write.data, data);
        }
    }

    #[test]
    fn truncated_writes_are_refused_with_their_id() {
        let packet = framed(Packet::Write(Write {
            id: 5,
            handle: "1".to_owned(),
            offset: 0,
            data: vec![1, 2, 3],
        }));
        let frame = packet.slice(4..packet.len() - 1);
        assert_eq!(request_id(&frame), Some(5));
        assert!(matches!(decode_request(frame), Err(DecodeError::Truncated("write"))));
    }

    #[test]
    fn data_header_decodes_with_russh_sftp() {
        let payload = b"hello, world".as_slice();
        let mut out = BytesMut::new();
        put_data_header(&mut out, 99, payload.len());
        assert_eq!(out.len(), DATA_HEADER_LEN);
        out.extend_from_slice(payload);
        let mut body = out.freeze().slice(4..);
        let Ok(Packet::Data(Data { id, data })) = Packet::try_from(&mut body) else {
            panic!("not data")
        };
        assert_eq!((id, data.as_slice()), (99, payload));
    }

    #[test]
    fn init_has_no_request_id() {
        assert_eq!(request_id(&[FXP_INIT, 0, 0, 0, 3]), None);
        assert_eq!(request_id(&[17, 0, 0, 1, 0]), Some(256));
    }
}
