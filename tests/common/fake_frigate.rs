//! An in-process fake of Frigate's HTTP API on `127.0.0.1:0`, shaped from §3.3 of the
//! integration notes, for the backfill tests.
//!
//! Two modes, as a real Frigate has two ports:
//! - [`FakeFrigate::open`]: plain HTTP and no login (port 5000);
//! - [`FakeFrigate::with_login`]: HTTPS with a generated self-signed certificate (pin it with
//!   [`FakeFrigate::fingerprint`]) and `POST /api/login {"user","password"}` answering with
//!   `Set-Cookie: frigate_token=<jwt>`; every other path then needs that cookie (401 without).
//!
//! It serves `GET /api/events` (`after`/`before` on the start, `limit`, newest first, as
//! Frigate's `events()`), `GET /api/review` (`after` on the start, `before` on the end),
//! `GET /api/config` (cameras and zones), `GET /api/version`. Tests add tracked objects and
//! review items as Frigate's API rows (JSON), make every path fail with a status, revoke the
//! sessions, and read the request log.

use super::fake_proxmox::{ChannelListener, Io};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The user the login mode accepts.
pub const USER: &str = "jarvis";
/// Its password.
pub const PASSWORD: &str = "c0rrect-h0rse-battery";

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Query parameters in order.
    pub query: Vec<(String, String)>,
    pub status: u16,
}

impl Request {
    /// The value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct State_ {
    /// Rows of Frigate's `Event` table, as `/api/events` sends them.
    events: Rows,
    /// Rows of `ReviewSegment`.
    reviews: Rows,
    /// Camera name to zone names.
    cameras: Vec<(String, Vec<String>)>,
    /// Every path but the login answers this status.
    fail: Option<u16>,
    /// Tokens handed out and still accepted.
    tokens: Vec<String>,
    /// Seconds a session lasts (the JWT's `exp`), from its issue; may be negative.
    session_secs: i64,
    logins: usize,
    log: Vec<Request>,
}

struct Shared {
    login: bool,
    state: Mutex<State_>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State_> {
    shared
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake; stops serving when dropped.
pub struct FakeFrigate {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:port` or `https://127.0.0.1:port`.
    pub url: String,
    shared: Arc<Shared>,
    fingerprint: Option<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeFrigate {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl FakeFrigate {
    /// Port 5000: HTTP, no login.
    pub async fn open() -> Self {
        Self::launch(false).await
    }

    /// Port 8971: HTTPS with a self-signed certificate and a login.
    pub async fn with_login() -> Self {
        Self::launch(true).await
    }

    async fn launch(login: bool) -> Self {
        let shared = Arc::new(Shared {
            login,
            state: Mutex::new(State_ {
                cameras: vec![
                    ("driveway".into(), vec!["porch".into(), "street".into()]),
                    ("garden".into(), vec![]),
                ],
                session_secs: 3600,
                ..State_::default()
            }),
        });
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let (acceptor, fingerprint) = if login {
            let (config, fingerprint) = server_tls();
            (
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
                Some(fingerprint),
            )
        } else {
            (None, None)
        };
        let (tx, rx) = mpsc::channel(64);
        let accept = tokio::spawn(accept_loop(tcp, acceptor, tx));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let listener = ChannelListener { rx, addr };
        let serve = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let scheme = if login { "https" } else { "http" };
        Self {
            addr,
            url: format!("{scheme}://{addr}"),
            shared,
            fingerprint,
            tasks: vec![accept, serve],
        }
    }

    /// SHA-256 of the served certificate (`AA:BB:...`), in login mode.
    pub fn fingerprint(&self) -> Option<String> {
        self.fingerprint.clone()
    }

    /// Adds (or replaces, by id) a tracked object row.
    pub fn put_event(&self, row: Value) {
        lock(&self.shared).events.put(row);
    }

    /// Adds (or replaces, by id) a review row.
    pub fn put_review(&self, row: Value) {
        lock(&self.shared).reviews.put(row);
    }

    /// Every path but the login answers `status` (`None`: normal service).
    pub fn fail_with(&self, status: Option<u16>) {
        lock(&self.shared).fail = status;
    }

    /// Sessions issued from now on last this many seconds (their JWT's `exp`); negative: they
    /// are issued already expired (the fake still accepts them).
    pub fn session_secs(&self, secs: i64) {
        lock(&self.shared).session_secs = secs;
    }

    /// Forgets every session: the next request with an old cookie gets 401.
    pub fn revoke_sessions(&self) {
        lock(&self.shared).tokens.clear();
    }

    /// Successful logins so far.
    pub fn logins(&self) -> usize {
        lock(&self.shared).logins
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Request> {
        lock(&self.shared).log.clone()
    }

    /// The requests for `path`.
    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.log().into_iter().filter(|r| r.path == path).collect()
    }
}

/// A table's rows, replaced by id in constant time (the soak puts 20 rows a second for 30
/// minutes: a scan per put made the load generator slower as it ran).
#[derive(Debug, Default)]
struct Rows {
    rows: Vec<Value>,
    by_id: HashMap<String, usize>,
}

impl Rows {
    fn iter(&self) -> std::slice::Iter<'_, Value> {
        self.rows.iter()
    }

    /// Adds `row`, or replaces the row with its id.
    fn put(&mut self, row: Value) {
        let id = row["id"].as_str().unwrap_or_default().to_owned();
        match self.by_id.get(&id) {
            Some(&at) => self.rows[at] = row,
            None => {
                self.by_id.insert(id, self.rows.len());
                self.rows.push(row);
            }
        }
    }
}

/// A JWT as Frigate makes them (HS256; the fake's signature is not checked by anyone).
fn jwt(exp: i64, n: usize) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        engine.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        engine.encode(json!({"sub": USER, "role": "viewer", "exp": exp}).to_string()),
        engine.encode(format!("fake-signature-{n}"))
    )
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let (status, response) = answer(&shared, &method, &path, &query, &headers, &body);
    lock(&shared).log.push(Request {
        method: method.to_string(),
        path,
        query,
        status: status.as_u16(),
    });
    response
}

fn json_response(status: StatusCode, body: &Value) -> (StatusCode, Response) {
    let response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    (status, response)
}

fn answer(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, Response) {
    let mut state = lock(shared);
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<f64>().ok())
    };
    if shared.login && method == Method::POST && path == "/api/login" {
        let login: Value = serde_json::from_slice(body).unwrap_or_default();
        if login["user"] != USER || login["password"] != PASSWORD {
            return json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"message": "Invalid credentials"}),
            );
        }
        state.logins += 1;
        let token = jwt(now_secs() + state.session_secs, state.logins);
        state.tokens.push(token.clone());
        let response = Response::builder()
            .status(StatusCode::OK)
            .header(
                header::SET_COOKIE,
                format!("frigate_token={token}; HttpOnly; Path=/; SameSite=lax; Secure"),
            )
            .body(Body::empty())
            .unwrap();
        return (StatusCode::OK, response);
    }
    if shared.login {
        let cookie = headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let valid = cookie
            .split(';')
            .filter_map(|c| c.trim().strip_prefix("frigate_token="))
            .any(|token| state.tokens.iter().any(|t| t == token));
        if !valid {
            return json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"message": "unauthorized"}),
            );
        }
    }
    if let Some(status) = state.fail {
        let status = StatusCode::from_u16(status).unwrap();
        return json_response(status, &json!({"message": "failing on purpose"}));
    }
    let limit = param("limit").map_or(100, |l| l as usize);
    match (method.as_str(), path) {
        ("GET", "/api/events") => {
            let (after, before) = (param("after"), param("before"));
            let mut rows: Vec<Value> = state
                .events
                .iter()
                .filter(|e| {
                    let start = e["start_time"].as_f64().unwrap_or(0.0);
                    after.is_none_or(|a| start > a) && before.is_none_or(|b| start < b)
                })
                .cloned()
                .collect();
            sort_newest_first(&mut rows);
            rows.truncate(limit);
            json_response(StatusCode::OK, &Value::Array(rows))
        }
        ("GET", "/api/review") => {
            let now = now_secs() as f64;
            let after = param("after").unwrap_or(now - 86_400.0);
            let before = param("before").unwrap_or(now);
            let mut rows: Vec<Value> = state
                .reviews
                .iter()
                .filter(|r| {
                    let start = r["start_time"].as_f64().unwrap_or(0.0);
                    let ended_before = r["end_time"].as_f64().is_none_or(|end| end < before);
                    start > after && ended_before
                })
                .cloned()
                .collect();
            sort_newest_first(&mut rows);
            rows.truncate(limit);
            json_response(StatusCode::OK, &Value::Array(rows))
        }
        ("GET", "/api/config") => {
            let cameras: serde_json::Map<String, Value> = state
                .cameras
                .iter()
                .map(|(name, zones)| {
                    let zones: serde_json::Map<String, Value> = zones
                        .iter()
                        .map(|z| {
                            (
                                z.clone(),
                                json!({"coordinates": "0,0,1,0,1,1", "objects": []}),
                            )
                        })
                        .collect();
                    (
                        name.clone(),
                        json!({"enabled": true, "zones": zones, "detect": {"fps": 5}}),
                    )
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"mqtt": {"topic_prefix": "frigate"}, "cameras": cameras}),
            )
        }
        ("GET", "/api/version") => {
            let response = Response::builder()
                .status(StatusCode::OK)
                .body(Body::from("0.16.2-4d58206"))
                .unwrap();
            (StatusCode::OK, response)
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"detail": "Not Found"})),
    }
}

fn sort_newest_first(rows: &mut [Value]) {
    rows.sort_by(|a, b| {
        let start = |v: &Value| v["start_time"].as_f64().unwrap_or(0.0);
        start(b).total_cmp(&start(a))
    });
}

// --- serving ----------------------------------------------------------------------------------

async fn accept_loop(
    tcp: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    tx: mpsc::Sender<Box<dyn Io>>,
) {
    loop {
        let Ok((stream, _)) = tcp.accept().await else {
            continue;
        };
        match &acceptor {
            None => {
                let _ = tx.send(Box::new(stream)).await;
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let handshake = acceptor.accept(stream);
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(10), handshake).await
                    {
                        let _ = tx.send(Box::new(tls)).await;
                    }
                });
            }
        }
    }
}

/// A self-signed certificate for 127.0.0.1 (like Frigate's own on 8971) and its fingerprint.
fn server_tls() -> (rustls::ServerConfig, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "frigate.fake");
    let cert = params.self_signed(&key).unwrap();
    let fingerprint = jarvis::proxmox::fingerprint(cert.der());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    (config, fingerprint)
}
