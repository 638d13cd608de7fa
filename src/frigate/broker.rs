//! The MQTT connection for Frigate's topics: its own rumqttc client (a second client id on a
//! shared broker), the subscriptions, renewed on every connection (clean sessions), and the one
//! task that owns the event loop.
//!
//! The task hands every message to the ingest task over a bounded channel and waits when it is
//! full: the store's queue behind it is Jarvis's backpressure, and while the task waits the
//! broker holds the messages (TCP flow control) instead of Jarvis buffering without bound. A
//! wait longer than 1.5 keep-alives makes the broker drop the connection; Jarvis reconnects and
//! the backfill fetches what was lost. Connection errors are logged with the setting to check
//! and retried after a capped exponential backoff, as the publisher's connection does.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Outgoing,
    Packet, QoS, StateError, SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::{BrokerSettings, FrigateError, FrigateStats};

/// Largest message accepted. `stats` is the biggest Frigate sends on the topics Jarvis follows
/// (a few KiB per camera); the raw JPEG snapshots are on topics Jarvis does not subscribe to.
/// rumqttc drops the connection on a bigger packet; Jarvis then reconnects.
pub(crate) const MAX_INCOMING_BYTES: usize = 4 << 20;
/// Jarvis sends only SUBSCRIBE and DISCONNECT.
const MAX_OUTGOING_BYTES: usize = 16 * 1024;
/// Messages queued towards the ingest task before the event loop waits.
const INBOUND_CAPACITY: usize = 512;
/// A connection that lived this long was fine: the next failure starts the backoff afresh.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Seconds to wait for the TCP and TLS handshakes and the CONNACK.
const CONNECT_TIMEOUT_SECS: u64 = 5;
/// How long the DISCONNECT gets to go out on shutdown.
const GOODBYE: Duration = Duration::from_secs(2);

/// What the event loop hands to the ingest task.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// Connected and subscribed (at the SUBACK); `first` is false after a reconnect, when
    /// messages may have been missed.
    Connected {
        /// The first connection of this run.
        first: bool,
    },
    /// A message on one of the subscriptions.
    Message {
        /// Its topic.
        topic: String,
        /// Its payload.
        payload: Bytes,
    },
}

/// The topic filters for `prefix`: the JSON topics, availability, stats and the per-camera and
/// per-zone object counts (`<prefix>/<camera>/<label>`, one level deeper than the JSON topics,
/// one level above the JPEG snapshots).
pub(crate) fn filters(prefix: &str) -> Vec<SubscribeFilter> {
    [
        "available",
        "events",
        "reviews",
        "tracked_object_update",
        "stats",
        "+/+",
    ]
    .into_iter()
    .map(|topic| SubscribeFilter::new(format!("{prefix}/{topic}"), QoS::AtLeastOnce))
    .collect()
}

/// Builds the client and returns the receiving end and the event-loop task (to spawn).
///
/// # Errors
/// A CA file that cannot be used.
pub(crate) fn start(
    settings: &BrokerSettings,
    prefix: &str,
    stats: Arc<watch::Sender<FrigateStats>>,
    token: CancellationToken,
    tracker: &TaskTracker,
) -> Result<
    (
        mpsc::Receiver<Inbound>,
        impl std::future::Future<Output = ()> + Send + 'static,
    ),
    FrigateError,
> {
    let mut options = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    options
        .set_keep_alive(settings.keep_alive)
        .set_clean_session(true)
        .set_max_packet_size(MAX_INCOMING_BYTES, MAX_OUTGOING_BYTES)
        .set_request_channel_capacity(8);
    if let Some((user, password)) = &settings.credentials {
        options.set_credentials(user, password.expose());
    }
    if let Some(ca_file) = &settings.tls {
        let config = tls_config(ca_file.as_deref())?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(config),
        )));
    }
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    let mut network = eventloop.network_options();
    network.set_connection_timeout(CONNECT_TIMEOUT_SECS);
    eventloop.set_network_options(network);

    // On shutdown the DISCONNECT goes through the request channel, which wakes a connected
    // poll; the poll itself is never cancelled while connected (it may be mid-write).
    let goodbye = client.clone();
    let cancelled = token.clone();
    tracker.spawn(async move {
        cancelled.cancelled().await;
        let _ = goodbye.try_disconnect();
    });

    let (tx, rx) = mpsc::channel(INBOUND_CAPACITY);
    let task = drive(Loop {
        eventloop,
        client,
        filters: filters(prefix),
        tx,
        stats,
        backoff: settings.backoff,
        endpoint: format!("{}:{}", settings.host, settings.port),
        token,
    });
    Ok((rx, task))
}

/// The broker's TLS, as for Jarvis's own MQTT connection, with errors naming Frigate's keys.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, FrigateError> {
    crate::mqtt::connection::tls_config(ca_file).map_err(|err| match err {
        crate::mqtt::MqttError::CaFile { path, reason } => FrigateError::Config(format!(
            "the CA file {path} of Frigate's broker (frigate.mqtt.ca_file or mqtt.ca_file): \
             {reason}"
        )),
        other => FrigateError::Config(format!("TLS towards Frigate's broker: {other}")),
    })
}

struct Loop {
    eventloop: EventLoop,
    client: AsyncClient,
    filters: Vec<SubscribeFilter>,
    tx: mpsc::Sender<Inbound>,
    stats: Arc<watch::Sender<FrigateStats>>,
    backoff: (Duration, Duration),
    endpoint: String,
    token: CancellationToken,
}

/// The event-loop task: runs until the token is cancelled (and the DISCONNECT is sent, or
/// [`GOODBYE`] has passed).
async fn drive(mut l: Loop) {
    let (min_backoff, max_backoff) = l.backoff;
    let mut delay = min_backoff;
    let mut connected_at: Option<Instant> = None;
    let mut connects = 0u64;
    loop {
        let event = if connected_at.is_some() {
            if l.token.is_cancelled() {
                match tokio::time::timeout(GOODBYE, l.eventloop.poll()).await {
                    Ok(event) => event,
                    Err(_) => break,
                }
            } else {
                l.eventloop.poll().await
            }
        } else {
            tokio::select! {
                () = l.token.cancelled() => break,
                event = l.eventloop.poll() => event,
            }
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                connected_at = Some(Instant::now());
                connects += 1;
                info!(broker = %l.endpoint, "connected to frigate's MQTT broker");
                // Never the awaiting `subscribe`: only this loop drains the request channel.
                if let Err(err) = l.client.try_subscribe_many(l.filters.clone()) {
                    warn!(cause = %err, "cannot subscribe to frigate's topics");
                }
                l.stats.send_modify(|s| {
                    s.connected = true;
                    s.subscribed = false;
                    s.connects += 1;
                });
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .filter(|c| matches!(c, SubscribeReasonCode::Failure))
                    .count();
                if refused > 0 {
                    error!(
                        broker = %l.endpoint,
                        refused,
                        "the broker refused subscriptions to frigate's topics; check the \
                         broker's ACL for the user Jarvis connects as"
                    );
                }
                l.stats.send_modify(|s| s.subscribed = true);
                // Only now, subscribed: a backfill started at the CONNACK could read Frigate's
                // API before a message that was published before the SUBACK took effect, and
                // that message was lost (found by the soak, benches/soak.rs).
                forward(
                    &l.tx,
                    &l.token,
                    Inbound::Connected {
                        first: connects == 1,
                    },
                )
                .await;
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let message = Inbound::Message {
                    topic: publish.topic,
                    payload: publish.payload,
                };
                forward(&l.tx, &l.token, message).await;
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                debug!("disconnected from frigate's broker");
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
                if l.token.is_cancelled() {
                    break;
                }
                let why = describe(&err, &l.endpoint);
                if matches!(err, ConnectionError::ConnectionRefused(_)) {
                    error!(retry_in = ?delay, "{why}");
                } else {
                    warn!(retry_in = ?delay, "{why}");
                }
                l.stats.send_modify(|s| {
                    s.connected = false;
                    s.subscribed = false;
                    s.connection_failures += 1;
                    s.last_error = Some(why);
                });
                tokio::select! {
                    () = l.token.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(max_backoff);
            }
        }
    }
    l.stats.send_modify(|s| {
        s.connected = false;
        s.subscribed = false;
    });
}

/// Hands `inbound` to the ingest task, waiting while it is busy; false when it was dropped
/// because Jarvis is shutting down.
async fn forward(tx: &mpsc::Sender<Inbound>, token: &CancellationToken, inbound: Inbound) -> bool {
    tokio::select! {
        // Checked first: at shutdown, stop taking work instead of waiting for room.
        biased;
        () = token.cancelled() => false,
        sent = tx.send(inbound) => sent.is_ok(),
    }
}

/// A connection error for people, naming the setting to check.
fn describe(err: &ConnectionError, endpoint: &str) -> String {
    let keys = "frigate.mqtt (or [mqtt] when Frigate shares its broker)";
    match err {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => format!(
            "frigate's MQTT broker at {endpoint} refused the credentials: check the username and \
             password in {keys}"
        ),
        ConnectionError::ConnectionRefused(code) => {
            format!("frigate's MQTT broker at {endpoint} refused the connection: {code:?}")
        }
        ConnectionError::Io(io) => format!(
            "cannot reach frigate's MQTT broker at {endpoint}: {io}; check host and port in {keys}"
        ),
        ConnectionError::Tls(tls) => format!(
            "TLS with frigate's MQTT broker at {endpoint} failed: {tls}; check tls and ca_file in \
             {keys}"
        ),
        ConnectionError::NetworkTimeout => format!(
            "no answer from frigate's MQTT broker at {endpoint} within {CONNECT_TIMEOUT_SECS} s; \
             check host, port and tls in {keys}"
        ),
        ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::Error::PayloadSizeLimitExceeded(size),
        )) => format!(
            "dropped a {size}-byte message from frigate's MQTT broker at {endpoint} (more than \
             the {MAX_INCOMING_BYTES} accepted); reconnecting"
        ),
        other => format!("lost frigate's MQTT broker at {endpoint}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_cover_the_json_topics_and_the_counts() {
        let paths: Vec<String> = filters("frigate").into_iter().map(|f| f.path).collect();
        assert_eq!(
            paths,
            [
                "frigate/available",
                "frigate/events",
                "frigate/reviews",
                "frigate/tracked_object_update",
                "frigate/stats",
                "frigate/+/+"
            ]
        );
    }

    #[test]
    fn errors_name_the_settings_to_check() {
        let err = ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized);
        let text = describe(&err, "broker:1883");
        assert!(
            text.contains("frigate.mqtt") && text.contains("broker:1883"),
            "{text}"
        );
        let err = tls_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
