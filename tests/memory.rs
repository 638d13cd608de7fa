//! Questions about the event memory, answered from a store filled with known events under a
//! fixed clock: "was anyone at the front door in the last hour", "when did Alice last arrive",
//! "what happened while I was away", and what happens when Frigate or the store is down.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use jarvis::brain::{Brain, Channel, Command, Memory, Response};
use jarvis::events::model::{KIND_ACTION, KIND_OBJECT};
use jarvis::events::{Event, EventStore, EventsConfig, Source};
use jarvis::frigate::{Availability, FrigateLink, FrigateStatus};
use jiff::tz::TimeZone;
use tokio::sync::watch;

fn tz() -> TimeZone {
    TimeZone::get("Europe/Berlin").unwrap()
}

/// Yesterday (in Berlin) at `h:m`; the fixed "now" is yesterday at 10:30, so every event is in
/// the real past too (the store refuses events from the future).
fn at(days_back: i64, h: i8, m: i8) -> i64 {
    use jiff::ToSpan;
    let today = jiff::Timestamp::now().to_zoned_datetime(tz()).date();
    today
        .checked_sub((1 + days_back).days())
        .unwrap()
        .at(h, m, 0, 0)
        .to_zoned_datetime(tz())
        .unwrap()
        .timestamp()
        .as_millisecond()
}

fn now() -> i64 {
    at(0, 10, 30)
}

fn object(id: &str, camera: &str, label: &str, start: i64, end: Option<i64>) -> Event {
    Event {
        camera: Some(camera.into()),
        label: Some(label.into()),
        score: Some(0.8),
        end_ms: end,
        ..Event::new(format!("frigate:{id}"), Source::Frigate, KIND_OBJECT, start)
    }
}

fn ha(id: &str, kind: &str, text: Option<&str>, start: i64) -> Event {
    Event {
        text: text.map(str::to_owned),
        end_ms: Some(start),
        ..Event::new(format!("ha:{id}"), Source::Ha, kind, start)
    }
}

/// The day: Alice at the front door at 9:40, a stranger at 10:18, three people and a dog on
/// the garage camera, a car in the driveway last night, someone in the back yard now, the
/// front door opened at 9:39, away from 8:00 to 10:00, nextcloud restarted at 9:00.
fn known_events() -> Vec<Event> {
    let min = 60_000;
    vec![
        Event {
            sub_label: Some("Alice".into()),
            zones: vec!["porch".into()],
            ..object(
                "a1",
                "front_door",
                "person",
                at(0, 9, 40),
                Some(at(0, 9, 41)),
            )
        },
        object(
            "p1",
            "front_door",
            "person",
            at(0, 10, 18),
            Some(at(0, 10, 19)),
        ),
        object("c1", "driveway", "car", at(1, 23, 10), Some(at(1, 23, 15))),
        object("p2", "driveway", "person", at(0, 7, 50), Some(at(0, 7, 52))),
        // A zone named like its camera.
        Event {
            zones: vec!["garage".into()],
            ..object("g1", "garage", "person", at(0, 8, 10), Some(at(0, 8, 11)))
        },
        // Its end never came (Frigate was down): not "there now", not one of today's.
        object("stale", "driveway", "person", at(2, 9, 0), None),
        object("g2", "garage", "person", at(0, 9, 0), Some(at(0, 9, 2))),
        object(
            "g3",
            "garage",
            "person",
            at(0, 10, 0),
            Some(at(0, 10, 0) + min),
        ),
        object("d1", "garage", "dog", at(0, 9, 30), Some(at(0, 9, 31))),
        object("b1", "back_yard", "person", at(0, 10, 25), None),
        ha("door1", "door", Some("Front door opened"), at(0, 9, 39)),
        ha("away1", "away", Some("Everyone left"), at(0, 8, 0)),
        ha("home1", "home", Some("Alice came home"), at(0, 10, 0)),
        Event {
            description: Some("Restarted nextcloud.".into()),
            end_ms: Some(at(0, 9, 0)),
            ..Event::new("jarvis:1", Source::Jarvis, KIND_ACTION, at(0, 9, 0))
        },
    ]
}

struct Lab {
    brain: Brain,
    frigate: watch::Sender<FrigateStatus>,
    _dir: tempfile::TempDir,
}

async fn lab_with(events: Vec<Event>, frigate_enabled: bool) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&EventsConfig {
        path: dir.path().join("events.db"),
        ..EventsConfig::default()
    });
    for event in events {
        store.record(event).await.unwrap();
    }
    store.flush().await.unwrap();
    let (frigate, link) = FrigateLink::channel();
    frigate.send_modify(|s| {
        s.availability = Availability::Online;
        s.version = Some("0.16.0".into());
        s.cameras = ["front_door", "driveway", "garage", "back_yard"]
            .map(String::from)
            .into();
    });
    let mut config = common::test_config();
    config.audit.path = dir.path().join("audit.jsonl");
    let memory = Memory::new(store, link, frigate_enabled, tz()).at_fixed_time(now());
    let brain = Brain::new(&config, None).unwrap().with_memory(memory);
    Lab {
        brain,
        frigate,
        _dir: dir,
    }
}

async fn lab() -> Lab {
    lab_with(known_events(), true).await
}

impl Lab {
    async fn ask(&self, text: &str) -> Response {
        self.brain
            .command(Command {
                text: text.into(),
                channel: Channel::Http,
                client: "test".into(),
                conversation: None,
                approval: None,
            })
            .await
    }

    async fn reply(&self, text: &str) -> String {
        let r = self.ask(text).await;
        assert!(r.handled, "{text}: not handled: {}", r.reply);
        r.reply
    }
}

#[tokio::test]
async fn the_questions_from_the_issue_are_answered_from_memory() {
    let lab = lab().await;
    let cases = [
        (
            "Was anyone at the front door in the last hour?",
            "Yes: a person at the front door 12 minutes ago, and Alice 50 minutes ago.",
        ),
        (
            "When did someone last come up the driveway?",
            "The last person at the driveway was at 7:50 am.",
        ),
        (
            "How many people did the garage camera see today?",
            "I counted 3 people at the garage today.",
        ),
        (
            "Who is at the front door?",
            "Nobody at the front door right now. The last person there was 12 minutes ago.",
        ),
        (
            "Who is at the driveway?",
            "Nobody at the driveway right now. The last person there was at 7:50 am.",
        ),
        (
            "Who is at the back yard?",
            "Someone is at the back yard; I don't recognise them.",
        ),
        (
            "When did Alice last arrive?",
            "Alice was last seen at the front door 50 minutes ago.",
        ),
        (
            "Were there any cars in the driveway last night?",
            "Yes: a car at the driveway yesterday at 11:10 pm.",
        ),
        (
            "What happened while I was away?",
            "While you were away (since 8 am): 2 people at the garage; 1 dog at the garage; \
             1 person at the front door (Alice); front door opened; and I acted once: \
             restarted nextcloud.",
        ),
        (
            "Is Frigate up?",
            "Frigate is up, version 0.16.0, with 4 cameras.",
        ),
    ];
    for (question, expected) in cases {
        assert_eq!(lab.reply(question).await, expected, "{question}");
    }
}

#[tokio::test]
async fn time_phrases_places_and_names_are_resolved() {
    let lab = lab().await;
    // "since 8 am": everything from 8:00 to now, the newest Frigate objects included.
    let since = lab.reply("What happened since 8 am?").await;
    assert!(
        since.starts_with("Since 8 am: 3 people at the garage;"),
        "{since}"
    );
    assert!(
        since.contains("2 people at the front door (Alice)"),
        "{since}"
    );
    assert!(since.contains("1 person at the back yard"), "{since}");
    assert!(since.contains("front door opened"), "{since}");
    // A zone, and a time at the start.
    assert_eq!(
        lab.reply("Was anyone on the porch today?").await,
        "Yes: Alice at the porch 50 minutes ago."
    );
    assert_eq!(
        lab.reply("today, was anyone on the porch").await,
        "Yes: Alice at the porch 50 minutes ago."
    );
    // Names as speech recognition writes them.
    assert_eq!(
        lab.reply("when did someone last come up the drive way")
            .await,
        "The last person at the drive way was at 7:50 am.".replace("drive way", "driveway")
    );
    assert_eq!(
        lab.reply("was anyone at the front door camera yesterday")
            .await,
        "No, nobody at the front door yesterday."
    );
    assert_eq!(
        lab.reply("how many dogs did the garage see this morning")
            .await,
        "I counted 1 dog at the garage this morning."
    );
    // Faces are counted too: Alice came once today (and never on the garage camera).
    assert_eq!(
        lab.reply("how many times did the front door camera see alice today")
            .await,
        "I saw Alice once at the front door today."
    );
    assert_eq!(
        lab.reply("is anyone at the back yard").await,
        "Yes, a person is at the back yard now."
    );
    // Unknown names are said back with what is known.
    let unknown = lab.reply("was anyone at the garden gate today").await;
    assert!(
        unknown.starts_with("I don't know a camera or zone called garden gate. The cameras are"),
        "{unknown}"
    );
    assert!(unknown.contains("front door"), "{unknown}");
    let nobody = lab.reply("when did Bob last arrive").await;
    assert!(
        nobody.contains("called bob") && nobody.contains("Alice"),
        "{nobody}"
    );
    // The intents and slots, as the API and Wyoming `recognize` show them.
    let r = lab
        .ask("were there any cars in the driveway last night")
        .await;
    assert_eq!(r.intent.as_deref(), Some("EventSeen"));
    assert_eq!(r.slots.get("place").map(String::as_str), Some("driveway"));
    assert_eq!(r.slots.get("when").map(String::as_str), Some("last night"));
    assert_eq!(r.slots.get("object").map(String::as_str), Some("any cars"));
}

#[tokio::test]
async fn frigate_down_is_said_and_questions_are_answered_from_memory() {
    let lab = lab().await;
    lab.frigate.send_modify(|s| {
        s.availability = Availability::Offline;
        s.since_ms = Some(at(0, 9, 12));
    });
    assert_eq!(
        lab.reply("Was anyone at the front door in the last hour?")
            .await,
        "Frigate has been offline since 9:12 am, so this is from memory. Yes: a person at the \
         front door 12 minutes ago, and Alice 50 minutes ago."
    );
    assert_eq!(
        lab.reply("is frigate running").await,
        "Frigate is offline. It went away at 9:12 am."
    );
    let off = lab_with(Vec::new(), false).await;
    assert!(
        off.reply("is frigate up")
            .await
            .starts_with("Frigate isn't set up")
    );
}

#[tokio::test]
async fn an_unusable_store_is_said_and_nothing_else_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    std::fs::write(&path, vec![0x42; 4096]).unwrap();
    let store = EventStore::open(&EventsConfig {
        path,
        ..EventsConfig::default()
    });
    assert!(!store.is_available());
    let (_, link) = FrigateLink::channel();
    let mut config = common::test_config();
    config.audit.path = dir.path().join("audit.jsonl");
    let brain =
        Brain::new(&config, None)
            .unwrap()
            .with_memory(Memory::new(store, link, true, tz()));
    let ask = |text: &'static str| {
        brain.command(Command {
            text: text.into(),
            channel: Channel::Voice,
            client: "test".into(),
            conversation: None,
            approval: None,
        })
    };
    let r = ask("was anyone at the front door today").await;
    assert!(
        r.reply.starts_with("My event memory is unavailable"),
        "{}",
        r.reply
    );
    // Other questions still work.
    let r = ask("are you there").await;
    assert!(r.handled && !r.reply.contains("memory"), "{}", r.reply);
}

#[tokio::test]
async fn jarvis_remembers_its_own_commands() {
    let lab = lab_with(Vec::new(), true).await;
    lab.reply("are you there").await;
    let memory = lab.brain.memory().unwrap();
    memory.store.flush().await.unwrap();
    let commands = memory
        .store
        .query(jarvis::events::Query {
            source: Some(Source::Jarvis),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(commands.len(), 1, "{commands:?}");
    assert_eq!(commands[0].text.as_deref(), Some("are you there"));
    assert_eq!(commands[0].kind, "command");
}

/// By voice: a `transcript` on the Wyoming port of a running Jarvis is answered from the event
/// store that the server opened (`events.path`), filled before it started.
#[tokio::test]
async fn a_question_over_wyoming_is_answered_from_the_store() {
    let mut config = common::test_config();
    let path = config.events.path.clone();
    config.events.timezone = "Europe/Berlin".into();
    {
        let store = EventStore::open(&EventsConfig {
            path: path.clone(),
            ..EventsConfig::default()
        });
        let ten_minutes_ago = jiff::Timestamp::now().as_millisecond() - 10 * 60_000;
        store
            .record(object("w1", "front_door", "person", ten_minutes_ago, None))
            .await
            .unwrap();
        store.flush().await.unwrap();
    }
    let app = common::spawn_app(config).await;
    let mut client = common::client(app.wyoming_addr).await;
    client
        .send(wyoming::asr::Transcript {
            text: "Was anyone at the front door in the last hour?".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    match common::recv(&mut client).await {
        Some(wyoming::Event::Handled(h)) => assert_eq!(
            h.text.as_deref(),
            Some("Yes: a person at the front door 10 minutes ago.")
        ),
        other => panic!("expected handled, got {other:?}"),
    }
    app.shutdown.cancel();
}

/// The whole path by voice: Frigate publishes on a real Mosquitto, the running Jarvis follows
/// it (`frigate.enabled`), and a question over Wyoming is answered from what arrived.
#[tokio::test]
async fn a_frigate_arrival_over_mqtt_is_answered_by_voice() {
    let broker = common::mosquitto::Mosquitto::start().await;
    let frigate = common::mosquitto::Observer::connect(broker.port, &["jarvis-test/unused"]).await;
    let mut config = common::test_config();
    config.frigate.enabled = true;
    config.mqtt.host = "127.0.0.1".into();
    config.mqtt.port = broker.port;
    let app = common::spawn_app(config).await;

    let start = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0 - 90.0;
    let after = serde_json::json!({
        "id": format!("{start:.2}-abc123"), "camera": "front_door", "label": "person",
        "sub_label": ["Alice", 0.93], "score": 0.8, "top_score": 0.84, "false_positive": false,
        "start_time": start, "end_time": null, "current_zones": ["porch"],
        "entered_zones": ["porch"], "has_snapshot": true, "has_clip": true,
        "stationary": false, "active": true
    });
    frigate.publish("frigate/available", "online", true).await;
    let message = serde_json::json!({"type": "new", "before": after, "after": after}).to_string();

    let ask = |text: &'static str| async move {
        let mut client = common::client(app.wyoming_addr).await;
        client
            .send(wyoming::asr::Transcript {
                text: text.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        match common::recv(&mut client).await {
            Some(wyoming::Event::Handled(h)) => h.text.unwrap_or_default(),
            other => panic!("expected handled, got {other:?}"),
        }
    };
    // Jarvis subscribes in the background: publish (again: the same event merges into one)
    // until the answer shows it arrived.
    let deadline = std::time::Instant::now() + common::LIMIT;
    let reply = loop {
        frigate
            .publish("frigate/events", message.clone(), false)
            .await;
        let reply = ask("Who is at the front door?").await;
        if reply == "Alice is at the front door." || std::time::Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(reply, "Alice is at the front door.");
    assert_eq!(ask("Is Frigate up?").await, "Frigate is up.");
    // `/health` shows Frigate and its subscriber's counters.
    let url = format!("http://{}/health", app.http_addr.unwrap());
    let health: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    let frigate = &health["frigate"];
    assert_eq!(frigate["enabled"], true, "{health}");
    assert_eq!(frigate["availability"], "online", "{health}");
    assert_eq!(frigate["subscriber"]["connected"], true, "{health}");
    assert!(
        frigate["subscriber"]["objects"].as_u64().unwrap() >= 1,
        "{health}"
    );
    assert_eq!(frigate["subscriber"]["bad_payloads"], 0, "{health}");
    app.shutdown.cancel();
}

#[tokio::test]
async fn a_face_seen_several_times_is_counted_in_words() {
    let alice = |id: &str, m: i8| Event {
        sub_label: Some("Alice".into()),
        ..object(
            id,
            "front_door",
            "person",
            at(0, 9, m),
            Some(at(0, 9, m + 1)),
        )
    };
    let lab = lab_with(
        vec![alice("a1", 10), alice("a2", 20), alice("a3", 30)],
        true,
    )
    .await;
    assert_eq!(
        lab.reply("how many times did the front door camera see alice today")
            .await,
        "I saw Alice 3 times at the front door today."
    );
}
