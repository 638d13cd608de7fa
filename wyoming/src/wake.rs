//! Wake-word events: `detect`, `detection`, `not-detected`.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::frame::Data;

/// `detect`: listen for these wake words in the audio that follows.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Detect {
    /// Wake word names from `info`; none or empty means "the default, or any".
    pub names: Option<Vec<String>>,
    /// Context for the next interaction.
    pub context: Option<Data>,
}

/// `detection`: a wake word was heard.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Detection {
    /// Which wake word (always send it: HA compares it with what it asked for).
    pub name: Option<String>,
    /// Milliseconds into the audio stream.
    pub timestamp: Option<i64>,
    /// Who spoke, if known.
    pub speaker: Option<String>,
    /// Context for the next interaction.
    pub context: Option<Data>,
}

/// `not-detected`: the audio ended without a detection.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotDetected {
    /// Context for the next interaction.
    pub context: Option<Data>,
}
