//! Frigate ingestion against a real Mosquitto broker and a real event store. Prints figures;
//! asserts nothing about time. Run with `cargo bench --bench frigate` (or
//! `scripts/bench.sh frigate`).
//!
//! 1. Parsing and converting one `frigate/events` message (a ~1.3 KB payload as §3.1 of the
//!    integration notes shows it, with `before` and `after`), on this thread alone.
//! 2. End to end: 2 000 tracked objects, each `new`, 8 `update`s and `end` (20 000 messages,
//!    interleaved as Frigate sends them for many objects at once), published to Mosquitto on
//!    loopback as fast as the subscriber takes them, received by the subscriber and committed
//!    by the store. The rate is messages from the first publish to the last commit; the goal
//!    is 5 000 events/s on a 2-core machine. Mosquitto drops what it has queued beyond
//!    `max_queued_messages` (1000) for a subscriber, so the publisher keeps at most
//!    [`WINDOW`] messages ahead of what the subscriber has handled (Frigate itself sends a few
//!    hundred a second at most). Published at QoS 1, then at QoS 0 as Frigate publishes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs,
    unreachable_pub
)]

#[allow(dead_code)]
#[path = "../tests/common/mosquitto.rs"]
mod mosquitto;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jarvis::events::{EventStore, EventsConfig, Query};
use jarvis::frigate::wire::EventMessage;
use jarvis::frigate::{self, FrigateConfig, FrigateStatus};
use jarvis::mqtt::MqttConfig;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Upper bound of any wait (used by the broker harness).
const LIMIT: Duration = Duration::from_secs(60);
const OBJECTS: usize = 2000;
const UPDATES: usize = 8;
/// Objects in flight at once (a busy Frigate with a dozen cameras).
const CONCURRENT: usize = 50;
/// Most messages published ahead of the subscriber (under Mosquitto's queue limit).
const WINDOW: u64 = 600;

fn now() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

fn object(id: &str, camera: &str, start: f64, step: usize, end: bool) -> Value {
    let zones: Vec<&str> = ["street", "driveway", "porch", "steps"]
        .into_iter()
        .take(step.min(4))
        .collect();
    json!({
        "id": id, "camera": camera, "label": "person",
        "sub_label": if step > 4 { json!(["Alice", 0.93]) } else { Value::Null },
        "score": 0.7 + (step as f64) * 0.02, "top_score": 0.7 + (step as f64) * 0.02,
        "false_positive": false, "start_time": start,
        "end_time": if end { json!(start + 20.0) } else { Value::Null },
        "current_zones": zones.last().map(|z| vec![*z]).unwrap_or_default(),
        "entered_zones": zones, "has_snapshot": step > 1, "has_clip": step > 1,
        "stationary": false, "active": true, "box": [310, 120, 402, 380],
        "frame_time": start + step as f64 * 0.2, "area": 23_920, "ratio": 0.35,
        "region": [0, 0, 320, 320], "motionless_count": 0, "position_changes": step,
        "attributes": [], "current_attributes": [], "thumbnail": null,
        "snapshot": {"frame_time": start, "box": [310, 120, 402, 380], "area": 23_920,
                     "region": [0, 0, 320, 320], "score": 0.83, "attributes": []}
    })
}

fn message(kind: &str, after: &Value) -> Vec<u8> {
    let mut before = after.clone();
    before["score"] = json!(0.6);
    json!({"type": kind, "before": before, "after": after})
        .to_string()
        .into_bytes()
}

/// Every message of the run, in the order Frigate would send them: `CONCURRENT` objects at a
/// time, their updates interleaved.
fn workload(run: usize) -> Vec<Vec<u8>> {
    let base = now() - 3600.0;
    let mut messages = Vec::with_capacity(OBJECTS * (UPDATES + 2));
    for group in (0..OBJECTS).collect::<Vec<_>>().chunks(CONCURRENT) {
        for step in 0..UPDATES + 2 {
            for &n in group {
                let start = base + n as f64;
                let id = format!("{start}-r{run}o{n:05}");
                let camera = ["driveway", "porch", "garden", "garage"][n % 4];
                let (kind, end) = match step {
                    0 => ("new", false),
                    s if s == UPDATES + 1 => ("end", true),
                    _ => ("update", false),
                };
                messages.push(message(kind, &object(&id, camera, start, step, end)));
            }
        }
    }
    messages
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    // 1. Parsing alone.
    let sample = message(
        "update",
        &object("1727013298.41-ab12cd", "driveway", now(), 5, false),
    );
    let context =
        jarvis::frigate::wire::Context::new(Some(&"http://frigate:5000".parse().unwrap()));
    let rounds = 20_000u32;
    let started = Instant::now();
    for _ in 0..rounds {
        let parsed: EventMessage = serde_json::from_slice(&sample).unwrap();
        std::hint::black_box(parsed.after.to_event(&context).unwrap());
    }
    let per = started.elapsed() / rounds;
    println!(
        "frigate: parse + convert one {}-byte events message: {:.1} µs",
        sample.len(),
        per.as_secs_f64() * 1e6
    );

    // 2. End to end.
    let broker = mosquitto::Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&EventsConfig {
        path: dir.path().join("events.db"),
        ..EventsConfig::default()
    });
    let (status, _status_rx) = watch::channel(FrigateStatus::default());
    let (arrivals, _arrivals_rx) = broadcast::channel(1024);
    let token = CancellationToken::new();
    let config = FrigateConfig {
        enabled: true,
        ..FrigateConfig::default()
    };
    let mqtt = MqttConfig {
        host: "127.0.0.1".into(),
        port: broker.port,
        ..MqttConfig::default()
    };
    let handle = frigate::spawn(
        &config,
        &mqtt,
        store.clone(),
        Arc::new(status),
        arrivals,
        token.clone(),
    )
    .unwrap();
    let mut stats = handle.watch_stats();
    tokio::time::timeout(LIMIT, stats.wait_for(|s| s.subscribed))
        .await
        .unwrap()
        .unwrap();
    let (publisher, publisher_task) = publisher(broker.port).await;
    let total = OBJECTS * (UPDATES + 2);
    println!(
        "frigate end to end: {OBJECTS} tracked objects x (new + {UPDATES} updates + end) = \
         {total} messages through mosquitto on loopback into the SQLite store"
    );

    for (run, qos) in [(0, QoS::AtLeastOnce), (1, QoS::AtMostOnce)] {
        let messages = workload(run);
        let bytes: usize = messages.iter().map(Vec::len).sum();
        let before = handle.stats();
        let rows_before = store.count(Query::objects()).await.unwrap();
        let started = Instant::now();
        let mut ahead_waits = 0u32;
        for (i, payload) in messages.into_iter().enumerate() {
            let sent = before.messages + i as u64;
            if sent >= stats.borrow().messages + WINDOW {
                ahead_waits += 1;
                let caught_up = sent - WINDOW / 2;
                tokio::time::timeout(LIMIT, stats.wait_for(|s| s.messages >= caught_up))
                    .await
                    .expect("the subscriber keeps up")
                    .unwrap();
            }
            publisher
                .publish("frigate/events", qos, false, payload)
                .await
                .unwrap();
        }
        let published = started.elapsed();
        let target = before.messages + total as u64;
        let delivered = tokio::time::timeout(LIMIT, stats.wait_for(|s| s.messages >= target)).await;
        if delivered.is_err() {
            // QoS 0 may be dropped by the broker under load: report what arrived.
            println!("  (not every message arrived within {LIMIT:?})");
        }
        store.flush().await.unwrap();
        let elapsed = started.elapsed();
        let after = handle.stats();
        let handled = after.messages - before.messages;
        let rows = store.count(Query::objects()).await.unwrap() - rows_before;
        println!(
            "  {qos:?}: {handled} of {total} messages ({:.1} MB) stored in {:.2} s = {:.0} events/s \
             (publisher done after {:.2} s, held back {ahead_waits} times); {rows} rows; bad {}, \
             rejected {}, store errors {}",
            bytes as f64 / 1e6,
            elapsed.as_secs_f64(),
            handled as f64 / elapsed.as_secs_f64(),
            published.as_secs_f64(),
            after.bad_payloads - before.bad_payloads,
            after.rejected - before.rejected,
            after.store_errors - before.store_errors,
        );
    }
    token.cancel();
    tokio::time::timeout(LIMIT, handle.join()).await.unwrap();
    publisher_task.abort();
    drop(broker);
}

/// A client publishing as Frigate, on its own task, with a deep in-flight window.
async fn publisher(port: u16) -> (AsyncClient, tokio::task::JoinHandle<()>) {
    let mut options = MqttOptions::new("bench-frigate", "127.0.0.1", port);
    options
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_inflight(1000)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut connected_tx = Some(connected_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(LIMIT, connected)
        .await
        .unwrap()
        .unwrap();
    (client, task)
}
