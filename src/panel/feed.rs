//! The activity feed: every command, reply and action (with its policy decision and Proxmox
//! task) and Frigate's arrivals, as server-sent events; and the confirmations waiting, with
//! Confirm and Cancel going through the policy as channel `panel`.
//!
//! Design: one task follows the brain's broadcast and keeps the last [`RECENT`] entries, each
//! numbered, and re-broadcasts them. A stream first sends that snapshot, then new entries. A
//! client too slow to keep up lags the bounded broadcast; it gets a fresh snapshot
//! (`resync`) instead of an unbounded queue. Streams hold a permit of `panel.max_streams`
//! and end at shutdown, so graceful shutdown never waits on an open tab.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, broadcast};
use tokio_util::sync::CancellationToken;

use crate::brain::Activity;
use crate::services::Services;

use super::error::PanelError;
use super::{PanelState, bad_body, client_of, no_store};

/// Entries kept for a newly opened panel.
const RECENT: usize = 200;
/// Entries buffered per stream before a slow one is resynchronised.
const BUFFER: usize = 256;

/// One line of the feed.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Entry {
    /// Increasing; a stream skips what it already sent.
    id: u64,
    /// When, in milliseconds since the epoch.
    at_ms: i64,
    /// A command or an action.
    #[serde(skip_serializing_if = "Option::is_none")]
    brain: Option<Activity>,
    /// A Frigate arrival.
    #[serde(skip_serializing_if = "Option::is_none")]
    frigate: Option<FrigateEntry>,
    /// This entry as JSON, for the streams.
    #[serde(skip)]
    json: String,
}

/// A tracked object as Frigate saw it begin.
#[derive(Debug, Clone, Serialize)]
struct FrigateEntry {
    camera: Option<String>,
    label: Option<String>,
    sub_label: Option<String>,
    zones: Vec<String>,
    score: Option<f64>,
}

/// The feed's recent entries and their broadcast.
#[derive(Debug, Clone)]
pub(super) struct Feed {
    recent: Arc<Mutex<VecDeque<Arc<Entry>>>>,
    sender: broadcast::Sender<Arc<Entry>>,
}

impl Feed {
    /// Follows the brain (and Frigate's arrivals) until `shutdown`.
    pub(super) fn spawn(services: &Services, shutdown: CancellationToken) -> Self {
        let (sender, _) = broadcast::channel(BUFFER);
        let feed = Self {
            recent: Arc::default(),
            sender,
        };
        let mut brain = services.brain.subscribe();
        let mut frigate = Some(services.frigate.arrivals.subscribe());
        let next = AtomicU64::new(1);
        let this = feed.clone();
        tokio::spawn(async move {
            loop {
                let (brain_entry, frigate_entry) = tokio::select! {
                    () = shutdown.cancelled() => break,
                    got = brain.recv() => match got {
                        Ok(activity) => (Some(activity), None),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    got = async { match frigate.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    } } => match got {
                        Ok(event) => (None, Some(FrigateEntry {
                            camera: event.camera,
                            label: event.label,
                            sub_label: event.sub_label,
                            zones: event.zones,
                            score: event.score,
                        })),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => {
                            frigate = None;
                            continue;
                        }
                    },
                };
                this.push(Entry {
                    id: next.fetch_add(1, Ordering::Relaxed),
                    at_ms: jiff::Timestamp::now().as_millisecond(),
                    brain: brain_entry,
                    frigate: frigate_entry,
                    json: String::new(),
                });
            }
        });
        feed
    }

    fn push(&self, mut entry: Entry) {
        // Serialized once here, not once per open panel.
        entry.json = serde_json::to_string(&entry).unwrap_or_default();
        let entry = Arc::new(entry);
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() >= RECENT {
                recent.pop_front();
            }
            recent.push_back(Arc::clone(&entry));
        }
        let _ = self.sender.send(entry);
    }

    fn snapshot(&self) -> Vec<Arc<Entry>> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Where one stream is.
struct Follow {
    feed: Feed,
    receiver: broadcast::Receiver<Arc<Entry>>,
    /// The last id sent.
    sent: u64,
    /// The snapshot is still to be sent (at the start, or after lagging).
    resync: Option<&'static str>,
    _permit: OwnedSemaphorePermit,
}

fn json(data: &impl Serialize) -> String {
    serde_json::to_string(data).unwrap_or_default()
}

fn entries(snapshot: &[Arc<Entry>]) -> Vec<&Entry> {
    snapshot.iter().map(|e| &**e).collect()
}

/// The stream's events, as (name, JSON): `snapshot` first, then `entry` for each new one, and
/// `resync` with the recent entries again after falling behind.
fn follow(follow: Follow) -> impl Stream<Item = (&'static str, String)> {
    futures_util::stream::unfold(follow, |mut f| async move {
        if let Some(name) = f.resync.take() {
            let snapshot = f.feed.snapshot();
            f.sent = snapshot.last().map_or(f.sent, |e| e.id);
            return Some(((name, json(&entries(&snapshot))), f));
        }
        loop {
            match f.receiver.recv().await {
                Ok(entry) if entry.id <= f.sent => {}
                Ok(entry) => {
                    f.sent = entry.id;
                    return Some((("entry", entry.json.clone()), f));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow: drop what is queued and start again from the recent entries.
                    f.receiver = f.receiver.resubscribe();
                    let snapshot = f.feed.snapshot();
                    f.sent = snapshot.last().map_or(f.sent, |e| e.id);
                    return Some((("resync", json(&entries(&snapshot))), f));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// `GET api/feed`: the stream, as server-sent events.
pub(super) async fn stream(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, PanelError> {
    state.gate.authenticate(peer, &headers)?;
    let stream = events(&state)?
        .map(|(name, data)| Ok::<_, Infallible>(Event::default().event(name).data(data)));
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    Ok(no_store(sse.into_response()))
}

/// `GET api/feed/socket?csrf=`: the stream over a WebSocket (what the page uses: see
/// [`super::socket`]).
pub(super) async fn socket(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<super::socket::SocketQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, PanelError> {
    state
        .gate
        .authorize(peer, &headers, query.csrf.as_deref())?;
    let events = events(&state)?;
    Ok(super::socket::serve(
        upgrade,
        events,
        state.shutdown.clone(),
    ))
}

/// One stream's events, holding a stream permit, until they end or Jarvis shuts down.
fn events(
    state: &PanelState,
) -> Result<impl Stream<Item = (&'static str, String)> + Send + 'static, PanelError> {
    let permit = state.stream_permit()?;
    // Subscribed before the snapshot is taken: nothing falls between the two.
    let receiver = state.feed.sender.subscribe();
    Ok(follow(Follow {
        feed: state.feed.clone(),
        receiver,
        sent: 0,
        resync: Some("snapshot"),
        _permit: permit,
    })
    .take_until(state.shutdown.clone().cancelled_owned()))
}

/// `GET api/pending`: the confirmations waiting.
pub(super) async fn pending(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, PanelError> {
    state.gate.authenticate(peer, &headers)?;
    Ok(no_store(
        Json(state.services.brain.waiting_confirmations()).into_response(),
    ))
}

/// Body of `POST api/confirm`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfirmBody {
    /// The waiting action's id.
    id: String,
    /// Confirm (true) or cancel (false).
    confirm: bool,
}

/// `POST api/confirm`: Confirm or Cancel, as channel `panel`.
pub(super) async fn confirm(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<ConfirmBody>, JsonRejection>,
) -> Result<Response, PanelError> {
    let access = state.gate.authorize(peer, &headers, None)?;
    let Json(body) = body.map_err(bad_body)?;
    let response = state
        .services
        .brain
        .settle_from_panel(&body.id, body.confirm, &client_of(peer, &access))
        .await;
    Ok(Json(response).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(n: usize) -> Entry {
        Entry {
            id: 0,
            at_ms: 0,
            brain: Some(Activity::Command {
                channel: crate::brain::Channel::Http,
                text: format!("command {n}"),
                intent: None,
                reply: "ok".into(),
            }),
            frigate: None,
            json: String::new(),
        }
    }

    #[tokio::test]
    async fn a_slow_stream_is_resynchronised_not_queued() {
        let (sender, _) = broadcast::channel(4);
        let feed = Feed {
            recent: Arc::default(),
            sender,
        };
        let push = |n: usize| {
            let mut entry = command(n);
            entry.id = n as u64;
            feed.push(entry);
        };
        push(1);
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .unwrap();
        let stream = follow(Follow {
            feed: feed.clone(),
            receiver: feed.sender.subscribe(),
            sent: 0,
            resync: Some("snapshot"),
            _permit: permit,
        });
        futures_util::pin_mut!(stream);
        let (name, data) = stream.next().await.unwrap();
        assert_eq!(name, "snapshot");
        assert!(data.contains("command 1"));
        push(2);
        let (name, data) = stream.next().await.unwrap();
        assert_eq!((name, data.contains("command 2")), ("entry", true));
        // Twenty more while the client reads nothing: the buffer of 4 overflows.
        for n in 3..23 {
            push(n);
        }
        let (name, data) = stream.next().await.unwrap();
        assert_eq!(name, "resync");
        let ids: Vec<u64> = serde_json::from_str::<Vec<serde_json::Value>>(&data)
            .unwrap()
            .iter()
            .map(|e| e["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids.first(), Some(&1));
        assert_eq!(ids.last(), Some(&22));
        // Then it follows again, with nothing sent twice.
        push(23);
        let (name, data) = stream.next().await.unwrap();
        assert_eq!((name, data.contains("command 23")), ("entry", true));
    }
}
