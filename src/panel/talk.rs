//! Talk to Jarvis from the browser: a typed command (channel `panel`), its reply as speech
//! (`POST api/speak` answers a WAV from the TTS engine), and push-to-talk: 16 kHz mono 16-bit
//! PCM over a WebSocket into the same speech-to-text flow the Wyoming server runs, then the
//! brain.
//!
//! The microphone's socket is bounded: one message holds at most [`MAX_CHUNK_BYTES`] (a larger
//! one, up to the socket's hard cap, is answered with a clear error before the socket closes;
//! past the cap the socket just closes), the whole turn at most `stt.max_audio_secs`, at most
//! [`MAX_MESSAGES_PER_SEC`] messages a second (a flood closes that socket only), and
//! [`IDLE`] without a message ends it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;
use wyoming::Event;
use wyoming::audio::{AudioChunk, AudioStart};

use crate::brain::engine::MAX_TEXT_CHARS;
use crate::brain::{Channel, Command};
use crate::stt::flow::SttFlow;

use super::access::Access;
use super::error::PanelError;
use super::{PanelState, bad_body, client_of};

/// The microphone's format.
const RATE: u32 = 16_000;
/// Bytes per second of that format.
const BYTES_PER_SEC: usize = RATE as usize * 2;
/// Largest audio message: two seconds (browsers send a fraction of a second at a time).
pub(super) const MAX_CHUNK_BYTES: usize = 2 * BYTES_PER_SEC;
/// Largest message the socket reads at all; past it the socket closes without reading it.
const MAX_WS_MESSAGE: usize = 16 * 1024 * 1024;
/// Messages a second, at most, before the socket is closed as a flood.
pub(super) const MAX_MESSAGES_PER_SEC: u32 = 100;
/// A microphone socket idle this long is closed.
const IDLE: Duration = Duration::from_secs(30);
/// How long a closing socket is drained for the browser's close answer.
const CLOSING: Duration = Duration::from_secs(2);
/// Longest text spoken by `api/speak`, in characters.
const MAX_SPEAK_CHARS: usize = 1000;

/// Body of `POST api/command`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandBody {
    text: String,
    #[serde(default)]
    conversation_id: Option<String>,
}

/// A reply with how long the brain took.
#[derive(Debug, Serialize)]
struct Replied {
    #[serde(flatten)]
    response: crate::brain::Response,
    reply_ms: u64,
}

/// `POST api/command`: a typed command, as channel `panel`.
pub(super) async fn command(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<CommandBody>, JsonRejection>,
) -> Result<Response, PanelError> {
    let access = state.gate.authorize(peer, &headers, None)?;
    let Json(body) = body.map_err(bad_body)?;
    let text = body.text.trim();
    if text.is_empty() {
        return Err(PanelError::new(
            StatusCode::BAD_REQUEST,
            "empty-text",
            "type what you would say, e.g. \"status of node pve\"",
        ));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(PanelError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-long",
            format!("a command is at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    let replied = ask(&state, peer, &access, text.to_owned(), body.conversation_id).await;
    Ok(Json(replied).into_response())
}

async fn ask(
    state: &PanelState,
    peer: SocketAddr,
    access: &Access,
    text: String,
    conversation: Option<String>,
) -> Replied {
    let started = Instant::now();
    let response = state
        .services
        .brain
        .command(Command {
            text,
            channel: Channel::Panel,
            client: client_of(peer, access),
            conversation: conversation.filter(|c| !c.is_empty() && c.len() <= 200),
            approval: None,
        })
        .await;
    Replied {
        response,
        reply_ms: millis(started.elapsed()),
    }
}

/// Body of `POST api/speak`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SpeakBody {
    text: String,
    /// A voice name; the configured one when missing.
    #[serde(default)]
    voice: Option<String>,
}

/// `POST api/speak`: the text as a WAV, from the TTS engine (and its cache).
pub(super) async fn speak(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<SpeakBody>, JsonRejection>,
) -> Result<Response, PanelError> {
    state.gate.authorize(peer, &headers, None)?;
    let Json(body) = body.map_err(bad_body)?;
    speak_text(&state, body.text, body.voice).await
}

/// The WAV of `text` in `voice`.
pub(super) async fn speak_text(
    state: &PanelState,
    text: String,
    voice: Option<String>,
) -> Result<Response, PanelError> {
    let Some(tts) = state.services.tts.clone() else {
        return Err(PanelError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "tts-off",
            "text-to-speech is off (tts.enabled)",
        ));
    };
    let text: String = text.chars().take(MAX_SPEAK_CHARS).collect();
    if text.trim().is_empty() {
        return Err(PanelError::new(
            StatusCode::BAD_REQUEST,
            "empty-text",
            "nothing to say",
        ));
    }
    let requested = voice.map(|name| wyoming::tts::SynthesizeVoice {
        name: Some(name),
        ..Default::default()
    });
    let selection = tts
        .select(requested.as_ref())
        .map_err(|err| PanelError::new(StatusCode::NOT_FOUND, "no-voice", err.to_string()))?;
    let rate = selection.voice.sample_rate;
    let started = Instant::now();
    let synthesized = tokio::task::spawn_blocking(move || {
        let mut pcm = Vec::new();
        let mut first: Option<Duration> = None;
        for sentence in crate::tts::text::sentences(&crate::tts::text::clean(&text)) {
            pcm.extend(tts.synthesize_blocking(&selection, &sentence)?);
            first.get_or_insert_with(|| started.elapsed());
        }
        Ok::<_, crate::tts::TtsError>((pcm, first))
    })
    .await
    .map_err(|_| PanelError::internal("synthesis task panicked"))?
    .map_err(|err| {
        PanelError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "tts-failed",
            err.to_string(),
        )
    })?;
    let (pcm, first) = synthesized;
    if let Some(first) = first {
        crate::latency::record(crate::latency::Series::FirstAudio, first);
    }
    let wav = wav(rate, &pcm).map_err(|err| PanelError::internal(&err.to_string()))?;
    let mut response = wav.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    if let Ok(v) = HeaderValue::from_str(&first.map_or(0, millis).to_string()) {
        headers.insert("x-jarvis-first-audio-ms", v);
    }
    Ok(response)
}

fn wav(rate: u32, pcm: &[i16]) -> Result<Vec<u8>, hound::Error> {
    let mut out = std::io::Cursor::new(Vec::with_capacity(44 + pcm.len() * 2));
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::new(&mut out, spec)?;
        for &s in pcm {
            writer.write_sample(s)?;
        }
        writer.finalize()?;
    }
    Ok(out.into_inner())
}

/// `GET api/listen`: push-to-talk. The browser sends binary messages of 16 kHz mono 16-bit
/// little-endian PCM, then the text `{"type":"stop"}` when the button is released; Jarvis
/// answers `{"type":"transcript"}`, `{"type":"reply"}` (or `{"type":"error"}`) as JSON text.
pub(super) async fn listen(
    State(state): State<PanelState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<super::socket::SocketQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, PanelError> {
    let access = state
        .gate
        .authorize(peer, &headers, query.csrf.as_deref())?;
    if state.services.stt.is_none() {
        return Err(PanelError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stt-off",
            "speech-to-text is off (stt.enabled)",
        ));
    }
    let permit = state.stream_permit()?;
    Ok(upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| async move {
            let shutdown = state.shutdown.clone();
            tokio::select! {
                () = turn(socket, state, peer, access, permit) => {}
                () = shutdown.cancelled() => {}
            }
        }))
}

/// A text message from the browser: `{"type": "stop"}` when the button is released.
#[derive(Debug, Deserialize)]
struct Control {
    #[serde(rename = "type")]
    kind: String,
}

/// Why a turn ended early.
struct Refusal {
    code: &'static str,
    close: u16,
    message: String,
}

/// One push-to-talk turn.
async fn turn(
    mut socket: WebSocket,
    state: PanelState,
    peer: SocketAddr,
    access: Access,
    _permit: OwnedSemaphorePermit,
) {
    let outcome = listen_turn(&mut socket, &state, peer, &access).await;
    if let Err(refusal) = outcome {
        let _ = socket
            .send(Message::Text(
                json!({"type": "error", "code": refusal.code, "message": refusal.message})
                    .to_string()
                    .into(),
            ))
            .await;
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code: refusal.close,
                reason: refusal.code.into(),
            })))
            .await;
    } else {
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code: close_code::NORMAL,
                reason: "done".into(),
            })))
            .await;
    }
    // Finish the closing handshake: read (and drop) what the browser still sends until it
    // answers the close, for at most [`CLOSING`]. Closing with unread data would reset the
    // connection, and the browser would drop the error message above.
    let _ = tokio::time::timeout(CLOSING, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn listen_turn(
    socket: &mut WebSocket,
    state: &PanelState,
    peer: SocketAddr,
    access: &Access,
) -> Result<(), Refusal> {
    let refuse = |code, close, message: String| Refusal {
        code,
        close,
        message,
    };
    let Some(stt) = state.services.stt.clone() else {
        return Err(refuse(
            "stt-off",
            close_code::UNSUPPORTED,
            "speech-to-text is off".into(),
        ));
    };
    let brain = &state.services.brain;
    let names = brain.vocabulary();
    let understanding: std::sync::Arc<dyn crate::stt::Understanding> = brain.clone();
    let mut flow = SttFlow::new(stt, None, &names, Some(understanding));
    let format = |audio: Bytes| AudioChunk {
        rate: RATE,
        width: 2,
        channels: 1,
        timestamp: None,
        audio,
    };
    let mut pending = flow.on_audio_start(&AudioStart {
        rate: RATE,
        width: 2,
        channels: 1,
        timestamp: None,
    });
    let max_bytes = state.max_audio_secs as usize * BYTES_PER_SEC;
    let mut received = 0usize;
    let mut window = (Instant::now(), 0u32);
    let mut stopped: Option<Instant> = None;
    loop {
        for event in pending.drain(..) {
            match event {
                Event::Transcript(transcript) => {
                    let stt_ms = stopped.map(|t| millis(t.elapsed()));
                    send(
                        socket,
                        json!({"type": "transcript", "text": transcript.text, "stt_ms": stt_ms}),
                    )
                    .await;
                    if transcript.text.trim().is_empty() {
                        return Err(refuse(
                            "no-speech",
                            close_code::NORMAL,
                            "I didn't hear anything; hold the button while you speak".into(),
                        ));
                    }
                    let replied = ask(state, peer, access, transcript.text, None).await;
                    let mut reply = serde_json::to_value(&replied).unwrap_or_default();
                    if let Some(map) = reply.as_object_mut() {
                        map.insert("type".into(), "reply".into());
                    }
                    send(socket, reply).await;
                    return Ok(());
                }
                Event::Error(err) => {
                    return Err(refuse("stt-failed", close_code::ERROR, err.text));
                }
                _ => {}
            }
        }
        let message = tokio::select! {
            biased;
            message = tokio::time::timeout(IDLE, socket.recv()) => message,
            events = flow.next_output() => {
                pending = events;
                continue;
            }
        };
        let message = match message {
            Err(_) => {
                return Err(refuse(
                    "idle",
                    close_code::NORMAL,
                    format!("nothing arrived for {} s", IDLE.as_secs()),
                ));
            }
            Ok(None) => return Ok(()),
            Ok(Some(Err(_))) => {
                // Over the socket's hard cap or broken framing; nothing more can be read.
                return Err(refuse(
                    "bad-message",
                    close_code::SIZE,
                    format!("messages are at most {MAX_CHUNK_BYTES} bytes of audio"),
                ));
            }
            Ok(Some(Ok(message))) => message,
        };
        let now = Instant::now();
        if now.duration_since(window.0) >= Duration::from_secs(1) {
            window = (now, 0);
        }
        window.1 += 1;
        if window.1 > MAX_MESSAGES_PER_SEC {
            return Err(refuse(
                "flood",
                close_code::POLICY,
                format!(
                    "more than {MAX_MESSAGES_PER_SEC} messages a second; send audio in chunks of \
                     about 100 ms"
                ),
            ));
        }
        match message {
            Message::Binary(audio) => {
                if stopped.is_some() {
                    continue;
                }
                if audio.len() > MAX_CHUNK_BYTES {
                    return Err(refuse(
                        "too-large",
                        close_code::SIZE,
                        format!(
                            "an audio message of {} bytes is too large: send at most \
                             {MAX_CHUNK_BYTES} bytes (2 s of 16 kHz mono 16-bit PCM) at a time",
                            audio.len()
                        ),
                    ));
                }
                received += audio.len();
                if received > max_bytes {
                    return Err(refuse(
                        "too-long",
                        close_code::SIZE,
                        format!(
                            "more than {} s of audio (stt.max_audio_secs)",
                            state.max_audio_secs
                        ),
                    ));
                }
                pending = flow.on_chunk(&format(audio));
            }
            Message::Text(text) => {
                let control = serde_json::from_str::<Control>(text.as_str()).ok();
                if control.is_some_and(|c| c.kind == "stop") && stopped.is_none() {
                    stopped = Some(Instant::now());
                    pending = flow.on_stop();
                }
            }
            Message::Close(_) => return Ok(()),
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}

async fn send(socket: &mut WebSocket, value: serde_json::Value) {
    let _ = socket.send(Message::Text(value.to_string().into())).await;
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
