//! The whisper.cpp engine: loaded models and a bounded pool of decoding threads.
//!
//! Decoding is CPU-bound C++, so it never runs on the async runtime: `workers` threads each own a
//! whisper state per model and take jobs from a queue of fixed length. A job that does not fit in
//! the queue is refused at once ([`SttError::Busy`]) instead of piling up behind the others. A
//! job carries a cancel flag that whisper.cpp polls (abort callback), so work for a client that
//! went away stops within one decoder step.
//!
//! Short commands must not pay for whisper's fixed 30-second window: the encoder context
//! (`audio_ctx`) is sized to the audio, which makes a 2-second command several times cheaper.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
    WhisperTokenId,
};

use super::SttError;
use super::audio::WHISPER_RATE;
use super::grammar::SpeechGrammar;
use crate::workers::Workers;

/// Encoder frames per second of audio (whisper: 100 mel frames/s, halved by the encoder).
const AUDIO_CTX_PER_SECOND: usize = 50;
/// Extra encoder frames beyond the audio: whisper degrades when the context ends exactly with
/// the speech, so give it a little room.
const AUDIO_CTX_PADDING: usize = 64;
/// Longest vocabulary prompt, in tokens: whisper keeps half its 448-token text context for it.
const MAX_PROMPT_TOKENS: usize = 224;
/// whisper.cpp's full window, in encoder frames (30 s).
const FULL_AUDIO_CTX: usize = 1500;
/// How many keys whisper's encoder self-attention and its decoders' cross-attention read at
/// least, those past the audio context all zero (flash attention, no mask: whisper.cpp reads
/// the context rounded up to 256 the same way). A zero key adds `exp(0 - max)` to every
/// query's softmax sum and nothing to its output, so the zeros take a share of the attention
/// that tiny.en, trained on 1500 frames, gives the rest of a 30 s window. With 512, a short
/// context keeps that share: on the WER bench's 250 clips (`JARVIS_WER_LIMIT=24`), context
/// 256 gives homelab commands 7.0 % WER with 512 keys and 9.4 % (two empty transcripts)
/// with its own 256; 224 gives 7.5 against 9.9 %. More zeros are worse: 768 keys gave
/// 11.0 % at context 320, whose own 512 give 7.4 %. It changes nothing from context 257 to
/// 512 (the default `stt.min_audio_ctx`, 288, among them); below, where a user may set it, it
/// keeps the zeros. Even so, 256 is worse than 288 on the whole corpus (8.0 against 7.3 %).
const ATTENTION_KEYS: usize = 512;
/// Encoder context of the second decode of a doubtful short command (10 s). Measured on the
/// whole WER corpus (1362 clips, `JARVIS_WER_LIMIT=1000 cargo bench --bench wer`): WER 20.3 %
/// at 500 against 20.6 % over the whole window, request -> transcript p95 0.68 s against 3.7 s
/// (a compile ran beside both), and a smaller encoder buffer at the process's memory peak.
const RETRY_AUDIO_CTX: usize = 500;
/// Mean token log probability below which whisper is unsure of its words (its own temperature
/// fallback threshold, `logprob_thold`): the decode is done again in a wider context.
const DOUBTFUL_LOGPROB: f32 = -1.0;
/// How much less likely per token (whisper's mean log probability, without the grammar) a
/// guided decode's words may be than the free decode's and still be kept. Measured on the WER
/// bench (`JARVIS_WER_LIMIT=24`, 250 clips of 131 sentences): corrections of misheard names and
/// words cost up to ~2 ("List the running guests on no pve." -0.65 → "... on node pve."
/// -2.71; "Is misteringe feeling up?" -0.99 → "Is my storage filling up?" -2.93); everyday
/// speech bent into a command costs 4–11 ("Tell me a joke." -0.22 → "Tell me agent 1 memory."
/// -6.62). Margin 1.2 and floor -1.6 (the values before) left homelab commands at 26.8 % WER
/// and everyday sentences at 15.3 %; 2.6 and -3.2 with [`GUIDED_MIN_WORDS`] give 23.3 % and
/// 14.0 %.
const GUIDED_MARGIN: f32 = 2.6;
/// A guided decode whose words whisper finds less likely than this per token is not kept,
/// however unsure the free decode was.
const GUIDED_FLOOR: f32 = -3.2;
/// A guided decode keeps at least this share of the free decode's words: a misheard word is
/// corrected word for word, while a sentence the grammar cut short ("Good morning, hail are
/// you?" guided to "Don't", -2.00) is other speech, not a correction. A name whisper heard as
/// several words comes back as one ("Switch off a to os." guided to "Switch off haos."): with
/// the guided beams, 3/5 instead of 2/3 keeps 25 more words right on homelab commands over the
/// whole WER corpus (1362 clips: 12.6 against 13.2 % WER) and none fewer on everyday sentences
/// (15.2 % both); 1/2 let everyday sentences be cut short (replayed from the bench's log: 10
/// more everyday word errors).
const GUIDED_MIN_WORDS: f32 = 3.0 / 5.0;
/// A free decode whose mean log probability is above this is not decoded again with the
/// grammar: whisper is sure of its words, and a guided decode does not correct them. Measured on
/// the whole WER corpus (1362 clips, `JARVIS_WER_LIMIT=1000`): of 925 guided decodes, leaving
/// the 55 above -0.1 unguided changed one word; from -0.15 up, corrections begin to be lost ("Is
/// any note offline?" -0.18 to "node"; "What is the process usage on nextcloud?" -0.19). Each
/// guided decode saved is 40-130 ms.
const SURE_LOGPROB: f32 = -0.1;
/// How many of the grammar's sentences nearest to the free decode's words in spelling whisper
/// scores ([`rescore`]).
const NEAREST_KEEP: usize = 6;
/// How much less likely per token (whisper's mean log probability, end-of-text included) one of
/// the grammar's nearest sentences may be than the free decode's words and still be kept.
/// Measured by scoring sentences on WER bench clips: the sentence said scored 0.0 to 2.7 below
/// the free decode's misheard words ("Top nextcloud." -0.80, "Stop nextcloud." -0.99; "Svem
/// 100 down." -0.58, "Is VM 100 down?" -3.28), other sentences of the grammar 3.8 to 5.3 below
/// ("Turn on the kitchen lights." scored against "Turn on agent1."). On the WER bench's 250
/// clips (`JARVIS_WER_LIMIT=24`) the guided decode's 2.6 also kept "Start the dishwasher." as
/// "Start the pihole." (2.5 below); 2.2 gives homelab commands 7.9 % instead of 7.7 % and
/// everyday sentences 13.5 % instead of 13.8 % (13.5 % without any of this).
const NEAREST_MARGIN: f32 = 2.2;
/// A guided decode writes at most this many tokens more than the free decode's text had: it
/// corrects the words heard, it does not say more. A beam that the grammar sends down a
/// sentence the audio does not hold runs on until the cap (whisper.cpp searches until every
/// beam has ended), so this bounds the cost of the guided beam search. On the WER bench's 250
/// clips 4 and 8 give the same transcripts, guided decodes taking 97 / 132 ms (median / p90)
/// at 4 against 100 / 153 ms at 8.
const GUIDED_EXTRA_TOKENS: usize = 4;
/// Below this mean log probability, with [`HALLUCINATION_NO_SPEECH`], the words are made up.
const HALLUCINATION_LOGPROB: f32 = -1.0;
/// Whisper's no-speech probability above which unsure words are dropped (whisper.cpp drops
/// them at 0.6 on its own).
const HALLUCINATION_NO_SPEECH: f32 = 0.3;

/// A loaded whisper model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Name clients select it by (`transcribe.name`), e.g. `tiny.en`.
    pub name: String,
    /// The ggml file.
    pub path: PathBuf,
    /// Language codes it transcribes.
    pub languages: Vec<String>,
}

/// What to decode and how.
#[derive(Debug, Clone, Default)]
pub struct DecodeRequest {
    /// Model name; `None` for the default.
    pub model: Option<String>,
    /// Language code; `None` or `auto` to detect (multilingual models only).
    pub language: Option<String>,
    /// Vocabulary for whisper's initial prompt.
    pub prompt: String,
    /// Sentences and names to guide the decode towards (see [`super::grammar`]).
    pub grammar: Option<Arc<SpeechGrammar>>,
}

/// A finished transcription.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcription {
    /// The text, trimmed.
    pub text: String,
    /// The text of each segment, in order.
    pub segments: Vec<String>,
    /// Language of the text.
    pub language: String,
    /// Time spent decoding.
    pub decode_time: Duration,
}

/// Cancels a job when dropped or told to.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// Asks the job to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the job was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

struct Job {
    samples: Arc<[f32]>,
    request: DecodeRequest,
    cancel: CancelFlag,
    reply: oneshot::Sender<Result<Transcription, SttError>>,
}

/// Settings for [`Engine::load`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The default model first, then any others to offer.
    pub models: Vec<(String, PathBuf)>,
    /// Default language (`auto` to detect).
    pub language: String,
    /// Threads per decode.
    pub threads: usize,
    /// Concurrent decodes.
    pub workers: usize,
    /// Jobs that may wait for a worker.
    pub queue: usize,
    /// Smallest encoder context, in frames (`stt.min_audio_ctx`).
    pub min_audio_ctx: usize,
    /// How to decode with a request's grammar; `None`: no guided decode.
    pub guided: Option<GuidedDecode>,
}

/// The guided decode's settings (`[stt.grammar]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuidedDecode {
    /// Penalty for tokens outside the grammar, in logits.
    pub penalty: f32,
    /// Beams searched (1: greedy).
    pub beams: usize,
}

/// Counters of what the workers did, for `/health` and tests.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Decodes that finished.
    pub completed: AtomicU64,
    /// Decodes stopped or skipped because their client went away.
    pub cancelled: AtomicU64,
    /// Requests refused because the queue was full.
    pub refused: AtomicU64,
}

/// Loaded models plus the worker pool. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Engine {
    models: Vec<ModelInfo>,
    jobs: SyncSender<Job>,
    language: String,
    stats: Arc<EngineStats>,
    /// Jobs submitted and not yet finished or skipped.
    in_flight: Arc<AtomicUsize>,
    workers: usize,
    /// Each worker's current job, to stop it when the engine goes.
    current: Vec<Arc<Mutex<CancelFlag>>>,
    /// After `jobs`: the threads are joined once the queue is closed.
    threads: Workers,
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Skip what is queued and stop what is decoding; the threads are joined after `jobs`
        // closes (field order), so none is inside whisper.cpp when the process exits.
        self.threads.stop();
        for current in &self.current {
            if let Ok(flag) = current.lock() {
                flag.cancel();
            }
        }
    }
}

impl Engine {
    /// Loads every model and starts the workers.
    ///
    /// # Errors
    /// [`SttError::ModelMissing`] / [`SttError::ModelLoad`] naming the file and the fix.
    pub fn load(config: &EngineConfig) -> Result<Self, SttError> {
        let mut contexts = HashMap::new();
        let mut models = Vec::new();
        for (name, path) in &config.models {
            let started = Instant::now();
            let context = load_context(name, path)?;
            let languages = if context.is_multilingual() {
                (0..=whisper_rs::get_lang_max_id())
                    .filter_map(whisper_rs::get_lang_str)
                    .map(str::to_owned)
                    .collect()
            } else {
                vec!["en".to_owned()]
            };
            info!(model = %name, path = %path.display(), took = ?started.elapsed(), "whisper model loaded");
            contexts.insert(name.clone(), Arc::new(context));
            models.push(ModelInfo {
                name: name.clone(),
                path: path.clone(),
                languages,
            });
        }
        let default = models
            .first()
            .map(|m| m.name.clone())
            .ok_or_else(|| SttError::Config("stt: no whisper model configured".into()))?;
        let (jobs, receiver) = std::sync::mpsc::sync_channel::<Job>(config.queue);
        let receiver = Arc::new(Mutex::new(receiver));
        let contexts = Arc::new(contexts);
        let stats = Arc::new(EngineStats::default());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut threads = Workers::new();
        let mut current = Vec::new();
        for index in 0..config.workers.max(1) {
            let mut worker = Worker::new(
                Arc::clone(&in_flight),
                Arc::clone(&stats),
                Arc::clone(&contexts),
                default.clone(),
                config.threads.max(1),
                config.min_audio_ctx.clamp(1, FULL_AUDIO_CTX),
                config.guided,
            );
            worker.stopping = threads.stopping();
            current.push(Arc::clone(&worker.current));
            let receiver = Arc::clone(&receiver);
            threads
                .spawn(format!("whisper-{index}"), move || worker.run(&receiver))
                .map_err(|err| SttError::Config(format!("cannot start whisper worker: {err}")))?;
        }
        Ok(Self {
            models,
            jobs,
            language: config.language.clone(),
            stats,
            in_flight,
            workers: config.workers.max(1),
            current,
            threads,
        })
    }

    /// What the workers have done so far.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The loaded models, default first.
    pub fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    /// Queues 16 kHz mono samples for decoding. Dropping the receiver does not stop the job;
    /// [`CancelFlag::cancel`] does (the STT flow cancels when its client leaves).
    ///
    /// # Errors
    /// [`SttError::Busy`] when the queue is full, [`SttError::UnknownModel`], or a decode failure.
    pub fn submit(
        &self,
        samples: Arc<[f32]>,
        mut request: DecodeRequest,
        cancel: CancelFlag,
    ) -> Result<oneshot::Receiver<Result<Transcription, SttError>>, SttError> {
        if let Some(name) = &request.model {
            if !self.models.iter().any(|m| &m.name == name) {
                return Err(SttError::UnknownModel {
                    name: name.clone(),
                    known: self.models.iter().map(|m| m.name.clone()).collect(),
                });
            }
        }
        if request.language.is_none() {
            request.language = Some(self.language.clone());
        }
        let (reply, receiver) = oneshot::channel();
        let job = Job {
            samples,
            request,
            cancel,
            reply,
        };
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let sent = self.jobs.try_send(job);
        if sent.is_err() {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => Ok(receiver),
            Err(TrySendError::Full(_)) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Err(SttError::Busy)
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(SttError::Decode("whisper workers stopped".into()))
            }
        }
    }

    /// Whether a worker is idle (what [`Engine::submit_if_idle`] needs).
    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) < self.workers
    }

    /// Like [`Engine::submit`], but only when a worker is idle: speculative work must never
    /// queue, or it would take the places of requests that need an answer.
    ///
    /// # Errors
    /// [`SttError::Busy`] when no worker is idle, else as [`Engine::submit`].
    pub fn submit_if_idle(
        &self,
        samples: Arc<[f32]>,
        request: DecodeRequest,
        cancel: CancelFlag,
    ) -> Result<oneshot::Receiver<Result<Transcription, SttError>>, SttError> {
        if !self.is_idle() {
            return Err(SttError::Busy);
        }
        self.submit(samples, request, cancel)
    }
}

/// Cancels a job when dropped.
#[derive(Debug)]
pub struct CancelOnDrop(pub CancelFlag);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn load_context(name: &str, path: &Path) -> Result<WhisperContext, SttError> {
    if !path.is_file() {
        return Err(SttError::ModelMissing {
            name: name.to_owned(),
            path: path.to_owned(),
            pull: format!("whisper-{name}"),
        });
    }
    let path_str = path.to_string_lossy();
    // Flash attention never builds the attention matrix (1500 x 1500 x 6 heads in the 30 s
    // window): the state's encoder buffer is 17.7 MB instead of 64.8, its decoder buffer 6.4
    // instead of 20.7, and the whole-window decode of a doubtful command is much faster.
    // `cargo bench --bench wer` (70 clips): WER 9.9 -> 7.1 %, request -> transcript p95
    // 2.7 -> 0.7 s. whisper-rs defaults it off; whisper.cpp itself defaults it on.
    let mut params = WhisperContextParameters::default();
    params.flash_attn(true);
    WhisperContext::new_with_params(&*path_str, params).map_err(|err| SttError::ModelLoad {
        name: name.to_owned(),
        path: path.to_owned(),
        cause: err.to_string(),
        pull: format!("whisper-{name}"),
    })
}

struct Worker {
    /// Set when the engine is going away: queued jobs are skipped.
    stopping: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    stats: Arc<EngineStats>,
    contexts: Arc<HashMap<String, Arc<WhisperContext>>>,
    default: String,
    min_audio_ctx: usize,
    guided: Option<GuidedDecode>,
    states: HashMap<String, WhisperState>,
    /// Settings shared by every decode of this worker, abort callback included.
    base: FullParams<'static, 'static>,
    /// The cancel flag of the job being decoded, read by `base`'s abort callback.
    current: Arc<Mutex<CancelFlag>>,
}

impl Worker {
    fn new(
        in_flight: Arc<AtomicUsize>,
        stats: Arc<EngineStats>,
        contexts: Arc<HashMap<String, Arc<WhisperContext>>>,
        default: String,
        threads: usize,
        min_audio_ctx: usize,
        guided: Option<GuidedDecode>,
    ) -> Self {
        let mut base = command_params(threads);
        // Design: the abort callback is set once per worker and cloned into every decode.
        // whisper-rs 0.16 leaks the boxed closure of each `set_abort_callback_safe` call, and
        // reads it back as the closure's own type, which is only sound when that type is
        // `Box<dyn FnMut() -> bool>`. So: one boxed closure, reading whichever job is current.
        let current = Arc::new(Mutex::new(CancelFlag::default()));
        let flag = Arc::clone(&current);
        let abort: Box<dyn FnMut() -> bool> =
            Box::new(move || flag.lock().is_ok_and(|cancel| cancel.is_cancelled()));
        base.set_abort_callback_safe::<_, Box<dyn FnMut() -> bool>>(Some(abort));
        Self {
            stopping: Arc::default(),
            in_flight,
            stats,
            contexts,
            default,
            min_audio_ctx,
            guided,
            states: HashMap::new(),
            base,
            current,
        }
    }
}

/// whisper's settings shared by every decode of a spoken command, on `threads` threads: greedy,
/// no timestamps, no context from an earlier decode, nothing printed. Language, prompt, encoder
/// context, token cap, grammar, logits filter and abort callback are set per worker or decode.
pub fn command_params<'a, 'b>(threads: usize) -> FullParams<'a, 'b> {
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_n_threads(i32::try_from(threads).unwrap_or(1));
    params.set_print_special(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);
    params.set_no_timestamps(true);
    params.set_no_context(true);
    params.set_suppress_blank(true);
    // No temperature fallback: a command is a few words, greedy decoding at temperature 0 gets
    // them, and a fallback would decode the whole window again (and again) when whisper is
    // unsure, the moment the user is waiting. Repetition loops are bounded by max_tokens and
    // collapsed afterwards.
    params.set_temperature_inc(0.0);
    params
}

impl Worker {
    fn run(mut self, receiver: &Mutex<Receiver<Job>>) {
        // A decode is batch work; ggml's compute threads, started from here, inherit this.
        crate::priority::lower_current_thread();
        loop {
            // Holding the lock while waiting is fine: only idle workers wait on it.
            let job = match receiver.lock() {
                Ok(receiver) => receiver.recv(),
                Err(_) => return,
            };
            let Ok(job) = job else { return };
            if job.cancel.is_cancelled()
                || job.reply.is_closed()
                || self.stopping.load(Ordering::Relaxed)
            {
                debug!("skipping a cancelled whisper job");
                self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                self.in_flight.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            let started = Instant::now();
            let result = self.decode(&job);
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            let counter = match &result {
                Err(SttError::Cancelled) => {
                    debug!(took = ?started.elapsed(), "whisper job cancelled");
                    &self.stats.cancelled
                }
                Err(err) => {
                    // whisper.cpp's own line for this is dropped from the log (see telemetry).
                    error!(cause = %err, "whisper could not transcribe the audio");
                    &self.stats.completed
                }
                Ok(_) => &self.stats.completed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = job.reply.send(result);
        }
    }

    fn decode(&mut self, job: &Job) -> Result<Transcription, SttError> {
        let started = Instant::now();
        let name = job
            .request
            .model
            .clone()
            .unwrap_or_else(|| self.default.clone());
        let context = self
            .contexts
            .get(&name)
            .ok_or_else(|| SttError::Decode(format!("model {name} is not loaded")))?;
        let state = match self.states.entry(name.clone()) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let mut state = context.create_state().map_err(|err| {
                    SttError::Decode(format!("cannot create whisper state: {err}"))
                })?;
                state.set_attention_keys(ATTENTION_KEYS);
                entry.insert(state)
            }
        };

        let multilingual = context.is_multilingual();
        // A `'static` language string, from whisper's own table: checks the code too.
        let language: Option<&'static str> = match job.request.language.as_deref() {
            None | Some("auto") => None,
            Some(code) => Some(
                whisper_rs::get_lang_id(code)
                    .and_then(whisper_rs::get_lang_str)
                    .ok_or_else(|| SttError::UnknownLanguage(code.to_owned()))?,
            ),
        };
        // The prompt goes in as tokens: whisper-rs would leak a C string per decode otherwise.
        let prompt = job.request.prompt.replace('\0', " ");
        let tokens = if prompt.is_empty() {
            Vec::new()
        } else {
            // Never more tokens than bytes: tokenize it all, then keep what whisper takes (the
            // words come in order of importance).
            let mut tokens = context
                .tokenize(&prompt, prompt.len() + 1)
                .unwrap_or_default();
            tokens.truncate(MAX_PROMPT_TOKENS);
            tokens
        };
        let mut params: FullParams<'static, '_> = self.base.clone();
        match (language, multilingual) {
            (Some(language), true) => params.set_language(Some(language)),
            (None, true) => params.set_language(Some("auto")),
            (_, false) => params.set_language(Some("en")),
        }
        if !tokens.is_empty() {
            params.set_tokens(&tokens);
        }
        // Whisper can loop on a phrase ("fellow Americans. fellow Americans. ..."). Nobody says
        // more than ~6 tokens a second, so cap the output; loops within it are cut below.
        let seconds = job.samples.len() / WHISPER_RATE as usize;
        let max_tokens = i32::try_from(16 + 8 * seconds).unwrap_or(i32::MAX);
        params.set_max_tokens(max_tokens);
        if let Ok(mut current) = self.current.lock() {
            *current = job.cancel.clone();
        }
        params.set_logits_filter(Some(stop_loops(Arc::clone(context))));

        // whisper.cpp wants at least one second; pad short audio with silence.
        let min = WHISPER_RATE as usize + WHISPER_RATE as usize / 10;
        let padded;
        let samples: &[f32] = if job.samples.len() < min {
            let mut buf = job.samples.to_vec();
            buf.resize(min, 0.0);
            padded = buf;
            &padded
        } else {
            &job.samples
        };
        if samples.iter().all(|s| *s == 0.0) {
            // Nothing to hear: whisper would only hallucinate. The reference returns "".
            return Ok(Transcription {
                text: String::new(),
                segments: Vec::new(),
                language: language.unwrap_or("en").to_owned(),
                decode_time: started.elapsed(),
            });
        }
        let eot = context.token_eot();
        let audio_ctx = audio_ctx_for(job.samples.len(), self.min_audio_ctx);
        let mut decoded = decode_once(state, &params, samples, audio_ctx, None, eot, &job.cancel)?;
        // The context of the encoding the state holds (what [`rescore`] scores against).
        let mut encoded_ctx = audio_ctx;
        // A short encoder context is what makes short commands fast, and what makes tiny.en
        // loop or make words up now and then. When the decode of a short command (its context
        // padded up to the minimum) loops or whisper itself is unsure of its words, decode again
        // in a wider context ([`RETRY_AUDIO_CTX`], 10 s; the reference server always uses the
        // whole 30 s) and keep whichever whisper is surer of. Longer audio already has its own
        // length of context.
        let shortened = audio_ctx == self.min_audio_ctx && audio_ctx < FULL_AUDIO_CTX;
        if shortened && decoded.doubtful() {
            let first = decoded.summary();
            let retry_ctx = if audio_ctx < RETRY_AUDIO_CTX {
                RETRY_AUDIO_CTX
            } else {
                FULL_AUDIO_CTX
            };
            let again = decode_once(state, &params, samples, retry_ctx, None, eot, &job.cancel)?;
            encoded_ctx = retry_ctx;
            debug!(
                first,
                again = again.summary(),
                "decoded again in a wider context"
            );
            if again.score() > decoded.score() {
                decoded = again;
            }
        }
        // Not a command as the brain knows them: decode again biased towards the brain's
        // sentences and the cluster's names, and keep that if
        // whisper, judging the words without the grammar, finds them nearly as likely as the
        // free decode's ([`prefers_guided`]): a misheard name or word ("node bve", "Listor
        // containers"), not other speech bent into a command ("tell me a joke" guided to
        // "tell me agent 1 health" scores -6.5 a token against -0.6). Only words whisper is
        // very sure of are left unguided ([`SURE_LOGPROB`], -0.1): with flash attention whisper
        // is sure of misheard names too ("List oil containers." -0.31, "status unknown, pve"
        // -0.35), and guiding only below -0.35 left an earlier WER bench at 8.8 % on homelab
        // commands against 7.7 % guiding all (everyday sentences 2.1 % both).
        // First, whisper scores the grammar's sentences nearest to the words in spelling
        // ([`rescore`]): cheaper than the guided decode, and right where its beams lose the
        // sentence at a misheard first word ("Top nextcloud." is "Stop nextcloud."). The
        // guided decode runs when none is kept (it finds numbers: "Remove container 1 or 2." is
        // "... 102."). On the WER bench's 250 clips homelab WER went from 11.9 to 7.9 %,
        // everyday sentences stayed at 13.5 % (scoring 4 sentences instead of 6, with a margin
        // of 2.6: 8.5 %).
        if let (Some(grammar), Some(GuidedDecode { penalty, beams })) =
            (&job.request.grammar, self.guided)
        {
            let guide = decoded.wants_guidance() && !grammar.accepts(&decoded.text);
            let rescored = if guide && decoded.audio_ctx == encoded_ctx {
                rescore(context, state, &decoded, grammar)
            } else {
                None
            };
            if let Some(nearest) = rescored {
                decoded = nearest;
            } else if guide {
                let mut guided_params = params.clone();
                guided_params.set_grammar_rules(Some(Arc::clone(grammar.rules())));
                guided_params.set_start_rule(0);
                guided_params.set_grammar_penalty(penalty);
                let cap = decoded.tokens + GUIDED_EXTRA_TOKENS;
                guided_params
                    .set_max_tokens(i32::try_from(cap).unwrap_or(i32::MAX).min(max_tokens));
                if beams > 1 {
                    guided_params.set_beam_search(i32::try_from(beams).unwrap_or(1), -1.0);
                }
                guided_params.set_logits_filter(Some(hold_back_end(
                    Arc::clone(grammar),
                    Arc::clone(context),
                    penalty,
                )));
                // Beams that can no longer score what [`prefers_guided`] asks are not worth
                // finishing: whisper.cpp stops as soon as none can, and the free decode stands
                // (see [`guided_floor`]).
                let floor = Some(guided_floor(&decoded));
                let ctx = decoded.audio_ctx;
                let guided =
                    decode_once(state, &guided_params, samples, ctx, floor, eot, &job.cancel)?;
                let keep = !guided.abandoned && prefers_guided(&decoded, &guided, grammar);
                debug!(
                    free = decoded.summary(),
                    guided = guided.summary(),
                    abandoned = guided.abandoned,
                    keep,
                    "guided decode"
                );
                if keep {
                    decoded = guided;
                }
            }
        }
        if decoded.made_up() {
            info!(decode = decoded.summary(), "dropped words whisper made up");
            decoded.text.clear();
            decoded.segments.clear();
        }
        let language = if multilingual {
            whisper_rs::get_lang_str(state.full_lang_id_from_state())
                .unwrap_or("en")
                .to_owned()
        } else {
            "en".to_owned()
        };
        debug!(decode = decoded.summary(), took = ?started.elapsed(), "transcribed");
        let Decoded { text, segments, .. } = decoded;
        if text.is_empty() && job.samples.len() > WHISPER_RATE as usize {
            warn!(
                "whisper heard nothing in {:.1} s of audio",
                job.samples.len() as f32 / WHISPER_RATE as f32
            );
        }
        Ok(Transcription {
            text,
            segments,
            language,
            decode_time: started.elapsed(),
        })
    }
}

/// Encoder context for `samples` of 16 kHz audio: enough for the audio plus padding.
fn audio_ctx_for(samples: usize, min: usize) -> usize {
    let frames = samples.div_ceil(WHISPER_RATE as usize / AUDIO_CTX_PER_SECOND);
    (frames + AUDIO_CTX_PADDING).clamp(min, FULL_AUDIO_CTX)
}

/// One decode's result, with whisper's own view of how sure it is.
#[derive(Debug)]
struct Decoded {
    text: String,
    segments: Vec<String>,
    /// Mean log probability of the text tokens.
    avg_logprob: f32,
    /// How many text tokens whisper wrote (before loops were cut).
    tokens: usize,
    /// Whisper's probability that the window holds no speech.
    no_speech: f32,
    /// A phrase came back repeated and was cut.
    looped: bool,
    /// whisper stopped early: no decoder could reach the mean log probability asked for.
    abandoned: bool,
    audio_ctx: usize,
    /// How long whisper took.
    took: Duration,
}

impl Decoded {
    /// Whether the decode is worth doing again over the whole window.
    fn doubtful(&self) -> bool {
        self.looped || !self.text.is_empty() && self.avg_logprob < DOUBTFUL_LOGPROB
    }

    /// Whether a guided decode could correct these words: there are some, and whisper is not
    /// sure of them all ([`SURE_LOGPROB`]), or they looped.
    fn wants_guidance(&self) -> bool {
        !self.text.is_empty() && (self.looped || self.avg_logprob <= SURE_LOGPROB)
    }

    /// Which of two decodes to keep: whisper's confidence, less for a loop that had to be cut.
    fn score(&self) -> f32 {
        self.avg_logprob - if self.looped { 1.0 } else { 0.0 }
    }

    /// Whether whisper made words up: it is unsure of every word and finds speech unlikely
    /// (whisper.cpp's own rule, with a lower no-speech bar for a decode that was doubtful
    /// over both contexts).
    fn made_up(&self) -> bool {
        !self.text.is_empty()
            && self.avg_logprob < HALLUCINATION_LOGPROB
            && self.no_speech > HALLUCINATION_NO_SPEECH
    }

    fn summary(&self) -> String {
        format!(
            "ctx {} in {} ms, logprob {:.2} no-speech {:.2}{}: {:?}",
            self.audio_ctx,
            self.took.as_millis(),
            self.avg_logprob,
            self.no_speech,
            if self.looped { " looped" } else { "" },
            self.text
        )
    }
}

/// Runs whisper once with encoder context `audio_ctx` and reads the result. With
/// `abandon_below`, whisper stops as soon as no decoder can end with a mean log probability at
/// or above it (the result then says `abandoned`, and its mean is below it).
fn decode_once(
    state: &mut WhisperState,
    params: &FullParams<'static, '_>,
    samples: &[f32],
    audio_ctx: usize,
    abandon_below: Option<f32>,
    eot: i32,
    cancel: &CancelFlag,
) -> Result<Decoded, SttError> {
    let started = Instant::now();
    let mut params = params.clone();
    params.set_audio_ctx(i32::try_from(audio_ctx).unwrap_or(0));
    state.set_abandon_below(abandon_below);
    state.full(params, samples).map_err(|err| {
        if cancel.is_cancelled() {
            SttError::Cancelled
        } else {
            SttError::Decode(err.to_string())
        }
    })?;
    if cancel.is_cancelled() {
        return Err(SttError::Cancelled);
    }
    let mut segments = Vec::new();
    let (mut logprob, mut tokens) = (0.0f32, 0usize);
    let mut no_speech = 0.0f32;
    for segment in (0..state.full_n_segments()).filter_map(|i| state.get_segment(i)) {
        no_speech = no_speech.max(segment.no_speech_probability());
        for token in (0..segment.n_tokens()).filter_map(|i| segment.get_token(i)) {
            if token.token_id() < eot {
                logprob += token.token_data().plog;
                tokens += 1;
                tracing::trace!(token = ?token.to_str_lossy(), p = token.token_probability(), "token");
            }
        }
        if let Ok(text) = segment.to_str_lossy() {
            let text = text.trim();
            if !text.is_empty() {
                segments.push(text.to_owned());
            }
        }
    }
    let joined = segments.join(" ");
    let cleaned = clean(&joined);
    let (text, looped) = match sentence_twice(&cleaned) {
        // Whisper heard the whole sentence and said it again ([`stop_loops`] ends it there):
        // one copy is what was said. Decoding such a command again in a wider context gave
        // the same words for each of the 9 of 250 WER bench clips it happened to, at ~300 ms.
        Some(once) => (once, false),
        None => cut_loops(&cleaned),
    };
    // A cut loop or a removed annotation leaves the text unlike the segments.
    if text != joined {
        // The streamed chunks say what the transcript says.
        segments = if text.is_empty() {
            Vec::new()
        } else {
            vec![text.clone()]
        };
    }
    Ok(Decoded {
        text,
        segments,
        avg_logprob: if tokens == 0 {
            0.0
        } else {
            logprob / tokens as f32
        },
        no_speech,
        looped,
        abandoned: state.abandoned(),
        audio_ctx,
        tokens,
        took: started.elapsed(),
    })
}

/// A logits filter for the guided decode. whisper.cpp's grammar never holds back the end of the
/// text, so where the audio disagrees with the grammar ("node BBE" for "node pve") the decode
/// stops short ("What is the status of node"): while the words so far are an unfinished sentence
/// of the grammar, end-of-text gets the grammar's penalty like any other token outside it.
pub fn hold_back_end(
    grammar: Arc<SpeechGrammar>,
    context: Arc<WhisperContext>,
    penalty: f32,
) -> Box<whisper_rs::LogitsFilterFn> {
    let eot = context.token_eot();
    Box::new(move |tokens, logits| {
        let mut bytes = Vec::new();
        for token in tokens.iter().filter(|t| t.id < eot) {
            if let Ok(piece) = context.token_to_bytes(token.id) {
                bytes.extend_from_slice(piece);
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if grammar.unfinished(&text) {
            if let Some(logit) = usize::try_from(eot).ok().and_then(|i| logits.get_mut(i)) {
                *logit -= penalty;
            }
        }
    })
}

/// A logits filter that ends a decode once it has said a sentence twice in full: at a short
/// encoder context whisper often reads the audio again instead of ending ("Tell me a joke.
/// Tell me a joke. Tell me a ..." up to `max_tokens`). Then only end-of-text is left, and
/// [`cut_loops`] keeps one copy, as it would of the whole loop.
fn stop_loops(context: Arc<WhisperContext>) -> Box<whisper_rs::LogitsFilterFn> {
    let eot = context.token_eot();
    Box::new(move |tokens, logits| {
        let text: Vec<i32> = tokens.iter().map(|t| t.id).filter(|&id| id < eot).collect();
        let ends_sentence = |id: i32| {
            context.token_to_bytes(id).is_ok_and(|piece| {
                piece.ends_with(b".") || piece.ends_with(b"?") || piece.ends_with(b"!")
            })
        };
        if said_twice(&text, ends_sentence) {
            for (i, logit) in logits.iter_mut().enumerate() {
                if i32::try_from(i).ok() != Some(eot) {
                    *logit = f32::NEG_INFINITY;
                }
            }
        }
    })
}

/// Whether `tokens` are a sentence of two tokens or more (its last token `ends_sentence`),
/// twice.
fn said_twice(tokens: &[i32], ends_sentence: impl Fn(i32) -> bool) -> bool {
    let half = tokens.len() / 2;
    tokens.len() % 2 == 0
        && half >= 2
        && tokens[..half] == tokens[half..]
        && ends_sentence(tokens[half - 1])
}

/// The sentence of `text` when `text` is that sentence twice, word for word (case and
/// punctuation included), and it ends a sentence: "Show me all my containers. Show me all my
/// containers." Not a phrase within a sentence ("kill media-server, kill media-server,").
fn sentence_twice(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (first, second) = words.split_at(words.len() / 2);
    (first.len() >= 2
        && first == second
        && first.last().is_some_and(|w| w.ends_with(['.', '?', '!'])))
    .then(|| first.join(" "))
}

/// The lowest mean log probability a guided decode may have and be kept over `free`
/// ([`prefers_guided`]). whisper.cpp abandons a guided decode once no beam can reach it (with
/// every token's log probability at most 0, a beam's mean can only fall towards its sum over
/// the most tokens it may write), so abandoning one changes no transcript: it only ends the
/// search for a sentence that would not be kept, mostly for speech outside the homelab.
fn guided_floor(free: &Decoded) -> f32 {
    (free.score() - GUIDED_MARGIN).max(GUIDED_FLOOR)
}

/// Whether to keep the guided decode over the free one: the grammar accepts it, it does not
/// loop, it keeps at least [`GUIDED_MIN_WORDS`] of the free decode's words and is not just
/// their beginning ([`cut_short`]), and its mean log probability is at most
/// [`GUIDED_MARGIN`] below the free decode's and above [`GUIDED_FLOOR`]. With a grammar,
/// whisper.cpp scores each token as whisper found it before the grammar, less any penalty the
/// token was given (JARVIS-PATCH in vendor/whisper-rs-sys), so the two compare; renormalised over
/// what the grammar allows, as upstream scores them, the guided words would be flattered ("4
/// status" scores -0.22 so, -7.2 as whisper found it).
fn prefers_guided(free: &Decoded, guided: &Decoded, grammar: &SpeechGrammar) -> bool {
    !guided.looped
        && word_for_word(&free.text, &guided.text)
        && grammar.accepts(&guided.text)
        && guided.avg_logprob >= guided_floor(free)
}

/// Whether `corrected` could be `free` with misheard words corrected: it keeps at least
/// [`GUIDED_MIN_WORDS`] of its words and is not its first words only ([`cut_short`]).
fn word_for_word(free: &str, corrected: &str) -> bool {
    let words = |text: &str| text.split_whitespace().count() as f32;
    words(corrected) >= words(free) * GUIDED_MIN_WORDS && !cut_short(free, corrected)
}

/// The grammar's sentences nearest to `text` in spelling, within about two letters in five (a
/// sound or two misheard per word).
fn nearest_sentences(grammar: &SpeechGrammar, text: &str) -> Vec<super::grammar::Near> {
    let letters = text.chars().filter(|c| c.is_alphanumeric()).count();
    grammar.nearest(text, NEAREST_KEEP, (letters * 2 / 5).max(2))
}

/// The grammar's sentence nearest to the free decode's words that whisper, scoring it on the
/// audio it just decoded, finds nearly as likely as those words ([`NEAREST_MARGIN`]): a
/// misheard command ("Top nextcloud." is "Stop nextcloud.", "Half-oil is the local storage."
/// is "How full is ..."). `None` when there is none, or the state cannot score (the guided
/// decode then runs as before).
///
/// A guided decode searches the grammar a token at a time, and its beams leave a sentence
/// whose first word whisper heard otherwise ("Stop" after "Top") for others it finds more
/// likely there, ending in words the audio does not hold ("The first one."). Here whole
/// sentences are scored, the free decode's words and the few sentences nearest to them,
/// together: the prompt and the encoding are reused, a beginning several share is decoded
/// once, and each of the decoder's passes takes tokens of several sentences.
fn rescore(
    context: &WhisperContext,
    state: &mut WhisperState,
    free: &Decoded,
    grammar: &SpeechGrammar,
) -> Option<Decoded> {
    let started = Instant::now();
    let mut near = nearest_sentences(grammar, &free.text);
    // At the start of speech whisper writes a word that sounds like a digit as the digit
    // ("4-stop frigate." for "Force stop frigate."): look for it as the word too.
    let spelled = spell_digits(&free.text);
    if spelled != free.text {
        for other in nearest_sentences(grammar, &spelled) {
            if near.iter().all(|n| n.text != other.text) {
                near.push(other);
            }
        }
    }
    if near.is_empty() {
        return None;
    }
    let found = started.elapsed();
    // The free decode's end: whisper heard a question, or not.
    let end = free
        .text
        .chars()
        .last()
        .filter(|c| matches!(c, '.' | '?' | '!'))
        .unwrap_or('.');
    // Each sentence begins in the case whisper began its own words in: the question is which
    // words it heard, and a capital it did not write costs a sentence ~0.5 a token ("reboot
    // container 1.02." scored "Remove container 102." above "Reboot container 102.").
    let lower = free.text.starts_with(char::is_lowercase);
    let written = |text: &str| -> String {
        let mut chars = text.chars();
        match chars.next() {
            Some(first) if lower => first.to_lowercase().chain(chars).collect(),
            _ => text.to_owned(),
        }
    };
    // The free decode's words first, then each sentence; all scored in one go (whisper decodes
    // a beginning they share once).
    let texts: Vec<String> = std::iter::once(free.text.clone())
        .chain(near.iter().map(|n| format!("{}{end}", written(&n.text))))
        .collect();
    let tokens = texts
        .iter()
        .map(|text| context.tokenize(&format!(" {text}"), 4 * text.len() + 8))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let sentences: Vec<&[WhisperTokenId]> = tokens.iter().map(Vec::as_slice).collect();
    let scores = state.score_sentences(&sentences).ok()?;
    // Whisper's mean log probability of each text: its tokens and end-of-text.
    let mean = |logprobs: &[f32]| logprobs.iter().sum::<f32>() / logprobs.len().max(1) as f32;
    let own = mean(scores.first()?);
    let mut best: Option<(&String, f32, usize)> = None;
    for ((text, logprobs), tokens) in texts.iter().zip(&scores).zip(&tokens).skip(1) {
        let mean = mean(logprobs);
        if best.as_ref().is_none_or(|(_, b, _)| mean > *b) {
            best = Some((text, mean, tokens.len()));
        }
    }
    let (text, mean, tokens) = best?;
    let text = text.clone();
    let keep = mean >= own - NEAREST_MARGIN && word_for_word(&free.text, &text);
    debug!(
        free = %free.text,
        own,
        nearest = ?near.iter().map(|n| (&n.text, n.cost)).collect::<Vec<_>>(),
        best = %text,
        mean,
        keep,
        took_ms = started.elapsed().as_millis(),
        found_ms = found.as_millis(),
        "nearest sentences scored"
    );
    keep.then(|| Decoded {
        segments: vec![text.clone()],
        tokens,
        text,
        avg_logprob: mean,
        no_speech: free.no_speech,
        looped: false,
        abandoned: false,
        audio_ctx: free.audio_ctx,
        took: free.took + started.elapsed(),
    })
}

/// `text` with a lone digit at its start written as its word ("4-stop" is "four-stop"): where
/// whisper writes a word that sounds like one. Digits elsewhere are numbers ("the m1o4").
fn spell_digits(text: &str) -> String {
    const WORDS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let start = text.len() - text.trim_start().len();
    let mut rest = text[start..].chars();
    let (Some(first), next) = (rest.next(), rest.clone().next()) else {
        return text.to_owned();
    };
    match first.to_digit(10).and_then(|d| WORDS.get(d as usize)) {
        Some(word) if !next.is_some_and(|c| c.is_ascii_digit()) => {
            format!("{}{word}{}", &text[..start], rest.as_str())
        }
        _ => text.to_owned(),
    }
}

/// Whether `guided` is only the first words of `free` (the case and punctuation aside): the
/// grammar's sentence ended where the speech went on ("Restart the media-server container."
/// guided to "Restart the media-server"; "How much memory is media-server using on pve?" to
/// "... using"), which is no correction. On the whole WER corpus (1362 clips) 17 guided decodes
/// were kept so, each losing words the free decode had right; leaving them out took homelab WER
/// from 21.2 to 20.6 % (as this reckons it: it normalises less than the bench).
fn cut_short(free: &str, guided: &str) -> bool {
    let words = |text: &str| -> Vec<String> {
        text.split_whitespace()
            .map(bare)
            .filter(|w| !w.is_empty())
            .collect()
    };
    let (free, guided) = (words(free), words(guided));
    guided.len() < free.len() && free.starts_with(&guided)
}

/// A word compared for repetition: lower case, without punctuation.
fn bare(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

/// Cuts repetition loops: a phrase said again right after itself ("start VM 101 start VM 101
/// start VM"), however long, is kept once, with any unfinished start of it that follows;
/// a word said three times or more in a row is kept once. People repeat a word twice ("no,
/// no") and so does this; they do not repeat a whole phrase word for word. Returns the text
/// and whether anything was cut.
fn cut_loops(text: &str) -> (String, bool) {
    let mut words: Vec<&str> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut cut = false;
    // A loop inside one hyphenated word ("lite-off-lite-off-lite-off-lite"): once, as below.
    let unhyphened: Vec<String> = text
        .split_whitespace()
        .map(|word| match cut_hyphen_loop(word) {
            Some(once) => {
                cut = true;
                once
            }
            None => word.to_owned(),
        })
        .collect();
    // A word three times or more in a row: once (as its last copy is written).
    let all: Vec<&str> = unhyphened.iter().map(String::as_str).collect();
    let mut at = 0;
    while at < all.len() {
        let key = bare(all[at]);
        let run = all[at..].iter().take_while(|w| bare(w) == key).count();
        if run >= 3 && !key.is_empty() {
            words.push(all[at + run - 1]);
            keys.push(key);
            cut = true;
        } else {
            words.extend(&all[at..at + run]);
            keys.extend(std::iter::repeat_n(key, run));
        }
        at += run;
    }
    let mut i = 0;
    while i + 1 < words.len() {
        let mut changed = false;
        // The longest phrase of two words or more starting here that comes again right after.
        for n in (2..=(words.len() - i) / 2).rev() {
            if keys[i..i + n] != keys[i + n..i + 2 * n] || keys[i].is_empty() {
                continue;
            }
            // Drop every further copy, then an unfinished copy at the end.
            let mut end = i + n;
            while end + n <= words.len() && keys[end..end + n] == keys[i..i + n] {
                end += n;
            }
            let rest = words.len() - end;
            if rest < n && rest > 0 && keys[end..] == keys[i..i + rest] {
                end = words.len();
            }
            // Keep the punctuation of the last copy ("fellow Americans." not "Americans,").
            let last = words[end - 1];
            words.drain(i + n..end);
            keys.drain(i + n..end);
            if let Some(kept) = words.get_mut(i + n - 1) {
                if bare(kept) == bare(last) {
                    *kept = last;
                }
            }
            cut = true;
            changed = true;
            break;
        }
        if !changed {
            i += 1;
        }
    }
    (words.join(" "), cut)
}

/// A hyphenated word that ends in a loop of its parts, with the loop once: a run of two parts
/// or more said again right after itself ("lite-off-lite-off-lite-off-lite" is "lite-off"), or
/// one part three times or more ("non-f-f-f-f-f-" is "non-f"); whisper writes such loops when
/// it hears noise. The last copy may be unfinished. Words people hyphenate ("bye-bye",
/// "well-to-do", "media-server") are left as they are. `None` when there is nothing to cut.
fn cut_hyphen_loop(word: &str) -> Option<String> {
    // The punctuation the word ends with stays; a hyphen it ends with goes.
    let body = word.trim_end_matches(|c: char| !c.is_alphanumeric());
    let tail = word[body.len()..].trim_start_matches('-');
    let parts: Vec<&str> = body.split('-').collect();
    if parts.len() < 3 {
        return None;
    }
    let keys: Vec<String> = parts.iter().map(|p| bare(p)).collect();
    if keys.iter().any(String::is_empty) {
        return None;
    }
    // The earliest loop that runs to the end, its shortest phrase first.
    for from in 0..parts.len() {
        for n in 1..=(parts.len() - from) / 2 {
            let copies = (parts.len() - from) / n;
            if copies < if n == 1 { 3 } else { 2 } {
                continue;
            }
            if (from + n..parts.len()).all(|i| keys[i] == keys[from + (i - from) % n]) {
                let mut once = parts[..from + n].join("-");
                once.push_str(tail);
                return Some(once);
            }
        }
    }
    None
}

/// Removes whisper's non-speech annotations such as `[BLANK_AUDIO]` or `(wind blowing)`.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoder_context_follows_the_audio_length() {
        assert_eq!(audio_ctx_for(2 * 16_000, 320), 320);
        assert_eq!(audio_ctx_for(10 * 16_000, 320), 500 + AUDIO_CTX_PADDING);
        assert_eq!(audio_ctx_for(60 * 16_000, 320), FULL_AUDIO_CTX);
        assert_eq!(audio_ctx_for(2 * 16_000, FULL_AUDIO_CTX), FULL_AUDIO_CTX);
    }

    #[test]
    fn a_decode_that_said_its_sentence_twice_is_ended() {
        let dot = |id: i32| id == 9;
        assert!(said_twice(&[1, 2, 9, 1, 2, 9], dot));
        assert!(!said_twice(&[1, 2, 9, 1, 2], dot), "not yet in full");
        assert!(
            !said_twice(&[1, 2, 3, 1, 2, 3], dot),
            "no sentence end: may go on"
        );
        assert!(!said_twice(&[9, 9], dot), "one token");
        assert!(!said_twice(&[1, 2, 9, 4, 5, 9], dot), "another sentence");
        assert!(!said_twice(&[], dot));
    }

    #[test]
    fn only_words_whisper_is_unsure_of_or_that_looped_are_guided() {
        let decoded = |text: &str, avg_logprob: f32, looped: bool| Decoded {
            text: text.to_owned(),
            segments: Vec::new(),
            avg_logprob,
            no_speech: 0.0,
            looped,
            abandoned: false,
            audio_ctx: 320,
            tokens: 8,
            took: Duration::ZERO,
        };
        assert!(!decoded("Turn on the kitchen lights.", -0.08, false).wants_guidance());
        assert!(!decoded("Are there any problems with a cluster?", -0.05, false).wants_guidance());
        assert!(decoded("Is any note offline?", -0.18, false).wants_guidance());
        assert!(decoded("List oil containers.", -0.31, false).wants_guidance());
        assert!(decoded("Is frigate stop.", -0.34, false).wants_guidance());
        assert!(decoded("Tell me a joke.", -0.05, true).wants_guidance());
        assert!(!decoded("", -2.0, false).wants_guidance());
    }

    #[test]
    fn unsure_words_where_whisper_hears_no_speech_are_made_up() {
        let decoded = |text: &str, avg_logprob: f32, no_speech: f32| Decoded {
            text: text.to_owned(),
            segments: Vec::new(),
            avg_logprob,
            no_speech,
            looped: false,
            abandoned: false,
            audio_ctx: 320,
            tokens: 8,
            took: Duration::ZERO,
        };
        // "Two non-nye of his life." for a short command: unsure, and likely no speech.
        assert!(decoded("Two non-nye of his life.", -1.4, 0.5).made_up());
        // Unsure words in speech, or sure words, stay.
        assert!(!decoded("Is mestor-inch filling up?", -1.05, 0.0).made_up());
        assert!(!decoded("Thank you.", -0.3, 0.8).made_up());
        assert!(!decoded("", -2.0, 0.9).made_up());
    }

    #[test]
    fn a_guided_decode_that_only_drops_the_last_words_is_cut_short() {
        assert!(cut_short(
            "Restart the media-server container.",
            "Restart the media-server"
        ));
        assert!(cut_short(
            "How much memory is media-server using on pve?",
            "How much memory is media-server using."
        ));
        // Corrections, not cuts.
        assert!(!cut_short("Is frigate stop.", "Is frigate stopped."));
        assert!(!cut_short(
            "Which gets us off.",
            "Which guests are stopped?"
        ));
        assert!(!cut_short("Start the dishwasher.", "Start the dishwasher."));
        assert!(!cut_short(
            "What's the status on the agent 1?",
            "What's the status of agent 1?"
        ));
    }

    #[test]
    fn a_digit_that_begins_the_words_is_spelled_and_numbers_kept() {
        assert_eq!(spell_digits("4-stop frigate."), "four-stop frigate.");
        assert_eq!(spell_digits(" 2 the vm"), " two the vm");
        assert_eq!(spell_digits("Power off the m1o4."), "Power off the m1o4.");
        assert_eq!(spell_digits("101 status"), "101 status");
        assert_eq!(spell_digits("Start nextcloud."), "Start nextcloud.");
    }

    #[test]
    fn a_sentence_said_twice_is_one_sentence() {
        assert_eq!(
            sentence_twice("Show me all my containers. Show me all my containers."),
            Some("Show me all my containers.".to_owned())
        );
        assert_eq!(
            sentence_twice("What time is it? What time is it?"),
            Some("What time is it?".to_owned())
        );
        // A phrase within a sentence, a single word, or copies that differ are other loops.
        assert_eq!(
            sentence_twice("kill media-server, kill media-server,"),
            None
        );
        assert_eq!(sentence_twice("Stop. Stop."), None);
        assert_eq!(
            sentence_twice("Power cycle, nextcloud. Power cycle next cloud."),
            None
        );
        assert_eq!(sentence_twice("Start nextcloud."), None);
        assert_eq!(sentence_twice(""), None);
    }

    #[test]
    fn loops_are_cut_to_one_copy() {
        let cut = |t: &str| cut_loops(t);
        assert_eq!(
            cut("And so my fellow Americans. And so my fellow Americans."),
            ("And so my fellow Americans.".into(), true)
        );
        assert_eq!(
            cut("Start VM 101. Start VM 101. Start VM 101. Start VM 101. Start VM"),
            ("Start VM 101.".into(), true)
        );
        assert_eq!(
            cut("What is the status What is the status of node pve?"),
            ("What is the status of node pve?".into(), true)
        );
        assert_eq!(cut("the the the the"), ("the".into(), true));
        assert_eq!(cut("No, no, stop it."), ("No, no, stop it.".into(), false));
        assert_eq!(cut("Yes. No. Yes."), ("Yes. No. Yes.".into(), false));
        assert_eq!(
            cut("turn on the light"),
            ("turn on the light".into(), false)
        );
        assert_eq!(cut(""), (String::new(), false));
    }

    #[test]
    fn loops_inside_a_hyphenated_word_are_cut_to_one_copy() {
        // Heard on the WER bench (espeak-ng in babble noise, encoder context 288).
        assert_eq!(
            cut_loops("If agent1, ha, lite-off-lite-off-lite-off-lite-off-lite-off-lite"),
            ("If agent1, ha, lite-off".into(), true)
        );
        assert_eq!(cut_loops("no-no-no."), ("no.".into(), true));
        // Heard on the whole WER corpus at context 320 (espeak-ng's f3 voice).
        assert_eq!(
            cut_loops("If agent1, hah, non-f-f-f-f-f-f-f-f-f-f-f-f-"),
            ("If agent1, hah, non-f".into(), true)
        );
        assert_eq!(
            cut_loops("Say bye-bye to media-server."),
            ("Say bye-bye to media-server.".into(), false)
        );
        assert_eq!(
            cut_loops("a well-to-do local-lvm-local"),
            ("a well-to-do local-lvm-local".into(), false)
        );
        assert_eq!(cut_loops("lite-off-lite"), ("lite-off-lite".into(), false));
    }

    #[test]
    fn annotations_are_removed() {
        assert_eq!(clean(" [BLANK_AUDIO] "), "");
        assert_eq!(clean("Start VM 101. (coughs)"), "Start VM 101.");
        assert_eq!(clean("hello  world"), "hello world");
    }
}
