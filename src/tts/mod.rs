//! Text-to-speech: Piper voices (piper-rs on ONNX Runtime) behind Wyoming, streamed by sentence.
//!
//! - [`text`]: cleaning, SSML, sentence splitting.
//! - [`voices`]: the voices in the models directory.
//! - [`flow`]: one `synthesize` or `synthesize-start` exchange on a Wyoming connection.

pub mod cache;
pub mod engine;
pub mod flow;
pub mod route;
mod split;
pub mod text;
pub mod voices;

#[doc(hidden)]
pub(crate) use split::split as fuzz_split;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};
use wyoming::info::{Attribution, TtsProgram, TtsVoice, TtsVoiceSpeaker};
use wyoming::tts::SynthesizeVoice;

use crate::config::{Config, TtsConfig, UnknownVoice};
use engine::{Delivery, Voice};
use voices::VoiceInfo;

/// Everything that can go wrong in text-to-speech.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TtsError {
    /// ONNX Runtime could not be loaded.
    #[error(
        "cannot load ONNX Runtime from {path} ({cause}): install it with `scripts/bootstrap.sh` \
         or point tts.onnxruntime at libonnxruntime.so (version 1.24)"
    )]
    Runtime {
        /// The library file.
        path: PathBuf,
        /// Why.
        cause: String,
    },
    /// The default voice is not installed.
    #[error(
        "Piper voice {name} not found in {dir}: download it with `jarvis models pull piper-{name}`, \
         or set tts.voice to one of the installed voices ({installed})"
    )]
    VoiceMissing {
        /// The voice.
        name: String,
        /// Where voices are looked for.
        dir: PathBuf,
        /// What is there.
        installed: String,
    },
    /// A voice does not load.
    #[error(
        "cannot load Piper voice {name}: {cause}; download it again with `jarvis models pull piper-{name} --force`"
    )]
    VoiceLoad {
        /// The voice.
        name: String,
        /// Why.
        cause: String,
    },
    /// The request asked for a voice or speaker that does not exist (with `tts.unknown_voice = "error"`).
    #[error("{0}")]
    UnknownVoice(String),
    /// The text is over `tts.max_text_chars`.
    #[error("text of {len} characters is over the limit of {limit} (tts.max_text_chars)")]
    TextTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Synthesis failed.
    #[error("synthesis failed: {0}")]
    Synthesis(String),
}

impl TtsError {
    /// The `code` of the Wyoming `error` event.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownVoice(_) => "unknown-voice",
            Self::TextTooLong { .. } => "text-too-long",
            _ => "tts-failed",
        }
    }
}

/// A voice and speaker chosen for a request.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The voice.
    pub voice: Arc<VoiceInfo>,
    /// Speaker id for multi-speaker voices.
    pub speaker: Option<i64>,
}

/// The text-to-speech service: voices on disk, loaded models, settings. Shared by every connection.
pub struct TtsService {
    voices: Vec<Arc<VoiceInfo>>,
    default: Arc<VoiceInfo>,
    loaded: Mutex<Loaded>,
    cache: Option<cache::AudioCache>,
    config: TtsConfig,
}

impl std::fmt::Debug for TtsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtsService")
            .field("voices", &self.voices.len())
            .field("default", &self.default.name)
            .finish_non_exhaustive()
    }
}

/// Loaded voices, most recently used last.
#[derive(Default)]
struct Loaded {
    voices: HashMap<String, Arc<Mutex<Voice>>>,
    order: Vec<String>,
}

impl TtsService {
    /// Loads ONNX Runtime, finds the voices and loads the default one.
    ///
    /// # Errors
    /// A missing runtime or default voice, named with the fix.
    pub fn load(config: &Config) -> Result<Self, TtsError> {
        let tts = &config.tts;
        let runtime = config.models.dir.join(&tts.onnxruntime);
        crate::onnx::init_runtime(&runtime).map_err(|cause| TtsError::Runtime {
            path: runtime.clone(),
            cause,
        })?;
        let dir = config.models.dir.join("piper");
        let (found, problems) = voices::scan(&dir);
        for problem in problems {
            warn!(%problem, "skipping a Piper voice");
        }
        let voices: Vec<Arc<VoiceInfo>> = found.into_iter().map(Arc::new).collect();
        let default = voices
            .iter()
            .find(|v| v.name == tts.voice)
            .cloned()
            .ok_or_else(|| TtsError::VoiceMissing {
                name: tts.voice.clone(),
                dir: dir.clone(),
                installed: voices
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let cache = if tts.cache {
            match cache::AudioCache::open(&tts.cache_dir, tts.cache_max_mb * 1024 * 1024) {
                Ok(cache) => Some(cache),
                Err(err) => {
                    warn!(
                        dir = %tts.cache_dir.display(),
                        cause = %err,
                        "speech cache disabled: set tts.cache_dir to a writable directory"
                    );
                    None
                }
            }
        } else {
            None
        };
        let service = Self {
            voices,
            default,
            loaded: Mutex::new(Loaded::default()),
            cache,
            config: tts.clone(),
        };
        // Load the default voice now, so the first request does not pay for it.
        service.voice(&service.default)?;
        Ok(service)
    }

    /// The voices loaded now, least recently used first (at most `tts.max_loaded_voices`).
    pub fn loaded_voices(&self) -> Vec<String> {
        self.loaded
            .lock()
            .map(|loaded| loaded.order.clone())
            .unwrap_or_default()
    }

    /// The settings.
    pub fn config(&self) -> &TtsConfig {
        &self.config
    }

    /// Picks the voice and speaker for a request.
    ///
    /// # Errors
    /// [`TtsError::UnknownVoice`] when the voice or speaker does not exist and
    /// `tts.unknown_voice` is `error`; with `fallback` (the default) the default voice is used.
    pub fn select(&self, requested: Option<&SynthesizeVoice>) -> Result<Selection, TtsError> {
        let requested = requested.cloned().unwrap_or_default();
        let by_name = requested
            .name
            .as_deref()
            .map(|name| self.voices.iter().find(|v| v.name == name).cloned());
        let voice = match by_name {
            Some(Some(voice)) => voice,
            Some(None) => self.unknown(format!(
                "unknown voice {:?}",
                requested.name.unwrap_or_default()
            ))?,
            None => match requested.language.as_deref() {
                Some(lang) => match self
                    .voices
                    .iter()
                    .find(|v| same_language(&v.language, lang))
                {
                    Some(voice) => Arc::clone(voice),
                    None => self.unknown(format!("no voice for language {lang:?}"))?,
                },
                None => Arc::clone(&self.default),
            },
        };
        let wanted = requested
            .speaker
            .clone()
            .or_else(|| self.config.speaker.clone());
        let speaker = match wanted {
            None => None,
            Some(name) if voice.speakers.is_empty() => {
                if requested.speaker.is_some() {
                    self.unknown(format!(
                        "voice {} has only one speaker, not {name:?}",
                        voice.name
                    ))?;
                }
                None
            }
            Some(name) => match voice.speakers.iter().find(|(_, n)| **n == name) {
                Some((id, _)) => Some(*id),
                None => match name
                    .parse::<i64>()
                    .ok()
                    .filter(|id| voice.speakers.contains_key(id))
                {
                    Some(id) => Some(id),
                    None => {
                        self.unknown(format!("voice {} has no speaker {name:?}", voice.name))?;
                        None
                    }
                },
            },
        };
        Ok(Selection { voice, speaker })
    }

    /// Applies `tts.unknown_voice`: an error, or the default voice with a warning.
    fn unknown(&self, problem: String) -> Result<Arc<VoiceInfo>, TtsError> {
        if self.config.unknown_voice == UnknownVoice::Error {
            return Err(TtsError::UnknownVoice(format!(
                "{problem}; installed voices: {}",
                self.voices
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        warn!(%problem, default = %self.default.name, "using the default voice");
        Ok(Arc::clone(&self.default))
    }

    /// The loaded model of a voice, loading it (and unloading the least recently used one beyond
    /// `tts.max_loaded_voices`) if needed.
    fn voice(&self, voice: &VoiceInfo) -> Result<Arc<Mutex<Voice>>, TtsError> {
        let mut loaded = self
            .loaded
            .lock()
            .map_err(|_| TtsError::Synthesis("voice cache poisoned".into()))?;
        if let Some(piper) = loaded.voices.get(&voice.name).cloned() {
            loaded.order.retain(|n| n != &voice.name);
            loaded.order.push(voice.name.clone());
            return Ok(piper);
        }
        let started = std::time::Instant::now();
        let loaded_voice = Voice::load(voice).map_err(|cause| TtsError::VoiceLoad {
            name: voice.name.clone(),
            cause,
        })?;
        info!(voice = %voice.name, took = ?started.elapsed(), "Piper voice loaded");
        let piper = Arc::new(Mutex::new(loaded_voice));
        loaded.voices.insert(voice.name.clone(), Arc::clone(&piper));
        loaded.order.push(voice.name.clone());
        while loaded.order.len() > self.config.max_loaded_voices.max(1) {
            let evicted = loaded.order.remove(0);
            loaded.voices.remove(&evicted);
            info!(voice = %evicted, "Piper voice unloaded (tts.max_loaded_voices)");
        }
        Ok(piper)
    }

    /// Synthesizes one sentence to 16-bit PCM at the voice's rate. Blocking: call it from a
    /// blocking thread.
    ///
    /// # Errors
    /// Voice loading or synthesis failures.
    pub fn synthesize_blocking(
        &self,
        selection: &Selection,
        text: &str,
    ) -> Result<Vec<i16>, TtsError> {
        let mut pcm = Vec::new();
        self.synthesize_pieces(selection, text, Delivery::Whole, &mut |piece| {
            pcm.extend_from_slice(piece);
            true
        })?;
        Ok(pcm)
    }

    /// Synthesizes one sentence, handing its 16-bit PCM to `sink` piece by piece as it is
    /// decoded (with [`Delivery::Pieces`]; one piece from the cache or with
    /// [`Delivery::Whole`]). `sink` returns `false` to stop: nothing more is computed and
    /// nothing is cached. Blocking: call it from a blocking thread.
    ///
    /// # Errors
    /// Voice loading or synthesis failures.
    pub fn synthesize_pieces(
        &self,
        selection: &Selection,
        text: &str,
        delivery: Delivery,
        sink: &mut (dyn FnMut(&[i16]) -> bool + Send),
    ) -> Result<(), TtsError> {
        let own = selection.voice.scales;
        let scales = engine::Scales {
            noise: self.config.noise_scale.unwrap_or(own.noise),
            length: self.config.length_scale.unwrap_or(own.length),
            noise_w: self.config.noise_w.unwrap_or(own.noise_w),
        };
        let key = cache::CacheKey {
            voice: &selection.voice.name,
            speaker: selection.speaker,
            scales: [scales.length, scales.noise, scales.noise_w],
            text,
        };
        if let Some((_, samples)) = self.cache.as_ref().and_then(|cache| cache.get(&key)) {
            sink(&samples);
            return Ok(());
        }
        let voice = self.voice(&selection.voice)?;
        let mut voice = voice
            .lock()
            .map_err(|_| TtsError::Synthesis("voice lock poisoned".into()))?;
        let mut all = Vec::new();
        let mut complete = true;
        let voice = &mut *voice;
        // Batch work, below the threads that answer requests (ONNX Runtime's pool, which runs
        // the rest of each graph, is already there).
        crate::priority::run_lowered("piper", || {
            voice.speak(text, selection.speaker, scales, delivery, &mut |audio| {
                let start = all.len();
                all.extend(audio.iter().map(|s| (s.clamp(-1.0, 1.0) * 32_767.0) as i16));
                complete = sink(&all[start..]);
                complete
            })
        })
        .map_err(|err| TtsError::Synthesis(format!("cannot start a synthesis thread: {err}")))?
        .map_err(TtsError::Synthesis)?;
        if let (true, Some(cache)) = (complete, &self.cache) {
            cache.put(&key, selection.voice.sample_rate, &all);
        }
        Ok(())
    }

    /// The `tts` program for `info`: every voice on disk.
    pub fn program(&self) -> TtsProgram {
        let voices = self
            .voices
            .iter()
            .map(|voice| TtsVoice {
                name: voice.name.clone(),
                attribution: Attribution::new("Piper", "https://github.com/rhasspy/piper"),
                installed: true,
                description: Some(voice.description.clone()),
                version: None,
                languages: vec![voice.language.clone()],
                speakers: (!voice.speakers.is_empty()).then(|| {
                    voice
                        .speakers
                        .values()
                        .map(|name| TtsVoiceSpeaker { name: name.clone() })
                        .collect()
                }),
            })
            .collect();
        TtsProgram {
            name: "jarvis-piper".into(),
            attribution: Attribution::new("Jarvis", env!("CARGO_PKG_REPOSITORY")),
            installed: true,
            description: Some("Jarvis text-to-speech (Piper)".into()),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            voices,
            supports_synthesize_streaming: self.config.streaming,
        }
    }
}

/// `en_US` matches `en_US`, `en-us` and `en`.
fn same_language(voice: &str, asked: &str) -> bool {
    let norm = |s: &str| s.replace('-', "_").to_lowercase();
    let (voice, asked) = (norm(voice), norm(asked));
    voice == asked || voice.split('_').next() == Some(asked.as_str())
}
