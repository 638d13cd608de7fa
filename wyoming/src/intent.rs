//! Intent recognition events: `recognize`, `intent`, `not-recognized`, `intents-start/stop`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::frame::Data;

/// A named slot value of an intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// Slot name.
    pub name: String,
    /// Slot value (any JSON value).
    #[serde(default)]
    pub value: Value,
}

/// `recognize`: find the intent of this text.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recognize {
    /// The text.
    pub text: String,
    /// Context for the next interaction.
    #[serde(default)]
    pub context: Option<Data>,
}

/// `intent`: a recognised intent (an answer to `recognize`, or a request to a handler).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// Intent name.
    pub name: String,
    /// Slots; written only when there are some, as the reference does.
    #[serde(
        default,
        deserialize_with = "crate::event::null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entities: Vec<Entity>,
    /// Speech for the user.
    #[serde(default)]
    pub text: Option<String>,
    /// Context for the next interaction.
    #[serde(default)]
    pub context: Option<Data>,
}

/// `not-recognized`: no intent matched.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotRecognized {
    /// Speech for the user.
    pub text: Option<String>,
    /// Context for the next interaction.
    pub context: Option<Data>,
}

/// `intents-start`: one or more `intent` events follow.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntentsStart {
    /// Context for the next interaction.
    pub context: Option<Data>,
}

/// `intents-stop`: the `intent` events opened by `intents-start` are complete.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntentsStop {
    /// Context for the next interaction.
    pub context: Option<Data>,
}
