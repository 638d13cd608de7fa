//! What the event store holds and how it is asked: [`Event`], [`Source`], [`Query`].

use serde::{Deserialize, Serialize};

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A Frigate tracked object or review item.
    Frigate,
    /// Pushed by Home Assistant (`POST /v1/event`).
    Ha,
    /// Jarvis's own commands and actions.
    Jarvis,
}

impl Source {
    /// `frigate`, `ha` or `jarvis`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Frigate => "frigate",
            Self::Ha => "ha",
            Self::Jarvis => "jarvis",
        }
    }

    /// The source stored as `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Frigate, Self::Ha, Self::Jarvis]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// Frigate's tracked objects (its `events` topic and `/api/events`) are stored with this kind.
pub const KIND_OBJECT: &str = "object";
/// Frigate's review items (`reviews`, `/api/review`).
pub const KIND_REVIEW: &str = "review";
/// A command Jarvis handled.
pub const KIND_COMMAND: &str = "command";
/// An action Jarvis decided.
pub const KIND_ACTION: &str = "action";

/// One thing that happened. Frigate fills the camera fields, Home Assistant the entity, area and
/// text, Jarvis the text; anything else goes in `attributes`.
///
/// Recording an event whose `key` is already stored merges the two (see
/// [`super::EventStore::record`]): a Frigate `update` or `end` completes its `new`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per event and source: `frigate:<id>`, `ha:<id>`, `jarvis:<n>`.
    pub key: String,
    /// Where it came from.
    pub source: Source,
    /// `object`, `review`, `command`, `action`, or what Home Assistant says (`door`, `arrival`).
    pub kind: String,
    /// Frigate camera.
    pub camera: Option<String>,
    /// Frigate label: `person`, `car`, ...
    pub label: Option<String>,
    /// A recognised face or licence plate, or a custom sub-label.
    pub sub_label: Option<String>,
    /// Zones entered.
    pub zones: Vec<String>,
    /// Best score seen (0–1).
    pub score: Option<f64>,
    /// Start, in milliseconds since the Unix epoch.
    pub start_ms: i64,
    /// End; `None` while it goes on.
    pub end_ms: Option<i64>,
    /// A snapshot is available.
    pub has_snapshot: bool,
    /// A clip is available.
    pub has_clip: bool,
    /// A description (Frigate's GenAI, or a sentence from HA).
    pub description: Option<String>,
    /// Home Assistant entity id.
    pub entity: Option<String>,
    /// Home Assistant area.
    pub area: Option<String>,
    /// Free text: what was said, or HA's message.
    pub text: Option<String>,
    /// Anything else, as a JSON object.
    pub attributes: Option<serde_json::Value>,
}

impl Event {
    /// An event with only its identity and start; fill in the rest with struct update syntax.
    pub fn new(
        key: impl Into<String>,
        source: Source,
        kind: impl Into<String>,
        start_ms: i64,
    ) -> Self {
        Self {
            key: key.into(),
            source,
            kind: kind.into(),
            camera: None,
            label: None,
            sub_label: None,
            zones: Vec::new(),
            score: None,
            start_ms,
            end_ms: None,
            has_snapshot: false,
            has_clip: false,
            description: None,
            entity: None,
            area: None,
            text: None,
            attributes: None,
        }
    }

    /// Whether it is still going on.
    pub fn in_progress(&self) -> bool {
        self.end_ms.is_none()
    }
}

/// Which events a question is about. Every filter is optional; names compare without case.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    /// Only from this source.
    pub source: Option<Source>,
    /// Only of this kind.
    pub kind: Option<String>,
    /// Only on this camera.
    pub camera: Option<String>,
    /// Only those that entered this zone.
    pub zone: Option<String>,
    /// Only with this label.
    pub label: Option<String>,
    /// Only with this sub-label (a face, a plate).
    pub sub_label: Option<String>,
    /// Only with some sub-label.
    pub has_sub_label: bool,
    /// Only with a description.
    pub has_description: bool,
    /// Only events going on at some time at or after this (ms): started later, or not yet
    /// ended by then.
    pub since_ms: Option<i64>,
    /// Only events that started before this (ms).
    pub until_ms: Option<i64>,
    /// Only events still going on.
    pub in_progress: bool,
    /// With `since_ms`: only events that started at or after it, not those still going on
    /// from before (counts and summaries of what came, not of what was there).
    pub started_since: bool,
    /// At most this many, newest first (0: no limit for counts; 100 for lists).
    pub limit: usize,
}

impl Query {
    /// Frigate's tracked objects.
    pub fn objects() -> Self {
        Self {
            source: Some(Source::Frigate),
            kind: Some(KIND_OBJECT.to_owned()),
            ..Self::default()
        }
    }
}

/// The store's size, for `/health` and the Jarvis device.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct StoreStats {
    /// Events stored.
    pub events: u64,
    /// Size of the database files in bytes (with its write-ahead log).
    pub bytes: u64,
    /// Start of the oldest event (ms since the epoch).
    pub oldest_ms: Option<i64>,
    /// Events waiting to be written.
    pub pending: u64,
    /// Events that could not be written and were given up (the disk was full for too long).
    pub dropped: u64,
}

/// The names the store has seen, for the name resolver and the speech vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vocabulary {
    /// Frigate cameras.
    pub cameras: Vec<String>,
    /// Frigate zones.
    pub zones: Vec<String>,
    /// Object labels.
    pub labels: Vec<String>,
    /// Faces and plates.
    pub sub_labels: Vec<String>,
}

/// Events of one camera and label in a window (see [`super::EventStore::tally`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// The camera.
    pub camera: Option<String>,
    /// The label.
    pub label: Option<String>,
    /// How many.
    pub count: u64,
    /// The faces and plates among them.
    pub sub_labels: Vec<String>,
}
