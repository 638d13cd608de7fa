//! The ingest task: Frigate's MQTT messages into the event memory, Frigate's status and the
//! arrivals.
//!
//! A bad message (not JSON, truncated, impossible values) is skipped, counted and logged at most
//! once per [`LOG_EVERY`] per kind of problem; the next message is handled as if nothing had
//! happened. Recording awaits the store, so a store that falls behind slows this task, then the
//! broker task behind it (see [`super::broker`]).

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::broker::Inbound;
use super::status::Availability;
use super::wire::{
    self, Available, Change, EventMessage, ReviewMessage, Stats, TrackedObjectUpdate, WireError,
};
use super::{FrigateSettings, Shared, now_ms};
use crate::events::{Event, StoreError};

/// At most one log line per kind of problem this often.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);
/// Tracked objects remembered as announced, so a `new` delivered twice is announced once.
const ANNOUNCED: usize = 1024;
/// Most cameras and zones, and labels per camera or zone, kept in the counts: far beyond any
/// real Frigate, and a bound on what a stranger publishing under the prefix can make Jarvis
/// hold.
const MAX_PLACES: usize = 512;
const MAX_LABELS: usize = 128;

/// Logs one kind of problem at most once per interval, with the count of those not logged.
#[derive(Debug)]
pub(crate) struct Throttle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when this occurrence should be logged, `n` being how many were not since the
    /// last line.
    pub(crate) fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.every)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Records events, counting and logging what the store refuses.
#[derive(Debug)]
pub(crate) struct Recorder {
    shared: Shared,
    /// The store could be used when the subscriber started. A store that is off
    /// (`events.enabled = false`) or could not be opened said so itself, once: events are then
    /// not offered to it at all (arrivals still go out).
    remember: bool,
    bad: Throttle,
    rejected: Throttle,
    unavailable: Throttle,
}

impl Recorder {
    pub(crate) fn new(shared: Shared) -> Self {
        Self {
            remember: shared.store.is_available(),
            shared,
            bad: Throttle::new(LOG_EVERY),
            rejected: Throttle::new(LOG_EVERY),
            unavailable: Throttle::new(LOG_EVERY),
        }
    }

    /// Stores `event` (waiting while the store's queue is full).
    ///
    /// # Errors
    /// What the store said; already counted and logged.
    pub(crate) async fn record(&mut self, event: Event) -> Result<(), StoreError> {
        if !self.remember {
            return Err(StoreError::Unavailable(
                "the event memory was unavailable when Frigate's subscriber started".into(),
            ));
        }
        let result = self.shared.store.record(event).await;
        if let Err(err) = &result {
            match err {
                StoreError::Rejected(_) => {
                    self.shared.stats.send_modify(|s| s.rejected += 1);
                    if let Some(suppressed) = self.rejected.allow() {
                        warn!(suppressed, "frigate: {err}");
                    }
                }
                _ => {
                    self.shared.stats.send_modify(|s| s.store_errors += 1);
                    if let Some(suppressed) = self.unavailable.allow() {
                        warn!(suppressed, "frigate events are not remembered: {err}");
                    }
                }
            }
        }
        result
    }

    /// Counts and logs a payload that could not be used.
    pub(crate) fn bad(&mut self, source: &str, err: &WireError) {
        self.shared.stats.send_modify(|s| s.bad_payloads += 1);
        if let Some(suppressed) = self.bad.allow() {
            warn!(source, suppressed, "frigate: skipped a message: {err}");
        }
    }
}

/// Remembers the last few ids, oldest forgotten first.
#[derive(Debug, Default)]
struct Recent {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl Recent {
    /// False when `id` is already remembered.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        self.order.push_back(id.to_owned());
        self.set.insert(id.to_owned());
        while self.order.len() > ANNOUNCED {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// The ingest task's state.
#[derive(Debug)]
pub(crate) struct Ingest {
    /// `<topic_prefix>/`.
    prefix: String,
    announce: Vec<String>,
    shared: Shared,
    recorder: Recorder,
    arrivals: broadcast::Sender<Event>,
    announced: Recent,
}

impl Ingest {
    pub(crate) fn new(
        settings: &FrigateSettings,
        shared: Shared,
        arrivals: broadcast::Sender<Event>,
    ) -> Self {
        Self {
            prefix: format!("{}/", settings.topic_prefix),
            announce: settings.announce_labels.clone(),
            recorder: Recorder::new(shared.clone()),
            shared,
            arrivals,
            announced: Recent::default(),
        }
    }

    /// Handles messages until the broker task stops, then waits for the store to commit them.
    pub(crate) async fn run(mut self, mut inbound: mpsc::Receiver<Inbound>) {
        while let Some(item) = inbound.recv().await {
            match item {
                Inbound::Connected { first } => {
                    if !first {
                        // Messages may have been missed while Jarvis was away from the broker.
                        self.shared.backfill_now.notify_one();
                    }
                }
                Inbound::Message { topic, payload } => {
                    self.handle(&topic, &payload).await;
                    self.shared.stats.send_modify(|s| s.messages += 1);
                }
            }
        }
        if let Err(err) = self.shared.store.flush().await {
            debug!(%err, "frigate: final flush");
        }
    }

    /// Handles one message.
    pub(crate) async fn handle(&mut self, topic: &str, payload: &[u8]) {
        let Some(rest) = topic.strip_prefix(self.prefix.as_str()) else {
            return;
        };
        match rest {
            "events" => self.on_event(payload).await,
            "reviews" => self.on_review(payload).await,
            "tracked_object_update" => self.on_update(payload).await,
            "available" => self.on_available(payload),
            "stats" => self.on_stats(payload),
            other => {
                if let Some((place, label)) = other.split_once('/') {
                    if !label.contains('/') {
                        self.on_count(place, label, payload);
                    }
                }
            }
        }
    }

    async fn on_event(&mut self, payload: &[u8]) {
        let message: EventMessage = match serde_json::from_slice(payload) {
            Ok(message) => message,
            Err(err) => return self.recorder.bad("events", &err.into()),
        };
        if message.after.false_positive == Some(true) {
            return;
        }
        let event = match message.after.to_event(&self.shared.context) {
            Ok(event) => event,
            Err(err) => return self.recorder.bad("events", &err),
        };
        let is_new = message.change == Change::New;
        if is_new {
            self.note_camera(event.camera.as_deref());
        }
        let announce = is_new
            && event
                .label
                .as_deref()
                .is_some_and(|label| self.announce.iter().any(|a| a.eq_ignore_ascii_case(label)));
        let arrival = announce.then(|| event.clone());
        match self.recorder.record(event).await {
            Ok(()) => self.shared.stats.send_modify(|s| s.objects += 1),
            // A time that cannot be right is not announced either.
            Err(StoreError::Rejected(_)) => return,
            // Arrivals do not need the memory.
            Err(_) => {}
        }
        if let Some(event) = arrival {
            if self.announced.insert(&message.after.id) {
                // No receiver (nothing announces yet) is fine.
                let _ = self.arrivals.send(event);
                self.shared.stats.send_modify(|s| s.arrivals += 1);
            }
        }
    }

    /// Events from a camera Frigate did not report are stored all the same (the list may be
    /// stale); the log says so once per camera.
    fn note_camera(&self, camera: Option<&str>) {
        let Some(camera) = camera else { return };
        let status = self.shared.status.borrow();
        if !status.cameras.is_empty() && !status.cameras.contains(&camera.to_lowercase()) {
            debug!(
                camera,
                "frigate: event from a camera its stats did not list"
            );
        }
    }

    async fn on_review(&mut self, payload: &[u8]) {
        let message: ReviewMessage = match serde_json::from_slice(payload) {
            Ok(message) => message,
            Err(err) => return self.recorder.bad("reviews", &err.into()),
        };
        let event = match message.after.to_event() {
            Ok(event) => event,
            Err(err) => return self.recorder.bad("reviews", &err),
        };
        if self.recorder.record(event).await.is_ok() {
            self.shared.stats.send_modify(|s| s.reviews += 1);
        }
    }

    async fn on_update(&mut self, payload: &[u8]) {
        let update: TrackedObjectUpdate = match serde_json::from_slice(payload) {
            Ok(update) => update,
            Err(err) => return self.recorder.bad("tracked_object_update", &err.into()),
        };
        match update.to_event() {
            Ok(Some(event)) => {
                if self.recorder.record(event).await.is_ok() {
                    self.shared.stats.send_modify(|s| s.updates += 1);
                }
            }
            Ok(None) => {}
            Err(err) => self.recorder.bad("tracked_object_update", &err),
        }
    }

    fn on_available(&mut self, payload: &[u8]) {
        let now = match Available::parse(payload) {
            Ok(Available::Online) => Availability::Online,
            Ok(Available::Offline) => Availability::Offline,
            Ok(Available::Stopped) => Availability::Stopped,
            Err(err) => return self.recorder.bad("available", &err),
        };
        // Frigate's own word replaces a guess from the API.
        self.shared.offline_by_api.store(false, Ordering::Relaxed);
        let mut came_back = false;
        self.shared.status.send_if_modified(|status| {
            if status.availability == now {
                return false;
            }
            // Unknown too: the retained `online` at start may follow a start-up backfill that
            // failed (the wake-up is coalesced with a retry, and costs one short run else).
            came_back = now == Availability::Online;
            status.availability = now;
            status.since_ms = Some(now_ms());
            true
        });
        info!(availability = ?now, "frigate availability");
        if came_back {
            self.shared.backfill_now.notify_one();
        }
    }

    fn on_stats(&mut self, payload: &[u8]) {
        let stats: Stats = match serde_json::from_slice(payload) {
            Ok(stats) => stats,
            Err(err) => return self.recorder.bad("stats", &err.into()),
        };
        let cameras: BTreeSet<String> = stats.cameras.iter().map(|c| c.to_lowercase()).collect();
        let version = stats.service.and_then(|s| s.version);
        self.shared.status.send_if_modified(|status| {
            let mut changed = false;
            if !cameras.is_empty() && status.cameras != cameras {
                status.cameras.clone_from(&cameras);
                changed = true;
            }
            if version.is_some() && status.version != version {
                status.version.clone_from(&version);
                changed = true;
            }
            changed
        });
    }

    /// `<prefix>/<camera or zone>/<label>`: a count. The same pattern carries other things
    /// (`motion` is `ON`/`OFF`, `review_status` a word); those are not counts and are ignored.
    fn on_count(&mut self, place: &str, label: &str, payload: &[u8]) {
        let Ok(count) = wire::parse_count(payload) else {
            return;
        };
        if place.is_empty() || label.is_empty() || place.len() > 128 || label.len() > 128 {
            return;
        }
        let (place, label) = (place.to_lowercase(), label.to_lowercase());
        self.shared.status.send_if_modified(|status| {
            if !status.objects.contains_key(&place) && status.objects.len() >= MAX_PLACES {
                return false;
            }
            let counts = status.objects.entry(place).or_default();
            if counts.get(&label) == Some(&count)
                || (!counts.contains_key(&label) && counts.len() >= MAX_LABELS)
            {
                return false;
            }
            counts.insert(label, count);
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_logs_once_per_interval_and_counts_the_rest() {
        let mut throttle = Throttle::new(Duration::from_secs(3600));
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.allow(), None);
        throttle.last = Some(Instant::now() - Duration::from_secs(7200));
        assert_eq!(throttle.allow(), Some(2));
    }

    #[test]
    fn recent_ids_are_bounded() {
        let mut recent = Recent::default();
        assert!(recent.insert("a"));
        assert!(!recent.insert("a"));
        for i in 0..ANNOUNCED {
            recent.insert(&i.to_string());
        }
        assert_eq!(recent.order.len(), ANNOUNCED);
        assert!(recent.insert("a"), "forgotten after {ANNOUNCED} others");
    }
}
