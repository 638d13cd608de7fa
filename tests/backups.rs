//! Backups and failed tasks end to end against the fake Proxmox API: the spoken questions over
//! `POST /v1/command` and Wyoming, `GET /v1/backups` and `GET /v1/tasks/failed`, a storage the
//! token may not read (403), and the cache.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::fake_proxmox::{FakeProxmox, unix_now};
use jarvis::app::App;
use jarvis::brain::{Brain, Channel, Command, Memory};
use jarvis::config::Secret;
use jarvis::events::{EventStore, EventsConfig};
use jarvis::frigate::FrigateLink;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

const KEY: &str = "backup-test-key";

async fn start(fake: &FakeProxmox) -> App {
    let mut config = common::test_config();
    config.proxmox = fake.config();
    config.http.api_key = Secret::new(KEY);
    common::spawn_app(config).await
}

fn url(app: &App, path: &str) -> String {
    format!("http://{}{path}", app.http_addr.unwrap())
}

async fn ask(app: &App, text: &str) -> Value {
    let response = reqwest::Client::new()
        .post(url(app, "/v1/command"))
        .header("x-api-key", KEY)
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn get(app: &App, path: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url(app, path));
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn reply(body: &Value) -> &str {
    body["reply"].as_str().unwrap()
}

async fn homelab() -> FakeProxmox {
    let fake = FakeProxmox::homelab().await;
    fake.homelab_backups(unix_now());
    fake
}

#[tokio::test]
async fn every_backup_and_task_question_is_answered_over_http() {
    let fake = homelab().await;
    let app = start(&fake).await;

    let body = ask(&app, "Did the last backup job succeed?").await;
    assert_eq!(body["intent"], "BackupJob");
    let text = reply(&body);
    assert!(text.starts_with("The last backup job, started "), "{text}");
    assert!(
        text.contains("failed for nextcloud: VM 104 is locked (snapshot)."),
        "{text}"
    );
    assert!(text.contains("2 other guests backed up fine."), "{text}");

    let body = ask(&app, "Did last night's backups succeed?").await;
    assert_eq!(body["intent"], "BackupJob");
    assert!(reply(&body).contains("failed for nextcloud"), "{body}");

    let body = ask(&app, "When was nextcloud last backed up?").await;
    assert_eq!(body["intent"], "LastBackup");
    assert_eq!(body["slots"]["guest"], "nextcloud");
    let text = reply(&body);
    assert!(
        text.starts_with("nextcloud was last backed up on "),
        "{text}"
    );
    assert!(text.contains("3 gigabytes on nas."), "{text}");
    assert!(
        text.contains("failed: VM 104 is locked (snapshot)."),
        "a newer attempt failed: {text}"
    );

    let body = ask(&app, "When was the media server last backed up?").await;
    let text = reply(&body);
    assert!(
        text.starts_with("media-server was last backed up"),
        "{text}"
    );
    assert!(
        text.contains("8 gigabytes on nas, with warnings."),
        "{text}"
    );

    let body = ask(&app, "Is frigate backed up?").await;
    assert_eq!(reply(&body), "I don't see any backup of frigate.");

    let body = ask(&app, "Which guests have no backup this week?").await;
    assert_eq!(body["intent"], "StaleBackups");
    assert_eq!(
        reply(&body),
        "2 guests have no backup in the last 7 days: frigate and pihole."
    );
    let body = ask(&app, "Which guests have no backup in the last two days?").await;
    assert_eq!(body["slots"]["days"], "2");
    assert_eq!(
        reply(&body),
        "3 guests have no backup in the last 2 days: frigate, nextcloud and pihole."
    );
    let body = ask(&app, "Which guests have no backup in the last 30 days?").await;
    assert_eq!(
        reply(&body),
        "1 guest has no backup in the last 30 days: frigate."
    );

    let body = ask(&app, "Did anything fail?").await;
    assert_eq!(body["intent"], "FailedTasks");
    let text = reply(&body);
    assert!(
        text.starts_with("2 tasks failed in the last 24 hours: "),
        "{text}"
    );
    assert!(
        text.contains("starting nextcloud on agent1 ") && text.contains("the backup job on agent1"),
        "{text}"
    );
    assert!(!text.contains("migrating"), "30 hours ago: {text}");
    let body = ask(&app, "What failed in the last 48 hours?").await;
    assert!(
        reply(&body).starts_with("4 tasks failed in the last 48 hours: "),
        "{body}"
    );
    assert!(
        reply(&body).contains("migrating media-server on pve"),
        "{body}"
    );
    let body = ask(&app, "Were there any failed tasks in the last three hours?").await;
    assert!(
        reply(&body).starts_with("1 task failed in the last 3 hours: starting nextcloud"),
        "{body}"
    );

    // A name that is nobody's is not for Jarvis.
    let body = ask(&app, "When was the kitchen light last backed up?").await;
    assert_eq!(body["handled"], false, "{body}");

    // One read of each list served every question (backups_ttl_secs).
    assert_eq!(fake.count("GET /cluster/tasks"), 1);
    assert_eq!(
        fake.count("GET /nodes/pve/tasks"),
        2,
        "the list and one log"
    );
    app.shutdown.cancel();
}

#[tokio::test]
async fn a_backup_question_over_wyoming() {
    let fake = homelab().await;
    let app = start(&fake).await;
    let mut client = common::client(app.wyoming_addr).await;
    client
        .send(wyoming::asr::Transcript {
            text: "Which guests have no backup this week?".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    match common::recv(&mut client).await {
        Some(wyoming::Event::Handled(handled)) => assert_eq!(
            handled.text.as_deref(),
            Some("2 guests have no backup in the last 7 days: frigate and pihole.")
        ),
        other => panic!("expected handled, got {other:?}"),
    }
    client
        .send(wyoming::asr::Transcript {
            text: "any failed tasks today".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    match common::recv(&mut client).await {
        Some(wyoming::Event::Handled(handled)) => {
            let text = handled.text.unwrap_or_default();
            assert!(
                text.starts_with("Nothing failed today") || text.contains("failed today: "),
                "{text}"
            );
        }
        other => panic!("expected handled, got {other:?}"),
    }
    app.shutdown.cancel();
}

#[tokio::test]
async fn the_json_endpoints_list_backups_and_failed_tasks_behind_the_key() {
    let fake = homelab().await;
    let app = start(&fake).await;
    assert_eq!(get(&app, "/v1/backups", None).await.0, 401);
    assert_eq!(get(&app, "/v1/tasks/failed", Some("wrong")).await.0, 401);

    let (status, body) = get(&app, "/v1/backups", Some(KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["max_age_days"], 7);
    assert_eq!(body["stale"], 2);
    let guests = body["guests"].as_array().unwrap();
    assert_eq!(guests.len(), 5, "templates are left out");
    let nextcloud = guests.iter().find(|g| g["vmid"] == 104).unwrap();
    assert_eq!(nextcloud["name"], "nextcloud");
    assert_eq!(nextcloud["node"], "agent1");
    assert_eq!(nextcloud["stale"], false);
    assert_eq!(nextcloud["last_backup"]["storage"], "nas");
    assert_eq!(nextcloud["last_backup"]["size"], 3u64 << 30);
    assert_eq!(nextcloud["last_attempt"]["result"], "failed");
    assert_eq!(
        nextcloud["last_attempt"]["message"],
        "VM 104 is locked (snapshot)"
    );
    let frigate = guests.iter().find(|g| g["vmid"] == 103).unwrap();
    assert_eq!(frigate["last_backup"], Value::Null);
    assert_eq!(frigate["stale"], true);
    let haos = guests.iter().find(|g| g["vmid"] == 100).unwrap();
    assert_eq!(haos["last_attempt"]["result"], "ok");
    assert_eq!(body["last_job"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(body["problems"], json!([]));

    let (status, body) = get(&app, "/v1/tasks/failed", Some(KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hours"], 24);
    let tasks = body["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "{body}");
    assert_eq!(tasks[0]["type"], "qmstart");
    assert_eq!(tasks[0]["node"], "agent1");
    assert_eq!(tasks[0]["id"], "104");
    assert_eq!(tasks[0]["user"], "root@pam");
    assert_eq!(tasks[0]["status"], "VM 104 is locked (snapshot)");
    assert!(tasks[0]["start"].as_i64().unwrap() < tasks[0]["end"].as_i64().unwrap());
    assert_eq!(tasks[1]["type"], "vzdump");
    let (_, body) = get(&app, "/v1/tasks/failed?hours=48", Some(KEY)).await;
    assert_eq!(body["tasks"].as_array().unwrap().len(), 4, "{body}");
    let (status, body) = get(&app, "/v1/tasks/failed?hours=lots", Some(KEY)).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "bad-hours");
    app.shutdown.cancel();
}

#[tokio::test]
async fn a_storage_the_token_may_not_read_is_named_with_its_privilege() {
    let fake = homelab().await;
    fake.forbid_storage("nas");
    let app = start(&fake).await;
    let body = ask(&app, "Which guests have no backup this week?").await;
    let text = reply(&body);
    // Everything on nas is unseen; pihole's archive on local still counts (it is old, though).
    assert!(
        text.starts_with(
            "5 guests have no backup in the last 7 days: frigate, haos, media-server, nextcloud and pihole."
        ),
        "{text}"
    );
    assert!(
        text.ends_with(
            "I couldn't read storage nas (my API token needs Datastore.Audit on /storage/nas), \
             so backups there aren't counted."
        ),
        "{text}"
    );
    let body = ask(&app, "When was pihole last backed up?").await;
    assert!(
        reply(&body).contains("512 megabytes on local."),
        "the other storages still count: {body}"
    );
    let (_, body) = get(&app, "/v1/backups", Some(KEY)).await;
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{body}");
    assert!(
        problems[0]
            .as_str()
            .unwrap()
            .contains("Datastore.Audit on /storage/nas"),
        "{body}"
    );

    // Every read refused: the spoken answer names what is missing.
    fake.forbid("GET /cluster/tasks", "/", "Sys.Audit");
    fake.forbid("GET /nodes", "/nodes", "Sys.Audit");
    let fresh = start(&fake).await;
    let body = ask(&fresh, "Did anything fail?").await;
    assert!(
        reply(&body).starts_with("Proxmox won't show me the backups: my API token needs "),
        "{body}"
    );
    app.shutdown.cancel();
    fresh.shutdown.cancel();
}

/// Last night as the brain's clock has it: a fixed noon (UTC), so the night before is the
/// job's.
#[tokio::test]
async fn last_nights_job_is_told_apart_from_an_older_one() {
    let fake = FakeProxmox::homelab().await;
    let now = unix_now();
    let noon = now - now.rem_euclid(86_400) + 12 * 3600;
    let noon = if noon > now { noon - 86_400 } else { noon };
    fake.homelab_backups(noon);
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&EventsConfig {
        path: dir.path().join("events.db"),
        ..EventsConfig::default()
    });
    let (_, link) = FrigateLink::channel();
    let memory = Memory::new(store, link, false, TimeZone::UTC).at_fixed_time(noon * 1000);
    let mut config = common::test_config();
    config.audit.path = dir.path().join("audit.jsonl");
    let brain = Brain::new(&config, Some(fake.client()))
        .unwrap()
        .with_memory(memory);
    let say = |text: &str| {
        brain.command(Command {
            text: text.into(),
            channel: Channel::Voice,
            client: "test".into(),
            conversation: None,
            approval: None,
        })
    };
    let r = say("Did last night's backups succeed?").await;
    assert_eq!(
        r.reply,
        "Last night's backup job, started at 2 am, failed for nextcloud: VM 104 is locked \
         (snapshot). 2 other guests backed up fine."
    );
    let r = say("When was haos last backed up?").await;
    assert_eq!(
        r.reply,
        "haos was last backed up at 2 am, 2 gigabytes on nas."
    );
    let r = say("When was pihole last backed up?").await;
    assert!(
        r.reply
            .ends_with("512 megabytes on local. That's more than 7 days ago."),
        "{}",
        r.reply
    );
    // A night without a job.
    fake.with_backups(|b| b.tasks.retain(|t| t.start < noon - 86_400));
    let fresh = Brain::new(&config, Some(fake.client()))
        .unwrap()
        .with_memory(
            Memory::new(
                EventStore::open(&EventsConfig {
                    path: dir.path().join("events2.db"),
                    ..EventsConfig::default()
                }),
                FrigateLink::channel().1,
                false,
                TimeZone::UTC,
            )
            .at_fixed_time(noon * 1000),
        );
    let r = fresh
        .command(Command {
            text: "did the backups run last night".into(),
            channel: Channel::Voice,
            client: "test".into(),
            conversation: None,
            approval: None,
        })
        .await;
    assert!(
        r.reply.starts_with("No backup job ran last night. The last one started yesterday at 2 am: failed for nextcloud"),
        "{}",
        r.reply
    );
}

/// The backup entities over a real Mosquitto: per guest "Last backup" and its result, and on
/// Jarvis's device the guests without a recent backup and the failed tasks, with their lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_shows_each_guests_last_backup_and_the_cluster_lists() {
    use common::mosquitto::{Mosquitto, Observer};
    use jarvis::mqtt::{self, MqttConfig};
    use std::sync::Arc;
    use std::time::Duration;

    let broker = Mosquitto::start().await;
    let fake = homelab().await;
    let ha = Observer::connect(broker.port, &["homeassistant/#", "jarvis/#"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = jarvis::config::Config::default();
    config.audit.path = dir.path().join("audit.jsonl");
    let mut settings = MqttConfig {
        enabled: true,
        host: "127.0.0.1".into(),
        port: broker.port,
        ..MqttConfig::default()
    }
    .settings();
    settings.poll = Duration::from_millis(200);
    settings.birth_delay_max = Duration::from_millis(50);
    let brain = Arc::new(Brain::new(&config, Some(fake.client())).unwrap());
    let token = tokio_util::sync::CancellationToken::new();
    let _handle = mqtt::spawn(settings, Arc::clone(&brain), brain, None, token.clone()).unwrap();

    let nextcloud = ha
        .wait_json(
            "homeassistant/device/jarvis_homelab_guest_104/config",
            |v| v["cmps"]["last_backup"].is_object(),
        )
        .await;
    let last = &nextcloud["cmps"]["last_backup"];
    assert_eq!(last["dev_cla"], "timestamp");
    assert_eq!(last["stat_t"], "jarvis/guest/104/backup");
    assert_eq!(last["uniq_id"], "jarvis_homelab_guest_104_last_backup");
    let result = &nextcloud["cmps"]["last_backup_result"];
    assert_eq!(result["dev_cla"], "enum");
    assert_eq!(result["ops"], json!(["ok", "warnings", "failed", "none"]));

    let state = ha
        .wait_json("jarvis/guest/104/backup", Value::is_object)
        .await;
    assert_eq!(state["result"], "failed");
    assert_eq!(state["message"], "VM 104 is locked (snapshot)");
    assert_eq!(state["storage"], "nas");
    assert_eq!(state["size"], 3u64 << 30);
    assert_eq!(state["stale"], false);
    let stamp = state["time"].as_str().unwrap();
    assert!(stamp.ends_with("+00:00") && stamp.len() == 25, "{stamp}");
    let frigate = ha
        .wait_json("jarvis/guest/103/backup", Value::is_object)
        .await;
    assert_eq!(frigate["result"], "none");
    assert_eq!(frigate["time"], Value::Null);
    assert_eq!(frigate["stale"], true);
    let haos = ha
        .wait_json("jarvis/guest/100/backup", Value::is_object)
        .await;
    assert_eq!(haos["result"], "ok");

    let server = ha
        .wait_json("homeassistant/device/jarvis_server/config", |v| {
            v["cmps"]["backups_stale"].is_object()
        })
        .await;
    assert_eq!(
        server["cmps"]["backups_stale"]["name"],
        "Guests without recent backup"
    );
    assert_eq!(
        server["cmps"]["failed_tasks"]["name"],
        "Failed tasks (24 h)"
    );
    assert_eq!(
        server["cmps"]["failed_tasks"]["json_attr_t"],
        "jarvis/server/backups"
    );
    let lists = ha
        .wait_json("jarvis/server/backups", Value::is_object)
        .await;
    assert_eq!(lists["stale"], 2);
    assert_eq!(lists["stale_guests"], json!(["frigate", "pihole"]));
    assert_eq!(lists["max_age_days"], 7);
    assert_eq!(lists["failed"], 2);
    assert_eq!(lists["failed_tasks"][0]["type"], "qmstart");
    assert_eq!(
        lists["failed_tasks"][0]["status"],
        "VM 104 is locked (snapshot)"
    );
    assert_eq!(lists["failed_tasks"][1]["type"], "vzdump");

    // Polls that find nothing new publish no backup state again (one read per TTL): counted
    // once every guest's backup state is out (the test read only some of them above).
    for vmid in 100..=104 {
        ha.wait_json(&format!("jarvis/guest/{vmid}/backup"), Value::is_object)
            .await;
    }
    let mark = ha.mark();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        ha.since(mark)
            .iter()
            .all(|s| !s.topic.ends_with("/backup") && !s.topic.ends_with("/backups")),
        "{:?}",
        ha.since(mark)
    );
    assert_eq!(fake.count("GET /cluster/tasks"), 1);
    token.cancel();
}
