//! The MQTT connection: options from the configuration (credentials, TLS, a retained `offline`
//! last will, packet size limits) and the one task that owns rumqttc's `EventLoop`.
//!
//! The event-loop task only polls: it never awaits anything the publisher could hold up
//! (rumqttc's "never block the poll loop"). It reports the connection through a `watch`
//! channel (a connect counter, so the publisher sees every reconnect even if it was busy) and
//! hands incoming messages over a bounded ring ([`Incoming`]): when the publisher falls behind
//! (a Proxmox poll, a flood of garbage), the oldest messages are dropped with a warning, so
//! that what came last (a button pressed after the flood) is still carried out. Connection
//! errors are logged once per attempt with the setting to fix, then retried after a capped
//! exponential backoff.
//!
//! A clustered broker (`mqtt.hosts`): after a failure the next attempt goes to the next node,
//! after the shortest backoff; the backoff grows only once every node has failed in a row.
//! Each attempt is numbered ([`LinkState::session`]) and may carry its own last will, so that
//! a will published late, by another node, for a connection long gone can be told from one
//! for the connection in use (the brain lease relies on it).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions,
    Outgoing, Packet, QoS, StateError, TlsConfiguration, Transport,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::config::MqttSettings;

/// Largest message Jarvis accepts: commands are a word and HA's birth message is `online`;
/// anything bigger on Jarvis's subscriptions is garbage. rumqttc drops the connection on a
/// bigger packet (MQTT 3.1.1 cannot refuse one message); Jarvis then reconnects.
pub const MAX_INCOMING_BYTES: usize = 16 * 1024;
/// Largest message Jarvis sends. The biggest discovery config (a guest) is about 6 KiB.
pub const MAX_OUTGOING_BYTES: usize = 256 * 1024;
/// Requests queued towards the event loop before `publish` waits.
const REQUEST_CAPACITY: usize = 512;
/// Incoming messages queued for the publisher before the oldest are dropped.
const INCOMING_CAPACITY: usize = 64;
/// Retained availability messages replayed at connect (one per device an earlier run
/// published) queued before new ones are dropped.
const RETAINED_CAPACITY: usize = 16 * 1024;
/// A connection that lived this long was fine: the next failure starts the backoff afresh. A
/// shorter one (a broker that accepts, then drops Jarvis) keeps backing off.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Seconds to wait for the TCP and TLS handshakes and the CONNACK.
const CONNECT_TIMEOUT_SECS: u64 = 5;

/// Why the connection could not be set up at all (retries cannot fix these).
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The CA file of `mqtt.ca_file` is unreadable or holds no certificate.
    #[error("mqtt.ca_file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the TLS settings.
    #[error("mqtt TLS settings: {0}")]
    Tls(String),
}

/// The connection as the rest of Jarvis sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkState {
    /// Connected now.
    pub connected: bool,
    /// Successful connections so far (each one needs subscriptions and a full publish).
    pub connects: u64,
    /// Failed attempts and lost connections so far.
    pub failures: u64,
    /// The last failure, for people: what happened and which setting to check.
    pub last_error: Option<String>,
    /// The number of the connection attempt in use (or last used): what the per-connection
    /// last will was made with.
    pub session: u64,
    /// The broker node connected to (or last tried), `host:port`.
    pub broker: String,
}

/// The last will of each connection attempt, made from the attempt's number (counting from 1).
pub type WillFor = Box<dyn Fn(u64) -> LastWill + Send + Sync>;

/// A message on one of Jarvis's subscriptions.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Bytes,
    /// Whether the broker replayed it as retained.
    pub retain: bool,
}

/// Messages on Jarvis's subscriptions, in order, at most [`INCOMING_CAPACITY`] waiting.
///
/// A ring rather than a queue that refuses the newest: a reader that falls behind (the
/// publisher in a slow Proxmox poll while garbage floods a command topic) loses the *oldest*
/// messages, with a warning, and still gets the newest, so a press that follows a flood is not
/// thrown away for the flood. tokio's `broadcast` channel with one receiver is that ring.
#[derive(Debug)]
pub struct Incoming(broadcast::Receiver<Message>);

impl Incoming {
    /// The next message; `None` once the connection task has ended. Cancel safe.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            match self.0.recv().await {
                Ok(message) => return Some(message),
                Err(RecvError::Lagged(dropped)) => {
                    warn!(
                        dropped,
                        "publisher busy: dropped the oldest incoming messages"
                    );
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// The publisher's side of the connection.
#[derive(Debug)]
pub struct Link {
    /// For publishing and subscribing.
    pub client: AsyncClient,
    /// The connection state.
    pub state: watch::Receiver<LinkState>,
    /// Messages on Jarvis's subscriptions (commands, HA's status).
    pub incoming: Incoming,
    /// Replayed availability of devices (topics ending in `/availability`), kept apart so that
    /// a replay of thousands never crowds out a button press.
    pub retained: mpsc::Receiver<Message>,
}

/// Builds the client and spawns the event-loop task.
///
/// The task runs until `token` is cancelled while disconnected, or, when connected, until the
/// publisher has sent its DISCONNECT (or dropped every client).
///
/// # Errors
/// A CA file that cannot be used.
pub fn connect(
    settings: &MqttSettings,
    will_topic: &str,
    token: CancellationToken,
) -> Result<(Link, JoinHandle<()>), MqttError> {
    let will_topic = will_topic.to_owned();
    let will: WillFor =
        Box::new(move |_| LastWill::new(&will_topic, "offline", QoS::AtLeastOnce, true));
    connect_with_will(settings, will, token)
}

/// [`connect`] with another last will per connection (the brain lease's release).
///
/// # Errors
/// A CA file that cannot be used.
pub fn connect_with_will(
    settings: &MqttSettings,
    will: WillFor,
    token: CancellationToken,
) -> Result<(Link, JoinHandle<()>), MqttError> {
    let tls = match &settings.tls {
        Some(tls) => Some(Arc::new(tls_config(tls.ca_file.as_deref())?)),
        None => None,
    };
    let nodes: Vec<MqttOptions> = std::iter::once((settings.host.as_str(), settings.port))
        .chain(settings.fallbacks.iter().map(|(h, p)| (h.as_str(), *p)))
        .map(|(host, port)| {
            let mut options = MqttOptions::new(&settings.client_id, host, port);
            options
                .set_keep_alive(settings.keep_alive)
                .set_clean_session(true)
                .set_max_packet_size(MAX_INCOMING_BYTES, MAX_OUTGOING_BYTES)
                .set_request_channel_capacity(REQUEST_CAPACITY);
            if let Some((user, password)) = &settings.credentials {
                options.set_credentials(user, password.expose());
            }
            if let Some(config) = &tls {
                options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                    Arc::clone(config),
                )));
            }
            options
        })
        .collect();
    let first = nodes
        .first()
        .cloned()
        .unwrap_or_else(|| MqttOptions::new(&settings.client_id, &settings.host, settings.port));
    let (client, mut eventloop) = AsyncClient::new(first, REQUEST_CAPACITY);
    let mut network = eventloop.network_options();
    network.set_connection_timeout(CONNECT_TIMEOUT_SECS);
    eventloop.set_network_options(network);

    let (state_tx, state) = watch::channel(LinkState::default());
    let (incoming_tx, incoming) = broadcast::channel(INCOMING_CAPACITY);
    let (retained_tx, retained) = mpsc::channel(RETAINED_CAPACITY);
    let task = tokio::spawn(drive(
        eventloop,
        Nodes { nodes, will },
        state_tx,
        (incoming_tx, retained_tx),
        settings.backoff,
        token,
    ));
    Ok((
        Link {
            client,
            state,
            incoming: Incoming(incoming),
            retained,
        },
        task,
    ))
}

pub(crate) fn tls_config(
    ca_file: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, MqttError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let ca_error = |reason: String| MqttError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_error(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ca_error(format!("not a PEM certificate file: {e}")))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(ca_error("holds no usable certificate".into()));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for err in &native.errors {
                warn!(cause = %err, "reading the system's CA certificates");
            }
            roots.add_parsable_certificates(native.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The broker's nodes (one unless `mqtt.hosts` lists more) and the will of each attempt.
struct Nodes {
    nodes: Vec<MqttOptions>,
    will: WillFor,
}

impl Nodes {
    /// Points the event loop at node `index` with the will of attempt `session`; returns the
    /// node's `host:port`.
    fn prepare(&self, eventloop: &mut EventLoop, index: usize, session: u64) -> String {
        if let Some(node) = self.nodes.get(index) {
            eventloop.mqtt_options = node.clone();
        }
        eventloop.mqtt_options.set_last_will((self.will)(session));
        let (host, port) = eventloop.mqtt_options.broker_address();
        format!("{host}:{port}")
    }
}

/// The event-loop task.
async fn drive(
    mut eventloop: EventLoop,
    nodes: Nodes,
    state: watch::Sender<LinkState>,
    (incoming, retained): (broadcast::Sender<Message>, mpsc::Sender<Message>),
    (min_backoff, max_backoff): (Duration, Duration),
    token: CancellationToken,
) {
    let mut delay = min_backoff;
    let mut connected_at: Option<Instant> = None;
    let mut node = 0;
    let mut session = 0;
    let mut endpoint = String::new();
    loop {
        if eventloop.network.is_none() {
            // About to connect: a fresh attempt number, and its will.
            session += 1;
            endpoint = nodes.prepare(&mut eventloop, node, session);
        }
        // Connected, the poll is never cancelled (rumqttc may be in the middle of a write);
        // shutdown then ends with the publisher's DISCONNECT. While connecting, it may be.
        let event = if connected_at.is_some() {
            eventloop.poll().await
        } else {
            tokio::select! {
                () = token.cancelled() => break,
                event = eventloop.poll() => event,
            }
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                connected_at = Some(Instant::now());
                info!(broker = %endpoint, "connected to the MQTT broker");
                state.send_modify(|s| {
                    s.connected = true;
                    s.connects += 1;
                    s.session = session;
                    s.broker.clone_from(&endpoint);
                });
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let message = Message {
                    topic: publish.topic,
                    payload: publish.payload,
                    retain: publish.retain,
                };
                if message.topic.ends_with("/availability") {
                    if let Err(mpsc::error::TrySendError::Full(message)) =
                        retained.try_send(message)
                    {
                        warn!(topic = %message.topic, "publisher busy: dropped a replayed availability");
                    }
                } else {
                    // Never waits; fails only once the publisher is gone.
                    let _ = incoming.send(message);
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                debug!("disconnect sent");
                break;
            }
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => break,
            Err(err) => {
                let stable = connected_at
                    .take()
                    .is_some_and(|at| at.elapsed() >= STABLE_AFTER);
                if stable {
                    delay = min_backoff;
                }
                let why = describe(&err, &endpoint);
                let refused = matches!(err, ConnectionError::ConnectionRefused(_));
                if refused {
                    error!(retry_in = ?delay, "{why}");
                } else {
                    warn!(retry_in = ?delay, "{why}");
                }
                state.send_modify(|s| {
                    s.connected = false;
                    s.failures += 1;
                    s.last_error = Some(why);
                    s.broker.clone_from(&endpoint);
                });
                if token.is_cancelled() {
                    break;
                }
                // The next node at once (after the shortest wait); the backoff grows only when
                // every node has failed in turn.
                node = (node + 1) % nodes.nodes.len().max(1);
                let wait = if node == 0 { delay } else { min_backoff };
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
                if node == 0 {
                    delay = (delay * 2).min(max_backoff);
                }
            }
        }
    }
    state.send_modify(|s| s.connected = false);
}

/// A connection error for people, naming the setting to check.
fn describe(err: &ConnectionError, endpoint: &str) -> String {
    match err {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => format!(
            "the MQTT broker at {endpoint} refused the credentials: check mqtt.username and \
             mqtt.password (or JARVIS_MQTT_PASSWORD)"
        ),
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadClientId) => format!(
            "the MQTT broker at {endpoint} refused the client id: set another mqtt.client_id"
        ),
        ConnectionError::ConnectionRefused(code) => {
            format!("the MQTT broker at {endpoint} refused the connection: {code:?}")
        }
        ConnectionError::Io(io) => format!(
            "cannot reach the MQTT broker at {endpoint}: {io}; check mqtt.host and mqtt.port"
        ),
        ConnectionError::Tls(tls) => format!(
            "TLS with the MQTT broker at {endpoint} failed: {tls}; check mqtt.ca_file and that \
             the broker speaks TLS on mqtt.port"
        ),
        ConnectionError::NetworkTimeout => format!(
            "no answer from the MQTT broker at {endpoint} within {CONNECT_TIMEOUT_SECS} s; check \
             mqtt.host, mqtt.port and mqtt.tls"
        ),
        ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::Error::PayloadSizeLimitExceeded(size),
        )) => format!(
            "dropped a {size}-byte message from the MQTT broker at {endpoint} (more than the \
             {MAX_INCOMING_BYTES} accepted); reconnecting"
        ),
        other => format!("lost the MQTT broker at {endpoint}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_setting_to_fix() {
        let cases = [
            (
                ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized),
                "mqtt.password",
            ),
            (
                ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword),
                "mqtt.username",
            ),
            (
                ConnectionError::Io(std::io::ErrorKind::ConnectionRefused.into()),
                "mqtt.port",
            ),
            (ConnectionError::NetworkTimeout, "mqtt.tls"),
            (
                ConnectionError::MqttState(StateError::Deserialization(
                    rumqttc::Error::PayloadSizeLimitExceeded(1 << 20),
                )),
                "1048576-byte",
            ),
        ];
        for (err, needle) in cases {
            let text = describe(&err, "broker:1883");
            assert!(text.contains(needle), "{text}");
            assert!(text.contains("broker:1883"), "{text}");
        }
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let err = tls_config(Some(std::path::Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = tls_config(Some(&empty)).unwrap_err();
        assert!(err.to_string().contains("no usable certificate"), "{err}");
        assert!(tls_config(None).is_ok());
    }
}
