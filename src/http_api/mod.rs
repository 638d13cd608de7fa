//! The HTTP API: `GET /health` (no key; names the instance, as zeroconf does) and `POST /v1/command {"text": ...}` for HA
//! `rest_command`, scripts and VM400 → VM300 set-ups.
//!
//! `/v1/command` wants the configured key in `x-api-key` (compared in constant time), limits
//! each client address to `http.rate_limit_per_minute` (429 with `Retry-After`), and refuses
//! bodies over `http.max_body_bytes` (413). Errors are JSON: `{"error": ..., "code": ...}`.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::brain::engine::MAX_TEXT_CHARS;
use crate::brain::{BrainHealth, Channel, Command};
use crate::config::HttpConfig;
use crate::proxmox::ProxmoxHealth;
use crate::services::{ServiceState, Services};

/// Client addresses tracked by the rate limiter before idle ones are forgotten.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct ApiState {
    /// The services and the brain.
    pub services: Arc<Services>,
    api_key: Arc<str>,
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    max_body_bytes: usize,
    mqtt: Option<tokio::sync::watch::Receiver<crate::mqtt::LinkState>>,
    instance: Arc<str>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("key_required", &!self.api_key.is_empty())
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// State for `config`.
    pub fn new(services: Arc<Services>, config: &HttpConfig) -> Self {
        let per_minute = NonZeroU32::new(config.rate_limit_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            services,
            api_key: Arc::from(config.api_key.expose()),
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
            max_body_bytes: config.max_body_bytes,
            mqtt: None,
            instance: Arc::from(crate::zeroconf::default_instance_name()),
        }
    }

    /// Names this Jarvis in `/health` (`instance`), as its zeroconf records do.
    #[must_use]
    pub fn with_instance(mut self, instance: &str) -> Self {
        self.instance = Arc::from(instance);
        self
    }

    /// Reports the MQTT connection in `/health`.
    #[must_use]
    pub fn with_mqtt(mut self, link: tokio::sync::watch::Receiver<crate::mqtt::LinkState>) -> Self {
        self.mqtt = Some(link);
        self
    }
}

/// The API's routes. Serve them with
/// `into_make_service_with_connect_info::<SocketAddr>()` so clients are told apart.
pub fn router(state: ApiState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/v1/command", post(command))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// An error body.
#[derive(Debug, Serialize)]
struct ApiError {
    error: String,
    code: &'static str,
}

fn error(status: StatusCode, code: &'static str, text: impl Into<String>) -> Response {
    (
        status,
        Json(ApiError {
            error: text.into(),
            code,
        }),
    )
        .into_response()
}

/// Body of `POST /v1/command`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    /// What to do or ask, as you would say it.
    text: String,
    /// Continue a conversation (to confirm a destructive action).
    #[serde(default)]
    conversation_id: Option<String>,
    /// The approval keyword (`policy.approval_keyword`): confirms destructive actions at once.
    #[serde(default)]
    approval: Option<String>,
}

async fn command(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<CommandBody>, JsonRejection>,
) -> Response {
    // Rate limiting comes first, so wrong keys cannot be guessed at full speed.
    if let Err(not_until) = state.limiter.check_key(&peer.ip()) {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!(
                "too many commands from {}; try again in {secs} s (http.rate_limit_per_minute)",
                peer.ip()
            ),
        );
        if let Ok(value) = HeaderValue::from_str(&secs.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    if !state.api_key.is_empty() {
        let given = headers
            .get("x-api-key")
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !bool::from(given.ct_eq(state.api_key.as_bytes())) {
            let text = if given.is_empty() {
                "missing x-api-key header: send the key configured as http.api_key"
            } else {
                "wrong x-api-key: send the key configured as http.api_key"
            };
            return error(StatusCode::UNAUTHORIZED, "unauthorized", text);
        }
    }
    if state.limiter.len() > MAX_TRACKED_CLIENTS {
        state.limiter.retain_recent();
    }
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too-large"
            } else {
                "bad-request"
            };
            let text = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "the body is larger than {} bytes (http.max_body_bytes)",
                    state.max_body_bytes
                )
            } else {
                format!(
                    "{}; send JSON like {{\"text\": \"status of node pve\"}}",
                    rejection.body_text()
                )
            };
            return error(status, code, text);
        }
    };
    let text = body.text.trim();
    if text.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "empty-text",
            "text is empty; send what you would say, e.g. {\"text\": \"status of node pve\"}",
        );
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-long",
            format!("text is longer than {MAX_TEXT_CHARS} characters"),
        );
    }
    let response = state
        .services
        .brain
        .command(Command {
            text: text.to_owned(),
            channel: Channel::Http,
            client: peer.ip().to_string(),
            conversation: body.conversation_id.filter(|c| !c.is_empty()),
            approval: body.approval,
        })
        .await;
    Json(response).into_response()
}

/// Body of `GET /health`.
#[derive(Debug, Serialize)]
struct Health {
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

async fn health(State(state): State<ApiState>) -> Json<Health> {
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
    let brain = &state.services.brain;
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
    })
}
