//! Models in the panel: the catalog with what is installed and loaded, a pull with its
//! progress (server-sent events, one pull at a time), removal, and a voice preview.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::config::{Config, ModelsConfig};
use crate::models::catalog::Catalog;
use crate::models::progress::Shared;
use crate::models::{FileState, PullRequest, file_state};

use super::error::PanelError;
use super::{PanelState, bad_body, no_store};

/// How often the progress stream reports.
const TICK: Duration = Duration::from_millis(200);
/// The sentence a voice preview says.
const SAMPLE: &str = "Hello, I'm Jarvis. All nodes are online and every backup succeeded.";

/// The models directory and the pull in progress.
#[derive(Debug)]
pub(super) struct Models {
    config: ModelsConfig,
    job: Mutex<Option<Arc<Job>>>,
}

/// A pull.
#[derive(Debug, Default)]
struct Job {
    name: String,
    progress: Arc<Shared>,
    /// `None` while running; then the outcome.
    outcome: Mutex<Option<Result<String, String>>>,
}

impl Models {
    pub(super) fn new(config: &Config) -> Self {
        Self {
            config: config.models.clone(),
            job: Mutex::new(None),
        }
    }

    fn current(&self) -> Option<Arc<Job>> {
        self.job.lock().ok().and_then(|j| j.clone())
    }
}

/// One catalog entry as the panel lists it.
#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    kind: &'static str,
    size: Option<u64>,
    /// `installed`, `partial` or `missing`.
    state: &'static str,
    /// Loaded by the running Jarvis (a whisper model or a voice).
    loaded: bool,
}

/// `GET api/models`.
pub(super) async fn list(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, PanelError> {
    state.gate.authenticate(peer, &headers)?;
    let catalog = Catalog::new(&state.models.config).map_err(|err| {
        PanelError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "catalog",
            err.to_string(),
        )
    })?;
    let loaded = loaded_names(&state);
    let dir = state.models.config.dir.clone();
    let models: Vec<_> = catalog.models().to_vec();
    let listed = tokio::task::spawn_blocking(move || {
        models
            .into_iter()
            .map(|m| {
                let states: Vec<_> = m.files.iter().map(|f| file_state(&dir, f)).collect();
                let state = if states.iter().all(|s| matches!(s, FileState::Installed(_))) {
                    "installed"
                } else if states.iter().any(|s| !matches!(s, FileState::Missing)) {
                    "partial"
                } else {
                    "missing"
                };
                Listed {
                    loaded: loaded.contains(&m.name),
                    kind: m.kind.as_str(),
                    size: m.size(),
                    state,
                    name: m.name,
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|_| PanelError::internal("listing panicked"))?;
    Ok(no_store(Json(listed).into_response()))
}

fn loaded_names(state: &PanelState) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(stt) = &state.services.stt {
        names.extend(stt.engine().models().iter().map(|m| m.name.clone()));
    }
    if let Some(tts) = &state.services.tts {
        names.extend(tts.loaded_voices());
    }
    names
}

/// Body of the model routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NameBody {
    name: String,
}

/// `POST api/models/pull`: starts downloading; follow it on `api/models/progress`.
pub(super) async fn pull(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<NameBody>, JsonRejection>,
) -> Result<Response, PanelError> {
    state.gate.authorize(peer, &headers, None)?;
    let Json(body) = body.map_err(bad_body)?;
    let catalog = Catalog::new(&state.models.config).map_err(|err| {
        PanelError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "catalog",
            err.to_string(),
        )
    })?;
    if catalog.get(&body.name).is_none() {
        return Err(PanelError::new(
            StatusCode::NOT_FOUND,
            "unknown-model",
            format!("no model called {:?} in the catalog", body.name),
        ));
    }
    let job = Arc::new(Job {
        name: body.name.clone(),
        ..Job::default()
    });
    {
        let mut current = state
            .models
            .job
            .lock()
            .map_err(|_| PanelError::internal("job lock poisoned"))?;
        let running = current
            .as_ref()
            .is_some_and(|j| j.outcome.lock().map(|o| o.is_none()).unwrap_or(false));
        if running {
            return Err(PanelError::new(
                StatusCode::CONFLICT,
                "busy",
                "another model is being pulled; wait for it to finish",
            ));
        }
        *current = Some(Arc::clone(&job));
    }
    let config = state.models.config.clone();
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let request = PullRequest {
            name: job.name.clone(),
            sha256: None,
            force: false,
        };
        let mut out = Vec::new();
        let pulled = tokio::select! {
            pulled = crate::models::pull_reporting(&config, &request, &mut out, Some(Arc::clone(&job.progress))) => pulled,
            () = shutdown.cancelled() => return,
        };
        let text = String::from_utf8_lossy(&out);
        let last = text.lines().last().unwrap_or_default().to_owned();
        let outcome = pulled.map(|()| last).map_err(|err| err.to_string());
        if let Ok(mut o) = job.outcome.lock() {
            *o = Some(outcome);
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"pulling": body.name})),
    )
        .into_response())
}

/// One progress report.
#[derive(Debug, Serialize)]
struct Report {
    name: String,
    file: String,
    done: u64,
    total: Option<u64>,
    /// `running`, `done` or `failed`.
    state: &'static str,
    message: Option<String>,
}

fn report(job: &Job) -> Report {
    let outcome = job.outcome.lock().ok().and_then(|o| o.clone());
    let (state, message) = match outcome {
        None => ("running", None),
        Some(Ok(m)) => ("done", Some(m)),
        Some(Err(m)) => ("failed", Some(m)),
    };
    let total = job.progress.total.load(Ordering::Relaxed);
    Report {
        name: job.name.clone(),
        file: job
            .progress
            .file
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default(),
        done: job.progress.done.load(Ordering::Relaxed),
        total: (total > 0).then_some(total),
        state,
        message,
    }
}

/// `GET api/models/progress`: the pull's progress every 200 ms until it ends, as server-sent
/// events.
pub(super) async fn progress(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, PanelError> {
    state.gate.authenticate(peer, &headers)?;
    let stream = reports(&state)?
        .map(|(name, data)| Ok::<_, Infallible>(Event::default().event(name).data(data)));
    Ok(no_store(
        Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response(),
    ))
}

/// `GET api/models/progress/socket?csrf=`: the same over a WebSocket (what the page uses: see
/// [`super::socket`]).
pub(super) async fn progress_socket(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<super::socket::SocketQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, PanelError> {
    state
        .gate
        .authorize(peer, &headers, query.csrf.as_deref())?;
    let events = reports(&state)?;
    Ok(super::socket::serve(
        upgrade,
        events,
        state.shutdown.clone(),
    ))
}

/// The pull's `progress` reports (JSON), holding a stream permit, until the pull ends.
fn reports(
    state: &PanelState,
) -> Result<impl Stream<Item = (&'static str, String)> + Send + 'static, PanelError> {
    let Some(job) = state.models.current() else {
        return Err(PanelError::new(
            StatusCode::NOT_FOUND,
            "no-pull",
            "no model is being pulled",
        ));
    };
    let permit = state.stream_permit()?;
    Ok(
        futures_util::stream::unfold((job, false, permit), |(job, ended, permit)| async move {
            if ended {
                return None;
            }
            let report = report(&job);
            let last = report.state != "running";
            if !last {
                tokio::time::sleep(TICK).await;
            }
            let data = serde_json::to_string(&report).unwrap_or_default();
            Some((("progress", data), (job, last, permit)))
        })
        .take_until(state.shutdown.clone().cancelled_owned()),
    )
}

/// `POST api/models/remove`: deletes the entry's files (and partial downloads); a model the
/// running Jarvis has loaded is refused.
pub(super) async fn remove(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<NameBody>, JsonRejection>,
) -> Result<Response, PanelError> {
    state.gate.authorize(peer, &headers, None)?;
    let Json(body) = body.map_err(bad_body)?;
    let catalog = Catalog::new(&state.models.config).map_err(|err| {
        PanelError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "catalog",
            err.to_string(),
        )
    })?;
    let Some(model) = catalog.get(&body.name) else {
        return Err(PanelError::new(
            StatusCode::NOT_FOUND,
            "unknown-model",
            format!("no model called {:?} in the catalog", body.name),
        ));
    };
    if loaded_names(&state).contains(&model.name) {
        return Err(PanelError::new(
            StatusCode::CONFLICT,
            "in-use",
            format!(
                "{} is in use; choose another in the configuration first",
                model.name
            ),
        ));
    }
    for file in &model.files {
        let dest = state.models.config.dir.join(&file.path);
        for path in [crate::models::download::part_path(&dest), dest] {
            crate::models::download::remove_if_present(&path)
                .await
                .map_err(|err| {
                    PanelError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "remove-failed",
                        err.to_string(),
                    )
                })?;
        }
    }
    Ok(Json(serde_json::json!({"removed": model.name})).into_response())
}

/// Body of `POST api/voices/preview`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PreviewBody {
    voice: String,
}

/// `POST api/voices/preview`: a sample sentence in that voice, as a WAV.
pub(super) async fn preview(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<PreviewBody>, JsonRejection>,
) -> Result<Response, PanelError> {
    state.gate.authorize(peer, &headers, None)?;
    let Json(body) = body.map_err(bad_body)?;
    // The engine falls back to the default voice for an unknown name (as Home Assistant
    // expects); a preview of that would mislead.
    let installed = state
        .services
        .tts
        .as_ref()
        .is_some_and(|tts| tts.program().voices.iter().any(|v| v.name == body.voice));
    if !installed {
        return Err(PanelError::new(
            StatusCode::NOT_FOUND,
            "no-voice",
            format!(
                "no voice called {:?} is installed; pull it first",
                body.voice
            ),
        ));
    }
    super::talk::speak_text(&state, SAMPLE.to_owned(), Some(body.voice)).await
}
