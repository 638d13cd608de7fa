//! `[mqtt]`: the broker Jarvis publishes Home Assistant discovery to, and how often it polls
//! Proxmox for the states. Parsed with the rest of [`crate::config::Config`], checked once by
//! [`MqttConfig::validate`], then turned into typed [`MqttSettings`] for the publisher.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigError, Secret};

/// Default MQTT port (plain TCP; 8883 is the usual TLS port).
pub const DEFAULT_PORT: u16 = 1883;
/// Default poll interval: pvestatd refreshes `/cluster/resources` about every 10 s, so polling
/// faster only returns the same numbers.
pub const DEFAULT_POLL_SECS: u64 = 15;
/// Default grace period before a guest missing from the cluster loses its entities: long enough
/// to ride out a failed or partial poll and a restore under the same VMID.
pub const DEFAULT_GRACE_SECS: u64 = 300;
/// Default full state refresh: every retained state is sent again this often, so HA's
/// `expire_after` never fires while Jarvis is alive, even for values that never change.
pub const DEFAULT_REFRESH_SECS: u64 = 300;
/// Default upper bound of the random delay before answering HA's birth message (HA's docs ask
/// for a short random delay so that every publisher does not answer at once).
pub const DEFAULT_BIRTH_DELAY_MS_MAX: u64 = 2000;

/// `[mqtt]`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Publish the cluster to Home Assistant over MQTT.
    pub enabled: bool,
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// More nodes of a clustered broker (`"host"` or `"host:port"`, the port defaulting to
    /// `port`): when the connection to one drops, Jarvis connects to the next.
    pub hosts: Vec<String>,
    /// User name, when the broker asks for one.
    pub username: Option<String>,
    /// Password (prefer `JARVIS_MQTT_PASSWORD`). Never logged.
    pub password: Option<Secret>,
    /// MQTT client id; unique on the broker.
    pub client_id: String,
    /// Connect with TLS.
    pub tls: bool,
    /// PEM file of the CA that signed the broker's certificate; the system roots when unset.
    pub ca_file: Option<PathBuf>,
    /// HA's discovery prefix (HA's MQTT options; `homeassistant` unless changed there).
    pub discovery_prefix: String,
    /// First level of every state, availability and command topic Jarvis uses.
    pub base_topic: String,
    /// Cluster id in unique ids; the Proxmox cluster name when unset (the node name for a node
    /// without a cluster). Set it before the first start to keep ids across a cluster rename.
    pub cluster_id: Option<String>,
    /// Seconds between two polls of the cluster.
    pub poll_secs: u64,
    /// Seconds a guest, node or storage may be missing from the cluster before its entities are
    /// removed from HA.
    pub grace_secs: u64,
    /// Seconds between two full resends of every retained state.
    pub refresh_secs: u64,
    /// Retain discovery configs at the broker (HA's docs prefer answering its birth message).
    pub retain_discovery: bool,
    /// Largest random delay before answering HA's birth message, in ms.
    pub birth_delay_ms_max: u64,
    /// `[mqtt.lease]`: a standby brain.
    pub lease: super::lease::LeaseConfig,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: "localhost".into(),
            port: DEFAULT_PORT,
            hosts: Vec::new(),
            username: None,
            password: None,
            client_id: "jarvis".into(),
            tls: false,
            ca_file: None,
            discovery_prefix: "homeassistant".into(),
            base_topic: "jarvis".into(),
            cluster_id: None,
            poll_secs: DEFAULT_POLL_SECS,
            grace_secs: DEFAULT_GRACE_SECS,
            refresh_secs: DEFAULT_REFRESH_SECS,
            retain_discovery: false,
            birth_delay_ms_max: DEFAULT_BIRTH_DELAY_MS_MAX,
            lease: super::lease::LeaseConfig::default(),
        }
    }
}

impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written out so that a new field is not forgotten: the password is the only one hidden.
        let Self {
            enabled,
            host,
            port,
            hosts,
            username,
            password,
            client_id,
            tls,
            ca_file,
            discovery_prefix,
            base_topic,
            cluster_id,
            poll_secs,
            grace_secs,
            refresh_secs,
            retain_discovery,
            birth_delay_ms_max,
            lease,
        } = self;
        f.debug_struct("MqttConfig")
            .field("enabled", enabled)
            .field("host", host)
            .field("port", port)
            .field("hosts", hosts)
            .field("username", username)
            .field("password", password)
            .field("client_id", client_id)
            .field("tls", tls)
            .field("ca_file", ca_file)
            .field("discovery_prefix", discovery_prefix)
            .field("base_topic", base_topic)
            .field("cluster_id", cluster_id)
            .field("poll_secs", poll_secs)
            .field("grace_secs", grace_secs)
            .field("refresh_secs", refresh_secs)
            .field("retain_discovery", retain_discovery)
            .field("birth_delay_ms_max", birth_delay_ms_max)
            .field("lease", lease)
            .finish()
    }
}

/// [`MqttConfig`] checked and typed, as the publisher uses it. Tests build it directly to use
/// intervals shorter than a second.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// More broker nodes, tried in turn after `host` (`[mqtt] hosts`).
    pub fallbacks: Vec<(String, u16)>,
    /// User name and password.
    pub credentials: Option<(String, Secret)>,
    /// MQTT client id.
    pub client_id: String,
    /// TLS, with an optional CA file.
    pub tls: Option<TlsSettings>,
    /// HA's discovery prefix.
    pub discovery_prefix: String,
    /// Jarvis's own topics start with this.
    pub base_topic: String,
    /// Fixed cluster id, or `None` to ask Proxmox.
    pub cluster_id: Option<String>,
    /// Between two polls.
    pub poll: Duration,
    /// Before a missing device is removed.
    pub grace: Duration,
    /// Between two full state resends.
    pub refresh: Duration,
    /// Retain discovery configs.
    pub retain_discovery: bool,
    /// Largest delay before answering HA's birth message.
    pub birth_delay_max: Duration,
    /// Keep-alive interval of the MQTT connection.
    pub keep_alive: Duration,
    /// Smallest and largest wait between two connection attempts.
    pub backoff: (Duration, Duration),
}

/// TLS towards the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM CA file; the system roots when `None`.
    pub ca_file: Option<PathBuf>,
}

impl MqttConfig {
    /// The settings these values describe (call [`MqttConfig::validate`] first).
    pub fn settings(&self) -> MqttSettings {
        let credentials = self.username.as_ref().map(|user| {
            (
                user.clone(),
                self.password.clone().unwrap_or_else(|| Secret::new("")),
            )
        });
        MqttSettings {
            host: self.host.clone(),
            port: self.port,
            fallbacks: self
                .hosts
                .iter()
                .filter_map(|h| parse_host(h, self.port).ok())
                .collect(),
            credentials,
            client_id: self.client_id.clone(),
            tls: self.tls.then(|| TlsSettings {
                ca_file: self.ca_file.clone(),
            }),
            discovery_prefix: self.discovery_prefix.clone(),
            base_topic: self.base_topic.clone(),
            cluster_id: self.cluster_id.clone(),
            poll: Duration::from_secs(self.poll_secs),
            grace: Duration::from_secs(self.grace_secs),
            refresh: Duration::from_secs(self.refresh_secs),
            retain_discovery: self.retain_discovery,
            birth_delay_max: Duration::from_millis(self.birth_delay_ms_max),
            keep_alive: Duration::from_secs(30),
            backoff: (Duration::from_secs(1), Duration::from_secs(30)),
        }
    }

    /// Checks values that parse but make no sense.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and the fix.
    pub fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = crate::config::invalid_at(origin);
        if self.host.trim().is_empty() {
            return invalid(
                "mqtt.host",
                "must name the broker, such as \"core-mosquitto\"".into(),
            );
        }
        if self.port == 0 {
            return invalid(
                "mqtt.port",
                "must be 1 to 65535 (1883, or 8883 with TLS)".into(),
            );
        }
        for host in &self.hosts {
            if let Err(why) = parse_host(host, self.port) {
                return invalid("mqtt.hosts", format!("{host:?} {why}"));
            }
        }
        if self.hosts.len() > MAX_HOSTS {
            return invalid("mqtt.hosts", format!("may list at most {MAX_HOSTS} nodes"));
        }
        if self.client_id.is_empty() || self.client_id.len() > 64 {
            return invalid("mqtt.client_id", "must be 1 to 64 characters".into());
        }
        if self.password.is_some() && self.username.is_none() {
            return invalid(
                "mqtt.username",
                "a password is set but no user name; MQTT sends a password only with a user".into(),
            );
        }
        if self.ca_file.is_some() && !self.tls {
            return invalid(
                "mqtt.ca_file",
                "is only used with TLS; set mqtt.tls = true or remove it".into(),
            );
        }
        for (key, value) in [
            ("mqtt.discovery_prefix", &self.discovery_prefix),
            ("mqtt.base_topic", &self.base_topic),
        ] {
            if let Err(why) = check_topic_prefix(value) {
                return invalid(key, format!("{value:?} {why}"));
            }
        }
        if self.discovery_prefix == self.base_topic {
            return invalid(
                "mqtt.base_topic",
                "must differ from mqtt.discovery_prefix".into(),
            );
        }
        if let Some(id) = &self.cluster_id {
            if crate::mqtt::slug::topic_slug(id).is_empty() {
                return invalid(
                    "mqtt.cluster_id",
                    format!("{id:?} has no letter or digit to build ids from"),
                );
            }
        }
        if self.poll_secs == 0 || self.poll_secs > 3600 {
            return invalid("mqtt.poll_secs", "must be 1 to 3600".into());
        }
        if self.grace_secs < self.poll_secs {
            return invalid(
                "mqtt.grace_secs",
                "must be at least mqtt.poll_secs (one failed poll must not remove entities)".into(),
            );
        }
        if self.refresh_secs < self.poll_secs {
            return invalid(
                "mqtt.refresh_secs",
                "must be at least mqtt.poll_secs".into(),
            );
        }
        if self.birth_delay_ms_max > 60_000 {
            return invalid("mqtt.birth_delay_ms_max", "must be at most 60000".into());
        }
        if self.lease.enabled && !self.enabled {
            return invalid(
                "mqtt.lease.enabled",
                "needs mqtt.enabled = true: the lease lives on the MQTT broker".into(),
            );
        }
        self.lease.validate(origin)?;
        Ok(())
    }
}

/// Most nodes in `mqtt.hosts`.
const MAX_HOSTS: usize = 16;

/// One entry of `mqtt.hosts`: `host` or `host:port` (`[v6]:port` for an IPv6 address).
fn parse_host(entry: &str, default_port: u16) -> Result<(String, u16), &'static str> {
    let entry = entry.trim();
    let (host, port) = match entry.rsplit_once(':') {
        // `host:port`, or `[v6]:port`; a bare IPv6 address has more than one colon.
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or("has a port that is not 1 to 65535")?;
            (host.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (
            entry.trim_start_matches('[').trim_end_matches(']'),
            default_port,
        ),
    };
    if host.is_empty() {
        return Err("must name a broker node, such as \"mqtt-2\" or \"10.0.0.3:1883\"");
    }
    Ok((host.to_owned(), port))
}

/// A topic prefix Jarvis can put wildcards behind: non-empty, no wildcard, no empty level.
pub(crate) fn check_topic_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() || prefix.len() > 128 {
        return Err("must be 1 to 128 characters");
    }
    if prefix.contains(['+', '#', '\0']) {
        return Err("must not contain the wildcards + or # (or NUL)");
    }
    if prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains("//") {
        return Err("must not start or end with / nor have an empty level");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(edit: impl FnOnce(&mut MqttConfig)) -> Result<(), String> {
        let mut config = MqttConfig {
            enabled: true,
            ..MqttConfig::default()
        };
        edit(&mut config);
        config
            .validate(Path::new("t.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(check(|_| {}), Ok(()));
        let settings = MqttConfig::default().settings();
        assert_eq!(settings.poll, Duration::from_secs(15));
        assert!(settings.tls.is_none() && settings.credentials.is_none());
    }

    #[test]
    fn bad_values_are_named() {
        type Edit = fn(&mut MqttConfig);
        let cases: [(Edit, &str); 12] = [
            (|c| c.hosts = vec!["".into()], "mqtt.hosts"),
            (|c| c.hosts = vec!["mqtt-2:0".into()], "mqtt.hosts"),
            (|c| c.host = " ".into(), "mqtt.host"),
            (|c| c.port = 0, "mqtt.port"),
            (|c| c.base_topic = "jar/+".into(), "mqtt.base_topic"),
            (
                |c| c.discovery_prefix = "ha/".into(),
                "mqtt.discovery_prefix",
            ),
            (|c| c.poll_secs = 0, "mqtt.poll_secs"),
            (|c| c.grace_secs = 1, "mqtt.grace_secs"),
            (|c| c.password = Some(Secret::new("x")), "mqtt.username"),
            (|c| c.ca_file = Some("/ca.pem".into()), "mqtt.ca_file"),
            (|c| c.cluster_id = Some("!!!".into()), "mqtt.cluster_id"),
            (|c| c.lease.lease_secs = 60, "mqtt.lease.lease_secs"),
        ];
        for (edit, key) in cases {
            let err = check(edit).unwrap_err();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn hosts_are_tried_after_the_first() {
        let config = MqttConfig {
            enabled: true,
            port: 1884,
            hosts: vec![
                "mqtt-2".into(),
                "10.0.0.3:1883".into(),
                "[fd00::3]:8883".into(),
            ],
            ..MqttConfig::default()
        };
        assert_eq!(check(|c| c.hosts = config.hosts.clone()), Ok(()));
        let fallbacks = config.settings().fallbacks;
        assert_eq!(
            fallbacks,
            [
                ("mqtt-2".to_owned(), 1884),
                ("10.0.0.3".to_owned(), 1883),
                ("fd00::3".to_owned(), 8883)
            ]
        );
        assert_eq!(
            parse_host("fd00::3", 1883),
            Ok(("fd00::3".to_owned(), 1883))
        );
    }

    #[test]
    fn the_password_is_never_printed() {
        let config = MqttConfig {
            username: Some("ha".into()),
            password: Some(Secret::new("hunter2")),
            ..MqttConfig::default()
        };
        let shown = format!("{config:?} {:?}", config.settings());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}
