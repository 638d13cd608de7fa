//! Frigate NVR: its MQTT topics and HTTP API, feeding the event memory.
//!
//! [`spawn`] starts three tasks on one [`TaskTracker`]:
//! - the **broker** task ([`broker`]) owns rumqttc's event loop for Frigate's topics, with its
//!   own connection (Frigate's broker, or `[mqtt]`'s), and hands messages over a bounded
//!   channel;
//! - the **ingest** task ([`ingest`]) turns them into events of the memory ([`wire`]), awaits
//!   the store (its queue is the backpressure: when it is full, the broker task stops reading
//!   and the broker holds Frigate's messages), keeps [`FrigateStatus`] and sends arrivals;
//! - the **backfill** task ([`backfill`]) fetches what MQTT missed from Frigate's API
//!   ([`api`]) at start, whenever Frigate comes back, and after Jarvis reconnects to the broker.
//!
//! - [`config`]: the `[frigate]` section.
//! - [`status`]: what the rest of Jarvis sees ([`FrigateLink`]).

mod api;
mod backfill;
mod broker;
pub mod config;
mod ingest;
pub mod status;
pub mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use url::Url;

use crate::config::{Secret, parse_fingerprint};
use crate::events::{Event, EventStore};
use crate::mqtt::MqttConfig;

pub use config::{FrigateConfig, FrigateMqttConfig};
pub use status::{Availability, FrigateLink, FrigateStatus};

/// Why the subscriber could not start (retries cannot fix these; Frigate being down is not one:
/// the tasks wait for it).
#[derive(Debug, thiserror::Error)]
pub enum FrigateError {
    /// A setting that cannot be used, with the fix.
    #[error("frigate: {0}")]
    Config(String),
}

/// [`FrigateConfig`] (and the broker it uses) checked and typed. Tests build it directly to use
/// shorter retry intervals.
#[derive(Debug, Clone)]
pub struct FrigateSettings {
    /// Frigate's topics start with this (no trailing `/`).
    pub topic_prefix: String,
    /// The broker Frigate publishes to.
    pub broker: BrokerSettings,
    /// Frigate's API; `None`: MQTT only.
    pub api: Option<ApiSettings>,
    /// How far back the first backfill reaches; zero: no backfill.
    pub backfill: Duration,
    /// Labels announced when they arrive, lower-case.
    pub announce_labels: Vec<String>,
    /// Smallest and largest wait before the API is tried again after a failure.
    pub api_retry: (Duration, Duration),
}

/// Where and how to connect to Frigate's broker.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name and password.
    pub credentials: Option<(String, Secret)>,
    /// TLS, with an optional CA file (`None` inside: the system roots).
    pub tls: Option<Option<PathBuf>>,
    /// MQTT client id (unique on the broker: not the publisher's).
    pub client_id: String,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// Smallest and largest wait between two connection attempts.
    pub backoff: (Duration, Duration),
}

/// Frigate's HTTP API.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Base URL (`http://frigate:5000`, `https://frigate:8971`).
    pub url: Url,
    /// User and password for `POST /api/login` (port 8971).
    pub login: Option<(String, Secret)>,
    /// CA to trust besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 pins of Frigate's certificate.
    pub pins: Vec<[u8; 32]>,
    /// Per request, connection included.
    pub timeout: Duration,
}

/// Default smallest wait before retrying the API: Frigate restarting takes a few seconds.
const API_RETRY_MIN: Duration = Duration::from_secs(5);
/// Default largest wait: a Frigate that is down for long is still noticed within minutes.
const API_RETRY_MAX: Duration = Duration::from_secs(300);

impl FrigateSettings {
    /// The settings of `config`, with the broker of `mqtt` unless `[frigate.mqtt]` names one.
    ///
    /// # Errors
    /// A user without a password (neither in the file nor in `JARVIS_FRIGATE_PASSWORD`), or a
    /// fingerprint that does not parse (the configuration was not validated).
    pub fn from_config(config: &FrigateConfig, mqtt: &MqttConfig) -> Result<Self, FrigateError> {
        let shared = mqtt.settings();
        let client_id = format!("{}-frigate", mqtt.client_id);
        let broker = match &config.mqtt {
            None => BrokerSettings {
                host: shared.host,
                port: shared.port,
                credentials: shared.credentials,
                tls: shared.tls.map(|tls| tls.ca_file),
                client_id,
                keep_alive: shared.keep_alive,
                backoff: shared.backoff,
            },
            Some(own) => BrokerSettings {
                host: own.host.clone(),
                port: own.port,
                credentials: own.username.as_ref().map(|user| {
                    (
                        user.clone(),
                        own.password.clone().unwrap_or_else(|| Secret::new("")),
                    )
                }),
                tls: own.tls.then(|| own.ca_file.clone()),
                client_id,
                keep_alive: shared.keep_alive,
                backoff: shared.backoff,
            },
        };
        let api = match &config.url {
            None => None,
            Some(url) => {
                let login = match (&config.username, &config.password) {
                    (None, _) => None,
                    (Some(user), Some(password)) if !password.is_empty() => {
                        Some((user.clone(), password.clone()))
                    }
                    (Some(_), _) => {
                        return Err(FrigateError::Config(
                            "frigate.username is set but no password: set JARVIS_FRIGATE_PASSWORD \
                             (or frigate.password)"
                                .into(),
                        ));
                    }
                };
                let pins = config
                    .fingerprints
                    .iter()
                    .map(|pin| {
                        parse_fingerprint(pin).ok_or_else(|| {
                            FrigateError::Config(format!(
                                "frigate.fingerprints: {pin:?} is not a SHA-256 fingerprint (AA:BB:...)"
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                Some(ApiSettings {
                    url: url.clone(),
                    login,
                    ca_file: config.ca_file.clone(),
                    pins,
                    timeout: Duration::from_secs(config.timeout_secs.max(1)),
                })
            }
        };
        Ok(Self {
            topic_prefix: config.topic_prefix.clone(),
            broker,
            api,
            backfill: Duration::from_secs(u64::from(config.backfill_hours) * 3600),
            announce_labels: config
                .announce_labels
                .iter()
                .map(|l| l.trim().to_lowercase())
                .collect(),
            api_retry: (API_RETRY_MIN, API_RETRY_MAX),
        })
    }
}

/// Counters of the subscriber, for `/health`, logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FrigateStats {
    /// Connected to the broker now.
    pub connected: bool,
    /// The broker has acknowledged the subscriptions of this connection.
    pub subscribed: bool,
    /// Connections made so far.
    pub connects: u64,
    /// Failed connection attempts and lost connections.
    pub connection_failures: u64,
    /// The last connection problem, for people.
    pub last_error: Option<String>,
    /// MQTT messages handled (whatever became of them).
    pub messages: u64,
    /// Tracked-object messages stored (`events`).
    pub objects: u64,
    /// Review messages stored (`reviews`).
    pub reviews: u64,
    /// `tracked_object_update`s stored.
    pub updates: u64,
    /// Arrivals announced.
    pub arrivals: u64,
    /// Messages that were not Frigate's (bad JSON, impossible values), skipped.
    pub bad_payloads: u64,
    /// Events the store refused (a time in the future or past the retention).
    pub rejected: u64,
    /// Events the store could not take (unavailable or shut down).
    pub store_errors: u64,
    /// Backfills completed.
    pub backfills: u64,
    /// Backfills that failed (Frigate's API unreachable or refusing).
    pub backfill_failures: u64,
    /// Events and review items stored by backfills.
    pub backfilled: u64,
    /// Why the last backfill failed; `None` once one succeeds.
    pub last_backfill_error: Option<String>,
}

/// A running Frigate subscriber.
#[derive(Debug)]
pub struct FrigateHandle {
    stats: watch::Receiver<FrigateStats>,
    tracker: TaskTracker,
}

impl FrigateHandle {
    /// The counters now.
    pub fn stats(&self) -> FrigateStats {
        self.stats.borrow().clone()
    }

    /// The counters, to wait on (`wait_for`).
    pub fn watch_stats(&self) -> watch::Receiver<FrigateStats> {
        self.stats.clone()
    }

    /// Waits until every task has ended (after the token was cancelled): the broker has been
    /// sent a DISCONNECT (or given up on after two seconds), and the messages already received
    /// are stored. Bound it with the shutdown grace.
    pub async fn join(self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Starts the Frigate subscriber (see the module docs) and returns at once; Frigate or its
/// broker being unreachable is retried, never an error. Call it only when
/// `config.enabled`; cancel `token` to stop it, then [`FrigateHandle::join`].
///
/// # Errors
/// Settings that cannot work: see [`FrigateSettings::from_config`] and [`spawn_settings`].
pub fn spawn(
    config: &FrigateConfig,
    mqtt: &MqttConfig,
    store: EventStore,
    status: Arc<watch::Sender<FrigateStatus>>,
    arrivals: broadcast::Sender<Event>,
    token: CancellationToken,
) -> Result<FrigateHandle, FrigateError> {
    let settings = FrigateSettings::from_config(config, mqtt)?;
    spawn_settings(settings, store, status, arrivals, token)
}

/// [`spawn`] with typed settings.
///
/// # Errors
/// A CA file that cannot be read, or TLS settings rustls refuses.
pub fn spawn_settings(
    settings: FrigateSettings,
    store: EventStore,
    status: Arc<watch::Sender<FrigateStatus>>,
    arrivals: broadcast::Sender<Event>,
    token: CancellationToken,
) -> Result<FrigateHandle, FrigateError> {
    let api = settings
        .api
        .as_ref()
        .map(api::FrigateApi::new)
        .transpose()?;
    let (stats_tx, stats) = watch::channel(FrigateStats::default());
    let stats_tx = Arc::new(stats_tx);
    let tracker = TaskTracker::new();
    let (inbound, broker_task) = broker::start(
        &settings.broker,
        &settings.topic_prefix,
        Arc::clone(&stats_tx),
        token.clone(),
        &tracker,
    )?;
    let shared_problem = store.problem().filter(|_| !store.is_available());
    let shared = Shared {
        store,
        status,
        stats: stats_tx,
        backfill_now: Arc::new(Notify::new()),
        offline_by_api: Arc::new(AtomicBool::new(false)),
        context: wire::Context::new(settings.api.as_ref().map(|a| &a.url)),
    };
    tracker.spawn(broker_task);
    let ingest = ingest::Ingest::new(&settings, shared.clone(), arrivals);
    tracker.spawn(ingest.run(inbound));
    if let Some(api) = api {
        let backfill = backfill::Backfill::new(&settings, api, shared);
        tracker.spawn(backfill.run(token));
    }
    tracker.close();
    if let Some(problem) = shared_problem {
        warn!("frigate: arrivals are announced but nothing is remembered: {problem}");
    }
    info!(
        broker = %format!("{}:{}", settings.broker.host, settings.broker.port),
        prefix = %settings.topic_prefix,
        api = settings.api.as_ref().map_or("none", |a| a.url.as_str()),
        "following frigate"
    );
    Ok(FrigateHandle { stats, tracker })
}

/// What the ingest and backfill tasks share.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) store: EventStore,
    pub(crate) status: Arc<watch::Sender<FrigateStatus>>,
    pub(crate) stats: Arc<watch::Sender<FrigateStats>>,
    /// Wakes the backfill task: Frigate came back, or Jarvis reconnected to the broker.
    pub(crate) backfill_now: Arc<Notify>,
    /// The status says offline because the API failed (not because Frigate said so), so an
    /// answering API may say online again.
    pub(crate) offline_by_api: Arc<AtomicBool>,
    pub(crate) context: wire::Context,
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
