//! One Wyoming connection: read events, answer `describe` and `ping` at any time, route the first
//! request to its service, and turn every protocol error into an `error` event for that peer only.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, instrument, warn};
use wyoming::info::SelectProgram;
use wyoming::misc::{Error as ErrorEvent, Pong};
use wyoming::{Connection, Event, ProtocolError};

use super::dispatch::Route;
use super::intent::IntentFlow;
use crate::services::{ServiceState, Services};
use crate::stt::backends::{LOOP_CODE, SttBackends};
use crate::stt::flow::SttFlow;
use crate::stt::route::RoutedStt;
use crate::tts::flow::TtsFlow;
use crate::tts::route::RoutedTts;
use crate::wake::flow::WakeFlow;
use crate::wake::route::RoutedWake;

/// How long a closing connection may take to receive its last `error` event.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);

/// What the connection is doing.
#[derive(Debug)]
enum Flow {
    /// No request yet.
    Idle,
    /// The request was refused; the rest of its flow (e.g. audio) is read and dropped, because
    /// HA 2024.3 writes all audio before it reads, and closing early breaks its writes.
    Refused(Route),
    /// Speech-to-text.
    Stt(Box<RoutedStt>),
    /// Text-to-speech.
    Tts(Box<RoutedTts>),
    /// Intent handling (a `transcript` for the conversation agent).
    Intent(IntentFlow),
    /// Wake word.
    Wake(Box<RoutedWake>),
}

impl Flow {
    /// Output a service produces on its own (a transcript when speech ends). Pending forever
    /// when there is none.
    ///
    /// # Cancel safety
    /// Cancel safe (see [`RoutedStt::next_output`]).
    async fn output(&mut self) -> Vec<Event> {
        match self {
            Self::Stt(flow) => flow.next_output().await,
            Self::Tts(flow) => flow.next_output().await,
            Self::Intent(flow) => flow.next_output().await,
            Self::Wake(flow) => flow.next_output().await,
            Self::Idle | Self::Refused(_) => std::future::pending().await,
        }
    }

    /// Whether the connection may read the next event. A wake-word stream sent faster than it
    /// is computed stops the reading for a while, so the sender waits instead of memory growing.
    fn accepts_input(&self) -> bool {
        match self {
            Self::Wake(flow) => flow.accepts_input(),
            _ => true,
        }
    }

    /// Whether a reply is being prepared that shutdown must wait for.
    fn in_flight(&self) -> bool {
        match self {
            Self::Stt(flow) => flow.is_busy(),
            Self::Tts(flow) => flow.is_busy(),
            Self::Intent(flow) => flow.is_busy(),
            Self::Wake(flow) => flow.is_busy(),
            Self::Idle | Self::Refused(_) => false,
        }
    }
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
    let mut flow = Flow::Idle;
    loop {
        // Replies are written inside the loop body, so a cancelled token is only seen between
        // events, and a transcript being decoded is waited for below. `read_event` and
        // `output` are cancel safe. Input already waiting is read before a flow's own output:
        // an end of speech decided on the audio so far is only acted on once no more audio has
        // been sent (see `SttFlow::next_output`).
        let reading = flow.accepts_input();
        let next = tokio::select! {
            biased;
            () = conn.shutdown.cancelled() => {
                if flow.in_flight() {
                    debug!("server shutting down; finishing the reply in flight");
                    let events = flow.output().await;
                    let _ = write_all(&mut conn, events).await;
                }
                debug!("server shutting down; closing");
                break;
            }
            read = conn.reader.read_event(), if reading => match read {
                Ok(Some(event)) => {
                    let events = handle(&services, &mut flow, event, conn.peer);
                    write_all(&mut conn, events).await
                }
                Ok(None) => {
                    debug!("peer closed the connection");
                    Next::Close
                }
                Err(err) => on_error(&mut conn, err).await,
            },
            events = flow.output() => write_all(&mut conn, events).await,
        };
        if matches!(next, Next::Close) {
            break;
        }
    }
    // Dropping the flow cancels any decode still running for this peer.
    drop(flow);
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, conn.writer.shutdown()).await;
}

async fn write_all(conn: &mut Connection, events: Vec<Event>) -> Next {
    for event in events {
        if let Err(err) = conn.writer.feed_event(event).await {
            debug!(cause = %err, "peer went away while we wrote");
            return Next::Close;
        }
    }
    match conn.writer.flush().await {
        Ok(()) => Next::Continue,
        Err(err) => {
            debug!(cause = %err, "peer went away while we wrote");
            Next::Close
        }
    }
}

/// Decides what an incoming event does; returns the events to send back.
fn handle(
    services: &Services,
    flow: &mut Flow,
    event: Event,
    peer: std::net::SocketAddr,
) -> Vec<Event> {
    match &event {
        Event::Describe(_) => return vec![services.info().into()],
        Event::Ping(ping) => {
            return vec![
                Pong {
                    text: ping.text.clone(),
                }
                .into(),
            ];
        }
        Event::SelectProgram(SelectProgram { name }) => {
            // Every program we offer is the only one of its kind, so there is nothing to select.
            debug!(program = %name, "select-program ignored");
            return Vec::new();
        }
        _ => {}
    }
    // Events that continue the flow in progress.
    match (&mut *flow, &event) {
        (Flow::Stt(stt), Event::AudioStart(start)) if !stt.is_done() => {
            return stt.on_audio_start(start);
        }
        (Flow::Stt(stt), Event::AudioChunk(chunk)) => return stt.on_chunk(chunk),
        (Flow::Stt(stt), Event::AudioStop(_)) => return stt.on_stop(),
        (Flow::Wake(wake), Event::AudioStart(start)) => return wake.on_audio_start(start),
        (Flow::Wake(wake), Event::AudioChunk(chunk)) => return wake.on_chunk(chunk),
        (Flow::Wake(wake), Event::AudioStop(_)) => return wake.on_stop(),
        (Flow::Tts(tts), Event::SynthesizeChunk(chunk)) => {
            return tts.on_chunk(&event, &chunk.text);
        }
        (Flow::Tts(tts), Event::SynthesizeStop(_)) => return tts.on_stop(),
        // Inside a stream, `synthesize` is a compatibility copy of the text: ignore it.
        (Flow::Tts(tts), Event::Synthesize(synthesize)) if tts.is_streaming() => {
            return tts.on_compat_synthesize(synthesize);
        }
        (Flow::Refused(route), _) if route.continues_with(&event) => {
            if route.ends_flow(&event) {
                *flow = Flow::Idle;
            }
            return Vec::new();
        }
        _ => {}
    }
    // Events that open a new request.
    if let Some(route) = Route::of(&event) {
        return open(services, flow, route, &event, peer);
    }
    match event {
        Event::AudioChunk(_) | Event::AudioStop(_) => {
            debug!(event = event.kind(), "audio before any request");
            vec![
                ErrorEvent::new(
                    "unexpected-event",
                    format!(
                        "{} before audio-start: send transcribe or detect, then audio-start",
                        event.kind()
                    ),
                )
                .into(),
            ]
        }
        _ => {
            // Unknown and out-of-place events are ignored, as the reference servers do.
            debug!(event = event.kind(), "ignored");
            Vec::new()
        }
    }
}

/// Starts the service behind `route` for `request`.
fn open(
    services: &Services,
    flow: &mut Flow,
    route: Route,
    request: &Event,
    peer: std::net::SocketAddr,
) -> Vec<Event> {
    if let ServiceState::Unavailable { reason } = services.state(route) {
        info!(
            service = route.service_name(),
            request = request.kind(),
            "service unavailable"
        );
        *flow = if Route::opens_flow(request) {
            Flow::Refused(route)
        } else {
            Flow::Idle
        };
        return vec![ErrorEvent::new("service-unavailable", reason).into()];
    }
    if route == Route::Intent {
        let brain = &services.brain;
        return match request {
            Event::Transcript(transcript) => {
                *flow = Flow::Intent(IntentFlow::handle(
                    Arc::clone(brain),
                    transcript,
                    peer.ip().to_string(),
                ));
                Vec::new()
            }
            Event::Recognize(recognize) => IntentFlow::recognize(brain, recognize),
            Event::Intent(intent) => IntentFlow::refuse_structured(intent),
            _ => Vec::new(),
        };
    }
    match (route, &services.stt, &services.tts) {
        (Route::Wake, _, _) if services.wake.is_some() || services.wake_backends.is_some() => {
            let detect = match request {
                Event::Detect(detect) => Some(detect),
                _ => None,
            };
            let context = detect.and_then(|d| d.context.as_ref());
            if let Some(reason) = SttBackends::loop_in_context(&services.instance, context) {
                warn!(%reason, "wake word stream refused: loop");
                *flow = Flow::Refused(Route::Wake);
                return vec![ErrorEvent::new(LOOP_CODE, reason).into()];
            }
            if let Some(backends) = &services.wake_backends {
                let (routed, events) = RoutedWake::route(Arc::clone(backends), detect);
                *flow = Flow::Wake(Box::new(routed));
                return events;
            }
            let Some(wake) = &services.wake else {
                return Vec::new();
            };
            match WakeFlow::new(Arc::clone(wake), detect) {
                Ok(wake_flow) => {
                    *flow = Flow::Wake(Box::new(RoutedWake::local(wake_flow)));
                    Vec::new()
                }
                Err(events) => {
                    // The audio that follows is read and dropped.
                    *flow = Flow::Refused(Route::Wake);
                    events
                }
            }
        }
        (Route::Tts, _, _) if services.tts.is_some() || services.tts_backends.is_some() => {
            let context = match request {
                Event::SynthesizeStart(start) => start.context.as_ref(),
                Event::Synthesize(synthesize) => synthesize.context.as_ref(),
                _ => return Vec::new(),
            };
            if let Some(reason) = SttBackends::loop_in_context(&services.instance, context) {
                warn!(%reason, "text-to-speech request refused: loop");
                *flow = if Route::opens_flow(request) {
                    Flow::Refused(Route::Tts)
                } else {
                    Flow::Idle
                };
                return vec![ErrorEvent::new(LOOP_CODE, reason).into()];
            }
            if let Some(backends) = &services.tts_backends {
                let (routed, events) = RoutedTts::route(Arc::clone(backends), request);
                *flow = Flow::Tts(Box::new(routed));
                return events;
            }
            let Some(tts) = &services.tts else {
                return Vec::new();
            };
            let (tts_flow, events) = match request {
                Event::SynthesizeStart(start) => TtsFlow::stream(Arc::clone(tts), start),
                Event::Synthesize(synthesize) => TtsFlow::single(Arc::clone(tts), synthesize),
                _ => return Vec::new(),
            };
            *flow = Flow::Tts(Box::new(RoutedTts::local(tts_flow)));
            events
        }
        (Route::Stt, _, _) if services.stt.is_some() || services.stt_backends.is_some() => {
            let transcribe = match request {
                Event::Transcribe(t) => Some(t),
                _ => None,
            };
            if let Some(reason) = SttBackends::loop_in(&services.instance, transcribe) {
                warn!(%reason, "speech-to-text request refused: loop");
                *flow = Flow::Refused(Route::Stt);
                return vec![ErrorEvent::new(LOOP_CODE, reason).into()];
            }
            let names = services.brain.vocabulary();
            let understanding: Arc<dyn crate::stt::Understanding> = services.brain.clone();
            if let Some(backends) = &services.stt_backends {
                let (mut routed, mut events) =
                    RoutedStt::route(Arc::clone(backends), transcribe, names, Some(understanding));
                if let Event::AudioStart(start) = request {
                    events.extend(routed.on_audio_start(start));
                }
                *flow = Flow::Stt(Box::new(routed));
                return events;
            }
            let Some(stt) = &services.stt else {
                return Vec::new();
            };
            let mut stt_flow = RoutedStt::local(SttFlow::new(
                Arc::clone(stt),
                transcribe,
                &names,
                Some(understanding),
            ));
            let events = match request {
                Event::AudioStart(start) => stt_flow.on_audio_start(start),
                _ => Vec::new(),
            };
            *flow = Flow::Stt(Box::new(stt_flow));
            events
        }
        _ => {
            warn!(
                service = route.service_name(),
                "service reported ready but has no engine"
            );
            vec![
                ErrorEvent::new(
                    "service-unavailable",
                    format!("{} is not available", route.service_name()),
                )
                .into(),
            ]
        }
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
