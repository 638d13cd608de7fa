//! `GET /health`: every service, the brain, Proxmox, the MQTT connection, the event memory and
//! Frigate. No key: it holds no secret, and monitoring must reach it.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::brain::BrainHealth;
use crate::frigate::Availability;
use crate::proxmox::ProxmoxHealth;
use crate::services::ServiceState;

use super::ApiState;

/// Body of `GET /health`.
#[derive(Debug, Serialize)]
pub(super) struct Health {
    /// `ok` while the process serves requests.
    status: &'static str,
    version: &'static str,
    /// This Jarvis's name (`wyoming.zeroconf.name`, default `jarvis-<hostname>`): the same as
    /// its zeroconf records, and the unique id of its Home Assistant integration entry.
    instance: String,
    services: Vec<ServiceHealth>,
    brain: BrainHealth,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxmox: Option<ProxmoxHealth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mqtt: Option<MqttHealth>,
    events: EventsHealth,
    frigate: FrigateHealth,
    /// `[[stt.backends]]` in the order they are tried (absent without backends).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stt_backends: Vec<BackendHealth>,
    /// `[[tts.backends]]` in the order they are tried (absent without backends).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tts_backends: Vec<BackendHealth>,
    /// `[[wake.backends]]` in the order they are tried (absent without backends).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    wake_backends: Vec<BackendHealth>,
}

/// One speech-to-text backend.
#[derive(Debug, Serialize)]
struct BackendHealth {
    name: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    addr: Option<String>,
    priority: i32,
    up: bool,
    /// It leads back to this Jarvis and is never used.
    looped: bool,
    /// The last `describe` → `info` round trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// `up`, `down` or `loop`.
    state: &'static str,
    /// The last failure, kept after the backend came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    /// Requests (wake word streams) routed to it since start-up.
    requests: u64,
    /// Where a `zeroconf` / `discover` backend was found (absent until it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    found_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct MqttHealth {
    connected: bool,
    connects: u64,
    failures: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct ServiceHealth {
    name: &'static str,
    ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// The event memory.
#[derive(Debug, Serialize)]
struct EventsHealth {
    /// Questions can be answered (false: disabled, or the file cannot be used).
    available: bool,
    /// What is wrong, naming the file and the fix: why it is unavailable, or why writes fail.
    problem: Option<String>,
    path: String,
    events: u64,
    bytes: u64,
    /// Start of the oldest event, RFC 3339.
    oldest: Option<String>,
    /// Events waiting to be written.
    pending: u64,
    /// Events given up because the disk refused them for too long.
    dropped: u64,
}

/// Frigate as Jarvis sees it.
#[derive(Debug, Serialize)]
struct FrigateHealth {
    /// `frigate.enabled`.
    enabled: bool,
    availability: Availability,
    /// Since when, RFC 3339.
    since: Option<String>,
    version: Option<String>,
    cameras: Vec<String>,
    /// The subscriber's connection and counters (messages, bad payloads, backfills), while it
    /// runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriber: Option<crate::frigate::FrigateStats>,
}

/// Milliseconds since the epoch as RFC 3339 (UTC).
fn rfc3339(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.to_string())
}

pub(super) async fn health(State(state): State<ApiState>) -> Json<Health> {
    let services = state
        .services
        .all()
        .into_iter()
        .map(|(route, service)| ServiceHealth {
            name: route.service_name(),
            ready: service == ServiceState::Ready,
            reason: match service {
                ServiceState::Ready => None,
                ServiceState::Unavailable { reason } => Some(reason),
            },
        })
        .collect();
    let stt_backends = backends_health(state.services.stt_backends.as_deref());
    let tts_backends = backends_health(state.services.tts_backends.as_deref());
    let wake_backends = backends_health(state.services.wake_backends.as_deref());
    let brain = &state.services.brain;
    let store = &state.services.events;
    let stats = store.stats();
    let frigate = state.services.frigate.status();
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        instance: state.instance.to_string(),
        services,
        brain: brain.health(),
        proxmox: brain.proxmox().map(crate::proxmox::Proxmox::health),
        mqtt: state.mqtt.as_ref().map(|link| {
            let link = link.borrow();
            MqttHealth {
                connected: link.connected,
                connects: link.connects,
                failures: link.failures,
                last_error: link.last_error.clone(),
            }
        }),
        events: EventsHealth {
            available: store.is_available(),
            problem: store.problem(),
            path: store.path().display().to_string(),
            events: stats.events,
            bytes: stats.bytes,
            oldest: stats.oldest_ms.and_then(rfc3339),
            pending: stats.pending,
            dropped: stats.dropped,
        },
        frigate: FrigateHealth {
            enabled: brain.memory().is_some_and(|m| m.frigate_enabled),
            availability: frigate.availability,
            since: frigate.since_ms.and_then(rfc3339),
            version: frigate.version,
            cameras: frigate.cameras.into_iter().collect(),
            subscriber: state.frigate.as_ref().map(|stats| stats.borrow().clone()),
        },
        stt_backends,
        tts_backends,
        wake_backends,
    })
}

fn backends_health(backends: Option<&crate::stt::backends::Backends>) -> Vec<BackendHealth> {
    backends
        .iter()
        .flat_map(|backends| backends.all())
        .map(|backend| {
            let health = backend.health();
            let state = crate::stt::backends::state_of(&health);
            BackendHealth {
                name: backend.label.clone(),
                kind: if backend.is_local() {
                    "local"
                } else {
                    "remote"
                },
                addr: backend.config.addr.clone(),
                priority: backend.config.priority,
                up: health.up,
                looped: health.looped,
                latency_ms: health.latency.map(|l| l.as_secs_f64() * 1000.0),
                reason: health.reason,
                state,
                last_error: health.last_error,
                requests: health.requests,
                found_at: health.found_at,
            }
        })
        .collect()
}
