//! What the rest of Jarvis sees of Frigate: whether it is up, its cameras, and new arrivals.
//!
//! The Frigate subscriber (see [`super`]) owns the sending halves; the brain, the MQTT entities
//! and `/health` hold a [`FrigateLink`].

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::events::Event;

/// Frigate's availability, from its retained `<prefix>/available` topic and its API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    /// Nothing heard yet.
    #[default]
    Unknown,
    /// `online`.
    Online,
    /// `offline` (its last will: it died) or its API failing.
    Offline,
    /// `stopped`: shut down cleanly.
    Stopped,
}

/// Frigate as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct FrigateStatus {
    /// Up or not.
    pub availability: Availability,
    /// Since when (ms since the epoch), when known.
    pub since_ms: Option<i64>,
    /// Cameras Frigate reports (from `stats` and its configuration), lower-case.
    pub cameras: BTreeSet<String>,
    /// Zones, from its configuration when the API is reachable.
    pub zones: BTreeSet<String>,
    /// Frigate's version, from `stats` (or its API).
    pub version: Option<String>,
    /// Objects Frigate sees now, per camera or zone and label, from its
    /// `<prefix>/<camera or zone>/<label>` counts (`all` counts every label).
    pub objects: BTreeMap<String, BTreeMap<String, u32>>,
}

/// The receiving side, cheap to clone.
#[derive(Debug, Clone)]
pub struct FrigateLink {
    /// Frigate's status.
    pub status: watch::Receiver<FrigateStatus>,
    /// Tracked objects as they begin (Frigate `new`), for the arrival event entity.
    pub arrivals: broadcast::Sender<Event>,
}

impl FrigateLink {
    /// A link with nothing behind it (Frigate disabled), and the senders for tests and the
    /// subscriber.
    pub fn channel() -> (watch::Sender<FrigateStatus>, Self) {
        let (tx, status) = watch::channel(FrigateStatus::default());
        let (arrivals, _) = broadcast::channel(256);
        (tx, Self { status, arrivals })
    }

    /// Frigate's status now.
    pub fn status(&self) -> FrigateStatus {
        self.status.borrow().clone()
    }

    /// New arrivals from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.arrivals.subscribe()
    }
}
