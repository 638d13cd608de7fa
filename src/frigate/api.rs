//! Frigate's HTTP API (§3.3 of the integration notes), for the backfill: `/api/events`,
//! `/api/review`, `/api/config` and `/api/version`.
//!
//! - Port 5000 needs no login. Port 8971 does: `POST /api/login {"user","password"}` answers
//!   with `Set-Cookie: frigate_token=<jwt>` (the cookie's name is configurable in Frigate, so any
//!   cookie holding a JWT is taken), which goes back as a cookie. The session is renewed before
//!   the JWT's `exp` (its payload is decoded; the signature is Frigate's business), when Frigate
//!   hands out a fresh cookie, and once on a 401.
//! - TLS: a configured CA or SHA-256 pins of the certificate, as for Proxmox
//!   ([`crate::proxmox::tls`]); the system roots otherwise.
//! - The password only ever goes into the login request's body; errors and logs never show
//!   it, nor the token.

use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, SET_COOKIE};
use serde::de::DeserializeOwned;

use super::wire::{ApiEvent, FrigateSetup, Lenient, ReviewItem};
use super::{ApiSettings, FrigateError};
use crate::config::Secret;
use crate::proxmox::tls::{PinMismatch, next_error, pinned_tls};

/// Largest answer read (`/api/config` of a big install is a few hundred KiB).
const MAX_BODY_BYTES: usize = 16 << 20;
/// The cookie Frigate sets unless `auth.cookie_name` says otherwise.
const DEFAULT_COOKIE: &str = "frigate_token";
/// A session is renewed after this share of its lifetime, well before `exp`.
const RENEW_AT: f64 = 0.8;

/// Why a request to Frigate failed. Each message names what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// No connection, or no answer in time.
    #[error("cannot reach Frigate's API at {url}: {message}; check frigate.url")]
    Unreachable { url: String, message: String },
    /// The TLS handshake failed.
    #[error("TLS with Frigate's API at {url} failed: {message}")]
    Tls { url: String, message: String },
    /// The login was refused.
    #[error(
        "Frigate at {url} refused the login (HTTP {status}); check frigate.username and the \
         password (JARVIS_FRIGATE_PASSWORD or frigate.password)"
    )]
    Login { url: String, status: u16 },
    /// Any other unexpected status.
    #[error("Frigate's API answered {path} with HTTP {status}{hint}")]
    Status {
        path: String,
        status: u16,
        hint: &'static str,
    },
    /// An answer that is not what Frigate sends.
    #[error("Frigate's API answered {path} with {message}")]
    Body { path: String, message: String },
}

/// A logged-in session.
#[derive(Debug)]
struct Session {
    /// The cookie's name and value, ready for the `Cookie` header.
    cookie: Secret,
    /// When to log in again (seconds since the epoch); `None`: until a 401.
    renew_at: Option<f64>,
}

/// The API client; one per subscriber, used by the backfill task alone.
#[derive(Debug)]
pub(crate) struct FrigateApi {
    http: reqwest::Client,
    /// The base URL without its trailing `/`.
    base: String,
    login: Option<(String, Secret)>,
    session: Option<Session>,
}

impl FrigateApi {
    /// A client for `settings`.
    ///
    /// # Errors
    /// A CA file that cannot be read, or TLS settings rustls refuses.
    pub(crate) fn new(settings: &ApiSettings) -> Result<Self, FrigateError> {
        let builder = reqwest::Client::builder()
            .user_agent(concat!("jarvis/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            // A redirect means the URL points at Frigate's UI login page, not its API.
            .redirect(reqwest::redirect::Policy::none())
            // The password and the session go straight to Frigate, never to a proxy.
            .no_proxy();
        let builder = if settings.pins.is_empty() {
            match &settings.ca_file {
                Some(path) => {
                    let pem = std::fs::read(path).map_err(|err| {
                        FrigateError::Config(format!(
                            "cannot read frigate.ca_file {}: {err}",
                            path.display()
                        ))
                    })?;
                    let certs = reqwest::Certificate::from_pem_bundle(&pem)
                        .ok()
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| {
                            FrigateError::Config(format!(
                                "frigate.ca_file {} holds no PEM certificate \
                                 (-----BEGIN CERTIFICATE-----)",
                                path.display()
                            ))
                        })?;
                    certs
                        .into_iter()
                        .fold(builder, reqwest::ClientBuilder::add_root_certificate)
                }
                None => builder,
            }
        } else {
            let tls = pinned_tls(settings.pins.clone())
                .map_err(|err| FrigateError::Config(format!("TLS towards Frigate: {err}")))?;
            builder.use_preconfigured_tls(tls)
        };
        let http = builder.build().map_err(|err| {
            FrigateError::Config(format!("cannot set up HTTP for Frigate: {err}"))
        })?;
        Ok(Self {
            http,
            base: settings.url.as_str().trim_end_matches('/').to_owned(),
            login: settings.login.clone(),
            session: None,
        })
    }

    /// Tracked objects that started after `after` (and before `before`), newest first, at most
    /// `limit`. Each element parses on its own: a bad one is an `Err` in the list.
    pub(crate) async fn events(
        &mut self,
        after: f64,
        before: Option<f64>,
        limit: usize,
    ) -> Result<Vec<Lenient<ApiEvent>>, ApiError> {
        let mut query = vec![
            ("after", format!("{after:.3}")),
            ("limit", limit.to_string()),
            ("include_thumbnails", "0".to_owned()),
        ];
        if let Some(before) = before {
            query.push(("before", format!("{before:.3}")));
        }
        self.get_json("/api/events", &query).await
    }

    /// Review items that started after `after` (and ended before `before`, or go on), newest
    /// first, at most `limit`.
    pub(crate) async fn reviews(
        &mut self,
        after: f64,
        before: Option<f64>,
        limit: usize,
    ) -> Result<Vec<Lenient<ReviewItem>>, ApiError> {
        let mut query = vec![
            ("after", format!("{after:.3}")),
            ("limit", limit.to_string()),
        ];
        if let Some(before) = before {
            query.push(("before", format!("{before:.3}")));
        }
        self.get_json("/api/review", &query).await
    }

    /// Frigate's configuration: cameras and zones.
    pub(crate) async fn setup(&mut self) -> Result<FrigateSetup, ApiError> {
        self.get_json("/api/config", &[]).await
    }

    /// Frigate's version (`0.14.1-f4f3cfa`).
    pub(crate) async fn version(&mut self) -> Result<String, ApiError> {
        let body = self.get("/api/version", &[]).await?;
        let text = String::from_utf8_lossy(&body);
        // Plain text, or a JSON string in some versions.
        Ok(text.trim().trim_matches('"').to_owned())
    }

    async fn get_json<T: DeserializeOwned>(
        &mut self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        let body = self.get(path, query).await?;
        serde_json::from_slice(&body).map_err(|err| ApiError::Body {
            path: path.to_owned(),
            message: format!("something that is not Frigate's JSON ({err})"),
        })
    }

    /// A GET, logged in when Frigate needs it, logging in again once on a 401.
    async fn get(&mut self, path: &str, query: &[(&str, String)]) -> Result<Bytes, ApiError> {
        if self.login.is_some() && self.session_due() {
            self.log_in().await?;
        }
        let response = self.send_get(path, query).await?;
        let response = if response.status() == StatusCode::UNAUTHORIZED && self.login.is_some() {
            // The session ended early (Frigate restarted with a new secret, or logged us out).
            self.session = None;
            self.log_in().await?;
            self.send_get(path, query).await?
        } else {
            response
        };
        self.take_cookie(response.headers());
        let status = response.status();
        if !status.is_success() {
            return Err(ApiError::Status {
                path: path.to_owned(),
                status: status.as_u16(),
                hint: hint(status, self.login.is_some()),
            });
        }
        read_body(response, path).await
    }

    fn session_due(&self) -> bool {
        match &self.session {
            None => true,
            Some(session) => session.renew_at.is_some_and(|at| now_secs() >= at),
        }
    }

    async fn send_get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::Response, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.get(&url).query(query);
        if let Some(session) = &self.session {
            request = request.header(COOKIE, session.cookie.expose());
        }
        request.send().await.map_err(|err| self.failure(&err))
    }

    /// `POST /api/login`; keeps the session cookie.
    async fn log_in(&mut self) -> Result<(), ApiError> {
        let Some((user, password)) = &self.login else {
            return Ok(());
        };
        let url = format!("{}/api/login", self.base);
        let body = serde_json::json!({ "user": user, "password": password.expose() });
        let response = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|err| self.failure(&err))?;
        let status = response.status();
        if matches!(
            status,
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(ApiError::Login {
                url: self.base.clone(),
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(ApiError::Status {
                path: "/api/login".into(),
                status: status.as_u16(),
                hint: hint(status, true),
            });
        }
        self.session = None;
        self.take_cookie(response.headers());
        if self.session.is_none() {
            return Err(ApiError::Body {
                path: "/api/login".into(),
                message: "no session cookie; is frigate.url Frigate's port 8971?".into(),
            });
        }
        Ok(())
    }

    /// Keeps a session cookie Frigate sent (at login, or renewed on the way).
    fn take_cookie(&mut self, headers: &HeaderMap) {
        if self.login.is_none() {
            return;
        }
        for value in headers.get_all(SET_COOKIE) {
            let Some((name, token)) = value.to_str().ok().and_then(session_cookie) else {
                continue;
            };
            let now = now_secs();
            let renew_at = jwt_expiry(token).map(|exp| now + (exp - now).max(0.0) * RENEW_AT);
            self.session = Some(Session {
                cookie: Secret::new(format!("{name}={token}")),
                renew_at,
            });
        }
    }

    fn failure(&self, err: &reqwest::Error) -> ApiError {
        if let Some(message) = tls_problem(err) {
            return ApiError::Tls {
                url: self.base.clone(),
                message,
            };
        }
        let message = if err.is_timeout() {
            "no answer in time (frigate.timeout_secs)".to_owned()
        } else {
            root_cause(err)
        };
        ApiError::Unreachable {
            url: self.base.clone(),
            message,
        }
    }
}

/// What to check for an unexpected status.
fn hint(status: StatusCode, logged_in: bool) -> &'static str {
    match status.as_u16() {
        401 if logged_in => "; the login worked but the session was refused: check the user's role",
        401 | 403 => {
            "; port 8971 needs frigate.username and a password (or use port 5000 on a \
             private network)"
        }
        300..=399 => "; frigate.url points at a page that redirects, not at Frigate's API",
        404 => "; is frigate.url Frigate (port 5000 or 8971)?",
        429 => "; too many logins: Frigate's auth.failed_login_rate_limit applies",
        _ => "",
    }
}

/// The session cookie of a `Set-Cookie` value: `frigate_token`, or any cookie holding a JWT
/// (Frigate's `auth.cookie_name` may rename it). Deleted cookies (empty values) are skipped.
fn session_cookie(header: &str) -> Option<(&str, &str)> {
    let pair = header.split(';').next()?.trim();
    let (name, value) = pair.split_once('=')?;
    let (name, value) = (name.trim(), value.trim().trim_matches('"'));
    if value.is_empty() {
        return None;
    }
    let jwt = value.split('.').count() == 3;
    (name == DEFAULT_COOKIE || jwt).then_some((name, value))
}

/// The `exp` claim (seconds since the epoch) of a JWT, read without checking its signature.
fn jwt_expiry(token: &str) -> Option<f64> {
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<f64>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Claims>(&bytes).ok()?.exp
}

fn now_secs() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

async fn read_body(mut response: reqwest::Response, path: &str) -> Result<Bytes, ApiError> {
    let too_big = || ApiError::Body {
        path: path.to_owned(),
        message: format!("more than {MAX_BODY_BYTES} bytes"),
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(too_big());
    }
    let mut body = BytesMut::new();
    loop {
        let chunk = response.chunk().await.map_err(|err| ApiError::Body {
            path: path.to_owned(),
            message: format!("a broken answer ({})", root_cause(&err)),
        })?;
        let Some(chunk) = chunk else { break };
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The TLS failure behind a request error, with the fix.
fn tls_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            let pin = match tls {
                rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => other
                    .0
                    .downcast_ref::<PinMismatch>()
                    .map(|m| m.seen.clone()),
                _ => None,
            };
            return Some(match pin {
                Some(seen) => format!(
                    "its certificate's fingerprint {seen} is not in frigate.fingerprints; if the \
                     certificate was renewed, pin the new one"
                ),
                None => format!(
                    "{tls}; pin Frigate's certificate in frigate.fingerprints or set \
                     frigate.ca_file to the CA that signed it"
                ),
            });
        }
        current = next_error(e);
    }
    None
}

/// The innermost error's text ("Connection refused (os error 111)").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = next_error(current) {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.{}",
            engine.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            engine.encode(claims),
            engine.encode("signature")
        )
    }

    #[test]
    fn the_expiry_is_read_from_the_payload() {
        assert_eq!(
            jwt_expiry(&jwt(r#"{"sub":"jarvis","exp":1727099698}"#)),
            Some(1_727_099_698.0)
        );
        assert_eq!(jwt_expiry(&jwt(r#"{"sub":"jarvis"}"#)), None);
        assert_eq!(jwt_expiry("not.a.jwt"), None);
        assert_eq!(jwt_expiry("garbage"), None);
    }

    #[test]
    fn the_session_cookie_is_found_whatever_its_name() {
        let token = jwt(r#"{"exp":1}"#);
        let header = format!("frigate_token={token}; HttpOnly; Path=/; SameSite=lax; Secure");
        assert_eq!(
            session_cookie(&header),
            Some(("frigate_token", token.as_str()))
        );
        let renamed = format!("my_cookie=\"{token}\"; Path=/");
        assert_eq!(
            session_cookie(&renamed),
            Some(("my_cookie", token.as_str()))
        );
        assert_eq!(session_cookie("frigate_token=; Max-Age=0"), None);
        assert_eq!(session_cookie("other=plain; Path=/"), None);
    }

    #[test]
    fn errors_name_what_to_check_and_never_the_password() {
        let login = ApiError::Login {
            url: "https://frigate:8971".into(),
            status: 401,
        };
        assert!(login.to_string().contains("frigate.username"));
        let status = ApiError::Status {
            path: "/api/events".into(),
            status: 401,
            hint: hint(StatusCode::UNAUTHORIZED, false),
        };
        assert!(status.to_string().contains("frigate.username"), "{status}");
    }
}
