//! A tiny HTTP file server for the download tests: serves generated files on `127.0.0.1:0`,
//! honours `Range: bytes=N-`, and can be told to ignore ranges, answer an error status, cut the
//! connection part-way through a body, or stall; and redirect, as Hugging Face and GitHub do to
//! their CDNs. It records every request it answered.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Like a CDN: `200`, or `206` for `Range: bytes=N-`, `416` past the end.
    Normal,
    /// Always `200` with the whole file, as servers without range support do.
    IgnoreRange,
    /// Answer every request with this status.
    Status(u16),
    /// Send the head and this many body bytes, then drop the connection.
    CutAfter(usize),
    /// Send the head and this many body bytes, then send nothing more and keep the connection.
    StallAfter(usize),
}

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    pub status: u16,
    /// Body bytes handed to the connection.
    pub body_bytes: usize,
}

struct Shared {
    files: Mutex<HashMap<String, Bytes>>,
    redirects: Mutex<HashMap<String, String>>,
    behaviour: Mutex<Behaviour>,
    log: Mutex<Vec<Served>>,
}

/// A running server; stops when dropped.
pub struct FileServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FileServer {
    /// Binds `127.0.0.1:0` first, so requests can be sent as soon as this returns.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            files: Mutex::new(HashMap::new()),
            redirects: Mutex::new(HashMap::new()),
            behaviour: Mutex::new(Behaviour::Normal),
            log: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    /// Serves `bytes` at `path` (which starts with `/`).
    pub fn put(&self, path: &str, bytes: impl Into<Bytes>) {
        self.shared
            .files
            .lock()
            .unwrap()
            .insert(path.to_owned(), bytes.into());
    }

    /// Answers `from` with `302 Found` to `to` (both paths on this server).
    pub fn redirect(&self, from: &str, to: &str) {
        self.shared
            .redirects
            .lock()
            .unwrap()
            .insert(from.to_owned(), to.to_owned());
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests answered so far.
    pub fn log(&self) -> Vec<Served> {
        self.shared.log.lock().unwrap().clone()
    }
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let range = request
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let behaviour = *shared.behaviour.lock().unwrap();
    let file = shared.files.lock().unwrap().get(&path).cloned();
    let record = |status: StatusCode, body_bytes: usize| {
        shared.log.lock().unwrap().push(Served {
            path: path.clone(),
            range: range.clone(),
            status: status.as_u16(),
            body_bytes,
        });
    };

    let redirect = shared.redirects.lock().unwrap().get(&path).cloned();
    if let Some(to) = redirect {
        record(StatusCode::FOUND, 0);
        let mut response = StatusCode::FOUND.into_response();
        response
            .headers_mut()
            .insert(header::LOCATION, HeaderValue::from_str(&to).unwrap());
        return response;
    }
    if let Behaviour::Status(code) = behaviour {
        let status = StatusCode::from_u16(code).unwrap();
        record(status, 0);
        return (status, "").into_response();
    }
    let Some(file) = file else {
        record(StatusCode::NOT_FOUND, 0);
        return (StatusCode::NOT_FOUND, "").into_response();
    };
    let len = file.len();
    let start = match (&range, behaviour) {
        (_, Behaviour::IgnoreRange) | (None, _) => None,
        (Some(range), _) => Some(
            range
                .strip_prefix("bytes=")
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok())
                .expect("the downloader asks for `bytes=N-`"),
        ),
    };
    if let Some(start) = start {
        if start >= len {
            record(StatusCode::RANGE_NOT_SATISFIABLE, 0);
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}")).unwrap(),
            );
            return response;
        }
    }
    let (status, body) = match start {
        Some(start) => (StatusCode::PARTIAL_CONTENT, file.slice(start..)),
        None => (StatusCode::OK, file.clone()),
    };
    let body_len = body.len();
    let (sent, response_body) = match behaviour {
        Behaviour::CutAfter(n) => {
            let n = n.min(body_len);
            (n, cut_body(body.slice(..n)))
        }
        Behaviour::StallAfter(n) => {
            let n = n.min(body_len);
            (n, stalled_body(body.slice(..n)))
        }
        _ => (body_len, Body::from(body)),
    };
    record(status, sent);
    let mut response = Response::new(response_body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(start) = start {
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{}/{len}", len - 1)).unwrap(),
        );
    }
    response
}

/// `first`, then (after one yield, which lets hyper flush it to the socket) an error, which
/// makes hyper drop the connection mid-body.
fn cut_body(first: Bytes) -> Body {
    let stream = futures_util::stream::unfold(0, move |step| {
        let first = first.clone();
        async move {
            match step {
                0 => Some((Ok(first), 1)),
                1 => {
                    tokio::task::yield_now().await;
                    Some((Err(std::io::Error::other("cut by the test server")), 2))
                }
                _ => None,
            }
        }
    });
    Body::from_stream(stream)
}

/// `first`, then nothing, forever (until the client hangs up).
fn stalled_body(first: Bytes) -> Body {
    let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(first) })
        .chain(futures_util::stream::pending());
    Body::from_stream(stream)
}
