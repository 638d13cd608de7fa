//! Configuration: one TOML file, every key optional, checked once at start-up.
//!
//! The example in `config/jarvis.toml` documents every key. Command-line flags and `JARVIS_*`
//! environment variables override the file (see [`Overrides`]). Unknown keys and bad values are
//! load errors that name the key, so a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

pub use crate::brain::config::{AuditConfig, LlmConfig, PolicyConfig};
use crate::models::catalog::{self, ModelKind};
use crate::models::digest::Sha256Digest;

/// Default Wyoming port. The reference servers use 10200 (TTS), 10300 (STT) and 10400 (wake);
/// Jarvis serves all of them on one port.
pub const DEFAULT_WYOMING_ADDR: &str = "0.0.0.0:10700";
/// Default HTTP API port, next to the Wyoming one.
pub const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:10701";
/// Default models directory, filled by `jarvis models pull`.
pub const DEFAULT_MODELS_DIR: &str = "/var/lib/jarvis/models";

/// Everything Jarvis can be configured with.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The Wyoming listener.
    pub wyoming: WyomingConfig,
    /// The HTTP API.
    pub http: HttpConfig,
    /// Where model files live.
    pub models: ModelsConfig,
    /// Speech-to-text.
    pub stt: SttConfig,
    /// Text-to-speech.
    pub tts: TtsConfig,
    /// The safety policy for actions.
    pub policy: PolicyConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// The optional LLM fallback.
    pub llm: LlmConfig,
    /// Wake word.
    pub wake: WakeConfig,
    /// Logging.
    pub log: LogConfig,
    /// The Proxmox VE cluster.
    pub proxmox: ProxmoxConfig,
    /// Home Assistant entities over MQTT discovery.
    pub mqtt: crate::mqtt::MqttConfig,
    /// The event memory.
    pub events: crate::events::EventsConfig,
    /// Frigate NVR.
    pub frigate: crate::frigate::FrigateConfig,
    /// The web panel.
    pub panel: crate::panel::PanelConfig,
    /// The parts of Jarvis this process runs (`jarvis serve --role`; not in the file).
    #[serde(skip)]
    pub roles: crate::roles::Roles,
}

/// `[wyoming]`: the one TCP port that serves speech-to-text, text-to-speech, wake word and intents.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WyomingConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Connections served at once; more get a `busy` error.
    pub max_connections: usize,
    /// Seconds without a complete event before a connection is closed.
    pub idle_timeout_secs: u64,
    /// Seconds in-flight replies get to finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// Longest header line accepted, in bytes.
    pub max_header_bytes: usize,
    /// Largest data block accepted, in bytes.
    pub max_data_bytes: usize,
    /// Largest payload (audio) accepted in one event, in bytes.
    pub max_payload_bytes: usize,
    /// Also advertise an `intent` program. Off by default: HA prefers an intent program over a
    /// handle program and would then run Jarvis's intents itself, which it cannot.
    pub advertise_intent: bool,
    /// Zeroconf (mDNS) advertisement.
    pub zeroconf: ZeroconfConfig,
}

impl Default for WyomingConfig {
    fn default() -> Self {
        let limits = wyoming::Limits::default();
        let server = wyoming::ServerConfig::default();
        Self {
            addr: parse_default(DEFAULT_WYOMING_ADDR),
            max_connections: server.max_connections,
            idle_timeout_secs: server.idle_timeout.map_or(0, |d| d.as_secs()),
            shutdown_grace_secs: server.shutdown_grace.as_secs(),
            max_header_bytes: limits.max_line,
            max_data_bytes: limits.max_data,
            max_payload_bytes: limits.max_payload,
            advertise_intent: false,
            zeroconf: ZeroconfConfig::default(),
        }
    }
}

impl WyomingConfig {
    /// The server settings these values describe.
    pub fn server_config(&self) -> wyoming::ServerConfig {
        wyoming::ServerConfig {
            limits: wyoming::Limits {
                max_line: self.max_header_bytes,
                max_data: self.max_data_bytes,
                max_payload: self.max_payload_bytes,
            },
            max_connections: self.max_connections,
            idle_timeout: (self.idle_timeout_secs > 0)
                .then(|| Duration::from_secs(self.idle_timeout_secs)),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        }
    }
}

/// `[wyoming.zeroconf]`: how Home Assistant finds Jarvis on the network.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZeroconfConfig {
    /// Advertise `_wyoming._tcp` over mDNS.
    pub enabled: bool,
    /// Service instance name; HA keys its discovery on it, so keep it stable.
    /// Default: `jarvis-<hostname>`.
    pub name: Option<String>,
}

impl Default for ZeroconfConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            name: None,
        }
    }
}

/// `[http]`: the HTTP API (`GET /health`, `POST /v1/command`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Serve the HTTP API.
    pub enabled: bool,
    /// Address to listen on.
    pub addr: SocketAddr,
    /// The key `POST /v1/command` requires in `x-api-key`. Empty: no key (trusted networks
    /// only; a warning is logged at start-up).
    pub api_key: Secret,
    /// Commands one client (IP address) may send per minute; more get `429`.
    pub rate_limit_per_minute: u32,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            addr: parse_default(DEFAULT_HTTP_ADDR),
            api_key: Secret::default(),
            rate_limit_per_minute: 60,
            max_body_bytes: 16 * 1024,
        }
    }
}

/// `[models]`: where model files live and where `jarvis models pull` gets them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Directory holding whisper, Piper and wake-word models.
    pub dir: PathBuf,
    /// Base URL of the whisper.cpp ggml models (`ggml-<model>.bin` under it).
    pub whisper_base_url: Url,
    /// Base URL of the whisper.cpp Silero VAD model.
    pub whisper_vad_base_url: Url,
    /// Base URL of the Piper voices (`en/en_US/joe/medium/...` under it).
    pub piper_base_url: Url,
    /// Base URL of the openWakeWord models.
    pub wake_base_url: Url,
    /// Seconds to wait for a TCP (and TLS) connection to a download server.
    pub connect_timeout_secs: u64,
    /// Seconds a download may go without receiving a byte before it is abandoned (and can be
    /// resumed by pulling again).
    pub read_timeout_secs: u64,
    /// The user's own downloadable models, `[[models.extra]]`.
    pub extra: Vec<ExtraModel>,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(DEFAULT_MODELS_DIR),
            whisper_base_url: default_url(catalog::DEFAULT_WHISPER_BASE_URL),
            whisper_vad_base_url: default_url(catalog::DEFAULT_WHISPER_VAD_BASE_URL),
            piper_base_url: default_url(catalog::DEFAULT_PIPER_BASE_URL),
            wake_base_url: default_url(catalog::DEFAULT_WAKE_BASE_URL),
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT_SECS,
            read_timeout_secs: DEFAULT_READ_TIMEOUT_SECS,
            extra: Vec::new(),
        }
    }
}

/// `[stt]`: speech-to-text with whisper.cpp.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SttConfig {
    /// Offer speech-to-text.
    pub enabled: bool,
    /// Default model: a name (`tiny.en` is `whisper/ggml-tiny.en.bin` in the models directory)
    /// or a path to a ggml file.
    pub model: String,
    /// More models to load; clients pick one with `transcribe.name`.
    pub extra_models: Vec<String>,
    /// Language when the request names none; `auto` detects it (multilingual models only).
    pub language: String,
    /// Threads per decode; 0 = as many as there are cores, at most 4.
    pub threads: usize,
    /// Decodes at once; 0 = cores / threads, at least 1.
    pub workers: usize,
    /// Requests that may wait for a free worker; more get an `error` event.
    pub queue: usize,
    /// Longest audio accepted, in seconds.
    pub max_audio_secs: u32,
    /// Smallest encoder context whisper runs with, in frames of 20 ms (1500 = its whole 30 s
    /// window, as the reference server runs). Short commands are encoded in this much context.
    /// The default, 288, is as accurate as 320 on the whole WER corpus and ~13 ms faster a
    /// decode; 256 and below lose words (README, stop 48).
    pub min_audio_ctx: usize,
    /// Words whisper should expect (names of hosts, rooms, ...), added to each request's own.
    pub vocabulary: Vec<String>,
    /// Send `transcript-start/chunk/stop` around the transcript.
    pub streaming: bool,
    /// Our own end-of-speech detection.
    pub vad: VadConfig,
    /// Decoding guided by the brain's sentences and the cluster's names.
    pub grammar: SttGrammarConfig,
    /// `[[stt.backends]]`: where transcriptions are made, tried in priority order with failover.
    /// Empty: the local engine alone.
    pub backends: Vec<crate::stt::backends::SttBackendConfig>,
}

/// `[stt.grammar]`: when a transcript is not a homelab command as the brain knows them, whisper
/// decodes again biased towards the brain's sentences and the cluster's names, and the better
/// of the two is kept.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SttGrammarConfig {
    /// Decode again with the grammar.
    pub enabled: bool,
    /// How much a token outside the grammar is held back, in logits: small enough that speech
    /// outside the homelab still comes out as said.
    pub penalty: f32,
    /// Beams the guided decode searches (1: greedy). Beams keep names that begin like a word
    /// whisper heard ("a channel S" for "haos": the guided greedy decode follows " a" into
    /// "agent1") and are ranked by whisper's own probabilities, the penalties aside.
    pub beams: usize,
}

impl Default for SttGrammarConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            penalty: 15.0,
            beams: 4,
        }
    }
}

impl Default for SttConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            model: "tiny.en".into(),
            extra_models: Vec::new(),
            language: "en".into(),
            threads: 0,
            workers: 0,
            queue: 4,
            max_audio_secs: 30,
            min_audio_ctx: 288,
            vocabulary: Vec::new(),
            streaming: true,
            vad: VadConfig::default(),
            grammar: SttGrammarConfig::default(),
            backends: Vec::new(),
        }
    }
}

impl SttConfig {
    /// The file of a model given by name or path.
    pub fn model_path(models_dir: &Path, model: &str) -> PathBuf {
        if model.contains('/') || model.ends_with(".bin") {
            models_dir.join(model)
        } else {
            models_dir.join("whisper").join(format!("ggml-{model}.bin"))
        }
    }

    /// Threads per decode, resolved.
    pub fn threads_per_decode(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            cores().min(4)
        }
    }

    /// Concurrent decodes, resolved.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            (cores() / self.threads_per_decode()).max(1)
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// `[stt.vad]`: end-of-speech detection with Silero VAD.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadConfig {
    /// Detect the end of speech ourselves (HA 2026.10+ then skips its own VAD and gets the
    /// transcript sooner). Off: the transcript follows `audio-stop`.
    pub enabled: bool,
    /// Silero VAD model in whisper.cpp format, relative to the models directory.
    pub model: PathBuf,
    /// Speech probability threshold, 0 to 1.
    pub threshold: f32,
    /// Speech needed before silence can end the command, in ms.
    pub min_speech_ms: u32,
    /// Silence that ends a homelab command whose names the brain resolves ("start nextcloud"),
    /// in ms. Nothing more is needed after such a command; this is what makes its transcript
    /// fast.
    pub min_silence_ms: u32,
    /// Silence that ends any other whole sentence, in ms: speech outside the homelab, a reply
    /// ("yes"), a greeting, or a command before the cluster's names are known. It outlasts the
    /// pause at a comma ("Good morning, how are you?": ~200 ms in espeak-ng's voices; "Yes, go
    /// ahead"), which the command's short silence would cut.
    pub sentence_silence_ms: u32,
    /// Silence that ends any command, in ms: a pause after "start the" or "what is the status
    /// of" is not the end, and people pause up to a second there. `vad_sensitivity`
    /// "aggressive" shortens all three silences, "relaxed" lengthens them.
    pub max_silence_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            model: PathBuf::from("whisper/ggml-silero-v6.2.0.bin"),
            threshold: 0.5,
            min_speech_ms: 150,
            min_silence_ms: 150,
            sentence_silence_ms: 250,
            max_silence_ms: 1200,
        }
    }
}

/// Default `models.connect_timeout_secs`: long enough for a slow DNS and TLS handshake, short
/// enough that an unreachable mirror is reported while the user still watches.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 20;
/// Default `models.read_timeout_secs`: CDNs pause for a few seconds now and then; a minute of
/// silence means the transfer is dead.
pub const DEFAULT_READ_TIMEOUT_SECS: u64 = 60;

/// `[[models.extra]]`: a model that is not in the built-in catalog, downloaded from a full URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraModel {
    /// What `jarvis models pull` is given.
    pub name: String,
    /// What it is for.
    pub kind: ModelKind,
    /// Where it is stored, relative to `models.dir` (e.g. `whisper/ggml-my-finetune.bin`).
    pub file: String,
    /// Where it is downloaded from.
    pub url: Url,
    /// Expected sha256 (64 hex digits); without it the download is installed unverified.
    #[serde(default)]
    pub sha256: Option<Sha256Digest>,
}

/// `[tts]`: text-to-speech with Piper voices.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtsConfig {
    /// Offer text-to-speech.
    pub enabled: bool,
    /// Default voice: a file stem in `<models.dir>/piper/`, e.g. `en_US-joe-medium`.
    pub voice: String,
    /// Default speaker of multi-speaker voices (name or id).
    pub speaker: Option<String>,
    /// Speaking pace (larger is slower); the voice's own value when unset.
    pub length_scale: Option<f32>,
    /// Voice variation; the voice's own value when unset.
    pub noise_scale: Option<f32>,
    /// Phoneme length variation; the voice's own value when unset.
    pub noise_w: Option<f32>,
    /// Samples per `audio-chunk` (1024 = 46 ms at 22.05 kHz, as the reference server).
    pub samples_per_chunk: usize,
    /// Longest text accepted in one request, in characters.
    pub max_text_chars: usize,
    /// Voices kept loaded at once; the least recently used is unloaded beyond it.
    pub max_loaded_voices: usize,
    /// ONNX Runtime library, relative to `models.dir` (or absolute); the wake word uses it too.
    pub onnxruntime: PathBuf,
    /// Advertise `supports_synthesize_streaming` (HA 2025.7+ then streams every request).
    pub streaming: bool,
    /// `[[tts.backends]]`: where speech is synthesized, tried in priority order; a backend that
    /// fails before its first audio is left for the next. Empty: the local voices alone.
    pub backends: Vec<crate::stt::backends::TtsBackendConfig>,
    /// What an unknown voice or speaker gets: `fallback` (the default voice, with a warning in
    /// the log) or `error` (an `error` event naming the installed voices).
    pub unknown_voice: UnknownVoice,
    /// Keep synthesized sentences on disk and reuse them.
    pub cache: bool,
    /// Where the cache lives.
    pub cache_dir: PathBuf,
    /// Largest size of the cache, in MB; the least recently used sentences go first.
    pub cache_max_mb: u64,
}

impl Default for TtsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            voice: "en_US-joe-medium".into(),
            speaker: None,
            length_scale: None,
            noise_scale: None,
            noise_w: None,
            samples_per_chunk: 1024,
            max_text_chars: 10_000,
            max_loaded_voices: 2,
            onnxruntime: PathBuf::from("onnxruntime/libonnxruntime.so.1.24.2"),
            streaming: true,
            unknown_voice: UnknownVoice::Fallback,
            cache: true,
            cache_dir: PathBuf::from("/var/cache/jarvis/tts"),
            cache_max_mb: 200,
            backends: Vec::new(),
        }
    }
}

/// See [`TtsConfig::unknown_voice`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownVoice {
    /// Use the default voice and log a warning.
    #[default]
    Fallback,
    /// Answer with an `error` event.
    Error,
}

/// Default `proxmox.token_id`: the token §4.1 of the integration notes creates
/// (`pveum user token add jarvis@pve ha --privsep 1`).
pub const DEFAULT_PROXMOX_TOKEN_ID: &str = "jarvis@pve!ha";

/// `[proxmox]`: the Proxmox VE REST API (any node of the cluster answers for all of them).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxmoxConfig {
    /// Talk to Proxmox at all.
    pub enabled: bool,
    /// Base URLs of the nodes' APIs (`https://192.168.1.11:8006`), tried in order; the last one
    /// that answered is tried first next time.
    pub urls: Vec<Url>,
    /// API token id, `USER@REALM!TOKENID`.
    pub token_id: String,
    /// API token secret (a UUID). Prefer `token_secret_file` or `JARVIS_PROXMOX_TOKEN_SECRET`.
    pub token_secret: Option<Secret>,
    /// File holding the token secret (surrounding whitespace is ignored).
    pub token_secret_file: Option<PathBuf>,
    /// PEM file of a CA to trust besides the system roots (the cluster CA,
    /// `/etc/pve/pve-root-ca.pem`).
    pub ca_file: Option<PathBuf>,
    /// SHA-256 fingerprints (`AA:BB:...`) of the nodes' certificates. With pins, a certificate
    /// is accepted when it matches one, whoever signed it.
    pub fingerprints: Vec<String>,
    /// Accept any certificate. Insecure; logged loudly at every start.
    pub insecure_skip_verify: bool,
    /// Seconds a request may take, connection included.
    pub timeout_secs: u64,
    /// Seconds to wait for a connection before trying the next node.
    pub connect_timeout_secs: u64,
    /// Extra attempts for failed reads (no node reachable, or a 5xx answer; actions are never
    /// repeated), with exponential backoff from 200 ms.
    pub read_retries: u32,
    /// Seconds `/cluster/resources` (nodes, guests, storage) stays cached.
    pub resources_ttl_secs: u64,
    /// Seconds `/cluster/status` and each `/nodes/{node}/status` stay cached.
    pub node_status_ttl_secs: u64,
    /// Seconds the pending-updates count of a node stays cached.
    pub updates_ttl_secs: u64,
    /// Milliseconds between two polls of a running task.
    pub task_poll_ms: u64,
    /// Seconds to wait for a task (a guest shutdown) before reporting it as still running.
    pub task_timeout_secs: u64,
    /// Milliseconds a question (or the reads before an action) waits for Proxmox before Jarvis
    /// says "Proxmox isn't answering right now", however many nodes hang.
    pub answer_timeout_ms: u64,
    /// Seconds the backups and recent tasks (vzdump tasks, backup archives, `/cluster/tasks`)
    /// stay cached.
    pub backups_ttl_secs: u64,
    /// A guest whose newest backup is older than this many days counts as not backed up
    /// ("which guests have no backup?", `/v1/backups`' `stale`, the MQTT sensor).
    pub backup_max_age_days: u32,
}

impl Default for ProxmoxConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            urls: Vec::new(),
            token_id: DEFAULT_PROXMOX_TOKEN_ID.into(),
            token_secret: None,
            token_secret_file: None,
            ca_file: None,
            fingerprints: Vec::new(),
            insecure_skip_verify: false,
            timeout_secs: 10,
            connect_timeout_secs: 3,
            read_retries: 2,
            resources_ttl_secs: 15,
            node_status_ttl_secs: 60,
            updates_ttl_secs: 900,
            task_poll_ms: 1000,
            task_timeout_secs: 300,
            answer_timeout_ms: 3000,
            backups_ttl_secs: 300,
            backup_max_age_days: 7,
        }
    }
}

/// `[wake]`: wake word detection with openWakeWord models.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WakeConfig {
    /// Offer wake word detection.
    pub enabled: bool,
    /// Folder of the openWakeWord models, relative to `models.dir` (or absolute): the feature
    /// models `melspectrogram.onnx` and `embedding_model.onnx`, and every wake word, one
    /// classifier `.onnx` each.
    pub dir: PathBuf,
    /// More wake word classifiers, anywhere (relative to `models.dir`, or absolute).
    pub extra_models: Vec<PathBuf>,
    /// Lowest score (0 to 1) of an 80 ms step that counts towards a detection.
    pub threshold: f32,
    /// Counting steps in a row needed for a detection.
    pub trigger_level: u32,
    /// Seconds of audio a wake word is not detected again after a detection.
    pub refractory_secs: f32,
    /// Worker threads; 0 = as many as there are cores, at most 4 (one core runs about a
    /// hundred real-time streams).
    pub workers: usize,
    /// `[[wake.backends]]`: where wake words are detected, tried in priority order; a stream
    /// moves to the next backend when one fails (see `wake::route`).
    pub backends: Vec<crate::stt::backends::WakeBackendConfig>,
}

impl Default for WakeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: PathBuf::from("wakeword"),
            extra_models: Vec::new(),
            threshold: 0.5,
            trigger_level: 1,
            refractory_secs: 2.0,
            workers: 0,
            backends: Vec::new(),
        }
    }
}

/// Builds the error of a value that parses but makes no sense: `key` in `origin`, and a message
/// with the fix. Each `validate` calls it as `invalid(key, message)`.
pub(crate) fn invalid_at(
    origin: &Path,
) -> impl Fn(&'static str, String) -> Result<(), ConfigError> + '_ {
    move |key, message| {
        Err(ConfigError::Invalid {
            path: origin.to_owned(),
            key,
            message,
        })
    }
}

impl ProxmoxConfig {
    fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = invalid_at(origin);
        for url in &self.urls {
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return invalid(
                    "proxmox.urls",
                    format!(
                        "{url} must be an https:// URL with a host, such as https://192.168.1.11:8006"
                    ),
                );
            }
            if url.query().is_some() || url.fragment().is_some() {
                return invalid(
                    "proxmox.urls",
                    format!("{url} must be a base URL without ?query or #fragment"),
                );
            }
        }
        for pin in &self.fingerprints {
            if parse_fingerprint(pin).is_none() {
                return invalid(
                    "proxmox.fingerprints",
                    format!(
                        "{pin:?} is not a SHA-256 fingerprint: use the 32 colon-separated hex bytes \
                         the node shows under System > Certificates (AA:BB:...)"
                    ),
                );
            }
        }
        if self.insecure_skip_verify && (!self.fingerprints.is_empty() || self.ca_file.is_some()) {
            return invalid(
                "proxmox.insecure_skip_verify",
                "cannot be combined with fingerprints or ca_file; remove it to verify the certificate"
                    .into(),
            );
        }
        if !self.fingerprints.is_empty() && self.ca_file.is_some() {
            return invalid(
                "proxmox.fingerprints",
                "set either fingerprints (pin the node certificates) or ca_file (trust the cluster \
                 CA), not both"
                    .into(),
            );
        }
        if self.token_secret.is_some() && self.token_secret_file.is_some() {
            return invalid(
                "proxmox.token_secret_file",
                "set either token_secret or token_secret_file, not both".into(),
            );
        }
        for (key, value) in [
            ("proxmox.timeout_secs", self.timeout_secs),
            ("proxmox.connect_timeout_secs", self.connect_timeout_secs),
            ("proxmox.task_poll_ms", self.task_poll_ms),
            ("proxmox.task_timeout_secs", self.task_timeout_secs),
            ("proxmox.backups_ttl_secs", self.backups_ttl_secs),
            (
                "proxmox.backup_max_age_days",
                u64::from(self.backup_max_age_days),
            ),
        ] {
            if value == 0 {
                return invalid(key, "must be at least 1".into());
            }
        }
        if self.read_retries > 10 {
            return invalid("proxmox.read_retries", "must be 0 to 10".into());
        }
        if !self.enabled {
            return Ok(());
        }
        if self.urls.is_empty() {
            return invalid(
                "proxmox.urls",
                "proxmox is enabled but no node URL is set; add one or more, such as \
                 [\"https://192.168.1.11:8006\"]"
                    .into(),
            );
        }
        let token_ok = self
            .token_id
            .split_once('!')
            .is_some_and(|(user, name)| user.contains('@') && !name.is_empty());
        if !token_ok {
            return invalid(
                "proxmox.token_id",
                format!(
                    "{:?} is not an API token id; use USER@REALM!TOKENID, such as \"jarvis@pve!ha\" \
                     (create it with `pveum user token add jarvis@pve ha --privsep 1`)",
                    self.token_id
                ),
            );
        }
        // The secret itself may still come from JARVIS_PROXMOX_TOKEN_SECRET, which is applied
        // after the file is loaded; the client reports a missing one when it is built.
        Ok(())
    }
}

/// Parses a SHA-256 fingerprint: 32 hex bytes, colon-separated (`AA:BB:..`, as Proxmox shows
/// them) or not, in either case.
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let hex: String = text.trim().chars().filter(|&c| c != ':').collect();
    let colons = text.trim().chars().filter(|&c| c == ':').count();
    if hex.len() != 64 || !(colons == 0 || colons == 31) || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// A secret from the configuration (an API token). Its `Debug` never shows the value, so a
/// logged or printed configuration does not leak it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Whether no value is set (an empty string in the file).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl WakeConfig {
    /// Worker threads, resolved.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            cores().min(4)
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A level (`error`, `warn`, `info`, `debug`, `trace`) or a filter such as `info,jarvis=debug`.
    pub level: String,
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Values given on the command line or in the environment; each wins over the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Wyoming listen address [default: 0.0.0.0:10700]
    #[arg(long, env = "JARVIS_WYOMING_ADDR", value_name = "ADDR")]
    pub wyoming_addr: Option<SocketAddr>,
    /// HTTP API listen address [default: 0.0.0.0:10701]
    #[arg(long, env = "JARVIS_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Models directory [default: /var/lib/jarvis/models]
    #[arg(long, env = "JARVIS_MODELS_DIR", value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Log level or filter, e.g. `debug` or `info,jarvis=debug` [default: info]
    #[arg(long, env = "JARVIS_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Log format [default: text]
    #[arg(long, env = "JARVIS_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Do not advertise over zeroconf
    #[arg(long, env = "JARVIS_NO_ZEROCONF")]
    pub no_zeroconf: bool,
    /// Run only these parts, e.g. `stt,tts` on a GPU box that serves speech to another Jarvis
    /// [default: stt,tts,wake,brain]
    #[arg(long, env = "JARVIS_ROLE", value_delimiter = ',', value_name = "ROLES")]
    pub role: Vec<crate::roles::Role>,
    /// ONNX Runtime library for text-to-speech and wake word [default: <models-dir>/onnxruntime/libonnxruntime.so.1.24.2]
    #[arg(long, env = "JARVIS_ONNXRUNTIME", value_name = "FILE")]
    pub onnxruntime: Option<PathBuf>,
    /// Audit log file [default: /var/lib/jarvis/audit.jsonl]
    #[arg(long, env = "JARVIS_AUDIT_PATH", value_name = "FILE")]
    pub audit_path: Option<PathBuf>,
    /// Event store database [default: /var/lib/jarvis/events.db]
    #[arg(long, env = "JARVIS_EVENTS_PATH", value_name = "FILE")]
    pub events_path: Option<PathBuf>,
    /// Key for `POST /v1/command` (prefer the environment to the command line)
    #[arg(
        long,
        env = "JARVIS_HTTP_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub http_api_key: Option<String>,
    /// Proxmox API token secret. Meant for the environment (a flag would show in `ps`), so the
    /// flag is hidden and the value never printed.
    #[arg(
        long,
        env = "JARVIS_PROXMOX_TOKEN_SECRET",
        value_name = "SECRET",
        hide = true,
        hide_env_values = true
    )]
    pub proxmox_token_secret: Option<Secret>,
    /// MQTT broker password. Meant for the environment (a flag would show in `ps`), so the
    /// flag is hidden and the value never printed.
    #[arg(
        long,
        env = "JARVIS_MQTT_PASSWORD",
        value_name = "PASSWORD",
        hide = true,
        hide_env_values = true
    )]
    pub mqtt_password: Option<Secret>,
    /// Frigate API password (port 8971). Meant for the environment (a flag would show in
    /// `ps`), so the flag is hidden and the value never printed.
    #[arg(
        long,
        env = "JARVIS_FRIGATE_PASSWORD",
        value_name = "PASSWORD",
        hide = true,
        hide_env_values = true
    )]
    pub frigate_password: Option<Secret>,
}

/// Why a configuration could not be loaded. The message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown or has the wrong type.
    #[error("{path}: {key}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Dotted path of the offending key (`.` for the top level).
        key: String,
        /// What is wrong, with the line when known.
        message: String,
    },
    /// A value parsed but is not allowed.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The file (or `<defaults>` / flags).
        path: PathBuf,
        /// Dotted path of the offending key.
        key: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

impl Config {
    /// Loads and validates a file.
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::parse(&text, path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Parses TOML text (without validating values); `path` is only used in messages.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] naming the key.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let parse_error = |key: String, err: toml::de::Error| ConfigError::Parse {
            path: path.to_owned(),
            key,
            message: describe_toml_error(text, &err),
        };
        let deserializer =
            toml::de::Deserializer::parse(text).map_err(|e| parse_error(".".into(), e))?;
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let key = err.path().to_string();
            parse_error(key, err.into_inner())
        })
    }

    /// Applies command-line and environment overrides.
    #[must_use]
    pub fn with_overrides(mut self, overrides: &Overrides) -> Self {
        if let Some(addr) = overrides.wyoming_addr {
            self.wyoming.addr = addr;
        }
        if let Some(addr) = overrides.http_addr {
            self.http.addr = addr;
        }
        if let Some(dir) = &overrides.models_dir {
            self.models.dir.clone_from(dir);
        }
        if let Some(level) = &overrides.log_level {
            self.log.level.clone_from(level);
        }
        if let Some(format) = overrides.log_format {
            self.log.format = format;
        }
        if overrides.no_zeroconf {
            self.wyoming.zeroconf.enabled = false;
        }
        if !overrides.role.is_empty() {
            crate::roles::Roles::of(&overrides.role).apply(&mut self);
        }
        if let Some(password) = &overrides.mqtt_password {
            self.mqtt.password = Some(password.clone());
        }
        if let Some(password) = &overrides.frigate_password {
            self.frigate.password = Some(password.clone());
        }
        if let Some(lib) = &overrides.onnxruntime {
            // On the command line a relative path means the current directory, not models.dir.
            self.tts.onnxruntime =
                std::env::current_dir().map_or_else(|_| lib.clone(), |cwd| cwd.join(lib));
        }
        if let Some(path) = &overrides.audit_path {
            self.audit.path.clone_from(path);
        }
        if let Some(path) = &overrides.events_path {
            self.events.path.clone_from(path);
        }
        if let Some(key) = &overrides.http_api_key {
            self.http.api_key = Secret::new(key.as_str());
        }
        if let Some(secret) = &overrides.proxmox_token_secret {
            self.proxmox.token_secret = Some(secret.clone());
            // The environment wins over the file, whichever way the file gives the secret.
            self.proxmox.token_secret_file = None;
        }
        self
    }

    /// Checks values that parse but make no sense; `origin` names where they came from.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and the fix.
    pub fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = invalid_at(origin);
        let w = &self.wyoming;
        if w.max_connections == 0 {
            return invalid("wyoming.max_connections", "must be at least 1".into());
        }
        if w.max_header_bytes < 256 {
            return invalid(
                "wyoming.max_header_bytes",
                format!(
                    "{} is too small for any real header; use at least 256",
                    w.max_header_bytes
                ),
            );
        }
        if w.max_data_bytes < 64 * 1024 {
            return invalid(
                "wyoming.max_data_bytes",
                format!(
                    "{} is too small for a describe/info exchange; use at least 65536",
                    w.max_data_bytes
                ),
            );
        }
        if w.max_payload_bytes < 4096 {
            return invalid(
                "wyoming.max_payload_bytes",
                format!(
                    "{} is smaller than one audio chunk; use at least 4096",
                    w.max_payload_bytes
                ),
            );
        }
        if self.http.enabled && self.http.addr == w.addr && w.addr.port() != 0 {
            return invalid(
                "http.addr",
                format!(
                    "{} is also wyoming.addr; give the HTTP API its own port",
                    self.http.addr
                ),
            );
        }
        if let Some(name) = &w.zeroconf.name {
            if name.is_empty() || name.len() > 63 {
                return invalid(
                    "wyoming.zeroconf.name",
                    "must be 1 to 63 bytes (an mDNS instance label)".into(),
                );
            }
        }
        let stt = &self.stt;
        if stt.queue == 0 {
            return invalid("stt.queue", "must be at least 1".into());
        }
        if stt.max_audio_secs == 0 || stt.max_audio_secs > 600 {
            return invalid("stt.max_audio_secs", "must be 1 to 600".into());
        }
        if !(64..=1500).contains(&stt.min_audio_ctx) {
            return invalid(
                "stt.min_audio_ctx",
                "must be 64 to 1500 (encoder frames of 20 ms; 1500 is the whole 30 s window)"
                    .into(),
            );
        }
        if !(stt.grammar.penalty > 0.0 && stt.grammar.penalty <= 1000.0) {
            return invalid(
                "stt.grammar.penalty",
                "must be above 0 and at most 1000 (logits)".into(),
            );
        }
        if !(1..=8).contains(&stt.grammar.beams) {
            return invalid(
                "stt.grammar.beams",
                "must be 1 (greedy) to 8 (whisper.cpp's most decoders)".into(),
            );
        }
        if !(0.0..=1.0).contains(&stt.vad.threshold) {
            return invalid("stt.vad.threshold", "must be between 0 and 1".into());
        }
        if stt.vad.min_silence_ms < 64 {
            return invalid(
                "stt.vad.min_silence_ms",
                "must be at least 64 (two VAD windows)".into(),
            );
        }
        if stt.vad.sentence_silence_ms < stt.vad.min_silence_ms {
            return invalid(
                "stt.vad.sentence_silence_ms",
                "must be at least stt.vad.min_silence_ms".into(),
            );
        }
        if stt.vad.max_silence_ms < stt.vad.sentence_silence_ms {
            return invalid(
                "stt.vad.max_silence_ms",
                "must be at least stt.vad.sentence_silence_ms".into(),
            );
        }
        use crate::stt::backends::{Service, validate};
        validate(Service::Stt, &stt.backends, stt.enabled, origin)?;
        validate(Service::Tts, &self.tts.backends, self.tts.enabled, origin)?;
        validate(
            Service::Wake,
            &self.wake.backends,
            self.wake.enabled,
            origin,
        )?;
        if self.tts.samples_per_chunk == 0 || self.tts.samples_per_chunk > 65_536 {
            return invalid("tts.samples_per_chunk", "must be 1 to 65536".into());
        }
        if self.tts.max_text_chars == 0 {
            return invalid("tts.max_text_chars", "must be at least 1".into());
        }
        // Piper's own voices use 0.667 / 1.0 / 0.8; far outside these ranges the voice is noise
        // or silence, or one sentence lasts minutes.
        for (key, value, range) in [
            ("tts.length_scale", self.tts.length_scale, 0.1..=5.0),
            ("tts.noise_scale", self.tts.noise_scale, 0.0..=2.0),
            ("tts.noise_w", self.tts.noise_w, 0.0..=2.0),
        ] {
            if value.is_some_and(|v| !range.contains(&v)) {
                return invalid(
                    key,
                    format!(
                        "must be {} to {} (the voice's own value when unset)",
                        range.start(),
                        range.end()
                    ),
                );
            }
        }
        let wake = &self.wake;
        if !(wake.threshold > 0.0 && wake.threshold <= 1.0) {
            return invalid("wake.threshold", "must be above 0 and at most 1".into());
        }
        if wake.trigger_level == 0 || wake.trigger_level > 100 {
            return invalid("wake.trigger_level", "must be 1 to 100".into());
        }
        if !(0.0..=3600.0).contains(&wake.refractory_secs) {
            return invalid("wake.refractory_secs", "must be 0 to 3600".into());
        }
        if wake.workers > 256 {
            return invalid("wake.workers", "must be 0 (one per core) to 256".into());
        }
        if stt.model.is_empty() {
            return invalid(
                "stt.model",
                "must name a model (e.g. \"tiny.en\") or a ggml file".into(),
            );
        }
        if self.http.rate_limit_per_minute == 0 {
            return invalid("http.rate_limit_per_minute", "must be at least 1".into());
        }
        if self.http.max_body_bytes < 256 {
            return invalid("http.max_body_bytes", "must be at least 256".into());
        }
        if self.policy.confirm_timeout_secs == 0 {
            return invalid("policy.confirm_timeout_secs", "must be at least 1".into());
        }
        if self.audit.max_mb == 0 {
            return invalid("audit.max_mb", "must be at least 1".into());
        }
        if self.llm.enabled && self.llm.url.is_none() {
            return invalid(
                "llm.url",
                "is required when llm.enabled is true, e.g. \"http://127.0.0.1:8080/v1\"".into(),
            );
        }
        if let Some(url) = &self.llm.url {
            if !matches!(url.scheme(), "http" | "https") {
                return invalid("llm.url", format!("{url} is not an http(s) URL"));
            }
        }
        if self.llm.max_history < 2 {
            return invalid("llm.max_history", "must be at least 2".into());
        }
        if self.llm.timeout_secs == 0 {
            return invalid("llm.timeout_secs", "must be at least 1".into());
        }
        self.models.validate(origin)?;
        self.proxmox.validate(origin)?;
        self.mqtt.validate(origin)?;
        self.frigate.validate(origin)?;
        if let Err(reason) = self.events.time_zone() {
            return invalid("events.timezone", reason);
        }
        if self.events.max_pending == 0 {
            return invalid("events.max_pending", "must be at least 1".into());
        }
        if let Err(err) = tracing_subscriber::EnvFilter::builder().parse(&self.log.level) {
            return invalid(
                "log.level",
                format!("{:?} is not a level or filter: {err}", self.log.level),
            );
        }
        Ok(())
    }
}

impl ModelsConfig {
    fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = invalid_at(origin);
        for (key, url) in [
            ("models.whisper_base_url", &self.whisper_base_url),
            ("models.whisper_vad_base_url", &self.whisper_vad_base_url),
            ("models.piper_base_url", &self.piper_base_url),
            ("models.wake_base_url", &self.wake_base_url),
        ] {
            if let Err(message) = check_download_url(url) {
                return invalid(key, message);
            }
        }
        if self.connect_timeout_secs == 0 {
            return invalid("models.connect_timeout_secs", "must be at least 1".into());
        }
        if self.read_timeout_secs == 0 {
            return invalid("models.read_timeout_secs", "must be at least 1".into());
        }
        let mut names = std::collections::HashSet::new();
        for extra in &self.extra {
            let name = &extra.name;
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return invalid(
                    "models.extra.name",
                    format!("{name:?} must be a non-empty name without spaces"),
                );
            }
            if catalog::BUILTIN.iter().any(|m| m.name == name) {
                return invalid(
                    "models.extra.name",
                    format!("{name:?} is already a built-in model; give yours another name"),
                );
            }
            if !names.insert(name.as_str()) {
                return invalid(
                    "models.extra.name",
                    format!("{name:?} is used by more than one [[models.extra]] entry"),
                );
            }
            if !catalog::is_safe_relative_path(&extra.file) {
                return invalid(
                    "models.extra.file",
                    format!(
                        "{:?} (model {name:?}) must be a relative path inside models.dir, \
                         such as \"whisper/ggml-custom.bin\"",
                        extra.file
                    ),
                );
            }
            if let Err(message) = check_download_url(&extra.url) {
                return invalid("models.extra.url", format!("model {name:?}: {message}"));
            }
        }
        Ok(())
    }
}

fn check_download_url(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{url} must be an http:// or https:// URL"));
    }
    if url.host().is_none() {
        return Err(format!("{url} has no host"));
    }
    Ok(())
}

#[expect(
    clippy::expect_used,
    reason = "the defaults are constant, valid URLs; every test that loads a config parses them"
)]
fn default_url(url: &str) -> Url {
    Url::parse(url).expect("default base URLs are valid")
}

/// toml's message plus the line it points at, without its multi-line ASCII art.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().to_owned();
    match err.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("{message} (line {line})")
        }
        None => message,
    }
}

fn parse_default(addr: &str) -> SocketAddr {
    // The constants above are valid addresses; a typo there fails every test that loads defaults.
    addr.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let config = Config::parse(text, Path::new("test.toml"))?;
        config.validate(Path::new("test.toml"))?;
        Ok(config)
    }

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let config = parse("").unwrap();
        assert_eq!(config.wyoming.addr.to_string(), DEFAULT_WYOMING_ADDR);
        assert_eq!(config.http.addr.to_string(), DEFAULT_HTTP_ADDR);
        assert!(config.wyoming.zeroconf.enabled);
        assert_eq!(config.log.format, LogFormat::Text);
    }

    #[test]
    fn an_unknown_key_is_named_with_its_table() {
        let err = parse("[wyoming]\naddr = \"127.0.0.1:1\"\nmax_conections = 5\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("wyoming"), "{msg}");
        assert!(msg.contains("max_conections"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn a_bad_value_is_named_with_its_key() {
        let err = parse("[http]\naddr = \"not an address\"\n").unwrap_err();
        assert!(err.to_string().contains("http.addr"), "{err}");
        let err = parse("[log]\nformat = \"xml\"\n").unwrap_err();
        assert!(err.to_string().contains("log.format"), "{err}");
        let err = parse("[wyoming]\nmax_connections = -1\n").unwrap_err();
        assert!(err.to_string().contains("wyoming.max_connections"), "{err}");
        let err = parse("[wyoming]\nmax_connections = 0\n").unwrap_err();
        assert!(err.to_string().contains("wyoming.max_connections"), "{err}");
        let err = parse("[log]\nlevel = \"info,[[[\"\n").unwrap_err();
        assert!(err.to_string().contains("log.level"), "{err}");
        let err = parse("[http]\naddr = \"0.0.0.0:10700\"\n").unwrap_err();
        assert!(err.to_string().contains("http.addr"), "{err}");
    }

    /// Each text is refused with an error that names its key.
    fn refused(cases: &[(&str, &str)]) {
        for (text, key) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn voice_scales_are_checked() {
        let config = parse("[tts]\nlength_scale = 1.2\nnoise_scale = 0.5\nnoise_w = 0\n").unwrap();
        assert_eq!(config.tts.length_scale, Some(1.2));
        refused(&[
            ("[tts]\nlength_scale = 0.0\n", "tts.length_scale"),
            ("[tts]\nlength_scale = 50.0\n", "tts.length_scale"),
            ("[tts]\nnoise_scale = -1.0\n", "tts.noise_scale"),
            ("[tts]\nnoise_w = 3.0\n", "tts.noise_w"),
        ]);
    }

    #[test]
    fn wake_settings_are_checked() {
        let config =
            parse("[wake]\nthreshold = 0.7\ntrigger_level = 2\nrefractory_secs = 0.5\n").unwrap();
        assert_eq!(config.wake.threshold, 0.7);
        assert_eq!(config.wake.trigger_level, 2);
        refused(&[
            ("[wake]\nthreshold = 0.0\n", "wake.threshold"),
            ("[wake]\nthreshold = 1.5\n", "wake.threshold"),
            ("[wake]\ntrigger_level = 0\n", "wake.trigger_level"),
            ("[wake]\nrefractory_secs = -1.0\n", "wake.refractory_secs"),
            ("[wake]\nmodels = []\n", "unknown field"),
        ]);
    }

    #[test]
    fn guided_decode_settings_are_checked() {
        let config = parse("[stt.grammar]\npenalty = 20.0\nbeams = 5\n").unwrap();
        assert_eq!(
            (config.stt.grammar.penalty, config.stt.grammar.beams),
            (20.0, 5)
        );
        assert_eq!(parse("").unwrap().stt.grammar.beams, 4);
        refused(&[
            ("[stt.grammar]\npenalty = 0.0\n", "stt.grammar.penalty"),
            ("[stt.grammar]\nbeams = 0\n", "stt.grammar.beams"),
            ("[stt.grammar]\nbeams = 9\n", "stt.grammar.beams"),
        ]);
    }

    #[test]
    fn the_three_silences_are_checked_in_order() {
        let vad = parse("").unwrap().stt.vad;
        assert_eq!(
            (
                vad.min_silence_ms,
                vad.sentence_silence_ms,
                vad.max_silence_ms
            ),
            (150, 250, 1200)
        );
        let vad = parse("[stt.vad]\nmin_silence_ms = 200\nsentence_silence_ms = 200\n")
            .unwrap()
            .stt
            .vad;
        assert_eq!((vad.min_silence_ms, vad.sentence_silence_ms), (200, 200));
        refused(&[
            ("[stt.vad]\nmin_silence_ms = 32\n", "stt.vad.min_silence_ms"),
            (
                "[stt.vad]\nmin_silence_ms = 300\n",
                "stt.vad.sentence_silence_ms: must be at least stt.vad.min_silence_ms",
            ),
            (
                "[stt.vad]\nsentence_silence_ms = 1500\n",
                "stt.vad.max_silence_ms: must be at least stt.vad.sentence_silence_ms",
            ),
        ]);
    }

    #[test]
    fn invalid_toml_is_an_error_with_a_line() {
        let err = parse("[wyoming\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn overrides_win_over_the_file() {
        let config = parse("[wyoming]\naddr = \"127.0.0.1:1\"\n").unwrap();
        let overrides = Overrides {
            wyoming_addr: Some("127.0.0.1:2".parse().unwrap()),
            log_format: Some(LogFormat::Json),
            no_zeroconf: true,
            ..Default::default()
        };
        let config = config.with_overrides(&overrides);
        assert_eq!(config.wyoming.addr.port(), 2);
        assert_eq!(config.log.format, LogFormat::Json);
        assert!(!config.wyoming.zeroconf.enabled);
    }

    #[test]
    fn model_base_urls_must_be_http_urls_and_are_named() {
        let config = parse("[models]\nwhisper_base_url = \"http://127.0.0.1:8080/m/\"\n").unwrap();
        assert_eq!(
            config.models.whisper_base_url.as_str(),
            "http://127.0.0.1:8080/m/"
        );
        assert_eq!(
            config.models.piper_base_url.as_str(),
            catalog::DEFAULT_PIPER_BASE_URL
        );
        let err = parse("[models]\nwake_base_url = \"ftp://mirror/wake\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("models.wake_base_url") && msg.contains("http"),
            "{msg}"
        );
        let err = parse("[models]\npiper_base_url = \"not a url\"\n").unwrap_err();
        assert!(err.to_string().contains("models.piper_base_url"), "{err}");
        let err = parse("[models]\nread_timeout_secs = 0\n").unwrap_err();
        assert!(
            err.to_string().contains("models.read_timeout_secs"),
            "{err}"
        );
        let err = parse("[models]\nbase_url = \"http://x/\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn extra_models_parse_and_bad_ones_are_named() {
        let config = parse(
            "[[models.extra]]\nname = \"my-model\"\nkind = \"whisper\"\n\
             file = \"whisper/ggml-my.bin\"\nurl = \"https://example.com/my.bin\"\n\
             sha256 = \"b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9\"\n",
        )
        .unwrap();
        let extra = &config.models.extra[0];
        assert_eq!(extra.name, "my-model");
        assert_eq!(extra.kind, ModelKind::Whisper);
        assert_eq!(extra.sha256, Some(Sha256Digest::of(b"hello world")));

        let entry = |fields: &str| {
            format!(
                "[[models.extra]]\nname = \"x\"\nkind = \"wake\"\nfile = \"w/x.onnx\"\n\
                 url = \"http://h/x\"\n{fields}"
            )
        };
        let cases = [
            (entry("sha256 = \"abc\"\n"), "models.extra[0].sha256"),
            (entry("size = 3\n"), "unknown field"),
            (
                entry("").replace("\"wake\"", "\"tts\""),
                "models.extra[0].kind",
            ),
            (
                entry("").replace("w/x.onnx", "../x.onnx"),
                "models.extra.file",
            ),
            (entry("").replace("w/x.onnx", "/etc/x"), "models.extra.file"),
            (
                entry("").replace("http://h/x", "file:///x"),
                "models.extra.url",
            ),
            (
                entry("").replace("name = \"x\"", "name = \"whisper-tiny.en\""),
                "already a built-in model",
            ),
            (format!("{}{}", entry(""), entry("")), "more than one"),
        ];
        for (text, needle) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}\n=> {err}");
        }
    }

    #[test]
    fn proxmox_section_parses_and_bad_values_are_named() {
        let pin = ["AB"; 32].join(":");
        let config = parse(&format!(
            "[proxmox]\nenabled = true\nurls = [\"https://192.168.1.11:8006\", \"https://pve2:8006/\"]\n\
             token_secret = \"0f3c-secret\"\nfingerprints = [\"{pin}\"]\n"
        ))
        .unwrap();
        assert!(config.proxmox.enabled);
        assert_eq!(config.proxmox.urls.len(), 2);
        assert_eq!(config.proxmox.token_id, DEFAULT_PROXMOX_TOKEN_ID);
        assert_eq!(
            config.proxmox.token_secret.as_ref().map(Secret::expose),
            Some("0f3c-secret")
        );

        let cases = [
            ("enabled = true\n", "proxmox.urls"),
            ("urls = [\"ftp://pve:8006\"]\n", "proxmox.urls"),
            ("urls = [\"not a url\"]\n", "proxmox.urls"),
            (
                "enabled = true\nurls = [\"https://pve:8006\"]\ntoken_id = \"jarvis\"\n",
                "proxmox.token_id",
            ),
            ("fingerprints = [\"AA:BB\"]\n", "proxmox.fingerprints"),
            (
                "fingerprints = [\"zz\"]\ninsecure_skip_verify = true\n",
                "proxmox.fingerprints",
            ),
            (
                "ca_file = \"/ca.pem\"\ninsecure_skip_verify = true\n",
                "proxmox.insecure_skip_verify",
            ),
            (
                "token_secret = \"a\"\ntoken_secret_file = \"/s\"\n",
                "proxmox.token_secret_file",
            ),
            ("timeout_secs = 0\n", "proxmox.timeout_secs"),
            ("task_poll_ms = 0\n", "proxmox.task_poll_ms"),
            ("token = \"x\"\n", "unknown field"),
        ];
        for (body, needle) in cases {
            let text = format!("[proxmox]\n{body}");
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}\n=> {err}");
        }
    }

    #[test]
    fn the_token_secret_never_shows_in_debug_and_the_environment_wins() {
        let config = parse("[proxmox]\ntoken_secret_file = \"/etc/jarvis/token\"\n").unwrap();
        let overrides = Overrides {
            proxmox_token_secret: Some(Secret::new("env-s3cr3t")),
            ..Default::default()
        };
        let config = config.with_overrides(&overrides);
        assert_eq!(
            config.proxmox.token_secret.as_ref().map(Secret::expose),
            Some("env-s3cr3t")
        );
        assert_eq!(config.proxmox.token_secret_file, None);
        let debug = format!("{config:?} {overrides:?}");
        assert!(!debug.contains("env-s3cr3t"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn keys_and_passwords_never_show_in_debug_output() {
        let config = parse(
            "[http]\napi_key = \"http-key-1\"\n[llm]\napi_key = \"llm-key-2\"\n\
             [policy]\napproval_keyword = \"keyword-3\"\n",
        )
        .unwrap();
        assert_eq!(config.http.api_key.expose(), "http-key-1");
        let shown = format!("{config:?}");
        for secret in ["http-key-1", "llm-key-2", "keyword-3"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
    }

    #[test]
    fn the_example_config_loads_and_equals_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/jarvis.toml");
        let config = Config::load(&path).unwrap();
        assert_eq!(
            config,
            Config::default(),
            "config/jarvis.toml must document the defaults"
        );
    }
}
