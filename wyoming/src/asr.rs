//! Speech-to-text events: `transcribe`, `transcript` and the transcript streaming events.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::frame::Data;

/// `transcribe`: asks for a transcript of the audio that follows.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Transcribe {
    /// Model to use (a model name from `info`).
    pub name: Option<String>,
    /// Language of the audio, e.g. `en`.
    pub language: Option<String>,
    /// Context from earlier interactions.
    pub context: Option<Data>,
    /// How quickly the end of speech is detected: `default`, `relaxed`, `aggressive` or another
    /// string. Only meaningful when the server does its own endpointing.
    pub vad_sensitivity: Option<String>,
    /// Names that should bias the transcription (they outrank `transcript_terms`).
    pub transcript_names: Option<Vec<String>>,
    /// Domain terms that should bias the transcription.
    pub transcript_terms: Option<Vec<String>>,
}

/// `transcript`: the text of spoken audio. Home Assistant also sends it to conversation agents.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// What was said.
    pub text: String,
    /// Language of the text.
    #[serde(default)]
    pub language: Option<String>,
    /// Context for the next interaction (HA puts `conversation_id` here).
    #[serde(default)]
    pub context: Option<Data>,
}

/// `transcript-start`: a streamed transcript begins.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TranscriptStart {
    /// Language of the text.
    pub language: Option<String>,
    /// Context for the next interaction.
    pub context: Option<Data>,
}

/// `transcript-chunk`: a fragment of a streamed transcript.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TranscriptChunk {
    /// The fragment.
    pub text: String,
}

/// `transcript-stop`: a streamed transcript is complete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptStop {}
