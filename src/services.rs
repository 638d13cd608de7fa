//! Which Wyoming services this server offers, and why not when it does not.
//!
//! `info` and routing both read from here, so Jarvis never advertises a service it would then
//! refuse. A service that is not offered has a reason, which a client asking for it gets in an
//! `error` event.

use std::sync::Arc;

use wyoming::info::Info;

use crate::config::Config;
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
    /// Text-to-speech, when enabled.
    pub tts: Option<Arc<TtsService>>,
    /// Wake word, when enabled.
    pub wake: Option<Arc<WakeService>>,
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
        let tts = if config.tts.enabled {
            Some(Arc::new(TtsService::load(config)?))
        } else {
            None
        };
        let wake = if config.wake.enabled {
            Some(Arc::new(WakeService::load(config)?))
        } else {
            None
        };
        Ok(Self { stt, tts, wake })
    }

    /// The state of the service behind `route`.
    pub fn state(&self, route: Route) -> ServiceState {
        let not_built = || ServiceState::Unavailable {
            reason: format!(
                "{} is not available: this Jarvis build has no {} engine yet",
                route.service_name(),
                route.service_name()
            ),
        };
        match route {
            Route::Stt if self.stt.is_some() => ServiceState::Ready,
            Route::Stt => ServiceState::Unavailable {
                reason: "speech-to-text is disabled on this server (stt.enabled = false)".into(),
            },
            Route::Tts if self.tts.is_some() => ServiceState::Ready,
            Route::Tts => ServiceState::Unavailable {
                reason: "text-to-speech is disabled on this server (tts.enabled = false)".into(),
            },
            Route::Wake if self.wake.is_some() => ServiceState::Ready,
            Route::Wake => ServiceState::Unavailable {
                reason: "wake word detection is disabled on this server (wake.enabled = false)"
                    .into(),
            },
            Route::Intent => not_built(),
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
            asr: self.stt.iter().map(|stt| stt.program()).collect(),
            tts: self.tts.iter().map(|tts| tts.program()).collect(),
            wake: self.wake.iter().map(|wake| wake.program()).collect(),
            ..Info::default()
        }
    }
}
