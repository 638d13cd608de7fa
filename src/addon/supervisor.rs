//! The few Supervisor API calls the add-on makes (`http://supervisor`, with the
//! `SUPERVISOR_TOKEN` Supervisor gives every add-on): the MQTT broker it hands out, the Wyoming
//! discovery, and stopping itself after a bad option. None of them needs `hassio_api`.
//!
//! Replies are `{"result": "ok", "data": {...}}` or `{"result": "error", "message": "..."}`.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::options::MqttService;

/// Supervisor's address inside an add-on container.
pub const DEFAULT_URL: &str = "http://supervisor";
/// How long one call may take. Supervisor answers in milliseconds when it is well; while it is
/// busy (starting, updating) the add-on goes on without what it asked for.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call failed. The add-on goes on without MQTT, or without discovery, in every case; the
/// variants only change what the log says.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// No answer in time, or no connection at all.
    #[error("Supervisor did not answer {call}: {reason}")]
    Unreachable {
        /// The request, e.g. `GET /services/mqtt`.
        call: &'static str,
        /// What the HTTP client said.
        reason: String,
    },
    /// Supervisor answered with an error.
    #[error("Supervisor refused {call} ({status}): {message}")]
    Refused {
        /// The request.
        call: &'static str,
        /// HTTP status.
        status: u16,
        /// Supervisor's `message`.
        message: String,
    },
    /// The answer is not what the API documents.
    #[error("Supervisor answered {call} with something unexpected: {reason}")]
    Unexpected {
        /// The request.
        call: &'static str,
        /// What did not parse.
        reason: String,
    },
}

impl SupervisorError {
    /// Whether trying again later may help (no answer, or a server error).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Refused { status, .. } => *status >= 500,
            Self::Unexpected { .. } => false,
        }
    }
}

/// A Supervisor API client.
#[derive(Clone)]
pub struct Supervisor {
    base: Url,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Reply {
    result: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct MqttData {
    host: String,
    port: PortValue,
    #[serde(default)]
    ssl: bool,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The docs show `port` as a string, Supervisor's schema validates a number: take either.
#[derive(Deserialize)]
#[serde(untagged)]
enum PortValue {
    Number(u16),
    Text(String),
}

impl Supervisor {
    /// A client for `base` (normally [`DEFAULT_URL`]).
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(base: Url, token: String, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self { base, token, http })
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let joined = format!("{}{path}", self.base.path().trim_end_matches('/'));
        url.set_path(&joined);
        url
    }

    async fn call(
        &self,
        call: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<Option<serde_json::Value>, SupervisorError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|err| SupervisorError::Unreachable {
                call,
                reason: describe(&err),
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|err| SupervisorError::Unreachable {
                call,
                reason: describe(&err),
            })?;
        let reply: Option<Reply> = serde_json::from_slice(&body).ok();
        match reply {
            Some(reply) if status.is_success() && reply.result == "ok" => Ok(reply.data),
            Some(reply) => Err(SupervisorError::Refused {
                call,
                status: status.as_u16(),
                message: reply.message.unwrap_or_else(|| reply.result.clone()),
            }),
            None if !status.is_success() => Err(SupervisorError::Refused {
                call,
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            }),
            None => Err(SupervisorError::Unexpected {
                call,
                reason: "not a Supervisor reply".into(),
            }),
        }
    }

    /// `GET /services/mqtt`: the broker Supervisor hands to add-ons with `mqtt:want`, or `None`
    /// when no add-on provides one ("Service not enabled").
    ///
    /// # Errors
    /// Supervisor unreachable, or another error than "not enabled".
    pub async fn mqtt_service(&self) -> Result<Option<MqttService>, SupervisorError> {
        const CALL: &str = "GET /services/mqtt";
        let data = match self
            .call(CALL, self.http.get(self.url("/services/mqtt")))
            .await
        {
            Ok(data) => data,
            Err(SupervisorError::Refused { message, .. })
                if message.to_ascii_lowercase().contains("not enabled") =>
            {
                return Ok(None);
            }
            Err(err) => return Err(err),
        };
        let data: MqttData = data
            .ok_or_else(|| SupervisorError::Unexpected {
                call: CALL,
                reason: "no data".into(),
            })
            .and_then(|data| {
                serde_json::from_value(data).map_err(|err| SupervisorError::Unexpected {
                    call: CALL,
                    reason: err.to_string(),
                })
            })?;
        let port = match data.port {
            PortValue::Number(port) => Some(port),
            PortValue::Text(text) => text.trim().parse().ok(),
        }
        .filter(|&port| port != 0)
        .ok_or_else(|| SupervisorError::Unexpected {
            call: CALL,
            reason: "the port is not a port number".into(),
        })?;
        Ok(Some(MqttService {
            host: data.host,
            port,
            ssl: data.ssl,
            username: data.username.filter(|u| !u.is_empty()),
            password: data.password.filter(|p| !p.is_empty()),
        }))
    }

    /// `POST /discovery` of a Wyoming server at `uri` (`tcp://host:port`); returns the
    /// message's uuid.
    ///
    /// # Errors
    /// Supervisor unreachable or refusing (403 when `discovery` in `config.yaml` lacks
    /// `wyoming`).
    pub async fn announce_wyoming(&self, uri: &str) -> Result<String, SupervisorError> {
        const CALL: &str = "POST /discovery";
        let body = serde_json::json!({"service": "wyoming", "config": {"uri": uri}});
        let data = self
            .call(CALL, self.http.post(self.url("/discovery")).json(&body))
            .await?;
        data.as_ref()
            .and_then(|d| d.get("uuid"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| SupervisorError::Unexpected {
                call: CALL,
                reason: "no uuid".into(),
            })
    }

    /// `POST /addons/self/stop`: Supervisor stops the add-on as if the user had, so its
    /// watchdog does not start it again.
    ///
    /// # Errors
    /// Supervisor unreachable or refusing.
    pub async fn stop_self(&self) -> Result<(), SupervisorError> {
        self.call(
            "POST /addons/self/stop",
            self.http.post(self.url("/addons/self/stop")),
        )
        .await
        .map(|_| ())
    }
}

/// reqwest's error with its causes, on one line.
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".into();
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
