//! [`WyomingCodec`]: a `tokio_util` codec for Wyoming frames with hard size limits.
//!
//! Reading accepts both inline `data` (old writers) and a data block (every writer since
//! wyoming 1.1.0), merging them as the reference reader does. Writing always puts data in a data
//! block: the reference reader drops header lines over 64 KiB, so large `info` events must never be
//! written inline.
//!
//! Every length is checked against [`Limits`] before anything is allocated for it, and the buffer is
//! grown only as bytes actually arrive, so a peer that announces a huge frame and sends nothing
//! costs nothing.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Deserialize;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::ProtocolError;
use crate::event::Event;
use crate::frame::{Data, Frame};

/// The `version` written in every header: the reference library release this crate follows.
pub const PROTOCOL_VERSION: &str = "1.10.2";

/// Default cap on the header line, the same as the reference reader's asyncio stream limit.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;
/// Default cap on a data block. The largest real one is `info`: Piper's whole catalogue is ~86 KB.
pub const DEFAULT_MAX_DATA: usize = 1024 * 1024;
/// Default cap on a payload. Audio chunks are small (320 bytes from HA); this leaves room for
/// clients that send several seconds of audio in one chunk.
pub const DEFAULT_MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// How much the read buffer is grown at a time while a large frame arrives.
const RESERVE_STEP: usize = 64 * 1024;

/// Size limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest header line accepted, in bytes, without the newline.
    pub max_line: usize,
    /// Largest data block accepted, in bytes.
    pub max_data: usize,
    /// Largest payload accepted, in bytes.
    pub max_payload: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line: DEFAULT_MAX_LINE,
            max_data: DEFAULT_MAX_DATA,
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }
}

/// The header line as read. Unknown keys (e.g. `version`) are ignored, as the reference does.
#[derive(Deserialize)]
struct Header {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    data_length: Option<i64>,
    #[serde(default)]
    payload_length: Option<i64>,
}

/// Where the decoder is inside the current frame.
#[derive(Debug)]
enum State {
    /// Looking for the end of a header line; `scanned` bytes are known to hold no newline.
    Head { scanned: usize },
    /// The header is parsed; waiting for `data_len + payload_len` more bytes.
    Body {
        kind: String,
        inline: Option<Data>,
        data_len: usize,
        payload_len: usize,
    },
}

/// Encodes and decodes Wyoming frames. See the module documentation.
#[derive(Debug)]
pub struct WyomingCodec {
    limits: Limits,
    state: State,
    /// Reused buffer for serialising data blocks, whose length must be known before the header.
    scratch: Vec<u8>,
}

impl Default for WyomingCodec {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl WyomingCodec {
    /// A codec with the given limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: State::Head { scanned: 0 },
            scratch: Vec::with_capacity(256),
        }
    }

    /// The limits this codec enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn decode_head(&mut self, src: &mut BytesMut, scanned: usize) -> Result<bool, ProtocolError> {
        // Only look at bytes not searched before, and never past the limit (+1 for the newline).
        let window = src.len().min(self.limits.max_line.saturating_add(1));
        let Some(pos) = src
            .get(scanned..window)
            .and_then(|s| s.iter().position(|&b| b == b'\n'))
        else {
            if src.len() > self.limits.max_line {
                return Err(ProtocolError::LineTooLong {
                    limit: self.limits.max_line,
                });
            }
            self.state = State::Head { scanned: window };
            return Ok(false);
        };
        let end = scanned + pos;
        let line = src.split_to(end + 1);
        let mut line = &line[..end];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        let header: Header = serde_json::from_slice(line).map_err(ProtocolError::BadHeader)?;
        let data_len = checked_length(header.data_length, "data_length", self.limits.max_data)?;
        let payload_len = checked_length(
            header.payload_length,
            "payload_length",
            self.limits.max_payload,
        )?;
        self.state = State::Body {
            kind: header.kind,
            inline: header.data,
            data_len,
            payload_len,
        };
        Ok(true)
    }
}

/// Validates a length from the header: absent, null and 0 all mean "none".
fn checked_length(
    value: Option<i64>,
    field: &'static str,
    limit: usize,
) -> Result<usize, ProtocolError> {
    let value = value.unwrap_or(0);
    let length =
        u64::try_from(value).map_err(|_| ProtocolError::NegativeLength { field, value })?;
    match usize::try_from(length) {
        Ok(len) if len <= limit => Ok(len),
        _ if field == "data_length" => Err(ProtocolError::DataTooLarge { length, limit }),
        _ => Err(ProtocolError::PayloadTooLarge { length, limit }),
    }
}

impl Decoder for WyomingCodec {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if let State::Head { scanned } = self.state {
            if !self.decode_head(src, scanned)? {
                return Ok(None);
            }
        }
        let State::Body {
            data_len,
            payload_len,
            ..
        } = self.state
        else {
            return Ok(None);
        };
        let needed = data_len + payload_len;
        if src.len() < needed {
            // Grow step by step as bytes arrive; never trust the announced size for allocation.
            src.reserve((needed - src.len()).min(RESERVE_STEP));
            return Ok(None);
        }
        let State::Body { kind, inline, .. } =
            std::mem::replace(&mut self.state, State::Head { scanned: 0 })
        else {
            return Ok(None);
        };
        let mut data = inline.unwrap_or_default();
        if data_len > 0 {
            let block: Data =
                serde_json::from_slice(&src[..data_len]).map_err(ProtocolError::BadData)?;
            src.advance(data_len);
            if data.is_empty() {
                data = block;
            } else {
                data.extend(block);
            }
        }
        let payload = (payload_len > 0).then(|| src.split_to(payload_len).freeze());
        Ok(Some(Frame {
            kind,
            data,
            payload,
        }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        match &self.state {
            State::Head { .. } if src.is_empty() => Ok(None),
            State::Head { .. } => Err(ProtocolError::UnexpectedEof { missing: 1 }),
            State::Body {
                data_len,
                payload_len,
                ..
            } => Err(ProtocolError::UnexpectedEof {
                missing: data_len + payload_len - src.len(),
            }),
        }
    }
}

/// Writes one frame: header line, data block (if any), payload (if any).
fn write_frame(dst: &mut BytesMut, kind: &str, data: &[u8], payload: Option<&[u8]>) {
    // An empty object is written as no data at all, as the reference writer does.
    let data = if data == b"{}" { &[][..] } else { data };
    let payload = payload.unwrap_or_default();
    dst.reserve(kind.len() + 96 + data.len() + payload.len());
    dst.put_slice(b"{\"type\":");
    write_json_string(dst, kind);
    dst.put_slice(b",\"version\":\"");
    dst.put_slice(PROTOCOL_VERSION.as_bytes());
    dst.put_u8(b'"');
    if !data.is_empty() {
        dst.put_slice(b",\"data_length\":");
        dst.put_slice(itoa::Buffer::new().format(data.len()).as_bytes());
    }
    if !payload.is_empty() {
        dst.put_slice(b",\"payload_length\":");
        dst.put_slice(itoa::Buffer::new().format(payload.len()).as_bytes());
    }
    dst.put_slice(b"}\n");
    dst.put_slice(data);
    dst.put_slice(payload);
}

fn write_json_string(dst: &mut BytesMut, s: &str) {
    let plain = s
        .bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f);
    if plain {
        dst.put_u8(b'"');
        dst.put_slice(s.as_bytes());
        dst.put_u8(b'"');
    } else {
        // Rare (event types are ASCII words): let serde_json do the escaping.
        let escaped = serde_json::Value::from(s).to_string();
        dst.put_slice(escaped.as_bytes());
    }
}

impl Encoder<&Frame> for WyomingCodec {
    type Error = ProtocolError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, &frame.data).map_err(ProtocolError::Encode)?;
        write_frame(dst, &frame.kind, &self.scratch, frame.payload.as_deref());
        Ok(())
    }
}

impl Encoder<Frame> for WyomingCodec {
    type Error = ProtocolError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.encode(&frame, dst)
    }
}

impl Encoder<&Event> for WyomingCodec {
    type Error = ProtocolError;

    fn encode(&mut self, event: &Event, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        if let Event::Unknown(frame) = event {
            return self.encode(frame, dst);
        }
        self.scratch.clear();
        event.write_data(&mut self.scratch)?;
        write_frame(
            dst,
            event.kind(),
            &self.scratch,
            event.payload().map(Bytes::as_ref),
        );
        Ok(())
    }
}

impl Encoder<Event> for WyomingCodec {
    type Error = ProtocolError;

    fn encode(&mut self, event: Event, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.encode(&event, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(wire: &[u8], limits: Limits) -> Result<Option<Frame>, ProtocolError> {
        let mut codec = WyomingCodec::new(limits);
        let mut buf = BytesMut::from(wire);
        codec.decode(&mut buf)
    }

    fn small() -> Limits {
        Limits {
            max_line: 64,
            max_data: 32,
            max_payload: 128,
        }
    }

    #[test]
    fn header_line_over_the_limit_is_an_error_before_the_newline_arrives() {
        let mut codec = WyomingCodec::new(small());
        let mut buf = BytesMut::from(&[b' '; 64][..]);
        assert!(
            codec.decode(&mut buf).unwrap().is_none(),
            "64 bytes is still within the limit"
        );
        buf.extend_from_slice(b" ");
        assert!(matches!(
            codec.decode(&mut buf),
            Err(ProtocolError::LineTooLong { limit: 64 })
        ));
    }

    #[test]
    fn header_line_at_the_limit_is_accepted() {
        let header = br#"{"type":"describe"}"#;
        let mut wire = header.to_vec();
        wire.resize(64, b' ');
        wire.push(b'\n');
        assert_eq!(
            decode_all(&wire, small()).unwrap().unwrap().kind,
            "describe"
        );
    }

    #[test]
    fn malformed_headers_are_typed_errors() {
        for wire in [
            &b"not json\n"[..],
            b"\n",
            b"[1,2]\n",
            b"{\"data\":{}}\n",
            b"{\"type\":5}\n",
            b"{\"type\":\"x\",\"data\":[1]}\n",
            b"{\"type\":\"x\",\"data_length\":\"5\"}\n",
            b"{\"type\":\"x\",\"data_length\":1.5}\n",
            b"{\"type\":\"x\",\"payload_length\":1e400}\n",
            b"{\"type\":\"x\",\"payload_length\":99999999999999999999}\n",
            b"\xff\xfe\n",
        ] {
            let result = decode_all(wire, Limits::default());
            assert!(
                matches!(result, Err(ProtocolError::BadHeader(_))),
                "{:?} gave {result:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn negative_lengths_are_rejected() {
        for (wire, want) in [
            (&b"{\"type\":\"x\",\"data_length\":-1}\n"[..], "data_length"),
            (
                b"{\"type\":\"x\",\"payload_length\":-5}\n",
                "payload_length",
            ),
        ] {
            match decode_all(wire, Limits::default()) {
                Err(ProtocolError::NegativeLength { field, .. }) => assert_eq!(field, want),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn lengths_over_the_limits_are_rejected_without_allocating() {
        let limits = small();
        assert!(matches!(
            decode_all(b"{\"type\":\"x\",\"data_length\":33}\n", limits),
            Err(ProtocolError::DataTooLarge {
                length: 33,
                limit: 32
            })
        ));
        assert!(matches!(
            decode_all(b"{\"type\":\"x\",\"payload_length\":129}\n", limits),
            Err(ProtocolError::PayloadTooLarge {
                length: 129,
                limit: 128
            })
        ));
        assert!(matches!(
            decode_all(
                b"{\"type\":\"x\",\"payload_length\":9223372036854775807}\n",
                limits
            ),
            Err(ProtocolError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn an_announced_payload_is_not_allocated_up_front() {
        let mut codec = WyomingCodec::default();
        let mut buf =
            BytesMut::from(&b"{\"type\":\"audio-chunk\",\"payload_length\":8000000}\nab"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() <= 2 * RESERVE_STEP,
            "capacity {}",
            buf.capacity()
        );
    }

    #[test]
    fn data_block_must_be_a_json_object() {
        for wire in [
            &b"{\"type\":\"x\",\"data_length\":3}\n[1]"[..],
            b"{\"type\":\"x\",\"data_length\":3}\nabc",
            b"{\"type\":\"x\",\"data_length\":2}\n\xff\xff",
        ] {
            assert!(matches!(
                decode_all(wire, Limits::default()),
                Err(ProtocolError::BadData(_))
            ));
        }
    }

    #[test]
    fn eof_inside_a_frame_is_an_error_and_eof_between_frames_is_not() {
        let mut codec = WyomingCodec::default();
        let mut buf = BytesMut::from(&b"{\"type\":\"audio-chunk\",\"payload_length\":10}\nabc"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(ProtocolError::UnexpectedEof { missing: 7 })
        ));

        let mut codec = WyomingCodec::default();
        let mut buf = BytesMut::from(&b"{\"type\":\"desc"[..]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(ProtocolError::UnexpectedEof { .. })
        ));

        let mut codec = WyomingCodec::default();
        let mut buf = BytesMut::from(&b"{\"type\":\"describe\"}\n"[..]);
        assert!(codec.decode_eof(&mut buf).unwrap().is_some());
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    }

    #[test]
    fn a_header_is_scanned_once_however_it_is_split() {
        // A slow sender dribbling a long line must not make the decoder rescan from the start.
        let mut codec = WyomingCodec::default();
        let mut buf = BytesMut::new();
        for _ in 0..1000 {
            buf.extend_from_slice(b" ");
            assert!(codec.decode(&mut buf).unwrap().is_none());
        }
        assert!(matches!(codec.state, State::Head { scanned: 1000 }));
    }

    #[test]
    fn invalid_typed_data_is_not_fatal() {
        let frame = decode_all(
            b"{\"type\":\"audio-chunk\",\"data\":{\"rate\":\"fast\"}}\n",
            Limits::default(),
        )
        .unwrap()
        .unwrap();
        let err = Event::from_frame(frame).unwrap_err();
        assert!(
            matches!(err, ProtocolError::InvalidEvent { ref kind, .. } if kind == "audio-chunk")
        );
        assert!(!err.is_fatal());
        assert_eq!(err.code(), "invalid-event");
    }
}
