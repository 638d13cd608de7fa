//! One wake word stream routed over `[[wake.backends]]`, with failover.
//!
//! Without backends a [`RoutedWake`] is only the local [`WakeFlow`], as before. With them, the
//! stream goes to the best backend that has the requested wake word
//! ([`WakeBackends::wake_candidates`]). A remote backend gets `detect` (with this Jarvis added to
//! `jarvis_hops`), `audio-start` and every chunk as they arrive; its `detection` and
//! `not-detected` events go back to the client as they come.
//!
//! A wake stream never ends by itself, so the whole stream cannot be kept for a replay as a
//! speech-to-text request is. Instead the flow keeps a short tail of the most recent audio
//! ([`TAIL_SECS`]). When the backend fails (no connection, an `error` event, garbage or
//! oversized frames, a closed connection, a failed health check while the stream runs, audio it
//! does not take in time, no `not-detected` in time after `audio-stop`), it is marked down and
//! the next backend gets `detect`, `audio-start` and the tail, then the live audio: a wake word
//! spoken while the backends were switched is still heard. The tail is emptied at each detection,
//! so a wake word already reported is not reported twice by the next backend.
//!
//! A backend that accepts and then stops answering (a frozen process or VM: the kernel still
//! takes the connection and buffers the audio, but nothing comes back and nothing closes) sends
//! nothing a wake stream could miss, since a backend speaks only when it hears the wake word.
//! So while a stream is open its exchange asks the backend `describe` on a second connection
//! every [`PROBE_EVERY`]; no `info` within [`PROBE_TIMEOUT`] fails the stream over. (Wyoming's
//! `ping` would do it in the stream, but the reference servers do not answer it: wyoming 1.10.2
//! defines `ping`/`pong` and leaves answering to each handler, and theirs do not.) The tail
//! kept for the replay covers that detection time as well.
//!
//! Design: a remote exchange runs in its own task, fed by a bounded channel; while the channel is
//! full the connection stops reading (as the local flow does when its workers are behind), so a
//! slow backend slows the client down instead of memory growing. A backend that stops reading
//! altogether fails once a write has waited `result_timeout_ms`.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use wyoming::Event;
use wyoming::audio::{AudioChunk, AudioFormat, AudioStart, AudioStop};
use wyoming::misc::Error as ErrorEvent;
use wyoming::wake::Detect;

use super::WakeService;
use super::flow::WakeFlow;
use crate::stt::audio::Converter;
use crate::stt::backends::{
    Backend, LOOP_CODE, RemoteFailure, SttBackendConfig, WakeBackends, same_wake_word,
};

/// Seconds of the most recent audio kept for a replay to the next backend: "hey jarvis" takes
/// about two, a refused or closed connection is noticed within a few hundred milliseconds, and a
/// hung backend within [`PROBE_EVERY`] + [`PROBE_TIMEOUT`] (2.5 s): a wake word said as it hung
/// is still in the tail. 128 KB at Home Assistant's 16 kHz 16-bit mono.
pub const TAIL_SECS: u64 = 4;
/// How often an exchange probes its backend with `describe` on a second connection while the
/// stream is open.
pub const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest wait for a probe's `info` (connection included; `result_timeout_ms` when shorter).
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);
/// Events waiting for a remote backend's connection at most (a replayed tail is sent as 100 ms
/// chunks, so it always fits).
const CHANNEL_EVENTS: usize = 64;
/// Detections waiting for the client at most.
const OUTPUT_EVENTS: usize = 16;
/// Length of the chunks a replayed tail is sent in, in ms.
const REPLAY_CHUNK_MS: u64 = 100;
/// How often a remote exchange looks at its backend's health checks.
const HEALTH_LOOK_MS: u64 = 200;
/// Local error codes another backend may do better on.
const FAILOVER_CODES: &[&str] = &["wake-failed", "unknown-wake-word"];

/// The exchange with a remote backend; aborted when dropped.
#[derive(Debug)]
struct Remote {
    index: usize,
    sender: mpsc::Sender<Event>,
    output: mpsc::Receiver<Event>,
    task: JoinHandle<Result<(), RemoteFailure>>,
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The backend serving the stream.
#[derive(Debug)]
enum Current {
    Local(Box<WakeFlow>),
    Remote(Remote),
    /// Every backend failed and the error was sent.
    Done,
}

/// The stream's format and its most recent audio.
///
/// Design: raw bytes in a ring, not chunks, so a client sending one-byte chunks cannot make the
/// replay long; bytes leave the front in whole frames, so the front stays frame-aligned.
#[derive(Debug, Default)]
struct Tail {
    start: Option<AudioStart>,
    audio: VecDeque<u8>,
    max_bytes: usize,
    frame_bytes: usize,
    stopped: bool,
}

impl Tail {
    fn restart(&mut self, start: &AudioStart) {
        let format = start.format();
        let frame = usize::try_from(format.bytes_per_frame())
            .unwrap_or(1)
            .max(1);
        let per_second = frame.saturating_mul(format.rate as usize);
        self.max_bytes = per_second.saturating_mul(TAIL_SECS as usize);
        self.frame_bytes = frame;
        self.audio.clear();
        self.start = Some(start.clone());
        self.stopped = false;
    }

    fn push(&mut self, audio: &[u8]) {
        self.audio.extend(audio);
        if self.audio.len() > self.max_bytes {
            let excess = self.audio.len() - self.max_bytes;
            let drop = excess.div_ceil(self.frame_bytes) * self.frame_bytes;
            self.audio.drain(..drop.min(self.audio.len()));
        }
    }

    /// `audio-start`, the tail in 100 ms chunks, and `audio-stop` if it came.
    fn replay(&self) -> Vec<Event> {
        let Some(start) = &self.start else {
            return Vec::new();
        };
        let format: AudioFormat = start.format();
        let step = (self.frame_bytes as u64 * u64::from(format.rate) * REPLAY_CHUNK_MS / 1000)
            .max(self.frame_bytes as u64) as usize;
        let mut events: Vec<Event> = vec![start.clone().into()];
        let (a, b) = self.audio.as_slices();
        let bytes: Vec<u8> = [a, b].concat();
        events.extend(
            bytes
                .chunks(step.max(1))
                .map(|chunk| AudioChunk::new(format, chunk.to_vec(), None).into()),
        );
        if self.stopped {
            events.push(AudioStop::default().into());
        }
        events
    }
}

/// One wake word stream: the local flow, or a remote exchange with failover.
pub struct RoutedWake {
    current: Current,
    /// `None`: no backends configured, the local flow alone.
    backends: Option<Arc<WakeBackends>>,
    /// Backends still to try, best first.
    queue: VecDeque<usize>,
    detect: Detect,
    tail: Tail,
    /// Why each backend tried so far failed.
    failures: Vec<String>,
    /// A detection or `not-detected` came since `audio-start` (so no reply is due after a stop).
    heard: bool,
}

impl std::fmt::Debug for RoutedWake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedWake")
            .field("current", &self.current)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl RoutedWake {
    /// The local flow alone, as without backends.
    pub fn local(flow: WakeFlow) -> Self {
        Self {
            current: Current::Local(Box::new(flow)),
            backends: None,
            queue: VecDeque::new(),
            detect: Detect::default(),
            tail: Tail::default(),
            failures: Vec::new(),
            heard: false,
        }
    }

    /// A stream routed over `backends`; returns it with the events to send at once (an error
    /// when no backend can take it).
    pub fn route(backends: Arc<WakeBackends>, detect: Option<&Detect>) -> (Self, Vec<Event>) {
        let detect = detect.cloned().unwrap_or_default();
        let names: Vec<String> = detect
            .names
            .iter()
            .flatten()
            .filter(|n| !n.trim().is_empty())
            .cloned()
            .collect();
        let mut routed = Self {
            current: Current::Done,
            queue: backends.wake_candidates(&names).into(),
            backends: Some(backends),
            detect,
            tail: Tail::default(),
            failures: Vec::new(),
            heard: false,
        };
        let events = routed.next_backend();
        (routed, events)
    }

    /// Whether the connection may read more events: not while the backend is behind.
    pub fn accepts_input(&self) -> bool {
        match &self.current {
            Current::Local(flow) => flow.accepts_input(),
            Current::Remote(remote) => {
                remote.sender.capacity() > 0
                    || remote.sender.is_closed()
                    || remote.task.is_finished()
            }
            Current::Done => true,
        }
    }

    /// Whether a reply is due that shutdown should wait for.
    pub fn is_busy(&self) -> bool {
        match &self.current {
            Current::Local(flow) => flow.is_busy(),
            Current::Remote(_) => self.tail.stopped && !self.heard,
            Current::Done => false,
        }
    }

    /// `audio-start`: (re)starts listening.
    pub fn on_audio_start(&mut self, start: &AudioStart) -> Vec<Event> {
        if self.backends.is_some() {
            if let Err(err) = Converter::new(start.format()) {
                return self.fail("bad-audio-format", err.to_string());
            }
            self.tail.restart(start);
            self.heard = false;
        }
        match &mut self.current {
            Current::Local(flow) => {
                let events = flow.on_audio_start(start);
                self.checked(events)
            }
            Current::Remote(remote) => {
                let _ = remote.sender.try_send(start.clone().into());
                Vec::new()
            }
            Current::Done => Vec::new(),
        }
    }

    /// `audio-chunk`.
    pub fn on_chunk(&mut self, chunk: &AudioChunk) -> Vec<Event> {
        if self.backends.is_some() && !matches!(self.current, Current::Done) {
            let Some(start) = &self.tail.start else {
                return self.fail(
                    "unexpected-event",
                    "audio-chunk before audio-start: send audio-start first".into(),
                );
            };
            if chunk.format() != start.format() {
                let text = format!(
                    "audio-chunk format {:?} differs from audio-start {:?}",
                    chunk.format(),
                    start.format()
                );
                return self.fail("bad-audio-format", text);
            }
            if self.tail.stopped {
                return Vec::new();
            }
            self.tail.push(&chunk.audio);
        }
        match &mut self.current {
            Current::Local(flow) => {
                let events = flow.on_chunk(chunk);
                self.checked(events)
            }
            Current::Remote(remote) => {
                // Room is checked by `accepts_input` before each read; a closed channel means
                // the exchange ended, and `next_output` fails over with the tail.
                let _ = remote.sender.try_send(chunk.clone().into());
                Vec::new()
            }
            Current::Done => Vec::new(),
        }
    }

    /// `audio-stop`.
    pub fn on_stop(&mut self) -> Vec<Event> {
        if self.backends.is_some() {
            if self.tail.start.is_none() || self.tail.stopped {
                return Vec::new();
            }
            self.tail.stopped = true;
        }
        match &mut self.current {
            Current::Local(flow) => {
                let events = flow.on_stop();
                self.checked(events)
            }
            Current::Remote(remote) => {
                let _ = remote.sender.try_send(AudioStop::default().into());
                Vec::new()
            }
            Current::Done => Vec::new(),
        }
    }

    /// Detections (and `not-detected` after a stop) as the backend sends them, with failover in
    /// between. Pending forever when there is nothing to wait for.
    ///
    /// # Cancel safety
    /// Cancel safe: the local flow's output is, a remote's output channel and task handle stay in
    /// `self`, and a failover happens synchronously after a failure is in.
    pub async fn next_output(&mut self) -> Vec<Event> {
        // Every outcome returns, even with no events: the connection then looks again at
        // whether it may read (`accepts_input`), which a job done or a failover changes.
        match &mut self.current {
            Current::Local(flow) => {
                let events = flow.next_output().await;
                self.checked(events)
            }
            Current::Remote(remote) => {
                // Output first: detections sent before a failure still reach the client.
                // While the channel is full the connection does not read; room made by the
                // exchange must wake it (an empty answer), or nothing would.
                let full = remote.sender.capacity() == 0;
                let failure = tokio::select! {
                    biased;
                    Some(mut event) = remote.output.recv() => {
                        if let Event::Detection(detection) = &mut event {
                            // Audio up to here has been heard: not replayed to another.
                            self.tail.audio.clear();
                            // Named as the client asked (HA compares the two), not as this
                            // backend spells it (`hey_jarvis_v0.1`).
                            let asked = self.detect.names.iter().flatten().find(|asked| {
                                detection
                                    .name
                                    .as_deref()
                                    .is_some_and(|name| same_wake_word(name, asked))
                            });
                            if let Some(asked) = asked {
                                detection.name = Some(asked.clone());
                            }
                        }
                        // Either answers the audio so far: no reply is due any more.
                        self.heard = true;
                        return vec![event];
                    }
                    Ok(permit) = remote.sender.reserve(), if full => {
                        drop(permit);
                        return Vec::new();
                    }
                    joined = &mut remote.task => match joined {
                        Ok(Ok(())) => RemoteFailure::Failed("the exchange ended".into()),
                        Ok(Err(failure)) => failure,
                        Err(err) => RemoteFailure::Failed(format!("exchange stopped: {err}")),
                    },
                };
                let index = remote.index;
                self.remote_failed(index, failure);
                self.next_backend()
            }
            Current::Done => std::future::pending().await,
        }
    }

    fn backend(&self, index: usize) -> Option<&Backend> {
        self.backends.as_ref().and_then(|b| b.get(index))
    }

    fn remote_failed(&mut self, index: usize, failure: RemoteFailure) {
        if let Some(line) = self.backend(index).map(|backend| backend.record(failure)) {
            self.failures.push(line);
        }
    }

    /// Events from the local flow: an error another backend may do better on starts a failover.
    fn checked(&mut self, events: Vec<Event>) -> Vec<Event> {
        if self.backends.is_none() {
            return events;
        }
        let failed = events.iter().find_map(|e| match e {
            Event::Error(err)
                if !self.queue.is_empty()
                    && FAILOVER_CODES.contains(&err.code.as_deref().unwrap_or_default()) =>
            {
                Some(err.text.clone())
            }
            _ => None,
        });
        if let Some(reason) = failed {
            warn!(%reason, "local wake word detection failed; the stream moves to the next backend");
            self.failures.push(format!("local: {reason}"));
            return self.next_backend();
        }
        if let Some(Event::Error(_)) = events.iter().find(|e| matches!(e, Event::Error(_))) {
            self.current = Current::Done;
        }
        events
    }

    /// Starts the next backend in the queue with the tail of the stream; an error event once
    /// none is left.
    fn next_backend(&mut self) -> Vec<Event> {
        let Some(backends) = self.backends.clone() else {
            return Vec::new();
        };
        while let Some(index) = self.queue.pop_front() {
            let Some(backend) = backends.get(index) else {
                continue;
            };
            if backend.is_local() {
                let Some(service) = backends.local_wake.clone() else {
                    continue;
                };
                match self.start_local(service) {
                    Ok(events) => {
                        backend.routed();
                        return events;
                    }
                    Err(reason) => {
                        self.failures.push(format!("local: {reason}"));
                        continue;
                    }
                }
            }
            backend.routed();
            self.start_remote(&backends, index, backend);
            return Vec::new();
        }
        let text = if self.failures.is_empty() {
            "no wake word backend is configured for this request".to_owned()
        } else {
            format!(
                "every wake word backend failed: {}",
                self.failures.join("; ")
            )
        };
        self.fail("wake-failed", text)
    }

    fn start_local(&mut self, service: Arc<WakeService>) -> Result<Vec<Event>, String> {
        let mut flow = match WakeFlow::new(service, Some(&self.detect)) {
            Ok(flow) => flow,
            Err(events) => {
                let reason = events
                    .iter()
                    .find_map(|e| match e {
                        Event::Error(err) => Some(err.text.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| "refused".into());
                return Err(reason);
            }
        };
        debug!(
            replayed_bytes = self.tail.audio.len(),
            "wake word stream on the local engine"
        );
        let mut events = Vec::new();
        for event in self.tail.replay() {
            events.extend(match &event {
                Event::AudioStart(start) => flow.on_audio_start(start),
                Event::AudioChunk(chunk) => flow.on_chunk(chunk),
                Event::AudioStop(_) => flow.on_stop(),
                _ => Vec::new(),
            });
        }
        self.current = Current::Local(Box::new(flow));
        Ok(self.checked(events))
    }

    fn start_remote(&mut self, backends: &Arc<WakeBackends>, index: usize, backend: &Backend) {
        let config = backend.connect_config();
        let (sender, receiver) = mpsc::channel(CHANNEL_EVENTS);
        let (output_sender, output) = mpsc::channel(OUTPUT_EVENTS);
        let names = match self.detect.names.as_ref().filter(|n| !n.is_empty()) {
            Some(names) => Some(names.clone()),
            None if !config.models.is_empty() => Some(config.models.clone()),
            None => None,
        };
        // Each as the backend spells it in its `info`, when it offers it.
        let offered: Vec<String> = backend
            .health()
            .wake_programs
            .iter()
            .flat_map(|p| &p.models)
            .map(|m| m.name.clone())
            .collect();
        let names = names.map(|names| {
            names
                .into_iter()
                .map(|name| {
                    offered
                        .iter()
                        .find(|o| same_wake_word(o, &name))
                        .cloned()
                        .unwrap_or(name)
                })
                .collect()
        });
        let detect = Detect {
            names,
            context: Some(backends.with_hop(self.detect.context.clone())),
        };
        let replay = self.tail.replay();
        debug!(
            backend = %backend.label,
            replayed_bytes = self.tail.audio.len(),
            "wake word stream on a remote backend"
        );
        let _ = sender.try_send(detect.into());
        for event in replay {
            let _ = sender.try_send(event);
        }
        let failed_checks = backend.health().failed_checks;
        let watch = HealthWatch {
            backends: Arc::clone(backends),
            index,
            failed_checks,
        };
        let task = tokio::spawn(exchange(config, receiver, output_sender, watch));
        self.current = Current::Remote(Remote {
            index,
            sender,
            output,
            task,
        });
    }

    fn fail(&mut self, code: &str, text: String) -> Vec<Event> {
        info!(code, %text, "wake word stream refused");
        self.current = Current::Done;
        vec![ErrorEvent::new(code, text).into()]
    }
}

/// What a remote exchange watches of its backend's health checks: a check failing while the
/// stream runs (a backend that accepts and never answers) moves the stream on.
#[derive(Debug)]
struct HealthWatch {
    backends: Arc<WakeBackends>,
    index: usize,
    failed_checks: u64,
}

impl HealthWatch {
    /// Why the stream should leave the backend, once a health check failed since it started.
    fn failed(&self) -> Option<String> {
        let backend = self.backends.get(self.index)?;
        let health = backend.health();
        (health.failed_checks > self.failed_checks).then(|| {
            format!(
                "its health check failed: {}",
                health.reason.unwrap_or_else(|| "no answer".into())
            )
        })
    }
}

/// One exchange with a remote backend: connect, forward what the channel brings, pass
/// detections back, until the flow is dropped or the backend fails.
async fn exchange(
    config: SttBackendConfig,
    mut events: mpsc::Receiver<Event>,
    output: mpsc::Sender<Event>,
    watch: HealthWatch,
) -> Result<(), RemoteFailure> {
    use RemoteFailure::Failed;
    let client = crate::stt::backends::connect(&config)
        .await
        .map_err(Failed)?;
    let (mut reader, mut writer) = client.into_split();
    let timeout = config.result_timeout();
    let mut deadline: Option<tokio::time::Instant> = None;
    // A detection since `audio-start`: no `not-detected` will follow a stop.
    let mut heard = false;
    let mut look = tokio::time::interval(std::time::Duration::from_millis(HEALTH_LOOK_MS));
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probe_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + PROBE_EVERY, PROBE_EVERY);
    probe_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let probe_bound = PROBE_TIMEOUT.min(timeout);
    // At most one probe out at a time.
    let mut probe: Option<std::pin::Pin<Box<Probe>>> = None;
    loop {
        // Every branch is cancel safe (`recv`, `read_event`, `tick`, `sleep_until`, and the
        // probe, kept in `probe` across turns); a write happens in a branch body, bounded by
        // the result timeout.
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else {
                    // The stream ended on our side.
                    return Ok(());
                };
                let mut stop = matches!(event, Event::AudioStop(_));
                let mut batch = vec![event];
                while batch.len() < CHANNEL_EVENTS {
                    let Ok(event) = events.try_recv() else {
                        break;
                    };
                    stop |= matches!(event, Event::AudioStop(_));
                    batch.push(event);
                }
                let restarted = batch.iter().any(|e| matches!(e, Event::AudioStart(_)));
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
                if restarted {
                    heard = false;
                    deadline = None;
                }
                if stop && !heard {
                    deadline = Some(tokio::time::Instant::now() + timeout);
                }
            }
            read = reader.read_event() => match read {
                Ok(Some(event @ Event::Detection(_))) => {
                    heard = true;
                    deadline = None;
                    if output.send(event).await.is_err() {
                        return Ok(());
                    }
                }
                Ok(Some(event @ Event::NotDetected(_))) => {
                    deadline = None;
                    if output.send(event).await.is_err() {
                        return Ok(());
                    }
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
                Ok(Some(other)) => debug!(event = other.kind(), "ignored from a wake word backend"),
                Ok(None) => return Err(Failed("closed the connection".into())),
                Err(err) => return Err(Failed(format!("bad frame: {err}"))),
            },
            _ = look.tick() => {
                if let Some(reason) = watch.failed() {
                    return Err(Failed(reason));
                }
            }
            _ = probe_tick.tick(), if probe.is_none() => {
                let config = config.clone();
                probe = Some(Box::pin(async move {
                    tokio::time::timeout(probe_bound, crate::stt::backends::check(&config))
                        .await
                        .map_err(|_| format!("no info within {} ms", probe_bound.as_millis()))
                        .and_then(|checked| checked.map(|_| ()))
                }));
            }
            probed = async {
                match probe.as_mut() {
                    Some(probe) => probe.as_mut().await,
                    None => std::future::pending().await,
                }
            } => {
                probe = None;
                if let Err(reason) = probed {
                    return Err(Failed(format!(
                        "stopped answering describe while the stream ran ({reason})"
                    )));
                }
            }
            () = sleep_until(deadline) => {
                return Err(Failed(format!(
                    "no not-detected within {} ms after the audio ended",
                    config.result_timeout_ms
                )));
            }
        }
    }
}

/// A `describe` probe on a second connection: `Err` says why the backend did not answer.
type Probe = dyn std::future::Future<Output = Result<(), String>> + Send;

/// Sleeps until `deadline`; pending forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_four_seconds_in_whole_frames_and_replays_in_few_chunks() {
        let mut tail = Tail::default();
        tail.restart(&AudioStart::new(AudioFormat::HA_MIC, None));
        // 5 s of 16 kHz 16-bit mono, one odd byte at a time for the first part.
        for _ in 0..1000 {
            tail.push(&[1]);
        }
        tail.push(&vec![2u8; 159_000]);
        assert_eq!(tail.audio.len(), 128_000);
        assert_eq!(tail.audio.front(), Some(&2));
        let replay = tail.replay();
        assert!(matches!(replay.first(), Some(Event::AudioStart(_))));
        // 4 s in 100 ms chunks.
        assert_eq!(replay.len(), 1 + 40);
        tail.stopped = true;
        assert!(matches!(tail.replay().last(), Some(Event::AudioStop(_))));
    }

    #[test]
    fn an_odd_byte_never_misaligns_the_front() {
        let mut tail = Tail::default();
        tail.restart(&AudioStart::new(AudioFormat::HA_MIC, None));
        tail.push(&vec![0u8; 128_001]);
        // The front lost one whole frame (2 bytes), not one byte.
        assert_eq!(tail.audio.len(), 127_999);
    }
}
