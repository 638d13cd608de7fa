//! What every `POST` passes before its body is read: the per-address rate limit (first, so
//! keys cannot be guessed at full speed), then the API key, compared in constant time.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use subtle::ConstantTimeEq;

use crate::config::HttpConfig;

use super::error::ApiError;

/// Client addresses tracked by a rate limiter before idle ones are forgotten.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// The key and one route's rate limit.
#[derive(Clone)]
pub(super) struct Guard {
    api_key: Arc<str>,
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// What the route takes, for the 429 message: `commands`, `events`.
    what: &'static str,
}

impl Guard {
    /// A guard with the configured key and a budget of `http.rate_limit_per_minute`.
    pub(super) fn new(config: &HttpConfig, what: &'static str) -> Self {
        let per_minute = NonZeroU32::new(config.rate_limit_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            api_key: Arc::from(config.api_key.expose()),
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
            what,
        }
    }

    /// Whether a key is configured.
    pub(super) fn key_required(&self) -> bool {
        !self.api_key.is_empty()
    }

    /// Lets the request from `peer` in, or answers it: 429 with `Retry-After` over the rate,
    /// 401 without the right `x-api-key`.
    pub(super) fn admit(&self, peer: SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
        if let Err(not_until) = self.limiter.check_key(&peer.ip()) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!(
                    "too many {} from {}; try again in {secs} s (http.rate_limit_per_minute)",
                    self.what,
                    peer.ip()
                ),
            )
            .retry_after(secs));
        }
        if !self.api_key.is_empty() {
            let given = headers
                .get("x-api-key")
                .map(HeaderValue::as_bytes)
                .unwrap_or_default();
            if !bool::from(given.ct_eq(self.api_key.as_bytes())) {
                let text = if given.is_empty() {
                    "missing x-api-key header: send the key configured as http.api_key"
                } else {
                    "wrong x-api-key: send the key configured as http.api_key"
                };
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    text,
                ));
            }
        }
        if self.limiter.len() > MAX_TRACKED_CLIENTS {
            self.limiter.retain_recent();
        }
        Ok(())
    }
}
