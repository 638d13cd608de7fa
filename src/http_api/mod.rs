//! The HTTP API: `GET /health` (no key; names the instance, as zeroconf does), `POST /v1/command {"text": ...}` for HA `rest_command`,
//! scripts and VM400 → VM300 set-ups, and `POST /v1/event` for the events Home Assistant pushes
//! into Jarvis's memory.
//!
//! - [`access`]: what every `POST` passes first: the per-address rate limit, then the key.
//! - [`error`]: the JSON error body and the answers to bodies that do not parse.
//! - [`command`], [`event`], [`health`]: one file per route, with its body types.
//!
//! Both `POST` routes want the configured key in `x-api-key` (compared in constant time), limit
//! each client address to `http.rate_limit_per_minute` (429 with `Retry-After`; each route has
//! its own budget, so a chatty automation pushing events never locks out commands), and refuse
//! bodies over `http.max_body_bytes` (413). Errors are JSON: `{"error": ..., "code": ...}`.

mod access;
mod backups;
mod command;
mod error;
mod event;
mod health;

#[doc(hidden)]
pub(crate) use command::fuzz_body as fuzz_command_body;
#[doc(hidden)]
pub(crate) use event::fuzz_body as fuzz_event_body;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::config::HttpConfig;
use crate::services::Services;

use access::Guard;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct ApiState {
    /// The services and the brain.
    pub services: Arc<Services>,
    commands: Guard,
    events: Guard,
    max_body_bytes: usize,
    mqtt: Option<tokio::sync::watch::Receiver<crate::mqtt::LinkState>>,
    frigate: Option<tokio::sync::watch::Receiver<crate::frigate::FrigateStats>>,
    instance: Arc<str>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("key_required", &self.commands.key_required())
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// State for `config`.
    pub fn new(services: Arc<Services>, config: &HttpConfig) -> Self {
        Self {
            services,
            commands: Guard::new(config, "commands"),
            events: Guard::new(config, "events"),
            max_body_bytes: config.max_body_bytes,
            mqtt: None,
            frigate: None,
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

    /// Shows the Frigate subscriber's counters in `/health`.
    #[must_use]
    pub fn with_frigate(
        mut self,
        stats: tokio::sync::watch::Receiver<crate::frigate::FrigateStats>,
    ) -> Self {
        self.frigate = Some(stats);
        self
    }
}

/// The API's routes. Serve them with
/// `into_make_service_with_connect_info::<SocketAddr>()` so clients are told apart.
pub fn router(state: ApiState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/health", get(health::health))
        .route("/v1/command", post(command::command))
        .route("/v1/event", post(event::event))
        .route("/v1/backups", get(backups::backups))
        .route("/v1/tasks/failed", get(backups::failed_tasks))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
