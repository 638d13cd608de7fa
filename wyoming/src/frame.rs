//! The untyped wire unit: an event type, its data object and an optional binary payload.
//!
//! [`Frame`] is what the codec reads and writes. [`crate::Event`] gives it types; a frame whose
//! type this crate does not know travels as [`crate::Event::Unknown`] and is written back unchanged.

use bytes::Bytes;
use serde_json::{Map, Value};

/// JSON object holding an event's data (and the free-form `context` of many events).
pub type Data = Map<String, Value>;

/// One Wyoming event as it is on the wire, before it is given a type.
#[derive(Clone, PartialEq, Default)]
pub struct Frame {
    /// The event type, e.g. `audio-chunk`.
    pub kind: String,
    /// The event data: the inline `data` of the header merged with the data block (the block wins).
    pub data: Data,
    /// The binary payload, if the event has one (audio for `audio-chunk`).
    pub payload: Option<Bytes>,
}

impl Frame {
    /// A frame with no data and no payload.
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            data: Data::new(),
            payload: None,
        }
    }

    /// Sets the data object.
    #[must_use]
    pub fn with_data(mut self, data: Data) -> Self {
        self.data = data;
        self
    }

    /// Sets the payload; an empty payload is the same as none on the wire.
    #[must_use]
    pub fn with_payload(mut self, payload: impl Into<Bytes>) -> Self {
        let payload = payload.into();
        self.payload = (!payload.is_empty()).then_some(payload);
        self
    }
}

impl std::fmt::Debug for Frame {
    // Design: payloads are audio; printing them would flood logs, so only their length is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("kind", &self.kind)
            .field("data", &self.data)
            .field("payload_len", &self.payload.as_ref().map(Bytes::len))
            .finish()
    }
}
