//! The Frigate entities' bookkeeping: which cameras Home Assistant was told about, what their
//! sensors show, and what to send next. Synchronous and broker-free like [`super::lifecycle`]:
//! every method adds the messages to send to an outbox.
//!
//! Lifecycle rules:
//! - The cameras are Frigate's (its status) and those the event memory has events from; a
//!   camera appears when either first shows it, or with its first arrival.
//! - Frigate's availability is its own retained topic, so every Frigate entity is unavailable
//!   while Frigate is not online, whatever Jarvis remembers.
//! - A camera that is in neither list any more goes away after the grace period, but only
//!   while Frigate is online: Frigate's camera list is the authority, and a Frigate that is
//!   down reports none. Cameras an earlier run published are found from their retained
//!   availability and removed the same way; with Frigate turned off they are removed at once.
//! - Summaries (last person, people today, last face, last description) come from the store
//!   (the publisher asks it each poll) and are published when they change; an arrival fires
//!   the camera's event entity and moves its last person at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::events::Event;
use crate::frigate::{Availability, FrigateStatus};

use super::discovery::{self, CameraTopics, Common, Naming};
use super::entity_ids;
use super::lifecycle::{Out, truncate};
use super::slug::topic_slug;
use super::state::iso8601;

/// Most cameras shown; more are ignored (camera names arrive over MQTT, from anyone who may
/// publish to Frigate's topics).
pub const MAX_CAMERAS: usize = 256;
/// Longest state HA accepts for a sensor.
const MAX_STATE_CHARS: usize = 255;
/// Most zones sent with an arrival.
const MAX_ZONES: usize = 16;

/// What the event memory says about one camera.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraSummary {
    /// Start of its latest person (ms since the epoch).
    pub last_person_ms: Option<i64>,
    /// Person objects since local midnight.
    pub people_today: u64,
    /// The latest recognised face and when.
    pub last_face: Option<(String, i64)>,
    /// The latest event description (Frigate's GenAI) and when.
    pub last_description: Option<(String, i64)>,
}

#[derive(Serialize)]
struct CameraState<'a> {
    last_person: Option<String>,
    people_today: u64,
    last_face: Option<&'a str>,
    last_face_at: Option<String>,
    last_description: Option<&'a str>,
    last_description_at: Option<String>,
}

#[derive(Serialize)]
struct FrigateState<'a> {
    last_person: Option<String>,
    last_person_camera: Option<&'a str>,
    people_today: u64,
    last_face: Option<&'a str>,
    last_face_at: Option<String>,
    last_face_camera: Option<&'a str>,
}

#[derive(Serialize)]
struct Arrival<'a> {
    event_type: &'static str,
    camera: &'a str,
    label: Option<&'a str>,
    sub_label: Option<&'a str>,
    zones: &'a [String],
    score: Option<f64>,
    snapshot_url: Option<&'a str>,
    /// Frigate's id of the tracked object (for its API: `/api/events/<id>/snapshot.jpg`).
    id: &'a str,
}

/// One camera as published.
#[derive(Debug)]
struct Camera {
    /// Frigate's name (empty for a camera only known from an earlier run).
    name: String,
    topics: CameraTopics,
    /// Its config is out (this run).
    published: bool,
    summary: CameraSummary,
    state: Option<String>,
    missing_since: Option<Instant>,
}

/// The bookkeeping.
#[derive(Debug)]
pub struct Cameras {
    naming: Naming,
    common: Common,
    grace: Duration,
    retain_discovery: bool,
    /// `frigate.enabled`.
    enabled: bool,
    /// Frigate online, as last published.
    online: Option<bool>,
    /// Frigate's version in the published device config (`Some(None)`: published without).
    device: Option<Option<String>>,
    cameras: BTreeMap<String, Camera>,
    /// Cameras an earlier run published (their retained availability), not yet handled.
    previous: BTreeSet<String>,
    frigate_state: Option<String>,
}

impl Cameras {
    /// Empty books; with `enabled` false they only remove what an earlier run published.
    pub fn new(
        naming: Naming,
        common: Common,
        grace: Duration,
        retain_discovery: bool,
        enabled: bool,
    ) -> Self {
        Self {
            naming,
            common,
            grace,
            retain_discovery,
            enabled,
            online: None,
            device: None,
            cameras: BTreeMap::new(),
            previous: BTreeSet::new(),
            frigate_state: None,
        }
    }

    /// The published cameras, as (slug, Frigate's name), for the publisher's store questions.
    pub fn cameras(&self) -> Vec<(String, String)> {
        self.cameras
            .iter()
            .filter(|(_, c)| c.published && !c.name.is_empty())
            .map(|(slug, c)| (slug.clone(), c.name.clone()))
            .collect()
    }

    /// Whether a camera (by slug) is shown now.
    pub fn has(&self, slug: &str) -> bool {
        self.cameras
            .get(slug)
            .is_some_and(|c| c.published && c.missing_since.is_none())
    }

    /// A camera's retained availability seen at connect: an earlier run published it.
    pub fn note_previous(&mut self, slug: &str) {
        let valid = !slug.is_empty()
            && slug.len() <= 100
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if valid && !self.cameras.contains_key(slug) && self.previous.len() < MAX_CAMERAS {
            self.previous.insert(slug.to_owned());
        }
    }

    /// Applies Frigate's status and the cameras the store knows: availability, the Frigate
    /// device, new, missing and removed cameras. Returns the slugs of cameras that appeared,
    /// whose summaries the publisher should ask for now.
    pub fn apply(
        &mut self,
        status: &FrigateStatus,
        remembered: &[String],
        now: Instant,
        out: &mut Vec<Out>,
    ) -> Vec<String> {
        if !self.enabled {
            self.forget_previous(out);
            return Vec::new();
        }
        let online = status.availability == Availability::Online;
        if self.online != Some(online) {
            self.online = Some(online);
            out.push(Out::retained(
                &self.naming.frigate_topic,
                if online { "online" } else { "offline" },
            ));
        }
        let version = status.version.clone();
        if self.device.as_ref() != Some(&version) {
            out.push(Out {
                topic: self.naming.frigate_topics().config,
                payload: discovery::frigate_config(&self.naming, &self.common, version.as_deref()),
                retain: self.retain_discovery,
            });
            self.device = Some(version);
        }
        let mut wanted: BTreeMap<String, &str> = BTreeMap::new();
        for name in status.cameras.iter().chain(remembered) {
            let slug = topic_slug(name);
            if !slug.is_empty() && (wanted.len() < MAX_CAMERAS || wanted.contains_key(&slug)) {
                wanted.entry(slug).or_insert(name.as_str());
            }
        }
        self.resolve_entity_ids(&wanted);
        let mut added = Vec::new();
        for (slug, name) in &wanted {
            if self.show(slug, name, out) {
                added.push(slug.clone());
            }
        }
        for slug in std::mem::take(&mut self.previous) {
            self.cameras.entry(slug.clone()).or_insert_with(|| Camera {
                name: String::new(),
                topics: self.naming.camera_topics(&slug),
                published: true,
                summary: CameraSummary::default(),
                state: None,
                missing_since: None,
            });
        }
        let mut gone = Vec::new();
        for (slug, camera) in &mut self.cameras {
            if wanted.contains_key(slug) {
                continue;
            }
            let since = *camera.missing_since.get_or_insert(now);
            if online && now.duration_since(since) >= self.grace {
                gone.push(slug.clone());
            }
        }
        for slug in gone {
            self.remove(&slug, out);
        }
        added
    }

    /// Tells apart cameras whose names give the same entity ids; a camera whose base changed
    /// gets its config again.
    fn resolve_entity_ids(&mut self, wanted: &BTreeMap<String, &str>) {
        let bases = entity_ids::camera_bases(
            wanted
                .iter()
                .map(|(slug, name)| (self.naming.camera_id(slug), *name)),
        );
        if &bases == self.naming.entity_bases() {
            return;
        }
        for (slug, camera) in &mut self.cameras {
            let id = self.naming.camera_id(slug);
            if bases.get(&id) != self.naming.entity_bases().get(&id) {
                camera.published = false;
            }
        }
        self.naming.set_entity_bases(bases);
    }

    /// Publishes a camera's config and availability unless it is shown already; true when it
    /// was not.
    fn show(&mut self, slug: &str, name: &str, out: &mut Vec<Out>) -> bool {
        let naming = &self.naming;
        let camera = self
            .cameras
            .entry(slug.to_owned())
            .or_insert_with(|| Camera {
                name: name.to_owned(),
                topics: naming.camera_topics(slug),
                published: false,
                summary: CameraSummary::default(),
                state: None,
                missing_since: None,
            });
        camera.missing_since = None;
        if camera.published && !camera.name.is_empty() {
            return false;
        }
        // New, or known only from an earlier run: (re)publish with its name.
        camera.name = name.to_owned();
        camera.published = true;
        out.push(Out {
            topic: camera.topics.config.clone(),
            payload: discovery::camera_config(naming, &self.common, slug, name),
            retain: self.retain_discovery,
        });
        out.push(Out::retained(&camera.topics.availability, "online"));
        true
    }

    /// Removes a camera from HA and clears its retained messages.
    fn remove(&mut self, slug: &str, out: &mut Vec<Out>) {
        let Some(camera) = self.cameras.remove(slug) else {
            return;
        };
        for topic in [
            &camera.topics.config,
            &camera.topics.state,
            &camera.topics.availability,
        ] {
            out.push(Out::retained(topic, ""));
        }
        self.publish_frigate_state(out);
    }

    /// Frigate turned off: what an earlier run published goes, the Frigate device with it.
    fn forget_previous(&mut self, out: &mut Vec<Out>) {
        if self.previous.is_empty() {
            return;
        }
        for slug in std::mem::take(&mut self.previous) {
            let topics = self.naming.camera_topics(&slug);
            for topic in [&topics.config, &topics.state, &topics.availability] {
                out.push(Out::retained(topic, ""));
            }
        }
        let frigate = self.naming.frigate_topics();
        for topic in [&frigate.config, &frigate.state, &frigate.availability] {
            out.push(Out::retained(topic, ""));
        }
    }

    /// A camera's summary from the store; published when it changed.
    pub fn set_summary(&mut self, slug: &str, summary: CameraSummary, out: &mut Vec<Out>) {
        let Some(camera) = self.cameras.get_mut(slug) else {
            return;
        };
        // An arrival may be newer than what the store had committed when it was asked.
        let last_person = summary.last_person_ms.max(camera.summary.last_person_ms);
        camera.summary = CameraSummary {
            last_person_ms: last_person,
            ..summary
        };
        publish_camera_state(camera, out);
        self.publish_frigate_state(out);
    }

    /// A tracked object began: the camera's `arrival` event, and its last person moves. A
    /// camera not shown yet is shown first.
    pub fn arrival(&mut self, event: &Event, out: &mut Vec<Out>) {
        if !self.enabled {
            return;
        }
        let Some(name) = event.camera.as_deref() else {
            return;
        };
        let slug = topic_slug(name);
        if slug.is_empty() {
            return;
        }
        if !self.cameras.contains_key(&slug) && self.cameras.len() >= MAX_CAMERAS {
            return;
        }
        self.show(&slug, name, out);
        let Some(camera) = self.cameras.get_mut(&slug) else {
            return;
        };
        let zones = &event.zones[..event.zones.len().min(MAX_ZONES)];
        let snapshot_url = event
            .attributes
            .as_ref()
            .and_then(|a| a.get("snapshot_url"))
            .and_then(serde_json::Value::as_str);
        let id = event.key.strip_prefix("frigate:").unwrap_or(&event.key);
        let payload = Arrival {
            event_type: "arrival",
            camera: truncate(name, MAX_STATE_CHARS),
            label: event.label.as_deref().map(|l| truncate(l, MAX_STATE_CHARS)),
            sub_label: event
                .sub_label
                .as_deref()
                .map(|l| truncate(l, MAX_STATE_CHARS)),
            zones,
            score: event.score,
            snapshot_url: snapshot_url.map(|u| truncate(u, 2048)),
            id: truncate(id, MAX_STATE_CHARS),
        };
        out.push(Out {
            topic: camera.topics.event.clone(),
            payload: serde_json::to_string(&payload).unwrap_or_default(),
            retain: false,
        });
        if event.label.as_deref() == Some("person")
            && camera.summary.last_person_ms < Some(event.start_ms)
        {
            camera.summary.last_person_ms = Some(event.start_ms);
            publish_camera_state(camera, out);
            self.publish_frigate_state(out);
        }
    }

    /// Everything, as after a (re)connect or HA's birth message: the Frigate device and its
    /// availability, then each camera's config, availability and state.
    pub fn publish_all(&mut self, out: &mut Vec<Out>) {
        if !self.enabled {
            return;
        }
        if let Some(version) = &self.device {
            out.push(Out {
                topic: self.naming.frigate_topics().config,
                payload: discovery::frigate_config(&self.naming, &self.common, version.as_deref()),
                retain: self.retain_discovery,
            });
        }
        if let Some(online) = self.online {
            out.push(Out::retained(
                &self.naming.frigate_topic,
                if online { "online" } else { "offline" },
            ));
        }
        for (slug, camera) in &self.cameras {
            if !camera.published || camera.name.is_empty() {
                continue;
            }
            out.push(Out {
                topic: camera.topics.config.clone(),
                payload: discovery::camera_config(&self.naming, &self.common, slug, &camera.name),
                retain: self.retain_discovery,
            });
            out.push(Out::retained(&camera.topics.availability, "online"));
        }
        self.refresh_states(out);
    }

    /// Every retained state again (the periodic refresh).
    pub fn refresh_states(&self, out: &mut Vec<Out>) {
        if let Some(state) = &self.frigate_state {
            out.push(Out::retained(
                &self.naming.frigate_topics().state,
                state.as_str(),
            ));
        }
        for camera in self.cameras.values() {
            if let Some(state) = &camera.state {
                out.push(Out::retained(&camera.topics.state, state.as_str()));
            }
        }
    }

    /// The house-wide summary from the cameras', when it changed.
    fn publish_frigate_state(&mut self, out: &mut Vec<Out>) {
        if self.device.is_none() {
            return;
        }
        let shown = || {
            self.cameras
                .values()
                .filter(|c| c.published && !c.name.is_empty())
        };
        let person = shown()
            .filter_map(|c| c.summary.last_person_ms.map(|t| (t, c.name.as_str())))
            .max();
        let face = shown()
            .filter_map(|c| {
                c.summary
                    .last_face
                    .as_ref()
                    .map(|(who, t)| (*t, who.as_str(), c.name.as_str()))
            })
            .max();
        let state = FrigateState {
            last_person: person.map(|(t, _)| iso8601(t.div_euclid(1000))),
            last_person_camera: person.map(|(_, c)| truncate(c, MAX_STATE_CHARS)),
            people_today: shown().map(|c| c.summary.people_today).sum(),
            last_face: face.map(|(_, who, _)| truncate(who, MAX_STATE_CHARS)),
            last_face_at: face.map(|(t, _, _)| iso8601(t.div_euclid(1000))),
            last_face_camera: face.map(|(_, _, c)| truncate(c, MAX_STATE_CHARS)),
        };
        let payload = serde_json::to_string(&state).unwrap_or_default();
        if self.frigate_state.as_deref() != Some(&payload) {
            out.push(Out::retained(
                &self.naming.frigate_topics().state,
                &*payload,
            ));
            self.frigate_state = Some(payload);
        }
    }
}

fn publish_camera_state(camera: &mut Camera, out: &mut Vec<Out>) {
    let s = &camera.summary;
    let state = CameraState {
        last_person: s.last_person_ms.map(|t| iso8601(t.div_euclid(1000))),
        people_today: s.people_today,
        last_face: s
            .last_face
            .as_ref()
            .map(|(who, _)| truncate(who, MAX_STATE_CHARS)),
        last_face_at: s
            .last_face
            .as_ref()
            .map(|(_, t)| iso8601(t.div_euclid(1000))),
        last_description: s
            .last_description
            .as_ref()
            .map(|(text, _)| truncate(text, MAX_STATE_CHARS)),
        last_description_at: s
            .last_description
            .as_ref()
            .map(|(_, t)| iso8601(t.div_euclid(1000))),
    };
    let payload = serde_json::to_string(&state).unwrap_or_default();
    if camera.state.as_deref() != Some(&payload) {
        out.push(Out::retained(&camera.topics.state, &*payload));
        camera.state = Some(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Source;
    use crate::events::model::KIND_OBJECT;
    use serde_json::Value;

    fn books(enabled: bool) -> Cameras {
        Cameras::new(
            Naming::new("homeassistant", "jarvis", "homelab"),
            Common { expire_after: 0 },
            Duration::from_secs(300),
            false,
            enabled,
        )
    }

    fn status(online: bool, cameras: &[&str]) -> FrigateStatus {
        FrigateStatus {
            availability: if online {
                Availability::Online
            } else {
                Availability::Offline
            },
            cameras: cameras.iter().map(|c| (*c).to_owned()).collect(),
            version: Some("0.16.2".into()),
            ..FrigateStatus::default()
        }
    }

    fn topics(out: &[Out]) -> Vec<&str> {
        out.iter().map(|o| o.topic.as_str()).collect()
    }

    fn arrival(camera: &str, label: &str, start_ms: i64) -> Event {
        Event {
            camera: Some(camera.into()),
            label: Some(label.into()),
            zones: vec!["porch".into()],
            score: Some(0.8),
            attributes: Some(serde_json::json!({
                "snapshot_url": "http://frigate:5000/api/events/1.0-abc/snapshot.jpg"
            })),
            ..Event::new("frigate:1.0-abc", Source::Frigate, KIND_OBJECT, start_ms)
        }
    }

    #[test]
    fn frigate_and_its_cameras_appear_with_their_availability() {
        let mut books = books(true);
        let mut out = Vec::new();
        let added = books.apply(
            &status(true, &["front_door"]),
            &["driveway".to_owned(), "Front_Door".to_owned()],
            Instant::now(),
            &mut out,
        );
        assert_eq!(added, ["driveway", "front_door"]);
        assert_eq!(
            topics(&out),
            [
                "jarvis/frigate/availability",
                "homeassistant/device/jarvis_frigate/config",
                "homeassistant/device/jarvis_camera_driveway/config",
                "jarvis/camera/driveway/availability",
                "homeassistant/device/jarvis_camera_front_door/config",
                "jarvis/camera/front_door/availability",
            ]
        );
        assert_eq!(out[0].payload, "online");
        assert!(out[0].retain && !out[1].retain);
        let mut out = Vec::new();
        let added = books.apply(
            &status(true, &["front_door"]),
            &[],
            Instant::now(),
            &mut out,
        );
        assert!(added.is_empty());
        assert_eq!(out, vec![], "nothing changed, nothing sent");

        // Frigate goes down: only its availability changes.
        let mut out = Vec::new();
        books.apply(&status(false, &[]), &[], Instant::now(), &mut out);
        assert_eq!(topics(&out), ["jarvis/frigate/availability"]);
        assert_eq!(out[0].payload, "offline");
    }

    #[test]
    fn a_camera_goes_only_after_the_grace_period_and_only_while_frigate_is_up() {
        let mut books = books(true);
        let t0 = Instant::now();
        books.apply(&status(true, &["a", "b"]), &[], t0, &mut Vec::new());
        // Frigate down, reporting no cameras, for longer than the grace period: nothing goes.
        let mut out = Vec::new();
        books.apply(
            &status(false, &[]),
            &[],
            t0 + Duration::from_secs(10),
            &mut out,
        );
        books.apply(
            &status(false, &[]),
            &[],
            t0 + Duration::from_secs(900),
            &mut out,
        );
        assert!(
            !out.iter().any(|o| o.payload.is_empty()),
            "{:?}",
            topics(&out)
        );
        // Back without b: b goes once it has been missing for the grace period.
        let mut out = Vec::new();
        books.apply(
            &status(true, &["a"]),
            &[],
            t0 + Duration::from_secs(901),
            &mut out,
        );
        assert_eq!(
            topics(&out),
            [
                "jarvis/frigate/availability",
                "homeassistant/device/jarvis_camera_b/config",
                "jarvis/camera/b/state",
                "jarvis/camera/b/availability",
                "jarvis/frigate/state",
            ]
        );
        assert!(out[1..4].iter().all(|o| o.payload.is_empty() && o.retain));
        assert!(books.has("a") && !books.has("b"));
    }

    #[test]
    fn summaries_are_published_when_they_change_and_summed_up_for_the_house() {
        let mut books = books(true);
        books.apply(
            &status(true, &["a", "b"]),
            &[],
            Instant::now(),
            &mut Vec::new(),
        );
        let mut out = Vec::new();
        books.set_summary(
            "a",
            CameraSummary {
                last_person_ms: Some(1_796_365_800_000),
                people_today: 3,
                last_face: Some(("Alice".into(), 1_796_365_000_000)),
                last_description: Some(("x".repeat(300), 1_796_364_000_000)),
            },
            &mut out,
        );
        assert_eq!(
            topics(&out),
            ["jarvis/camera/a/state", "jarvis/frigate/state"]
        );
        let a: Value = serde_json::from_str(&out[0].payload).unwrap();
        assert_eq!(a["last_person"], "2026-12-04T06:30:00+00:00");
        assert_eq!(a["people_today"], 3);
        assert_eq!(a["last_face"], "Alice");
        assert_eq!(a["last_face_at"], "2026-12-04T06:16:40+00:00");
        assert_eq!(a["last_description"].as_str().unwrap().len(), 255);
        let mut out = Vec::new();
        books.set_summary(
            "b",
            CameraSummary {
                last_person_ms: Some(1_796_365_900_000),
                people_today: 2,
                ..CameraSummary::default()
            },
            &mut out,
        );
        let house: Value = serde_json::from_str(&out[1].payload).unwrap();
        assert_eq!(house["people_today"], 5);
        assert_eq!(house["last_person_camera"], "b");
        assert_eq!(house["last_face"], "Alice");
        assert_eq!(house["last_face_camera"], "a");
        // The same summary again: nothing.
        let mut out = Vec::new();
        books.set_summary(
            "b",
            CameraSummary {
                last_person_ms: Some(1_796_365_900_000),
                people_today: 2,
                ..CameraSummary::default()
            },
            &mut out,
        );
        assert_eq!(out, vec![]);
        // No summary: nulls, which HA shows as unknown.
        let mut out = Vec::new();
        books.set_summary("a", CameraSummary::default(), &mut out);
        let a: Value = serde_json::from_str(&out[0].payload).unwrap();
        assert_eq!(a["last_face"], Value::Null);
        assert_eq!(
            a["last_person"], "2026-12-04T06:30:00+00:00",
            "the last person never goes back"
        );
    }

    #[test]
    fn an_arrival_fires_the_event_and_moves_the_last_person() {
        let mut books = books(true);
        books.apply(
            &status(true, &["front_door"]),
            &[],
            Instant::now(),
            &mut Vec::new(),
        );
        let mut out = Vec::new();
        books.arrival(
            &arrival("front_door", "person", 1_796_365_800_000),
            &mut out,
        );
        assert_eq!(
            topics(&out),
            [
                "jarvis/camera/front_door/event",
                "jarvis/camera/front_door/state",
                "jarvis/frigate/state"
            ]
        );
        assert!(!out[0].retain);
        let event: Value = serde_json::from_str(&out[0].payload).unwrap();
        assert_eq!(
            event,
            serde_json::json!({
                "event_type": "arrival", "camera": "front_door", "label": "person",
                "sub_label": null, "zones": ["porch"], "score": 0.8,
                "snapshot_url": "http://frigate:5000/api/events/1.0-abc/snapshot.jpg",
                "id": "1.0-abc"
            })
        );
        // A car: the event only.
        let mut out = Vec::new();
        books.arrival(&arrival("front_door", "car", 1_796_365_900_000), &mut out);
        assert_eq!(topics(&out), ["jarvis/camera/front_door/event"]);
        // A camera Jarvis did not know yet is shown first.
        let mut out = Vec::new();
        books.arrival(&arrival("garage", "dog", 1_796_365_900_000), &mut out);
        assert_eq!(
            topics(&out),
            [
                "homeassistant/device/jarvis_camera_garage/config",
                "jarvis/camera/garage/availability",
                "jarvis/camera/garage/event"
            ]
        );
        // Hostile names never reach a topic.
        let mut out = Vec::new();
        books.arrival(&arrival("日本", "person", 1), &mut out);
        books.arrival(&arrival("a/+/#", "person", 1), &mut out);
        assert!(
            out.iter()
                .all(|o| !o.topic.contains(['+', '#']) && o.topic.split('/').count() <= 4),
            "{:?}",
            topics(&out)
        );
    }

    #[test]
    fn cameras_of_an_earlier_run_are_renamed_or_removed() {
        let mut books = books(true);
        books.note_previous("a");
        books.note_previous("gone");
        books.note_previous("bad/topic");
        let t0 = Instant::now();
        let mut out = Vec::new();
        books.apply(&status(true, &["a"]), &[], t0, &mut out);
        assert!(topics(&out).contains(&"homeassistant/device/jarvis_camera_a/config"));
        let mut out = Vec::new();
        books.apply(
            &status(true, &["a"]),
            &[],
            t0 + Duration::from_secs(301),
            &mut out,
        );
        assert_eq!(
            topics(&out),
            [
                "homeassistant/device/jarvis_camera_gone/config",
                "jarvis/camera/gone/state",
                "jarvis/camera/gone/availability",
                "jarvis/frigate/state",
            ]
        );
        assert_eq!(books.cameras(), [("a".to_owned(), "a".to_owned())]);

        // Frigate turned off: an earlier run's cameras and device go at once, nothing else.
        let mut off = super::tests::books(false);
        off.note_previous("a");
        let mut out = Vec::new();
        off.apply(&status(true, &["a"]), &["b".to_owned()], t0, &mut out);
        assert_eq!(
            topics(&out),
            [
                "homeassistant/device/jarvis_camera_a/config",
                "jarvis/camera/a/state",
                "jarvis/camera/a/availability",
                "homeassistant/device/jarvis_frigate/config",
                "jarvis/frigate/state",
                "jarvis/frigate/availability",
            ]
        );
        let mut out = Vec::new();
        off.apply(&status(true, &["a"]), &[], t0, &mut out);
        off.arrival(&arrival("a", "person", 1), &mut out);
        off.publish_all(&mut out);
        assert_eq!(out, vec![]);
    }

    #[test]
    fn publish_all_sends_each_config_before_its_state() {
        let mut books = books(true);
        books.apply(&status(true, &["a"]), &[], Instant::now(), &mut Vec::new());
        books.set_summary("a", CameraSummary::default(), &mut Vec::new());
        let mut out = Vec::new();
        books.publish_all(&mut out);
        assert_eq!(
            topics(&out),
            [
                "homeassistant/device/jarvis_frigate/config",
                "jarvis/frigate/availability",
                "homeassistant/device/jarvis_camera_a/config",
                "jarvis/camera/a/availability",
                "jarvis/frigate/state",
                "jarvis/camera/a/state",
            ]
        );
    }
}
