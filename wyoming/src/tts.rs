//! Text-to-speech events: `synthesize` and the synthesize streaming events.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::frame::Data;

/// The voice asked for in a synthesis request. Empty means "the default voice".
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthesizeVoice {
    /// Voice name from `info` (takes precedence over `language`).
    pub name: Option<String>,
    /// Voice language from `info`, used when there is no name.
    pub language: Option<String>,
    /// Speaker of a multi-speaker voice.
    pub speaker: Option<String>,
}

/// `synthesize`: speak this text. Inside a stream it is a compatibility copy to ignore.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Synthesize {
    /// Text to speak.
    pub text: String,
    /// Voice to use.
    #[serde(default)]
    pub voice: Option<SynthesizeVoice>,
    /// `text`, `ssml` or another format name.
    #[serde(default)]
    pub text_format: Option<String>,
    /// Context for the next interaction.
    #[serde(default)]
    pub context: Option<Data>,
}

/// `synthesize-start`: a streamed synthesis request begins.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthesizeStart {
    /// Voice to use.
    pub voice: Option<SynthesizeVoice>,
    /// `text`, `ssml` or another format name.
    pub text_format: Option<String>,
    /// Context for the next interaction.
    pub context: Option<Data>,
}

/// `synthesize-chunk`: more text of a streamed request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthesizeChunk {
    /// The text.
    pub text: String,
}

/// `synthesize-stop`: the client has sent all text of the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthesizeStop {}

/// `synthesize-stopped`: the server has sent all audio of the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthesizeStopped {}
