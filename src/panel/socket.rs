//! The panel's live streams (the feed, a pull's progress) over a WebSocket as well as as
//! server-sent events.
//!
//! Why: Home Assistant's ingress proxy compresses what it passes on by content type, and before
//! Home Assistant 2026.1 (core PR #160704) that included `text/event-stream`: the browser then
//! waits for the compressed stream to fill a buffer, and the feed stands still. WebSocket
//! messages pass through ingress one by one, uncompressed, on every version; so the page uses
//! these, and the event streams stay for other clients.
//!
//! Each message is the text `{"event": <name>, "data": <the event's JSON>}`. The browser sends
//! nothing; whatever it sends is read (up to [`MAX_INCOMING`] bytes a message) and dropped.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

/// The query of every panel WebSocket (the feed, a pull's progress, the microphone): the page's
/// CSRF token, since a WebSocket cannot carry the header.
#[derive(Debug, serde::Deserialize)]
pub(super) struct SocketQuery {
    #[serde(default)]
    pub(super) csrf: Option<String>,
}

/// The largest message the browser may send (it has nothing to say).
const MAX_INCOMING: usize = 1024;
/// How often an idle socket is pinged, so proxies keep it open.
const PING: Duration = Duration::from_secs(15);

/// Sends `events` (name, JSON) over the socket until they end, the browser leaves, or
/// `shutdown`; then closes it.
pub(super) fn serve<S>(
    upgrade: WebSocketUpgrade,
    events: S,
    shutdown: CancellationToken,
) -> Response
where
    S: Stream<Item = (&'static str, String)> + Send + 'static,
{
    upgrade
        .max_message_size(MAX_INCOMING)
        .max_frame_size(MAX_INCOMING)
        .on_upgrade(move |socket| async move {
            tokio::select! {
                () = forward(socket, events) => {}
                () = shutdown.cancelled() => {}
            }
        })
}

async fn forward<S>(mut socket: WebSocket, events: S)
where
    S: Stream<Item = (&'static str, String)> + Send,
{
    let mut events = std::pin::pin!(events);
    let mut ping = tokio::time::interval(PING);
    ping.tick().await;
    loop {
        tokio::select! {
            next = events.next() => {
                let Some((name, data)) = next else { break };
                // `data` is JSON already: no second encoding.
                let text = format!("{{\"event\":{},\"data\":{data}}}", serde_json::json!(name));
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
