//! MQTT discovery against a real Mosquitto broker (started per test on a free loopback port)
//! and the fake Proxmox API, with the real brain behind the buttons: discovery payloads for
//! every entity kind, states, guests added, migrated and deleted, Proxmox going away and coming
//! back, HA's birth message, button presses, a broker restart, and bad input; and the Frigate
//! entities from a real event store, with Frigate's status and arrivals sent by hand (as the
//! Frigate subscriber sends them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake_proxmox::{FakeGuest, FakeProxmox, FakeStorage, fast_timings};
use common::mosquitto::{Mosquitto, Observer, Seen};
use jarvis::brain::Brain;
use jarvis::config::{Config, Secret};
use jarvis::events::model::KIND_OBJECT;
use jarvis::events::{Event, EventStore, EventsConfig, Source};
use jarvis::frigate::{Availability, FrigateLink, FrigateStatus};
use jarvis::mqtt::{self, EventFeed, MqttConfig, MqttHandle, MqttSettings};
use jarvis::proxmox::{Proxmox, Timings};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Everything one test runs against.
struct Lab {
    broker: Mosquitto,
    fake: FakeProxmox,
    ha: Observer,
    token: CancellationToken,
    handle: Option<MqttHandle>,
    _dir: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Settings with intervals in milliseconds, so lifecycle tests take a second, not minutes.
fn settings(port: u16) -> MqttSettings {
    let mut settings = MqttConfig {
        enabled: true,
        host: "127.0.0.1".into(),
        port,
        ..MqttConfig::default()
    }
    .settings();
    settings.poll = Duration::from_millis(200);
    settings.grace = Duration::from_millis(1500);
    settings.refresh = Duration::from_secs(60);
    settings.birth_delay_max = Duration::from_millis(50);
    settings.backoff = (Duration::from_millis(50), Duration::from_millis(500));
    settings
}

/// A client whose cache is shorter than a poll, so every poll sees the fake's latest state.
fn client(fake: &FakeProxmox) -> Proxmox {
    let timings = Timings {
        resources_ttl: Duration::from_millis(100),
        node_status_ttl: Duration::from_millis(100),
        updates_ttl: Duration::from_millis(100),
        ..fast_timings()
    };
    Proxmox::with_timings(&fake.config(), timings).unwrap()
}

async fn lab() -> Lab {
    lab_with(|_, _| {}).await
}

async fn lab_with(edit: impl FnOnce(&mut Config, &mut MqttSettings)) -> Lab {
    let broker = Mosquitto::start().await;
    let fake = FakeProxmox::homelab().await;
    let ha = Observer::connect(broker.port, &["homeassistant/#", "jarvis/#"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.audit.path = dir.path().join("audit.jsonl");
    let mut settings = settings(broker.port);
    edit(&mut config, &mut settings);
    let brain = Arc::new(Brain::new(&config, Some(client(&fake))).unwrap());
    let token = CancellationToken::new();
    let handle = mqtt::spawn(settings, Arc::clone(&brain), brain, None, token.clone()).unwrap();
    Lab {
        broker,
        fake,
        ha,
        token,
        handle: Some(handle),
        _dir: dir,
    }
}

fn config_topic(id: &str) -> String {
    format!("homeassistant/device/jarvis_homelab_{id}/config")
}

/// The homelab's devices: two nodes, five guests (the template is left out), six storages.
fn homelab_devices() -> Vec<String> {
    let mut ids: Vec<String> = ["node_pve", "node_agent1"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    ids.extend((100..=104).map(|vmid| format!("guest_{vmid}")));
    for node in ["pve", "agent1"] {
        for storage in ["local", "local-lvm", "nas"] {
            ids.push(format!("storage_{node}_{storage}"));
        }
    }
    ids
}

impl Lab {
    /// Waits for every homelab device's config and state; returns the configs.
    async fn discovered(&self) -> Vec<Value> {
        let mut configs = Vec::new();
        for id in homelab_devices() {
            let config = self
                .ha
                .wait_json(&config_topic(&id), |v| v["cmps"].is_object())
                .await;
            let state = config["cmps"]
                .as_object()
                .unwrap()
                .values()
                .find_map(|c| c["stat_t"].as_str().filter(|t| t.ends_with("/state")))
                .unwrap()
                .to_owned();
            self.ha.wait_json(&state, Value::is_object).await;
            configs.push(config);
        }
        configs
    }

    async fn event(&self, mark: usize, check: impl Fn(&Value) -> bool) -> Value {
        self.ha
            .wait_for("an event on jarvis/server/event", |_, log| {
                log[mark..]
                    .iter()
                    .filter(|s| s.topic == "jarvis/server/event")
                    .filter_map(|s| serde_json::from_str::<Value>(&s.payload).ok())
                    .find(|v| check(v))
            })
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_covers_every_device_and_entity_kind_with_states() {
    let lab = lab().await;
    lab.ha.wait_topic("jarvis/status", |p| p == "online").await;
    lab.ha
        .wait_topic("jarvis/proxmox/availability", |p| p == "online")
        .await;
    let configs = lab.discovered().await;
    for config in &configs {
        assert_eq!(config["o"]["name"], "Jarvis");
        assert_eq!(config["avty_mode"], "all");
        assert_eq!(config["avty"].as_array().unwrap().len(), 3);
    }
    let snapshot = lab.ha.snapshot();
    assert!(
        !snapshot.contains_key(&config_topic("guest_9000")),
        "templates are not devices"
    );
    let configs_sent = snapshot
        .keys()
        .filter(|t| t.starts_with("homeassistant/device/"))
        .count();
    assert_eq!(configs_sent, homelab_devices().len() + 1, "plus Jarvis");
    assert!(
        snapshot
            .values()
            .all(|s| !s.topic.ends_with("/config") || !s.retain),
        "discovery is not retained by default"
    );

    // A node: its entities and state.
    let node = &configs[0]["cmps"];
    for key in ["status", "cpu", "mem", "started", "load1", "updates"] {
        assert!(node.get(key).is_some(), "node {key}");
    }
    let node_state = lab
        .ha
        .wait_json("jarvis/node/pve/state", |v| v["updates"] == 12)
        .await;
    assert_eq!(node_state["status"], "online");
    assert_eq!(node_state["cpu"], 4.1);
    assert!(node_state["load1"].is_number());
    assert!(node_state["started"].as_str().unwrap().ends_with("+00:00"));

    // A running VM and a stopped container.
    let haos = lab.ha.wait_json(&config_topic("guest_100"), |_| true).await;
    assert_eq!(haos["dev"]["name"], "haos (VM 100)");
    assert_eq!(haos["dev"]["via_device"], "jarvis_homelab_node_pve");
    assert_eq!(haos["cmps"]["stop"]["en"], false);
    assert_eq!(haos["cmps"]["start"]["cmd_t"], "jarvis/guest/100/command");
    let state = lab.ha.wait_json("jarvis/guest/100/state", |_| true).await;
    assert_eq!(state["status"], "running");
    assert_eq!(state["node"], "pve");
    assert!(state["mem_pct"].as_f64().is_some());
    let frigate = lab.ha.wait_json("jarvis/guest/103/state", |_| true).await;
    assert_eq!(frigate["status"], "stopped");
    assert_eq!(frigate["started"], Value::Null);
    assert_eq!(frigate["net_in"], 0);
    let ct = lab.ha.wait_json(&config_topic("guest_102"), |_| true).await;
    assert_eq!(ct["cmps"]["disk"]["dev_cla"], "data_size");

    // A storage.
    let storage = lab
        .ha
        .wait_json("jarvis/storage/pve_local-lvm/state", |_| true)
        .await;
    assert_eq!(storage["used"], 53_687_091_200_u64);
    assert_eq!(storage["free"], 214_748_364_800_u64 - 53_687_091_200);

    // Jarvis itself.
    let server = lab
        .ha
        .wait_json("homeassistant/device/jarvis_server/config", |_| true)
        .await;
    assert_eq!(server["cmps"]["activity"]["p"], "event");
    let health = lab
        .ha
        .wait_json("jarvis/server/state", |v| v["health"] == "ok")
        .await;
    assert_eq!(health["proxmox"], "online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_changed_means_no_messages() {
    let lab = lab().await;
    lab.discovered().await;
    lab.ha
        .wait_json("jarvis/server/state", |v| v["detail"]["devices"] == 13)
        .await;
    // Let the first polls settle (rates need two samples), then watch five polls.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mark = lab.ha.mark();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let sent: Vec<Seen> = lab.ha.since(mark);
    assert_eq!(sent, vec![], "an unchanged cluster sends nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_added_migrated_and_deleted() {
    let lab = lab().await;
    lab.discovered().await;
    let before = lab.ha.wait_json(&config_topic("guest_101"), |_| true).await;

    // Added: appears by itself.
    lab.fake
        .add_guest(FakeGuest::lxc(105, "grafana", "agent1").running());
    let added = lab.ha.wait_json(&config_topic("guest_105"), |_| true).await;
    assert_eq!(added["dev"]["name"], "grafana (CT 105)");
    lab.ha
        .wait_json("jarvis/guest/105/state", |v| v["status"] == "running")
        .await;
    lab.ha
        .wait_topic("jarvis/guest/105/availability", |p| p == "online")
        .await;

    // Migrated: same device and entities, new node.
    let mark = lab.ha.mark();
    lab.fake.migrate_guest(101, "agent1");
    let moved = lab
        .ha
        .wait_json(&config_topic("guest_101"), |v| {
            v["dev"]["via_device"] == "jarvis_homelab_node_agent1"
        })
        .await;
    assert_eq!(moved["dev"]["ids"], before["dev"]["ids"]);
    for (key, c) in moved["cmps"].as_object().unwrap() {
        assert_eq!(c["uniq_id"], before["cmps"][key]["uniq_id"], "{key}");
    }
    lab.ha
        .wait_json("jarvis/guest/101/state", |v| v["node"] == "agent1")
        .await;
    let new_devices: Vec<_> = lab
        .ha
        .since(mark)
        .into_iter()
        .filter(|s| s.topic.ends_with("/config") && !s.topic.contains("guest_101"))
        .collect();
    assert_eq!(new_devices, vec![], "a migration creates no other device");

    // Deleted: unavailable at once, removed after the grace period.
    lab.fake.remove_guest(105);
    lab.ha
        .wait_topic("jarvis/guest/105/availability", |p| p == "offline")
        .await;
    assert!(
        lab.ha
            .last(&config_topic("guest_105"))
            .is_some_and(|p| !p.is_empty()),
        "not removed before the grace period"
    );
    lab.ha
        .wait_topic(&config_topic("guest_105"), str::is_empty)
        .await;
    // Every topic of the guest (state, availability, and any other it had, such as its last
    // backup) is cleared before the broker is asked what it still holds.
    let topics: std::collections::BTreeSet<String> = lab
        .ha
        .since(0)
        .into_iter()
        .map(|s| s.topic)
        .filter(|t| t.starts_with("jarvis/guest/105/"))
        .collect();
    assert!(topics.contains("jarvis/guest/105/state"), "{topics:?}");
    assert!(
        topics.contains("jarvis/guest/105/availability"),
        "{topics:?}"
    );
    for topic in &topics {
        lab.ha.wait_topic(topic, str::is_empty).await;
    }
    // The removal cleared the retained messages at the broker too.
    let late = Observer::connect(lab.broker.port, &["jarvis/guest/105/#"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(late.snapshot().len(), 0, "{:?}", late.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmox_going_away_makes_entities_unavailable_and_removes_nothing() {
    let lab = lab().await;
    lab.discovered().await;
    let mark = lab.ha.mark();
    lab.fake
        .fail("/cluster/resources", 596, "Connection refused");
    lab.ha
        .wait_topic("jarvis/proxmox/availability", |p| p == "offline")
        .await;
    let health = lab
        .ha
        .wait_json("jarvis/server/state", |v| v["health"] == "degraded")
        .await;
    assert!(
        health["detail"]["proxmox_error"]
            .as_str()
            .unwrap()
            .contains("596"),
        "{health}"
    );
    // Down for longer than the grace period: nothing may be removed.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let removed: Vec<_> = lab
        .ha
        .since(mark)
        .into_iter()
        .filter(|s| s.payload.is_empty() || s.payload == "offline" && s.topic.contains("/guest/"))
        .collect();
    assert_eq!(removed, vec![], "a failed poll removes nothing");

    let back = lab.ha.mark();
    lab.fake.heal();
    lab.ha
        .wait_topic("jarvis/proxmox/availability", |p| p == "online")
        .await;
    lab.ha
        .wait_json("jarvis/server/state", |v| v["health"] == "ok")
        .await;
    // Every state is sent again (HA may have expired them meanwhile).
    every_guest_state_since(&lab.ha, back, "every guest state again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_birth_gets_every_config_and_state_again() {
    let lab = lab().await;
    lab.discovered().await;
    let mark = lab.ha.mark();
    lab.ha
        .publish("homeassistant/status", "online", false)
        .await;
    let again = lab
        .ha
        .wait_for("every config and state again", |_, log| {
            let after = &log[mark..];
            let configs = after
                .iter()
                .filter(|s| s.topic.ends_with("/config"))
                .count();
            let states = after.iter().filter(|s| s.topic.ends_with("/state")).count();
            (configs == homelab_devices().len() + 1 && states == homelab_devices().len() + 1)
                .then(|| after.to_vec())
        })
        .await;
    let first_state = again
        .iter()
        .position(|s| s.topic.ends_with("/state") && s.topic.contains("/guest/"))
        .unwrap();
    let last_config = again
        .iter()
        .rposition(|s| s.topic.ends_with("/config"))
        .unwrap();
    assert!(last_config < first_state, "configs go before states");
    // HA's own LWT changes nothing.
    let mark = lab.ha.mark();
    lab.ha
        .publish("homeassistant/status", "offline", false)
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        lab.ha
            .since(mark)
            .iter()
            .all(|s| !s.topic.ends_with("/config")),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_button_press_reaches_the_fake_api_through_the_brain() {
    let lab = lab().await;
    lab.discovered().await;
    let mark = lab.ha.mark();
    lab.fake.clear_requests();
    lab.ha
        .publish("jarvis/guest/104/command", "start", false)
        .await;

    let outcome = lab
        .ha
        .wait_json("jarvis/guest/104/action", |v| v["action"] == "start")
        .await;
    assert_eq!(outcome["decision"], "allowed", "{outcome}");
    assert_eq!(outcome["task"]["result"], "ok", "{outcome}");
    assert_eq!(
        lab.fake.count("POST /nodes/agent1/qemu/104/status/start"),
        1
    );
    let event = lab.event(mark, |v| v["event_type"] == "action").await;
    assert_eq!(event["channel"], "mqtt");
    assert_eq!(event["vmid"], 104);
    // The new state without waiting for the next regular poll.
    lab.ha
        .wait_json("jarvis/guest/104/state", |v| v["status"] == "running")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_for_unknown_and_protected_guests_are_refused() {
    let lab = lab_with(|config, _| config.policy.protected_guests = vec!["100".into()]).await;
    lab.discovered().await;
    lab.fake.clear_requests();

    let mark = lab.ha.mark();
    lab.ha
        .publish("jarvis/guest/999/command", "start", false)
        .await;
    let event = lab.event(mark, |v| v["event_type"] == "error").await;
    assert!(
        event["reason"].as_str().unwrap().contains("no guest 999"),
        "{event}"
    );
    // A template has no buttons either.
    lab.ha
        .publish("jarvis/guest/9000/command", "start", false)
        .await;
    lab.event(mark, |v| {
        v["event_type"] == "error" && v["topic"] == "jarvis/guest/9000/command"
    })
    .await;

    let mark = lab.ha.mark();
    lab.ha
        .publish("jarvis/guest/100/command", "stop", false)
        .await;
    let outcome = lab
        .ha
        .wait_json("jarvis/guest/100/action", |v| v["action"] == "stop")
        .await;
    assert_eq!(outcome["decision"], "refused");
    assert!(
        outcome["reply"].as_str().unwrap().contains("protected"),
        "{outcome}"
    );
    let event = lab.event(mark, |v| v["event_type"] == "action").await;
    assert_eq!(event["decision"], "refused");
    assert_eq!(
        lab.fake.count("POST /"),
        0,
        "nothing reached Proxmox: {:?}",
        lab.fake.requests()
    );
}

/// The action records of the audit log.
fn audit_actions(lab: &Lab) -> Vec<Value> {
    std::fs::read_to_string(lab._dir.path().join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["kind"] == "action")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_buttons_are_discovered_disabled_with_hash_free_ids() {
    let lab = lab().await;
    let configs = lab.discovered().await;
    for (config, node) in configs.iter().take(2).zip(["pve", "agent1"]) {
        assert_eq!(
            config["dev"]["ids"][0],
            format!("jarvis_homelab_node_{node}")
        );
        let cmps = &config["cmps"];
        for (key, payload) in [
            ("reboot", "reboot"),
            ("shutdown", "shutdown"),
            ("start_all", "start_all"),
            ("stop_all", "stop_all"),
        ] {
            let button = &cmps[key];
            assert_eq!(button["p"], "button", "{node} {key}");
            assert_eq!(button["en"], false, "{node} {key}: disabled by default");
            assert_eq!(button["cmd_t"], format!("jarvis/node/{node}/command"));
            assert_eq!(button["pl_prs"], payload);
            assert_eq!(button["default_entity_id"], format!("button.{node}_{key}"));
            assert_eq!(
                button["uniq_id"],
                format!("jarvis_homelab_node_{node}_{key}")
            );
        }
        assert_eq!(
            cmps["last_action"]["stat_t"],
            format!("jarvis/node/{node}/action")
        );
        // What the node showed before is untouched.
        assert_eq!(
            cmps["cpu"]["uniq_id"],
            format!("jarvis_homelab_node_{node}_cpu")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_all_press_reaches_proxmox_without_the_protected_guests() {
    let lab = lab().await;
    lab.discovered().await;
    lab.fake.clear_requests();
    let mark = lab.ha.mark();
    lab.ha
        .publish("jarvis/node/pve/command", "stop_all", false)
        .await;

    let outcome = lab
        .ha
        .wait_json("jarvis/node/pve/action", |v| v["action"] == "stop_all")
        .await;
    // The press is the confirmation (as for a guest's buttons); the policy still decided.
    assert_eq!(outcome["decision"], "allowed", "{outcome}");
    assert_eq!(outcome["node"], "pve");
    assert_eq!(outcome["task"]["result"], "ok", "{outcome}");
    assert_eq!(
        outcome["reply"],
        "Stopped 2 guests on pve: media-server and pihole."
    );
    assert_eq!(lab.fake.count("POST /nodes/pve/stopall"), 1);
    // haos (Home Assistant's VM, protected by detection) is left out.
    assert_eq!(
        lab.fake.last_form("/nodes/pve/stopall").unwrap()["vms"],
        "101,102"
    );
    assert_eq!(lab.fake.guest_status(100).as_deref(), Some("running"));
    let event = lab
        .event(mark, |v| {
            v["event_type"] == "action" && v["action"] == "stop_all"
        })
        .await;
    assert_eq!(event["channel"], "mqtt");
    // The guests' new state without waiting for the next regular poll.
    lab.ha
        .wait_json("jarvis/guest/101/state", |v| v["status"] == "stopped")
        .await;
    let audit = audit_actions(&lab);
    let record = audit.iter().find(|a| a["action"] == "stop_all").unwrap();
    assert_eq!(record["channel"], "mqtt", "{record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reboot_press_on_the_node_of_a_protected_guest_is_refused_and_audited() {
    let lab = lab().await;
    lab.discovered().await;
    lab.fake.clear_requests();
    let mark = lab.ha.mark();
    lab.ha
        .publish("jarvis/node/pve/command", "reboot", false)
        .await;
    let outcome = lab
        .ha
        .wait_json("jarvis/node/pve/action", |v| v["action"] == "node_reboot")
        .await;
    assert_eq!(outcome["decision"], "refused", "{outcome}");
    let reply = outcome["reply"].as_str().unwrap();
    assert!(
        reply.contains("haos") && reply.contains("protected"),
        "{reply}"
    );
    let event = lab
        .event(mark, |v| {
            v["event_type"] == "action" && v["action"] == "node_reboot"
        })
        .await;
    assert_eq!(event["decision"], "refused");
    assert_eq!(lab.fake.count("POST /"), 0, "{:?}", lab.fake.requests());
    let audit = audit_actions(&lab);
    let record = audit
        .iter()
        .find(|a| a["action"] == "node_reboot")
        .unwrap_or_else(|| panic!("no audit record in {audit:?}"));
    assert_eq!(record["channel"], "mqtt", "{record}");
    assert!(
        record["outcome"].as_str().unwrap().starts_with("refused"),
        "{record}"
    );

    // The node without a protected guest reboots on a press.
    lab.ha
        .publish("jarvis/node/agent1/command", "reboot", false)
        .await;
    let outcome = lab
        .ha
        .wait_json("jarvis/node/agent1/action", |v| {
            v["action"] == "node_reboot"
        })
        .await;
    assert_eq!(outcome["decision"], "allowed", "{outcome}");
    assert_eq!(outcome["reply"], "agent1 is rebooting.");
    assert_eq!(lab.fake.count("POST /nodes/agent1/status"), 1);
    assert_eq!(
        lab.fake.last_form("/nodes/agent1/status").unwrap()["command"],
        "reboot"
    );
    assert_eq!(lab.fake.count("POST /nodes/pve"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_a_node_command_topic_does_nothing() {
    let lab = lab().await;
    lab.discovered().await;
    lab.fake.clear_requests();
    // Nothing in a payload can name another node or a guest.
    let garbage: [&[u8]; 8] = [
        b"explode",
        b"REBOOT",
        b"start",
        b"reboot agent1",
        b"{\"node\":\"agent1\",\"action\":\"reboot\"}",
        b"",
        b"\xff\xfe\x00\x01",
        &[b'a'; 1000],
    ];
    for payload in garbage {
        let mark = lab.ha.mark();
        lab.ha
            .publish("jarvis/node/pve/command", payload.to_vec(), false)
            .await;
        let event = lab.event(mark, |v| v["event_type"] == "error").await;
        assert_eq!(event["topic"], "jarvis/node/pve/command", "{event}");
    }
    for (topic, reason) in [
        ("jarvis/node/nope/command", "no node nope"),
        ("jarvis/node/PVE/command", "not a command topic"),
        ("jarvis/node/p.ve/command", "not a command topic"),
    ] {
        let mark = lab.ha.mark();
        lab.ha.publish(topic, "reboot", false).await;
        let event = lab
            .event(mark, |v| v["event_type"] == "error" && v["topic"] == topic)
            .await;
        assert!(
            event["reason"].as_str().unwrap().contains(reason),
            "{event}"
        );
    }
    assert_eq!(lab.fake.count("POST /"), 0, "{:?}", lab.fake.requests());
    assert!(audit_actions(&lab).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_commands_are_refused_and_jarvis_carries_on() {
    let lab = lab().await;
    lab.discovered().await;
    lab.fake.clear_requests();
    let garbage: [&[u8]; 6] = [
        b"explode",
        b"START",
        b"",
        b"\xff\xfe\x00\x01",
        b"{\"action\":\"start\"}",
        &[b'a'; 1000],
    ];
    for payload in garbage {
        let mark = lab.ha.mark();
        lab.ha
            .publish("jarvis/guest/101/command", payload.to_vec(), false)
            .await;
        let event = lab.event(mark, |v| v["event_type"] == "error").await;
        assert_eq!(event["topic"], "jarvis/guest/101/command");
    }
    for topic in ["jarvis/guest/abc/command", "jarvis/guest/1e3/command"] {
        let mark = lab.ha.mark();
        lab.ha.publish(topic, "start", false).await;
        lab.event(mark, |v| v["event_type"] == "error" && v["topic"] == topic)
            .await;
    }

    // A retained command: subscribers get it live without the retain flag, so it is a press
    // (100 runs already: nothing to do). But the broker keeps it, and would replay it at
    // every reconnect: the replay is refused and cleared.
    let mark = lab.ha.mark();
    lab.ha
        .publish("jarvis/guest/100/command", "start", true)
        .await;
    let live = lab.event(mark, |v| v["event_type"] == "action").await;
    assert_eq!(live["vmid"], 100);

    // Far over the size limit: rumqttc drops the connection, Jarvis reconnects and
    // republishes, and refuses the retained command replayed on the new connection.
    let connects = lab.handle.as_ref().unwrap().state().connects;
    let mark = lab.ha.mark();
    lab.ha
        .publish("jarvis/guest/101/command", vec![b'x'; 1 << 20], false)
        .await;
    lab.ha
        .wait_for("jarvis to come back", |_, log| {
            log[mark..]
                .iter()
                .any(|s| s.topic == "jarvis/status" && s.payload == "online")
                .then_some(())
        })
        .await;
    let state = lab.handle.as_ref().unwrap().state();
    assert!(state.connects > connects, "{state:?}");
    assert!(
        state
            .last_error
            .as_deref()
            .unwrap()
            .contains("byte message"),
        "{state:?}"
    );
    lab.event(mark, |v| {
        v["event_type"] == "error" && v["reason"].as_str().unwrap().contains("retained")
    })
    .await;
    lab.ha
        .wait_topic("jarvis/guest/100/command", str::is_empty)
        .await;
    assert_eq!(lab.fake.count("POST /"), 0, "{:?}", lab.fake.requests());

    // And buttons still work.
    lab.ha
        .publish("jarvis/guest/103/command", "start", false)
        .await;
    lab.ha
        .wait_json("jarvis/guest/103/action", |v| v["decision"] == "allowed")
        .await;
    assert_eq!(lab.fake.count("POST /nodes/agent1/lxc/103/status/start"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_reconnects_and_republishes() {
    let mut lab = lab().await;
    lab.discovered().await;
    let connects = lab.handle.as_ref().unwrap().state().connects;
    lab.broker.restart().await;
    // The restarted broker kept nothing (no persistence): retained states there now were
    // republished by Jarvis on its own reconnect.
    let fresh = Observer::connect(lab.broker.port, &["homeassistant/#", "jarvis/#"]).await;
    fresh.wait_topic("jarvis/status", |p| p == "online").await;
    for id in homelab_devices() {
        let state = if let Some(vmid) = id.strip_prefix("guest_") {
            format!("jarvis/guest/{vmid}/state")
        } else {
            continue;
        };
        fresh.wait_json(&state, Value::is_object).await;
    }
    // Configs are not retained: HA's birth message on its reconnect gets them again.
    let mark = fresh.mark();
    fresh.publish("homeassistant/status", "online", false).await;
    fresh
        .wait_for("every config republished", |_, log| {
            let configs = log[mark..]
                .iter()
                .filter(|s| s.topic.ends_with("/config"))
                .count();
            (configs > homelab_devices().len()).then_some(())
        })
        .await;
    assert!(lab.handle.as_ref().unwrap().state().connects > connects);
    // A button press works on the new connection.
    fresh
        .publish("jarvis/guest/104/command", "start", false)
        .await;
    fresh
        .wait_json("jarvis/guest/104/action", |v| v["decision"] == "allowed")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_reported_and_retried() {
    let broker = Mosquitto::with_user("jarvis", "right").await;
    let fake = FakeProxmox::homelab().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.audit.path = dir.path().join("audit.jsonl");
    let brain = Arc::new(Brain::new(&config, Some(client(&fake))).unwrap());
    let mut wrong = settings(broker.port);
    wrong.credentials = Some(("jarvis".into(), Secret::new("wrong")));
    let token = CancellationToken::new();
    let handle = mqtt::spawn(
        wrong,
        Arc::clone(&brain),
        Arc::clone(&brain),
        None,
        token.clone(),
    )
    .unwrap();
    let mut link = handle.link.clone();
    let state = tokio::time::timeout(common::LIMIT, link.wait_for(|s| s.failures >= 3))
        .await
        .expect("retried in time")
        .unwrap()
        .clone();
    assert!(!state.connected && state.connects == 0);
    let error = state.last_error.unwrap();
    assert!(
        error.contains("refused the credentials") && error.contains("mqtt.password"),
        "{error}"
    );
    assert!(!format!("{handle:?}").contains("wrong"));
    token.cancel();
    tokio::time::timeout(common::LIMIT, handle.join())
        .await
        .expect("stops while retrying");

    // The right password gets in.
    let ha = Observer::connect_as(broker.port, &["jarvis/#"], Some(("jarvis", "right"))).await;
    let mut right = settings(broker.port);
    right.credentials = Some(("jarvis".into(), Secret::new("right")));
    let token = CancellationToken::new();
    let _handle = mqtt::spawn(right, Arc::clone(&brain), brain, None, token.clone()).unwrap();
    ha.wait_topic("jarvis/status", |p| p == "online").await;
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_stay_out_of_topics_and_ids() {
    let lab = lab().await;
    lab.discovered().await;
    let name = "evil/+/#\"name\" Küche 🚀";
    lab.fake
        .add_guest(FakeGuest::qemu(4242, name, "pve").running());
    lab.fake.with_cluster(|cluster| {
        cluster
            .storages
            .push(FakeStorage::new("backup.nfs+#/x", "pve", "nfs", "backup"));
    });
    let config = lab
        .ha
        .wait_json(&config_topic("guest_4242"), |_| true)
        .await;
    assert_eq!(config["dev"]["name"], format!("{name} (VM 4242)"));
    let entity = config["cmps"]["cpu"]["default_entity_id"].as_str().unwrap();
    assert!(
        entity.starts_with("sensor.")
            && entity[7..]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "{entity}"
    );
    let storage = lab
        .ha
        .wait_for("the hostile storage", |last, _| {
            last.keys()
                .find(|t| t.starts_with("homeassistant/device/jarvis_homelab_storage_pve_backup"))
                .cloned()
        })
        .await;
    let object_id = storage.split('/').nth(2).unwrap();
    assert!(
        object_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'),
        "{object_id}"
    );
    let payload: Value = serde_json::from_str(&lab.ha.last(&storage).unwrap()).unwrap();
    assert_eq!(payload["dev"]["name"], "backup.nfs+#/x (pve)");
    let state_topic = payload["cmps"]["used"]["stat_t"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(state_topic.split('/').count(), 4, "{state_topic}");
    lab.ha
        .wait_json(&state_topic, |v| v["used"].is_number())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_says_offline_and_a_restart_removes_devices_gone_meanwhile() {
    let mut lab = lab().await;
    lab.discovered().await;
    lab.token.cancel();
    tokio::time::timeout(common::LIMIT, lab.handle.take().unwrap().join())
        .await
        .expect("stops in time");
    lab.ha.wait_topic("jarvis/status", |p| p == "offline").await;

    // While Jarvis is down, a guest is deleted; the next Jarvis finds it in the retained
    // availability and removes it after the grace period.
    lab.fake.remove_guest(102);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.audit.path = dir.path().join("audit.jsonl");
    let brain = Arc::new(Brain::new(&config, Some(client(&lab.fake))).unwrap());
    let token = CancellationToken::new();
    let _handle = mqtt::spawn(
        settings(lab.broker.port),
        Arc::clone(&brain),
        brain,
        None,
        token.clone(),
    )
    .unwrap();
    lab.ha.wait_topic("jarvis/status", |p| p == "online").await;
    lab.ha
        .wait_topic("jarvis/guest/102/availability", |p| p == "offline")
        .await;
    lab.ha
        .wait_topic(&config_topic("guest_102"), str::is_empty)
        .await;
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jarvis_serve_publishes_commands_and_says_offline_on_shutdown() {
    let broker = Mosquitto::start().await;
    let fake = FakeProxmox::homelab().await;
    let ha = Observer::connect(broker.port, &["homeassistant/#", "jarvis/#"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config();
    config.audit.path = dir.path().join("audit.jsonl");
    config.proxmox = fake.config();
    config.mqtt = MqttConfig {
        enabled: true,
        host: "127.0.0.1".into(),
        port: broker.port,
        poll_secs: 1,
        grace_secs: 5,
        birth_delay_ms_max: 10,
        ..MqttConfig::default()
    };
    let app = common::spawn_app(config).await;
    ha.wait_topic("jarvis/status", |p| p == "online").await;
    ha.wait_json(&config_topic("guest_100"), |_| true).await;
    ha.wait_json("jarvis/guest/100/state", |v| v["status"] == "running")
        .await;

    // A typed command shows as Jarvis's last command and reply, and fires the event entity.
    let mark = ha.mark();
    let http = app.http_addr.unwrap();
    let reply = reqwest::Client::new()
        .post(format!("http://{http}/v1/command"))
        .json(&serde_json::json!({"text": "status of node pve"}))
        .send()
        .await
        .unwrap();
    assert!(
        reply.status().is_success(),
        "{}",
        reply.text().await.unwrap()
    );
    let said = ha
        .wait_json("jarvis/server/conversation", |v| {
            v["text"] == "status of node pve"
        })
        .await;
    assert_eq!(said["channel"], "http");
    assert!(!said["reply"].as_str().unwrap().is_empty());
    let event = ha
        .wait_for("a command event", |_, log| {
            log[mark..]
                .iter()
                .filter(|s| s.topic == "jarvis/server/event")
                .find_map(|s| serde_json::from_str::<Value>(&s.payload).ok())
        })
        .await;
    assert_eq!(event["event_type"], "command");
    // /health reports the broker connection.
    let health: Value = reqwest::get(format!("http://{http}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["mqtt"]["connected"], true, "{health}");

    app.shutdown.cancel();
    tokio::time::timeout(common::LIMIT, app.finished)
        .await
        .expect("stops in time")
        .unwrap()
        .unwrap();
    ha.wait_topic("jarvis/status", |p| p == "offline").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_configured_ca_and_a_clear_error_without_it() {
    let broker = Mosquitto::with_tls().await;
    let tls_port = broker.tls_port.unwrap();
    let fake = FakeProxmox::homelab().await;
    let ha = Observer::connect(broker.port, &["homeassistant/#", "jarvis/#"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.audit.path = dir.path().join("audit.jsonl");
    let brain = Arc::new(Brain::new(&config, Some(client(&fake))).unwrap());

    // The system's CAs do not know the broker's: refused, with the setting to check.
    let mut untrusted = settings(tls_port);
    untrusted.tls = Some(mqtt::config::TlsSettings { ca_file: None });
    let token = CancellationToken::new();
    let handle = mqtt::spawn(
        untrusted,
        Arc::clone(&brain),
        Arc::clone(&brain),
        None,
        token.clone(),
    )
    .unwrap();
    let mut link = handle.link.clone();
    let state = tokio::time::timeout(common::LIMIT, link.wait_for(|s| s.failures >= 2))
        .await
        .expect("retried in time")
        .unwrap()
        .clone();
    let error = state.last_error.unwrap();
    assert!(
        error.contains("TLS") && error.contains("mqtt.ca_file"),
        "{error}"
    );
    token.cancel();
    handle.join().await;

    // With the CA file: connected over TLS, discovery as usual.
    let mut trusted = settings(tls_port);
    trusted.tls = Some(mqtt::config::TlsSettings {
        ca_file: Some(broker.ca_file()),
    });
    let token = CancellationToken::new();
    let _handle = mqtt::spawn(trusted, Arc::clone(&brain), brain, None, token.clone()).unwrap();
    ha.wait_topic("jarvis/status", |p| p == "online").await;
    ha.wait_json(&config_topic("guest_100"), |_| true).await;
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_garbage_is_capped_and_buttons_still_work() {
    let lab = lab().await;
    lab.discovered().await;
    let mark = lab.ha.mark();
    for i in 0..200 {
        lab.ha
            .publish("jarvis/guest/101/command", format!("garbage {i}"), false)
            .await;
    }
    let errors = |log: &[Seen]| {
        log[mark..]
            .iter()
            .filter(|s| s.topic == "jarvis/server/event" && s.payload.contains("\"error\""))
            .count()
    };
    lab.ha
        .wait_for("the flood's garbage echoed back", |_, log| {
            (log[mark..]
                .iter()
                .filter(|s| s.topic == "jarvis/guest/101/command")
                .count()
                == 200)
                .then_some(())
        })
        .await;
    lab.ha
        .wait_for("20 error events", |_, log| {
            (errors(log) >= 20).then_some(())
        })
        .await;
    lab.ha
        .publish("jarvis/guest/103/command", "start", false)
        .await;
    lab.ha
        .wait_json("jarvis/guest/103/action", |v| v["decision"] == "allowed")
        .await;
    let log = lab.ha.since(0);
    assert_eq!(errors(&log), 20, "error events are capped per window");
}

/// The publisher is held up by a slow Proxmox poll while a flood of garbage and then a press
/// arrive: more than it queues. The flood's oldest messages are the ones dropped, so the press
/// that came last is still carried out (a queue that refuses the newest lost it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_behind_a_flood_is_kept_while_a_slow_poll_holds_the_publisher_up() {
    let lab = lab().await;
    lab.discovered().await;
    let before = lab.fake.count("GET /cluster/resources");
    lab.fake
        .delay("GET /cluster/resources", Duration::from_millis(1500));
    // A poll is inside the slow request once the fake has seen it.
    tokio::time::timeout(common::LIMIT, async {
        while lab.fake.count("GET /cluster/resources") == before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("a poll within the limit");
    for i in 0..200 {
        lab.ha
            .publish("jarvis/guest/101/command", format!("garbage {i}"), false)
            .await;
    }
    lab.ha
        .publish("jarvis/guest/103/command", "start", false)
        .await;
    lab.fake.heal();
    let action = lab
        .ha
        .wait_json("jarvis/guest/103/action", |v| v["decision"] == "allowed")
        .await;
    assert_eq!(action["action"], "start", "{action}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_what_keeps_jarvis_from_acting() {
    let lab = lab_with(|config, _| {
        config.audit.path = "/dev/null/not-a-dir/audit.jsonl".into();
    })
    .await;
    let health = lab
        .ha
        .wait_json("jarvis/server/state", |v| v["proxmox"] == "online")
        .await;
    assert_eq!(health["health"], "degraded");
    let problems = health["detail"]["problems"].as_array().unwrap();
    assert!(
        problems[0].as_str().unwrap().contains("audit.path"),
        "{health}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_are_refreshed_periodically_and_discovery_retained_when_asked() {
    let lab = lab_with(|_, settings| {
        settings.refresh = Duration::from_millis(800);
        settings.retain_discovery = true;
    })
    .await;
    lab.discovered().await;
    let mark = lab.ha.mark();
    every_guest_state_since(&lab.ha, mark, "every guest state again, unchanged").await;
    // A subscriber that comes later gets the configs from the broker.
    let late = Observer::connect(lab.broker.port, &["homeassistant/device/+/config"]).await;
    let config = late
        .wait_json(&config_topic("guest_100"), |v| v["cmps"].is_object())
        .await;
    assert_eq!(config["dev"]["name"], "haos (VM 100)");
}

/// Waits until the state of each of the five running and stopped guests (templates have none)
/// was published after `mark`.
async fn every_guest_state_since(ha: &Observer, mark: usize, what: &str) {
    ha.wait_for(what, |_, log| {
        let states = log[mark..]
            .iter()
            .filter(|s| s.topic.starts_with("jarvis/guest/") && s.topic.ends_with("/state"))
            .count();
        (states >= 5).then_some(())
    })
    .await;
}

/// An event memory and Frigate for one Jarvis: the store, and the sending side of Frigate's
/// status and arrivals (the Frigate subscriber's, in `jarvis serve`).
struct Memory {
    store: EventStore,
    status: tokio::sync::watch::Sender<FrigateStatus>,
    link: FrigateLink,
    feed: EventFeed,
}

fn memory(path: &std::path::Path, frigate_enabled: bool) -> Memory {
    let store = EventStore::open(&EventsConfig {
        path: path.to_owned(),
        ..EventsConfig::default()
    });
    let (status, link) = FrigateLink::channel();
    let feed = EventFeed {
        store: store.clone(),
        frigate: link.clone(),
        frigate_enabled,
        tz: jiff::tz::TimeZone::UTC,
    };
    Memory {
        store,
        status,
        link,
        feed,
    }
}

/// A Jarvis publishing the homelab and `memory` to the broker.
fn jarvis_with_memory(
    port: u16,
    fake: &FakeProxmox,
    dir: &std::path::Path,
    memory: &Memory,
) -> (MqttHandle, CancellationToken) {
    let mut config = Config::default();
    config.audit.path = dir.join("audit.jsonl");
    let brain = Arc::new(Brain::new(&config, Some(client(fake))).unwrap());
    let token = CancellationToken::new();
    let handle = mqtt::spawn(
        settings(port),
        Arc::clone(&brain),
        brain,
        Some(memory.feed.clone()),
        token.clone(),
    )
    .unwrap();
    (handle, token)
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// `2026-12-04T06:30:00+00:00`, as the entities show times.
fn shown(ms: i64) -> String {
    jiff::Timestamp::from_second(ms.div_euclid(1000))
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

fn object(id: &str, camera: &str, label: &str, start_ms: i64) -> Event {
    Event {
        camera: Some(camera.into()),
        label: Some(label.into()),
        score: Some(0.8),
        ..Event::new(
            format!("frigate:{id}"),
            Source::Frigate,
            KIND_OBJECT,
            start_ms,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frigate_entities_show_the_event_memory_and_follow_frigate() {
    let broker = Mosquitto::start().await;
    let fake = FakeProxmox::homelab().await;
    let ha = Observer::connect(broker.port, &["homeassistant/#", "jarvis/#"]).await;
    let dir = tempfile::tempdir().unwrap();
    let memory = memory(&dir.path().join("events.db"), true);
    // What Frigate's subscriber stored earlier: two people today on the front door (one
    // recognised, one described), a car on the driveway, a person yesterday.
    let now = now_ms();
    let midnight = now - now.rem_euclid(86_400_000);
    let today = (now - 10 * 60_000).max(midnight + 1000);
    for event in [
        Event {
            sub_label: Some("Alice".into()),
            end_ms: Some(today + 20_000),
            ..object("p1", "front_door", "person", today)
        },
        Event {
            description: Some("A courier leaves a parcel on the porch".into()),
            ..object("p2", "front_door", "person", today + 1000)
        },
        object("c1", "driveway", "car", today),
        Event {
            end_ms: Some(midnight - 3 * 3_600_000 + 60_000),
            ..object("y1", "front_door", "person", midnight - 3 * 3_600_000)
        },
    ] {
        memory.store.record(event).await.unwrap();
    }
    memory.store.flush().await.unwrap();
    let (_handle, token) = jarvis_with_memory(broker.port, &fake, dir.path(), &memory);

    // Frigate has said nothing yet: its entities exist (the cameras the memory knows) but are
    // unavailable.
    ha.wait_topic("jarvis/frigate/availability", |p| p == "offline")
        .await;
    let frigate = ha
        .wait_json("homeassistant/device/jarvis_frigate/config", |v| {
            v["cmps"].is_object()
        })
        .await;
    assert_eq!(frigate["o"]["name"], "Jarvis");
    assert_eq!(
        frigate["avty"],
        serde_json::json!([{"t": "jarvis/status"}, {"t": "jarvis/frigate/availability"}])
    );
    let camera = ha
        .wait_json(
            "homeassistant/device/jarvis_camera_front_door/config",
            |v| v["cmps"].is_object(),
        )
        .await;
    assert_eq!(camera["dev"]["name"], "Front door (Jarvis)");
    assert_eq!(camera["avty_mode"], "all");
    assert_eq!(
        camera["cmps"]["arrival"]["evt_typ"],
        serde_json::json!(["arrival"])
    );
    ha.wait_json("homeassistant/device/jarvis_camera_driveway/config", |_| {
        true
    })
    .await;

    let front = ha
        .wait_json("jarvis/camera/front_door/state", |v| v["people_today"] == 2)
        .await;
    assert_eq!(front["last_person"], shown(today + 1000), "{front}");
    assert_eq!(front["last_face"], "Alice");
    assert_eq!(front["last_face_at"], shown(today));
    assert_eq!(
        front["last_description"],
        "A courier leaves a parcel on the porch"
    );
    let driveway = ha
        .wait_json("jarvis/camera/driveway/state", |v| v["people_today"] == 0)
        .await;
    assert_eq!(driveway["last_person"], Value::Null);
    let house = ha
        .wait_json("jarvis/frigate/state", |v| v["people_today"] == 2)
        .await;
    assert_eq!(house["last_person_camera"], "front_door");
    assert_eq!(house["last_face"], "Alice");

    // Jarvis's own device shows the memory's size.
    let server = ha
        .wait_json("homeassistant/device/jarvis_server/config", |_| true)
        .await;
    assert_eq!(server["cmps"]["events"]["ent_cat"], "diagnostic");
    assert_eq!(server["cmps"]["events_size"]["unit_of_meas"], "B");
    let health = ha
        .wait_json("jarvis/server/state", |v| v["events"] == 4)
        .await;
    assert!(health["events_bytes"].as_u64().unwrap() > 0, "{health}");

    // Frigate comes up, with a camera the memory has no event from yet.
    memory.status.send_modify(|status| {
        status.availability = Availability::Online;
        status.since_ms = Some(now);
        status.version = Some("0.16.2".into());
        status.cameras = ["driveway", "front_door", "garage"]
            .map(str::to_owned)
            .into();
    });
    ha.wait_topic("jarvis/frigate/availability", |p| p == "online")
        .await;
    ha.wait_json("homeassistant/device/jarvis_frigate/config", |v| {
        v["dev"]["sw"] == "0.16.2"
    })
    .await;
    ha.wait_json("homeassistant/device/jarvis_camera_garage/config", |_| true)
        .await;
    ha.wait_topic("jarvis/camera/garage/availability", |p| p == "online")
        .await;
    ha.wait_json("jarvis/camera/garage/state", |v| v["people_today"] == 0)
        .await;

    // Someone arrives: the camera's event fires at once, with what automations need.
    let arrived = now_ms();
    let arrival = Event {
        zones: vec!["porch".into()],
        attributes: Some(serde_json::json!({
            "snapshot_url": "http://frigate.lan:5000/api/events/1796.5-abc/snapshot.jpg"
        })),
        ..object("1796.5-abc", "front_door", "person", arrived)
    };
    memory.link.arrivals.send(arrival.clone()).unwrap();
    let fired = ha
        .wait_json("jarvis/camera/front_door/event", |v| {
            v["event_type"] == "arrival"
        })
        .await;
    assert_eq!(fired["camera"], "front_door");
    assert_eq!(fired["label"], "person");
    assert_eq!(fired["zones"], serde_json::json!(["porch"]));
    assert_eq!(fired["sub_label"], Value::Null);
    assert_eq!(
        fired["snapshot_url"],
        "http://frigate.lan:5000/api/events/1796.5-abc/snapshot.jpg"
    );
    assert_eq!(fired["id"], "1796.5-abc");
    assert!(
        !ha.snapshot()["jarvis/camera/front_door/event"].retain,
        "events are not retained"
    );
    ha.wait_json("jarvis/camera/front_door/state", |v| {
        v["last_person"] == shown(arrived)
    })
    .await;
    // Once the subscriber has stored it, the next poll counts it.
    memory.store.record(arrival).await.unwrap();
    memory.store.flush().await.unwrap();
    ha.wait_json("jarvis/camera/front_door/state", |v| v["people_today"] == 3)
        .await;
    ha.wait_json("jarvis/frigate/state", |v| v["people_today"] == 3)
        .await;

    // HA restarts: every Frigate config again, then its states.
    let mark = ha.mark();
    ha.publish("homeassistant/status", "online", false).await;
    ha.wait_for("Frigate's configs and states again", |_, log| {
        let topics: Vec<&str> = log[mark..].iter().map(|s| s.topic.as_str()).collect();
        let config = topics
            .iter()
            .position(|t| *t == "homeassistant/device/jarvis_camera_garage/config")?;
        let state = topics
            .iter()
            .position(|t| *t == "jarvis/camera/garage/state")?;
        topics
            .contains(&"homeassistant/device/jarvis_frigate/config")
            .then_some(config < state)
    })
    .await;

    // Nothing changes: nothing is sent.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mark = ha.mark();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(ha.since(mark), vec![], "an unchanged memory sends nothing");

    // Frigate goes away for longer than the grace period: unavailable, nothing removed.
    let mark = ha.mark();
    memory.status.send_modify(|status| {
        status.availability = Availability::Offline;
        status.cameras.clear();
    });
    ha.wait_topic("jarvis/frigate/availability", |p| p == "offline")
        .await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let removed: Vec<Seen> = ha
        .since(mark)
        .into_iter()
        .filter(|s| s.payload.is_empty())
        .collect();
    assert_eq!(removed, vec![], "a Frigate that is down removes nothing");
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cameras_gone_meanwhile_are_removed_and_frigate_off_removes_its_entities() {
    let broker = Mosquitto::start().await;
    let fake = FakeProxmox::homelab().await;
    let ha = Observer::connect(broker.port, &["homeassistant/#", "jarvis/#"]).await;
    let dir = tempfile::tempdir().unwrap();
    let online = |cameras: &[&str]| FrigateStatus {
        availability: Availability::Online,
        cameras: cameras.iter().map(|c| (*c).to_owned()).collect(),
        ..FrigateStatus::default()
    };

    // A first run shows cameras a and b.
    let first = memory(&dir.path().join("first.db"), true);
    first.status.send_replace(online(&["a", "b"]));
    let (handle, token) = jarvis_with_memory(broker.port, &fake, dir.path(), &first);
    for camera in ["a", "b"] {
        ha.wait_topic(&format!("jarvis/camera/{camera}/availability"), |p| {
            p == "online"
        })
        .await;
    }
    token.cancel();
    tokio::time::timeout(common::LIMIT, handle.join())
        .await
        .expect("stops in time");
    ha.wait_topic("jarvis/status", |p| p == "offline").await;

    // Frigate loses b while Jarvis is down (and the new memory never saw it): the next run
    // finds b in its retained availability and removes it after the grace period.
    let second = memory(&dir.path().join("second.db"), true);
    second.status.send_replace(online(&["a"]));
    let (handle, token) = jarvis_with_memory(broker.port, &fake, dir.path(), &second);
    ha.wait_topic("homeassistant/device/jarvis_camera_b/config", str::is_empty)
        .await;
    for topic in ["jarvis/camera/b/availability", "jarvis/camera/b/state"] {
        ha.wait_topic(topic, str::is_empty).await;
    }
    assert!(
        ha.last("homeassistant/device/jarvis_camera_a/config")
            .is_some_and(|p| !p.is_empty())
    );
    token.cancel();
    tokio::time::timeout(common::LIMIT, handle.join())
        .await
        .expect("stops in time");

    // Frigate turned off: what Jarvis showed of it goes at once.
    let off = memory(&dir.path().join("second.db"), false);
    let (_handle, token) = jarvis_with_memory(broker.port, &fake, dir.path(), &off);
    for topic in [
        "homeassistant/device/jarvis_camera_a/config",
        "jarvis/camera/a/availability",
        "homeassistant/device/jarvis_frigate/config",
        "jarvis/frigate/availability",
    ] {
        ha.wait_topic(topic, str::is_empty).await;
    }
    // The memory's size stays on Jarvis's device.
    ha.wait_json("homeassistant/device/jarvis_server/config", |v| {
        v["cmps"]["events"].is_object()
    })
    .await;
    let late = Observer::connect(broker.port, &["jarvis/camera/#", "jarvis/frigate/#"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(late.snapshot().len(), 0, "{:?}", late.snapshot());
    token.cancel();
}
