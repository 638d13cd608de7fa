//! One Wyoming connection: read events, answer `describe` and `ping` at any time, route the first
//! request to its service, and turn every protocol error into an `error` event for that peer only.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, instrument, warn};
use wyoming::info::SelectProgram;
use wyoming::misc::{Error as ErrorEvent, Pong};
use wyoming::{Connection, Event, ProtocolError};

use super::dispatch::Route;
use crate::services::{ServiceState, Services};

/// How long a closing connection may take to receive its last `error` event.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request yet.
    Idle,
    /// The request was refused; the rest of its flow (e.g. audio) is read and dropped, because
    /// HA 2024.3 writes all audio before it reads, and closing early breaks its writes.
    Refused(Route),
}

/// What the loop does after an event.
enum Next {
    Continue,
    Close,
}

/// Serves one connection until the peer leaves, a fatal error, or shutdown.
#[instrument(name = "wyoming", skip_all, fields(peer = %conn.peer))]
pub(crate) async fn run(mut conn: Connection, services: Arc<Services>) {
    debug!("connected");
    let mut phase = Phase::Idle;
    loop {
        // Replies are written inside the loop body, so a cancelled token is only seen between
        // events: the reply in flight always finishes. `read_event` is cancel safe.
        let read = tokio::select! {
            biased;
            () = conn.shutdown.cancelled() => {
                debug!("server shutting down; closing");
                break;
            }
            read = conn.reader.read_event() => read,
        };
        let next = match read {
            Ok(Some(event)) => handle(&mut conn, &services, &mut phase, event).await,
            Ok(None) => {
                debug!("peer closed the connection");
                Next::Close
            }
            Err(err) => on_error(&mut conn, err).await,
        };
        if matches!(next, Next::Close) {
            break;
        }
    }
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, conn.writer.shutdown()).await;
}

async fn handle(
    conn: &mut Connection,
    services: &Services,
    phase: &mut Phase,
    event: Event,
) -> Next {
    let reply: Option<Event> = match &event {
        Event::Describe(_) => Some(services.info().into()),
        Event::Ping(ping) => Some(
            Pong {
                text: ping.text.clone(),
            }
            .into(),
        ),
        Event::SelectProgram(SelectProgram { name }) => {
            // Every program we offer is the only one of its kind, so there is nothing to select.
            debug!(program = %name, "select-program ignored");
            None
        }
        _ => match (*phase, Route::of(&event)) {
            // Checked before routing: `audio-start` continues a refused STT flow, it opens nothing.
            (Phase::Refused(route), _) if route.continues_with(&event) => {
                if route.ends_flow(&event) {
                    *phase = Phase::Idle;
                }
                None
            }
            (_, Some(route)) => match services.state(route) {
                ServiceState::Unavailable { reason } => {
                    info!(
                        service = route.service_name(),
                        request = event.kind(),
                        "service unavailable"
                    );
                    *phase = if Route::opens_flow(&event) {
                        Phase::Refused(route)
                    } else {
                        Phase::Idle
                    };
                    Some(ErrorEvent::new("service-unavailable", reason.clone()).into())
                }
            },
            (Phase::Idle, None) if matches!(event, Event::AudioChunk(_) | Event::AudioStop(_)) => {
                debug!(event = event.kind(), "audio before any request");
                Some(
                    ErrorEvent::new(
                        "unexpected-event",
                        format!(
                            "{} before audio-start: send transcribe or detect, then audio-start",
                            event.kind()
                        ),
                    )
                    .into(),
                )
            }
            _ => {
                // Unknown and out-of-place events are ignored, as the reference servers do.
                debug!(event = event.kind(), "ignored");
                None
            }
        },
    };
    match reply {
        Some(reply) => match conn.writer.write_event(reply).await {
            Ok(()) => Next::Continue,
            Err(err) => {
                debug!(cause = %err, "peer went away while we wrote");
                Next::Close
            }
        },
        None => Next::Continue,
    }
}

/// Logs a protocol error once and tells the peer, if the stream still allows it.
async fn on_error(conn: &mut Connection, err: ProtocolError) -> Next {
    match &err {
        ProtocolError::Io(cause) => {
            debug!(%cause, "connection lost");
            return Next::Close;
        }
        ProtocolError::IdleTimeout(limit) => info!(?limit, "closing idle connection"),
        ProtocolError::InvalidEvent { .. } => warn!(error = %err, "invalid event; ignoring it"),
        _ => warn!(error = %err, "protocol error; closing connection"),
    }
    let farewell = ErrorEvent::new(err.code(), err.to_string());
    let sent = tokio::time::timeout(FAREWELL_TIMEOUT, conn.writer.write_event(farewell)).await;
    if err.is_fatal() || !matches!(sent, Ok(Ok(()))) {
        Next::Close
    } else {
        Next::Continue
    }
}
