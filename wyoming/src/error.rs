//! The one error type of the protocol layer.
//!
//! Every way a peer can break the wire format maps to a variant here, so a server can tell the
//! peer what went wrong (as a Wyoming `error` event) and decide whether the connection can go on.

use std::io;

/// Everything that can go wrong while reading or writing Wyoming events.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),

    /// No newline was found within the header-line limit.
    #[error("header line is longer than the limit of {limit} bytes")]
    LineTooLong {
        /// The configured limit, in bytes.
        limit: usize,
    },

    /// The header line is not a JSON object with a string `type`.
    #[error("header line is not a valid event header: {0}")]
    BadHeader(#[source] serde_json::Error),

    /// `data_length` or `payload_length` is negative.
    #[error("{field} is negative ({value})")]
    NegativeLength {
        /// `data_length` or `payload_length`.
        field: &'static str,
        /// The value the peer sent.
        value: i64,
    },

    /// The announced data block is larger than the limit.
    #[error("data_length {length} is over the limit of {limit} bytes")]
    DataTooLarge {
        /// What the peer announced.
        length: u64,
        /// The configured limit, in bytes.
        limit: usize,
    },

    /// The announced payload is larger than the limit.
    #[error("payload_length {length} is over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// What the peer announced.
        length: u64,
        /// The configured limit, in bytes.
        limit: usize,
    },

    /// The data block is not a JSON object.
    #[error("data block is not a JSON object: {0}")]
    BadData(#[source] serde_json::Error),

    /// The stream ended inside a frame (after the header, before all data and payload bytes).
    #[error("connection closed in the middle of an event ({missing} bytes missing)")]
    UnexpectedEof {
        /// How many announced bytes never arrived.
        missing: usize,
    },

    /// The frame is well formed, but its data does not fit the event type.
    ///
    /// This one is not fatal: the stream is still in sync and the next event can be read.
    #[error("invalid `{kind}` event: {source}")]
    InvalidEvent {
        /// The event type.
        kind: String,
        /// What serde found wrong with the data.
        #[source]
        source: serde_json::Error,
    },

    /// Nothing arrived for longer than the idle timeout.
    #[error("no complete event within the idle timeout of {0:?}")]
    IdleTimeout(std::time::Duration),

    /// An event could not be serialised (only for `serde_json::Value`s that are not JSON objects).
    #[error("event data could not be written: {0}")]
    Encode(#[source] serde_json::Error),
}

impl ProtocolError {
    /// Whether the stream can go on after this error.
    ///
    /// Only [`ProtocolError::InvalidEvent`] leaves the byte stream in sync; after any other error
    /// the connection must be closed.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::InvalidEvent { .. })
    }

    /// A short, stable code for the `code` field of a Wyoming `error` event.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io(_) => "io-error",
            Self::LineTooLong { .. } => "header-too-long",
            Self::BadHeader(_) => "bad-header",
            Self::NegativeLength { .. } => "bad-length",
            Self::DataTooLarge { .. } => "data-too-large",
            Self::PayloadTooLarge { .. } => "payload-too-large",
            Self::BadData(_) => "bad-data",
            Self::UnexpectedEof { .. } => "unexpected-eof",
            Self::InvalidEvent { .. } => "invalid-event",
            Self::IdleTimeout(_) => "idle-timeout",
            Self::Encode(_) => "encode-error",
        }
    }
}
