//! Which Wyoming services this server offers, and why not when it does not.
//!
//! `info` and routing both read from here, so Jarvis never advertises a service it would then
//! refuse. Each service's own issue adds its engine as a ready state; until then a service
//! reports why it is unavailable, and a request for it gets that reason as an `error` event.

use wyoming::info::Info;

use crate::wyoming_server::dispatch::Route;

/// The state of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceState {
    /// Not offered; the reason is sent to clients that ask for it anyway.
    Unavailable {
        /// For people: what is missing and what to do.
        reason: String,
    },
}

/// The state of every service.
#[derive(Debug, Clone)]
pub struct Services {
    stt: ServiceState,
    tts: ServiceState,
    wake: ServiceState,
    intent: ServiceState,
}

impl Services {
    /// The services of this build: none has an engine yet.
    pub fn new() -> Self {
        let missing = |route: Route| ServiceState::Unavailable {
            reason: format!(
                "{} is not available: this Jarvis build has no {} engine",
                route.service_name(),
                route.service_name()
            ),
        };
        Self {
            stt: missing(Route::Stt),
            tts: missing(Route::Tts),
            wake: missing(Route::Wake),
            intent: missing(Route::Intent),
        }
    }

    /// The state of the service behind `route`.
    pub fn state(&self, route: Route) -> &ServiceState {
        match route {
            Route::Stt => &self.stt,
            Route::Tts => &self.tts,
            Route::Wake => &self.wake,
            Route::Intent => &self.intent,
        }
    }

    /// Every service with its state, for `/health`.
    pub fn all(&self) -> [(Route, &ServiceState); 4] {
        [Route::Stt, Route::Tts, Route::Wake, Route::Intent].map(|route| (route, self.state(route)))
    }

    /// The `info` answer: only services that are ready. No `satellite` key, ever: with one, HA
    /// would create no service entities at all.
    pub fn info(&self) -> Info {
        let info = Info::default();
        for (_, state) in self.all() {
            // Exhaustive on purpose: a service that gains a ready state must add its program here.
            match state {
                ServiceState::Unavailable { .. } => {}
            }
        }
        info
    }
}

impl Default for Services {
    fn default() -> Self {
        Self::new()
    }
}
