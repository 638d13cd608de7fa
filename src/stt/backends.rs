//! Speech-to-text backends: `[[stt.backends]]`, each the local whisper engine or a remote Wyoming
//! server, tried in priority order.
//!
//! [`SttBackends`] holds every backend with its health. A remote backend's health comes from
//! `describe` → `info` every `health_interval_secs`: one that answers with a speech-to-text
//! program is up, and what it offers is kept for our own `info`. A transcription that fails on a
//! backend marks it down until its next good answer; [`super::route`] then retries the request on
//! the next backend with the audio it kept.
//!
//! Loops: every request Jarvis forwards carries the ids of the Jarvis instances it went through
//! (`jarvis_hops` in the `transcribe` event's `context`). A Jarvis that finds its own id there
//! refuses the request with a `backend-loop` error, and the Jarvis that sent it stops using that
//! backend for good, so a Jarvis configured as its own backend (directly or through another)
//! never recurses.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};
use wyoming::asr::Transcribe;
use wyoming::codec::Limits;
use wyoming::info::{
    AsrModel, AsrProgram, Attribution, Info, TtsProgram, TtsVoice, WakeModel, WakeProgram,
};

use super::SttService;
use crate::config::{ConfigError, invalid_at};

/// The key in `transcribe.context` that lists the Jarvis instances a request went through.
pub const HOPS_KEY: &str = "jarvis_hops";
/// The `code` of the `error` event that refuses a request that looped back to its sender.
pub const LOOP_CODE: &str = "backend-loop";
/// Most Jarvis instances a request may pass through: a longer chain is treated as a loop.
pub const MAX_HOPS: usize = 8;
/// A connection to a backend normally opens in well under this, on a LAN.
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1000;
/// Whisper large on a GPU, or tiny on a CPU, answers a short command well within this.
const DEFAULT_RESULT_TIMEOUT_MS: u64 = 10_000;
/// Often enough that a backend back up is used again within seconds, rarely enough to cost nothing.
const DEFAULT_HEALTH_INTERVAL_SECS: u64 = 5;
/// A transcript's text and chunks from a remote: far more than any spoken request.
pub(crate) const MAX_REMOTE_TEXT: usize = 64 * 1024;

/// Which Wyoming service a set of backends provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Speech-to-text (`asr` in `info`).
    Stt,
    /// Text-to-speech (`tts` in `info`).
    Tts,
    /// Wake word detection (`wake` in `info`).
    Wake,
}

impl Service {
    /// For logs and messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Stt => "speech-to-text",
            Self::Tts => "text-to-speech",
            Self::Wake => "wake word",
        }
    }

    /// The config section.
    fn section(self) -> &'static str {
        match self {
            Self::Stt => "stt",
            Self::Tts => "tts",
            Self::Wake => "wake",
        }
    }
}

/// `[[tts.backends]]` has the same settings; `models` (or `voices`) lists voices.
pub type TtsBackendConfig = SttBackendConfig;
/// The text-to-speech backends are kept as the speech-to-text ones are.
pub type TtsBackends = Backends;
/// `[[wake.backends]]` has the same settings; `models` (or `wake_words`) lists wake words.
pub type WakeBackendConfig = SttBackendConfig;
/// The wake word backends are kept as the speech-to-text ones are.
pub type WakeBackends = Backends;
/// See [`Backends`].
pub type SttBackends = Backends;

/// Where a backend's transcriptions are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A Wyoming server at `addr`.
    #[default]
    Remote,
    /// This Jarvis's own whisper engine (`[stt]` settings).
    Local,
}

/// `[[stt.backends]]`: one place transcriptions can be made.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SttBackendConfig {
    /// A name for logs and `/health` (default: the address, or `local`).
    pub name: Option<String>,
    /// `remote` (a Wyoming server) or `local` (this Jarvis's whisper).
    pub kind: BackendKind,
    /// `host:port` of a remote Wyoming server.
    pub addr: Option<String>,
    /// Instead of `addr`: the zeroconf instance name of a remote Wyoming server (`_wyoming._tcp`),
    /// found on the LAN (see [`crate::discovery`]).
    pub zeroconf: Option<String>,
    /// Instead of `addr`: any Wyoming server found over zeroconf (never this Jarvis).
    pub discover: bool,
    /// Lower is tried first; equal priorities keep the order of the file.
    pub priority: i32,
    /// Models this backend should serve (`transcribe.name`), or for text-to-speech the voices
    /// (`synthesize.voice.name`; `voices` is another name for it), or for wake word detection
    /// the wake words (`detect.names`; `wake_words` is another name for it); empty = any.
    #[serde(alias = "voices", alias = "wake_words")]
    pub models: Vec<String>,
    /// Languages this backend should serve (`transcribe.language`); empty = any.
    pub languages: Vec<String>,
    /// Longest wait for a connection, in ms.
    pub connect_timeout_ms: u64,
    /// Longest wait for the transcript once the audio has ended (and for `info`), in ms.
    pub result_timeout_ms: u64,
    /// Seconds between health checks (`describe`).
    pub health_interval_secs: u64,
}

impl Default for SttBackendConfig {
    fn default() -> Self {
        Self {
            name: None,
            kind: BackendKind::Remote,
            addr: None,
            zeroconf: None,
            discover: false,
            priority: 0,
            models: Vec::new(),
            languages: Vec::new(),
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            result_timeout_ms: DEFAULT_RESULT_TIMEOUT_MS,
            health_interval_secs: DEFAULT_HEALTH_INTERVAL_SECS,
        }
    }
}

impl SttBackendConfig {
    /// The name in logs and `/health`.
    pub fn label(&self) -> String {
        match (&self.name, self.kind, &self.addr) {
            (Some(name), _, _) => name.clone(),
            (None, BackendKind::Local, _) => "local".into(),
            (None, BackendKind::Remote, Some(addr)) => addr.clone(),
            (None, BackendKind::Remote, None) => match (&self.zeroconf, self.discover) {
                (Some(name), _) => format!("zeroconf:{name}"),
                (None, true) => "zeroconf".into(),
                (None, false) => "remote".into(),
            },
        }
    }

    /// The longest wait for a connection.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// The longest wait for a transcript after the audio ended.
    pub fn result_timeout(&self) -> Duration {
        Duration::from_millis(self.result_timeout_ms)
    }

    /// Whether this wake word backend should listen for the wake word `name`.
    pub fn serves_wake_word(&self, name: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| same_wake_word(m, name))
    }

    /// Whether this backend should serve a request for `model` in `language`.
    fn serves(&self, model: Option<&str>, language: Option<&str>) -> bool {
        let fits = |list: &[String], wanted: Option<&str>| {
            list.is_empty() || wanted.is_none_or(|w| list.iter().any(|x| x.eq_ignore_ascii_case(w)))
        };
        fits(&self.models, model) && fits(&self.languages, language)
    }
}

/// Checks the backends of `[stt]`.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the key and the fix.
pub fn validate(
    service: Service,
    backends: &[SttBackendConfig],
    enabled: bool,
    origin: &std::path::Path,
) -> Result<(), ConfigError> {
    let invalid = invalid_at(origin);
    let key = |field: &str| -> &'static str {
        match (service, field) {
            (Service::Stt, "addr") => "stt.backends.addr",
            (Service::Stt, "kind") => "stt.backends.kind",
            (Service::Stt, "timeout") => "stt.backends.connect_timeout_ms",
            (Service::Stt, _) => "stt.backends.health_interval_secs",
            (Service::Tts, "addr") => "tts.backends.addr",
            (Service::Tts, "kind") => "tts.backends.kind",
            (Service::Tts, "timeout") => "tts.backends.connect_timeout_ms",
            (Service::Tts, _) => "tts.backends.health_interval_secs",
            (Service::Wake, "addr") => "wake.backends.addr",
            (Service::Wake, "kind") => "wake.backends.kind",
            (Service::Wake, "timeout") => "wake.backends.connect_timeout_ms",
            (Service::Wake, _) => "wake.backends.health_interval_secs",
        }
    };
    let section = service.section();
    let mut locals = 0;
    for backend in backends {
        let label = backend.label();
        let found = backend.zeroconf.is_some() || backend.discover;
        if found && (backend.addr.is_some() || backend.kind == BackendKind::Local) {
            return invalid(
                key("addr"),
                format!(
                    "backend {label}: give either addr, or zeroconf / discover = true (a remote \
                     found on the LAN), not both; a local backend has neither"
                ),
            );
        }
        if backend
            .zeroconf
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            return invalid(
                key("addr"),
                "zeroconf = \"\" names no server: write its instance name, or use discover = true"
                    .into(),
            );
        }
        match (backend.kind, &backend.addr) {
            (BackendKind::Remote, None) if found => {}
            (BackendKind::Remote, None) => {
                return invalid(
                    key("addr"),
                    format!(
                        "remote backend {label} needs an addr such as \"gpu-box:10300\", or \
                         zeroconf = \"<instance name>\", or discover = true"
                    ),
                );
            }
            (BackendKind::Remote, Some(addr))
                if !addr.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
                }) =>
            {
                return invalid(
                    key("addr"),
                    format!("{addr} is not host:port; write it as \"gpu-box:10300\""),
                );
            }
            (BackendKind::Local, Some(_)) => {
                return invalid(
                    key("addr"),
                    "a local backend has no addr; remove it or set kind = \"remote\"".into(),
                );
            }
            (BackendKind::Local, None) => {
                locals += 1;
                if !enabled {
                    return invalid(
                        key("kind"),
                        format!(
                            "a local backend needs the local engine: set {section}.enabled = \
                             true, or remove the local backend"
                        ),
                    );
                }
            }
            _ => {}
        }
        if backend.connect_timeout_ms == 0 || backend.result_timeout_ms == 0 {
            return invalid(
                key("timeout"),
                format!("backend {label}: timeouts must be at least 1 ms"),
            );
        }
        if backend.health_interval_secs == 0 {
            return invalid(
                key("health"),
                format!("backend {label}: check health at most once a second (use 1 or more)"),
            );
        }
    }
    if locals > 1 {
        return invalid(
            key("kind"),
            "only one local backend is possible; remove the others".into(),
        );
    }
    Ok(())
}

/// What is known of a backend's health.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Usable: the last check or request went well (a backend never checked counts as up).
    pub up: bool,
    /// This backend is Jarvis itself (directly or through another Jarvis): never used again.
    pub looped: bool,
    /// How long the last `describe` took.
    pub latency: Option<Duration>,
    /// Why it is down, for logs and `/health`.
    pub reason: Option<String>,
    /// What the backend offered in its last `info` (speech-to-text backends).
    pub programs: Vec<AsrProgram>,
    /// What the backend offered in its last `info` (text-to-speech backends).
    pub tts_programs: Vec<TtsProgram>,
    /// What the backend offered in its last `info` (wake word backends).
    pub wake_programs: Vec<WakeProgram>,
    /// The last failure (a check or a request), kept after it comes back, for `/health`.
    pub last_error: Option<String>,
    /// Requests (streams) routed to it since start-up.
    pub requests: u64,
    /// Where it was found over zeroconf (`zeroconf` / `discover` backends), as host:port.
    pub found_at: Option<String>,
    /// Health checks that failed since start-up (a wake word stream leaves a backend whose
    /// check fails while it listens there).
    pub failed_checks: u64,
}

/// A backend's state in one word, for `/health` and MQTT: `up`, `down` or `loop`.
pub fn state_of(health: &Health) -> &'static str {
    match (health.looped, health.up) {
        (true, _) => "loop",
        (false, true) => "up",
        (false, false) => "down",
    }
}

/// One backend and what is known of it.
#[derive(Debug)]
pub struct Backend {
    /// Its settings.
    pub config: SttBackendConfig,
    /// Its name in logs.
    pub label: String,
    service: Service,
    health: Mutex<Health>,
}

/// Why a remote backend stopped serving a request.
#[derive(Debug)]
pub enum RemoteFailure {
    /// The backend leads back to this Jarvis.
    Loop(String),
    /// Anything else: it is marked down until it answers again.
    Failed(String),
}

impl Backend {
    /// Marks the backend after `failure` (down, or a loop) and returns the line the client's
    /// error gets for it: `label: reason`. The request moves on to the next backend.
    pub fn record(&self, failure: RemoteFailure) -> String {
        let reason = match failure {
            RemoteFailure::Loop(reason) => {
                self.mark_looped(&reason);
                reason
            }
            RemoteFailure::Failed(reason) => {
                warn!(
                    backend = %self.label,
                    service = self.service.noun(),
                    %reason,
                    "backend failed; the request moves to the next one"
                );
                self.mark_down(&reason);
                reason
            }
        };
        format!("{}: {reason}", self.label)
    }

    /// Whether it is the local engine.
    pub fn is_local(&self) -> bool {
        self.config.kind == BackendKind::Local
    }

    /// A copy of its health.
    pub fn health(&self) -> Health {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Health> {
        // A panic while holding this lock leaves plain data behind: keep using it.
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks it down after a failed request.
    pub fn mark_down(&self, reason: &str) {
        let mut health = self.lock();
        if health.up {
            warn!(backend = %self.label, service = self.service.noun(), %reason, "backend down");
        }
        health.up = false;
        health.reason = Some(reason.to_owned());
        health.last_error = Some(reason.to_owned());
    }

    /// Counts a request routed to it.
    pub fn routed(&self) {
        self.lock().requests += 1;
    }

    /// The settings to connect with: for a backend found over zeroconf, its address now.
    pub fn connect_config(&self) -> SttBackendConfig {
        let mut config = self.config.clone();
        if config.addr.is_none() {
            config.addr = self.lock().found_at.clone();
        }
        config
    }

    /// Sets (or forgets) where a zeroconf backend was found.
    pub fn set_found_at(&self, addr: Option<String>) {
        let mut health = self.lock();
        if health.found_at != addr {
            info!(backend = %self.label, service = self.service.noun(), addr = ?addr, "backend found over zeroconf");
            health.found_at = addr;
        }
    }

    /// Whether it is found over zeroconf rather than configured with an address.
    pub fn is_discovered(&self) -> bool {
        !self.is_local() && self.config.addr.is_none()
    }

    /// Marks it as a loop back to this Jarvis: never used again.
    pub fn mark_looped(&self, reason: &str) {
        let mut health = self.lock();
        if !health.looped {
            error!(
                backend = %self.label,
                service = self.service.noun(),
                %reason,
                "backend leads back to this Jarvis (directly or through another Jarvis); it will \
                 not be used: remove it from {}.backends",
                self.service.section()
            );
        }
        health.up = false;
        health.looped = true;
        health.reason = Some(format!("loop: {reason}"));
        health.last_error = health.reason.clone();
    }

    fn checked(&self, result: Result<(Duration, Info), String>) {
        let mut health = self.lock();
        if health.looped {
            return;
        }
        match result {
            Ok((latency, info)) => {
                let programs: Vec<AsrProgram> =
                    info.asr.into_iter().filter(|p| p.installed).collect();
                let tts_programs: Vec<TtsProgram> =
                    info.tts.into_iter().filter(|p| p.installed).collect();
                let wake_programs: Vec<WakeProgram> = info
                    .wake
                    .into_iter()
                    .filter(|p| p.installed && p.models.iter().any(|m| m.installed))
                    .collect();
                let offers = match self.service {
                    Service::Stt => !programs.is_empty(),
                    Service::Tts => !tts_programs.is_empty(),
                    Service::Wake => !wake_programs.is_empty(),
                };
                health.latency = Some(latency);
                health.programs = programs;
                health.tts_programs = tts_programs;
                health.wake_programs = wake_programs;
                if !offers {
                    let reason = format!("its info offers no {}", self.service.noun());
                    if health.up {
                        warn!(backend = %self.label, service = self.service.noun(), %reason, "backend down");
                    }
                    health.up = false;
                    health.failed_checks += 1;
                    health.last_error = Some(reason.clone());
                    health.reason = Some(reason);
                    return;
                }
                if !health.up {
                    info!(backend = %self.label, service = self.service.noun(), latency_ms = latency.as_millis() as u64, "backend up");
                }
                health.up = true;
                health.reason = None;
            }
            Err(reason) => {
                if health.up {
                    warn!(backend = %self.label, service = self.service.noun(), %reason, "backend down");
                }
                health.up = false;
                health.failed_checks += 1;
                health.last_error = Some(reason.clone());
                health.reason = Some(reason);
            }
        }
    }
}

/// Every configured backend of one service, in the order they are tried.
#[derive(Debug)]
pub struct Backends {
    service: Service,
    backends: Vec<Backend>,
    /// This Jarvis's id in `jarvis_hops`.
    instance: String,
    /// The local speech-to-text engine, when one of the backends is local.
    pub local: Option<Arc<SttService>>,
    /// The local text-to-speech engine, when one of the backends is local.
    pub local_tts: Option<Arc<crate::tts::TtsService>>,
    /// The local wake word engine, when one of the backends is local.
    pub local_wake: Option<Arc<crate::wake::WakeService>>,
    /// Speech-to-text: send `transcript-start/chunk/stop` around the transcript.
    pub streaming: bool,
    /// Speech-to-text: longest audio kept for a request, in seconds. Text-to-speech: longest
    /// text kept, in characters.
    pub max_audio_secs: u32,
}

impl Backends {
    /// Speech-to-text backends of `configs`, sorted by priority; `local` is the loaded engine.
    pub fn new(
        configs: &[SttBackendConfig],
        local: Option<Arc<SttService>>,
        instance: String,
        streaming: bool,
        max_audio_secs: u32,
    ) -> Self {
        let mut backends = Self::of(Service::Stt, configs, instance, streaming, max_audio_secs);
        backends.local = local;
        backends
    }

    /// Text-to-speech backends of `configs`, sorted by priority; `local` is the loaded engine.
    pub fn tts(
        configs: &[SttBackendConfig],
        local: Option<Arc<crate::tts::TtsService>>,
        instance: String,
        streaming: bool,
        max_text_chars: u32,
    ) -> Self {
        let mut backends = Self::of(Service::Tts, configs, instance, streaming, max_text_chars);
        backends.local_tts = local;
        backends
    }

    /// Wake word backends of `configs`, sorted by priority; `local` is the loaded engine.
    pub fn wake(
        configs: &[SttBackendConfig],
        local: Option<Arc<crate::wake::WakeService>>,
        instance: String,
    ) -> Self {
        let mut backends = Self::of(Service::Wake, configs, instance, false, 0);
        backends.local_wake = local;
        backends
    }

    /// Which service these backends provide.
    pub fn service(&self) -> Service {
        self.service
    }

    fn of(
        service: Service,
        configs: &[SttBackendConfig],
        instance: String,
        streaming: bool,
        max_audio_secs: u32,
    ) -> Self {
        let mut backends: Vec<Backend> = configs
            .iter()
            .map(|config| Backend {
                label: config.label(),
                service,
                config: config.clone(),
                health: Mutex::new(Health {
                    up: true,
                    ..Health::default()
                }),
            })
            .collect();
        // Stable: equal priorities keep the file's order.
        backends.sort_by_key(|b| b.config.priority);
        Self {
            service,
            backends,
            instance,
            local: None,
            local_tts: None,
            local_wake: None,
            streaming,
            max_audio_secs,
        }
    }

    /// The backend at `index`.
    pub fn get(&self, index: usize) -> Option<&Backend> {
        self.backends.get(index)
    }

    /// Every backend, in priority order.
    pub fn all(&self) -> &[Backend] {
        &self.backends
    }

    /// This Jarvis's id in `jarvis_hops`.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The backends to try for `request`, best first: those that serve its model and language,
    /// healthy ones before the rest (a backend marked down is still worth a try when every
    /// other has failed). Backends that loop back here are never tried.
    pub fn candidates(&self, request: Option<&Transcribe>) -> Vec<usize> {
        self.candidates_for(
            request.and_then(|t| t.name.as_deref()),
            request.and_then(|t| t.language.as_deref()),
        )
    }

    /// The backends to try for `model` (or voice) in `language`, best first; see
    /// [`Backends::candidates`].
    pub fn candidates_for(&self, model: Option<&str>, language: Option<&str>) -> Vec<usize> {
        let usable: Vec<(usize, bool)> = self
            .backends
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let health = b.lock();
                (!health.looped).then_some((i, health.up))
            })
            .collect();
        let mut serving: Vec<(usize, bool)> = usable
            .iter()
            .copied()
            .filter(|(i, _)| {
                self.backends
                    .get(*i)
                    .is_some_and(|b| b.config.serves(model, language))
            })
            .collect();
        if serving.is_empty() {
            // None is meant for this model or language: let each say so itself.
            serving = usable;
        }
        let (up, down): (Vec<_>, Vec<_>) = serving.into_iter().partition(|(_, up)| *up);
        up.into_iter().chain(down).map(|(i, _)| i).collect()
    }

    /// The `transcribe` event to forward: the request's own, with this Jarvis added to its hops.
    pub fn forwarded(&self, request: Option<&Transcribe>) -> Transcribe {
        let mut transcribe = request.cloned().unwrap_or_default();
        transcribe.context = Some(self.with_hop(transcribe.context.take()));
        transcribe
    }

    /// A request's `context` with this Jarvis added to its hops.
    pub fn with_hop(&self, context: Option<wyoming::Data>) -> wyoming::Data {
        let mut context = context.unwrap_or_default();
        let mut hops = hops_of(Some(&context));
        hops.push(self.instance.clone());
        context.insert(HOPS_KEY.into(), serde_json::json!(hops));
        context
    }

    /// Whether a request that arrived with `transcribe` has already been through this Jarvis
    /// (or through too many); the reason when it has.
    pub fn loop_in(instance: &str, transcribe: Option<&Transcribe>) -> Option<String> {
        Self::loop_in_context(instance, transcribe.and_then(|t| t.context.as_ref()))
    }

    /// [`Backends::loop_in`] for any request's `context`.
    pub fn loop_in_context(instance: &str, context: Option<&wyoming::Data>) -> Option<String> {
        let hops = hops_of(context);
        if hops.iter().any(|h| h == instance) {
            Some(format!(
                "this request has already been through this Jarvis ({}): a backend points \
                 back at it; fix stt.backends, tts.backends or wake.backends",
                hops.join(" → ")
            ))
        } else if hops.len() >= MAX_HOPS {
            Some(format!(
                "this request has been through {} Jarvis instances: the backends form a loop",
                hops.len()
            ))
        } else {
            None
        }
    }

    /// The one `asr` program `info` shows: the models and languages of every backend merged,
    /// each model once. `local` is the local engine's own program.
    pub fn program(&self, local: Option<AsrProgram>) -> AsrProgram {
        let mut program = local.clone().unwrap_or_else(|| AsrProgram {
            name: "jarvis-stt".into(),
            attribution: Attribution::new("Jarvis", env!("CARGO_PKG_REPOSITORY")),
            installed: true,
            description: Some("Jarvis speech-to-text (routed to Wyoming backends)".into()),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            models: Vec::new(),
            supports_transcript_streaming: self.streaming,
            requires_external_vad: true,
            prefers_auto_gain_enabled: true,
            prefers_noise_reduction_enabled: true,
        });
        // Models come from the backends themselves, the local one included, in priority order.
        program.models.clear();
        // Jarvis ends speech itself only when every backend does.
        let mut external_vad = false;
        for backend in &self.backends {
            let health = backend.lock();
            if health.looped {
                continue;
            }
            let programs: Vec<AsrProgram> = if backend.is_local() {
                local.iter().cloned().collect()
            } else {
                health.programs.clone()
            };
            if programs.is_empty() || programs.iter().any(|p| p.requires_external_vad) {
                external_vad = true;
            }
            for model in programs.into_iter().flat_map(|p| p.models) {
                if !backend.config.serves(Some(&model.name), None) {
                    continue;
                }
                let languages: Vec<String> = model
                    .languages
                    .iter()
                    .filter(|l| backend.config.serves(None, Some(l)))
                    .cloned()
                    .collect();
                merge_model(&mut program.models, model, languages);
            }
        }
        program.requires_external_vad = external_vad;
        program.supports_transcript_streaming = self.streaming;
        program
    }

    /// The one `tts` program `info` shows: the voices of every backend merged, each once.
    /// `local` is the local engine's own program.
    pub fn tts_program(&self, local: Option<TtsProgram>) -> TtsProgram {
        let mut program = local.clone().unwrap_or_else(|| TtsProgram {
            name: "jarvis-tts".into(),
            attribution: Attribution::new("Jarvis", env!("CARGO_PKG_REPOSITORY")),
            installed: true,
            description: Some("Jarvis text-to-speech (routed to Wyoming backends)".into()),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            voices: Vec::new(),
            supports_synthesize_streaming: self.streaming,
        });
        program.voices.clear();
        for backend in &self.backends {
            let health = backend.lock();
            if health.looped {
                continue;
            }
            let programs: Vec<TtsProgram> = if backend.is_local() {
                local.iter().cloned().collect()
            } else {
                health.tts_programs.clone()
            };
            for voice in programs.into_iter().flat_map(|p| p.voices) {
                if !backend.config.serves(Some(&voice.name), None) {
                    continue;
                }
                merge_voice(&mut program.voices, voice);
            }
        }
        program.supports_synthesize_streaming = self.streaming;
        program
    }

    /// The backends to try for a `detect` naming `names` (none or empty: any wake word), best
    /// first: those configured for one of the names and, once their `info` is known, offering
    /// one; healthy ones before the rest. Backends that loop back here are never tried.
    pub fn wake_candidates(&self, names: &[String]) -> Vec<usize> {
        let usable: Vec<(usize, bool)> = self
            .backends
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let health = b.lock();
                (!health.looped).then_some((i, health.up))
            })
            .collect();
        let offered = |backend: &Backend| -> Vec<String> {
            if backend.is_local() {
                return self
                    .local_wake
                    .iter()
                    .flat_map(|w| w.words())
                    .flat_map(|w| [w.name.clone(), w.stem.clone()])
                    .collect();
            }
            let health = backend.lock();
            health
                .wake_programs
                .iter()
                .flat_map(|p| &p.models)
                .map(|m| m.name.clone())
                .collect()
        };
        let mut serving: Vec<(usize, bool)> = usable
            .iter()
            .copied()
            .filter(|(i, _)| {
                self.backends.get(*i).is_some_and(|b| {
                    let offers = offered(b);
                    names.is_empty()
                        || names.iter().any(|n| {
                            b.config.serves_wake_word(n)
                                && (offers.is_empty()
                                    || offers.iter().any(|o| same_wake_word(o, n)))
                        })
                })
            })
            .collect();
        if serving.is_empty() {
            // None offers these wake words: let each say so itself.
            serving = usable;
        }
        let (up, down): (Vec<_>, Vec<_>) = serving.into_iter().partition(|(_, up)| *up);
        up.into_iter().chain(down).map(|(i, _)| i).collect()
    }

    /// The one `wake` program `info` shows: the wake words of every backend merged, each once.
    /// `local` is the local engine's own program.
    pub fn wake_program(&self, local: Option<WakeProgram>) -> WakeProgram {
        let mut program = local.clone().unwrap_or_else(|| WakeProgram {
            name: "jarvis-wake".into(),
            attribution: Attribution::new("Jarvis", env!("CARGO_PKG_REPOSITORY")),
            installed: true,
            description: Some("Jarvis wake word (routed to Wyoming backends)".into()),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            models: Vec::new(),
        });
        program.models.clear();
        for backend in &self.backends {
            let health = backend.lock();
            if health.looped {
                continue;
            }
            let programs: Vec<WakeProgram> = if backend.is_local() {
                local.iter().cloned().collect()
            } else {
                health.wake_programs.clone()
            };
            for model in programs.into_iter().flat_map(|p| p.models) {
                if !model.installed || !backend.config.serves_wake_word(&model.name) {
                    continue;
                }
                merge_wake_model(&mut program.models, model);
            }
        }
        program
    }

    /// Checks every remote backend's health until `token` is cancelled.
    pub fn spawn_health(self: &Arc<Self>, token: CancellationToken) -> TaskTracker {
        let tracker = TaskTracker::new();
        for (index, backend) in self.backends.iter().enumerate() {
            if backend.is_local() {
                continue;
            }
            let backends = Arc::clone(self);
            let token = token.clone();
            tracker.spawn(async move {
                loop {
                    let Some(backend) = backends.get(index) else {
                        return;
                    };
                    let config = backend.connect_config();
                    let result = tokio::select! {
                        () = token.cancelled() => return,
                        result = check(&config) => result,
                    };
                    backend.checked(result);
                    let interval = Duration::from_secs(backend.config.health_interval_secs);
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep(interval) => {}
                    }
                }
            });
        }
        tracker.close();
        debug!(
            backends = self.backends.len(),
            service = self.service.noun(),
            "backend health checks started"
        );
        tracker
    }
}

/// Adds `model` to `models`, or its languages to the model of the same name already there.
fn merge_model(models: &mut Vec<AsrModel>, mut model: AsrModel, languages: Vec<String>) {
    match models.iter_mut().find(|m| m.name == model.name) {
        Some(known) => {
            for language in languages {
                if !known.languages.contains(&language) {
                    known.languages.push(language);
                }
            }
        }
        None => {
            model.languages = Vec::new();
            for language in languages {
                if !model.languages.contains(&language) {
                    model.languages.push(language);
                }
            }
            models.push(model);
        }
    }
}

/// Adds `model` to `models` unless a model of the same wake word is there; its languages are
/// added to that one.
fn merge_wake_model(models: &mut Vec<WakeModel>, model: WakeModel) {
    match models
        .iter_mut()
        .find(|m| same_wake_word(&m.name, &model.name))
    {
        Some(known) => {
            for language in model.languages {
                if !known.languages.contains(&language) {
                    known.languages.push(language);
                }
            }
        }
        None => models.push(model),
    }
}

/// Whether two wake word names mean the same word: equal ignoring case, spaces or `-` for `_`,
/// and a version suffix (`hey_jarvis` and `hey_jarvis_v0.1`; openWakeWord names its files so).
pub fn same_wake_word(a: &str, b: &str) -> bool {
    fn stem(name: &str) -> String {
        let name = name.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        match name.rfind("_v") {
            Some(at)
                if name.get(at + 2..).is_some_and(|v| {
                    !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.')
                }) =>
            {
                name.get(..at).unwrap_or_default().to_owned()
            }
            _ => name,
        }
    }
    stem(a) == stem(b)
}

/// Adds `voice` to `voices`, or its languages to the voice of the same name already there.
fn merge_voice(voices: &mut Vec<TtsVoice>, voice: TtsVoice) {
    match voices.iter_mut().find(|v| v.name == voice.name) {
        Some(known) => {
            for language in voice.languages {
                if !known.languages.contains(&language) {
                    known.languages.push(language);
                }
            }
        }
        None => voices.push(voice),
    }
}

/// The hops listed in a request's `context`.
fn hops_of(context: Option<&wyoming::Data>) -> Vec<String> {
    context
        .and_then(|c| c.get(HOPS_KEY))
        .and_then(serde_json::Value::as_array)
        .map(|hops| {
            hops.iter()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Read limits for a remote backend: it sends only text, so payloads stay small.
pub(crate) fn remote_limits() -> Limits {
    Limits {
        max_payload: MAX_REMOTE_TEXT,
        ..Limits::default()
    }
}

/// Connects to a remote speech-to-text backend within its connect timeout.
pub(crate) async fn connect(config: &SttBackendConfig) -> Result<wyoming::Client, String> {
    connect_with(config, remote_limits()).await
}

/// Connects to a remote backend within its connect timeout, with read limits.
pub(crate) async fn connect_with(
    config: &SttBackendConfig,
    limits: Limits,
) -> Result<wyoming::Client, String> {
    let Some(addr) = config.addr.as_deref() else {
        return Err(match &config.zeroconf {
            Some(name) => format!("no Wyoming server named {name:?} found over zeroconf yet"),
            None => "no other Wyoming server found over zeroconf yet".to_owned(),
        });
    };
    match tokio::time::timeout(
        config.connect_timeout(),
        wyoming::Client::connect_with(addr, limits),
    )
    .await
    {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(err)) => Err(format!("cannot connect to {addr}: {err}")),
        Err(_) => Err(format!(
            "no connection to {addr} within {} ms",
            config.connect_timeout_ms
        )),
    }
}

/// One health check: `describe`, and an `info` in time.
pub(crate) async fn check(config: &SttBackendConfig) -> Result<(Duration, Info), String> {
    let started = Instant::now();
    let mut client = connect(config).await?;
    let info = match tokio::time::timeout(config.result_timeout(), client.describe()).await {
        Ok(Ok(info)) => info,
        Ok(Err(err)) => return Err(format!("bad answer to describe: {err}")),
        Err(_) => {
            return Err(format!(
                "no info within {} ms of describe",
                config.result_timeout_ms
            ));
        }
    };
    Ok((started.elapsed(), info))
}

/// A fresh id for this Jarvis instance in `jarvis_hops`: random enough that two instances (two
/// processes, or two apps in one test process) never share one.
pub fn new_instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    format!("jarvis-{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(name: &str, priority: i32) -> SttBackendConfig {
        SttBackendConfig {
            name: Some(name.into()),
            addr: Some("127.0.0.1:1".into()),
            priority,
            ..SttBackendConfig::default()
        }
    }

    #[test]
    fn candidates_are_by_priority_healthy_first_and_never_a_loop() {
        let configs = [remote("b", 2), remote("a", 1), remote("c", 3)];
        let backends = SttBackends::new(&configs, None, "me".into(), true, 30);
        let names = |idx: Vec<usize>| -> Vec<String> {
            idx.into_iter()
                .map(|i| backends.get(i).unwrap().label.clone())
                .collect()
        };
        assert_eq!(names(backends.candidates(None)), ["a", "b", "c"]);
        backends.get(0).unwrap().mark_down("refused");
        assert_eq!(names(backends.candidates(None)), ["b", "c", "a"]);
        backends.get(1).unwrap().mark_looped("itself");
        assert_eq!(names(backends.candidates(None)), ["c", "a"]);
    }

    #[test]
    fn models_and_languages_pick_the_backends_that_serve_them() {
        let mut de = remote("de", 1);
        de.languages = vec!["de".into()];
        let any = remote("any", 2);
        let backends = SttBackends::new(&[de, any], None, "me".into(), true, 30);
        let german = Transcribe {
            language: Some("de".into()),
            ..Transcribe::default()
        };
        let english = Transcribe {
            language: Some("en".into()),
            ..Transcribe::default()
        };
        assert_eq!(backends.candidates(Some(&german)), [0, 1]);
        assert_eq!(backends.candidates(Some(&english)), [1]);
    }

    #[test]
    fn forwarded_requests_carry_the_hops_and_loops_are_seen() {
        let a = SttBackends::new(&[], None, "a".into(), true, 30);
        let b = SttBackends::new(&[], None, "b".into(), true, 30);
        let once = a.forwarded(None);
        assert!(SttBackends::loop_in("b", Some(&once)).is_none());
        assert!(SttBackends::loop_in("a", Some(&once)).is_some());
        let twice = b.forwarded(Some(&once));
        assert_eq!(hops_of(twice.context.as_ref()), ["a", "b"]);
        assert!(SttBackends::loop_in("a", Some(&twice)).is_some());
        assert!(SttBackends::loop_in("c", None).is_none());
    }

    #[test]
    fn merged_models_are_listed_once_with_every_language() {
        let model = |name: &str, langs: &[&str]| AsrModel {
            name: name.into(),
            attribution: Attribution::new("x", "y"),
            installed: true,
            description: None,
            version: None,
            languages: langs.iter().map(|l| (*l).to_owned()).collect(),
        };
        let mut models = Vec::new();
        merge_model(&mut models, model("tiny", &["en"]), vec!["en".into()]);
        merge_model(
            &mut models,
            model("tiny", &["en", "de"]),
            vec!["en".into(), "de".into()],
        );
        merge_model(&mut models, model("large", &["fr"]), vec!["fr".into()]);
        assert_eq!(models.len(), 2);
        assert_eq!(models[0].languages, ["en", "de"]);
    }

    #[test]
    fn backends_are_read_from_the_config_file() {
        let text = r#"
[[stt.backends]]
name = "gpu"
addr = "gpu-box.lan:10300"
priority = 1
languages = ["en", "de"]
result_timeout_ms = 4000

[[stt.backends]]
kind = "local"
priority = 100
"#;
        let path = std::path::Path::new("jarvis.toml");
        let config = crate::config::Config::parse(text, path).unwrap();
        config.validate(path).unwrap();
        let [gpu, local] = config.stt.backends.as_slice() else {
            panic!("two backends: {:?}", config.stt.backends);
        };
        assert_eq!(
            (gpu.kind, gpu.label().as_str()),
            (BackendKind::Remote, "gpu")
        );
        assert_eq!(gpu.result_timeout(), Duration::from_secs(4));
        assert_eq!(gpu.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
        assert_eq!(local.kind, BackendKind::Local);
        let typo = "[[stt.backends]]\nadress = \"x:1\"\n";
        assert!(crate::config::Config::parse(typo, path).is_err());
    }

    #[test]
    fn wake_words_match_with_or_without_their_version() {
        assert!(same_wake_word("hey_jarvis", "hey_jarvis_v0.1"));
        assert!(same_wake_word("Hey Jarvis", "hey-jarvis"));
        assert!(!same_wake_word("hey_jarvis", "ok_nabu"));
        assert!(!same_wake_word("hey_jarvis_vx", "hey_jarvis"));
    }

    #[test]
    fn wake_streams_go_to_backends_that_have_the_word_and_info_lists_each_once() {
        let model = |name: &str| WakeModel {
            name: name.into(),
            attribution: Attribution::new("x", "y"),
            installed: true,
            description: None,
            version: None,
            languages: vec!["en".into()],
            phrase: None,
        };
        let program = |names: &[&str]| WakeProgram {
            name: "oww".into(),
            attribution: Attribution::new("x", "y"),
            installed: true,
            description: None,
            version: None,
            models: names.iter().map(|n| model(n)).collect(),
        };
        let mut nabu_only = remote("nabu", 1);
        nabu_only.models = vec!["ok_nabu".into()];
        let backends = WakeBackends::wake(
            &[nabu_only, remote("jarvis", 2), remote("unknown", 3)],
            None,
            "me".into(),
        );
        backends.get(1).unwrap().lock().wake_programs = vec![program(&["hey_jarvis", "ok_nabu"])];
        backends.get(0).unwrap().lock().wake_programs = vec![program(&["ok_nabu", "alexa"])];
        // "nabu" is configured for ok_nabu only; "unknown" has not answered yet (worth a try).
        assert_eq!(
            backends.wake_candidates(&["hey_jarvis_v0.1".into()]),
            [1, 2]
        );
        assert_eq!(backends.wake_candidates(&["ok_nabu".into()]), [0, 1, 2]);
        assert_eq!(backends.wake_candidates(&[]), [0, 1, 2]);
        let names: Vec<String> = backends
            .wake_program(None)
            .models
            .into_iter()
            .map(|m| m.name)
            .collect();
        // alexa is left out: "nabu" should serve ok_nabu only.
        assert_eq!(names, ["ok_nabu", "hey_jarvis"]);
    }

    #[test]
    fn remote_backends_need_an_address() {
        let origin = std::path::Path::new("x.toml");
        let validate = |b: &[SttBackendConfig], enabled| validate(Service::Stt, b, enabled, origin);
        assert!(validate(&[remote("a", 0)], false).is_ok());
        let mut bad = remote("a", 0);
        bad.addr = Some("nohost".into());
        assert!(validate(&[bad], false).is_err());
        let local = SttBackendConfig {
            kind: BackendKind::Local,
            ..SttBackendConfig::default()
        };
        assert!(validate(std::slice::from_ref(&local), false).is_err());
        assert!(validate(&[local.clone(), local], true).is_err());
    }
}
