//! The add-on's options (`/data/options.json`, written by Supervisor from `config.yaml`'s
//! `options` and `schema`) and the Jarvis configuration they become.
//!
//! Supervisor checks the types before it starts the add-on, but not what Jarvis needs on top
//! (a token id's shape, a time zone that exists, a URL without a path), and the file can be
//! edited by hand. So everything is checked again here, and every problem is reported as one
//! [`OptionError`] that names the option as the user sees it in the Configuration tab, never the
//! TOML key underneath, and never the value of a password.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

use crate::config::{Config, ConfigError};
use crate::models::catalog;

/// The Wyoming port inside the container (`config.yaml` `ports`).
pub const WYOMING_PORT: u16 = 10700;
/// The HTTP API port inside the container; the image's health check asks `/health` there.
pub const HTTP_PORT: u16 = 10701;
/// The address of Supervisor's ingress proxy on the add-on network: requests from it with
/// `X-Ingress-Path` come from a user Home Assistant has authenticated (`panel.trusted_proxies`).
pub const INGRESS_PROXY: &str = "172.30.32.2";
/// The built-in voice, the only one `jarvis models pull --defaults` can fetch.
pub const DEFAULT_VOICE: &str = "en_US-joe-medium";

/// Whisper models the `stt_model` option offers (`config.yaml` `list(...)`), besides `custom`.
pub const STT_MODELS: &[&str] = &[
    "tiny.en",
    "tiny",
    "base.en",
    "base",
    "small.en",
    "small",
    "medium.en",
    "medium",
    "large-v3-turbo",
];

/// `/data/options.json`. Every option without a `?` in the schema is required, as Supervisor
/// writes them all; an option this version does not know is an error (Supervisor drops those
/// itself, so one here means a hand-edited file or a mismatched image).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonOptions {
    /// `log.level`.
    pub log_level: LogLevel,
    /// `tts.voice`: the built-in voice or one in the add-on's config folder under `piper/`.
    pub voice: String,
    /// `stt.model`, or `custom` for `stt_custom_model`.
    pub stt_model: String,
    /// A whisper.cpp model file in the add-on's config folder under `whisper/`.
    #[serde(default)]
    pub stt_custom_model: Option<String>,
    /// `stt.language`.
    pub stt_language: String,
    /// `wake.threshold`.
    pub wake_threshold: f64,
    /// `http.api_key`.
    #[serde(default)]
    pub http_api_key: Option<Password>,
    /// Publish the MQTT entities when Supervisor offers a broker.
    pub mqtt_enabled: bool,
    /// `mqtt.lease.enabled`: a standby brain (another Jarvis on the same broker). Optional in the
    /// file, so options written by an older add-on still load.
    #[serde(default)]
    pub lease_enabled: bool,
    /// `mqtt.lease.instance`; `jarvis-<host name>` when unset.
    #[serde(default)]
    pub lease_instance: Option<String>,
    /// `mqtt.lease.lease_secs`.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// `proxmox.urls`; Proxmox is on when there is at least one.
    pub proxmox_urls: Vec<String>,
    /// `proxmox.token_id`.
    pub proxmox_token_id: String,
    /// `proxmox.token_secret`.
    #[serde(default)]
    pub proxmox_token_secret: Option<Password>,
    /// `proxmox.fingerprints`.
    pub proxmox_fingerprints: Vec<String>,
    /// `!proxmox.insecure_skip_verify`.
    pub proxmox_verify_tls: bool,
    /// `policy.read_only`.
    pub policy_read_only: bool,
    /// `policy.protected_guests`.
    pub policy_protected_guests: Vec<String>,
    /// `llm.enabled`.
    pub llm_enabled: bool,
    /// `llm.url`.
    #[serde(default)]
    pub llm_url: Option<String>,
    /// `llm.model`.
    pub llm_model: String,
    /// `llm.api_key`.
    #[serde(default)]
    pub llm_api_key: Option<Password>,
    /// `frigate.enabled`.
    pub frigate_enabled: bool,
    /// `frigate.url`.
    #[serde(default)]
    pub frigate_url: Option<String>,
    /// `frigate.username`.
    #[serde(default)]
    pub frigate_username: Option<String>,
    /// `frigate.password`.
    #[serde(default)]
    pub frigate_password: Option<Password>,
    /// `frigate.topic_prefix`.
    pub frigate_topic_prefix: String,
    /// `events.retention_days`.
    pub events_retention_days: u32,
    /// `events.timezone`; Home Assistant's (the `TZ` Supervisor sets) when unset.
    #[serde(default)]
    pub timezone: Option<String>,
    /// One mirror for every model download: `<url>/whisper/`, `<url>/whisper-vad/`,
    /// `<url>/piper/`, `<url>/wakeword/` (see DOCS.md).
    #[serde(default)]
    pub models_mirror_url: Option<String>,
}

fn default_lease_secs() -> u64 {
    crate::mqtt::lease::DEFAULT_LEASE_SECS
}

/// `log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Warnings and errors.
    Warn,
    /// The default.
    Info,
    /// Jarvis's own debug lines (not its libraries').
    Debug,
    /// Everything Jarvis logs.
    Trace,
}

impl LogLevel {
    fn filter(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "info,jarvis=debug,wyoming=debug",
            Self::Trace => "info,jarvis=trace,wyoming=trace",
        }
    }
}

/// A `password` option. Its `Debug` hides it, and a value of the wrong type is reported without
/// showing it (serde's own message would quote it).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The value, for the configuration file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Ok(Self(text)),
            _ => Err(serde::de::Error::custom(
                "must be text (the value is not shown: it is a password)",
            )),
        }
    }
}

/// A problem with one option: `option` as the Configuration tab names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// The options file cannot be used at all.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// One option is missing, of the wrong type, or makes no sense.
    #[error("option {option}: {message}")]
    Invalid {
        /// The option's name in `config.yaml`.
        option: String,
        /// What is wrong and what to do.
        message: String,
    },
}

fn invalid(option: &str, message: impl Into<String>) -> OptionError {
    OptionError::Invalid {
        option: option.to_owned(),
        message: message.into(),
    }
}

/// Where the add-on keeps things; `/data` and `/config` in the container, temporary folders in
/// the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonPaths {
    /// The add-on's private, persistent folder (`/data`): options, models, databases.
    pub data: PathBuf,
    /// The add-on's config folder (`/config`, `addon_configs/<repo>_jarvis` on the host):
    /// the user's own models and voices.
    pub config: PathBuf,
    /// ONNX Runtime as shipped in the image.
    pub onnxruntime: PathBuf,
}

impl AddonPaths {
    /// Where the models are downloaded (excluded from backups).
    pub fn models(&self) -> PathBuf {
        self.data.join("models")
    }

    /// The text-to-speech cache (excluded from backups).
    pub fn tts_cache(&self) -> PathBuf {
        self.data.join("tts-cache")
    }
}

/// The MQTT broker Supervisor hands out (`GET /services/mqtt`).
#[derive(Clone, PartialEq, Eq)]
pub struct MqttService {
    /// Broker host, e.g. `core-mosquitto`.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Whether the broker wants TLS.
    pub ssl: bool,
    /// User created for the add-ons.
    pub username: Option<String>,
    /// Its password.
    pub password: Option<String>,
}

impl std::fmt::Debug for MqttService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttService")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("ssl", &self.ssl)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl AddonOptions {
    /// Reads and type-checks the options file.
    ///
    /// # Errors
    /// An unreadable file, or an option that is missing or of the wrong type.
    pub fn load(path: &Path) -> Result<Self, OptionError> {
        let text = std::fs::read_to_string(path).map_err(|err| OptionError::File {
            path: path.to_owned(),
            message: format!("cannot read the add-on options: {err}"),
        })?;
        Self::parse(&text).map_err(|err| match err {
            OptionError::File { message, .. } => OptionError::File {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Type-checks options JSON.
    ///
    /// # Errors
    /// Not a JSON object, or an option that is missing, unknown or of the wrong type.
    pub fn parse(text: &str) -> Result<Self, OptionError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|err| OptionError::File {
                path: PathBuf::new(),
                message: format!("not valid JSON ({err})"),
            })?;
        if !value.is_object() {
            return Err(OptionError::File {
                path: PathBuf::new(),
                message: "must hold a JSON object of options".into(),
            });
        }
        serde_path_to_error::deserialize(value).map_err(|err| {
            let path = err.path().to_string();
            let message = err.into_inner().to_string();
            option_type_error(&path, &message)
        })
    }

    /// The Jarvis configuration (TOML) these options describe, checked as `jarvis serve` would
    /// check it. `mqtt` is the broker from Supervisor, if any. Warnings for the log (a Frigate
    /// without a broker) are returned beside it.
    ///
    /// # Errors
    /// The first option that makes no sense, named as in the Configuration tab.
    pub fn to_config(
        &self,
        paths: &AddonPaths,
        mqtt: Option<&MqttService>,
    ) -> Result<(String, Vec<String>), OptionError> {
        let mut warnings = Vec::new();
        let mut root = toml::Table::new();
        let path = |p: &Path| toml::Value::String(p.to_string_lossy().into_owned());

        set(&mut root, "wyoming.addr", format!("0.0.0.0:{WYOMING_PORT}"));
        // Supervisor discovery announces Jarvis; mDNS from inside a container reaches nothing.
        set(&mut root, "wyoming.zeroconf.enabled", false);
        set(&mut root, "http.enabled", true);
        set(&mut root, "http.addr", format!("0.0.0.0:{HTTP_PORT}"));
        if let Some(key) = &self.http_api_key {
            set(&mut root, "http.api_key", key.expose());
        }
        // The panel in Home Assistant's sidebar: Supervisor's ingress proxy has already
        // authenticated the user.
        set(
            &mut root,
            "panel.trusted_proxies",
            strings(&[INGRESS_PROXY.to_owned()]),
        );
        set(&mut root, "log.level", self.log_level.filter());
        set(&mut root, "log.format", "text");

        set(&mut root, "models.dir", path(&paths.models()));
        if let Some(mirror) = &self.models_mirror_url {
            let base = parse_url("models_mirror_url", mirror)?;
            for (key, folder) in [
                ("models.whisper_base_url", "whisper"),
                ("models.whisper_vad_base_url", "whisper-vad"),
                ("models.piper_base_url", "piper"),
                ("models.wake_base_url", "wakeword"),
            ] {
                set(&mut root, key, join_url(&base, folder));
            }
        }

        set(&mut root, "stt.model", self.whisper_model(paths)?);
        if self.stt_language.trim().is_empty() {
            return Err(invalid(
                "stt_language",
                "must be a language code such as \"en\", or \"auto\"",
            ));
        }
        set(&mut root, "stt.language", self.stt_language.trim());

        self.check_voice(paths)?;
        set(&mut root, "tts.voice", self.voice.trim());
        set(&mut root, "tts.onnxruntime", path(&paths.onnxruntime));
        set(&mut root, "tts.cache_dir", path(&paths.tts_cache()));
        set(&mut root, "wake.threshold", self.wake_threshold);

        set(
            &mut root,
            "audit.path",
            path(&paths.data.join("audit.jsonl")),
        );
        set(
            &mut root,
            "events.path",
            path(&paths.data.join("events.db")),
        );
        set(
            &mut root,
            "events.retention_days",
            i64::from(self.events_retention_days),
        );
        if let Some(zone) = self
            .timezone
            .as_deref()
            .map(str::trim)
            .filter(|z| !z.is_empty())
        {
            set(&mut root, "events.timezone", zone);
        }

        set(&mut root, "policy.read_only", self.policy_read_only);
        set(
            &mut root,
            "policy.protected_guests",
            strings(&self.policy_protected_guests),
        );

        self.proxmox(&mut root)?;
        self.llm(&mut root)?;

        match mqtt {
            Some(broker) => {
                set(&mut root, "mqtt.enabled", self.mqtt_enabled);
                set(&mut root, "mqtt.host", broker.host.as_str());
                set(&mut root, "mqtt.port", i64::from(broker.port));
                set(&mut root, "mqtt.tls", broker.ssl);
                if let Some(user) = &broker.username {
                    set(&mut root, "mqtt.username", user.as_str());
                    if let Some(password) = &broker.password {
                        set(&mut root, "mqtt.password", password.as_str());
                    }
                }
            }
            None => set(&mut root, "mqtt.enabled", false),
        }
        if self.lease_enabled && mqtt.is_some() && self.mqtt_enabled {
            set(&mut root, "mqtt.lease.enabled", true);
            set(
                &mut root,
                "mqtt.lease.lease_secs",
                i64::try_from(self.lease_secs).unwrap_or(i64::MAX),
            );
            if let Some(instance) = self
                .lease_instance
                .as_deref()
                .map(str::trim)
                .filter(|i| !i.is_empty())
            {
                set(&mut root, "mqtt.lease.instance", instance);
            }
        } else if self.lease_enabled {
            warnings.push(
                "lease_enabled is on, but the lease needs the MQTT broker (mqtt_enabled and the \
                 Mosquitto broker add-on): this Jarvis acts alone"
                    .to_owned(),
            );
        }

        let frigate = self.frigate_enabled && mqtt.is_some();
        if self.frigate_enabled && mqtt.is_none() {
            warnings.push(
                "frigate_enabled is on, but Supervisor offers no MQTT broker (install and start \
                 the Mosquitto broker add-on): Frigate's events are not followed"
                    .to_owned(),
            );
        }
        self.frigate(&mut root, frigate)?;

        let text = toml::to_string(&root).map_err(|err| OptionError::File {
            path: PathBuf::new(),
            message: format!("cannot write the configuration: {err}"),
        })?;
        let origin = Path::new("<add-on options>");
        Config::parse(&text, origin)
            .and_then(|config| config.validate(origin))
            .map_err(config_error)?;
        Ok((text, warnings))
    }

    /// `stt.model`: a catalog name, or the custom file in `<config>/whisper/`.
    fn whisper_model(&self, paths: &AddonPaths) -> Result<String, OptionError> {
        let model = self.stt_model.trim();
        if model != "custom" {
            if !STT_MODELS.contains(&model) {
                return Err(invalid(
                    "stt_model",
                    format!(
                        "{model:?} is not a model Jarvis can download; choose one of {} or \
                         \"custom\"",
                        STT_MODELS.join(", ")
                    ),
                ));
            }
            return Ok(model.to_owned());
        }
        let Some(file) = self
            .stt_custom_model
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        else {
            return Err(invalid(
                "stt_custom_model",
                "is required when stt_model is \"custom\": the name of a whisper.cpp ggml file \
                 in the add-on's config folder, under whisper/",
            ));
        };
        if !catalog::is_safe_relative_path(file) || file.contains('/') {
            return Err(invalid(
                "stt_custom_model",
                format!("{file:?} must be a file name (no folders), such as ggml-large-v3-de.bin"),
            ));
        }
        let path = paths.config.join("whisper").join(file);
        if !path.is_file() {
            return Err(invalid(
                "stt_custom_model",
                format!(
                    "{file} is not in the add-on's config folder: put it in {}",
                    paths.config.join("whisper").display()
                ),
            ));
        }
        Ok(path.to_string_lossy().into_owned())
    }

    /// The voice must be one Jarvis can download, or one the user put in `<config>/piper/`.
    fn check_voice(&self, paths: &AddonPaths) -> Result<(), OptionError> {
        let voice = self.voice.trim();
        if voice.is_empty() || voice.contains(['/', '\\']) || voice.starts_with('.') {
            return Err(invalid(
                "voice",
                format!("must be a voice name such as {DEFAULT_VOICE}"),
            ));
        }
        let downloadable = catalog::BUILTIN
            .iter()
            .any(|m| m.name.strip_prefix("piper-") == Some(voice));
        let own = paths.config.join("piper").join(format!("{voice}.onnx"));
        if downloadable || own.is_file() {
            return Ok(());
        }
        Err(invalid(
            "voice",
            format!(
                "{voice} is not built in and {voice}.onnx (with its .onnx.json) is not in {}; \
                 use {DEFAULT_VOICE} or add the voice there",
                paths.config.join("piper").display()
            ),
        ))
    }

    fn proxmox(&self, root: &mut toml::Table) -> Result<(), OptionError> {
        let enabled = !self.proxmox_urls.is_empty();
        set(root, "proxmox.enabled", enabled);
        let mut urls = Vec::new();
        for url in &self.proxmox_urls {
            urls.push(parse_url("proxmox_urls", url)?.to_string());
        }
        set(root, "proxmox.urls", strings(&urls));
        set(root, "proxmox.token_id", self.proxmox_token_id.trim());
        set(
            root,
            "proxmox.fingerprints",
            strings(&self.proxmox_fingerprints),
        );
        set(
            root,
            "proxmox.insecure_skip_verify",
            !self.proxmox_verify_tls,
        );
        match &self.proxmox_token_secret {
            Some(secret) if !secret.expose().trim().is_empty() => {
                set(root, "proxmox.token_secret", secret.expose().trim());
            }
            _ if enabled => {
                return Err(invalid(
                    "proxmox_token_secret",
                    "is required when proxmox_urls is set: the secret `pveum user token add` \
                     printed for proxmox_token_id",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn llm(&self, root: &mut toml::Table) -> Result<(), OptionError> {
        set(root, "llm.enabled", self.llm_enabled);
        if let Some(url) = self.llm_url.as_deref().filter(|u| !u.trim().is_empty()) {
            set(root, "llm.url", parse_url("llm_url", url)?.to_string());
        }
        set(root, "llm.model", self.llm_model.trim());
        if let Some(key) = &self.llm_api_key {
            set(root, "llm.api_key", key.expose());
        }
        Ok(())
    }

    fn frigate(&self, root: &mut toml::Table, enabled: bool) -> Result<(), OptionError> {
        set(root, "frigate.enabled", enabled);
        set(
            root,
            "frigate.topic_prefix",
            self.frigate_topic_prefix.trim(),
        );
        if let Some(url) = self.frigate_url.as_deref().filter(|u| !u.trim().is_empty()) {
            set(
                root,
                "frigate.url",
                parse_url("frigate_url", url)?.to_string(),
            );
        }
        if let Some(user) = self
            .frigate_username
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            set(root, "frigate.username", user.trim());
        }
        if let Some(password) = self
            .frigate_password
            .as_ref()
            .filter(|p| !p.expose().is_empty())
        {
            set(root, "frigate.password", password.expose());
        }
        Ok(())
    }
}

/// Sets `dotted.key` in `root`, creating the tables on the way.
fn set(root: &mut toml::Table, key: &str, value: impl Into<toml::Value>) {
    let mut table = root;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            table.insert(part.to_owned(), value.into());
            return;
        }
        let entry = table
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        table = next;
    }
}

fn strings(values: &[String]) -> toml::Value {
    toml::Value::Array(
        values
            .iter()
            .map(|v| toml::Value::String(v.trim().to_owned()))
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            .collect(),
    )
}

fn parse_url(option: &str, text: &str) -> Result<Url, OptionError> {
    let text = text.trim();
    let url = Url::parse(text)
        .map_err(|err| invalid(option, format!("{text:?} is not a URL ({err})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            option,
            format!("{text:?} must be an http:// or https:// URL with a host"),
        ));
    }
    Ok(url)
}

/// `<base>/<folder>/`, keeping any path the base has.
fn join_url(base: &Url, folder: &str) -> String {
    let mut text = base.to_string();
    if !text.ends_with('/') {
        text.push('/');
    }
    format!("{text}{folder}/")
}

/// serde's message for an option of the wrong type, on one line and without the position in
/// the file (Supervisor writes it, the user never sees it).
fn option_type_error(path: &str, message: &str) -> OptionError {
    let message = match message.rfind(" at line ") {
        Some(cut) => &message[..cut],
        None => message,
    };
    let message = message.replace('\n', " ");
    if path == "." {
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            return invalid(
                field,
                "is missing; open the add-on's Configuration tab and save it",
            );
        }
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            return invalid(
                field,
                "is not an option of this version of the add-on; remove it",
            );
        }
    }
    // `proxmox_urls[0]` names the option the list belongs to.
    let option = path.split(['[', '.']).next().unwrap_or(path);
    invalid(option, message)
}

/// The option behind a configuration key that failed validation.
fn option_for_key(key: &str) -> &'static str {
    match key {
        "tts.voice" => "voice",
        "stt.model" => "stt_model",
        "stt.language" => "stt_language",
        "wake.threshold" => "wake_threshold",
        "http.api_key" => "http_api_key",
        "log.level" => "log_level",
        "events.timezone" => "timezone",
        "events.retention_days" => "events_retention_days",
        "policy.protected_guests" => "policy_protected_guests",
        "proxmox.urls" => "proxmox_urls",
        "proxmox.token_id" => "proxmox_token_id",
        "proxmox.token_secret" => "proxmox_token_secret",
        "proxmox.fingerprints" | "proxmox.insecure_skip_verify" => "proxmox_fingerprints",
        "llm.url" | "llm.enabled" => "llm_url",
        "llm.model" => "llm_model",
        "frigate.url" => "frigate_url",
        "frigate.username" | "frigate.password" => "frigate_username",
        "frigate.topic_prefix" => "frigate_topic_prefix",
        key if key.starts_with("models.") => "models_mirror_url",
        "mqtt.lease.instance" => "lease_instance",
        "mqtt.lease.lease_secs" => "lease_secs",
        key if key.starts_with("mqtt.") => "the MQTT service from Supervisor",
        _ => "(add-on internal setting)",
    }
}

fn config_error(err: ConfigError) -> OptionError {
    match err {
        ConfigError::Invalid { key, message, .. } => {
            // Some messages start with the key itself ("events.timezone \"X\" is not ...").
            let message = message.strip_prefix(key).unwrap_or(&message).trim_start();
            invalid(option_for_key(key), message.replace('\n', " "))
        }
        ConfigError::Parse { key, message, .. } => {
            invalid(option_for_key(&key), message.replace('\n', " "))
        }
        ConfigError::Read { source, .. } => OptionError::File {
            path: PathBuf::new(),
            message: source.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> serde_json::Value {
        serde_json::json!({
            "log_level": "info",
            "voice": "en_US-joe-medium",
            "stt_model": "tiny.en",
            "stt_language": "en",
            "wake_threshold": 0.5,
            "mqtt_enabled": true,
            "proxmox_urls": [],
            "proxmox_token_id": "jarvis@pve!ha",
            "proxmox_fingerprints": [],
            "proxmox_verify_tls": true,
            "policy_read_only": false,
            "policy_protected_guests": [],
            "llm_enabled": false,
            "llm_model": "llama3.1",
            "frigate_enabled": false,
            "frigate_topic_prefix": "frigate",
            "events_retention_days": 30
        })
    }

    fn paths() -> AddonPaths {
        AddonPaths {
            data: PathBuf::from("/data"),
            config: PathBuf::from("/nonexistent-addon-config"),
            onnxruntime: PathBuf::from("/usr/lib/jarvis/libonnxruntime.so.1.24.2"),
        }
    }

    fn with(changes: serde_json::Value) -> Result<(String, Vec<String>), OptionError> {
        let mut options = defaults();
        for (key, value) in changes.as_object().unwrap() {
            options[key] = value.clone();
        }
        AddonOptions::parse(&options.to_string())?.to_config(&paths(), None)
    }

    fn option_of(err: OptionError) -> String {
        match err {
            OptionError::Invalid { option, .. } => option,
            OptionError::File { message, .. } => panic!("file error: {message}"),
        }
    }

    #[test]
    fn the_defaults_make_a_valid_configuration_in_data() {
        let (text, warnings) = with(serde_json::json!({})).unwrap();
        assert!(warnings.is_empty());
        let config = Config::parse(&text, Path::new("t")).unwrap();
        config.validate(Path::new("t")).unwrap();
        assert_eq!(config.models.dir, Path::new("/data/models"));
        assert_eq!(config.tts.cache_dir, Path::new("/data/tts-cache"));
        assert_eq!(config.events.path, Path::new("/data/events.db"));
        assert!(!config.wyoming.zeroconf.enabled);
        assert!(!config.mqtt.enabled);
        assert!(!config.proxmox.enabled);
        assert_eq!(config.wyoming.addr.port(), WYOMING_PORT);
        assert_eq!(config.http.addr.port(), HTTP_PORT);
        assert_eq!(
            config.panel.trusted_proxies,
            vec![INGRESS_PROXY.parse::<std::net::IpAddr>().unwrap()]
        );
    }

    #[test]
    fn a_missing_option_is_named() {
        let mut options = defaults();
        options.as_object_mut().unwrap().remove("voice");
        let err = AddonOptions::parse(&options.to_string()).unwrap_err();
        assert_eq!(option_of(err), "voice");
    }

    #[test]
    fn a_wrong_type_is_named_without_the_file_position() {
        let err = with(serde_json::json!({"wake_threshold": "high"})).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("option wake_threshold: "), "{text}");
        assert!(!text.contains("line"), "{text}");
        let err = with(serde_json::json!({"proxmox_urls": ["https://a:8006", 5]})).unwrap_err();
        assert_eq!(option_of(err), "proxmox_urls");
    }

    #[test]
    fn a_password_of_the_wrong_type_is_not_shown() {
        let err = with(serde_json::json!({"proxmox_token_secret": 123_456_789})).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("proxmox_token_secret"), "{text}");
        assert!(!text.contains("123456789"), "{text}");
    }

    #[test]
    fn checks_of_the_configuration_name_the_option() {
        let err = with(serde_json::json!({"wake_threshold": 1.5})).unwrap_err();
        assert_eq!(option_of(err), "wake_threshold");
        let err = with(serde_json::json!({"timezone": "Mars/Olympus"})).unwrap_err();
        assert_eq!(option_of(err), "timezone");
        let err = with(serde_json::json!({
            "proxmox_urls": ["https://pve1:8006"],
            "proxmox_token_id": "root",
            "proxmox_token_secret": "s3cret"
        }))
        .unwrap_err();
        assert_eq!(option_of(err), "proxmox_token_id");
        let err = with(serde_json::json!({"llm_enabled": true})).unwrap_err();
        assert_eq!(option_of(err), "llm_url");
        let err = with(serde_json::json!({"frigate_url": "http://frigate:5000/api"})).unwrap_err();
        assert_eq!(option_of(err), "frigate_url");
    }

    #[test]
    fn proxmox_needs_its_secret_which_never_appears_in_messages() {
        let err = with(serde_json::json!({"proxmox_urls": ["https://pve1:8006"]})).unwrap_err();
        assert_eq!(option_of(err), "proxmox_token_secret");
        let (text, _) = with(serde_json::json!({
            "proxmox_urls": ["https://pve1:8006"],
            "proxmox_token_secret": "0f3c-secret",
            "proxmox_verify_tls": false
        }))
        .unwrap();
        let config = Config::parse(&text, Path::new("t")).unwrap();
        assert!(config.proxmox.enabled);
        assert!(config.proxmox.insecure_skip_verify);
        assert_eq!(
            config
                .proxmox
                .token_secret
                .as_ref()
                .map(|s| s.expose().to_owned()),
            Some("0f3c-secret".to_owned())
        );
        assert!(!format!("{:?}", AddonOptions::parse(&defaults().to_string())).contains("0f3c"));
    }

    #[test]
    fn the_lease_options_make_a_standby_brain_on_supervisors_broker() {
        let broker = MqttService {
            host: "core-mosquitto".into(),
            port: 1883,
            ssl: false,
            username: None,
            password: None,
        };
        // Options written by an older add-on (no lease keys) still load: the lease is off.
        let options = AddonOptions::parse(&defaults().to_string()).unwrap();
        let (text, _) = options.to_config(&paths(), Some(&broker)).unwrap();
        let config = Config::parse(&text, Path::new("t")).unwrap();
        assert!(!config.mqtt.lease.enabled);

        let mut options = defaults();
        options["lease_enabled"] = true.into();
        options["lease_instance"] = "jarvis-vm301".into();
        options["lease_secs"] = 15.into();
        let options = AddonOptions::parse(&options.to_string()).unwrap();
        let (text, warnings) = options.to_config(&paths(), Some(&broker)).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let config = Config::parse(&text, Path::new("t")).unwrap();
        assert!(config.mqtt.lease.enabled);
        assert_eq!(config.mqtt.lease.instance.as_deref(), Some("jarvis-vm301"));
        assert_eq!(config.mqtt.lease.lease_secs, 15);

        // Without a broker: a warning, and this Jarvis acts alone.
        let (text, warnings) = options.to_config(&paths(), None).unwrap();
        let config = Config::parse(&text, Path::new("t")).unwrap();
        assert!(!config.mqtt.lease.enabled);
        assert!(warnings[0].contains("lease_enabled"), "{warnings:?}");

        // Bad values are named as in the Configuration tab.
        for (key, value, option) in [
            ("lease_secs", serde_json::json!(60), "lease_secs"),
            (
                "lease_instance",
                serde_json::json!("vm 301"),
                "lease_instance",
            ),
        ] {
            let mut options = defaults();
            options["lease_enabled"] = true.into();
            options[key] = value;
            let err = AddonOptions::parse(&options.to_string())
                .unwrap()
                .to_config(&paths(), Some(&broker))
                .unwrap_err();
            assert_eq!(option_of(err), option);
        }
    }

    #[test]
    fn the_broker_from_supervisor_turns_mqtt_on_and_frigate_needs_it() {
        let broker = MqttService {
            host: "core-mosquitto".into(),
            port: 1883,
            ssl: false,
            username: Some("addons".into()),
            password: Some("pw".into()),
        };
        let mut options = defaults();
        options["frigate_enabled"] = true.into();
        let options = AddonOptions::parse(&options.to_string()).unwrap();
        let (text, warnings) = options.to_config(&paths(), Some(&broker)).unwrap();
        assert!(warnings.is_empty());
        let config = Config::parse(&text, Path::new("t")).unwrap();
        assert!(config.mqtt.enabled && config.frigate.enabled);
        assert_eq!(config.mqtt.host, "core-mosquitto");
        assert_eq!(config.mqtt.username.as_deref(), Some("addons"));
        assert!(!format!("{broker:?}").contains("pw"));

        let (text, warnings) = options.to_config(&paths(), None).unwrap();
        let config = Config::parse(&text, Path::new("t")).unwrap();
        assert!(!config.mqtt.enabled && !config.frigate.enabled);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn the_mirror_serves_every_kind_of_model() {
        let (text, _) =
            with(serde_json::json!({"models_mirror_url": "http://mirror.lan/jarvis"})).unwrap();
        let config = Config::parse(&text, Path::new("t")).unwrap();
        assert_eq!(
            config.models.piper_base_url.as_str(),
            "http://mirror.lan/jarvis/piper/"
        );
        assert_eq!(
            config.models.whisper_vad_base_url.as_str(),
            "http://mirror.lan/jarvis/whisper-vad/"
        );
        let err = with(serde_json::json!({"models_mirror_url": "ftp://mirror"})).unwrap_err();
        assert_eq!(option_of(err), "models_mirror_url");
    }

    #[test]
    fn models_and_voices_outside_the_catalog_need_their_files() {
        let err = with(serde_json::json!({"stt_model": "huge"})).unwrap_err();
        assert_eq!(option_of(err), "stt_model");
        let err = with(serde_json::json!({"stt_model": "custom"})).unwrap_err();
        assert_eq!(option_of(err), "stt_custom_model");
        let err = with(serde_json::json!({"voice": "de_DE-thorsten-high"})).unwrap_err();
        assert_eq!(option_of(err), "voice");
    }
}
