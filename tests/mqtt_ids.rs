//! Entity ids across an upgrade, against a real Mosquitto broker and the fake Proxmox API.
//!
//! `tests/data/mqtt_ids_989d008.json` holds every discovery config that Jarvis 989d008 (the last
//! version with hashed entity ids) published for the homelab fake, as HA kept them retained.
//! The upgrade test leaves those on the broker, starts the current Jarvis and checks that it
//! publishes to the same config topics, with the same device identifiers, unique ids and
//! state/command topics (so HA keeps every entity and creates no duplicate), and only the
//! suggested entity ids (`default_entity_id`) changed, to hash-free ones. The collision test
//! adds guests and storages whose names collide, or only seem to.
//!
//! `JARVIS_WRITE_ID_FIXTURE=1 cargo test --test mqtt_ids` rewrites the fixture from the code
//! under test (only ever done with 989d008 checked out).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::fake_proxmox::{FakeGuest, FakeProxmox, FakeStorage, fast_timings};
use common::mosquitto::{Mosquitto, Observer};
use jarvis::brain::Brain;
use jarvis::config::Config;
use jarvis::mqtt::{self, MqttConfig, MqttHandle, MqttSettings};
use jarvis::proxmox::{Proxmox, Timings};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

struct Lab {
    _broker: Mosquitto,
    /// The observer's log position when Jarvis started.
    started: usize,
    fake: FakeProxmox,
    ha: Observer,
    token: CancellationToken,
    _handle: MqttHandle,
    _dir: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/mqtt_ids_989d008.json")
}

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
    // An installation that kept its discovery retained: the harder case for an upgrade.
    settings.retain_discovery = true;
    settings
}

/// Starts Jarvis against `fake` after `before` ran with the broker up (to leave what an older
/// version left).
async fn lab(fake: FakeProxmox, before: Option<&BTreeMap<String, String>>) -> Lab {
    let broker = Mosquitto::start().await;
    let ha = Observer::connect(broker.port, &["homeassistant/#", "jarvis/#"]).await;
    if let Some(old) = before {
        for (topic, payload) in old {
            ha.publish(topic, payload.as_bytes().to_vec(), true).await;
        }
        for topic in old.keys() {
            ha.wait_topic(topic, |p| !p.is_empty()).await;
        }
    }
    let started = ha.mark();
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
    let token = CancellationToken::new();
    let handle = mqtt::spawn(
        settings(broker.port),
        Arc::clone(&brain),
        brain,
        None,
        token.clone(),
    )
    .unwrap();
    Lab {
        _broker: broker,
        started,
        fake,
        ha,
        token,
        _handle: handle,
        _dir: dir,
    }
}

/// The homelab's config topics (Jarvis's own device included).
fn homelab_topics() -> Vec<String> {
    let mut ids: Vec<String> = vec!["node_pve".into(), "node_agent1".into()];
    ids.extend((100..=104).map(|vmid| format!("guest_{vmid}")));
    for node in ["pve", "agent1"] {
        for storage in ["local", "local-lvm", "nas"] {
            ids.push(format!("storage_{node}_{storage}"));
        }
    }
    let mut topics: Vec<String> = ids
        .iter()
        .map(|id| format!("homeassistant/device/jarvis_homelab_{id}/config"))
        .collect();
    topics.push("homeassistant/device/jarvis_server/config".into());
    topics
}

impl Lab {
    /// Waits until every topic got a config from this run, returns the latest of each.
    async fn configs(&self, topics: &[String]) -> BTreeMap<String, Value> {
        let mut configs = BTreeMap::new();
        for topic in topics {
            let config = self
                .ha
                .wait_for(topic, |_, log| {
                    log[self.started..]
                        .iter()
                        .rev()
                        .find(|m| &m.topic == topic)
                        .and_then(|m| serde_json::from_str::<Value>(&m.payload).ok())
                        .filter(|v| v["cmps"].is_object())
                })
                .await;
            configs.insert(topic.clone(), config);
        }
        configs
    }

    /// The config of a device that appeared during the test.
    async fn config(&self, id: &str, check: impl Fn(&Value) -> bool) -> Value {
        self.ha
            .wait_json(
                &format!("homeassistant/device/jarvis_homelab_{id}/config"),
                check,
            )
            .await
    }
}

fn entity(config: &Value, key: &str) -> String {
    config["cmps"][key]["default_entity_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {config}"))
        .to_owned()
}

/// Whether an entity id carries what the old scheme added: an 8-digit hex hash.
fn has_hash(entity: &str) -> bool {
    entity.split(['.', '_']).any(|part| {
        part.len() == 8
            && part.bytes().all(|b| b.is_ascii_hexdigit())
            && part.bytes().any(|b| b.is_ascii_digit())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_keeps_every_unique_id_and_topic_and_drops_the_hashes() {
    let topics = homelab_topics();
    if std::env::var_os("JARVIS_WRITE_ID_FIXTURE").is_some() {
        let lab = lab(FakeProxmox::homelab().await, None).await;
        let configs = lab.configs(&topics).await;
        let raw: BTreeMap<String, String> = configs
            .iter()
            .map(|(t, v)| (t.clone(), serde_json::to_string(v).unwrap()))
            .collect();
        let text = serde_json::to_string_pretty(&raw).unwrap();
        std::fs::write(fixture_path(), text + "\n").unwrap();
        return;
    }
    let old: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(fixture_path()).unwrap()).unwrap();
    assert_eq!(
        old.keys().cloned().collect::<Vec<_>>(),
        {
            let mut sorted = topics.clone();
            sorted.sort();
            sorted
        },
        "the fixture covers the homelab"
    );
    assert!(
        old.values()
            .any(|p| p.contains("media_server_5337cc9d_101")),
        "the fixture is the hashed scheme"
    );

    // The old configs are retained at the broker; the new Jarvis replaces each one in place.
    let lab = lab(FakeProxmox::homelab().await, Some(&old)).await;
    let old: BTreeMap<String, Value> = old
        .into_iter()
        .map(|(t, p)| (t, serde_json::from_str(&p).unwrap()))
        .collect();
    let new = lab.configs(&topics).await;
    for (topic, before) in &old {
        let after = &new[topic];
        assert_eq!(after["dev"]["ids"], before["dev"]["ids"], "{topic}");
        assert_eq!(
            after["dev"]["via_device"], before["dev"]["via_device"],
            "{topic}"
        );
        let after_cmps = after["cmps"].as_object().unwrap();
        for (key, was) in before["cmps"].as_object().unwrap() {
            let now = after_cmps
                .get(key)
                .unwrap_or_else(|| panic!("{topic}: {key} is gone"));
            for field in ["p", "uniq_id", "stat_t", "cmd_t", "json_attr_t", "pl_prs"] {
                assert_eq!(now.get(field), was.get(field), "{topic} {key} {field}");
            }
            let (domain, object) = now["default_entity_id"]
                .as_str()
                .unwrap()
                .split_once('.')
                .unwrap();
            assert_eq!(domain, was["p"].as_str().unwrap(), "{topic} {key}");
            assert!(object.ends_with(&format!("_{key}")), "{object} {key}");
        }
    }
    // Nothing was removed on the way (an empty config would delete the device in HA).
    let log = lab.ha.since(0);
    assert!(
        !log.iter()
            .any(|m| m.topic.starts_with("homeassistant/device/") && m.payload.is_empty()),
        "a config was cleared during the upgrade"
    );

    let config = |id: &str| &new[&format!("homeassistant/device/jarvis_homelab_{id}/config")];
    assert_eq!(
        entity(config("guest_101"), "status"),
        "sensor.media_server_status"
    );
    assert_eq!(
        entity(config("guest_101"), "start"),
        "button.media_server_start"
    );
    assert_eq!(
        entity(config("guest_101"), "running"),
        "binary_sensor.media_server_running"
    );
    assert_eq!(entity(config("guest_100"), "cpu"), "sensor.haos_cpu");
    assert_eq!(entity(config("node_pve"), "cpu"), "sensor.pve_cpu");
    assert_eq!(
        entity(config("storage_pve_local-lvm"), "used"),
        "sensor.pve_local_lvm_used"
    );
    assert_eq!(
        entity(config("storage_agent1_nas"), "used_pct"),
        "sensor.agent1_nas_used_pct"
    );
    assert_eq!(
        entity(
            &new["homeassistant/device/jarvis_server/config"],
            "last_reply"
        ),
        "sensor.jarvis_last_reply"
    );
    // No vmid and no hash anywhere in the homelab, where nothing collides.
    for config in new.values() {
        for c in config["cmps"].as_object().unwrap().values() {
            let id = c["default_entity_id"].as_str().unwrap();
            assert!(!has_hash(id), "{id}");
            assert!(!(100..=104).any(|v| id.contains(&v.to_string())), "{id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_names_that_really_collide_get_a_suffix() {
    let lab = lab(FakeProxmox::homelab().await, None).await;
    lab.configs(&homelab_topics()).await;

    // Two guests named alike on different nodes; one named like a node; one named like a
    // storage (no entity in common: no suffix); two storages whose names slug alike.
    lab.fake
        .add_guest(FakeGuest::qemu(110, "web", "pve").running());
    lab.fake
        .add_guest(FakeGuest::lxc(111, "web", "agent1").running());
    lab.fake.add_guest(FakeGuest::qemu(112, "pve", "agent1"));
    lab.fake.add_guest(FakeGuest::lxc(113, "pve-nas", "agent1"));
    lab.fake
        .add_guest(FakeGuest::qemu(114, "Media.Server", "agent1"));
    lab.fake.with_cluster(|cluster| {
        cluster
            .storages
            .push(FakeStorage::new("backup.1", "pve", "nfs", "backup"));
        cluster
            .storages
            .push(FakeStorage::new("backup-1", "pve", "nfs", "backup"));
    });

    let web = lab
        .config("guest_110", |v| {
            v["cmps"]["status"]["default_entity_id"] == "sensor.web_110_status"
        })
        .await;
    assert_eq!(entity(&web, "start"), "button.web_110_start");
    let web2 = lab
        .config("guest_111", |v| {
            v["cmps"]["status"]["default_entity_id"] == "sensor.web_111_status"
        })
        .await;
    assert_eq!(entity(&web2, "disk"), "sensor.web_111_disk");
    // A guest named like a node: the guest gets its vmid, the node keeps its name.
    let guest_pve = lab
        .config("guest_112", |v| {
            v["cmps"]["cpu"]["default_entity_id"] == "sensor.pve_112_cpu"
        })
        .await;
    assert_eq!(guest_pve["dev"]["ids"][0], "jarvis_homelab_guest_112");
    let node = lab.config("node_pve", |_| true).await;
    assert_eq!(entity(&node, "cpu"), "sensor.pve_cpu");
    // Named like the storage pve/nas, but no entity id in common: both stay plain.
    let pve_nas = lab
        .config("guest_113", |v| v["cmps"]["cpu"].is_object())
        .await;
    assert_eq!(entity(&pve_nas, "cpu"), "sensor.pve_nas_cpu");
    let nas = lab.config("storage_pve_nas", |_| true).await;
    assert_eq!(entity(&nas, "used"), "sensor.pve_nas_used");
    // `Media.Server` slugs like `media-server` (101): both get their vmid.
    lab.config("guest_114", |v| {
        v["cmps"]["status"]["default_entity_id"] == "sensor.media_server_114_status"
    })
    .await;
    lab.config("guest_101", |v| {
        v["cmps"]["status"]["default_entity_id"] == "sensor.media_server_101_status"
    })
    .await;
    // Storages that slug alike: a short hash, stable, different for each.
    let topics: Vec<String> = lab
        .ha
        .snapshot()
        .keys()
        .filter(|t| t.starts_with("homeassistant/device/jarvis_homelab_storage_pve_backup"))
        .cloned()
        .collect();
    assert_eq!(topics.len(), 2, "{topics:?}");
    let mut used = Vec::new();
    for topic in &topics {
        let config = lab
            .ha
            .wait_json(topic, |v| v["cmps"]["used"].is_object())
            .await;
        let id = entity(&config, "used");
        assert!(id.starts_with("sensor.pve_backup_1_"), "{id}");
        assert!(has_hash(&id), "{id}");
        used.push(id);
    }
    assert_ne!(used[0], used[1]);
    // Unique ids are untouched by all this.
    assert_eq!(
        web["cmps"]["status"]["uniq_id"],
        "jarvis_homelab_guest_110_status"
    );
}
