//! `[frigate]`: where Frigate publishes (its MQTT broker and `topic_prefix`) and serves (its
//! HTTP API, for the backfill), and what Jarvis announces. Checked once by
//! [`FrigateConfig::validate`]; the subscriber turns it into typed settings when it starts.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

use crate::config::{ConfigError, Secret, parse_fingerprint};

/// Default `frigate.timeout_secs`: Frigate answers `/api/events` from SQLite in well under a
/// second; ten leaves room for a busy Raspberry Pi without hiding a dead server for long.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// Default `frigate.backfill_hours`: a day, the span of Frigate's own review page and of the
/// questions people ask ("did anyone come by today?").
pub const DEFAULT_BACKFILL_HOURS: u32 = 24;
/// Longest `frigate.backfill_hours`: a year (the event memory forgets sooner anyway).
pub const MAX_BACKFILL_HOURS: u32 = 24 * 366;

/// `[frigate]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrigateConfig {
    /// Follow Frigate.
    pub enabled: bool,
    /// Frigate's `mqtt.topic_prefix`.
    pub topic_prefix: String,
    /// Frigate's own broker; `None` (no `[frigate.mqtt]` table): the broker of `[mqtt]`, which
    /// Frigate shares with Home Assistant in most homes.
    pub mqtt: Option<FrigateMqttConfig>,
    /// Frigate's API: `http://host:5000` (internal port, no login) or `https://host:8971`
    /// (with `username` and `password`). `None`: no backfill and no camera list from Frigate's
    /// configuration; only what MQTT brings.
    pub url: Option<Url>,
    /// Frigate user for port 8971; `None` on port 5000.
    pub username: Option<String>,
    /// Its password (prefer `JARVIS_FRIGATE_PASSWORD`). Never logged.
    pub password: Option<Secret>,
    /// PEM file of the CA that signed Frigate's certificate (besides the system roots).
    pub ca_file: Option<PathBuf>,
    /// SHA-256 fingerprints (`AA:BB:...`) of Frigate's certificate (8971 serves a self-signed
    /// one by default); with pins, a certificate is accepted when it matches one.
    pub fingerprints: Vec<String>,
    /// Seconds an API request may take, connection included.
    pub timeout_secs: u64,
    /// How far back the first backfill reaches, in hours; 0: no backfill.
    pub backfill_hours: u32,
    /// Labels whose arrival (a tracked object's `new`) is announced to Home Assistant.
    pub announce_labels: Vec<String>,
}

impl Default for FrigateConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            topic_prefix: "frigate".to_owned(),
            mqtt: None,
            url: None,
            username: None,
            password: None,
            ca_file: None,
            fingerprints: Vec::new(),
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            backfill_hours: DEFAULT_BACKFILL_HOURS,
            announce_labels: vec!["person".to_owned()],
        }
    }
}

/// `[frigate.mqtt]`: Frigate's own broker, when it is not the one in `[mqtt]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrigateMqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// User name, when the broker asks for one.
    pub username: Option<String>,
    /// Password. Never logged.
    pub password: Option<Secret>,
    /// Connect with TLS.
    pub tls: bool,
    /// PEM file of the CA that signed the broker's certificate; the system roots when unset.
    pub ca_file: Option<PathBuf>,
}

impl Default for FrigateMqttConfig {
    fn default() -> Self {
        Self {
            host: "localhost".to_owned(),
            port: crate::mqtt::config::DEFAULT_PORT,
            username: None,
            password: None,
            tls: false,
            ca_file: None,
        }
    }
}

impl FrigateConfig {
    /// Checks values that parse but make no sense. Checked even while disabled, so a file is
    /// either valid or not whatever `enabled` says.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and the fix.
    pub fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = crate::config::invalid_at(origin);
        if let Err(why) = crate::mqtt::config::check_topic_prefix(&self.topic_prefix) {
            return invalid(
                "frigate.topic_prefix",
                format!(
                    "{:?} {why}; use Frigate's mqtt.topic_prefix (\"frigate\" unless changed)",
                    self.topic_prefix
                ),
            );
        }
        if let Some(url) = &self.url {
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return invalid(
                    "frigate.url",
                    format!(
                        "{url} must be an http:// or https:// URL with a host, such as \
                         http://frigate:5000 or https://192.168.1.20:8971"
                    ),
                );
            }
            if !url.username().is_empty() || url.password().is_some() {
                return invalid(
                    "frigate.url",
                    "must not hold credentials (they would show in logs); use frigate.username \
                     and JARVIS_FRIGATE_PASSWORD"
                        .into(),
                );
            }
            if url.query().is_some() || url.fragment().is_some() {
                return invalid(
                    "frigate.url",
                    format!("{url} must be a base URL without ?query or #fragment"),
                );
            }
            if url.path().trim_end_matches('/').ends_with("/api") {
                return invalid(
                    "frigate.url",
                    format!(
                        "{url} must not end in /api: give Frigate's base URL, Jarvis adds /api"
                    ),
                );
            }
        }
        let https = self.url.as_ref().is_some_and(|u| u.scheme() == "https");
        for pin in &self.fingerprints {
            if parse_fingerprint(pin).is_none() {
                return invalid(
                    "frigate.fingerprints",
                    format!(
                        "{pin:?} is not a SHA-256 fingerprint: use the 32 colon-separated hex bytes \
                         of Frigate's certificate (openssl x509 -noout -fingerprint -sha256)"
                    ),
                );
            }
        }
        if !self.fingerprints.is_empty() && self.ca_file.is_some() {
            return invalid(
                "frigate.fingerprints",
                "set either fingerprints (pin Frigate's certificate) or ca_file (trust its CA), \
                 not both"
                    .into(),
            );
        }
        if (!self.fingerprints.is_empty() || self.ca_file.is_some()) && !https {
            return invalid(
                if self.ca_file.is_some() {
                    "frigate.ca_file"
                } else {
                    "frigate.fingerprints"
                },
                "is only used with an https:// frigate.url (port 8971); remove it or set the URL"
                    .into(),
            );
        }
        if self.password.is_some() && self.username.is_none() {
            return invalid(
                "frigate.username",
                "a password is set but no user name; set the Frigate user that logs in on port \
                 8971"
                    .into(),
            );
        }
        if self.username.as_ref().is_some_and(|u| u.trim().is_empty()) {
            return invalid(
                "frigate.username",
                "is empty; remove it (port 5000 needs no login) or name a Frigate user".into(),
            );
        }
        if self.username.is_some() && self.url.is_none() {
            return invalid(
                "frigate.url",
                "a username is set but no url; set Frigate's address, such as \
                 https://192.168.1.20:8971"
                    .into(),
            );
        }
        if self.timeout_secs == 0 || self.timeout_secs > 300 {
            return invalid("frigate.timeout_secs", "must be 1 to 300".into());
        }
        if self.backfill_hours > MAX_BACKFILL_HOURS {
            return invalid(
                "frigate.backfill_hours",
                format!("must be 0 (no backfill) to {MAX_BACKFILL_HOURS} (a year)"),
            );
        }
        for label in &self.announce_labels {
            if label.trim().is_empty() || label.len() > 64 {
                return invalid(
                    "frigate.announce_labels",
                    format!(
                        "{label:?} must be a Frigate label of 1 to 64 characters, such as \"person\""
                    ),
                );
            }
        }
        if let Some(mqtt) = &self.mqtt {
            mqtt.validate(origin)?;
        }
        Ok(())
    }
}

impl FrigateMqttConfig {
    fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = crate::config::invalid_at(origin);
        if self.host.trim().is_empty() {
            return invalid(
                "frigate.mqtt.host",
                "must name Frigate's broker, or remove [frigate.mqtt] to use [mqtt]'s".into(),
            );
        }
        if self.port == 0 {
            return invalid(
                "frigate.mqtt.port",
                "must be 1 to 65535 (1883, or 8883 with TLS)".into(),
            );
        }
        if self.password.is_some() && self.username.is_none() {
            return invalid(
                "frigate.mqtt.username",
                "a password is set but no user name; MQTT sends a password only with a user".into(),
            );
        }
        if self.ca_file.is_some() && !self.tls {
            return invalid(
                "frigate.mqtt.ca_file",
                "is only used with TLS; set frigate.mqtt.tls = true or remove it".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(edit: impl FnOnce(&mut FrigateConfig)) -> Result<(), String> {
        let mut config = FrigateConfig {
            enabled: true,
            ..FrigateConfig::default()
        };
        edit(&mut config);
        config
            .validate(Path::new("t.toml"))
            .map_err(|e| e.to_string())
    }

    fn url(text: &str) -> Option<Url> {
        Some(Url::parse(text).unwrap())
    }

    #[test]
    fn defaults_and_the_usual_setups_are_valid() {
        assert_eq!(check(|_| {}), Ok(()));
        assert_eq!(
            check(|c| c.url = url("http://ccab4aaf-frigate:5000")),
            Ok(())
        );
        assert_eq!(
            check(|c| {
                c.url = url("https://192.168.1.20:8971");
                c.username = Some("jarvis".into());
                c.fingerprints = vec![format!("{}AB", "AB:".repeat(31))];
            }),
            Ok(())
        );
        assert_eq!(
            check(|c| c.mqtt = Some(FrigateMqttConfig::default())),
            Ok(())
        );
    }

    #[test]
    fn bad_values_are_named_with_the_fix() {
        type Edit = fn(&mut FrigateConfig);
        let cases: [(Edit, &str); 15] = [
            (
                |c| c.url = url("https://admin:pw@frigate:8971"),
                "frigate.url",
            ),
            (
                |c| c.topic_prefix = "frigate/#".into(),
                "frigate.topic_prefix",
            ),
            (|c| c.topic_prefix = String::new(), "frigate.topic_prefix"),
            (|c| c.url = url("ftp://frigate"), "frigate.url"),
            (|c| c.url = url("http://frigate:5000/api"), "frigate.url"),
            (|c| c.url = url("http://frigate:5000/?x=1"), "frigate.url"),
            (
                |c| {
                    c.url = url("https://frigate:8971");
                    c.fingerprints = vec!["AA:BB".into()];
                },
                "frigate.fingerprints",
            ),
            (
                |c| {
                    c.url = url("http://frigate:5000");
                    c.ca_file = Some("/ca.pem".into());
                },
                "frigate.ca_file",
            ),
            (|c| c.password = Some(Secret::new("x")), "frigate.username"),
            (|c| c.username = Some("jarvis".into()), "frigate.url"),
            (|c| c.timeout_secs = 0, "frigate.timeout_secs"),
            (|c| c.backfill_hours = 100_000, "frigate.backfill_hours"),
            (
                |c| c.announce_labels = vec![" ".into()],
                "frigate.announce_labels",
            ),
            (
                |c| {
                    c.mqtt = Some(FrigateMqttConfig {
                        host: String::new(),
                        ..FrigateMqttConfig::default()
                    });
                },
                "frigate.mqtt.host",
            ),
            (
                |c| {
                    c.mqtt = Some(FrigateMqttConfig {
                        ca_file: Some("/ca.pem".into()),
                        ..FrigateMqttConfig::default()
                    });
                },
                "frigate.mqtt.ca_file",
            ),
        ];
        for (edit, key) in cases {
            let err = check(edit).unwrap_err();
            assert!(err.contains(key), "{key}: {err}");
            assert_eq!(err.lines().count(), 1, "one line: {err}");
        }
    }

    #[test]
    fn passwords_never_show_in_debug_output() {
        let config = FrigateConfig {
            password: Some(Secret::new("hunter2")),
            mqtt: Some(FrigateMqttConfig {
                username: Some("frigate".into()),
                password: Some(Secret::new("broker-pw")),
                ..FrigateMqttConfig::default()
            }),
            ..FrigateConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("broker-pw"),
            "{shown}"
        );
    }
}
