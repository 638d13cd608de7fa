//! `[panel]`: the web panel on the HTTP listener (`/panel/`), and who may open it.

use std::net::IpAddr;

use serde::Deserialize;

/// Default lifetime of a panel login: a working day.
pub const DEFAULT_SESSION_TTL_SECS: u64 = 12 * 3600;
/// Default cap on panel live streams (feed and progress) open at once: a household's browsers
/// many times over; each costs a task and a broadcast receiver.
pub const DEFAULT_MAX_STREAMS: usize = 64;
/// Default cap on live logins; the oldest is forgotten past it.
pub const DEFAULT_MAX_SESSIONS: usize = 256;

/// `[panel]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PanelConfig {
    /// Serve the panel at `/panel/` on the HTTP listener.
    pub enabled: bool,
    /// Addresses of reverse proxies that have already authenticated the user and say so with
    /// an `X-Ingress-Path` header: Home Assistant's ingress proxy (`172.30.32.2`; the add-on
    /// sets it). Requests from them need no login. Empty outside the add-on.
    pub trusted_proxies: Vec<IpAddr>,
    /// Seconds a login lasts.
    pub session_ttl_secs: u64,
    /// Live logins kept at most.
    pub max_sessions: usize,
    /// Live streams (activity feeds, download progress, microphones) open at once; more get 503.
    pub max_streams: usize,
}

impl Default for PanelConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            trusted_proxies: Vec::new(),
            session_ttl_secs: DEFAULT_SESSION_TTL_SECS,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }
}
