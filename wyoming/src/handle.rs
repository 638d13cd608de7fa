//! Intent handling events: `handled`, `not-handled` and the handled streaming events.
//!
//! A handler is asked with a `transcript` (what Home Assistant sends) or an `intent`.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::frame::Data;

/// `handled`: the request was handled; `text` is spoken to the user.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Handled {
    /// Speech for the user.
    pub text: Option<String>,
    /// Context for the next interaction.
    pub context: Option<Data>,
}

/// `not-handled`: the request could not be handled; `text` says why.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotHandled {
    /// Speech for the user.
    pub text: Option<String>,
    /// Context for the next interaction.
    pub context: Option<Data>,
}

/// `handled-start`: a streamed reply begins.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HandledStart {
    /// Context for the next interaction.
    pub context: Option<Data>,
}

/// `handled-chunk`: a fragment of a streamed reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandledChunk {
    /// The fragment.
    pub text: String,
}

/// `handled-stop`: a streamed reply is complete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandledStop {}
