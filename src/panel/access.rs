//! Who may use the panel, and the checks every state change passes.
//!
//! - Behind Home Assistant's ingress (a request from one of `panel.trusted_proxies` carrying
//!   `X-Ingress-Path`), Home Assistant has already authenticated the user.
//! - Directly, the login form takes `http.api_key`; a login is a random 256-bit token in an
//!   `HttpOnly; SameSite=Strict` cookie naming a server-side session that expires. The key
//!   itself is never stored in the browser nor ever sent back.
//! - Without a configured key the panel is as open as `POST /v1/command` (trusted networks).
//!
//! Every `POST` (and the microphone's WebSocket) must also carry the session's CSRF token (a
//! second random token the page learns from `GET api/session`, which a cross-site page cannot
//! read) and pass the Fetch Metadata and `Origin` checks.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use subtle::ConstantTimeEq;

use super::error::PanelError;

/// The session cookie's name.
pub(super) const COOKIE: &str = "jarvis_panel";
/// The header that carries the CSRF token.
pub(super) const CSRF_HEADER: &str = "x-jarvis-csrf";
/// Login attempts one address may make per minute (keys cannot be guessed at speed).
const LOGINS_PER_MINUTE: u32 = 10;

/// How a request got in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Access {
    /// Through Home Assistant's ingress.
    Ingress,
    /// No key is configured.
    Open,
    /// A login; the cookie's token.
    Login(String),
}

impl Access {
    /// `ingress`, `open` or `login`, for the page.
    pub(super) fn mode(&self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Open => "open",
            Self::Login(_) => "login",
        }
    }
}

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    expires: Instant,
}

/// The key, the trusted proxies and the live sessions.
#[derive(Clone)]
pub(super) struct Gate {
    api_key: Arc<str>,
    trusted: Arc<[IpAddr]>,
    ttl: Duration,
    max_sessions: usize,
    /// Logins by cookie token.
    logins: Arc<Mutex<HashMap<String, Session>>>,
    /// CSRF tokens of pages opened without a login (ingress, open), by token.
    pages: Arc<Mutex<HashMap<String, Instant>>>,
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("key_required", &!self.api_key.is_empty())
            .field("trusted", &self.trusted)
            .finish_non_exhaustive()
    }
}

impl Gate {
    pub(super) fn new(
        api_key: &str,
        trusted: &[IpAddr],
        ttl: Duration,
        max_sessions: usize,
    ) -> Self {
        let per_minute = NonZeroU32::new(LOGINS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Self {
            api_key: Arc::from(api_key),
            trusted: Arc::from(trusted),
            ttl,
            max_sessions: max_sessions.max(1),
            logins: Arc::default(),
            pages: Arc::default(),
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
        }
    }

    /// Who is asking, without CSRF checks (for reads).
    ///
    /// # Errors
    /// 401 without a valid login.
    pub(super) fn authenticate(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
    ) -> Result<Access, PanelError> {
        if self.is_ingress(peer, headers) {
            return Ok(Access::Ingress);
        }
        if self.api_key.is_empty() {
            return Ok(Access::Open);
        }
        let token = cookie(headers, COOKIE).ok_or_else(|| {
            PanelError::new(
                StatusCode::UNAUTHORIZED,
                "login-required",
                "log in with the API key (http.api_key)",
            )
        })?;
        let now = Instant::now();
        let live = self
            .logins
            .lock()
            .ok()
            .and_then(|l| l.get(token).map(|s| s.expires > now))
            .unwrap_or(false);
        if live {
            Ok(Access::Login(token.to_owned()))
        } else {
            Err(PanelError::new(
                StatusCode::UNAUTHORIZED,
                "login-required",
                "your login expired; log in again with the API key",
            ))
        }
    }

    /// Who is asking, for a state change: authenticated, same-origin, with the CSRF token in
    /// `x-jarvis-csrf` (or `given`, for a WebSocket, which cannot set headers).
    ///
    /// # Errors
    /// 401 without a login, 403 for a cross-site request or a missing or wrong token.
    pub(super) fn authorize(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
        given: Option<&str>,
    ) -> Result<Access, PanelError> {
        let access = self.authenticate(peer, headers)?;
        same_origin(headers, access == Access::Ingress)?;
        let given = given
            .or_else(|| headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))
            .unwrap_or_default();
        let now = Instant::now();
        let valid = !given.is_empty()
            && match &access {
                Access::Login(token) => self
                    .logins
                    .lock()
                    .ok()
                    .and_then(|l| {
                        l.get(token)
                            .map(|s| bool::from(s.csrf.as_bytes().ct_eq(given.as_bytes())))
                    })
                    .unwrap_or(false),
                Access::Ingress | Access::Open => self
                    .pages
                    .lock()
                    .ok()
                    .and_then(|p| p.get(given).map(|expires| *expires > now))
                    .unwrap_or(false),
            };
        if valid {
            Ok(access)
        } else {
            Err(PanelError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "missing or stale CSRF token: reload the panel",
            ))
        }
    }

    /// The CSRF token for `access`: the login's, or a new one for a page opened through
    /// ingress or without a key.
    pub(super) fn csrf_for(&self, access: &Access) -> Option<String> {
        match access {
            Access::Login(token) => self
                .logins
                .lock()
                .ok()
                .and_then(|l| l.get(token).map(|s| s.csrf.clone())),
            Access::Ingress | Access::Open => {
                let token = random_token()?;
                let mut pages = self.pages.lock().ok()?;
                bound(&mut pages, self.max_sessions, |e| *e);
                pages.insert(token.clone(), Instant::now() + self.ttl);
                Some(token)
            }
        }
    }

    /// Checks the key and opens a login; returns the cookie token and the CSRF token.
    ///
    /// # Errors
    /// 429 over the rate, 401 for a missing or wrong key, 403 cross-site, 500 without
    /// randomness.
    pub(super) fn login(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
        key: &str,
    ) -> Result<(String, String), PanelError> {
        same_origin(headers, false)?;
        if self.limiter.check_key(&peer.ip()).is_err() {
            return Err(PanelError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "too many login attempts; wait a minute",
            ));
        }
        if key.is_empty() {
            return Err(PanelError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "enter the API key (http.api_key)",
            ));
        }
        if !bool::from(key.as_bytes().ct_eq(self.api_key.as_bytes())) {
            return Err(PanelError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "wrong API key: enter the key configured as http.api_key",
            ));
        }
        let (Some(token), Some(csrf)) = (random_token(), random_token()) else {
            return Err(PanelError::internal("no randomness for a session token"));
        };
        let mut logins = self
            .logins
            .lock()
            .map_err(|_| PanelError::internal("session lock poisoned"))?;
        bound(&mut logins, self.max_sessions, |s| s.expires);
        logins.insert(
            token.clone(),
            Session {
                csrf: csrf.clone(),
                expires: Instant::now() + self.ttl,
            },
        );
        Ok((token, csrf))
    }

    /// Ends a login.
    pub(super) fn logout(&self, access: &Access) {
        if let (Access::Login(token), Ok(mut logins)) = (access, self.logins.lock()) {
            logins.remove(token);
        }
    }

    /// The `Set-Cookie` value for a login (or, with `None`, one that ends it).
    pub(super) fn cookie_header(&self, token: Option<&str>, headers: &HeaderMap) -> String {
        // `Secure` when the browser came over HTTPS (a TLS-terminating proxy says so); plain
        // HTTP on a LAN would otherwise never send the cookie back. No `Path`: it defaults to
        // the API's folder, whatever prefix a proxy puts in front.
        let secure = headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
        let secure = if secure { "; Secure" } else { "" };
        match token {
            Some(token) => format!(
                "{COOKIE}={token}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                self.ttl.as_secs()
            ),
            None => format!("{COOKIE}=; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
        }
    }

    fn is_ingress(&self, peer: SocketAddr, headers: &HeaderMap) -> bool {
        headers.contains_key("x-ingress-path") && self.trusted.contains(&peer.ip().to_canonical())
    }
}

/// Forgets expired entries, and the soonest to expire past `max`.
fn bound<V>(map: &mut HashMap<String, V>, max: usize, expires: impl Fn(&V) -> Instant) {
    let now = Instant::now();
    map.retain(|_, v| expires(v) > now);
    while map.len() >= max {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| expires(v))
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        map.remove(&oldest);
    }
}

/// 32 random bytes from the OS, as hex.
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Refuses a request a browser marks as cross-site (`Sec-Fetch-Site`), or whose `Origin`
/// is not this host (directly; behind ingress `Origin` is Home Assistant's).
fn same_origin(headers: &HeaderMap, ingress: bool) -> Result<(), PanelError> {
    let cross = |why: &str| {
        Err(PanelError::new(
            StatusCode::FORBIDDEN,
            "cross-site",
            format!("cross-site request refused ({why})"),
        ))
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return cross("Sec-Fetch-Site");
        }
    }
    if ingress {
        return Ok(());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let origin_host = origin
            .split_once("://")
            .map_or("", |(_, rest)| rest.trim_end_matches('/'));
        if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return cross("Origin");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn gate() -> Gate {
        Gate::new(
            "s3cret",
            &["172.30.32.2".parse().unwrap()],
            Duration::from_secs(60),
            2,
        )
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 5000)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn ingress_only_from_a_trusted_proxy_with_the_header() {
        let g = gate();
        let ingress = headers(&[("x-ingress-path", "/api/hassio_ingress/abc")]);
        assert_eq!(
            g.authenticate(peer("172.30.32.2"), &ingress).unwrap(),
            Access::Ingress
        );
        assert!(g.authenticate(peer("10.0.0.9"), &ingress).is_err());
        assert!(
            g.authenticate(peer("172.30.32.2"), &HeaderMap::new())
                .is_err()
        );
    }

    #[test]
    fn a_login_is_a_cookie_with_its_own_csrf_token() {
        let g = gate();
        let host = headers(&[("host", "jarvis:10701"), ("origin", "http://jarvis:10701")]);
        assert_eq!(
            g.login(peer("10.0.0.9"), &host, "nope").unwrap_err().code,
            "unauthorized"
        );
        let (token, csrf) = g.login(peer("10.0.0.9"), &host, "s3cret").unwrap();
        assert_ne!(token, csrf);
        let cookie = format!("other=1; {COOKIE}={token}");
        let mut h = headers(&[("cookie", &cookie), ("host", "jarvis:10701")]);
        assert!(matches!(
            g.authenticate(peer("10.0.0.9"), &h),
            Ok(Access::Login(_))
        ));
        assert_eq!(
            g.authorize(peer("10.0.0.9"), &h, None).unwrap_err().code,
            "csrf"
        );
        h.insert(CSRF_HEADER, HeaderValue::from_str(&csrf).unwrap());
        assert!(g.authorize(peer("10.0.0.9"), &h, None).is_ok());
        h.insert("origin", HeaderValue::from_static("http://evil.example"));
        assert_eq!(
            g.authorize(peer("10.0.0.9"), &h, None).unwrap_err().code,
            "cross-site"
        );
        h.remove("origin");
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert_eq!(
            g.authorize(peer("10.0.0.9"), &h, None).unwrap_err().code,
            "cross-site"
        );
        // The cap: the oldest login goes.
        g.login(peer("10.0.0.9"), &host, "s3cret").unwrap();
        g.login(peer("10.0.0.9"), &host, "s3cret").unwrap();
        h.remove("sec-fetch-site");
        assert!(g.authenticate(peer("10.0.0.9"), &h).is_err());
    }
}
