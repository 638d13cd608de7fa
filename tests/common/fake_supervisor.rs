//! A fake Home Assistant Supervisor API for the add-on tests, on `127.0.0.1:0`: the calls the
//! add-on makes (`GET /services/mqtt`, `POST /discovery`, `POST /addons/self/stop`), answered
//! the way Supervisor answers them (`{"result": "ok", "data": ...}`, or `{"result": "error",
//! "message": ...}` with 400, 401 without the add-on's token). It can be slow (the first few
//! requests, or all of them) and records every request, so tests wait for a call instead of
//! sleeping.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The token the fake expects in `Authorization: Bearer ...`.
pub const TOKEN: &str = "fake-supervisor-token";

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: Value,
    pub authorized: bool,
    /// When it arrived, from the fake's start.
    pub at: Duration,
    /// For `POST /discovery`: whether the announced Wyoming server answered `describe` when
    /// the announcement arrived.
    pub server_answered: Option<bool>,
    /// Whether the fake has answered it (it may be waiting, when slow).
    pub answered: bool,
}

#[derive(Default)]
struct Settings {
    mqtt: Option<Value>,
    /// Delay before answering, for the first `slow_requests` requests (all when `None`).
    delay: Duration,
    slow_requests: Option<usize>,
    /// Answer `POST /discovery` with this status and error (a Supervisor refusing).
    discovery_error: Option<(u16, String)>,
    /// Answer `POST /addons/self/stop` only after a minute, as Supervisor answers it once the
    /// container has stopped (which the test does, with SIGTERM).
    hold_stop: bool,
}

struct Shared {
    settings: Mutex<Settings>,
    calls: Mutex<Vec<Call>>,
    started: Instant,
    changed: Notify,
}

/// A running fake; stops when dropped.
pub struct FakeSupervisor {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeSupervisor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSupervisor {
    /// A Supervisor without an MQTT service (no broker add-on installed).
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            settings: Mutex::new(Settings::default()),
            calls: Mutex::new(Vec::new()),
            started: Instant::now(),
            changed: Notify::new(),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Offers the MQTT service of a broker add-on (the `data` of `GET /services/mqtt`).
    pub fn with_mqtt(self, data: Value) -> Self {
        self.shared.settings.lock().unwrap().mqtt = Some(data);
        self
    }

    /// Waits `delay` before answering the first `requests` requests (every request: `None`).
    pub fn slow(self, delay: Duration, requests: Option<usize>) -> Self {
        {
            let mut settings = self.shared.settings.lock().unwrap();
            settings.delay = delay;
            settings.slow_requests = requests;
        }
        self
    }

    /// Refuses discovery with `status` and `message`.
    pub fn refusing_discovery(self, status: u16, message: &str) -> Self {
        self.shared.settings.lock().unwrap().discovery_error = Some((status, message.into()));
        self
    }

    /// Holds `POST /addons/self/stop` open, as Supervisor does until the container stopped.
    pub fn holding_stop(self) -> Self {
        self.shared.settings.lock().unwrap().hold_stop = true;
        self
    }

    /// Every request so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// The requests to `method path` so far.
    pub fn calls_to(&self, method: &str, path: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.path == path)
            .collect()
    }

    /// Waits (up to `limit`) for a request to `method path` to be answered, and returns it.
    pub async fn wait_for(&self, method: &str, path: &str, limit: Duration) -> Call {
        self.wait_until(method, path, limit, |call| call.answered)
            .await
    }

    /// Waits (up to `limit`) for a request to `method path` to arrive, answered or not.
    pub async fn wait_arrival(&self, method: &str, path: &str, limit: Duration) -> Call {
        self.wait_until(method, path, limit, |_| true).await
    }

    async fn wait_until(
        &self,
        method: &str,
        path: &str,
        limit: Duration,
        done: impl Fn(&Call) -> bool,
    ) -> Call {
        tokio::time::timeout(limit, async {
            loop {
                let notified = self.shared.changed.notified();
                if let Some(call) = self.calls_to(method, path).into_iter().find(&done) {
                    return call;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no {method} {path} within {limit:?}; calls: {:?}",
                self.calls()
            )
        })
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    reply(status, json!({"result": "error", "message": message}))
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);

    let (delay, mqtt, discovery_error, hold_stop) = {
        let settings = shared.settings.lock().unwrap();
        let seen = shared.calls.lock().unwrap().len();
        let slow = settings.slow_requests.is_none_or(|n| seen < n);
        (
            if slow { settings.delay } else { Duration::ZERO },
            settings.mqtt.clone(),
            settings.discovery_error.clone(),
            settings.hold_stop,
        )
    };
    let mut call = Call {
        method: method.clone(),
        path: path.clone(),
        body: body.clone(),
        authorized,
        at: shared.started.elapsed(),
        server_answered: None,
        answered: false,
    };
    // Counted on arrival, so "the first N requests" are slow however long each one waits.
    let index = {
        let mut calls = shared.calls.lock().unwrap();
        calls.push(call.clone());
        calls.len() - 1
    };
    shared.changed.notify_waiters();
    tokio::time::sleep(delay).await;

    let response = if !authorized {
        error(StatusCode::UNAUTHORIZED, "Unauthorized")
    } else {
        match (method.as_str(), path.as_str()) {
            ("GET", "/services/mqtt") => match mqtt {
                Some(data) => reply(StatusCode::OK, json!({"result": "ok", "data": data})),
                None => error(StatusCode::BAD_REQUEST, "Service not enabled"),
            },
            ("POST", "/discovery") => {
                call.server_answered = Some(describe_answers(&body).await);
                match discovery_error {
                    Some((status, message)) => {
                        error(StatusCode::from_u16(status).unwrap(), &message)
                    }
                    None if body["service"] == "wyoming" && body["config"]["uri"].is_string() => {
                        reply(
                            StatusCode::OK,
                            json!({"result": "ok", "data": {"uuid": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}}),
                        )
                    }
                    None => error(StatusCode::BAD_REQUEST, "expected a wyoming discovery"),
                }
            }
            ("POST", "/addons/self/stop") => {
                if hold_stop {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                reply(StatusCode::OK, json!({"result": "ok", "data": {}}))
            }
            _ => error(StatusCode::NOT_FOUND, "404: Not Found"),
        }
    };
    call.answered = true;
    shared.calls.lock().unwrap()[index] = call;
    shared.changed.notify_waiters();
    response
}

/// Whether the server a discovery announces answers `describe` right now. The add-on announces
/// `tcp://<its host name>:<port>`; here the port is on loopback.
async fn describe_answers(body: &Value) -> bool {
    let Some(port) = body["config"]["uri"]
        .as_str()
        .and_then(|uri| uri.rsplit(':').next())
        .and_then(|port| port.parse::<u16>().ok())
    else {
        return false;
    };
    let attempt = async {
        let mut client = wyoming::Client::connect(("127.0.0.1", port)).await.ok()?;
        client.describe().await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), attempt).await,
        Ok(Some(_))
    )
}
