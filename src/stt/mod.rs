//! Speech-to-text: whisper.cpp behind Wyoming, with our own endpointing.
//!
//! - [`audio`]: any PCM format to 16 kHz mono.
//! - [`whisper`]: loaded models and the bounded decoding pool.
//! - [`endpoint`]: Silero VAD end-of-speech detection.
//! - [`flow`]: one `transcribe` exchange on a Wyoming connection.
//! - [`backends`], [`route`]: `[[stt.backends]]`, remote Wyoming servers with failover.

pub mod audio;
pub mod backends;
pub mod endpoint;
pub mod flow;
pub mod grammar;
pub mod route;
pub mod whisper;

use std::path::PathBuf;
use std::sync::Arc;

use wyoming::info::{AsrModel, AsrProgram, Attribution};

use crate::config::{Config, SttConfig};
use endpoint::{EndpointConfig, VadPool};
use whisper::{Engine, EngineConfig};

/// How whole the words heard so far are: which silence ends them.
///
/// Ordered: a silence long enough to end a [`Completeness::Sentence`] also ends a
/// [`Completeness::Command`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Completeness {
    /// Not a whole request yet ("start the", "what is the status of", "hey jarvis"): only the
    /// long silence (`stt.vad.max_silence_ms`) ends it.
    Incomplete,
    /// A whole sentence that may still go on after a comma's pause: speech outside the
    /// homelab ("Good morning, how are you?"), a reply ("Yes, go ahead"), a greeting. The
    /// sentence silence (`stt.vad.sentence_silence_ms`) ends it.
    Sentence,
    /// A homelab command whose names the brain resolves ("start nextcloud", "what is the
    /// status of node pve"): nothing more is needed, the short silence
    /// (`stt.vad.min_silence_ms`) ends it.
    Command,
}

/// What the rest of Jarvis knows about the words being heard: the brain implements it, so the
/// endpointer can tell "start the" (wait) from "start nextcloud" (done), and the transcript can
/// spell names as the cluster writes them.
pub trait Understanding: Send + Sync + std::fmt::Debug {
    /// How whole `text`, the words heard so far, is: a homelab command whose names resolve, a
    /// complete sentence outside the homelab, or neither. "start the" and "what is the status
    /// of" are not whole; whisper's punctuation is not consulted.
    fn completeness(&self, text: &str) -> Completeness;

    /// `text` with the names it mentions written as the cluster writes them ("P V E" and "PBE"
    /// become "pve", "agent one" "agent1", "local LVM" "local-lvm"); every other word unchanged.
    fn write_names(&self, text: &str) -> String;

    /// The sentences and names to guide whisper's decoding with, if any.
    fn grammar(&self) -> Option<Arc<grammar::SpeechGrammar>> {
        None
    }
}

/// Everything that can go wrong in speech-to-text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SttError {
    /// A model file is not there.
    #[error(
        "{name} model not found at {path}: download it with `jarvis models pull {pull}`, or \
         point models.dir / stt.model at the file"
    )]
    ModelMissing {
        /// Model name.
        name: String,
        /// Where it was looked for.
        path: PathBuf,
        /// The `jarvis models pull` name that installs it.
        pull: String,
    },
    /// A model file is there but does not load.
    #[error(
        "cannot load the {name} model from {path} ({cause}): the file is corrupt, truncated or \
         not a whisper.cpp ggml model; download it again with `jarvis models pull {pull} --force`"
    )]
    ModelLoad {
        /// Model name.
        name: String,
        /// The file.
        path: PathBuf,
        /// What whisper.cpp said.
        cause: String,
        /// The `jarvis models pull` name that installs it.
        pull: String,
    },
    /// Bad settings.
    #[error("{0}")]
    Config(String),
    /// The request names a model that is not loaded.
    #[error("unknown speech-to-text model {name:?}; this server has {known:?}")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: Vec<String>,
    },
    /// The request names a language whisper does not know.
    #[error("unknown language {0:?}: use a code such as \"en\" or \"de\", or \"auto\"")]
    UnknownLanguage(String),
    /// Every worker is busy and the queue is full.
    #[error("speech-to-text is busy (all workers and the queue are full); try again shortly")]
    Busy,
    /// The client left; the work was dropped.
    #[error("transcription cancelled")]
    Cancelled,
    /// whisper.cpp failed.
    #[error("transcription failed: {0}")]
    Decode(String),
}

impl SttError {
    /// The `code` of the Wyoming `error` event.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::UnknownModel { .. } => "unknown-model",
            Self::UnknownLanguage(_) => "unknown-language",
            Self::Cancelled => "cancelled",
            _ => "stt-failed",
        }
    }
}

/// The speech-to-text service: engine, VAD models and settings. Shared by every connection.
#[derive(Debug)]
pub struct SttService {
    engine: Engine,
    vad: Option<Arc<VadPool>>,
    endpoint: EndpointConfig,
    config: SttConfig,
}

impl SttService {
    /// Loads the models named in the configuration.
    ///
    /// # Errors
    /// A missing or corrupt model file, named with the fix.
    pub fn load(config: &Config) -> Result<Self, SttError> {
        // whisper.cpp and ggml print to stderr by default; route them through tracing instead.
        static HOOKS: std::sync::Once = std::sync::Once::new();
        HOOKS.call_once(whisper_rs::install_logging_hooks);
        let stt = &config.stt;
        let dir = &config.models.dir;
        let models = std::iter::once(&stt.model)
            .chain(&stt.extra_models)
            .map(|model| (model_name(model), SttConfig::model_path(dir, model)))
            .collect();
        let engine = Engine::load(&EngineConfig {
            models,
            language: stt.language.clone(),
            threads: stt.threads_per_decode(),
            workers: stt.worker_count(),
            queue: stt.queue,
            min_audio_ctx: stt.min_audio_ctx,
            guided: stt.grammar.enabled.then_some(whisper::GuidedDecode {
                penalty: stt.grammar.penalty,
                beams: stt.grammar.beams,
            }),
        })?;
        let vad = if stt.vad.enabled {
            Some(Arc::new(VadPool::load(&dir.join(&stt.vad.model))?))
        } else {
            None
        };
        Ok(Self {
            engine,
            vad,
            endpoint: EndpointConfig::from(&stt.vad),
            config: stt.clone(),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The `asr` program for `info`.
    pub fn program(&self) -> AsrProgram {
        let models = self
            .engine
            .models()
            .iter()
            .map(|model| AsrModel {
                name: model.name.clone(),
                attribution: Attribution::new(
                    "OpenAI Whisper",
                    "https://github.com/openai/whisper",
                ),
                installed: true,
                description: Some(format!("Whisper {} (whisper.cpp)", model.name)),
                version: None,
                languages: model.languages.clone(),
            })
            .collect();
        AsrProgram {
            name: "jarvis-whisper".into(),
            attribution: Attribution::new("Jarvis", env!("CARGO_PKG_REPOSITORY")),
            installed: true,
            description: Some("Jarvis speech-to-text (whisper.cpp)".into()),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            models,
            supports_transcript_streaming: self.config.streaming,
            requires_external_vad: self.vad.is_none(),
            prefers_auto_gain_enabled: true,
            prefers_noise_reduction_enabled: true,
        }
    }
}

/// The name a model is offered under: `tiny.en` for `tiny.en` or `whisper/ggml-tiny.en.bin`.
fn model_name(model: &str) -> String {
    let file = model.rsplit('/').next().unwrap_or(model);
    file.strip_prefix("ggml-")
        .unwrap_or(file)
        .strip_suffix(".bin")
        .unwrap_or(file.strip_prefix("ggml-").unwrap_or(file))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_named_without_path_prefix_and_suffix() {
        assert_eq!(model_name("tiny.en"), "tiny.en");
        assert_eq!(model_name("whisper/ggml-base.bin"), "base");
        assert_eq!(model_name("/opt/models/custom.bin"), "custom");
    }
}
