//! Frigate into the event memory, end to end: a real Mosquitto carries payloads composed from
//! §3.1 of the integration notes (at Frigate's rates: several `update`s a second per tracked
//! object), the subscriber stores them in a real event store, and a fake Frigate API
//! (`tests/common/fake_frigate.rs`, open on "port 5000" or with a login over HTTPS on "8971")
//! serves the backfill.
//!
//! Nothing here sleeps to synchronise: tests wait on the subscriber's counters and Frigate's
//! status (watch channels), then flush the store before reading it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::LIMIT;
use common::fake_frigate::{self, FakeFrigate};
use common::mosquitto::{Mosquitto, Observer};
use jarvis::config::{Config, Overrides, Secret};
use jarvis::events::{Event, EventStore, EventsConfig, Query};
use jarvis::frigate::{
    self, Availability, FrigateConfig, FrigateHandle, FrigateMqttConfig, FrigateSettings,
    FrigateStats, FrigateStatus,
};
use jarvis::mqtt::MqttConfig;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Frigate publishes several updates a second per tracked object; the replays use this pace.
const FRIGATE_PACE: Duration = Duration::from_millis(200);

fn now() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

/// A Frigate id for an object that started at `start`.
fn id(start: f64, tag: &str) -> String {
    // Frigate writes the frame time in full: `1727013298.415-ab12cd`.
    format!("{start}-{tag}")
}

/// A tracked object as `frigate/events` carries it in `after` (and `before`).
fn object(id: &str, camera: &str, label: &str, start: f64) -> Value {
    json!({
        "id": id, "camera": camera, "label": label, "sub_label": null,
        "score": 0.71, "top_score": 0.71, "false_positive": false, "start_time": start,
        "end_time": null, "current_zones": [], "entered_zones": [], "has_snapshot": false,
        "has_clip": false, "stationary": false, "active": true, "box": [310, 120, 402, 380],
        "frame_time": start, "area": 23_920, "ratio": 0.35, "region": [0, 0, 320, 320],
        "motionless_count": 0, "position_changes": 1, "attributes": [],
        "current_attributes": [], "thumbnail": null
    })
}

/// A `frigate/events` message.
fn message(kind: &str, after: &Value) -> String {
    let mut before = after.clone();
    before["score"] = json!(0.6);
    json!({"type": kind, "before": before, "after": after}).to_string()
}

/// A row of `/api/events`.
fn api_event(id: &str, camera: &str, label: &str, start: f64, end: Option<f64>) -> Value {
    json!({
        "id": id, "camera": camera, "label": label, "zones": ["street"],
        "start_time": start - 5.0, "end_time": end, "has_clip": true, "has_snapshot": true,
        "plus_id": null, "retain_indefinitely": false, "sub_label": null, "top_score": null,
        "false_positive": null, "box": null,
        "data": {"box": [0.1, 0.2, 0.3, 0.4], "region": [0, 0, 1, 1], "score": 0.8,
                 "top_score": 0.86, "attributes": [], "type": "object"}
    })
}

/// A review item (`frigate/reviews` `after`, and a row of `/api/review`).
fn review(id: &str, camera: &str, start: f64, end: Option<f64>, detections: &[&str]) -> Value {
    json!({
        "id": id, "camera": camera, "start_time": start, "end_time": end,
        "severity": "alert", "has_been_reviewed": false,
        "thumb_path": format!("/media/frigate/clips/review/thumb-{camera}-{id}.webp"),
        "data": {"detections": detections, "objects": ["person"], "sub_labels": [],
                 "zones": ["porch"], "audio": []}
    })
}

/// A broker, a store, a Frigate status and a subscriber, with Frigate's side of the broker.
struct Rig {
    broker: Mosquitto,
    /// Publishes as Frigate does.
    frigate: Observer,
    dir: tempfile::TempDir,
    store: EventStore,
    config: FrigateConfig,
    mqtt: MqttConfig,
    status_tx: Arc<watch::Sender<FrigateStatus>>,
    status: watch::Receiver<FrigateStatus>,
    arrivals_tx: broadcast::Sender<Event>,
    arrivals: broadcast::Receiver<Event>,
    token: CancellationToken,
    handle: Option<FrigateHandle>,
}

impl Rig {
    /// Starts a broker and a subscriber with `config` (enabled, on that broker).
    async fn start(config: FrigateConfig) -> Self {
        let broker = Mosquitto::start().await;
        Self::start_on(broker, config, None).await
    }

    async fn start_on(broker: Mosquitto, config: FrigateConfig, mqtt: Option<MqttConfig>) -> Self {
        let frigate = Observer::connect(broker.port, &["jarvis-test/unused"]).await;
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(&events_config(&dir));
        let (status_tx, status) = watch::channel(FrigateStatus::default());
        let (arrivals_tx, arrivals) = broadcast::channel(64);
        let mqtt = mqtt.unwrap_or_else(|| MqttConfig {
            host: "127.0.0.1".into(),
            port: broker.port,
            ..MqttConfig::default()
        });
        let mut rig = Self {
            broker,
            frigate,
            dir,
            store,
            config: FrigateConfig {
                enabled: true,
                ..config
            },
            mqtt,
            status_tx: Arc::new(status_tx),
            status,
            arrivals_tx,
            arrivals,
            token: CancellationToken::new(),
            handle: None,
        };
        rig.spawn().await;
        rig
    }

    fn settings(&self) -> FrigateSettings {
        let mut settings = FrigateSettings::from_config(&self.config, &self.mqtt).unwrap();
        settings.api_retry = (Duration::from_millis(50), Duration::from_millis(200));
        settings.broker.backoff = (Duration::from_millis(50), Duration::from_millis(200));
        settings
    }

    /// Starts the subscriber and waits until the broker has acknowledged its subscriptions.
    async fn spawn(&mut self) {
        self.token = CancellationToken::new();
        let handle = frigate::spawn_settings(
            self.settings(),
            self.store.clone(),
            Arc::clone(&self.status_tx),
            self.arrivals_tx.clone(),
            self.token.clone(),
        )
        .unwrap();
        self.handle = Some(handle);
        self.wait_stats("subscribed", |s| s.subscribed).await;
    }

    fn handle(&self) -> &FrigateHandle {
        self.handle.as_ref().expect("subscriber running")
    }

    fn stats(&self) -> FrigateStats {
        self.handle().stats()
    }

    /// Stops the subscriber as Jarvis's shutdown does, and waits for it.
    async fn stop(&mut self) {
        self.token.cancel();
        let handle = self.handle.take().expect("subscriber running");
        tokio::time::timeout(LIMIT, handle.join())
            .await
            .expect("the subscriber stops in time");
    }

    /// Drops the store (its writer commits and stops) and opens the same file again.
    async fn reopen_store(&mut self) {
        self.store.flush().await.unwrap();
        self.store = EventStore::open(&events_config(&self.dir));
        assert_eq!(self.store.problem(), None);
    }

    /// Publishes on `<prefix>/<topic>` as Frigate does.
    async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.publish_as(topic, payload, false).await;
    }

    async fn publish_as(&self, topic: &str, payload: impl Into<Vec<u8>>, retain: bool) {
        self.frigate
            .publish(&format!("frigate/{topic}"), payload, retain)
            .await;
    }

    async fn wait_stats(
        &self,
        what: &str,
        check: impl FnMut(&FrigateStats) -> bool,
    ) -> FrigateStats {
        let mut stats = self.handle().watch_stats();
        let seen = tokio::time::timeout(LIMIT, stats.wait_for(check)).await;
        match seen {
            Ok(Ok(stats)) => stats.clone(),
            _ => panic!("timed out waiting for {what}: {:#?}", self.stats()),
        }
    }

    async fn wait_status(
        &mut self,
        what: &str,
        check: impl FnMut(&FrigateStatus) -> bool,
    ) -> FrigateStatus {
        let seen = tokio::time::timeout(LIMIT, self.status.wait_for(check))
            .await
            .map(|seen| seen.map(|status| status.clone()));
        match seen {
            Ok(Ok(status)) => status,
            _ => panic!("timed out waiting for {what}: {:#?}", self.status.borrow()),
        }
    }

    /// Waits until `n` more messages than `mark` were handled, then for the store's commit.
    async fn settle(&self, mark: u64, n: u64) {
        self.wait_stats(&format!("{n} messages handled"), |s| s.messages >= mark + n)
            .await;
        self.store.flush().await.unwrap();
    }

    /// The tracked objects stored, by key.
    async fn objects(&self) -> Vec<Event> {
        let mut all = self
            .store
            .query(Query {
                limit: 10_000,
                ..Query::objects()
            })
            .await
            .unwrap();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    async fn object(&self, id: &str) -> Event {
        let key = format!("frigate:{id}");
        self.objects()
            .await
            .into_iter()
            .find(|e| e.key == key)
            .unwrap_or_else(|| panic!("{key} is not stored"))
    }

    async fn reviews(&self) -> Vec<Event> {
        self.store
            .query(Query {
                kind: Some("review".into()),
                limit: 10_000,
                ..Query::default()
            })
            .await
            .unwrap()
    }

    /// Frigate going offline and coming back, as its retained availability says it.
    async fn frigate_comes_back(&mut self) {
        self.publish_as("available", "offline", true).await;
        self.wait_status("offline", |s| s.availability == Availability::Offline)
            .await;
        self.publish_as("available", "online", true).await;
        self.wait_status("online", |s| s.availability == Availability::Online)
            .await;
    }
}

fn events_config(dir: &tempfile::TempDir) -> EventsConfig {
    EventsConfig {
        path: dir.path().join("events.db"),
        ..EventsConfig::default()
    }
}

fn with_api(fake: &FakeFrigate) -> FrigateConfig {
    FrigateConfig {
        url: Some(fake.url.parse().unwrap()),
        ..FrigateConfig::default()
    }
}

fn with_login(fake: &FakeFrigate) -> FrigateConfig {
    FrigateConfig {
        url: Some(fake.url.parse().unwrap()),
        username: Some(fake_frigate::USER.into()),
        password: Some(Secret::new(fake_frigate::PASSWORD)),
        fingerprints: vec![fake.fingerprint().unwrap()],
        ..FrigateConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_objects_new_update_end_land_merged_in_the_store() {
    let fake = FakeFrigate::open().await;
    let rig = Rig::start(with_api(&fake)).await;
    rig.wait_stats("the first backfill", |s| s.backfills >= 1)
        .await;
    let start = now() - 30.0;
    let (person, car) = (id(start, "p1a2b3"), id(start + 0.4, "c4d5e6"));
    let mut p = object(&person, "driveway", "person", start);
    let mut c = object(&car, "driveway", "car", start + 0.4);
    let mark = rig.stats().messages;
    let mut sent = 0;
    let mut pace = tokio::time::interval(FRIGATE_PACE);
    pace.tick().await;
    rig.publish("events", message("new", &p)).await;
    rig.publish("events", message("new", &c)).await;
    sent += 2;
    for tick in 1..=6 {
        pace.tick().await;
        // The person walks up to the door, is recognised, and stands still for a moment.
        p["score"] = json!([0.75, 0.82, 0.9, 0.86, 0.8, 0.78][tick - 1]);
        p["top_score"] = json!([0.75, 0.82, 0.9, 0.9, 0.9, 0.9][tick - 1]);
        if tick >= 2 {
            p["current_zones"] = json!(["porch"]);
            p["entered_zones"] = json!(["porch"]);
        }
        if tick >= 4 {
            p["current_zones"] = json!(["steps"]);
            p["entered_zones"] = json!(["porch", "steps"]);
            p["sub_label"] = json!(["Alice", 0.93]);
            p["has_snapshot"] = json!(true);
        }
        c["stationary"] = json!(tick > 3);
        rig.publish("events", message("update", &p)).await;
        rig.publish("events", message("update", &c)).await;
        sent += 2;
    }
    pace.tick().await;
    p["end_time"] = json!(start + 8.0);
    p["has_clip"] = json!(true);
    p["active"] = json!(false);
    c["end_time"] = json!(start + 9.0);
    rig.publish("events", message("end", &p)).await;
    rig.publish("events", message("end", &c)).await;
    sent += 2;
    rig.settle(mark, sent).await;

    assert_eq!(rig.stats().objects, sent);
    let objects = rig.objects().await;
    assert_eq!(objects.len(), 2, "{objects:#?}");
    let alice = rig.object(&person).await;
    assert_eq!(alice.camera.as_deref(), Some("driveway"));
    assert_eq!(alice.label.as_deref(), Some("person"));
    assert_eq!(alice.sub_label.as_deref(), Some("Alice"));
    assert_eq!(alice.zones, ["porch", "steps"]);
    assert_eq!(alice.score, Some(0.9), "the best score seen");
    assert_eq!(alice.start_ms, (start * 1000.0).round() as i64);
    assert_eq!(alice.end_ms, Some(((start + 8.0) * 1000.0).round() as i64));
    assert!(alice.has_snapshot && alice.has_clip);
    assert_eq!(
        alice.attributes.as_ref().unwrap()["snapshot_url"],
        format!("{}/api/events/{person}/snapshot.jpg", fake.url)
    );
    let car = rig.object(&car).await;
    assert_eq!(car.label.as_deref(), Some("car"));
    assert!(car.end_ms.is_some() && car.zones.is_empty());
    assert_eq!(rig.stats().bad_payloads, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_items_are_stored_and_merged() {
    let rig = Rig::start(FrigateConfig::default()).await;
    let start = now() - 20.0;
    let item_id = id(start, "x9y8z7");
    let mut item = review(
        &item_id,
        "driveway",
        start,
        None,
        &[&id(start - 0.5, "ab12cd")],
    );
    let mark = rig.stats().messages;
    let review_message = |kind: &str, after: &Value| {
        json!({"type": kind, "before": null, "after": after}).to_string()
    };
    rig.publish("reviews", review_message("new", &item)).await;
    item["data"]["detections"] = json!([id(start - 0.5, "ab12cd"), id(start + 2.0, "ef34gh")]);
    item["data"]["objects"] = json!(["person", "car"]);
    rig.publish("reviews", review_message("update", &item))
        .await;
    item["end_time"] = json!(start + 12.0);
    rig.publish("reviews", review_message("end", &item)).await;
    rig.settle(mark, 3).await;

    let reviews = rig.reviews().await;
    assert_eq!(reviews.len(), 1, "{reviews:#?}");
    let stored = &reviews[0];
    assert_eq!(stored.key, format!("frigate-review:{item_id}"));
    assert_eq!(stored.camera.as_deref(), Some("driveway"));
    assert_eq!(stored.zones, ["porch"]);
    assert_eq!(
        stored.end_ms,
        Some(((start + 12.0) * 1000.0).round() as i64)
    );
    let attributes = stored.attributes.as_ref().unwrap();
    assert_eq!(attributes["severity"], "alert");
    assert_eq!(attributes["objects"], json!(["person", "car"]));
    assert_eq!(attributes["detections"].as_array().unwrap().len(), 2);
    assert_eq!(rig.stats().reviews, 3);
    assert!(
        rig.objects().await.is_empty(),
        "reviews are not tracked objects"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn face_plate_and_description_updates_merge_into_their_object() {
    let rig = Rig::start(FrigateConfig::default()).await;
    let start = now() - 60.0;
    let person = id(start, "f00d01");
    let car = id(start + 1.0, "ca7001");
    let mark = rig.stats().messages;
    rig.publish(
        "events",
        message("new", &object(&person, "porch", "person", start)),
    )
    .await;
    rig.publish(
        "tracked_object_update",
        json!({
            "type": "face", "name": "Alice", "score": 0.94, "id": person, "camera": "porch",
            "timestamp": start + 1.5
        })
        .to_string(),
    )
    .await;
    // The description is generated after the object ended; its `new` here comes late, after
    // the plate (an update for an object not stored yet keeps the start its id carries).
    rig.publish(
        "tracked_object_update",
        json!({
            "type": "lpr", "name": "Bob's car", "plate": "AB123CD", "score": 0.91, "id": car,
            "camera": "gate", "timestamp": start + 3.0, "plate_box": [10, 20, 60, 40]
        })
        .to_string(),
    )
    .await;
    rig.publish(
        "events",
        message("new", &object(&car, "gate", "car", start + 1.0)),
    )
    .await;
    rig.publish(
        "tracked_object_update",
        json!({
            "type": "description", "id": person, "camera": "porch",
            "description": "A woman in a green coat walks up to the front door and rings."
        })
        .to_string(),
    )
    .await;
    // Updates that add nothing: no car any more, and an unknown face.
    rig.publish(
        "tracked_object_update",
        json!({
            "type": "lpr", "name": null, "plate": null, "camera": "gate"
        })
        .to_string(),
    )
    .await;
    rig.publish(
        "tracked_object_update",
        json!({
            "type": "face", "name": "unknown", "score": 0.3, "id": person, "camera": "porch"
        })
        .to_string(),
    )
    .await;
    rig.settle(mark, 7).await;

    let alice = rig.object(&person).await;
    assert_eq!(alice.sub_label.as_deref(), Some("Alice"));
    assert_eq!(
        alice.description.as_deref(),
        Some("A woman in a green coat walks up to the front door and rings.")
    );
    assert_eq!(alice.attributes.as_ref().unwrap()["face"]["name"], "Alice");
    assert_eq!(alice.label.as_deref(), Some("person"));
    let car = rig.object(&car).await;
    assert_eq!(car.sub_label.as_deref(), Some("Bob's car"));
    assert_eq!(
        car.label.as_deref(),
        Some("car"),
        "the late `new` completes the row"
    );
    assert_eq!(car.camera.as_deref(), Some("gate"));
    assert_eq!(car.start_ms, ((start + 1.0) * 1000.0).round() as i64);
    let attributes = car.attributes.as_ref().unwrap();
    assert_eq!(attributes["plate"], "AB123CD");
    assert_eq!(attributes["plate_score"], 0.91);
    assert_eq!(rig.objects().await.len(), 2);
    let stats = rig.stats();
    assert_eq!((stats.updates, stats.bad_payloads), (3, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_stats_and_counts_reach_the_status_watch() {
    let broker = Mosquitto::start().await;
    // Frigate said online before Jarvis started: the retained message is replayed.
    let early = Observer::connect(broker.port, &["jarvis-test/unused"]).await;
    early.publish("frigate/available", "online", true).await;
    let mut rig = Rig::start_on(broker, FrigateConfig::default(), None).await;
    let online = rig
        .wait_status("online", |s| s.availability == Availability::Online)
        .await;
    let first = online.since_ms.expect("since when");
    assert!((frigate_now_ms() - first).abs() < 60_000);

    rig.publish_as("available", "offline", true).await;
    let offline = rig
        .wait_status("offline", |s| s.availability == Availability::Offline)
        .await;
    assert!(offline.since_ms.unwrap() >= first);
    rig.publish_as("available", "stopped", true).await;
    let stopped = rig
        .wait_status("stopped", |s| s.availability == Availability::Stopped)
        .await;
    assert!(stopped.since_ms.unwrap() >= offline.since_ms.unwrap());

    let stats = json!({
        "cameras": {
            "Driveway": {"camera_fps": 5.0, "process_fps": 5.0, "skipped_fps": 0.0,
                         "detection_fps": 1.2, "detection_enabled": true, "pid": 101,
                         "capture_pid": 102, "ffmpeg_pid": 103, "audio_rms": 0, "audio_dBFS": 0},
            "garden": {"camera_fps": 5.0}
        },
        "detectors": {"coral": {"inference_speed": 8.1, "pid": 99}},
        "camera_fps": 10.0, "cpu_usages": {}, "gpu_usages": {},
        "service": {"uptime": 1234, "version": "0.16.2-4d58206", "latest_version": "0.16.2",
                    "storage": {"/dev/shm": {"total": 512}}, "last_updated": 1727013298}
    });
    rig.publish("stats", stats.to_string()).await;
    let status = rig.wait_status("stats", |s| s.version.is_some()).await;
    assert_eq!(status.version.as_deref(), Some("0.16.2-4d58206"));
    assert_eq!(
        status
            .cameras
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["driveway", "garden"]
    );

    rig.publish("driveway/person", "2").await;
    rig.publish("porch/person", "1").await;
    rig.publish("driveway/motion", "ON").await;
    rig.publish("driveway/review_status", "ALERT").await;
    rig.publish("driveway/all", "3").await;
    let status = rig
        .wait_status("counts", |s| {
            s.objects.get("driveway").and_then(|c| c.get("all")) == Some(&3)
        })
        .await;
    assert_eq!(status.objects["driveway"]["person"], 2);
    assert_eq!(status.objects["porch"]["person"], 1);
    assert!(!status.objects["driveway"].contains_key("motion"));
    assert_eq!(
        rig.stats().bad_payloads,
        0,
        "motion and review_status are not counts"
    );
}

fn frigate_now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_fire_once_for_announced_labels_only() {
    let mut rig = Rig::start(FrigateConfig {
        announce_labels: vec!["person".into(), "Dog".into()],
        ..FrigateConfig::default()
    })
    .await;
    let start = now() - 10.0;
    let person = object(&id(start, "aaaaaa"), "driveway", "person", start);
    let car = object(&id(start + 0.1, "bbbbbb"), "driveway", "car", start + 0.1);
    let dog = object(&id(start + 0.2, "cccccc"), "garden", "dog", start + 0.2);
    let mut late = object(
        &id(start + 0.3, "dddddd"),
        "driveway",
        "person",
        start + 0.3,
    );
    let mark = rig.stats().messages;
    rig.publish("events", message("new", &person)).await;
    rig.publish("events", message("new", &car)).await;
    rig.publish("events", message("update", &person)).await;
    rig.publish("events", message("new", &dog)).await;
    // Delivered twice (a QoS 1 redelivery): announced once.
    rig.publish("events", message("new", &person)).await;
    // An update or end never announces, even for a person whose `new` was missed.
    rig.publish("events", message("update", &late)).await;
    late["end_time"] = json!(start + 5.0);
    rig.publish("events", message("end", &late)).await;
    rig.settle(mark, 7).await;

    let mut announced = Vec::new();
    while let Ok(event) = rig.arrivals.try_recv() {
        announced.push((event.label.unwrap(), event.camera.unwrap()));
    }
    assert_eq!(
        announced,
        [
            ("person".to_owned(), "driveway".to_owned()),
            ("dog".to_owned(), "garden".to_owned())
        ]
    );
    assert_eq!(rig.stats().arrivals, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_from_the_open_api_twice_and_over_mqtt_makes_no_duplicates() {
    let fake = FakeFrigate::open().await;
    let start = now() - 3600.0;
    let (a, b, d) = (
        id(start, "a1a1a1"),
        id(start + 600.0, "b2b2b2"),
        id(start + 1200.0, "d4d4d4"),
    );
    fake.put_event(api_event(
        &a,
        "driveway",
        "person",
        start,
        Some(start + 30.0),
    ));
    // Still going on when the first backfill runs.
    fake.put_event(api_event(&b, "garden", "dog", start + 600.0, None));
    // Older than backfill_hours: not fetched.
    let old = id(now() - 3.0 * 86_400.0, "0ld0ld");
    fake.put_event(api_event(
        &old,
        "driveway",
        "car",
        now() - 3.0 * 86_400.0,
        Some(now() - 3.0 * 86_400.0 + 9.0),
    ));
    let r = id(start + 1.0, "r1r1r1");
    fake.put_review(review(
        &r,
        "driveway",
        start + 1.0,
        Some(start + 40.0),
        &[&a],
    ));

    let mut rig = Rig::start(with_api(&fake)).await;
    let stats = rig.wait_stats("backfill 1", |s| s.backfills >= 1).await;
    assert_eq!(stats.backfilled, 3, "{stats:?}");
    rig.store.flush().await.unwrap();
    assert_eq!(rig.objects().await.len(), 2);
    assert!(rig.object(&b).await.in_progress());
    let status = rig.status.borrow().clone();
    assert_eq!(
        status.availability,
        Availability::Online,
        "the API answered"
    );
    assert_eq!(
        status.zones.iter().map(String::as_str).collect::<Vec<_>>(),
        ["porch", "street"]
    );
    assert_eq!(status.version.as_deref(), Some("0.16.2-4d58206"));

    // Meanwhile over MQTT: b ends, d comes and goes (and lands in Frigate's database too).
    let mark = rig.stats().messages;
    let mut b_after = object(&b, "garden", "dog", start + 600.0);
    b_after["end_time"] = json!(start + 700.0);
    rig.publish("events", message("end", &b_after)).await;
    let mut d_after = object(&d, "driveway", "person", start + 1200.0);
    rig.publish("events", message("new", &d_after)).await;
    d_after["end_time"] = json!(start + 1230.0);
    rig.publish("events", message("end", &d_after)).await;
    rig.settle(mark, 3).await;
    fake.put_event(api_event(
        &b,
        "garden",
        "dog",
        start + 600.0,
        Some(start + 700.0),
    ));
    fake.put_event(api_event(
        &d,
        "driveway",
        "person",
        start + 1200.0,
        Some(start + 1230.0),
    ));

    // Frigate restarts: a second backfill, from the cursor (b was still going on, so it
    // reaches back to b).
    rig.frigate_comes_back().await;
    rig.wait_stats("backfill 2", |s| s.backfills >= 2).await;
    rig.store.flush().await.unwrap();
    let keys: Vec<String> = rig.objects().await.into_iter().map(|e| e.key).collect();
    assert_eq!(
        keys,
        [
            format!("frigate:{a}"),
            format!("frigate:{b}"),
            format!("frigate:{d}")
        ],
        "each object once"
    );
    assert_eq!(rig.reviews().await.len(), 1);
    assert!(rig.object(&b).await.end_ms.is_some());
    let second = fake.requests("/api/events").last().cloned().unwrap();
    let after: f64 = second.param("after").unwrap().parse().unwrap();
    assert!(
        after < start + 600.0 - 5.0,
        "the cursor waits for b to end: {after}"
    );
    assert!(after > start, "but not back to a: {after}");
    assert_eq!(
        second.param("include_thumbnails"),
        Some("0"),
        "thumbnails are not fetched"
    );

    // A third run with nothing new changes nothing.
    rig.frigate_comes_back().await;
    rig.wait_stats("backfill 3", |s| s.backfills >= 3).await;
    rig.store.flush().await.unwrap();
    assert_eq!(rig.objects().await.len(), 3);
    assert_eq!(rig.reviews().await.len(), 1);
    assert_eq!(rig.stats().backfill_failures, 0);
    assert!(
        rig.store
            .meta("frigate.backfill.events")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_pages_through_more_than_one_page() {
    let fake = FakeFrigate::open().await;
    let start = now() - 7200.0;
    for n in 0..450 {
        let at = start + f64::from(n) * 10.0;
        fake.put_event(api_event(
            &id(at, &format!("p{n:05}")),
            "driveway",
            "person",
            at,
            Some(at + 5.0),
        ));
    }
    let rig = Rig::start(with_api(&fake)).await;
    rig.wait_stats("backfill", |s| s.backfills >= 1).await;
    rig.store.flush().await.unwrap();
    assert_eq!(rig.objects().await.len(), 450);
    let pages = fake.requests("/api/events");
    assert_eq!(pages.len(), 3, "200 + 200 + 50");
    assert!(pages[1].param("before").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_over_https_logs_in_keeps_the_session_and_logs_in_again_once_on_401() {
    let fake = FakeFrigate::with_login().await;
    let start = now() - 600.0;
    let (a, b) = (id(start, "aaa111"), id(start + 60.0, "bbb222"));
    fake.put_event(api_event(
        &a,
        "driveway",
        "person",
        start,
        Some(start + 20.0),
    ));
    fake.put_event(api_event(
        &b,
        "driveway",
        "car",
        start + 60.0,
        Some(start + 90.0),
    ));
    fake.put_review(review(
        &id(start + 1.0, "rev001"),
        "driveway",
        start + 1.0,
        Some(start + 30.0),
        &[&a],
    ));

    let mut rig = Rig::start(with_login(&fake)).await;
    rig.wait_stats("backfill 1", |s| s.backfills >= 1).await;
    assert_eq!(fake.logins(), 1);
    rig.store.flush().await.unwrap();
    assert_eq!(
        (rig.objects().await.len(), rig.reviews().await.len()),
        (2, 1)
    );
    assert!(
        fake.log().iter().all(|r| r.status != 401),
        "{:#?}",
        fake.log()
    );

    // The session is reused.
    rig.frigate_comes_back().await;
    rig.wait_stats("backfill 2", |s| s.backfills >= 2).await;
    assert_eq!(fake.logins(), 1);

    // Frigate forgets the session (it restarted with a new secret): one 401, one login.
    fake.revoke_sessions();
    rig.frigate_comes_back().await;
    let stats = rig.wait_stats("backfill 3", |s| s.backfills >= 3).await;
    assert_eq!(fake.logins(), 2);
    assert_eq!(fake.log().iter().filter(|r| r.status == 401).count(), 1);
    assert_eq!(stats.backfill_failures, 0);
    rig.store.flush().await.unwrap();
    assert_eq!(
        (rig.objects().await.len(), rig.reviews().await.len()),
        (2, 1)
    );
    assert_eq!(rig.status.borrow().availability, Availability::Online);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_renewed_before_its_jwt_expires() {
    let fake = FakeFrigate::with_login().await;
    // Every session Frigate hands out is already past its `exp`: a client that reads it logs
    // in again before each request instead of waiting for a 401.
    fake.session_secs(-10);
    let start = now() - 600.0;
    fake.put_event(api_event(
        &id(start, "aaa111"),
        "driveway",
        "person",
        start,
        Some(start + 20.0),
    ));
    let rig = Rig::start(with_login(&fake)).await;
    rig.wait_stats("backfill", |s| s.backfills >= 1).await;
    let gets = fake.log().iter().filter(|r| r.method == "GET").count();
    assert!(gets >= 4, "config, version, events, review: {gets}");
    assert_eq!(fake.logins(), gets, "one login before each request");
    assert!(fake.log().iter().all(|r| r.status != 401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_or_an_unpinned_certificate_marks_frigate_offline_with_the_fix() {
    let fake = FakeFrigate::with_login().await;
    let mut config = with_login(&fake);
    config.password = Some(Secret::new("wrong-hunter2"));
    let mut rig = Rig::start(config).await;
    let stats = rig
        .wait_stats("a failed backfill", |s| s.backfill_failures >= 1)
        .await;
    let error = stats.last_backfill_error.unwrap();
    assert!(error.contains("frigate.username"), "{error}");
    assert!(
        !error.contains("hunter2") && !error.contains(fake_frigate::PASSWORD),
        "{error}"
    );
    let status = rig
        .wait_status("offline", |s| s.availability == Availability::Offline)
        .await;
    assert!(status.since_ms.is_some());
    rig.stop().await;

    let other = FakeFrigate::with_login().await;
    let mut config = with_login(&fake);
    config.fingerprints = vec![other.fingerprint().unwrap()];
    let rig = Rig::start(config).await;
    let stats = rig
        .wait_stats("a failed backfill", |s| s.backfill_failures >= 1)
        .await;
    let error = stats.last_backfill_error.unwrap();
    let seen = fake.fingerprint().unwrap();
    assert!(
        error.contains("frigate.fingerprints") && error.contains(&seen),
        "{error}"
    );
    assert_eq!(
        fake.logins(),
        0,
        "the password never went to the wrong server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_api_marks_frigate_offline_until_it_answers_again() {
    let fake = FakeFrigate::open().await;
    fake.fail_with(Some(503));
    let mut rig = Rig::start(with_api(&fake)).await;
    let offline = rig
        .wait_status("offline", |s| s.availability == Availability::Offline)
        .await;
    let since = offline.since_ms.expect("since when");
    let stats = rig
        .wait_stats("a failed backfill", |s| s.backfill_failures >= 1)
        .await;
    let error = stats.last_backfill_error.unwrap();
    assert!(
        error.contains("503") && error.contains("/api/config"),
        "{error}"
    );

    fake.fail_with(None);
    let online = rig
        .wait_status("online again", |s| s.availability == Availability::Online)
        .await;
    assert!(online.since_ms.unwrap() >= since);
    rig.wait_stats("a backfill", |s| s.backfills >= 1).await;
    assert_eq!(rig.stats().last_backfill_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_broker_restarts_it_reconnects_resubscribes_and_backfills_the_gap() {
    let fake = FakeFrigate::open().await;
    let mut rig = Rig::start(with_api(&fake)).await;
    rig.wait_stats("the first backfill", |s| s.backfills >= 1)
        .await;
    let start = now() - 60.0;
    // Published while the broker was down: only Frigate's database has it.
    let missed = id(start, "m155ed");
    rig.broker.stop().await;
    rig.wait_stats("the connection lost", |s| !s.connected)
        .await;
    fake.put_event(api_event(
        &missed,
        "driveway",
        "person",
        start,
        Some(start + 10.0),
    ));
    rig.broker.restart().await;
    rig.wait_stats("reconnected and subscribed", |s| {
        s.connects >= 2 && s.subscribed
    })
    .await;
    let stats = rig
        .wait_stats("the backfill after the reconnection", |s| s.backfills >= 2)
        .await;
    assert!(stats.connection_failures >= 1, "{stats:?}");
    rig.frigate.wait_connects(2).await;
    let after = id(start + 20.0, "af7e00");
    let mark = rig.stats().messages;
    rig.publish(
        "events",
        message("new", &object(&after, "driveway", "car", start + 20.0)),
    )
    .await;
    rig.settle(mark, 1).await;
    let keys: Vec<String> = rig.objects().await.into_iter().map(|e| e.key).collect();
    assert_eq!(
        keys,
        [format!("frigate:{missed}"), format!("frigate:{after}")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_new_and_end_loses_nothing() {
    let fake = FakeFrigate::open().await;
    let mut rig = Rig::start(with_api(&fake)).await;
    rig.wait_stats("the first backfill", |s| s.backfills >= 1)
        .await;
    let start = now() - 120.0;
    let (p, q) = (id(start, "pppppp"), id(start + 2.0, "qqqqqq"));
    let mut person = object(&p, "driveway", "person", start);
    let car = object(&q, "driveway", "car", start + 2.0);
    let mark = rig.stats().messages;
    rig.publish("events", message("new", &person)).await;
    rig.publish("events", message("new", &car)).await;
    person["entered_zones"] = json!(["porch"]);
    person["sub_label"] = json!(["Alice", 0.95]);
    rig.publish("events", message("update", &person)).await;
    rig.wait_stats("3 messages", |s| s.messages >= mark + 3)
        .await;

    // Jarvis stops (its store with it) between the objects' `new` and their `end`.
    rig.stop().await;
    rig.reopen_store().await;
    // While it is down the car leaves; only Frigate's database knows.
    fake.put_event(api_event(
        &q,
        "driveway",
        "car",
        start + 2.0,
        Some(start + 40.0),
    ));
    fake.put_event(api_event(&p, "driveway", "person", start, None));

    rig.spawn().await;
    rig.wait_stats("the backfill after the restart", |s| s.backfills >= 1)
        .await;
    let mark = rig.stats().messages;
    person["entered_zones"] = json!(["porch", "steps"]);
    rig.publish("events", message("update", &person)).await;
    person["end_time"] = json!(start + 50.0);
    rig.publish("events", message("end", &person)).await;
    rig.settle(mark, 2).await;

    assert_eq!(rig.objects().await.len(), 2);
    let alice = rig.object(&p).await;
    assert_eq!(alice.sub_label.as_deref(), Some("Alice"));
    assert_eq!(
        alice.zones,
        ["porch", "street", "steps"],
        "MQTT, then the API, then MQTT"
    );
    assert_eq!(alice.end_ms, Some(((start + 50.0) * 1000.0).round() as i64));
    let car = rig.object(&q).await;
    assert_eq!(car.end_ms, Some(((start + 40.0) * 1000.0).round() as i64));
    assert_eq!(car.label.as_deref(), Some("car"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_counted_and_the_subscriber_keeps_going() {
    let mut rig = Rig::start(FrigateConfig::default()).await;
    let start = now() - 30.0;
    let good = object(&id(start, "g00d00"), "driveway", "person", start);
    let full = message("new", &good);
    let mut sent = 0u64;
    let mark = rig.stats().messages;
    // Not Frigate's: each is counted as a bad payload and skipped.
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("events", b"{not json".to_vec()),
        ("events", full.as_bytes()[..full.len() / 2].to_vec()),
        ("events", b"[1, 2, 3]".to_vec()),
        ("events", br#"{"type": "new"}"#.to_vec()),
        (
            "events",
            json!({"type": "new", "after": {"id": "../../etc/passwd", "start_time": start}})
                .to_string()
                .into_bytes(),
        ),
        ("events", vec![0xff, 0xfe, 0x00, 0x7b]),
        ("events", b"".to_vec()),
        ("reviews", b"{\"type\": \"new\", \"after\": ".to_vec()),
        ("tracked_object_update", b"{".to_vec()),
        ("available", b"maybe".to_vec()),
        ("stats", b"<html>".to_vec()),
    ];
    let bad_count = bad.len() as u64;
    for (topic, payload) in bad {
        rig.publish(topic, payload).await;
        sent += 1;
    }
    // A camera and a label Frigate never reported: stored all the same.
    let stranger = object(&id(start + 1.0, "5tr4ng"), "attic", "zebra", start + 1.0);
    rig.publish("events", message("new", &stranger)).await;
    // An `end` without its `new`: a complete row.
    let mut lonely = object(&id(start + 2.0, "10ne1y"), "garden", "cat", start + 2.0);
    lonely["end_time"] = json!(start + 9.0);
    rig.publish("events", message("end", &lonely)).await;
    // The same event twice: one row, one arrival.
    let twice = object(
        &id(start + 3.0, "tw1ce0"),
        "driveway",
        "person",
        start + 3.0,
    );
    rig.publish("events", message("new", &twice)).await;
    rig.publish("events", message("new", &twice)).await;
    // A clock far ahead, and a message from years ago: refused by the store, counted.
    let ahead = now() + 86_400.0;
    rig.publish(
        "events",
        message(
            "new",
            &object(&id(ahead, "fu7ure"), "driveway", "person", ahead),
        ),
    )
    .await;
    let ancient = now() - 3.0 * 365.0 * 86_400.0;
    rig.publish(
        "events",
        message(
            "new",
            &object(&id(ancient, "an71qu"), "driveway", "person", ancient),
        ),
    )
    .await;
    // Counts topics carry words too: not a problem.
    rig.publish("driveway/motion", "OFF").await;
    // And the good one, after all that.
    rig.publish("events", full.clone()).await;
    sent += 8;
    rig.settle(mark, sent).await;

    let stats = rig.stats();
    assert_eq!(stats.bad_payloads, bad_count, "{stats:#?}");
    assert_eq!(stats.rejected, 2, "{stats:#?}");
    assert_eq!(stats.objects, 5, "{stats:#?}");
    let keys: Vec<String> = rig.objects().await.into_iter().map(|e| e.key).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    for expected in ["5tr4ng", "10ne1y", "tw1ce0", "g00d00"] {
        assert!(
            keys.iter().any(|k| k.ends_with(expected)),
            "{expected} in {keys:?}"
        );
    }
    let lonely = rig.object(&id(start + 2.0, "10ne1y")).await;
    assert_eq!(lonely.end_ms, Some(((start + 9.0) * 1000.0).round() as i64));
    let zebra = rig.object(&id(start + 1.0, "5tr4ng")).await;
    assert_eq!(
        (zebra.camera.as_deref(), zebra.label.as_deref()),
        (Some("attic"), Some("zebra"))
    );
    let mut announced = Vec::new();
    while let Ok(event) = rig.arrivals.try_recv() {
        announced.push(event.key);
    }
    assert_eq!(
        announced,
        [
            format!("frigate:{}", id(start + 3.0, "tw1ce0")),
            format!("frigate:{}", id(start, "g00d00"))
        ],
        "no arrival for the zebra, the refused times, or the second delivery"
    );
    assert_eq!(
        rig.status.borrow().availability,
        Availability::Unknown,
        "`maybe` changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frigates_own_broker_with_credentials() {
    let broker = Mosquitto::with_user("frigate", "broker-pw").await;
    let port = broker.port;
    // [mqtt] points elsewhere (a port nobody listens on); [frigate.mqtt] names Frigate's broker.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = FrigateConfig {
        mqtt: Some(FrigateMqttConfig {
            host: "127.0.0.1".into(),
            port,
            username: Some("frigate".into()),
            password: Some(Secret::new("broker-pw")),
            ..FrigateMqttConfig::default()
        }),
        ..FrigateConfig::default()
    };
    let mqtt = MqttConfig {
        host: "127.0.0.1".into(),
        port: dead,
        ..MqttConfig::default()
    };
    let frigate = Observer::connect_as(
        port,
        &["jarvis-test/unused"],
        Some(("frigate", "broker-pw")),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&events_config(&dir));
    let (status_tx, _status) = watch::channel(FrigateStatus::default());
    let (arrivals, _) = broadcast::channel(4);
    let token = CancellationToken::new();
    let handle = frigate::spawn(
        &config,
        &mqtt,
        store.clone(),
        Arc::new(status_tx),
        arrivals,
        token.clone(),
    )
    .unwrap();
    let mut stats = handle.watch_stats();
    tokio::time::timeout(LIMIT, stats.wait_for(|s| s.subscribed))
        .await
        .unwrap()
        .unwrap();
    let start = now() - 5.0;
    frigate
        .publish(
            "frigate/events",
            message(
                "new",
                &object(&id(start, "own000"), "gate", "person", start),
            ),
            false,
        )
        .await;
    tokio::time::timeout(LIMIT, stats.wait_for(|s| s.objects == 1))
        .await
        .unwrap()
        .unwrap();
    token.cancel();
    tokio::time::timeout(LIMIT, handle.join()).await.unwrap();
    store.flush().await.unwrap();
    assert_eq!(store.count(Query::objects()).await.unwrap(), 1);
    drop(broker);
}

#[test]
fn the_password_comes_from_the_environment_and_never_shows() {
    let config = Config::parse(
        "[frigate]\nenabled = true\nurl = \"https://frigate:8971\"\nusername = \"jarvis\"\n",
        std::path::Path::new("t.toml"),
    )
    .unwrap();
    config.validate(std::path::Path::new("t.toml")).unwrap();
    let config = config.with_overrides(&Overrides {
        frigate_password: Some(Secret::new("from-the-env")),
        ..Overrides::default()
    });
    assert_eq!(
        config.frigate.password.as_ref().map(Secret::expose),
        Some("from-the-env")
    );
    assert!(!format!("{config:?}").contains("from-the-env"));
    // Without it, a user is a start-up error naming the variable.
    let mut without = config.frigate.clone();
    without.password = None;
    let err = FrigateSettings::from_config(&without, &MqttConfig::default()).unwrap_err();
    assert!(err.to_string().contains("JARVIS_FRIGATE_PASSWORD"), "{err}");
    let settings = FrigateSettings::from_config(&config.frigate, &MqttConfig::default()).unwrap();
    assert!(!format!("{settings:?}").contains("from-the-env"));
    assert_eq!(
        settings.broker.client_id, "jarvis-frigate",
        "not the publisher's client id"
    );
}
