//! Events outside any one service: `ping`/`pong`, `error`, `user-event` and `played`.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::frame::Data;

/// `ping`: the peer should answer `pong` with the same text.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ping {
    /// Echoed back in the `pong`.
    pub text: Option<String>,
}

/// `pong`: the answer to a `ping`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pong {
    /// The text of the `ping`.
    pub text: Option<String>,
}

/// `error`: something went wrong; HA 2026.9+ shows `text` and ends the operation.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    /// What went wrong, for people.
    pub text: String,
    /// A short machine-readable code.
    #[serde(default)]
    pub code: Option<String>,
}

impl Error {
    /// An error event with a code.
    pub fn new(code: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            code: Some(code.into()),
        }
    }
}

/// `user-event`: a free-form event between programs.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserEvent {
    /// Event name.
    pub name: String,
    /// Event data.
    #[serde(default)]
    pub data: Option<Data>,
    /// Context for the next interaction.
    #[serde(default)]
    pub context: Option<Data>,
}

/// `played`: a sound output has finished playing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Played {}
