//! `[mqtt.lease]` at work: one task keeps this brain's place in the lease (its own MQTT
//! connection, whose last will releases the lease), and one runs the publisher (the entities,
//! the buttons) only while this brain holds it.
//!
//! Design: the lease has its own connection because MQTT gives one last will per connection
//! and the publisher's is already `<base>/status offline`. Both connections use a keep-alive of
//! a third of the lease, so the broker notices a frozen holder (and says `offline` for it)
//! before a standby can take over by the clock. A brain stepping back stops its publisher
//! with a clean DISCONNECT and no `offline`: the new active brain has said `online`. On
//! shutdown the order is: publisher `offline`, then the lease released, so the standby's
//! `online` comes after.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rumqttc::{LastWill, QoS};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::config::{MqttConfig, MqttSettings};
use super::connection::{self, Link, WillFor};
use super::lease::{Lease, LeaseStatus, LeaseView, Role};
use super::source::{ActionSink, ClusterSource, EventFeed};
use super::{EVENT_LOOP_GRACE, Feeds, MqttError, MqttHandle};

/// How long shutdown waits for the release to reach the broker.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bad messages on the lease topic, and a twin, are logged at most this often.
const BAD_LOG_EVERY: Duration = Duration::from_secs(10);

/// The topic of the lease.
pub fn lease_topic(base_topic: &str) -> String {
    format!("{base_topic}/brain/lease")
}

/// `[mqtt]` as a brain taking part in the lease uses it: every client id gets `-<instance>`,
/// so two brains with the same configuration never push each other off the broker.
pub fn with_instance_ids(config: &MqttConfig, instance: &str) -> MqttConfig {
    let mut config = config.clone();
    config.client_id = format!("{}-{instance}", config.client_id);
    config
}

/// Starts the lease and the publisher it guards. Returns at once.
///
/// # Errors
/// A TLS CA file that cannot be used.
pub fn spawn<C: ClusterSource, A: ActionSink>(
    mut settings: MqttSettings,
    instance: &str,
    lease: Duration,
    cluster: Arc<C>,
    actions: Arc<A>,
    feeds: Feeds,
    token: CancellationToken,
) -> Result<MqttHandle, MqttError> {
    let keep_alive = Duration::from_secs((lease.as_secs() / 3).max(1));
    settings.keep_alive = keep_alive;
    let machine = Lease::new(instance, lease);
    let mut lease_settings = settings.clone();
    // The run in the id: two brains given the same instance by mistake must not push each
    // other off the broker, or neither would hear the other and say so.
    lease_settings.client_id = format!(
        "{}-lease-{:08x}",
        settings.client_id,
        machine.run() & 0xffff_ffff
    );
    // Back quickly after a broker restart: the holder must re-assert within its lease.
    lease_settings.backoff = (
        Duration::from_millis(200),
        (lease / 4).max(Duration::from_secs(1)),
    );
    let topic = lease_topic(&settings.base_topic);
    let will: WillFor = {
        let (topic, instance, run) = (topic.clone(), instance.to_owned(), machine.run());
        // Each connection's will names it: a late one, for a connection left behind on a dead
        // node of a clustered broker, does not free the lease held over the next connection.
        Box::new(move |conn| {
            let release = Lease::will(&instance, run, conn);
            LastWill::new(&topic, release, QoS::AtLeastOnce, true)
        })
    };
    let lease_token = CancellationToken::new();
    let (link, lease_loop) =
        connection::connect_with_will(&lease_settings, will, lease_token.clone())?;
    let state = link.state.clone();
    let (status_tx, status) = watch::channel(machine.status(Instant::now()));
    let view = LeaseView::new(instance.to_owned(), status.clone());
    let lease_task = tokio::spawn(run_lease(
        machine,
        link,
        topic,
        status_tx,
        lease_token.clone(),
    ));
    let supervisor = Supervisor {
        settings,
        cluster,
        actions,
        events: feeds.events,
        backends: feeds.backends,
        roles: status,
        token,
    };
    let task = tokio::spawn(async move {
        supervisor.run().await;
        // The entities said `offline`: now free the lease, so a standby takes over at once.
        lease_token.cancel();
        if let Err(err) = lease_task.await {
            warn!(cause = %err, "lease task failed");
        }
        let abort = lease_loop.abort_handle();
        if tokio::time::timeout(EVENT_LOOP_GRACE, lease_loop)
            .await
            .is_err()
        {
            warn!("the lease's MQTT event loop did not stop in time");
            abort.abort();
        }
    });
    Ok(MqttHandle {
        link: state,
        lease: Some(view),
        task,
    })
}

/// Runs the publisher while this brain holds the lease.
struct Supervisor<C, A> {
    settings: MqttSettings,
    cluster: Arc<C>,
    actions: Arc<A>,
    events: Option<EventFeed>,
    backends: Vec<Arc<crate::stt::backends::Backends>>,
    roles: watch::Receiver<LeaseStatus>,
    token: CancellationToken,
}

impl<C: ClusterSource, A: ActionSink> Supervisor<C, A> {
    async fn run(mut self) {
        loop {
            tokio::select! {
                () = self.token.cancelled() => return,
                closed = async { self.roles.wait_for(|s| s.role == Role::Active).await.is_err() } => {
                    if closed {
                        return;
                    }
                }
            }
            let farewell = Arc::new(AtomicBool::new(true));
            let publisher_token = self.token.child_token();
            let handle = match super::spawn_publisher(
                self.settings.clone(),
                Arc::clone(&self.cluster),
                Arc::clone(&self.actions),
                Feeds {
                    events: self.events.clone(),
                    backends: self.backends.clone(),
                },
                publisher_token.clone(),
                Some(Arc::clone(&farewell)),
            ) {
                Ok(handle) => handle,
                Err(err) => {
                    error!(cause = %err, "cannot start the MQTT publisher");
                    return;
                }
            };
            info!("active brain: publishing the entities and taking button presses");
            tokio::select! {
                () = self.token.cancelled() => {
                    // Says `offline` and disconnects (its token is a child of ours).
                    handle.join().await;
                    return;
                }
                closed = async { self.roles.wait_for(|s| s.role != Role::Active).await.is_err() } => {
                    info!("standby brain: stopping the entities and button presses");
                    farewell.store(false, Ordering::Release);
                    publisher_token.cancel();
                    handle.join().await;
                    if closed {
                        return;
                    }
                }
            }
        }
    }
}

fn unix_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The lease task: feeds the state machine and sends what it says.
async fn run_lease(
    mut lease: Lease,
    mut link: Link,
    topic: String,
    status: watch::Sender<LeaseStatus>,
    token: CancellationToken,
) {
    let mut tick = tokio::time::interval(lease.tick_every());
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut changes = link.state.clone();
    let mut seen_connects = 0;
    let mut bad_logged: Option<Instant> = None;
    let mut twin_logged: Option<Instant> = None;
    loop {
        let out = tokio::select! {
            biased;
            () = token.cancelled() => break,
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                let (connected, connects, session) = {
                    let state = changes.borrow_and_update();
                    (state.connected, state.connects, state.session)
                };
                if connected && connects != seen_connects {
                    seen_connects = connects;
                    match link.client.subscribe(&topic, QoS::AtLeastOnce).await {
                        Ok(()) => lease.connected(session, Instant::now(), unix_ms()),
                        Err(err) => {
                            warn!(cause = %err, "cannot subscribe to the lease");
                            Vec::new()
                        }
                    }
                } else {
                    if !connected {
                        lease.disconnected();
                    }
                    Vec::new()
                }
            }
            Some(message) = link.incoming.recv() => {
                if message.topic == topic {
                    match lease.message(&message.payload, message.retain, Instant::now(), unix_ms()) {
                        Ok(out) => out,
                        Err(err) => {
                            if bad_logged.is_none_or(|at| at.elapsed() >= BAD_LOG_EVERY) {
                                bad_logged = Some(Instant::now());
                                warn!(%topic, "ignored a message on the lease topic: {err}");
                            }
                            lease.reassert(Instant::now(), unix_ms())
                        }
                    }
                } else {
                    Vec::new()
                }
            }
            _ = tick.tick() => lease.tick(Instant::now(), unix_ms()),
        };
        if lease.take_twin().is_some() && twin_logged.is_none_or(|at| at.elapsed() >= BAD_LOG_EVERY)
        {
            twin_logged = Some(Instant::now());
            error!(
                instance = lease.instance(),
                "another running brain uses the same lease instance {:?}: give each brain its \
                 own mqtt.lease.instance (or its own wyoming.zeroconf.name), or the lease \
                 cannot tell them apart",
                lease.instance()
            );
        }
        for payload in out {
            if let Err(err) = link
                .client
                .publish(&topic, QoS::AtLeastOnce, true, payload)
                .await
            {
                warn!(cause = %err, "cannot send the lease");
            }
        }
        let now = lease.status(Instant::now());
        status.send_if_modified(|shown| {
            if *shown == now {
                return false;
            }
            if shown.role != now.role || shown.holder != now.holder {
                match (&now.role, &now.holder) {
                    (Role::Active, _) => info!(epoch = now.epoch, "this brain holds the lease"),
                    (_, Some(holder)) => {
                        info!(%holder, epoch = now.epoch, "standby: another brain holds the lease")
                    }
                    _ => info!("standby: no brain holds the lease"),
                }
            }
            *shown = now;
            true
        });
    }
    // A clean shutdown: free the lease now rather than when it runs out.
    let connected = link.state.borrow().connected;
    if connected {
        let released = lease.release(unix_ms());
        let bye = async {
            if let Some(payload) = released {
                link.client
                    .publish(&topic, QoS::AtLeastOnce, true, payload)
                    .await?;
            }
            link.client.disconnect().await
        };
        match tokio::time::timeout(RELEASE_TIMEOUT, bye).await {
            Ok(Ok(())) => info!("lease released"),
            Ok(Err(err)) => warn!(cause = %err, "cannot release the lease"),
            Err(_) => warn!("the broker did not take the lease's release in time"),
        }
    }
    status.send_modify(|s| {
        s.role = Role::Standby;
        s.active_until = None;
    });
}
