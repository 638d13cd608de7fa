//! Voice activity events: `voice-started`, `voice-stopped`.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// `voice-started`: speech began.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VoiceStarted {
    /// Milliseconds into the audio stream.
    pub timestamp: Option<i64>,
}

/// `voice-stopped`: speech ended.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VoiceStopped {
    /// Milliseconds into the audio stream.
    pub timestamp: Option<i64>,
}
