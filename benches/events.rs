//! The event store at a million events. Prints figures; asserts nothing about time. Run with
//! `cargo bench --bench events` (or `scripts/bench.sh events`).
//!
//! 1. Fill: a million events through `EventStore::record` (the path the Frigate subscriber,
//!    `/v1/event` and the brain use), in time order over the last 30 days: 8 cameras with
//!    their zones, persons, cars, dogs and cats, faces and plates on a few percent, GenAI
//!    descriptions on some, long stationary objects and a few never ended; Frigate review
//!    items, Home Assistant events and Jarvis commands beside them. Then the rate, and the
//!    size of the database per million events.
//! 2. Questions, in a fresh process that only opens the store (so its peak RSS is the store's
//!    and not the fill's): p50/p99 of the questions the brain and the entities ask, each with
//!    its `EXPLAIN QUERY PLAN` (a `SCAN events` that is not a partial index reads the table).
//!
//! `JARVIS_BENCH_EVENTS` sets the number of events (default 1 000 000);
//! `JARVIS_BENCH_EVENTS_DB` keeps the database at that path (filled once, reused).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    missing_docs,
    unreachable_pub
)]

#[allow(dead_code)]
mod common;

use common::status_kb;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jarvis::events::model::{KIND_COMMAND, KIND_OBJECT, KIND_REVIEW};
use jarvis::events::{Event, EventStore, EventsConfig, Query, Source};
use serde_json::json;

/// Set in the question process: the database to ask.
const QUERY_ENV: &str = "JARVIS_BENCH_EVENTS_QUERY";
const WYOMING_ENV: &str = "JARVIS_BENCH_EVENTS_WYOMING";
const DEFAULT_EVENTS: u64 = 1_000_000;
/// Timed runs per question (after as many untimed ones).
const RUNS: usize = 400;
const DAY_MS: i64 = 86_400_000;

const CAMERAS: [(&str, &[&str]); 8] = [
    ("front_door", &["porch", "steps"]),
    ("driveway", &["driveway", "street"]),
    ("backyard", &["lawn", "patio"]),
    ("garage", &["garage"]),
    ("porch", &["porch"]),
    ("side_gate", &["gate", "path"]),
    ("street", &["street", "sidewalk"]),
    ("living_room", &["sofa"]),
];
const FACES: [&str; 4] = ["Alice", "Bob", "Carol", "Dave"];
const PLATES: [&str; 3] = ["AB123CD", "XY987ZT", "JV2026"];

/// splitmix64: a small, fixed generator, so every run stores the same events.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// 0..n
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent` / 100 (tenths allowed: 0.5).
    fn chance(&mut self, percent: f64) -> bool {
        (self.below(100_000) as f64) < percent * 1000.0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn generate(i: u64, start_ms: i64, now: i64, rng: &mut Rng) -> Event {
    let roll = rng.below(100);
    if roll < 3 {
        let kind = *rng.pick(&["door", "arrival", "alarm", "motion", "doorbell"]);
        let area = *rng.pick(&["Hall", "Kitchen", "Garden", "Garage"]);
        return Event {
            entity: Some(format!("binary_sensor.{}_{kind}", area.to_lowercase())),
            area: Some(area.into()),
            text: Some(format!("{area} {kind}")),
            end_ms: Some(start_ms + 1000 * rng.below(120) as i64).filter(|&e| e <= now),
            attributes: Some(json!({"state": "on"})),
            ..Event::new(format!("ha:bench-{i}"), Source::Ha, kind, start_ms)
        };
    }
    if roll < 4 {
        return Event {
            text: Some("status of node pve".into()),
            description: Some("pve is online, CPU 4 %, memory 31 %.".into()),
            end_ms: Some(start_ms),
            attributes: Some(json!({"channel": "voice", "intent": "NodeStatus"})),
            ..Event::new(
                format!("jarvis:{start_ms}-{i}"),
                Source::Jarvis,
                KIND_COMMAND,
                start_ms,
            )
        };
    }
    let (camera, zones) = *rng.pick(&CAMERAS);
    let mut entered = Vec::new();
    if rng.chance(60.0) {
        entered.push((*rng.pick(zones)).to_owned());
        if rng.chance(25.0) {
            entered.push((*rng.pick(zones)).to_owned());
        }
    }
    // Mostly seconds to a minute; some minutes; 3 % stationary for 20 minutes to 6 hours.
    let duration = match rng.below(100) {
        0..80 => 5_000 + rng.below(55_000) as i64,
        80..97 => 60_000 + rng.below(540_000) as i64,
        _ => 1_200_000 + rng.below(20_400_000) as i64,
    };
    let end = Some(start_ms + duration).filter(|&e| e <= now && !rng.chance(0.05));
    let id = format!(
        "{}.{:06}-{:06x}",
        start_ms / 1000,
        start_ms % 1000,
        rng.below(1 << 24)
    );
    if roll < 12 {
        return Event {
            camera: Some(camera.into()),
            zones: entered,
            end_ms: end,
            attributes: Some(
                json!({"severity": if rng.chance(30.0) { "alert" } else { "detection" }}),
            ),
            description: rng
                .chance(5.0)
                .then(|| "A person walks up the path and rings the bell.".to_owned()),
            ..Event::new(
                format!("frigate:review-{id}"),
                Source::Frigate,
                KIND_REVIEW,
                start_ms,
            )
        };
    }
    let label = match rng.below(100) {
        0..45 => "person",
        45..75 => "car",
        75..90 => "dog",
        _ => "cat",
    };
    let sub_label = match label {
        "person" if rng.chance(4.0) => Some((*rng.pick(&FACES)).to_owned()),
        "car" if rng.chance(3.0) => Some((*rng.pick(&PLATES)).to_owned()),
        _ => None,
    };
    Event {
        camera: Some(camera.into()),
        label: Some(label.into()),
        sub_label,
        zones: entered,
        score: Some(0.6 + rng.below(35) as f64 / 100.0),
        end_ms: end,
        has_snapshot: rng.chance(90.0),
        has_clip: rng.chance(70.0),
        description: rng
            .chance(5.0)
            .then(|| format!("A {label} moves across the {camera} view.")),
        attributes: Some(json!({
            "snapshot_url": format!("http://frigate.lan:5000/api/events/{id}/snapshot.jpg")
        })),
        ..Event::new(
            format!("frigate:{id}"),
            Source::Frigate,
            KIND_OBJECT,
            start_ms,
        )
    }
}

fn files_bytes(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(PathBuf::from(name)).map_or(0, |m| m.len())
        })
        .sum()
}

fn config(path: &Path) -> EventsConfig {
    EventsConfig {
        path: path.to_owned(),
        ..EventsConfig::default()
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    if let Some(path) = std::env::var_os(QUERY_ENV) {
        questions(Path::new(&path));
        return;
    }
    if let Some(path) = std::env::var_os(WYOMING_ENV) {
        over_wyoming(Path::new(&path));
        return;
    }
    let events: u64 = std::env::var("JARVIS_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_EVENTS);
    let kept = std::env::var_os("JARVIS_BENCH_EVENTS_DB").map(PathBuf::from);
    let dir = tempfile::tempdir().unwrap();
    let path = kept.clone().unwrap_or_else(|| dir.path().join("events.db"));
    if kept.as_ref().is_some_and(|p| p.exists()) {
        println!("reusing {}", path.display());
    } else {
        fill(&path, events);
    }
    println!();
    let status = Command::new(std::env::current_exe().unwrap())
        .env(QUERY_ENV, &path)
        .status()
        .unwrap();
    assert!(status.success());
    println!();
    let status = Command::new(std::env::current_exe().unwrap())
        .env(WYOMING_ENV, &path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The questions as a voice user asks them: a `transcript` to a running Jarvis whose event
/// memory is the filled store, `handled` back (connect included), in a fresh process.
fn over_wyoming(path: &Path) {
    use wyoming::asr::Transcript;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let events = config(path);
        let mut config = jarvis::config::Config::default();
        config.wyoming.addr = "127.0.0.1:0".parse().unwrap();
        config.wyoming.zeroconf.enabled = false;
        config.http.enabled = false;
        config.stt.enabled = false;
        config.tts.enabled = false;
        config.wake.enabled = false;
        config.audit.path = dir.path().join("audit.jsonl");
        config.events = events;
        let app = jarvis::app::spawn(config).await.unwrap();
        println!("== over Wyoming: transcript -> handled, connect included, a million events");
        for (question, goal) in [
            (
                "Was anyone at the front door in the last hour?",
                "goal <= 5 ms p99",
            ),
            ("How many people did the garage camera see today?", ""),
            ("When did Alice last arrive?", ""),
            ("Who is at the front door?", ""),
            ("What happened since 8 am?", "goal <= 20 ms p99"),
            ("What happened in the last 24 hours?", ""),
        ] {
            let reply = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let times = time(200, |_| {
                let addr = app.wyoming_addr;
                let reply = std::sync::Arc::clone(&reply);
                async move {
                    let mut client = wyoming::Client::connect(addr).await.unwrap();
                    client
                        .send(Transcript {
                            text: question.into(),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    match client.recv().await.unwrap() {
                        Some(wyoming::Event::Handled(h)) => {
                            *reply.lock().unwrap() = h.text.unwrap_or_default();
                        }
                        other => panic!("{question}: {other:?}"),
                    }
                }
            })
            .await;
            show(question, times, goal);
            println!("  {}", reply.lock().unwrap());
        }
        println!(
            "peak RSS of Jarvis (no speech models) with the store open (VmHWM): {:.1} MB",
            status_kb("VmHWM:") as f64 / 1024.0
        );
        app.shutdown.cancel();
        let _ = app.finished.await;
    });
}

fn fill(path: &Path, events: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    // Oldest a little inside the 30-day retention, newest a second ago, in time order.
    let first = now - 30 * DAY_MS + 600_000;
    let span = (now - 1000 - first) as f64;
    let started = Instant::now();
    runtime.block_on(async {
        let store = EventStore::open(&config(path));
        assert_eq!(store.problem(), None);
        let mut rng = Rng(0x5eed);
        for i in 0..events {
            let start = first + (span * i as f64 / events as f64) as i64 + rng.below(1000) as i64;
            store
                .record(generate(i, start.min(now - 1000), now, &mut rng))
                .await
                .unwrap();
        }
        store.flush().await.unwrap();
    });
    let took = started.elapsed();
    drop(runtime);
    let bytes = files_bytes(path);
    println!("== fill: {events} events through EventStore::record (30 days, 8 cameras)");
    println!(
        "fill rate:               {:.0} events/s ({:.1} s)",
        events as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    );
    println!(
        "database size:           {:.1} MB ({:.1} MB per million events, {:.0} B per event)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 * 1e6 / events as f64,
        bytes as f64 / events as f64
    );
    println!(
        "peak RSS while filling:  {:.1} MB (the queue of events waiting for the writer)",
        status_kb("VmHWM:") as f64 / 1024.0
    );
}

/// The p50 and p99 of `runs` timed calls of `ask` (after as many untimed ones).
async fn time<F, Fut>(runs: usize, mut ask: F) -> (Duration, Duration)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..runs {
        ask(i).await;
    }
    let mut took = Vec::with_capacity(runs);
    for i in 0..runs {
        let started = Instant::now();
        ask(i).await;
        took.push(started.elapsed());
    }
    took.sort();
    (took[runs / 2], took[(runs * 99 / 100).min(runs - 1)])
}

fn show(name: &str, (p50, p99): (Duration, Duration), goal: &str) {
    println!(
        "{name:<52} p50 {:>7.3} ms  p99 {:>7.3} ms  {goal}",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}

async fn plan(store: &EventStore, name: &str, query: Query, counting: bool) {
    let plan = store.explain(query, counting).await.unwrap();
    let partial = ["events_faces", "events_open"];
    let scans = plan
        .iter()
        .any(|l| l.starts_with("SCAN events") && !partial.iter().any(|p| l.ends_with(p)));
    println!(
        "  {name}{}: {}",
        if scans { " [SCANS THE TABLE]" } else { "" },
        plan.join(" | ")
    );
}

fn questions(path: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let opened = Instant::now();
        let store = EventStore::open(&config(path));
        assert_eq!(store.problem(), None);
        let open_took = opened.elapsed();
        let total = store.count(Query::default()).await.unwrap();
        let now = jiff::Timestamp::now();
        let now_ms = now.as_millisecond();
        let tz = jiff::tz::TimeZone::system();
        let local = now.to_zoned_datetime(tz);
        let midnight = local.start_of_day().unwrap().timestamp().as_millisecond();
        let eight = {
            let today = local.start_of_day().unwrap().timestamp().as_millisecond() + 8 * 3_600_000;
            if today > now_ms {
                today - DAY_MS
            } else {
                today
            }
        };
        let hour_ago = now_ms - 3_600_000;
        println!(
            "== questions: {total} events, {:.1} MB; opened in {:.1} ms; {RUNS} timed runs each",
            files_bytes(path) as f64 / 1e6,
            open_took.as_secs_f64() * 1e3
        );

        let camera = |i: usize| CAMERAS[i % CAMERAS.len()].0.to_owned();
        let zone = |i: usize| ["porch", "driveway", "lawn", "street"][i % 4].to_owned();
        let front_door = |i: usize| Query {
            camera: Some(camera(i)),
            label: Some("person".into()),
            since_ms: Some(hour_ago),
            ..Query::objects()
        };
        let in_zone = |i: usize| Query {
            zone: Some(zone(i)),
            label: Some("person".into()),
            since_ms: Some(hour_ago),
            ..Query::objects()
        };
        let s = &store;
        show(
            "camera, person, last hour: count",
            time(RUNS, |i| async move {
                s.count(front_door(i)).await.unwrap();
            })
            .await,
            "(goal ≤ 5 ms p99)",
        );
        show(
            "camera, person, last hour: latest 3",
            time(RUNS, |i| async move {
                s.query(Query {
                    limit: 3,
                    ..front_door(i)
                })
                .await
                .unwrap();
            })
            .await,
            "(goal ≤ 5 ms p99)",
        );
        show(
            "zone, person, last hour: count",
            time(RUNS, |i| async move {
                s.count(in_zone(i)).await.unwrap();
            })
            .await,
            "(goal ≤ 5 ms p99)",
        );
        show(
            "zone, person, last hour: latest 3",
            time(RUNS, |i| async move {
                s.query(Query {
                    limit: 3,
                    ..in_zone(i)
                })
                .await
                .unwrap();
            })
            .await,
            "(goal ≤ 5 ms p99)",
        );
        let alice = Query {
            sub_label: Some("Alice".into()),
            limit: 1,
            ..Query::objects()
        };
        let a = &alice;
        show(
            "latest with sub-label Alice",
            time(RUNS, |_| async move {
                s.query(a.clone()).await.unwrap();
            })
            .await,
            "",
        );
        let today = |i: usize| Query {
            camera: Some(camera(i)),
            label: Some("person".into()),
            since_ms: Some(midnight),
            ..Query::objects()
        };
        show(
            "people on a camera since local midnight: count",
            time(RUNS, |i| async move {
                s.count(today(i)).await.unwrap();
            })
            .await,
            "",
        );
        let summary_parts = [
            Query {
                since_ms: Some(eight),
                limit: 200,
                ..Query::objects()
            },
            Query {
                source: Some(Source::Ha),
                since_ms: Some(eight),
                limit: 200,
                ..Query::default()
            },
            Query {
                source: Some(Source::Jarvis),
                kind: Some(KIND_COMMAND.into()),
                since_ms: Some(eight),
                limit: 200,
                ..Query::default()
            },
        ];
        let parts = &summary_parts;
        show(
            "since 8 am: objects, HA events, commands, newest 200",
            time(RUNS, |_| async move {
                let mut all = Vec::new();
                for part in parts {
                    all.extend(s.query(part.clone()).await.unwrap());
                }
                all.sort_by_key(|e| std::cmp::Reverse(e.start_ms));
                all.truncate(200);
                assert_eq!(all.len(), 200);
            })
            .await,
            "(goal ≤ 20 ms p99)",
        );
        show(
            "a camera's entity summary (4 questions)",
            time(RUNS, |i| async move {
                let person = Query {
                    camera: Some(camera(i)),
                    label: Some("person".into()),
                    ..Query::objects()
                };
                s.query(Query {
                    limit: 1,
                    ..person.clone()
                })
                .await
                .unwrap();
                s.count(Query {
                    since_ms: Some(midnight),
                    ..person.clone()
                })
                .await
                .unwrap();
                s.query(Query {
                    has_sub_label: true,
                    limit: 1,
                    ..person
                })
                .await
                .unwrap();
                s.query(Query {
                    source: Some(Source::Frigate),
                    camera: Some(camera(i)),
                    has_description: true,
                    limit: 1,
                    ..Query::default()
                })
                .await
                .unwrap();
            })
            .await,
            "(per camera per poll)",
        );

        println!("\nplans (EXPLAIN QUERY PLAN):");
        plan(s, "camera, last hour, count", front_door(0), true).await;
        plan(
            s,
            "camera, last hour, latest 3",
            Query {
                limit: 3,
                ..front_door(0)
            },
            false,
        )
        .await;
        plan(s, "zone, last hour, count", in_zone(0), true).await;
        plan(s, "Alice", alice.clone(), false).await;
        plan(s, "people since midnight", today(0), true).await;
        for (name, part) in [
            "since 8 am, objects",
            "since 8 am, HA",
            "since 8 am, commands",
        ]
        .iter()
        .zip(&summary_parts)
        {
            plan(s, name, part.clone(), false).await;
        }

        println!(
            "\npeak RSS with the store open (VmHWM): {:.1} MB (VmRSS now {:.1} MB)",
            status_kb("VmHWM:") as f64 / 1024.0,
            status_kb("VmRSS:") as f64 / 1024.0
        );
    });
}
