//! Wake word: openWakeWord models on ONNX Runtime, behind Wyoming `detect`.
//!
//! - [`models`]: which wake words there are (every classifier in the wake-word folder).
//! - [`pipeline`]: melspectrogram → embedding → classifiers, step by step, as the reference.
//! - [`streaming`]: the embedding model rewritten to compute only what each step adds.
//! - [`detector`]: threshold, trigger level and refractory period.
//! - [`engine`]: the worker threads and their sessions, shared by every stream.
//! - [`flow`]: one `detect` exchange on a Wyoming connection.
//! - [`route`]: a stream routed over `[[wake.backends]]`, with failover.

pub(crate) mod detector;
pub(crate) mod engine;
pub mod flow;
pub mod models;
pub(crate) mod pipeline;
pub mod route;
pub(crate) mod streaming;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::{info, warn};
use wyoming::info::{Attribution, WakeModel, WakeProgram};

use crate::config::{Config, WakeConfig};
use detector::Settings;
use engine::Engine;
pub use engine::EngineStats;
pub use models::WakeWord;
use pipeline::{Embedder, Frontend, STEP_SAMPLES, Sessions};

/// Mel frames per embedding step (openWakeWord: 8 frames of 10 ms).
const EMBEDDING_HOP: usize = 8;
/// The shared feature models, with the `jarvis models pull` names that install them.
const MEL_MODEL: (&str, &str) = ("melspectrogram.onnx", "wake-melspectrogram");
const EMBEDDING_MODEL: (&str, &str) = ("embedding_model.onnx", "wake-embedding_model");
/// The wake word a fresh install gets.
const DEFAULT_WAKE_WORD_PULL: &str = "wake-hey_jarvis_v0.1";

/// Everything that can go wrong with the wake word.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WakeError {
    /// ONNX Runtime could not be loaded.
    #[error(
        "cannot load ONNX Runtime from {path} ({cause}): install it with `scripts/bootstrap.sh` \
         or point tts.onnxruntime at libonnxruntime.so (version 1.24); the wake word and \
         text-to-speech share it"
    )]
    Runtime {
        /// The library file.
        path: PathBuf,
        /// Why.
        cause: String,
    },
    /// A feature model is not there.
    #[error(
        "openWakeWord model {path} not found: download it with `jarvis models pull {pull}`, \
         point wake.dir at the folder that has it, or set wake.enabled = false"
    )]
    ModelMissing {
        /// Where it was looked for.
        path: PathBuf,
        /// The `jarvis models pull` name that installs it.
        pull: String,
    },
    /// A model is there but does not load.
    #[error("cannot load openWakeWord model {path} ({cause}){fix}")]
    ModelLoad {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: String,
        /// What to do, when known.
        fix: String,
    },
    /// No wake word at all.
    #[error(
        "no wake word models in {dir}: download one with `jarvis models pull {pull}` (or put an \
         openWakeWord .onnx model there), or set wake.enabled = false"
    )]
    NoWakeWords {
        /// The wake-word folder.
        dir: PathBuf,
        /// The `jarvis models pull` name of the default wake word.
        pull: String,
    },
    /// Bad settings.
    #[error("{0}")]
    Config(String),
    /// `detect` named only wake words this server does not have.
    #[error("unknown wake word {requested:?}; this server has {known:?}")]
    UnknownWakeWord {
        /// What was asked for.
        requested: Vec<String>,
        /// What there is.
        known: Vec<String>,
    },
    /// Detection failed.
    #[error("wake word detection failed: {0}")]
    Failed(String),
}

impl WakeError {
    /// The `code` of the Wyoming `error` event.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownWakeWord { .. } => "unknown-wake-word",
            _ => "wake-failed",
        }
    }
}

/// Numbers about the streams being served, for tests and `/health`-style checks.
#[derive(Debug, Default)]
pub struct WakeStats {
    /// Streams listening now.
    pub streams: AtomicUsize,
    /// The most 16 kHz samples any stream has held waiting for a worker.
    pub peak_pending_samples: AtomicUsize,
    /// The most bytes any stream's front-end state has taken.
    pub peak_state_bytes: AtomicUsize,
}

/// The wake-word service: wake words on disk, the worker pool, settings. Shared by every
/// connection.
#[derive(Debug)]
pub struct WakeService {
    words: Vec<WakeWord>,
    engine: Engine,
    stats: WakeStats,
    config: WakeConfig,
}

impl WakeService {
    /// Loads ONNX Runtime and the models, checks the incremental embedder, starts the workers.
    ///
    /// # Errors
    /// A missing runtime or model, named with the fix.
    pub fn load(config: &Config) -> Result<Self, WakeError> {
        let wake = &config.wake;
        let runtime = config.models.dir.join(&config.tts.onnxruntime);
        crate::onnx::init_runtime(&runtime).map_err(|cause| WakeError::Runtime {
            path: runtime.clone(),
            cause,
        })?;
        let dir = config.models.dir.join(&wake.dir);
        let mel = read_model(&dir, MEL_MODEL)?;
        let embedding = read_model(&dir, EMBEDDING_MODEL)?;
        let model_error = |file: &str, cause: String, pull: &str| WakeError::ModelLoad {
            path: dir.join(file),
            cause,
            fix: format!("; download it again with `jarvis models pull {pull} --force`"),
        };
        let input = streaming::input_dims(&embedding)
            .map_err(|cause| model_error(EMBEDDING_MODEL.0, cause, EMBEDDING_MODEL.1))?;
        let output = streaming::output_dims(&embedding)
            .map_err(|cause| model_error(EMBEDDING_MODEL.0, cause, EMBEDDING_MODEL.1))?;
        let (window, bins, dim) = match (&input[..], output.last()) {
            (&[_, window, bins, 1], Some(&dim)) if window > 0 && bins > 0 && dim > 0 => {
                (window as usize, bins as usize, dim)
            }
            _ => {
                return Err(model_error(
                    EMBEDDING_MODEL.0,
                    format!("input {input:?} / output {output:?} is not openWakeWord's"),
                    EMBEDDING_MODEL.1,
                ));
            }
        };

        let extra: Vec<PathBuf> = wake
            .extra_models
            .iter()
            .map(|path| config.models.dir.join(path))
            .collect();
        let (found, problems) = models::discover(&dir, &extra);
        for problem in problems {
            warn!(%problem, "skipping a wake word model");
        }
        let mut words = Vec::new();
        let mut classifiers = Vec::new();
        for word in found {
            match read_classifier(&word.path, dim) {
                Ok((bytes, frames)) => {
                    words.push(word);
                    classifiers.push((bytes, frames));
                }
                Err(cause) => {
                    warn!(path = %word.path.display(), %cause, "skipping a wake word model")
                }
            }
        }
        if words.is_empty() {
            return Err(WakeError::NoWakeWords {
                dir: dir.clone(),
                pull: DEFAULT_WAKE_WORD_PULL.into(),
            });
        }

        let embedder = match streaming::rewrite(&embedding, EMBEDDING_HOP) {
            Ok(model) => Embedder::Streaming(model),
            Err(problem) => {
                warn!(%problem, "the embedding model cannot run incrementally; using it whole");
                Embedder::Full
            }
        };
        let session = |bytes: &[u8], file: &Path| {
            crate::onnx::single_thread_session(bytes).map_err(|cause| WakeError::ModelLoad {
                path: file.to_owned(),
                cause,
                fix: String::new(),
            })
        };
        let embedding_bytes = |embedder: &Embedder| match embedder {
            Embedder::Streaming(model) => model.model.clone(),
            Embedder::Full => embedding.clone(),
        };
        let make_sessions = |embedder: &Embedder| -> Result<Sessions, WakeError> {
            Ok(Sessions {
                mel: session(&mel, &dir.join(MEL_MODEL.0))?,
                embedding: session(&embedding_bytes(embedder), &dir.join(EMBEDDING_MODEL.0))?,
                classifiers: classifiers
                    .iter()
                    .zip(&words)
                    .map(|((bytes, _), word)| session(bytes, &word.path))
                    .collect::<Result<_, _>>()?,
            })
        };
        let started = std::time::Instant::now();
        let mut first = make_sessions(&embedder)?;
        let full = match embedder {
            Embedder::Streaming(_) => Some(session(&embedding, &dir.join(EMBEDDING_MODEL.0))?),
            Embedder::Full => None,
        };
        let frames = classifiers.iter().map(|(_, frames)| *frames).collect();
        let (frontend, _) = Frontend::new(&mut first, embedder, full, window, bins, frames)
            .map_err(|cause| model_error(EMBEDDING_MODEL.0, cause, EMBEDDING_MODEL.1))?;
        let workers = wake.worker_count();
        let mut sessions = vec![first];
        for _ in 1..workers {
            sessions.push(make_sessions(&frontend.embedder)?);
        }
        let settings = Settings::new(wake.threshold, wake.trigger_level, wake.refractory_secs);
        let streaming = frontend.is_streaming();
        let engine = Engine::start(
            Arc::new(frontend),
            sessions,
            settings,
            config.wyoming.max_connections,
        )
        .map_err(WakeError::Config)?;
        info!(
            words = ?words.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
            workers,
            incremental = streaming,
            took = ?started.elapsed(),
            "wake word models loaded"
        );
        Ok(Self {
            words,
            engine,
            stats: WakeStats::default(),
            config: wake.clone(),
        })
    }

    /// The wake words, sorted by name.
    pub fn words(&self) -> &[WakeWord] {
        &self.words
    }

    /// The settings.
    pub fn config(&self) -> &WakeConfig {
        &self.config
    }

    /// Streams and buffers.
    pub fn stats(&self) -> &WakeStats {
        &self.stats
    }

    /// Work done by the workers.
    pub fn engine_stats(&self) -> &EngineStats {
        self.engine.stats()
    }

    /// Whether embeddings are computed incrementally (false only when the embedding model did
    /// not pass the check at start-up).
    pub fn is_incremental(&self) -> bool {
        self.engine.frontend().is_streaming()
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The wake words a `detect` asks for: all of them for none or an empty list; unknown names
    /// are dropped (logged) as long as one known name is left.
    ///
    /// # Errors
    /// [`WakeError::UnknownWakeWord`] when no requested name is known.
    pub fn select(&self, names: Option<&[String]>) -> Result<Vec<usize>, WakeError> {
        let names: Vec<&String> = names
            .unwrap_or_default()
            .iter()
            .filter(|n| !n.trim().is_empty())
            .collect();
        if names.is_empty() {
            return Ok((0..self.words.len()).collect());
        }
        let mut selected = Vec::new();
        let mut unknown = Vec::new();
        for name in &names {
            match self.words.iter().position(|w| w.answers_to(name)) {
                Some(index) if !selected.contains(&index) => selected.push(index),
                Some(_) => {}
                None => unknown.push((*name).clone()),
            }
        }
        if selected.is_empty() {
            return Err(WakeError::UnknownWakeWord {
                requested: unknown,
                known: self.words.iter().map(|w| w.name.clone()).collect(),
            });
        }
        if !unknown.is_empty() {
            warn!(
                ?unknown,
                "detect names unknown wake words; listening for the others"
            );
        }
        Ok(selected)
    }

    /// Scores every step of 16 kHz audio (int16 magnitudes) for `words`, as a fresh stream
    /// would see them: one list of scores per word. For tests and benchmarks.
    ///
    /// # Errors
    /// [`WakeError::Failed`].
    pub async fn scores(
        &self,
        samples: &[f32],
        words: &[usize],
    ) -> Result<Vec<Vec<f32>>, WakeError> {
        let steps = samples.len() / STEP_SAMPLES;
        let stream = self.engine.stream(words, true);
        let whole = samples
            .get(..steps * STEP_SAMPLES)
            .unwrap_or_default()
            .to_vec();
        let receiver = self
            .engine
            .submit(stream, whole)
            .map_err(|refused| WakeError::Failed(refused.why.into()))?;
        let done = receiver
            .await
            .map_err(|_| WakeError::Failed("worker gone".into()))?;
        if let Some(err) = done.error {
            return Err(WakeError::Failed(err));
        }
        let recorded = done.stream.scores.unwrap_or_default();
        let per_word = words.len().max(1);
        Ok((0..words.len())
            .map(|w| recorded.iter().skip(w).step_by(per_word).copied().collect())
            .collect())
    }

    /// The `wake` program for `info`: every wake word.
    pub fn program(&self) -> WakeProgram {
        let models = self
            .words
            .iter()
            .map(|word| WakeModel {
                name: word.name.clone(),
                attribution: Attribution::new(
                    "openWakeWord",
                    "https://github.com/dscripka/openWakeWord",
                ),
                installed: true,
                description: Some(word.phrase.clone()),
                version: word.version.clone(),
                languages: word.languages.clone(),
                phrase: Some(word.phrase.clone()),
            })
            .collect();
        WakeProgram {
            name: "jarvis-openwakeword".into(),
            attribution: Attribution::new("Jarvis", env!("CARGO_PKG_REPOSITORY")),
            installed: true,
            description: Some("Jarvis wake word (openWakeWord)".into()),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            models,
        }
    }
}

fn read_model(dir: &Path, (file, pull): (&str, &str)) -> Result<Vec<u8>, WakeError> {
    let path = dir.join(file);
    if !path.is_file() {
        return Err(WakeError::ModelMissing {
            path,
            pull: pull.into(),
        });
    }
    std::fs::read(&path).map_err(|err| WakeError::ModelLoad {
        path,
        cause: err.to_string(),
        fix: String::new(),
    })
}

/// A classifier's bytes and how many embeddings it reads; it must read `[1, frames, dim]`.
fn read_classifier(path: &Path, dim: i64) -> Result<(Vec<u8>, usize), String> {
    let bytes = std::fs::read(path).map_err(|err| err.to_string())?;
    let dims = streaming::input_dims(&bytes)?;
    match dims[..] {
        [_, frames, d] if frames > 0 && d == dim => Ok((bytes, frames as usize)),
        _ => Err(format!(
            "input shape {dims:?} is not [1, embeddings, {dim}] (not an openWakeWord classifier?)"
        )),
    }
}

/// Adds a wake-word stream to the counters for as long as it lives.
#[derive(Debug)]
pub(crate) struct StreamGuard(Arc<WakeService>);

impl StreamGuard {
    pub(crate) fn new(service: Arc<WakeService>) -> Self {
        service.stats.streams.fetch_add(1, Ordering::Relaxed);
        Self(service)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.stats.streams.fetch_sub(1, Ordering::Relaxed);
    }
}
