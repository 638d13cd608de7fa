//! The speech backends (`[[stt.backends]]`, `[[tts.backends]]`, `[[wake.backends]]`) on the
//! Jarvis device: one diagnostic sensor per backend, its state (`up`, `down`, `loop`) with the
//! last `describe` latency, the last error, requests routed and where it was found as attributes.
//!
//! Design: a discovery message of its own (`<prefix>/device/<server id>_backends/config`) with
//! the same device id as Jarvis's, so Home Assistant shows the sensors on the Jarvis device while
//! [`super::discovery::server_config`] stays as it is. The states share one retained JSON topic,
//! `<base>/server/backends`, keyed by sensor; it is sent when it changes (at each poll) and with
//! every full publish.
//!
//! Backends removed from the configuration: at each connect the publisher reads back the
//! retained discovery config an earlier run left at the broker ([`withdraw`]); a sensor in it
//! that is no longer configured is sent once as `{"p": "sensor"}` (Home Assistant's way to remove
//! one component of a device), and with no backend left the config is cleared (an empty
//! retained payload), so HA forgets them.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tracing::info;

use super::discovery::Naming;
use super::lifecycle::Out;
use super::slug::entity_name;
use crate::stt::backends::{Backends, Service, state_of};

/// The states a backend sensor can show.
const STATES: &[&str] = &["up", "down", "loop"];

/// What the publisher keeps of the backends.
#[derive(Debug)]
pub struct SpeechBackends {
    sets: Vec<Arc<Backends>>,
    /// The state payload last sent, to send only changes.
    last: Option<String>,
    /// Retain the discovery config (`mqtt.retain_discovery`; otherwise HA's birth message gets
    /// it again, as for every other device).
    retain_discovery: bool,
}

/// One backend as a sensor.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    /// The key in `cmps` and in the state JSON: `<service>_<name slug>`, unique.
    key: String,
    /// The sensor's name: "Wake backend gpu-box".
    name: String,
    state: Value,
}

impl SpeechBackends {
    /// The backends of `sets` (empty sets are fine: nothing is published for them).
    pub fn new(sets: Vec<Arc<Backends>>) -> Self {
        Self {
            sets,
            last: None,
            retain_discovery: false,
        }
    }

    /// Retains the discovery config at the broker (`mqtt.retain_discovery`).
    #[must_use]
    pub fn retaining_discovery(mut self, retain: bool) -> Self {
        self.retain_discovery = retain;
        self
    }

    /// Whether there is any backend to show.
    pub fn is_empty(&self) -> bool {
        self.sets.iter().all(|set| set.all().is_empty())
    }

    fn entries(&self) -> Vec<Entry> {
        let mut entries: Vec<Entry> = Vec::new();
        for set in &self.sets {
            let (prefix, title) = match set.service() {
                Service::Stt => ("stt", "STT"),
                Service::Tts => ("tts", "TTS"),
                Service::Wake => ("wake", "Wake"),
            };
            for backend in set.all() {
                let health = backend.health();
                let mut key = format!("{prefix}_{}", entity_name(&backend.label, "backend"));
                if entries.iter().any(|e| e.key == key) {
                    key = format!("{key}_{}", entries.len());
                }
                let state = json!({
                    "state": state_of(&health),
                    "kind": if backend.is_local() { "local" } else { "remote" },
                    "addr": backend.config.addr.clone().or(health.found_at.clone()),
                    "priority": backend.config.priority,
                    "latency_ms": health.latency.map(|l| (l.as_secs_f64() * 10_000.0).round() / 10.0),
                    "last_error": health.last_error,
                    "requests": health.requests,
                });
                entries.push(Entry {
                    key,
                    name: format!("{title} backend {}", backend.label),
                    state,
                });
            }
        }
        entries
    }

    /// The discovery config and the states (on connect and HA's birth message).
    pub fn publish_all(&mut self, naming: &Naming, out: &mut Vec<Out>) {
        let entries = self.entries();
        if entries.is_empty() {
            return;
        }
        out.push(Out {
            topic: config_topic(naming),
            payload: config(naming, &entries),
            retain: self.retain_discovery,
        });
        let state = state(&entries);
        out.push(Out::retained(&state_topic(naming), state.clone()));
        self.last = Some(state);
    }

    /// The states, when they changed since they were last sent.
    pub fn publish_changes(&mut self, naming: &Naming, out: &mut Vec<Out>) {
        let entries = self.entries();
        if entries.is_empty() {
            return;
        }
        let state = state(&entries);
        if self.last.as_ref() != Some(&state) {
            out.push(Out::retained(&state_topic(naming), state.clone()));
            self.last = Some(state);
        }
    }
}

/// What to send for the retained discovery config `retained` an earlier run left at the broker:
/// nothing when every sensor in it is still configured (`current`, `None` for no backends);
/// otherwise the removal of the others (retained, so it replaces the old config at the broker).
pub fn withdraw(
    naming: &Naming,
    current: Option<&SpeechBackends>,
    retained: &[u8],
    out: &mut Vec<Out>,
) {
    let Ok(old) = serde_json::from_slice::<Value>(retained) else {
        return;
    };
    let entries = current.map(SpeechBackends::entries).unwrap_or_default();
    // A component already reduced to `{"p": ...}` was withdrawn by an earlier run.
    let gone: Vec<&String> = old["cmps"]
        .as_object()
        .map(|cmps| {
            cmps.iter()
                .filter(|(key, cmp)| {
                    cmp.as_object().is_some_and(|c| c.len() > 1)
                        && !entries.iter().any(|e| &e.key == *key)
                })
                .map(|(key, _)| key)
                .collect()
        })
        .unwrap_or_default();
    if gone.is_empty() {
        return;
    }
    info!(sensors = ?gone, "withdrawing the sensors of speech backends no longer configured");
    if entries.is_empty() {
        out.push(Out::retained(&config_topic(naming), ""));
        out.push(Out::retained(&state_topic(naming), ""));
        return;
    }
    let mut payload: Value = serde_json::from_str(&config(naming, &entries)).unwrap_or_default();
    if let Some(cmps) = payload["cmps"].as_object_mut() {
        for key in gone {
            cmps.insert(key.clone(), json!({ "p": "sensor" }));
        }
    }
    out.push(Out::retained(&config_topic(naming), payload.to_string()));
}

/// `<prefix>/device/<server id>_backends/config`.
pub fn config_topic(naming: &Naming) -> String {
    naming.config_topic(&format!("{}_backends", naming.server_id))
}

/// `<base>/server/backends`.
pub fn state_topic(naming: &Naming) -> String {
    format!("{}/server/backends", naming.base)
}

#[derive(Serialize)]
struct Sensor {
    p: &'static str,
    name: String,
    uniq_id: String,
    default_entity_id: String,
    dev_cla: &'static str,
    ops: &'static [&'static str],
    ent_cat: &'static str,
    ic: &'static str,
    stat_t: String,
    val_tpl: String,
    json_attr_t: String,
    json_attr_tpl: String,
}

fn config(naming: &Naming, entries: &[Entry]) -> String {
    let state_topic = state_topic(naming);
    let entity_base = entity_name(&naming.base, "jarvis");
    let mut components = Map::new();
    for entry in entries {
        let sensor = Sensor {
            p: "sensor",
            name: entry.name.clone(),
            uniq_id: format!("{}_backend_{}", naming.server_id, entry.key),
            default_entity_id: format!("sensor.{entity_base}_backend_{}", entry.key),
            dev_cla: "enum",
            ops: STATES,
            ent_cat: "diagnostic",
            ic: "mdi:server-network",
            stat_t: state_topic.clone(),
            val_tpl: format!("{{{{ value_json['{}'].state }}}}", entry.key),
            json_attr_t: state_topic.clone(),
            json_attr_tpl: format!("{{{{ value_json['{}'] | tojson }}}}", entry.key),
        };
        components.insert(
            entry.key.clone(),
            serde_json::to_value(sensor).unwrap_or_default(),
        );
    }
    json!({
        "dev": {
            "ids": [naming.server_id],
            "name": "Jarvis",
            "mf": "Jarvis",
            "mdl": "Homelab voice assistant",
            "sw": env!("CARGO_PKG_VERSION"),
        },
        "o": {
            "name": "Jarvis",
            "sw": env!("CARGO_PKG_VERSION"),
            "url": env!("CARGO_PKG_REPOSITORY"),
        },
        "avty": [{"t": naming.status_topic}],
        "avty_mode": "all",
        "qos": 1,
        "cmps": components,
    })
    .to_string()
}

fn state(entries: &[Entry]) -> String {
    let map: Map<String, Value> = entries
        .iter()
        .map(|e| (e.key.clone(), e.state.clone()))
        .collect();
    Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stt::backends::{BackendKind, SttBackendConfig};

    fn sets() -> Vec<Arc<Backends>> {
        let gpu = SttBackendConfig {
            name: Some("gpu box".into()),
            addr: Some("10.0.0.5:10400".into()),
            ..SttBackendConfig::default()
        };
        let local = SttBackendConfig {
            kind: BackendKind::Local,
            priority: 100,
            ..SttBackendConfig::default()
        };
        let wake = Backends::wake(&[gpu, local.clone()], None, "me".into());
        let stt = Backends::new(&[local], None, "me".into(), true, 30);
        vec![Arc::new(stt), Arc::new(wake)]
    }

    #[test]
    fn each_backend_is_a_diagnostic_sensor_on_the_jarvis_device() {
        let naming = Naming::new("homeassistant", "jarvis", "homelab");
        let mut backends = SpeechBackends::new(sets());
        let mut out = Vec::new();
        backends.publish_all(&naming, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].topic,
            "homeassistant/device/jarvis_server_backends/config"
        );
        let config: Value = serde_json::from_str(&out[0].payload).unwrap();
        assert_eq!(config["dev"]["ids"][0], "jarvis_server");
        let cmps = config["cmps"].as_object().unwrap();
        let keys: Vec<&String> = cmps.keys().collect();
        assert_eq!(keys, ["stt_local", "wake_gpu_box", "wake_local"]);
        let gpu = &cmps["wake_gpu_box"];
        assert_eq!(gpu["name"], "Wake backend gpu box");
        assert_eq!(gpu["ent_cat"], "diagnostic");
        assert_eq!(gpu["stat_t"], "jarvis/server/backends");
        assert_eq!(gpu["val_tpl"], "{{ value_json['wake_gpu_box'].state }}");
        let state: Value = serde_json::from_str(&out[1].payload).unwrap();
        assert_eq!(state["wake_gpu_box"]["state"], "up");
        assert_eq!(state["wake_gpu_box"]["addr"], "10.0.0.5:10400");
        assert_eq!(state["stt_local"]["kind"], "local");

        // Nothing new: nothing sent; a backend down: its state is sent.
        out.clear();
        backends.publish_changes(&naming, &mut out);
        assert!(out.is_empty());
        backends.sets[1].get(0).unwrap().mark_down("refused");
        backends.publish_changes(&naming, &mut out);
        let state: Value = serde_json::from_str(&out[0].payload).unwrap();
        assert_eq!(state["wake_gpu_box"]["state"], "down");
        assert_eq!(state["wake_gpu_box"]["last_error"], "refused");
    }

    #[test]
    fn no_backends_publish_nothing() {
        let naming = Naming::new("homeassistant", "jarvis", "homelab");
        let mut backends = SpeechBackends::new(Vec::new());
        assert!(backends.is_empty());
        let mut out = Vec::new();
        backends.publish_all(&naming, &mut out);
        backends.publish_changes(&naming, &mut out);
        assert!(out.is_empty());
    }
}
