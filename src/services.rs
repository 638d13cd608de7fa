//! Which Wyoming services this server offers, and why not when it does not.
//!
//! `info` and routing both read from here, so Jarvis never advertises a service it would then
//! refuse. A service that is not offered has a reason, which a client asking for it gets in an
//! `error` event.

use std::sync::Arc;

use wyoming::info::{Attribution, HandleModel, HandleProgram, Info, IntentModel, IntentProgram};

use tokio::sync::watch;

use crate::brain::{Brain, BrainError, Memory};
use crate::config::Config;
use crate::events::EventStore;
use crate::frigate::{FrigateLink, FrigateStatus};
use crate::proxmox::{Proxmox, ProxmoxError};
use crate::stt::backends::{SttBackends, WakeBackends, new_instance_id};
use crate::stt::{SttError, SttService};
use crate::tts::{TtsError, TtsService};
use crate::wake::{WakeError, WakeService};
use crate::wyoming_server::dispatch::Route;

/// The state of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceState {
    /// Offered.
    Ready,
    /// Not offered; the reason is sent to clients that ask for it anyway.
    Unavailable {
        /// For people: what is missing and what to do.
        reason: String,
    },
}

/// Every service: the engines that are loaded, and reasons for the others.
#[derive(Debug, Clone)]
pub struct Services {
    /// Speech-to-text, when enabled.
    pub stt: Option<Arc<SttService>>,
    /// `[[stt.backends]]`, when configured: requests are routed over them with failover.
    pub stt_backends: Option<Arc<SttBackends>>,
    /// `[[tts.backends]]`, when configured.
    pub tts_backends: Option<Arc<SttBackends>>,
    /// This Jarvis's id, to refuse requests that loop back through a backend.
    pub instance: String,
    /// Text-to-speech, when enabled.
    pub tts: Option<Arc<TtsService>>,
    /// The homelab brain (intent handling), always present.
    pub brain: Arc<Brain>,
    /// Advertise an `intent` program besides the `handle` one.
    pub advertise_intent: bool,
    /// This process runs the brain (`jarvis serve --role`): intents are served.
    pub brain_role: bool,
    /// Wake word, when enabled.
    pub wake: Option<Arc<WakeService>>,
    /// `[[wake.backends]]`, when configured: wake word streams are routed over them.
    pub wake_backends: Option<Arc<WakeBackends>>,
    /// The event memory (always present; unavailable when disabled or unusable).
    pub events: EventStore,
    /// Frigate's status and arrivals, as the rest of Jarvis sees them.
    pub frigate: FrigateLink,
    /// The sending half of Frigate's status, for the Frigate subscriber.
    pub frigate_status: Arc<watch::Sender<FrigateStatus>>,
}

/// Why a service could not be loaded at start-up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Speech-to-text.
    #[error(transparent)]
    Stt(#[from] SttError),
    /// Text-to-speech.
    #[error(transparent)]
    Tts(#[from] TtsError),
    /// The Proxmox client configuration.
    #[error("proxmox: {0}")]
    Proxmox(#[from] ProxmoxError),
    /// The brain.
    #[error(transparent)]
    Brain(#[from] BrainError),
    /// Wake word.
    #[error(transparent)]
    Wake(#[from] WakeError),
}

impl Services {
    /// Loads the services the configuration enables.
    ///
    /// # Errors
    /// A model that is missing or does not load; the message names the file and the fix.
    pub fn load(config: &Config) -> Result<Self, LoadError> {
        let stt = if config.stt.enabled {
            Some(Arc::new(SttService::load(config)?))
        } else {
            None
        };
        let instance = new_instance_id();
        let stt_backends = (!config.stt.backends.is_empty()).then(|| {
            Arc::new(SttBackends::new(
                &config.stt.backends,
                stt.clone(),
                instance.clone(),
                config.stt.streaming,
                config.stt.max_audio_secs,
            ))
        });
        let tts = if config.tts.enabled {
            Some(Arc::new(TtsService::load(config)?))
        } else {
            None
        };
        let tts_backends = (!config.tts.backends.is_empty()).then(|| {
            Arc::new(SttBackends::tts(
                &config.tts.backends,
                tts.clone(),
                instance.clone(),
                config.tts.streaming,
                u32::try_from(config.tts.max_text_chars).unwrap_or(u32::MAX),
            ))
        });
        let wake = if config.wake.enabled {
            Some(Arc::new(WakeService::load(config)?))
        } else {
            None
        };
        let wake_backends = (!config.wake.backends.is_empty()).then(|| {
            Arc::new(WakeBackends::wake(
                &config.wake.backends,
                wake.clone(),
                instance.clone(),
            ))
        });
        let proxmox = if config.proxmox.enabled {
            Some(Proxmox::new(&config.proxmox)?)
        } else {
            None
        };
        let events = EventStore::open(&config.events);
        let (frigate_status, frigate) = FrigateLink::channel();
        // The configuration was validated; a bad zone name only reaches here from tests.
        let tz = config
            .events
            .time_zone()
            .unwrap_or_else(|_| jiff::tz::TimeZone::system());
        let memory = Memory::new(events.clone(), frigate.clone(), config.frigate.enabled, tz);
        let brain = Arc::new(Brain::new(config, proxmox)?.with_memory(memory));
        Ok(Self {
            stt,
            stt_backends,
            instance,
            tts,
            tts_backends,
            wake,
            wake_backends,
            brain,
            events,
            frigate,
            frigate_status: Arc::new(frigate_status),
            advertise_intent: config.wyoming.advertise_intent,
            brain_role: config.roles.brain,
        })
    }

    /// The state of the service behind `route`.
    pub fn state(&self, route: Route) -> ServiceState {
        match route {
            Route::Stt if self.stt.is_some() || self.stt_backends.is_some() => ServiceState::Ready,
            Route::Stt => ServiceState::Unavailable {
                reason: "speech-to-text is disabled on this server (stt.enabled = false)".into(),
            },
            Route::Tts if self.tts.is_some() || self.tts_backends.is_some() => ServiceState::Ready,
            Route::Tts => ServiceState::Unavailable {
                reason: "text-to-speech is disabled on this server (tts.enabled = false)".into(),
            },
            Route::Wake if self.wake.is_some() || self.wake_backends.is_some() => {
                ServiceState::Ready
            }
            Route::Wake => ServiceState::Unavailable {
                reason: "wake word detection is disabled on this server (wake.enabled = false)"
                    .into(),
            },
            Route::Intent if self.brain_role => ServiceState::Ready,
            Route::Intent => ServiceState::Unavailable {
                reason: "this Jarvis serves speech only (jarvis serve --role without brain)".into(),
            },
        }
    }

    /// Every service with its state, for `/health`.
    pub fn all(&self) -> [(Route, ServiceState); 4] {
        [Route::Stt, Route::Tts, Route::Wake, Route::Intent].map(|route| (route, self.state(route)))
    }

    /// The `info` answer: only services that are ready. No `satellite` key, ever: with one, HA
    /// would create no service entities at all.
    pub fn info(&self) -> Info {
        Info {
            asr: match &self.stt_backends {
                Some(backends) => {
                    vec![backends.program(self.stt.as_ref().map(|stt| stt.program()))]
                }
                None => self.stt.iter().map(|stt| stt.program()).collect(),
            },
            tts: match &self.tts_backends {
                Some(backends) => {
                    vec![backends.tts_program(self.tts.as_ref().map(|tts| tts.program()))]
                }
                None => self.tts.iter().map(|tts| tts.program()).collect(),
            },
            handle: if !self.brain_role {
                Vec::new()
            } else {
                vec![HandleProgram {
                    name: "jarvis".into(),
                    attribution: Attribution::new("Jarvis", env!("CARGO_PKG_REPOSITORY")),
                    installed: true,
                    description: Some("Jarvis homelab assistant (Proxmox VE)".into()),
                    version: Some(env!("CARGO_PKG_VERSION").into()),
                    models: vec![HandleModel {
                        name: "jarvis-homelab".into(),
                        attribution: Attribution::new("Jarvis", env!("CARGO_PKG_REPOSITORY")),
                        installed: true,
                        description: Some("Proxmox status and power actions, English".into()),
                        version: Some(env!("CARGO_PKG_VERSION").into()),
                        languages: vec!["en".into()],
                    }],
                    supports_handled_streaming: false,
                    // Jarvis does not control Home Assistant's own entities.
                    supports_home_control: false,
                }]
            },
            intent: if self.advertise_intent {
                vec![IntentProgram {
                    name: "jarvis-intents".into(),
                    attribution: Attribution::new("Jarvis", env!("CARGO_PKG_REPOSITORY")),
                    installed: true,
                    description: Some("Jarvis homelab intents".into()),
                    version: Some(env!("CARGO_PKG_VERSION").into()),
                    models: vec![IntentModel {
                        name: "jarvis-homelab".into(),
                        attribution: Attribution::new("Jarvis", env!("CARGO_PKG_REPOSITORY")),
                        installed: true,
                        description: None,
                        version: None,
                        languages: vec!["en".into()],
                    }],
                }]
            } else {
                Vec::new()
            },
            wake: match &self.wake_backends {
                Some(backends) => {
                    vec![backends.wake_program(self.wake.as_ref().map(|wake| wake.program()))]
                }
                None => self.wake.iter().map(|wake| wake.program()).collect(),
            },
            ..Info::default()
        }
    }
}
