//! One speech-to-text request routed over the backends, with failover.
//!
//! Without `[[stt.backends]]` a [`RoutedStt`] is only the local [`SttFlow`], as before. With
//! them, the request goes to the best backend ([`SttBackends::candidates`]). A remote backend
//! gets the client's events as they arrive (so its own streaming and endpointing work), while
//! the flow also keeps them, up to `stt.max_audio_secs` of audio, until the transcript arrives.
//! When the backend fails (no connection, an `error` event, garbage or oversized frames, a
//! closed connection, no transcript in time after the audio ended) it is marked down and the
//! kept events are replayed to the next backend, so no audio is lost.
//!
//! Design: a remote exchange runs in its own task (writes to a backend that stops reading must
//! not stall the client's connection), fed by a channel; the task ends with the transcript or
//! the reason it failed, and is aborted when the flow is dropped. The channel is unbounded, but
//! what goes in is bounded by the same `max_audio_secs` as the replay buffer.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use wyoming::Event;
use wyoming::asr::{Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop};
use wyoming::audio::{AudioChunk, AudioStart, AudioStop};
use wyoming::misc::Error as ErrorEvent;

use super::audio::Converter;
use super::backends::{LOOP_CODE, MAX_REMOTE_TEXT, RemoteFailure, SttBackendConfig, SttBackends};
use super::flow::SttFlow;
use super::{SttService, Understanding};

/// Local error codes that another backend may do better on; other refusals are about the
/// request itself (its format, its length) and would be refused anywhere.
const FAILOVER_CODES: &[&str] = &["busy", "stt-failed"];
/// Most events written to a remote backend at once.
const MAX_BATCH: usize = 256;

/// What a remote backend answered.
#[derive(Debug, Default)]
struct RemoteReply {
    start: Option<TranscriptStart>,
    chunks: Vec<String>,
    transcript: Transcript,
}

/// Aborts the remote exchange when the flow is dropped.
#[derive(Debug)]
struct Remote {
    index: usize,
    sender: mpsc::UnboundedSender<Event>,
    task: JoinHandle<Result<RemoteReply, RemoteFailure>>,
    started: Instant,
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The backend working on the request.
#[derive(Debug)]
enum Current {
    Local(Box<SttFlow>),
    Remote(Remote),
    /// The transcript or an error has been sent.
    Done,
}

/// Everything the client sent, kept for a replay to the next backend.
#[derive(Debug, Default)]
struct Replay {
    start: Option<AudioStart>,
    chunks: Vec<AudioChunk>,
    stopped: bool,
    /// Bytes of audio kept, and the most allowed.
    bytes: u64,
    max_bytes: u64,
}

/// What a local flow needs to be built, kept for a failover to the local backend.
struct LocalContext {
    transcribe: Option<Transcribe>,
    names: Arc<Vec<String>>,
    understanding: Option<Arc<dyn Understanding>>,
}

/// One speech-to-text request: the local flow, or a remote exchange with failover.
pub struct RoutedStt {
    current: Current,
    /// `None`: no backends configured, the local flow alone (today's behaviour).
    backends: Option<Arc<SttBackends>>,
    /// Backends still to try, best first.
    queue: std::collections::VecDeque<usize>,
    replay: Replay,
    context: LocalContext,
    /// Why each backend tried so far failed.
    failures: Vec<String>,
}

impl std::fmt::Debug for RoutedStt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedStt")
            .field("current", &self.current)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl RoutedStt {
    /// The local flow alone, as without backends.
    pub fn local(flow: SttFlow) -> Self {
        Self {
            current: Current::Local(Box::new(flow)),
            backends: None,
            queue: Default::default(),
            replay: Replay::default(),
            context: LocalContext {
                transcribe: None,
                names: Arc::default(),
                understanding: None,
            },
            failures: Vec::new(),
        }
    }

    /// A request routed over `backends`; returns it with the events to send at once (an error
    /// when no backend can take it).
    pub fn route(
        backends: Arc<SttBackends>,
        transcribe: Option<&Transcribe>,
        names: Arc<Vec<String>>,
        understanding: Option<Arc<dyn Understanding>>,
    ) -> (Self, Vec<Event>) {
        let queue = backends.candidates(transcribe).into();
        let mut routed = Self {
            current: Current::Done,
            queue,
            // Its limit is set by `audio-start`, which must come before any audio.
            replay: Replay::default(),
            backends: Some(backends),
            context: LocalContext {
                transcribe: transcribe.cloned(),
                names,
                understanding,
            },
            failures: Vec::new(),
        };
        let events = routed.next_backend();
        (routed, events)
    }

    /// Whether the transcript (or an error) has been sent.
    pub fn is_done(&self) -> bool {
        match &self.current {
            Current::Local(flow) => flow.is_done(),
            Current::Remote(_) => false,
            Current::Done => true,
        }
    }

    /// Whether a reply is being prepared that shutdown must wait for.
    pub fn is_busy(&self) -> bool {
        match &self.current {
            Current::Local(flow) => flow.is_busy(),
            Current::Remote(_) => self.replay.stopped,
            Current::Done => false,
        }
    }

    /// `audio-start`.
    pub fn on_audio_start(&mut self, start: &AudioStart) -> Vec<Event> {
        if self.backends.is_some() {
            if self.replay.start.is_some() || self.is_done() {
                return Vec::new();
            }
            let format = start.format();
            if let Err(err) = Converter::new(format) {
                return self.fail("bad-audio-format", err.to_string());
            }
            // Audio in this format at the limit, plus a second of slack.
            let per_second = format.bytes_per_frame() * u64::from(format.rate);
            self.replay.max_bytes = per_second.saturating_mul(u64::from(self.max_audio_secs()) + 1);
            self.replay.start = Some(start.clone());
        }
        match &mut self.current {
            Current::Local(flow) => {
                let events = flow.on_audio_start(start);
                self.checked(events)
            }
            Current::Remote(remote) => {
                let _ = remote.sender.send(start.clone().into());
                Vec::new()
            }
            Current::Done => Vec::new(),
        }
    }

    /// `audio-chunk`.
    pub fn on_chunk(&mut self, chunk: &AudioChunk) -> Vec<Event> {
        if self.backends.is_some() && !self.is_done() {
            if self.replay.start.is_none() {
                return self.fail(
                    "unexpected-event",
                    "audio-chunk before audio-start: send audio-start first".into(),
                );
            }
            self.replay.bytes += chunk.audio.len() as u64;
            if self.replay.bytes > self.replay.max_bytes {
                let max = self.max_audio_secs();
                let text =
                    format!("audio is longer than the limit of {max} s (stt.max_audio_secs)");
                return self.fail("audio-too-long", text);
            }
            self.replay.chunks.push(chunk.clone());
        }
        match &mut self.current {
            Current::Local(flow) => {
                let events = flow.on_chunk(chunk);
                self.checked(events)
            }
            Current::Remote(remote) => {
                let _ = remote.sender.send(chunk.clone().into());
                Vec::new()
            }
            Current::Done => Vec::new(),
        }
    }

    /// `audio-stop`.
    pub fn on_stop(&mut self) -> Vec<Event> {
        if self.backends.is_some() {
            self.replay.stopped = true;
        }
        match &mut self.current {
            Current::Local(flow) => {
                let events = flow.on_stop();
                self.checked(events)
            }
            Current::Remote(remote) => {
                let _ = remote.sender.send(AudioStop::default().into());
                Vec::new()
            }
            Current::Done => Vec::new(),
        }
    }

    /// The transcript once a backend has it, with failover in between. Pending forever when
    /// there is nothing to wait for.
    ///
    /// # Cancel safety
    /// Cancel safe: the local flow's output is, and a remote exchange is a task whose handle
    /// stays in `self`; a failover happens synchronously after a result is in.
    pub async fn next_output(&mut self) -> Vec<Event> {
        loop {
            match &mut self.current {
                Current::Local(flow) => {
                    let events = flow.next_output().await;
                    let events = self.checked(events);
                    if !events.is_empty() {
                        return events;
                    }
                }
                Current::Remote(remote) => {
                    let joined = (&mut remote.task).await;
                    let index = remote.index;
                    let elapsed = remote.started.elapsed();
                    let result = joined.unwrap_or_else(|err| {
                        Err(RemoteFailure::Failed(format!("exchange stopped: {err}")))
                    });
                    match result {
                        Ok(reply) => {
                            if let Some(backend) = self.backend(index) {
                                debug!(
                                    backend = %backend.label,
                                    ms = elapsed.as_millis() as u64,
                                    "transcript from a remote backend"
                                );
                            }
                            return self.emit(reply);
                        }
                        Err(failure) => {
                            self.remote_failed(index, failure);
                            let events = self.next_backend();
                            if !events.is_empty() {
                                return events;
                            }
                        }
                    }
                }
                Current::Done => return std::future::pending().await,
            }
        }
    }

    fn max_audio_secs(&self) -> u32 {
        self.backends.as_ref().map_or(30, |b| b.max_audio_secs)
    }

    fn backend(&self, index: usize) -> Option<&super::backends::Backend> {
        self.backends.as_ref().and_then(|b| b.get(index))
    }

    fn remote_failed(&mut self, index: usize, failure: RemoteFailure) {
        if let Some(line) = self.backend(index).map(|backend| backend.record(failure)) {
            self.failures.push(line);
        }
    }

    /// Events from the local flow: an error another backend may do better on starts a failover.
    fn checked(&mut self, events: Vec<Event>) -> Vec<Event> {
        let failed = events.iter().find_map(|e| match e {
            Event::Error(err)
                if self.backends.is_some()
                    && !self.queue.is_empty()
                    && FAILOVER_CODES.contains(&err.code.as_deref().unwrap_or_default()) =>
            {
                Some(err.text.clone())
            }
            _ => None,
        });
        if let Some(reason) = failed {
            warn!(%reason, "local speech-to-text failed; trying the next backend");
            self.failures.push(format!("local: {reason}"));
            return self.next_backend();
        }
        if events
            .iter()
            .any(|e| matches!(e, Event::Transcript(_) | Event::Error(_)))
            && self.backends.is_some()
        {
            self.current = Current::Done;
        }
        events
    }

    /// Starts the next backend in the queue with everything the client sent so far; an error
    /// event once none is left.
    fn next_backend(&mut self) -> Vec<Event> {
        let Some(backends) = self.backends.clone() else {
            return Vec::new();
        };
        while let Some(index) = self.queue.pop_front() {
            let Some(backend) = backends.get(index) else {
                continue;
            };
            if backend.is_local() {
                let Some(service) = backends.local.clone() else {
                    continue;
                };
                backend.routed();
                return self.start_local(service);
            }
            backend.routed();
            self.start_remote(&backends, index, &backend.connect_config());
            return Vec::new();
        }
        let text = if self.failures.is_empty() {
            "no speech-to-text backend is configured for this request".to_owned()
        } else {
            format!(
                "every speech-to-text backend failed: {}",
                self.failures.join("; ")
            )
        };
        self.fail("stt-failed", text)
    }

    fn start_local(&mut self, service: Arc<SttService>) -> Vec<Event> {
        debug!(
            replayed_chunks = self.replay.chunks.len(),
            "speech-to-text on the local engine"
        );
        let flow = SttFlow::new(
            service,
            self.context.transcribe.as_ref(),
            &self.context.names,
            self.context.understanding.clone(),
        );
        self.current = Current::Local(Box::new(flow));
        let Current::Local(flow) = &mut self.current else {
            return Vec::new();
        };
        let mut events = Vec::new();
        if let Some(start) = &self.replay.start {
            events.extend(flow.on_audio_start(start));
            for chunk in &self.replay.chunks {
                if !events.is_empty() {
                    break;
                }
                events.extend(flow.on_chunk(chunk));
            }
            if self.replay.stopped && events.is_empty() {
                events.extend(flow.on_stop());
            }
        }
        self.checked(events)
    }

    fn start_remote(&mut self, backends: &SttBackends, index: usize, config: &SttBackendConfig) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let _ = sender.send(backends.forwarded(self.context.transcribe.as_ref()).into());
        if let Some(start) = &self.replay.start {
            let _ = sender.send(start.clone().into());
            for chunk in &self.replay.chunks {
                let _ = sender.send(chunk.clone().into());
            }
            if self.replay.stopped {
                let _ = sender.send(AudioStop::default().into());
            }
        }
        debug!(
            backend = %config.label(),
            replayed_chunks = self.replay.chunks.len(),
            "speech-to-text on a remote backend"
        );
        let task = tokio::spawn(exchange(config.clone(), receiver));
        self.current = Current::Remote(Remote {
            index,
            sender,
            task,
            started: Instant::now(),
        });
    }

    /// The remote transcript, sent as the local flow sends its own (names as the cluster
    /// writes them, streaming events when `stt.streaming`).
    fn emit(&mut self, reply: RemoteReply) -> Vec<Event> {
        self.current = Current::Done;
        let write = |text: &str| match &self.context.understanding {
            Some(understanding) => understanding.write_names(text),
            None => text.to_owned(),
        };
        let mut transcript = reply.transcript;
        transcript.text = write(&transcript.text);
        info!(text = %transcript.text, "transcript");
        let streaming = self.backends.as_ref().is_some_and(|b| b.streaming);
        if !streaming {
            return vec![transcript.into()];
        }
        let language = transcript
            .language
            .clone()
            .or_else(|| reply.start.as_ref().and_then(|s| s.language.clone()));
        let mut events: Vec<Event> = vec![
            TranscriptStart {
                language,
                context: reply.start.and_then(|s| s.context),
            }
            .into(),
        ];
        if reply.chunks.is_empty() {
            events.push(
                TranscriptChunk {
                    text: transcript.text.clone(),
                }
                .into(),
            );
        } else {
            events.extend(
                reply
                    .chunks
                    .iter()
                    .map(|text| Event::from(TranscriptChunk { text: write(text) })),
            );
        }
        events.push(transcript.into());
        events.push(TranscriptStop {}.into());
        events
    }

    fn fail(&mut self, code: &str, text: String) -> Vec<Event> {
        info!(code, %text, "speech-to-text request refused");
        self.current = Current::Done;
        vec![ErrorEvent::new(code, text).into()]
    }
}

/// One exchange with a remote backend: connect, forward what the channel brings, and wait for
/// the transcript (at most `result_timeout` after `audio-stop` went out).
async fn exchange(
    config: SttBackendConfig,
    mut events: mpsc::UnboundedReceiver<Event>,
) -> Result<RemoteReply, RemoteFailure> {
    use RemoteFailure::Failed;
    let client = super::backends::connect(&config).await.map_err(Failed)?;
    let (mut reader, mut writer) = client.into_split();
    let timeout = config.result_timeout();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut open = true;
    let mut reply = RemoteReply::default();
    let mut text_bytes = 0usize;
    loop {
        // Both branches are cancel safe (`recv` and `read_event`); a write happens in a branch
        // body, bounded by the result timeout, so a backend that stops reading fails too.
        tokio::select! {
            event = events.recv(), if open => {
                let Some(event) = event else {
                    open = false;
                    continue;
                };
                // Everything already waiting goes out in one write: a client that sends audio
                // faster than it is written is caught up with, not followed chunk by chunk.
                let mut stop = matches!(event, Event::AudioStop(_));
                let mut batch = vec![event];
                while batch.len() < MAX_BATCH {
                    let Ok(event) = events.try_recv() else {
                        break;
                    };
                    stop |= matches!(event, Event::AudioStop(_));
                    batch.push(event);
                }
                let write = async {
                    for event in batch {
                        writer.feed_event(event).await?;
                    }
                    writer.flush().await
                };
                match tokio::time::timeout(timeout, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => return Err(Failed(format!("lost while sending audio: {err}"))),
                    Err(_) => return Err(Failed(format!("did not take audio for {} ms", config.result_timeout_ms))),
                }
                if stop {
                    deadline = Some(tokio::time::Instant::now() + timeout);
                }
            }
            read = reader.read_event() => match read {
                Ok(Some(Event::Transcript(transcript))) => {
                    reply.transcript = transcript;
                    if reply.transcript.text.len() > MAX_REMOTE_TEXT {
                        return Err(Failed("sent an oversized transcript".into()));
                    }
                    return Ok(reply);
                }
                Ok(Some(Event::TranscriptStart(start))) => reply.start = Some(start),
                Ok(Some(Event::TranscriptChunk(chunk))) => {
                    text_bytes += chunk.text.len();
                    if text_bytes > MAX_REMOTE_TEXT {
                        return Err(Failed("sent oversized transcript chunks".into()));
                    }
                    reply.chunks.push(chunk.text);
                }
                Ok(Some(Event::Error(err))) => {
                    let code = err.code.unwrap_or_default();
                    let reason = format!("error {code}: {}", err.text);
                    return Err(if code == LOOP_CODE {
                        RemoteFailure::Loop(reason)
                    } else {
                        Failed(reason)
                    });
                }
                Ok(Some(other)) => debug!(event = other.kind(), "ignored from a backend"),
                Ok(None) => return Err(Failed("closed the connection before the transcript".into())),
                Err(err) => return Err(Failed(format!("bad frame: {err}"))),
            },
            () = sleep_until(deadline) => {
                return Err(Failed(format!(
                    "no transcript within {} ms after the audio ended",
                    config.result_timeout_ms
                )));
            }
        }
    }
}

/// Sleeps until `deadline`; pending forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
