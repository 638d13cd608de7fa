//! Disks and ZFS end to end: questions over `POST /v1/command` on the running server, and the
//! node's disk entities over MQTT (a real Mosquitto broker), against the fake Proxmox API's
//! `/nodes/{node}/disks/list` and `/disks/zfs` (healthy, a failing disk, a worn SSD, a degraded
//! pool, a token without Sys.Audit, an offline node).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake_proxmox::{FakeProxmox, fast_timings};
use common::mosquitto::{Mosquitto, Observer};
use jarvis::app::App;
use jarvis::brain::Brain;
use jarvis::config::{Config, Secret};
use jarvis::mqtt::{self, MqttConfig};
use jarvis::proxmox::{Proxmox, Timings};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const KEY: &str = "s3cret-key-for-tests";

async fn start(fake: &FakeProxmox) -> App {
    let mut config = common::test_config();
    config.proxmox = fake.config();
    config.http.api_key = Secret::new(KEY);
    common::spawn_app(config).await
}

async fn ask(app: &App, text: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/command", app.http_addr.unwrap()))
        .header("x-api-key", KEY)
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn reply(body: &Value) -> &str {
    body["reply"].as_str().unwrap()
}

#[tokio::test]
async fn healthy_disks_and_pools_are_said_briefly() {
    let fake = FakeProxmox::homelab().await;
    let app = start(&fake).await;

    let body = ask(&app, "Are my disks healthy?").await;
    assert_eq!(body["intent"], "DiskHealth");
    assert_eq!(body["handled"], true);
    assert_eq!(reply(&body), "All 6 disks are healthy.");

    let body = ask(&app, "How are the disks on pve?").await;
    assert_eq!(body["intent"], "DiskHealth");
    assert_eq!(body["slots"]["target"], "pve");
    assert_eq!(reply(&body), "All 3 disks on pve are healthy.");

    let body = ask(&app, "Is the ZFS pool healthy?").await;
    assert_eq!(body["intent"], "ZfsHealth");
    assert_eq!(reply(&body), "All 2 ZFS pools are online.");

    let body = ask(&app, "How is rpool?").await;
    assert_eq!(body["intent"], "ZfsHealth");
    assert_eq!(reply(&body), "rpool is online on agent1 and pve.");

    let body = ask(&app, "What's the wear on pve's SSDs?").await;
    assert_eq!(body["intent"], "DiskWear");
    assert_eq!(
        reply(&body),
        "The 2 SSDs on pve are fine; the most worn, sda on pve, has 88 percent of its life left."
    );

    let body = ask(&app, "How is the tank pool?").await;
    assert_eq!(body["intent"], "ZfsHealth");
    assert_eq!(
        reply(&body),
        "I don't know a pool called tank. Your ZFS pools are rpool."
    );

    // Storage questions about "disks" stay storage questions.
    let body = ask(&app, "How full are my disks?").await;
    assert_eq!(body["intent"], "StorageUsage");

    // One read per node for all of that: the cache serves the rest.
    assert_eq!(fake.count("GET /nodes/pve/disks/list"), 1);
    assert_eq!(fake.count("GET /nodes/agent1/disks/zfs"), 1);
    app.shutdown.cancel();
}

#[tokio::test]
async fn failing_disks_worn_ssds_and_degraded_pools_are_named() {
    let fake = FakeProxmox::homelab().await;
    fake.set_disk_health("pve", "/dev/sdb", "FAILED");
    fake.edit_disk("agent1", "/dev/nvme0n1", |d| d.wearout = Some(6));
    fake.set_pool_health("agent1", "tank", "DEGRADED");
    let app = start(&fake).await;

    let body = ask(&app, "Are my disks healthy?").await;
    assert_eq!(
        reply(&body),
        "Found 3 problems: sdb on pve (WDC WD40EFRX-68N32N0) is failing its SMART check, \
         nvme0n1 on agent1 (Samsung SSD 980 PRO 1TB) has only 6 percent of its life left and \
         the ZFS pool tank on agent1 is degraded."
    );
    let body = ask(&app, "how are the drives on pve").await;
    assert_eq!(
        reply(&body),
        "Found a problem: sdb on pve (WDC WD40EFRX-68N32N0) is failing its SMART check."
    );
    let body = ask(&app, "how worn are the SSDs").await;
    assert_eq!(body["intent"], "DiskWear");
    assert_eq!(
        reply(&body),
        "1 SSD is nearly worn out: nvme0n1 on agent1 has 6 percent left. Plan to replace it."
    );
    let body = ask(&app, "are the zfs pools ok").await;
    assert_eq!(body["intent"], "ZfsHealth");
    assert_eq!(
        reply(&body),
        "The pool tank on agent1 is degraded. The other 2 are online."
    );
    let body = ask(&app, "how is the pool tank").await;
    assert_eq!(reply(&body), "The pool tank on agent1 is degraded.");
    app.shutdown.cancel();
}

#[tokio::test]
async fn a_token_without_sys_audit_and_an_offline_node_are_said() {
    let fake = FakeProxmox::homelab().await;
    fake.forbid("/nodes/agent1/disks", "/nodes/agent1", "Sys.Audit");
    let app = start(&fake).await;
    let body = ask(&app, "are my disks healthy").await;
    assert_eq!(
        reply(&body),
        "All 3 disks are healthy. I'm not allowed to read the disks on agent1: the API token \
         needs Sys.Audit on /nodes/agent1."
    );
    let body = ask(&app, "check the disks on agent1").await;
    assert_eq!(
        reply(&body),
        "I'm not allowed to read the disks on agent1: the API token needs Sys.Audit on \
         /nodes/agent1."
    );
    app.shutdown.cancel();

    let fake = FakeProxmox::homelab().await;
    fake.set_node_online("agent1", false);
    let app = start(&fake).await;
    let body = ask(&app, "is the zfs pool healthy").await;
    assert_eq!(
        reply(&body),
        "rpool on pve is online. agent1 is offline, so I couldn't check its disks."
    );
    let body = ask(&app, "how are agent1's disks").await;
    assert_eq!(
        reply(&body),
        "agent1 is offline, so I couldn't check its disks."
    );
    assert_eq!(
        fake.count("GET /nodes/agent1/disks"),
        0,
        "offline: not asked"
    );
    app.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_shows_its_disks_over_mqtt() {
    let broker = Mosquitto::start().await;
    let fake = FakeProxmox::homelab().await;
    fake.set_disk_health("pve", "/dev/sdb", "FAILED");
    fake.set_pool_health("pve", "tank", "DEGRADED");
    fake.forbid("/nodes/agent1/disks", "/nodes/agent1", "Sys.Audit");
    let ha = Observer::connect(broker.port, &["homeassistant/#", "jarvis/#"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.audit.path = dir.path().join("audit.jsonl");
    let timings = Timings {
        resources_ttl: Duration::from_millis(100),
        node_status_ttl: Duration::from_millis(100),
        updates_ttl: Duration::from_millis(100),
        ..fast_timings()
    };
    let client = Proxmox::with_timings(&fake.config(), timings).unwrap();
    let brain = Arc::new(Brain::new(&config, Some(client)).unwrap());
    let mut settings = MqttConfig {
        enabled: true,
        host: "127.0.0.1".into(),
        port: broker.port,
        ..MqttConfig::default()
    }
    .settings();
    settings.poll = Duration::from_millis(200);
    settings.birth_delay_max = Duration::from_millis(50);
    let token = CancellationToken::new();
    let _handle = mqtt::spawn(settings, Arc::clone(&brain), brain, None, token.clone()).unwrap();

    let config = ha
        .wait_json(
            "homeassistant/device/jarvis_homelab_node_pve/config",
            |_| true,
        )
        .await;
    let cmps = &config["cmps"];
    assert_eq!(cmps["disks"]["p"], "binary_sensor");
    assert_eq!(cmps["disks"]["dev_cla"], "problem");
    assert_eq!(
        cmps["disks"]["default_entity_id"],
        "binary_sensor.pve_disks"
    );
    assert_eq!(cmps["disks"]["uniq_id"], "jarvis_homelab_node_pve_disks");
    assert_eq!(cmps["disks"]["json_attr_t"], "jarvis/node/pve/state");
    assert_eq!(cmps["ssd_life"]["unit_of_meas"], "%");
    assert_eq!(cmps["ssd_life"]["default_entity_id"], "sensor.pve_ssd_life");
    assert_eq!(cmps["zfs"]["default_entity_id"], "sensor.pve_zfs");

    let state = ha
        .wait_json("jarvis/node/pve/state", |v| v["disks_problem"] == "ON")
        .await;
    assert_eq!(state["ssd_life"], 88);
    assert_eq!(state["zfs"], "DEGRADED");
    assert_eq!(
        state["zfs_pools"],
        json!({"rpool": "ONLINE", "tank": "DEGRADED"})
    );
    let sdb = state["disks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "/dev/sdb")
        .unwrap();
    assert_eq!(sdb["health"], "FAILED");
    assert_eq!(sdb["problem"], true);
    // No Sys.Audit on agent1: its disk entities are unknown, the rest of it is fine.
    let agent1 = ha
        .wait_json("jarvis/node/agent1/state", |v| v["updates"] == 3)
        .await;
    assert_eq!(agent1["disks_problem"], Value::Null);
    assert_eq!(agent1["ssd_life"], Value::Null);
    assert_eq!(agent1["status"], "online");

    // Repaired: the problem clears within the slow-read TTL.
    fake.set_disk_health("pve", "/dev/sdb", "PASSED");
    fake.set_pool_health("pve", "tank", "ONLINE");
    fake.heal();
    let state = ha
        .wait_json("jarvis/node/pve/state", |v| v["disks_problem"] == "OFF")
        .await;
    assert_eq!(state["zfs"], "ONLINE");
    ha.wait_json("jarvis/node/agent1/state", |v| v["disks_problem"] == "OFF")
        .await;
    // An offline node: unknown, and not asked.
    fake.set_node_online("agent1", false);
    let agent1 = ha
        .wait_json("jarvis/node/agent1/state", |v| v["status"] == "offline")
        .await;
    assert_eq!(agent1["disks_problem"], Value::Null);
    token.cancel();
}

#[tokio::test]
async fn a_disk_question_over_wyoming_names_the_failing_disk() {
    let fake = FakeProxmox::homelab().await;
    fake.set_disk_health("agent1", "/dev/sda", "FAILED");
    let app = start(&fake).await;
    let mut client = common::client(app.wyoming_addr).await;
    client
        .send(wyoming::asr::Transcript {
            text: "Are my disks healthy?".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    match common::recv(&mut client).await {
        Some(wyoming::Event::Handled(handled)) => {
            let text = handled.text.unwrap_or_default();
            assert!(text.contains("sda on agent1"), "{text}");
        }
        other => panic!("expected handled, got {other:?}"),
    }
}

#[tokio::test]
async fn which_node_is_asked_and_the_answer_is_heard() {
    let mut cluster = common::fake_proxmox::FakeCluster::homelab();
    cluster.nodes.push(common::fake_proxmox::FakeNode::new(
        "agent2",
        "192.168.1.13",
    ));
    let fake = FakeProxmox::start(cluster).await;
    let app = start(&fake).await;
    let say = |text: &'static str| {
        let app = &app;
        async move {
            let response = reqwest::Client::new()
                .post(format!("http://{}/v1/command", app.http_addr.unwrap()))
                .header("x-api-key", KEY)
                .json(&json!({ "text": text, "conversation_id": "disks" }))
                .send()
                .await
                .unwrap();
            response.json::<Value>().await.unwrap()
        }
    };
    let body = say("How are the disks on agent?").await;
    assert_eq!(
        reply(&body),
        "Which one do you mean: agent1 or agent2?",
        "{body}"
    );
    let body = say("the second one").await;
    assert_eq!(reply(&body), "All 3 disks on agent2 are healthy.", "{body}");
    app.shutdown.cancel();
}
