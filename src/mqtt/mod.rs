//! Home Assistant entities over MQTT discovery: every Proxmox node, guest and storage as an HA
//! device with sensors and buttons, Jarvis itself with its health, last command, event memory
//! size and an event entity, and, with Frigate, what the event memory knows per camera (last
//! person, people today, last face, last description, arrivals).
//!
//! - [`config`]: the `[mqtt]` section.
//! - [`connection`]: rumqttc options and the task that owns the event loop.
//! - [`discovery`]: device-based discovery payloads (pure).
//! - [`entity_ids`]: hash-free suggested entity ids, distinct where names collide (pure).
//! - [`state`]: state payloads, rates and steady boot times (pure).
//! - [`lifecycle`]: what was published and what to publish next (pure).
//! - [`cameras`]: the same for Frigate and its cameras (pure).
//! - [`command`]: checking button presses (guests' and nodes').
//! - `node_buttons`: a node's Reboot, Shut down, Start all and Stop all (disabled by default).
//! - [`source`]: the seams: the Proxmox cache, the brain, the event memory and Frigate.
//! - [`speech_backends`]: the speech backends as sensors of the Jarvis device (pure).
//! - [`publisher`]: the task that ties them together.
//! - [`lease`] and [`standby`]: `[mqtt.lease]`, one active brain of two (the lease, and the
//!   task that runs the publisher only while this brain holds it).

mod backups;
pub mod cameras;
pub mod command;
pub mod config;
pub mod connection;
pub mod discovery;
pub mod disks;
pub mod entity_ids;
pub mod lease;
pub mod lifecycle;
mod node_buttons;
pub mod publisher;
pub mod slug;
pub mod source;
pub mod speech_backends;
pub mod standby;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

pub use config::{MqttConfig, MqttSettings};
pub use connection::{LinkState, MqttError};
pub use publisher::Publisher;
pub use source::{ActionSink, ClusterSource, EventFeed, NoBrain, SourceError};

/// A running MQTT publisher.
#[derive(Debug)]
pub struct MqttHandle {
    /// The connection as it is now.
    pub link: watch::Receiver<LinkState>,
    /// The brain lease, with `[mqtt.lease]`.
    pub lease: Option<lease::LeaseView>,
    task: JoinHandle<()>,
}

impl MqttHandle {
    /// The connection as it is now.
    pub fn state(&self) -> LinkState {
        self.link.borrow().clone()
    }

    /// Waits until the publisher has said `offline` and disconnected (after its token was
    /// cancelled).
    pub async fn join(self) {
        if let Err(err) = self.task.await {
            warn!(cause = %err, "mqtt task failed");
        }
    }
}

/// How long the event loop gets to send the goodbye after the publisher is done.
const EVENT_LOOP_GRACE: Duration = Duration::from_secs(3);

/// Connects to the broker and starts publishing `cluster`, with button presses going to
/// `actions`, and, with `events`, the event memory's size and the Frigate entities. Returns at
/// once; the connection is made (and remade) in the background.
///
/// # Errors
/// A TLS CA file that cannot be used (everything else is retried).
pub fn spawn<C: ClusterSource, A: ActionSink>(
    settings: MqttSettings,
    cluster: Arc<C>,
    actions: Arc<A>,
    events: Option<EventFeed>,
    token: CancellationToken,
) -> Result<MqttHandle, MqttError> {
    let feeds = Feeds {
        events,
        backends: Vec::new(),
    };
    spawn_publisher(settings, cluster, actions, feeds, token, None)
}

/// What the publisher shows besides the cluster: the event memory's entities and the speech
/// backends' sensors.
#[derive(Debug, Default)]
pub struct Feeds {
    /// The event memory's size and the Frigate entities.
    pub events: Option<EventFeed>,
    /// Each speech backend as a sensor of the Jarvis device.
    pub backends: Vec<Arc<crate::stt::backends::Backends>>,
}

/// [`spawn`] with `feeds`, saying `offline` at the end only while `farewell` holds (when given).
///
/// # Errors
/// As [`spawn`].
pub(crate) fn spawn_publisher<C: ClusterSource, A: ActionSink>(
    settings: MqttSettings,
    cluster: Arc<C>,
    actions: Arc<A>,
    feeds: Feeds,
    token: CancellationToken,
    farewell: Option<Arc<std::sync::atomic::AtomicBool>>,
) -> Result<MqttHandle, MqttError> {
    let status_topic = format!("{}/status", settings.base_topic);
    let (link, event_loop) = connection::connect(&settings, &status_topic, token.clone())?;
    let state = link.state.clone();
    let mut publisher = Publisher::new(settings, cluster, actions, link, token)
        .with_backends(speech_backends::SpeechBackends::new(feeds.backends));
    if let Some(feed) = feeds.events {
        publisher = publisher.with_events(feed);
    }
    if let Some(farewell) = farewell {
        publisher = publisher.with_farewell(farewell);
    }
    let task = tokio::spawn(async move {
        publisher.run().await;
        // The publisher has sent DISCONNECT (or could not); the event loop ends when it is out.
        let abort = event_loop.abort_handle();
        if tokio::time::timeout(EVENT_LOOP_GRACE, event_loop)
            .await
            .is_err()
        {
            warn!("mqtt event loop did not stop in time");
            abort.abort();
        }
    });
    Ok(MqttHandle {
        link: state,
        lease: None,
        task,
    })
}
