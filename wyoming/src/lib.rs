//! The Wyoming protocol, as spoken by Home Assistant Assist and the `wyoming` Python package 1.10.2.
//!
//! Each event is one header line of JSON, then an optional data block of JSON, then an optional
//! binary payload:
//!
//! ```text
//! {"type":"audio-chunk","version":"1.10.2","data_length":52,"payload_length":320}\n
//! {"rate":16000,"width":2,"channels":1,"timestamp":0}<320 bytes of PCM>
//! ```
//!
//! Layers, bottom up:
//! - [`WyomingCodec`] turns bytes into [`Frame`]s and back, with hard [`Limits`] on every length.
//! - [`Event`] gives every event type of the protocol a Rust type; unknown types pass through
//!   as [`Event::Unknown`].
//! - [`EventReader`] / [`EventWriter`] read and write events on any async byte stream.
//! - [`Client`] and [`serve`] are TCP helpers for the two ends.
//!
//! ```
//! use wyoming::{Event, WyomingCodec, asr::Transcript};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let mut codec = WyomingCodec::default();
//! let mut buf = bytes::BytesMut::new();
//! let event: Event = Transcript { text: "hello".into(), ..Default::default() }.into();
//! codec.encode(&event, &mut buf).unwrap();
//! let frame = codec.decode(&mut buf).unwrap().unwrap();
//! assert_eq!(Event::from_frame(frame).unwrap(), event);
//! ```

#![warn(missing_docs)]

pub mod asr;
pub mod audio;
mod client;
pub mod codec;
mod error;
pub mod event;
mod frame;
pub mod handle;
pub mod info;
pub mod intent;
pub mod misc;
pub mod satellite;
pub mod server;
mod stream;
pub mod tts;
pub mod vad;
pub mod wake;

pub use client::Client;
pub use codec::{Limits, PROTOCOL_VERSION, WyomingCodec};
pub use error::ProtocolError;
pub use event::{Event, EventType};
pub use frame::{Data, Frame};
pub use server::{Connection, ServeReport, ServerConfig, serve};
pub use stream::{EventReader, EventWriter};
