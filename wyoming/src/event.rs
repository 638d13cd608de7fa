//! [`Event`]: every Wyoming event type as a typed Rust value.
//!
//! Conversion from a [`Frame`] dispatches on the type string once, here; nowhere else in Jarvis
//! spells an event type. A type this crate does not know becomes [`Event::Unknown`], never an error:
//! peers add event types, and the reference servers ignore what they do not handle.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::ProtocolError;
use crate::frame::{Data, Frame};
use crate::{asr, audio, handle, info, intent, misc, satellite, tts, vad, wake};

/// A typed event body: the data of one event type (and its payload, for audio).
pub trait EventType: Serialize + DeserializeOwned + Into<Event> {
    /// The `type` string on the wire.
    const KIND: &'static str;

    /// Builds the value from a frame's data and payload.
    ///
    /// # Errors
    /// When the data does not fit the type (a required field is missing or has the wrong type).
    fn from_parts(data: Data, payload: Option<Bytes>) -> Result<Self, serde_json::Error> {
        let _ = payload;
        serde_json::from_value(Value::Object(data))
    }

    /// The payload to send with the data, if any.
    fn payload(&self) -> Option<&Bytes> {
        None
    }
}

/// Declares [`Event`] with one variant per event type, named after the type's struct.
macro_rules! events {
    ($( $(#[$doc:meta])* $variant:ident ( $($module:ident)::+ ) = $kind:literal $({ $($custom:tt)* })? ),* $(,)?) => {
        /// One Wyoming event, typed. See the protocol document for who sends which.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum Event {
            $( $(#[$doc])* $variant($($module)::+::$variant), )*
            /// An event type this crate does not know, kept exactly as it was read.
            Unknown(Frame),
        }

        $(
            impl EventType for $($module)::+::$variant {
                const KIND: &'static str = $kind;
                $($($custom)*)?
            }

            impl From<$($module)::+::$variant> for Event {
                fn from(value: $($module)::+::$variant) -> Self {
                    Self::$variant(value)
                }
            }
        )*

        impl Event {
            /// The `type` string of this event.
            pub fn kind(&self) -> &str {
                match self {
                    $( Self::$variant(_) => $kind, )*
                    Self::Unknown(frame) => &frame.kind,
                }
            }

            /// The binary payload of this event, if it has one.
            pub fn payload(&self) -> Option<&Bytes> {
                match self {
                    $( Self::$variant(body) => body.payload(), )*
                    Self::Unknown(frame) => frame.payload.as_ref(),
                }
            }

            /// Serialises the data object (without the payload) as JSON into `out`.
            ///
            /// # Errors
            /// Only for [`Event::Unknown`] frames whose data cannot be serialised.
            pub fn write_data(&self, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
                match self {
                    $( Self::$variant(body) => serde_json::to_writer(out, body), )*
                    Self::Unknown(frame) => serde_json::to_writer(out, &frame.data),
                }
                .map_err(ProtocolError::Encode)
            }

            /// The data object of this event.
            ///
            /// # Errors
            /// Never for the typed events; see [`Event::write_data`].
            pub fn to_data(&self) -> Result<Data, ProtocolError> {
                let value = match self {
                    $( Self::$variant(body) => serde_json::to_value(body), )*
                    Self::Unknown(frame) => return Ok(frame.data.clone()),
                }
                .map_err(ProtocolError::Encode)?;
                match value {
                    Value::Object(data) => Ok(data),
                    _ => Ok(Data::new()),
                }
            }

            /// Gives a frame its type.
            ///
            /// # Errors
            /// [`ProtocolError::InvalidEvent`] when the data does not fit the event type. The
            /// stream is still in sync after it.
            pub fn from_frame(frame: Frame) -> Result<Self, ProtocolError> {
                fn typed<T: EventType>(frame: Frame) -> Result<Event, ProtocolError> {
                    match T::from_parts(frame.data, frame.payload) {
                        Ok(body) => Ok(body.into()),
                        Err(source) => Err(ProtocolError::InvalidEvent { kind: frame.kind, source }),
                    }
                }
                match frame.kind.as_str() {
                    $( $kind => typed::<$($module)::+::$variant>(frame), )*
                    _ => Ok(Self::Unknown(frame)),
                }
            }
        }
    };
}

events! {
    // Audio comes first: it is by far the most frequent event.
    /// `audio-chunk`
    AudioChunk(audio) = "audio-chunk" {
        fn from_parts(data: Data, payload: Option<Bytes>) -> Result<Self, serde_json::Error> {
            let mut chunk: audio::AudioChunk = serde_json::from_value(Value::Object(data))?;
            chunk.audio = payload.unwrap_or_default();
            Ok(chunk)
        }
        fn payload(&self) -> Option<&Bytes> {
            (!self.audio.is_empty()).then_some(&self.audio)
        }
    },
    /// `audio-start`
    AudioStart(audio) = "audio-start",
    /// `audio-stop`
    AudioStop(audio) = "audio-stop",
    /// `describe`
    Describe(info) = "describe",
    /// `info`
    Info(info) = "info",
    /// `select-program`
    SelectProgram(info) = "select-program",
    /// `transcribe`
    Transcribe(asr) = "transcribe",
    /// `transcript`
    Transcript(asr) = "transcript",
    /// `transcript-start`
    TranscriptStart(asr) = "transcript-start",
    /// `transcript-chunk`
    TranscriptChunk(asr) = "transcript-chunk",
    /// `transcript-stop`
    TranscriptStop(asr) = "transcript-stop",
    /// `synthesize`
    Synthesize(tts) = "synthesize",
    /// `synthesize-start`
    SynthesizeStart(tts) = "synthesize-start",
    /// `synthesize-chunk`
    SynthesizeChunk(tts) = "synthesize-chunk",
    /// `synthesize-stop`
    SynthesizeStop(tts) = "synthesize-stop",
    /// `synthesize-stopped`
    SynthesizeStopped(tts) = "synthesize-stopped",
    /// `detect`
    Detect(wake) = "detect",
    /// `detection`
    Detection(wake) = "detection",
    /// `not-detected`
    NotDetected(wake) = "not-detected",
    /// `voice-started`
    VoiceStarted(vad) = "voice-started",
    /// `voice-stopped`
    VoiceStopped(vad) = "voice-stopped",
    /// `recognize`
    Recognize(intent) = "recognize",
    /// `intent`
    Intent(intent) = "intent",
    /// `not-recognized`
    NotRecognized(intent) = "not-recognized",
    /// `intents-start`
    IntentsStart(intent) = "intents-start",
    /// `intents-stop`
    IntentsStop(intent) = "intents-stop",
    /// `handled`
    Handled(handle) = "handled",
    /// `not-handled`
    NotHandled(handle) = "not-handled",
    /// `handled-start`
    HandledStart(handle) = "handled-start",
    /// `handled-chunk`
    HandledChunk(handle) = "handled-chunk",
    /// `handled-stop`
    HandledStop(handle) = "handled-stop",
    /// `ping`
    Ping(misc) = "ping",
    /// `pong`
    Pong(misc) = "pong",
    /// `error`
    Error(misc) = "error",
    /// `user-event`
    UserEvent(misc) = "user-event",
    /// `played`
    Played(misc) = "played",
    /// `run-satellite`
    RunSatellite(satellite) = "run-satellite",
    /// `pause-satellite`
    PauseSatellite(satellite) = "pause-satellite",
    /// `satellite-connected`
    SatelliteConnected(satellite) = "satellite-connected",
    /// `satellite-disconnected`
    SatelliteDisconnected(satellite) = "satellite-disconnected",
    /// `streaming-started`
    StreamingStarted(satellite) = "streaming-started",
    /// `streaming-stopped`
    StreamingStopped(satellite) = "streaming-stopped",
    /// `run-pipeline`
    RunPipeline(satellite) = "run-pipeline",
    /// `timer-started`
    TimerStarted(satellite) = "timer-started",
    /// `timer-updated`
    TimerUpdated(satellite) = "timer-updated",
    /// `timer-cancelled`
    TimerCancelled(satellite) = "timer-cancelled",
    /// `timer-finished`
    TimerFinished(satellite) = "timer-finished",
}

impl Event {
    /// The untyped frame of this event.
    ///
    /// # Errors
    /// See [`Event::to_data`].
    pub fn to_frame(&self) -> Result<Frame, ProtocolError> {
        Ok(Frame {
            kind: self.kind().to_owned(),
            data: self.to_data()?,
            payload: self.payload().cloned(),
        })
    }
}

impl TryFrom<Frame> for Event {
    type Error = ProtocolError;

    fn try_from(frame: Frame) -> Result<Self, ProtocolError> {
        Self::from_frame(frame)
    }
}

/// Reads `null` as the type's default (peers write explicit nulls for optional fields).
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Reads `null` as `true`, for flags whose default is true.
pub(crate) fn null_as_true<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(true))
}
