//! The Jarvis panel: a web UI at `/panel/` on the HTTP listener, and in Home Assistant's
//! sidebar through the add-on's ingress.
//!
//! The page is three embedded files ([`assets`]: HTML, CSS, plain JavaScript; no build step),
//! every URL in it relative, so it works under any prefix (`X-Ingress-Path`). Its API is under
//! `/panel/api/`:
//!
//! - [`access`]: ingress, login (cookie + server-side session), CSRF and origin checks.
//! - [`feed`]: the live activity feed (server-sent events) and the confirmations waiting.
//! - [`talk`]: typed commands, replies as speech (WAV), push-to-talk over a WebSocket.
//! - [`models`]: the model catalog, pulls with progress, removal, voice previews.
//! - `api/latency`: the last hour's latencies ([`crate::latency`]); health is `/health`.

mod access;
mod assets;
pub mod config;
mod error;
mod feed;
mod models;
mod socket;
mod talk;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use config::PanelConfig;

use crate::config::Config;
use crate::services::Services;

use access::{Access, Gate};
use error::PanelError;

/// Largest JSON body the panel's API takes (a command, a key, a model name).
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Shared state of the panel's handlers.
#[derive(Clone)]
pub struct PanelState {
    services: Arc<Services>,
    gate: Gate,
    feed: feed::Feed,
    /// One permit per live stream (feed, progress, microphone).
    streams: Arc<Semaphore>,
    max_audio_secs: u32,
    models: Arc<models::Models>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for PanelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PanelState")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl PanelState {
    /// The panel of `services` under `config`; starts following the brain's activity (and
    /// Frigate's arrivals) until `shutdown`. Call within a Tokio runtime.
    pub fn new(services: Arc<Services>, config: &Config, shutdown: CancellationToken) -> Self {
        let feed = feed::Feed::spawn(&services, shutdown.clone());
        Self {
            gate: Gate::new(
                config.http.api_key.expose(),
                &config.panel.trusted_proxies,
                Duration::from_secs(config.panel.session_ttl_secs.max(60)),
                config.panel.max_sessions,
            ),
            feed,
            streams: Arc::new(Semaphore::new(config.panel.max_streams.max(1))),
            max_audio_secs: config.stt.max_audio_secs,
            models: Arc::new(models::Models::new(config)),
            services,
            shutdown,
        }
    }

    /// A permit for one more live stream, or 503.
    fn stream_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, PanelError> {
        Arc::clone(&self.streams)
            .try_acquire_owned()
            .map_err(|_| PanelError::busy())
    }
}

/// The panel's routes: `/` and `/panel` lead to `/panel/` (relatively, so a proxy's prefix is
/// kept), the page, and its API. Merge into the HTTP API's router.
pub fn router(state: PanelState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("panel/") }))
        .route("/panel", get(|| async { Redirect::to("panel/") }))
        .route("/panel/", get(assets::index))
        .route("/panel/app.js", get(assets::script))
        .route("/panel/style.css", get(assets::style))
        .route("/panel/api/session", get(session))
        .route("/panel/api/login", post(login))
        .route("/panel/api/logout", post(logout))
        .route("/panel/api/feed", get(feed::stream))
        .route("/panel/api/feed/socket", get(feed::socket))
        .route("/panel/api/pending", get(feed::pending))
        .route("/panel/api/confirm", post(feed::confirm))
        .route("/panel/api/command", post(talk::command))
        .route("/panel/api/speak", post(talk::speak))
        .route("/panel/api/listen", get(talk::listen))
        .route("/panel/api/latency", get(latency))
        .route("/panel/api/models", get(models::list))
        .route("/panel/api/models/pull", post(models::pull))
        .route("/panel/api/models/progress", get(models::progress))
        .route(
            "/panel/api/models/progress/socket",
            get(models::progress_socket),
        )
        .route("/panel/api/models/remove", post(models::remove))
        .route("/panel/api/voices/preview", post(models::preview))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// What the page learns first.
#[derive(Debug, Serialize)]
struct SessionInfo {
    /// Whether the page may be used (else: show the login form).
    authenticated: bool,
    /// `ingress`, `open`, `login`, or `none`.
    mode: &'static str,
    /// The token to send in `x-jarvis-csrf` with every change.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf: Option<String>,
    version: &'static str,
}

async fn session(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let info = match state.gate.authenticate(peer, &headers) {
        Ok(access) => SessionInfo {
            authenticated: true,
            mode: access.mode(),
            csrf: state.gate.csrf_for(&access),
            version: env!("CARGO_PKG_VERSION"),
        },
        Err(_) => SessionInfo {
            authenticated: false,
            mode: "none",
            csrf: None,
            version: env!("CARGO_PKG_VERSION"),
        },
    };
    no_store(Json(info).into_response())
}

/// Body of `POST api/login`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    key: String,
}

async fn login(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, PanelError> {
    let Json(body) = body.map_err(bad_body)?;
    let (token, csrf) = state.gate.login(peer, &headers, &body.key)?;
    let cookie = state.gate.cookie_header(Some(&token), &headers);
    let mut response = Json(SessionInfo {
        authenticated: true,
        mode: "login",
        csrf: Some(csrf),
        version: env!("CARGO_PKG_VERSION"),
    })
    .into_response();
    let cookie = HeaderValue::from_str(&cookie).map_err(|_| PanelError::internal("bad cookie"))?;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(no_store(response))
}

async fn logout(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, PanelError> {
    let access = state.gate.authorize(peer, &headers, None)?;
    state.gate.logout(&access);
    let mut response = StatusCode::NO_CONTENT.into_response();
    if matches!(access, Access::Login(_)) {
        let cookie = state.gate.cookie_header(None, &headers);
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
    }
    Ok(response)
}

async fn latency(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, PanelError> {
    state.gate.authenticate(peer, &headers)?;
    Ok(no_store(Json(crate::latency::summaries()).into_response()))
}

/// The answer to a body that is not the route's JSON.
fn bad_body(rejection: axum::extract::rejection::JsonRejection) -> PanelError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        PanelError::new(
            status,
            "too-large",
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
    } else {
        PanelError::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            rejection.body_text(),
        )
    }
}

/// Marks an answer as never to be cached (it holds a session's state).
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Who sent a panel command, for the audit log: the browser's address.
fn client_of(peer: SocketAddr, access: &Access) -> String {
    match access {
        Access::Ingress => "panel (Home Assistant)".to_owned(),
        Access::Open | Access::Login(_) => format!("panel {}", peer.ip()),
    }
}
