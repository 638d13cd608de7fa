//! One speech-to-text exchange on a Wyoming connection:
//! `transcribe`? → `audio-start` → `audio-chunk`* → `audio-stop`? → `transcript`.
//!
//! With endpointing on, the flow watches for the end of speech while audio streams in. When the
//! speech probability first dips (or at the latest at the first silent window) it starts a
//! *speculative* decode of the speech so far; if the silence lasts, that result is the transcript
//! and goes out at once, usually before the client has even noticed the silence. Speech after
//! the dip or pause throws the speculative work away. The silence that ends a request depends on
//! how whole its words are ([`Understanding::completeness`]): short (`min_silence_ms`) after a
//! homelab command the brain resolves, a little longer (`sentence_silence_ms`) after another
//! whole sentence, which may go on after a comma, and long (`max_silence_ms`) otherwise ("start
//! the", "what is the status of").
//!
//! Only audio that arrives at the pace of speech is endpointed. A recording sent faster than
//! real time has the rest of its speech on the way, so its pauses end nothing: it is judged
//! once it slows to real time or stops arriving, and `audio-stop` decodes all of it. An end of
//! speech is also only acted on once no more audio is waiting to be read.
//!
//! After the transcript the flow keeps reading (and dropping) audio until `audio-stop` or EOF:
//! HA 2024.3 writes all audio before it reads, and a closed socket would break its writes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{debug, info, warn};
use wyoming::Event;
use wyoming::asr::{Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop};
use wyoming::audio::{AudioChunk, AudioStart};
use wyoming::misc::Error as ErrorEvent;

use super::audio::Converter;
use super::endpoint::{self, EndpointConfig, Endpointer, Vad};
use super::whisper::{CancelFlag, CancelOnDrop, DecodeRequest, Transcription};
use super::{Completeness, SttError, SttService, Understanding};

/// Longest vocabulary prompt handed to whisper, in characters (~30 tokens; the names that do not
/// fit reach whisper through the speech grammar, up to its 2000 names). A long list of names
/// makes tiny.en transcribe in its style: on a cluster with 1000 more guests
/// (`JARVIS_WER_GUESTS=1000 scripts/bench.sh wer`, 250 clips) WER was 48.1 % with 600
/// characters of names (most decodes looped or were doubtful), and with the retry in 10 s of
/// context 31.8 % with 300, 29.1 % with 120, 29.9 % with none. The homelab cluster's
/// names (83 characters) fit whole.
const MAX_PROMPT_CHARS: usize = 120;
/// How far back the arrival rate of audio is judged.
const RATE_WINDOW: Duration = Duration::from_millis(400);
/// Audio arriving faster than this many times real time over [`RATE_WINDOW`] is a recording sent
/// at once, not a live microphone: its pauses do not end the request (the rest of the speech is
/// on its way), so endpointing waits until it arrives at the pace of speech, or stops arriving.
const LIVE_RATE: f64 = 1.5;
/// Arrivals closer together than this count as one (bounds the arrival log).
const SAME_ARRIVAL: Duration = Duration::from_millis(5);

/// How fast audio has arrived lately: the converted samples that arrived in the last
/// [`RATE_WINDOW`], against real time.
///
/// Each arrival counts the samples it brought, so a recording that arrives in one burst (every
/// chunk within [`SAME_ARRIVAL`] of the one before) is judged fast. Stop 44 found it was not:
/// the log kept only running totals, and a burst merged into one entry brought nothing. Whether
/// a recording sent at once was endpointed then depended on how quickly the server read it, so
/// its speculative decode was cut wherever the audio had arrived by then, and the same clip
/// came out differently from run to run.
#[derive(Debug, Default)]
struct ArrivalRate {
    /// (time, converted samples that arrived then), oldest first.
    log: VecDeque<(Instant, usize)>,
}

impl ArrivalRate {
    /// Notes that `samples` converted samples arrived at `now`.
    fn arrived(&mut self, now: Instant, samples: usize) {
        match self.log.back_mut() {
            Some((at, brought)) if now.duration_since(*at) < SAME_ARRIVAL => *brought += samples,
            _ => self.log.push_back((now, samples)),
        }
        self.forget(now);
    }

    /// Drops arrivals older than [`RATE_WINDOW`].
    fn forget(&mut self, now: Instant) {
        while self
            .log
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.log.pop_front();
        }
    }

    /// Whether more audio arrived in the last [`RATE_WINDOW`] than a live microphone sends in
    /// [`LIVE_RATE`] times that.
    fn fast(&mut self, now: Instant) -> bool {
        self.forget(now);
        let samples: usize = self.log.iter().map(|(_, brought)| brought).sum();
        let seconds = samples as f64 / f64::from(super::audio::WHISPER_RATE);
        seconds > RATE_WINDOW.as_secs_f64() * LIVE_RATE
    }
}

/// A decode in progress.
struct Pending {
    receiver: oneshot::Receiver<Result<Transcription, SttError>>,
    _cancel: CancelOnDrop,
    /// `Some(pause)` for a speculative decode started at that pause.
    pause: Option<u64>,
}

/// How a decode may wait for a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    /// Queued like any request: the transcript, or a speculation replacing this flow's own,
    /// just cancelled (it waits for that decode's worker, which the cancelled decode gives up
    /// within an operation).
    Wait,
    /// A speculation: only on an idle worker, so speculative work never takes the place of a
    /// request that needs an answer.
    IfIdle,
}

/// Where the flow is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for `audio-start`.
    Ready,
    /// Audio is streaming in.
    Listening,
    /// Speech ended or audio stopped; the transcript is being decoded.
    Ending,
    /// The transcript (or an error) was sent; later audio is dropped.
    Done,
}

/// The state of one `transcribe` exchange.
pub struct SttFlow {
    service: Arc<SttService>,
    request: DecodeRequest,
    endpoint: EndpointConfig,
    stage: Stage,
    converter: Option<Converter>,
    endpointer: Option<Endpointer>,
    pending: Option<Pending>,
    /// A finished speculative decode and the speculation it belongs to.
    speculative: Option<(u64, Transcription)>,
    /// The current speculation: bumped whenever earlier speculative work goes stale.
    pause: u64,
    /// Samples the current speculation covers.
    spec_cut: usize,
    paused: bool,
    /// The least whole words the current pause is long enough to end:
    /// [`Completeness::Command`] after `min_silence_ms`, [`Completeness::Sentence`] after
    /// `sentence_silence_ms`; `None` before.
    ends: Option<Completeness>,
    /// When the end of speech was detected, for the log.
    ended_at: Option<Instant>,
    /// The end of speech was decided; it is acted on once no more audio is waiting to be read
    /// (see [`SttFlow::next_output`]), and called off if that audio holds speech.
    end_armed: bool,
    /// Recent arrivals, for [`LIVE_RATE`].
    arrivals: ArrivalRate,
    /// Endpointing is behind the audio (it arrived too fast to judge); catch up at this time.
    vad_due: Option<Instant>,
    /// The brain's view of the words: complete or not, and names as the cluster writes them.
    understanding: Option<Arc<dyn Understanding>>,
}

impl std::fmt::Debug for SttFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SttFlow")
            .field("stage", &self.stage)
            .field("pause", &self.pause)
            .finish_non_exhaustive()
    }
}

impl SttFlow {
    /// A new exchange, configured by the `transcribe` event if there was one. `known_names`
    /// (the cluster's nodes, guests and storages) bias whisper after the request's own names and
    /// the configured vocabulary.
    pub fn new(
        service: Arc<SttService>,
        transcribe: Option<&Transcribe>,
        known_names: &[String],
        understanding: Option<Arc<dyn Understanding>>,
    ) -> Self {
        let mut endpoint = service.endpoint;
        let mut request = DecodeRequest::default();
        let mut words: Vec<&str> = Vec::new();
        if let Some(t) = transcribe {
            request.model = t.name.clone();
            request.language = t.language.clone();
            words.extend(t.transcript_names.iter().flatten().map(String::as_str));
            words.extend(t.transcript_terms.iter().flatten().map(String::as_str));
            match t.vad_sensitivity.as_deref() {
                Some("aggressive") => {
                    endpoint.min_silence_ms = endpoint.min_silence_ms.min(120);
                    endpoint.sentence_silence_ms = endpoint.sentence_silence_ms.min(200);
                    endpoint.max_silence_ms = endpoint.max_silence_ms.min(400);
                }
                Some("relaxed") => {
                    endpoint.min_silence_ms = (endpoint.min_silence_ms * 3).max(600);
                    endpoint.sentence_silence_ms = (endpoint.sentence_silence_ms * 3).max(750);
                    endpoint.max_silence_ms = (endpoint.max_silence_ms * 2).max(1250);
                }
                _ => {}
            }
        }
        words.extend(service.config.vocabulary.iter().map(String::as_str));
        words.extend(known_names.iter().map(String::as_str));
        request.prompt = vocabulary_prompt(&words);
        if service.config.grammar.enabled {
            request.grammar = understanding.as_ref().and_then(|u| u.grammar());
        }
        Self {
            service,
            request,
            endpoint,
            stage: Stage::Ready,
            converter: None,
            endpointer: None,
            pending: None,
            speculative: None,
            pause: 0,
            spec_cut: 0,
            paused: false,
            ends: None,
            ended_at: None,
            end_armed: false,
            arrivals: ArrivalRate::default(),
            vad_due: None,
            understanding,
        }
    }

    /// Whether the transcript (or an error) has been sent.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Whether a decode is running whose result must still be sent.
    pub fn is_busy(&self) -> bool {
        self.stage == Stage::Ending && self.pending.is_some()
            || self.stage == Stage::Listening && self.end_armed
    }

    /// `audio-start`.
    pub fn on_audio_start(&mut self, start: &AudioStart) -> Vec<Event> {
        if self.stage != Stage::Ready {
            return Vec::new();
        }
        let converter = match Converter::new(start.format()) {
            Ok(converter) => converter,
            Err(err) => return self.fail("bad-audio-format", err.to_string()),
        };
        self.converter = Some(converter);
        if let Some(pool) = &self.service.vad {
            match Endpointer::new(Arc::clone(pool), self.endpoint) {
                Ok(endpointer) => self.endpointer = Some(endpointer),
                Err(err) => warn!(cause = %err, "endpointing unavailable for this request"),
            }
        }
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
            Stage::Ending | Stage::Done => return Vec::new(),
        }
        let Some(converter) = self.converter.as_mut() else {
            return Vec::new();
        };
        let before = converter.samples().len();
        if let Err(text) = converter.push_chunk(chunk) {
            return self.fail("bad-audio-format", text);
        }
        let max = self.service.config.max_audio_secs;
        if converter.seconds() > max as f32 {
            let text = format!("audio is longer than the limit of {max} s (stt.max_audio_secs)");
            return self.fail("audio-too-long", text);
        }
        let received = converter.samples().len();
        if self.endpointer.is_none() {
            return Vec::new();
        }
        let now = Instant::now();
        self.arrivals.arrived(now, received.saturating_sub(before));
        if self.arrivals.fast(now) {
            // A recording sent at once: whatever the audio so far seems to say, more of it is
            // on its way. Judge it when it arrives at the pace of speech, or stops arriving.
            self.end_armed = false;
            self.vad_due = Some(now + RATE_WINDOW);
            return Vec::new();
        }
        self.vad_due = None;
        let events = self.run_vad();
        if self.paused && self.stage == Stage::Listening && !self.end_armed {
            self.retry_speculation();
        }
        events
    }

    /// In a pause with no speculation (no worker was free at its start, often because one was
    /// still finishing a speculation that speech made stale, as whisper only notices a cancel
    /// after its encoder): try again, or only the long silence could end the request.
    fn retry_speculation(&mut self) {
        if self.speculative.is_none() && self.pending.is_none() && self.service.engine.is_idle() {
            self.speculate();
        }
    }

    /// Runs endpointing over the audio not judged yet and acts on what it finds.
    fn run_vad(&mut self) -> Vec<Event> {
        let (Some(endpointer), Some(converter)) =
            (self.endpointer.as_mut(), self.converter.as_ref())
        else {
            return Vec::new();
        };
        let events = match endpointer.update(converter.samples()) {
            Ok(events) => events,
            Err(err) => {
                warn!(cause = %err, "endpointing failed; waiting for audio-stop");
                self.endpointer = None;
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for event in events {
            out.extend(self.on_vad(event));
        }
        out
    }

    fn on_vad(&mut self, event: Vad) -> Vec<Event> {
        debug!(?event, "vad");
        match event {
            Vad::Start(_) => Vec::new(),
            Vad::Dip(_) => {
                self.speculate();
                Vec::new()
            }
            Vad::Rise => {
                self.drop_speculation();
                Vec::new()
            }
            Vad::Pause(speech_end) => {
                self.paused = true;
                self.ends = None;
                // A speculation started at the dip just before is still good if it holds every
                // sample of speech; otherwise start one now.
                let current = self.spec_cut >= speech_end
                    && (self
                        .speculative
                        .as_ref()
                        .is_some_and(|(p, _)| *p == self.pause)
                        || self
                            .pending
                            .as_ref()
                            .is_some_and(|p| p.pause == Some(self.pause)));
                if !current {
                    self.speculate();
                }
                Vec::new()
            }
            Vad::Resume => {
                self.paused = false;
                self.ends = None;
                self.end_armed = false;
                self.drop_speculation();
                Vec::new()
            }
            Vad::Quiet => {
                self.silence_ends(Completeness::Command);
                Vec::new()
            }
            Vad::Lull => {
                self.silence_ends(Completeness::Sentence);
                Vec::new()
            }
            Vad::End(_) => {
                self.arm_end(end_reason(Completeness::Incomplete));
                Vec::new()
            }
        }
    }

    /// Decides the end of speech; [`SttFlow::next_output`] acts on it unless more audio, already
    /// waiting, says otherwise.
    fn arm_end(&mut self, why: &'static str) {
        if !self.end_armed {
            debug!(why, "end of speech decided");
            self.end_armed = true;
            self.ended_at = Some(Instant::now());
        }
    }

    /// The pause has grown long enough to end words that are at least `least` whole: ends the
    /// request now if the speculative transcript of this pause is.
    fn silence_ends(&mut self, least: Completeness) {
        self.ends = Some(self.ends.map_or(least, |ends| ends.min(least)));
        let whole = match &self.speculative {
            Some((pause, t)) if *pause == self.pause => self.completeness(&t.text),
            _ => return,
        };
        self.end_if(whole);
    }

    /// Ends the request now if the current pause is long enough for words this whole.
    fn end_if(&mut self, whole: Completeness) {
        if let Some(least) = self.ends.filter(|least| whole >= *least) {
            self.arm_end(end_reason(least));
        }
    }

    /// How whole the words heard so far are (the brain judges when it can; without it, no
    /// command is sure and only the last word tells a sentence from the start of one).
    fn completeness(&self, text: &str) -> Completeness {
        match &self.understanding {
            Some(understanding) => understanding.completeness(text),
            None if ends_complete(text) => Completeness::Sentence,
            None => Completeness::Incomplete,
        }
    }

    /// Starts a speculative decode of everything heard so far, replacing older speculation.
    ///
    /// When the older speculation is still decoding, the new one takes its worker: cancelled,
    /// that decode stops at its next operation, but its worker is not idle yet, and refusing
    /// the new speculation for that left the pause without one until a later chunk retried
    /// (on the WER bench in real time, one clip in two lost ~60-100 ms so).
    fn speculate(&mut self) {
        let replacing = self.pending.as_ref().is_some_and(|p| p.pause.is_some());
        self.drop_speculation();
        let samples = self.samples();
        self.spec_cut = samples.len();
        let queue = if replacing {
            Queue::Wait
        } else {
            Queue::IfIdle
        };
        if self.submit(samples, Some(self.pause), queue).is_err() {
            // Busy: no speculation; the end of speech will decode normally.
            debug!("no worker free for a speculative decode");
        }
    }

    /// Makes all speculative work stale and stops the decode of it (dropping cancels it).
    fn drop_speculation(&mut self) {
        self.pause += 1;
        self.speculative = None;
        if self.pending.as_ref().is_some_and(|p| p.pause.is_some()) {
            self.pending = None;
        }
    }

    /// `audio-stop`.
    pub fn on_stop(&mut self) -> Vec<Event> {
        match self.stage {
            Stage::Ready => {
                // No audio at all: an empty transcript, as the reference does.
                self.stage = Stage::Ending;
                self.emit(Transcription {
                    text: String::new(),
                    segments: Vec::new(),
                    language: self.request.language.clone().unwrap_or_else(|| "en".into()),
                    decode_time: std::time::Duration::ZERO,
                })
            }
            Stage::Listening => {
                if let Some(converter) = self.converter.as_mut() {
                    converter.finish();
                }
                // Audio that continued after the last pause, or that endpointing has not judged
                // yet, may hold more speech: only a speculation over all of it will do.
                let judged_all = self.endpointer.as_ref().is_some_and(|e| {
                    let total = self.converter.as_ref().map_or(0, |c| c.samples().len());
                    e.seen() + endpoint::WINDOW > total
                });
                if !self.paused || self.vad_due.is_some() || !judged_all {
                    self.drop_speculation();
                }
                self.vad_due = None;
                self.end_armed = false;
                self.end()
            }
            Stage::Ending | Stage::Done => Vec::new(),
        }
    }

    /// Speech is over: send the speculative result if it is current, else decode now.
    fn end(&mut self) -> Vec<Event> {
        self.stage = Stage::Ending;
        if let Some((pause, transcription)) = self.speculative.take() {
            if pause == self.pause && self.paused {
                debug!("speculative transcript is current");
                return self.emit(transcription);
            }
        }
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.pause == Some(self.pause) && self.paused)
        {
            // The speculative decode covers all the speech; its result will be the transcript.
            return Vec::new();
        }
        self.pending = None;
        let samples = self.samples();
        match self.submit(samples, None, Queue::Wait) {
            Ok(()) => Vec::new(),
            Err(err) => self.fail(err.code(), err.to_string()),
        }
    }

    fn samples(&self) -> Arc<[f32]> {
        self.converter
            .as_ref()
            .map(|c| Arc::from(c.samples()))
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    fn submit(
        &mut self,
        samples: Arc<[f32]>,
        pause: Option<u64>,
        queue: Queue,
    ) -> Result<(), SttError> {
        let cancel = CancelFlag::default();
        let engine = &self.service.engine;
        let receiver = match queue {
            Queue::IfIdle => {
                engine.submit_if_idle(samples, self.request.clone(), cancel.clone())?
            }
            Queue::Wait => engine.submit(samples, self.request.clone(), cancel.clone())?,
        };
        self.pending = Some(Pending {
            receiver,
            _cancel: CancelOnDrop(cancel),
            pause,
        });
        Ok(())
    }

    /// What the flow has to send of its own accord: the transcript once speech has ended and it
    /// is decoded. Returns the events to send (none for a speculative result not needed yet).
    /// Pending forever when there is nothing to wait for.
    ///
    /// The session polls its socket before this, so an end of speech decided on the audio read
    /// so far is acted on here only once no more audio is waiting: audio that was already sent
    /// is always heard before the transcript goes out.
    ///
    /// # Cancel safety
    /// Cancel safe: a decided end is acted on synchronously, a pending catch-up of endpointing is
    /// a deadline kept in `self`, and a decode stays pending for the next call.
    pub async fn next_output(&mut self) -> Vec<Event> {
        loop {
            if self.stage != Stage::Listening {
                return self.decoded().await;
            }
            if self.end_armed && self.vad_due.is_none() {
                self.end_armed = false;
                info!("end of speech");
                let events = self.end();
                if !events.is_empty() {
                    return events;
                }
                continue;
            }
            let Some(due) = self.vad_due else {
                return self.decoded().await;
            };
            tokio::select! {
                () = tokio::time::sleep_until(due.into()) => {
                    let now = Instant::now();
                    if self.arrivals.fast(now) {
                        self.vad_due = Some(now + RATE_WINDOW);
                        continue;
                    }
                    self.vad_due = None;
                    let events = self.run_vad();
                    // As for audio judged on arrival (`on_chunk`): a pause that found no worker
                    // free for its speculation tries again.
                    if self.paused && !self.end_armed {
                        self.retry_speculation();
                    }
                    if !events.is_empty() {
                        return events;
                    }
                }
                events = self.decoded() => return events,
            }
        }
    }

    /// Waits for the decode in progress; pending forever when nothing is decoding.
    ///
    /// # Cancel safety
    /// Cancel safe: the decode stays pending and the next call waits for it again.
    async fn decoded(&mut self) -> Vec<Event> {
        let Some(pending) = self.pending.as_mut() else {
            return std::future::pending().await;
        };
        let result = (&mut pending.receiver)
            .await
            .unwrap_or_else(|_| Err(SttError::Decode("whisper worker stopped".into())));
        let pause = self.pending.take().and_then(|p| p.pause);
        match (result, pause) {
            (Ok(transcription), Some(pause)) => {
                if pause != self.pause || !self.paused {
                    return Vec::new();
                }
                if self.stage == Stage::Ending {
                    return self.emit(transcription);
                }
                if self.ends.is_some() && self.vad_due.is_none() {
                    let whole = self.completeness(&transcription.text);
                    self.end_if(whole);
                }
                self.speculative = Some((pause, transcription));
                Vec::new()
            }
            (Ok(transcription), None) => self.emit(transcription),
            (Err(SttError::Cancelled), _) => Vec::new(),
            (Err(err), Some(_)) if self.stage != Stage::Ending => {
                debug!(cause = %err, "speculative decode failed");
                Vec::new()
            }
            (Err(err), _) => self.fail(err.code(), err.to_string()),
        }
    }

    fn emit(&mut self, mut transcription: Transcription) -> Vec<Event> {
        self.stage = Stage::Done;
        self.pending = None;
        if let Some(understanding) = &self.understanding {
            transcription.text = understanding.write_names(&transcription.text);
            for segment in &mut transcription.segments {
                *segment = understanding.write_names(segment);
            }
        }
        let audio_secs = self.converter.as_ref().map_or(0.0, Converter::seconds);
        crate::latency::record(
            crate::latency::Series::SpeechToText,
            self.ended_at
                .map_or(transcription.decode_time, |t| t.elapsed()),
        );
        info!(
            text = %transcription.text,
            audio_secs,
            decode_ms = transcription.decode_time.as_millis() as u64,
            since_end_of_speech_ms = self.ended_at.map(|t| t.elapsed().as_millis() as u64),
            "transcript"
        );
        let language = Some(transcription.language.clone());
        let transcript = Transcript {
            text: transcription.text,
            language: language.clone(),
            context: None,
        };
        if !self.service.config.streaming {
            return vec![transcript.into()];
        }
        let mut events: Vec<Event> = vec![
            TranscriptStart {
                language,
                context: None,
            }
            .into(),
        ];
        let count = transcription.segments.len();
        events.extend(
            transcription
                .segments
                .into_iter()
                .enumerate()
                .map(|(i, segment)| {
                    let text = if i + 1 < count {
                        format!("{segment} ")
                    } else {
                        segment
                    };
                    Event::from(TranscriptChunk { text })
                }),
        );
        events.push(transcript.into());
        events.push(TranscriptStop {}.into());
        events
    }

    fn fail(&mut self, code: &str, text: String) -> Vec<Event> {
        info!(code, %text, "speech-to-text request refused");
        self.stage = Stage::Done;
        self.pending = None;
        vec![ErrorEvent::new(code, text).into()]
    }
}

/// Words that, last, leave a sentence waiting for more: articles, prepositions, conjunctions,
/// auxiliaries and possessives ("that" too: it ends "I like that", but whisper also writes it
/// for a "the" that is followed by a pause). Particles that often end a sentence ("on", "off", "up",
/// "in") and verbs that do ("do", "have") are not here: a wrong "complete" loses words, but a
/// wrong "incomplete" only waits for the long silence.
const CONTINUED: &[&str] = &[
    // Articles and determiners.
    "a", "an", "the", "this", "that", "these", "those", "every", "each", "some", "any", "no",
    // Prepositions.
    "of", "to", "for", "with", "from", "by", "at", "into", "onto", "than", "as", "between",
    "through", "during", "without", "within", "toward", "towards", "upon", "via", "per", "about",
    // Conjunctions.
    "and", "or", "but", "nor", "so", "because", "if", "while", "although", "though", "unless",
    "whether", "whereas", // Auxiliaries, alone or contracted.
    "is", "are", "was", "were", "am", "be", "been", "being", "will", "would", "can", "could",
    "should", "shall", "must", "might", "may", "does", "i'm", "i'd", "i'll", "it's", "what's",
    "whats", "there's", "let's", "you're", "we're", "they're", "he's", "she's", "that's",
    // Possessives.
    "my", "your", "its", "our", "their",
];

/// Whether a sentence that ends on `word` (lower case) waits for more.
pub fn asks_for_more(word: &str) -> bool {
    CONTINUED.contains(&word)
}

/// Why an end was decided, for the log: the silence that ended words this whole.
fn end_reason(least: Completeness) -> &'static str {
    match least {
        Completeness::Command => "short silence after a homelab command",
        Completeness::Sentence => "sentence silence after a whole sentence",
        Completeness::Incomplete => "long silence",
    }
}

/// Whether words heard, with nothing known of what they ask, could be a whole sentence: they do
/// not end on a word that needs another after it. Whisper's punctuation is not consulted (it
/// closes "start the" with a full stop as readily as anything).
pub fn ends_complete(text: &str) -> bool {
    let last = text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
                .to_lowercase()
        })
        .rfind(|w| !w.is_empty());
    last.is_some_and(|last| !asks_for_more(&last))
}

/// Whisper's initial prompt from vocabulary words: distinct, comma-separated, bounded.
fn vocabulary_prompt(words: &[&str]) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut prompt = String::new();
    for word in words.iter().map(|w| w.trim()).filter(|w| !w.is_empty()) {
        if !seen.insert(word.to_lowercase()) {
            continue;
        }
        if prompt.len() + word.len() + 2 > MAX_PROMPT_CHARS {
            break;
        }
        if !prompt.is_empty() {
            prompt.push_str(", ");
        }
        prompt.push_str(word);
    }
    if !prompt.is_empty() {
        prompt.push('.');
    }
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_that_need_another_word_are_not_complete() {
        assert!(ends_complete("Turn on the kitchen lights."));
        assert!(ends_complete("What's the status of node pve?"));
        assert!(ends_complete("start VM one oh one"));
        assert!(ends_complete("And so my fellow Americans,"));
        assert!(!ends_complete("Start the VM and."));
        assert!(!ends_complete("Reboot the..."));
        assert!(!ends_complete("What is the status of."));
        assert!(!ends_complete(""));
        assert!(!ends_complete(" ... "));
    }

    /// Samples of 16 kHz audio in `ms` milliseconds.
    fn ms(ms: usize) -> usize {
        ms * 16
    }

    #[test]
    fn a_recording_sent_in_one_burst_arrives_fast() {
        let t0 = Instant::now();
        let mut rate = ArrivalRate::default();
        // 3 s in chunks of 64 ms, all read within a millisecond: one arrival in the log.
        for _ in 0..47 {
            rate.arrived(t0, ms(64));
        }
        assert!(rate.fast(t0));
        assert!(rate.fast(t0 + Duration::from_millis(390)));
        // Once nothing has arrived for the whole window, it is judged where it is.
        assert!(!rate.fast(t0 + RATE_WINDOW + Duration::from_millis(1)));
    }

    #[test]
    fn a_live_microphone_does_not_arrive_fast() {
        let t0 = Instant::now();
        let mut rate = ArrivalRate::default();
        for chunk_ms in [10, 64, 100] {
            for i in 0..100 {
                let now = t0 + Duration::from_millis((chunk_ms * i) as u64);
                rate.arrived(now, ms(chunk_ms));
                assert!(!rate.fast(now), "{chunk_ms} ms chunks, chunk {i}");
            }
            rate = ArrivalRate::default();
        }
        // A live stream held up for 300 ms, then caught up in one read, is fast until it has
        // been live again for a while.
        let now = t0 + Duration::from_secs(10);
        rate.arrived(now, ms(364));
        assert!(!rate.fast(now));
        let later = now + Duration::from_millis(300);
        rate.arrived(later, ms(364));
        assert!(rate.fast(later));
        assert!(!rate.fast(later + RATE_WINDOW + Duration::from_millis(1)));
    }

    #[test]
    fn the_prompt_lists_each_word_once_and_stays_bounded() {
        assert_eq!(
            vocabulary_prompt(&["pve", "agent1", "PVE", " "]),
            "pve, agent1."
        );
        assert_eq!(vocabulary_prompt(&[]), "");
        let many: Vec<String> = (0..500).map(|i| format!("host{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(vocabulary_prompt(&refs).len() <= MAX_PROMPT_CHARS + 1);
    }
}
