//! One wake-word exchange on a Wyoming connection:
//! `detect` → `audio-start` → `audio-chunk`… ← `detection`… (→ `audio-stop` ← `not-detected`).
//!
//! Home Assistant sends `detect`, then audio for as long as the pipeline listens, and never
//! `audio-stop`; a satellite keeps the stream open for further detections. So the flow never
//! ends by itself: each detection is sent as soon as its 80 ms step is computed, and the stream
//! keeps listening. `audio-stop` gets `not-detected` if nothing was heard since `audio-start`;
//! a new `audio-start` starts over.
//!
//! Audio in any format is converted to 16 kHz mono as it arrives; whole 80 ms steps go to a
//! worker, one job at a time per stream. While a job runs, new audio waits in `pending`; when a
//! client sends faster than the workers compute (a file sent at full speed), the connection stops
//! reading once `pending` holds [`MAX_PENDING_SAMPLES`], so TCP slows the sender down and memory
//! stays bounded however long the stream is.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use tracing::{debug, info, warn};
use wyoming::Event;
use wyoming::audio::{AudioChunk, AudioStart};
use wyoming::misc::Error as ErrorEvent;
use wyoming::wake::{Detect, Detection, NotDetected};

use super::engine::{Done, Stream};
use super::pipeline::STEP_SAMPLES;
use super::{StreamGuard, WakeService};
use crate::stt::audio::Converter;

/// Samples (16 kHz) a stream may hold waiting for its worker before the connection stops
/// reading: 2 s.
pub const MAX_PENDING_SAMPLES: usize = 32_000;
/// Steps sent in one job at most (2 s), so a stream that is behind does not hold a worker long.
const MAX_STEPS_PER_JOB: usize = 25;
/// Milliseconds per step.
const STEP_MS: u64 = 80;
/// Converted samples are in [-1, 1]; openWakeWord reads int16 magnitudes.
const INT16_SCALE: f32 = 32_768.0;

/// Where the flow is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for `audio-start`.
    Ready,
    /// Audio is streaming in.
    Listening,
    /// `audio-stop` came; the last steps are being computed.
    Stopping,
    /// `not-detected` (or an error) was sent; waiting for a new `audio-start`.
    Done,
}

/// The state of one `detect` exchange.
pub struct WakeFlow {
    service: Arc<WakeService>,
    words: Vec<usize>,
    stage: Stage,
    converter: Option<Converter>,
    /// 16 kHz samples not yet sent to a worker.
    pending: Vec<f32>,
    /// The stream's state while no job is in flight.
    stream: Option<Box<Stream>>,
    job: Option<oneshot::Receiver<Done>>,
    /// A sample buffer kept for the next job.
    spare: Vec<f32>,
    /// Detections since `audio-start`.
    detections: u32,
    /// When the last chunk was converted, for the latency in the log.
    last_chunk_at: Option<std::time::Instant>,
    _guard: StreamGuard,
}

impl std::fmt::Debug for WakeFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeFlow")
            .field("words", &self.words)
            .field("stage", &self.stage)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl WakeFlow {
    /// A new exchange for the wake words `detect` names.
    ///
    /// # Errors
    /// The `error` event to send when no requested wake word exists.
    pub fn new(service: Arc<WakeService>, detect: Option<&Detect>) -> Result<Self, Vec<Event>> {
        let names = detect.and_then(|d| d.names.as_deref());
        let words = match service.select(names) {
            Ok(words) => words,
            Err(err) => {
                info!(error = %err, "detect refused");
                return Err(vec![ErrorEvent::new(err.code(), err.to_string()).into()]);
            }
        };
        debug!(
            words = ?words.iter().filter_map(|&w| service.words().get(w)).map(|w| &w.name).collect::<Vec<_>>(),
            "listening for wake words"
        );
        Ok(Self {
            _guard: StreamGuard::new(Arc::clone(&service)),
            service,
            words,
            stage: Stage::Ready,
            converter: None,
            pending: Vec::new(),
            stream: None,
            job: None,
            spare: Vec::new(),
            detections: 0,
            last_chunk_at: None,
        })
    }

    /// Whether the connection may read more events: not while a full `pending` waits for a
    /// worker.
    pub fn accepts_input(&self) -> bool {
        self.job.is_none() || self.pending.len() < MAX_PENDING_SAMPLES
    }

    /// Whether a reply is due that shutdown should wait for (`not-detected` after a stop).
    pub fn is_busy(&self) -> bool {
        self.stage == Stage::Stopping && self.job.is_some()
    }

    /// Samples waiting for a worker now.
    pub fn pending_samples(&self) -> usize {
        self.pending.len()
    }

    /// `audio-start`: (re)starts listening with fresh state.
    pub fn on_audio_start(&mut self, start: &AudioStart) -> Vec<Event> {
        let converter = match Converter::new(start.format()) {
            Ok(converter) => converter,
            Err(err) => return self.fail("bad-audio-format", err.to_string()),
        };
        self.converter = Some(converter);
        // A job of an earlier audio stream is dropped with its receiver.
        self.job = None;
        self.stream = Some(self.service.engine().stream(&self.words, false));
        self.pending.clear();
        self.detections = 0;
        self.stage = Stage::Listening;
        Vec::new()
    }

    /// `audio-chunk`.
    pub fn on_chunk(&mut self, chunk: &AudioChunk) -> Vec<Event> {
        match self.stage {
            Stage::Ready => {
                return self.fail(
                    "unexpected-event",
                    "audio-chunk before audio-start: send audio-start first".into(),
                );
            }
            Stage::Listening => {}
            Stage::Stopping | Stage::Done => return Vec::new(),
        }
        let Some(converter) = self.converter.as_mut() else {
            return Vec::new();
        };
        if let Err(text) = converter.push_chunk(chunk) {
            return self.fail("bad-audio-format", text);
        }
        self.pending
            .extend(converter.drain().map(|sample| sample * INT16_SCALE));
        self.last_chunk_at = Some(std::time::Instant::now());
        self.service
            .stats()
            .peak_pending_samples
            .fetch_max(self.pending.len(), Ordering::Relaxed);
        self.dispatch()
    }

    /// `audio-stop`: computes what is left, then `not-detected` if nothing was heard.
    pub fn on_stop(&mut self) -> Vec<Event> {
        if self.stage != Stage::Listening {
            return Vec::new();
        }
        if let Some(converter) = self.converter.as_mut() {
            converter.finish();
            self.pending
                .extend(converter.drain().map(|sample| sample * INT16_SCALE));
        }
        self.stage = Stage::Stopping;
        let mut events = self.dispatch();
        events.extend(self.finish_if_idle());
        events
    }

    /// Detections (and `not-detected` after a stop) as workers finish; pending forever when no
    /// job is in flight.
    ///
    /// # Cancel safety
    /// Cancel safe: the job's receiver stays in place until it yields.
    pub async fn next_output(&mut self) -> Vec<Event> {
        let Some(job) = self.job.as_mut() else {
            return std::future::pending().await;
        };
        let done = job.await;
        self.job = None;
        let done = match done {
            Ok(done) => done,
            Err(_) => return self.fail("wake-failed", "the wake word worker stopped".into()),
        };
        if let Some(err) = done.error {
            warn!(cause = %err, "wake word detection failed");
            return self.fail("wake-failed", format!("wake word detection failed: {err}"));
        }
        self.service
            .stats()
            .peak_state_bytes
            .fetch_max(done.stream.features.memory_bytes(), Ordering::Relaxed);
        self.stream = Some(done.stream);
        self.spare = done.buffer;
        let mut events = Vec::new();
        for hit in done.hits {
            let Some(word) = self.service.words().get(hit.word) else {
                continue;
            };
            self.detections += 1;
            let timestamp = (hit.step + 1) * STEP_MS;
            info!(
                wake_word = %word.name,
                timestamp_ms = timestamp,
                since_last_chunk = ?self.last_chunk_at.map(|t| t.elapsed()),
                "wake word detected"
            );
            events.push(
                Detection {
                    name: Some(word.name.clone()),
                    timestamp: Some(i64::try_from(timestamp).unwrap_or(i64::MAX)),
                    speaker: None,
                    context: None,
                }
                .into(),
            );
        }
        events.extend(self.dispatch());
        events.extend(self.finish_if_idle());
        events
    }

    /// Sends the whole steps in `pending` to a worker, if none is busy with this stream.
    fn dispatch(&mut self) -> Vec<Event> {
        if self.job.is_some() || self.pending.len() < STEP_SAMPLES {
            return Vec::new();
        }
        let Some(stream) = self.stream.take() else {
            return Vec::new();
        };
        let steps = (self.pending.len() / STEP_SAMPLES).min(MAX_STEPS_PER_JOB);
        let mut samples = std::mem::take(&mut self.spare);
        samples.clear();
        samples.extend(self.pending.drain(..steps * STEP_SAMPLES));
        match self.service.engine().submit(stream, samples) {
            Ok(receiver) => {
                self.job = Some(receiver);
                Vec::new()
            }
            Err(refused) => {
                self.stream = Some(refused.stream);
                self.pending.splice(0..0, refused.samples);
                self.fail("wake-failed", refused.why.into())
            }
        }
    }

    /// After `audio-stop`, once every whole step is computed: `not-detected` if nothing was
    /// heard. The last partial step is dropped, as the reference does.
    fn finish_if_idle(&mut self) -> Vec<Event> {
        if self.stage != Stage::Stopping || self.job.is_some() || self.pending.len() >= STEP_SAMPLES
        {
            return Vec::new();
        }
        self.stage = Stage::Done;
        self.pending.clear();
        if self.detections > 0 {
            return Vec::new();
        }
        debug!("audio stopped without a wake word");
        vec![NotDetected { context: None }.into()]
    }

    fn fail(&mut self, code: &str, text: String) -> Vec<Event> {
        self.stage = Stage::Done;
        self.job = None;
        self.pending.clear();
        vec![ErrorEvent::new(code, text).into()]
    }
}
