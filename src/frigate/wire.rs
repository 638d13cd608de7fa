//! Frigate's payloads as they arrive, over MQTT (`events`, `reviews`, `tracked_object_update`,
//! `available`, `stats`, per-camera object counts) and from its API (`/api/events`,
//! `/api/review`, `/api/config`), and their conversion into the event memory's [`Event`].
//!
//! The structs follow §3 of the integration notes and Frigate 0.14 to 0.16: unknown fields are
//! ignored, every field may be missing or `null`, and the shapes that changed between versions
//! are both accepted (`sub_label` is a string from the API and `[name, score]` over MQTT).
//! Only what Jarvis uses is declared, which also keeps parsing cheap: `before`, boxes,
//! regions and thumbnails are skipped unread.
//!
//! Design: a tracked object is stored under `frigate:<id>` and merged by the store's upsert, so
//! `new`, every `update`, `end`, the backfill and the `tracked_object_update`s of one object all
//! land in one row, in any order. Review items use `frigate-review:<id>`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use crate::events::model::{KIND_OBJECT, KIND_REVIEW};
use crate::events::{Event, Source};

/// Longest id, camera, label or zone accepted; longer is garbage, not Frigate.
const MAX_NAME: usize = 128;
/// Latest time accepted in a payload (the year 3000): anything later is garbage, not a clock
/// that drifted (the store refuses the merely-future ones with its own limit).
const MAX_SECS: f64 = 32_503_680_000.0;

/// Why a payload could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("not a Frigate payload: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON of the right shape with a value that cannot be right.
    #[error("{0}")]
    Invalid(String),
}

fn invalid<T>(message: impl Into<String>) -> Result<T, WireError> {
    Err(WireError::Invalid(message.into()))
}

/// What a message on `events` or `reviews` says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// The object (or review item) begins.
    New,
    /// It changed.
    Update,
    /// It is over.
    End,
    /// A type this Jarvis does not know (a newer Frigate): recorded like an update.
    #[serde(other)]
    Other,
}

/// `<prefix>/events`: one tracked object changed. `before` is not read: `after` holds the
/// whole object as it is now.
#[derive(Debug, Clone, Deserialize)]
pub struct EventMessage {
    /// `new`, `update` or `end`.
    #[serde(rename = "type")]
    pub change: Change,
    /// The object now.
    pub after: TrackedObject,
}

/// A tracked object as `events` sends it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TrackedObject {
    /// `<start time>-<random>`, e.g. `1727013298.41-ab12cd`.
    pub id: String,
    /// Camera name.
    pub camera: Option<String>,
    /// `person`, `car`, ...
    pub label: Option<String>,
    /// A face, a known plate or a custom name: `"Bob"` or `["Bob", 0.92]`.
    pub sub_label: Named,
    /// Score in the current frame.
    pub score: Option<f64>,
    /// Best score so far.
    pub top_score: Option<f64>,
    /// Not (yet) a real object; Frigate only publishes real ones.
    #[serde(deserialize_with = "flag")]
    pub false_positive: Option<bool>,
    /// Seconds since the epoch.
    pub start_time: Option<f64>,
    /// Seconds since the epoch; `null` while it goes on.
    pub end_time: Option<f64>,
    /// Zones it is in now.
    #[serde(deserialize_with = "list")]
    pub current_zones: Vec<String>,
    /// Zones it has entered so far.
    #[serde(deserialize_with = "list")]
    pub entered_zones: Vec<String>,
    /// A snapshot was saved.
    #[serde(deserialize_with = "flag")]
    pub has_snapshot: Option<bool>,
    /// A clip was saved.
    #[serde(deserialize_with = "flag")]
    pub has_clip: Option<bool>,
    /// Not moving.
    #[serde(deserialize_with = "flag")]
    pub stationary: Option<bool>,
    /// A licence plate read on it (0.16+): `"AB123CD"` or `["AB123CD", 0.87]`.
    pub recognized_license_plate: Named,
}

/// A name with an optional score. Frigate sends sub-labels as `"Bob"`, as `["Bob", 0.92]`, or
/// `null`; anything else reads as no name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Named {
    /// The name, when there is one.
    pub name: Option<String>,
    /// Its score, when sent.
    pub score: Option<f64>,
}

impl<'de> Deserialize<'de> for Named {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NamedVisitor;

        impl<'de> Visitor<'de> for NamedVisitor {
            type Value = Named;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name, [name, score] or null")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Named, E> {
                Ok(Named {
                    name: Some(v.to_owned()),
                    score: None,
                })
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Named, E> {
                Ok(Named {
                    name: Some(v),
                    score: None,
                })
            }

            fn visit_unit<E: de::Error>(self) -> Result<Named, E> {
                Ok(Named::default())
            }

            fn visit_none<E: de::Error>(self) -> Result<Named, E> {
                Ok(Named::default())
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Named, D::Error> {
                Named::deserialize(d)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Named, A::Error> {
                let name = seq.next_element::<Loose<String>>()?.and_then(|l| l.0);
                let score = seq.next_element::<Loose<f64>>()?.and_then(|l| l.0);
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Named { name, score })
            }

            // Numbers, booleans, objects: not a name.
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Named, E> {
                Ok(Named::default())
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Named, E> {
                Ok(Named::default())
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Named, E> {
                Ok(Named::default())
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Named, E> {
                Ok(Named::default())
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Named, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Named::default())
            }
        }

        deserializer.deserialize_any(NamedVisitor)
    }
}

/// A value of type `T`, or `None` when the JSON holds something else.
struct Loose<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Loose<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Buffered through `Value`: only used inside the small `[name, score]` pairs.
        let value = Value::deserialize(deserializer)?;
        Ok(Self(T::deserialize(value).ok()))
    }
}

/// One element of an API list: a bad element spoils only itself, not its page.
#[derive(Debug)]
pub struct Lenient<T>(pub Result<T, String>);

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Buffered through `Value` so that a bad element can be skipped; API pages are small.
        let value = Value::deserialize(deserializer)?;
        Ok(Self(T::deserialize(value).map_err(|err| err.to_string())))
    }
}

/// A list that may be `null`.
fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<Option<String>>>::deserialize(deserializer)?
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect())
}

/// A boolean that may be `null`, or `0`/`1` (SQLite's booleans).
fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    Ok(match Option::<Flag>::deserialize(deserializer)? {
        Some(Flag::Bool(b)) => Some(b),
        Some(Flag::Int(n)) => Some(n != 0),
        None => None,
    })
}

/// `<prefix>/reviews`: a review item changed.
#[derive(Debug, Clone, Deserialize)]
pub struct ReviewMessage {
    /// `new`, `update` or `end`.
    #[serde(rename = "type")]
    pub change: Change,
    /// The item now.
    pub after: ReviewItem,
}

/// A review item (an alert or a detection), as `reviews` and `/api/review` send it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ReviewItem {
    /// `<start time>-<random>`.
    pub id: String,
    /// Camera name.
    pub camera: Option<String>,
    /// Seconds since the epoch.
    pub start_time: Option<f64>,
    /// Seconds since the epoch; `null` while it goes on.
    pub end_time: Option<f64>,
    /// `alert` or `detection` (or `significant_motion` in some versions).
    pub severity: Option<String>,
    /// What it holds.
    #[serde(deserialize_with = "review_data")]
    pub data: ReviewData,
}

/// `data` of a review item.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ReviewData {
    /// Ids of the tracked objects in it.
    #[serde(deserialize_with = "list")]
    pub detections: Vec<String>,
    /// Their labels.
    #[serde(deserialize_with = "list")]
    pub objects: Vec<String>,
    /// Their sub-labels.
    #[serde(deserialize_with = "list")]
    pub sub_labels: Vec<String>,
    /// Zones entered.
    #[serde(deserialize_with = "list")]
    pub zones: Vec<String>,
    /// Sounds heard.
    #[serde(deserialize_with = "list")]
    pub audio: Vec<String>,
}

fn review_data<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ReviewData, D::Error> {
    Ok(Option::<ReviewData>::deserialize(deserializer)?.unwrap_or_default())
}

/// `<prefix>/tracked_object_update`: something learned about a tracked object after the fact
/// (a GenAI description, a face, a plate, a classification).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TrackedObjectUpdate {
    /// `description`, `face`, `lpr`, `classification`; see [`TrackedObjectUpdate::kind`].
    #[serde(rename = "type")]
    pub kind_name: String,
    /// The tracked object; missing in the "no car any more" `lpr` message.
    pub id: Option<String>,
    /// Camera name.
    pub camera: Option<String>,
    /// `description`: the text.
    pub description: Option<String>,
    /// `face`: the person; `lpr`: the known plate's name.
    pub name: Option<String>,
    /// `lpr`: the plate as read.
    pub plate: Option<String>,
    /// How sure Frigate is.
    pub score: Option<f64>,
    /// `classification`: the model.
    pub model: Option<String>,
    /// `classification` of type sub-label: the class.
    pub sub_label: Option<String>,
    /// `classification` of type attribute: the class.
    pub attribute: Option<String>,
}

/// The kinds of [`TrackedObjectUpdate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// A GenAI description.
    Description,
    /// A recognised face.
    Face,
    /// A licence plate.
    Lpr,
    /// A custom classification model's result.
    Classification,
    /// Something newer.
    Other,
}

impl TrackedObjectUpdate {
    /// The kind; Python's enum name (`TrackedObjectUpdateTypesEnum.face`) is accepted too.
    pub fn kind(&self) -> UpdateKind {
        let name = self.kind_name.rsplit('.').next().unwrap_or_default();
        match name {
            "description" => UpdateKind::Description,
            "face" => UpdateKind::Face,
            "lpr" => UpdateKind::Lpr,
            "classification" => UpdateKind::Classification,
            _ => UpdateKind::Other,
        }
    }
}

/// `<prefix>/available`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Available {
    /// `online`.
    Online,
    /// `offline` (its last will).
    Offline,
    /// `stopped`.
    Stopped,
}

impl Available {
    /// Reads the payload.
    ///
    /// # Errors
    /// Anything but the three words.
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        let text = std::str::from_utf8(payload).unwrap_or_default().trim();
        if text.eq_ignore_ascii_case("online") {
            Ok(Self::Online)
        } else if text.eq_ignore_ascii_case("offline") {
            Ok(Self::Offline)
        } else if text.eq_ignore_ascii_case("stopped") {
            Ok(Self::Stopped)
        } else {
            invalid(format!(
                "availability {:?} is none of online, offline, stopped",
                truncate(text, 32)
            ))
        }
    }
}

/// `<prefix>/stats` and `/api/stats`, the parts Jarvis reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// One entry per camera.
    #[serde(deserialize_with = "names")]
    pub cameras: Vec<String>,
    /// Frigate itself.
    pub service: Option<Service>,
}

/// `stats.service`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Service {
    /// `0.14.1-f4f3cfa`.
    pub version: Option<String>,
}

/// The keys of an object that may be `null`.
fn names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(
        Option::<BTreeMap<String, IgnoredAny>>::deserialize(deserializer)?
            .unwrap_or_default()
            .into_keys()
            .collect(),
    )
}

/// `/api/config`, the parts Jarvis reads: cameras and their zones.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FrigateSetup {
    /// Cameras by name.
    #[serde(deserialize_with = "cameras")]
    pub cameras: BTreeMap<String, CameraSetup>,
}

/// One camera of `/api/config`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CameraSetup {
    /// Its zones' names.
    #[serde(deserialize_with = "names")]
    pub zones: Vec<String>,
}

fn cameras<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, CameraSetup>, D::Error> {
    Ok(
        Option::<BTreeMap<String, Option<CameraSetup>>>::deserialize(deserializer)?
            .unwrap_or_default()
            .into_iter()
            .map(|(name, setup)| (name, setup.unwrap_or_default()))
            .collect(),
    )
}

/// A per-camera (or per-zone) object count: `<prefix>/<camera>/<label>` carries an integer.
///
/// # Errors
/// Anything but a non-negative integer.
pub fn parse_count(payload: &[u8]) -> Result<u32, WireError> {
    let text = std::str::from_utf8(payload).unwrap_or_default().trim();
    text.parse()
        .or_else(|_| invalid(format!("count {:?} is not a number", truncate(text, 32))))
}

/// One tracked object from `/api/events` (a row of Frigate's `Event` table).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ApiEvent {
    /// `<start time>-<random>`.
    pub id: String,
    /// Camera name.
    pub camera: Option<String>,
    /// `person`, `car`, ...
    pub label: Option<String>,
    /// Sub-label: a string here (older versions: `[name, score]`).
    pub sub_label: Named,
    /// Zones entered.
    #[serde(deserialize_with = "list")]
    pub zones: Vec<String>,
    /// Seconds since the epoch (Frigate stores it minus `pre_capture`).
    pub start_time: Option<f64>,
    /// Seconds since the epoch; `null` while it goes on.
    pub end_time: Option<f64>,
    /// A clip was saved.
    #[serde(deserialize_with = "flag")]
    pub has_clip: Option<bool>,
    /// A snapshot was saved.
    #[serde(deserialize_with = "flag")]
    pub has_snapshot: Option<bool>,
    /// Best score (older versions; newer ones keep it in `data`).
    pub top_score: Option<f64>,
    /// Not a real object.
    #[serde(deserialize_with = "flag")]
    pub false_positive: Option<bool>,
    /// Scores, description, plate.
    #[serde(deserialize_with = "event_data")]
    pub data: ApiEventData,
}

/// `data` of an [`ApiEvent`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ApiEventData {
    /// Score.
    pub score: Option<f64>,
    /// Best score.
    pub top_score: Option<f64>,
    /// GenAI description.
    pub description: Option<String>,
    /// Plate read on it.
    pub recognized_license_plate: Named,
    /// Its score.
    pub recognized_license_plate_score: Option<f64>,
}

fn event_data<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ApiEventData, D::Error> {
    Ok(Option::<ApiEventData>::deserialize(deserializer)?.unwrap_or_default())
}

/// What a conversion needs besides the payload.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `<frigate url>/api/events/`, when a URL is configured: snapshot links are made from it.
    pub events_url: Option<String>,
}

impl Context {
    /// A context for Frigate at `url`.
    pub fn new(url: Option<&url::Url>) -> Self {
        Self {
            events_url: url.map(|u| format!("{}/api/events/", u.as_str().trim_end_matches('/'))),
        }
    }

    fn snapshot_url(&self, id: &str) -> Option<String> {
        // `id` was checked by `check_id`: nothing in it needs escaping.
        self.events_url
            .as_ref()
            .map(|base| format!("{base}{id}/snapshot.jpg"))
    }
}

/// The store key of a tracked object.
pub fn object_key(id: &str) -> String {
    format!("frigate:{id}")
}

/// The store key of a review item.
pub fn review_key(id: &str) -> String {
    format!("frigate-review:{id}")
}

impl TrackedObject {
    /// The object as an event of the memory.
    ///
    /// # Errors
    /// No usable id, or times that cannot be right.
    pub fn to_event(&self, context: &Context) -> Result<Event, WireError> {
        check_id(&self.id)?;
        let start_ms = start_ms(&self.id, self.start_time)?;
        let end_ms = self.end_time.map(|t| to_ms("end_time", t)).transpose()?;
        let mut zones = clean_names(&self.entered_zones)?;
        for zone in clean_names(&self.current_zones)? {
            if !zones.contains(&zone) {
                zones.push(zone);
            }
        }
        let mut attributes = Map::new();
        if let Some(url) = context.snapshot_url(&self.id) {
            attributes.insert("snapshot_url".into(), Value::String(url));
        }
        plate(&mut attributes, &self.recognized_license_plate, None)?;
        Ok(Event {
            camera: clean_name("camera", self.camera.as_deref())?,
            label: clean_name("label", self.label.as_deref())?,
            sub_label: clean_name("sub_label", self.sub_label.name.as_deref())?,
            zones,
            score: score(self.top_score.or(self.score)),
            end_ms,
            has_snapshot: self.has_snapshot.unwrap_or(false),
            has_clip: self.has_clip.unwrap_or(false),
            attributes: object_or_none(attributes),
            ..Event::new(object_key(&self.id), Source::Frigate, KIND_OBJECT, start_ms)
        })
    }
}

impl ApiEvent {
    /// The object as an event of the memory.
    ///
    /// # Errors
    /// No usable id, or times that cannot be right.
    pub fn to_event(&self, context: &Context) -> Result<Event, WireError> {
        check_id(&self.id)?;
        let start_ms = start_ms(&self.id, self.start_time)?;
        let end_ms = self.end_time.map(|t| to_ms("end_time", t)).transpose()?;
        let mut attributes = Map::new();
        if let Some(url) = context.snapshot_url(&self.id) {
            attributes.insert("snapshot_url".into(), Value::String(url));
        }
        plate(
            &mut attributes,
            &self.data.recognized_license_plate,
            self.data.recognized_license_plate_score,
        )?;
        Ok(Event {
            camera: clean_name("camera", self.camera.as_deref())?,
            label: clean_name("label", self.label.as_deref())?,
            sub_label: clean_name("sub_label", self.sub_label.name.as_deref())?,
            zones: clean_names(&self.zones)?,
            score: score(self.data.top_score.or(self.top_score).or(self.data.score)),
            end_ms,
            has_snapshot: self.has_snapshot.unwrap_or(false),
            has_clip: self.has_clip.unwrap_or(false),
            description: text(self.data.description.as_deref()),
            attributes: object_or_none(attributes),
            ..Event::new(object_key(&self.id), Source::Frigate, KIND_OBJECT, start_ms)
        })
    }
}

impl ReviewItem {
    /// The review item as an event of the memory.
    ///
    /// # Errors
    /// No usable id, or times that cannot be right.
    pub fn to_event(&self) -> Result<Event, WireError> {
        check_id(&self.id)?;
        let start_ms = start_ms(&self.id, self.start_time)?;
        let end_ms = self.end_time.map(|t| to_ms("end_time", t)).transpose()?;
        let mut attributes = Map::new();
        if let Some(severity) = clean_name("severity", self.severity.as_deref())? {
            attributes.insert("severity".into(), Value::String(severity));
        }
        let data = &self.data;
        for (key, list) in [
            ("objects", &data.objects),
            ("detections", &data.detections),
            ("sub_labels", &data.sub_labels),
            ("audio", &data.audio),
        ] {
            attributes.insert(key.into(), json!(clean_names(list)?));
        }
        Ok(Event {
            camera: clean_name("camera", self.camera.as_deref())?,
            zones: clean_names(&data.zones)?,
            end_ms,
            attributes: object_or_none(attributes),
            ..Event::new(review_key(&self.id), Source::Frigate, KIND_REVIEW, start_ms)
        })
    }
}

impl TrackedObjectUpdate {
    /// What the update adds to its object's event; `None` when there is nothing to store (an
    /// update without an object, or a kind this Jarvis does not know).
    ///
    /// # Errors
    /// A bad id, or names that cannot be right.
    pub fn to_event(&self) -> Result<Option<Event>, WireError> {
        let Some(id) = self.id.as_deref() else {
            return Ok(None);
        };
        check_id(id)?;
        // The object may not be stored yet (its `new` is late, or was missed): its id carries
        // its start, so the row this creates sorts where the object will.
        let start_ms = start_ms(id, None)?;
        let mut event = Event {
            camera: clean_name("camera", self.camera.as_deref())?,
            ..Event::new(object_key(id), Source::Frigate, KIND_OBJECT, start_ms)
        };
        let mut attributes = Map::new();
        match self.kind() {
            UpdateKind::Description => {
                event.description = text(self.description.as_deref());
                if event.description.is_none() {
                    return Ok(None);
                }
            }
            UpdateKind::Face => {
                let name = clean_name("name", self.name.as_deref())?;
                let Some(name) = name.filter(|n| !n.eq_ignore_ascii_case("unknown")) else {
                    // "No face" or "not recognised": nothing learned.
                    return Ok(None);
                };
                attributes.insert(
                    "face".into(),
                    json!({ "name": name, "score": score(self.score) }),
                );
                event.sub_label = Some(name);
            }
            UpdateKind::Lpr => {
                let known = clean_name("name", self.name.as_deref())?;
                let read = Named {
                    name: self.plate.clone(),
                    score: None,
                };
                plate(&mut attributes, &read, self.score)?;
                if known.is_none() && attributes.is_empty() {
                    return Ok(None);
                }
                event.sub_label = known;
            }
            UpdateKind::Classification => {
                let model = clean_name("model", self.model.as_deref())?
                    .unwrap_or_else(|| "classification".to_owned());
                let sub_label = clean_name("sub_label", self.sub_label.as_deref())?;
                let attribute = clean_name("attribute", self.attribute.as_deref())?;
                let mut result = Map::new();
                if let Some(label) = &sub_label {
                    result.insert("sub_label".into(), Value::String(label.clone()));
                }
                if let Some(attribute) = attribute {
                    result.insert("attribute".into(), Value::String(attribute));
                }
                if result.is_empty() {
                    return Ok(None);
                }
                if let Some(score) = score(self.score) {
                    result.insert("score".into(), json!(score));
                }
                attributes.insert("classification".into(), json!({ model: result }));
                event.sub_label = sub_label;
            }
            UpdateKind::Other => return Ok(None),
        }
        event.attributes = object_or_none(attributes);
        Ok(Some(event))
    }
}

/// Adds `plate` (and `plate_score`) to `attributes` when a plate was read.
fn plate(
    attributes: &mut Map<String, Value>,
    read: &Named,
    score_hint: Option<f64>,
) -> Result<(), WireError> {
    if let Some(plate) = clean_name("plate", read.name.as_deref())? {
        attributes.insert("plate".into(), Value::String(plate));
        if let Some(score) = score(read.score.or(score_hint)) {
            attributes.insert("plate_score".into(), json!(score));
        }
    }
    Ok(())
}

/// `None` for an empty map: the store's merge then keeps what it has.
fn object_or_none(map: Map<String, Value>) -> Option<Value> {
    (!map.is_empty()).then_some(Value::Object(map))
}

/// A score in 0–1, rounded to what matters; anything else is dropped.
fn score(value: Option<f64>) -> Option<f64> {
    value
        .filter(|s| s.is_finite() && (0.0..=1.0).contains(s))
        .map(|s| (s * 1000.0).round() / 1000.0)
}

/// Frigate's ids are `<seconds>.<fraction>-<random>`; manual events and other versions vary,
/// so any short id of letters, digits and `.-_:` is accepted (it goes into keys and URLs).
fn check_id(id: &str) -> Result<(), WireError> {
    if id.is_empty() {
        return invalid("no id");
    }
    if id.len() > MAX_NAME
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
    {
        return invalid(format!("id {:?} is not a Frigate id", truncate(id, 40)));
    }
    Ok(())
}

/// The start in ms: `start_time`, else the time the id begins with.
fn start_ms(id: &str, start_time: Option<f64>) -> Result<i64, WireError> {
    if let Some(start) = start_time {
        return to_ms("start_time", start);
    }
    let from_id = id
        .split_once('-')
        .and_then(|(secs, _)| secs.parse::<f64>().ok());
    match from_id {
        Some(secs) => to_ms("the id's start time", secs),
        None => invalid(format!("object {id} has no start_time")),
    }
}

/// Seconds (a float) to milliseconds.
fn to_ms(what: &str, secs: f64) -> Result<i64, WireError> {
    if !(secs.is_finite() && secs > 0.0 && secs < MAX_SECS) {
        return invalid(format!("{what} {secs} is not a time"));
    }
    // In range by the check above, so the cast is exact to the millisecond.
    Ok((secs * 1000.0).round() as i64)
}

/// A name from a payload: trimmed, `None` when empty.
///
/// # Errors
/// Longer than any real name, or with control characters: not Frigate.
fn clean_name(what: &str, name: Option<&str>) -> Result<Option<String>, WireError> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.len() > MAX_NAME || name.chars().any(char::is_control) {
        return invalid(format!("{what} {:?} is not a name", truncate(name, 40)));
    }
    Ok(Some(name.to_owned()))
}

fn clean_names(names: &[String]) -> Result<Vec<String>, WireError> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some(name) = clean_name("name", Some(name))? {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    Ok(out)
}

/// Free text, trimmed; `None` when empty.
fn text(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// At most `max` characters of `text`, for messages.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = r#"{"type": "new",
     "before": {"id": "1727013298.41-ab12cd", "camera": "driveway", "label": "person", "sub_label": null,
                "score": 0.71, "top_score": 0.71, "false_positive": false, "start_time": 1727013298.41,
                "end_time": null, "current_zones": [], "entered_zones": [], "has_snapshot": false,
                "has_clip": false, "stationary": false, "active": true, "box": [310, 120, 402, 380]},
     "after":  {"id": "1727013298.41-ab12cd", "camera": "driveway", "label": "person", "sub_label": null,
                "score": 0.83, "top_score": 0.83, "false_positive": false, "start_time": 1727013298.41,
                "end_time": null, "current_zones": ["porch"], "entered_zones": ["porch"],
                "has_snapshot": true, "has_clip": true, "stationary": false, "active": true,
                "box": [318, 118, 410, 392], "snapshot": {"frame_time": 1727013299.0, "box": [1,2,3,4]},
                "current_estimated_speed": 0, "velocity_angle": 0, "new_field_from_0_17": {"x": 1}}}"#;

    #[test]
    fn the_documented_event_converts() {
        let message: EventMessage = serde_json::from_str(NEW).unwrap();
        assert_eq!(message.change, Change::New);
        let url = url::Url::parse("https://frigate.lan:8971/").unwrap();
        let event = message.after.to_event(&Context::new(Some(&url))).unwrap();
        assert_eq!(event.key, "frigate:1727013298.41-ab12cd");
        assert_eq!(event.kind, "object");
        assert_eq!(event.camera.as_deref(), Some("driveway"));
        assert_eq!(event.label.as_deref(), Some("person"));
        assert_eq!(event.zones, ["porch"]);
        assert_eq!(event.score, Some(0.83));
        assert_eq!(event.start_ms, 1_727_013_298_410);
        assert_eq!(event.end_ms, None);
        assert!(event.has_snapshot && event.has_clip);
        assert_eq!(
            event.attributes.unwrap()["snapshot_url"],
            "https://frigate.lan:8971/api/events/1727013298.41-ab12cd/snapshot.jpg"
        );
    }

    #[test]
    fn sub_labels_come_as_names_or_pairs() {
        for (json, name, score) in [
            (r#""Bob""#, Some("Bob"), None),
            (r#"["Bob", 0.92]"#, Some("Bob"), Some(0.92)),
            (r#"[null, 0.5]"#, None, Some(0.5)),
            ("null", None, None),
            ("[]", None, None),
            (r#"{"odd": 1}"#, None, None),
            ("7", None, None),
        ] {
            let named: Named = serde_json::from_str(json).unwrap();
            assert_eq!(named.name.as_deref(), name, "{json}");
            assert_eq!(named.score, score, "{json}");
        }
        let text = r#"{"type": "update", "after": {"id": "1727013298.41-ab12cd",
            "sub_label": ["Alice", 0.97], "recognized_license_plate": ["AB123CD", 0.9],
            "start_time": 1727013298.41}}"#;
        let message: EventMessage = serde_json::from_str(text).unwrap();
        let event = message.after.to_event(&Context::default()).unwrap();
        assert_eq!(event.sub_label.as_deref(), Some("Alice"));
        let attributes = event.attributes.unwrap();
        assert_eq!(attributes["plate"], "AB123CD");
        assert_eq!(attributes["plate_score"], 0.9);
        assert!(
            attributes.get("snapshot_url").is_none(),
            "no URL configured"
        );
    }

    #[test]
    fn nulls_and_missing_fields_are_tolerated() {
        let text = r#"{"type": "end", "after": {"id": "1727013298.41-ab12cd", "camera": null,
            "label": null, "current_zones": null, "entered_zones": null, "has_clip": 1,
            "has_snapshot": null, "end_time": 1727013310.0}}"#;
        let message: EventMessage = serde_json::from_str(text).unwrap();
        assert_eq!(message.change, Change::End);
        let event = message.after.to_event(&Context::default()).unwrap();
        assert_eq!(event.start_ms, 1_727_013_298_410, "from the id");
        assert_eq!(event.end_ms, Some(1_727_013_310_000));
        assert!(event.has_clip && !event.has_snapshot);
        assert!(event.zones.is_empty() && event.camera.is_none());
        let other: EventMessage =
            serde_json::from_str(r#"{"type": "renamed", "after": {"id": "1.0-a"}}"#).unwrap();
        assert_eq!(other.change, Change::Other);
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        for text in [
            "",
            "{",
            r#"{"type": "new", "after": {"id": "1727013298.41-ab12cd", "camera": "dri"#,
            "[1, 2, 3]",
            r#"{"type": "new"}"#,
            r#"{"type": 5, "after": {}}"#,
            r#"{"type": "new", "after": {"id": 17}}"#,
            r#"{"type": "new", "after": {"id": "x", "start_time": "yesterday"}}"#,
        ] {
            assert!(
                serde_json::from_str::<EventMessage>(text).is_err(),
                "{text}"
            );
        }
        let cases = [
            (r#"{"id": ""}"#, "no id"),
            (r#"{"id": "no-time-here"}"#, "start_time"),
            (r#"{"id": "a/../b", "start_time": 1.0}"#, "not a Frigate id"),
            (r#"{"id": "1.0-a", "start_time": -5}"#, "not a time"),
            (r#"{"id": "1.0-a", "start_time": 1e300}"#, "not a time"),
            (r#"{"id": "1.0-a", "camera": "a\u0000b"}"#, "not a name"),
        ];
        for (text, needle) in cases {
            let object: TrackedObject = serde_json::from_str(text).unwrap();
            let err = object
                .to_event(&Context::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn reviews_convert() {
        let text = r#"{"type": "new", "before": null, "after": {"id": "1727013299.02-x9y8z7",
            "camera": "driveway", "start_time": 1727013299.02, "end_time": null,
            "severity": "alert", "thumb_path": "/media/frigate/clips/review/thumb-driveway.webp",
            "data": {"detections": ["1727013298.41-ab12cd"], "objects": ["person"],
                     "sub_labels": [], "zones": ["porch"], "audio": [], "metadata": null}}}"#;
        let message: ReviewMessage = serde_json::from_str(text).unwrap();
        let event = message.after.to_event().unwrap();
        assert_eq!(event.key, "frigate-review:1727013299.02-x9y8z7");
        assert_eq!(event.kind, "review");
        assert_eq!(event.zones, ["porch"]);
        let attributes = event.attributes.unwrap();
        assert_eq!(attributes["severity"], "alert");
        assert_eq!(attributes["objects"], json!(["person"]));
        assert_eq!(attributes["detections"], json!(["1727013298.41-ab12cd"]));
        let bare: ReviewItem =
            serde_json::from_str(r#"{"id": "1727013299.02-x9y8z7", "data": null}"#).unwrap();
        assert!(bare.to_event().is_ok());
    }

    #[test]
    fn tracked_object_updates_convert() {
        let parse = |text: &str| {
            serde_json::from_str::<TrackedObjectUpdate>(text)
                .unwrap()
                .to_event()
                .unwrap()
        };
        let description = parse(
            r#"{"type": "description", "id": "1727013298.41-ab12cd", "description": "A man in a red coat walks to the door.", "camera": "driveway"}"#,
        )
        .unwrap();
        assert_eq!(description.key, "frigate:1727013298.41-ab12cd");
        assert_eq!(description.start_ms, 1_727_013_298_410);
        assert_eq!(
            description.description.as_deref(),
            Some("A man in a red coat walks to the door.")
        );
        let face = parse(
            r#"{"type": "face", "name": "Alice", "score": 0.93, "id": "1727013298.41-ab12cd", "camera": "driveway", "timestamp": 1727013300.1}"#,
        )
        .unwrap();
        assert_eq!(face.sub_label.as_deref(), Some("Alice"));
        assert_eq!(face.attributes.unwrap()["face"]["score"], 0.93);
        let lpr = parse(
            r#"{"type": "TrackedObjectUpdateTypesEnum.lpr", "name": null, "plate": "AB123CD", "score": 0.88, "id": "1727013400.00-cc11dd", "camera": "gate", "timestamp": 1727013401.0, "plate_box": [1,2,3,4]}"#,
        )
        .unwrap();
        assert_eq!(lpr.sub_label, None);
        assert_eq!(lpr.attributes.unwrap()["plate"], "AB123CD");
        let classification = parse(
            r#"{"type": "classification", "id": "1727013400.00-cc11dd", "camera": "gate", "timestamp": 10.0, "model": "dog", "sub_label": "husky", "score": 0.9}"#,
        )
        .unwrap();
        assert_eq!(classification.sub_label.as_deref(), Some("husky"));
        assert_eq!(
            classification.attributes.unwrap()["classification"]["dog"]["sub_label"],
            "husky"
        );
        // Messages that add nothing.
        for text in [
            r#"{"type": "lpr", "name": null, "plate": null, "camera": "gate"}"#,
            r#"{"type": "face", "name": null, "score": 0.0, "id": "1727013298.41-ab12cd"}"#,
            r#"{"type": "face", "name": "unknown", "score": 0.4, "id": "1727013298.41-ab12cd"}"#,
            r#"{"type": "something_new", "id": "1727013298.41-ab12cd"}"#,
        ] {
            assert!(parse(text).is_none(), "{text}");
        }
    }

    #[test]
    fn api_events_convert() {
        let text = r#"[{"id": "1727013298.41-ab12cd", "camera": "driveway", "label": "car",
            "zones": ["street", "driveway_entrance"], "start_time": 1727013293.41,
            "end_time": 1727013320.5, "has_clip": true, "has_snapshot": true, "plus_id": null,
            "retain_indefinitely": false, "sub_label": "Bob's car", "top_score": null,
            "false_positive": null, "box": null,
            "data": {"box": [0.1, 0.2, 0.3, 0.4], "region": [0, 0, 1, 1], "score": 0.8,
                     "top_score": 0.86, "attributes": [], "type": "object",
                     "description": "A blue hatchback parks.", "recognized_license_plate": "AB123CD"}}]"#;
        let events: Vec<ApiEvent> = serde_json::from_str(text).unwrap();
        let event = events[0].to_event(&Context::default()).unwrap();
        assert_eq!(event.sub_label.as_deref(), Some("Bob's car"));
        assert_eq!(event.score, Some(0.86));
        assert_eq!(event.end_ms, Some(1_727_013_320_500));
        assert_eq!(
            event.description.as_deref(),
            Some("A blue hatchback parks.")
        );
        assert_eq!(event.attributes.unwrap()["plate"], "AB123CD");
    }

    #[test]
    fn availability_stats_config_and_counts_parse() {
        assert_eq!(Available::parse(b"online").unwrap(), Available::Online);
        assert_eq!(Available::parse(b" offline\n").unwrap(), Available::Offline);
        assert_eq!(Available::parse(b"stopped").unwrap(), Available::Stopped);
        assert!(Available::parse(b"\xff\xfe").is_err());
        assert!(Available::parse(b"maybe").is_err());
        let stats: Stats = serde_json::from_str(
            r#"{"cameras": {"driveway": {"camera_fps": 5.0}, "porch": {}}, "detectors": {},
                "service": {"uptime": 100, "version": "0.14.1-f4f3cfa", "storage": {}}}"#,
        )
        .unwrap();
        assert_eq!(stats.cameras, ["driveway", "porch"]);
        assert_eq!(
            stats.service.unwrap().version.as_deref(),
            Some("0.14.1-f4f3cfa")
        );
        let setup: FrigateSetup = serde_json::from_str(
            r#"{"mqtt": {}, "cameras": {"driveway": {"zones": {"porch": {"coordinates": "1,2"}}},
                "garage": {"zones": null}, "back": null}}"#,
        )
        .unwrap();
        assert_eq!(setup.cameras["driveway"].zones, ["porch"]);
        assert!(setup.cameras["garage"].zones.is_empty());
        assert!(setup.cameras.contains_key("back"));
        assert_eq!(parse_count(b"3").unwrap(), 3);
        assert!(parse_count(b"ON").is_err());
        assert!(parse_count(b"-1").is_err());
    }
}
