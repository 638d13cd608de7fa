//! One text-to-speech exchange on a Wyoming connection.
//!
//! - `synthesize`: the text is split into sentences; the first sentence's audio is sent as soon
//!   as it is synthesized, inside one `audio-start` … `audio-stop` group for the whole text.
//! - `synthesize-start`, `synthesize-chunk`*, `synthesize`, `synthesize-stop`: each sentence is
//!   synthesized as soon as its text is complete and sent as its own `audio-start` … `audio-stop`
//!   group; the compatibility `synthesize` inside the stream is ignored; after the last audio
//!   comes `synthesize-stopped` (HA waits forever without it).
//!
//! Synthesis runs on blocking threads, one sentence at a time per connection. A sentence's audio
//! comes in pieces while it is decoded (see [`super::engine`]) when the listener is waiting for
//! it, that is when less than [`URGENT_BELOW`] of audio already sent is still to play; otherwise
//! it comes whole, which costs less. When the client goes away the flow is dropped: the piece in
//! progress finishes on its thread and is discarded, and nothing after it is synthesized.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, info};
use wyoming::Event;
use wyoming::audio::{AudioChunk, AudioFormat, AudioStart, AudioStop};
use wyoming::misc::Error as ErrorEvent;
use wyoming::tts::{Synthesize, SynthesizeStart, SynthesizeStopped};

use super::engine::Delivery;
use super::text::{SentenceSplitter, clean, sentences, ssml_to_text};
use super::{Selection, TtsError, TtsService};

/// A sentence is decoded in pieces when less audio than this is left to play.
pub const URGENT_BELOW: Duration = Duration::from_millis(500);
/// Pieces in flight from the synthesis thread (a sentence has a few).
const PIECES_IN_FLIGHT: usize = 4;

/// The sentence being synthesized: its pieces of audio, then the end of the channel.
type Pending = mpsc::Receiver<Result<Vec<i16>, TtsError>>;

/// Which protocol the exchange follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One `synthesize`: one audio group for all sentences.
    Single,
    /// `synthesize-start` …: one audio group per sentence, then `synthesize-stopped`.
    Stream,
}

/// The state of one text-to-speech exchange.
pub struct TtsFlow {
    service: Arc<TtsService>,
    selection: Selection,
    mode: Mode,
    ssml: bool,
    splitter: SentenceSplitter,
    queue: VecDeque<String>,
    text_len: usize,
    /// The client has sent all text.
    all_text: bool,
    /// (Single mode) `audio-start` was sent.
    audio_started: bool,
    done: bool,
    pending: Option<Pending>,
    /// Samples of the sentence in progress not yet sent (less than one chunk).
    leftover: Vec<i16>,
    /// When the audio sent so far will have played, had the client started it at once.
    played_by: Option<Instant>,
    /// When the request arrived, for the log.
    started: Instant,
    /// How long the first audio took, for the log.
    first_audio: Option<Duration>,
}

impl std::fmt::Debug for TtsFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtsFlow")
            .field("mode", &self.mode)
            .field("queued", &self.queue.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl TtsFlow {
    fn new(
        service: Arc<TtsService>,
        selection: Selection,
        mode: Mode,
        format: Option<&str>,
    ) -> Self {
        Self {
            service,
            selection,
            mode,
            ssml: format == Some("ssml"),
            splitter: SentenceSplitter::new(),
            queue: VecDeque::new(),
            text_len: 0,
            all_text: false,
            audio_started: false,
            done: false,
            pending: None,
            leftover: Vec::new(),
            played_by: None,
            started: Instant::now(),
            first_audio: None,
        }
    }

    /// A plain `synthesize`. Returns the flow and the events to send now (an error, or the
    /// empty audio of an empty text).
    pub fn single(service: Arc<TtsService>, request: &Synthesize) -> (Self, Vec<Event>) {
        let selection = match service.select(request.voice.as_ref()) {
            Ok(selection) => selection,
            Err(err) => return Self::refused(service, Mode::Single, &err),
        };
        let mut flow = Self::new(
            service,
            selection,
            Mode::Single,
            request.text_format.as_deref(),
        );
        if let Err(err) = flow.count(&request.text) {
            return flow.fail_with(&err);
        }
        let text = flow.prepare(&request.text);
        flow.queue.extend(sentences(&text));
        flow.all_text = true;
        let events = flow.finish_if_idle();
        (flow, events)
    }

    /// A `synthesize-start`.
    pub fn stream(service: Arc<TtsService>, request: &SynthesizeStart) -> (Self, Vec<Event>) {
        match service.select(request.voice.as_ref()) {
            Ok(selection) => (
                Self::new(
                    service,
                    selection,
                    Mode::Stream,
                    request.text_format.as_deref(),
                ),
                Vec::new(),
            ),
            Err(err) => Self::refused(service, Mode::Stream, &err),
        }
    }

    fn refused(service: Arc<TtsService>, mode: Mode, err: &TtsError) -> (Self, Vec<Event>) {
        let selection = Selection {
            voice: Arc::clone(&service.default),
            speaker: None,
        };
        let mut flow = Self::new(service, selection, mode, None);
        let events = flow.fail(err);
        (flow, events)
    }

    fn fail_with(mut self, err: &TtsError) -> (Self, Vec<Event>) {
        let events = self.fail(err);
        (self, events)
    }

    /// Whether the exchange is over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether this is a streamed exchange still taking text.
    pub fn is_streaming(&self) -> bool {
        self.mode == Mode::Stream && !self.done
    }

    /// Whether audio is still to come (shutdown waits for it).
    pub fn is_busy(&self) -> bool {
        !self.done && (self.pending.is_some() || !self.queue.is_empty())
    }

    fn count(&mut self, text: &str) -> Result<(), TtsError> {
        self.text_len += text.chars().count();
        let limit = self.service.config().max_text_chars;
        if self.text_len > limit {
            return Err(TtsError::TextTooLong {
                len: self.text_len,
                limit,
            });
        }
        Ok(())
    }

    fn prepare(&self, text: &str) -> String {
        if self.ssml {
            ssml_to_text(text)
        } else {
            text.to_owned()
        }
    }

    /// `synthesize-chunk` (streamed text).
    pub fn on_chunk(&mut self, text: &str) -> Vec<Event> {
        if self.done || self.all_text {
            return Vec::new();
        }
        if let Err(err) = self.count(text) {
            return self.fail(&err);
        }
        let text = self.prepare(text);
        let sentences = self.splitter.push(&text);
        self.queue.extend(sentences);
        Vec::new()
    }

    /// `synthesize-stop`: no more text.
    pub fn on_stop(&mut self) -> Vec<Event> {
        if self.done || self.all_text {
            return Vec::new();
        }
        self.all_text = true;
        self.queue.extend(self.splitter.finish());
        self.finish_if_idle()
    }

    /// When all text is in and nothing is left to synthesize, the closing events.
    fn finish_if_idle(&mut self) -> Vec<Event> {
        if !self.all_text || self.pending.is_some() || !self.queue.is_empty() || self.done {
            return Vec::new();
        }
        self.done = true;
        match self.mode {
            Mode::Single => {
                let mut events = Vec::new();
                if !self.audio_started {
                    events.push(AudioStart::new(self.format(), None).into());
                }
                events.push(AudioStop { timestamp: None }.into());
                events
            }
            Mode::Stream => vec![SynthesizeStopped {}.into()],
        }
    }

    fn format(&self) -> AudioFormat {
        AudioFormat {
            rate: self.selection.voice.sample_rate,
            width: 2,
            channels: 1,
        }
    }

    /// Synthesizes the next sentence and returns its audio events as they come. Pending
    /// forever when there is nothing to synthesize.
    ///
    /// # Cancel safety
    /// Cancel safe: the synthesis keeps running and the next call takes up its audio.
    pub async fn next_output(&mut self) -> Vec<Event> {
        if self.done {
            return std::future::pending().await;
        }
        if self.pending.is_none() {
            let Some(sentence) = self.queue.pop_front() else {
                return std::future::pending().await;
            };
            self.pending = Some(self.start(&sentence));
        }
        let Some(pending) = self.pending.as_mut() else {
            return Vec::new();
        };
        match pending.recv().await {
            Some(Ok(pcm)) => self.audio_events(&pcm),
            Some(Err(err)) => self.fail(&err),
            None => {
                self.pending = None;
                self.sentence_end()
            }
        }
    }

    /// Starts synthesizing a sentence on a blocking thread. When the receiver is dropped, the
    /// thread stops after the piece in progress.
    fn start(&self, sentence: &str) -> Pending {
        let service = Arc::clone(&self.service);
        let selection = self.selection.clone();
        let now = Instant::now();
        let delivery = match self.played_by {
            Some(end) if end.saturating_duration_since(now) >= URGENT_BELOW => Delivery::Whole,
            _ => Delivery::Pieces,
        };
        debug!(%sentence, ?delivery, "synthesizing");
        let text = clean(sentence);
        let (pieces, pending) = mpsc::channel(PIECES_IN_FLIGHT);
        tokio::task::spawn_blocking(move || {
            let result = service.synthesize_pieces(&selection, &text, delivery, &mut |pcm| {
                pieces.blocking_send(Ok(pcm.to_vec())).is_ok()
            });
            if let Err(err) = result {
                let _ = pieces.blocking_send(Err(err));
            }
        });
        pending
    }

    /// Audio events for a piece of the sentence in progress: whole chunks now, the rest with
    /// the next piece or at the sentence's end.
    fn audio_events(&mut self, pcm: &[i16]) -> Vec<Event> {
        let format = self.format();
        let mut events = Vec::new();
        if !self.audio_started {
            events.push(AudioStart::new(format, None).into());
            self.audio_started = true;
        }
        let now = Instant::now();
        self.first_audio.get_or_insert_with(|| {
            let took = now.duration_since(self.started);
            crate::latency::record(crate::latency::Series::FirstAudio, took);
            took
        });
        let duration = Duration::from_secs_f64(pcm.len() as f64 / f64::from(format.rate.max(1)));
        self.played_by = Some(self.played_by.map_or(now, |end| end.max(now)) + duration);
        let per_chunk = self.service.config().samples_per_chunk.max(1);
        self.leftover.extend_from_slice(pcm);
        let whole = self.leftover.len() / per_chunk * per_chunk;
        for samples in self.leftover[..whole].chunks(per_chunk) {
            events.push(chunk_event(format, samples));
        }
        self.leftover.drain(..whole);
        events
    }

    /// The sentence is complete: the last partial chunk, `audio-stop` for a streamed sentence,
    /// and the closing events when it was the last.
    fn sentence_end(&mut self) -> Vec<Event> {
        let format = self.format();
        let mut events = Vec::new();
        if !self.leftover.is_empty() {
            events.push(chunk_event(format, &self.leftover));
            self.leftover.clear();
        }
        if self.mode == Mode::Stream {
            if self.audio_started {
                events.push(AudioStop { timestamp: None }.into());
            }
            // Each streamed sentence is its own audio group.
            self.audio_started = false;
        }
        if self.queue.is_empty() && self.all_text {
            info!(
                voice = %self.selection.voice.name,
                first_audio_ms = self.first_audio.map(|d| d.as_millis() as u64),
                took_ms = self.started.elapsed().as_millis() as u64,
                "speech synthesized"
            );
        }
        events.extend(self.finish_if_idle());
        events
    }

    fn fail(&mut self, err: &TtsError) -> Vec<Event> {
        info!(code = err.code(), %err, "text-to-speech request refused");
        self.done = true;
        self.queue.clear();
        self.pending = None;
        vec![ErrorEvent::new(err.code(), err.to_string()).into()]
    }
}

fn chunk_event(format: AudioFormat, samples: &[i16]) -> Event {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    AudioChunk::new(format, bytes, None).into()
}
