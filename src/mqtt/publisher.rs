//! The publisher task: polls the cluster, keeps the books, sends what they say, answers HA's
//! birth message and hands button presses to the brain. With an event feed it also keeps the
//! Frigate entities: each poll asks the store for every camera's summary, Frigate's status
//! changes and arrivals are published as they come.
//!
//! One task owns all of it, so nothing here needs a lock. It waits on (in this order) shutdown,
//! connection changes, incoming messages, finished actions, the brain's activity feed,
//! Frigate's status, Frigate's arrivals, a pending birth-message answer and the poll timer. Sending waits for room in rumqttc's request
//! queue (back-pressure while a full discovery goes out) but gives up at once when the
//! connection drops: every (re)connect publishes everything again anyway.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, QoS, SubscribeFilter};
use tokio::sync::{Semaphore, broadcast, mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::brain::{Action, ActionReport, ActionRequest, Activity, Channel};
use crate::events::{Event, EventStore, Query, Source, StoreError};
use crate::frigate::FrigateStatus;
use crate::proxmox::{Inventory, NodeState};

use super::cameras::{CameraSummary, Cameras};
use super::command::{self, CommandError, NodePress, Press};
use super::config::MqttSettings;
use super::connection::{Incoming, LinkState, Message};
use super::discovery::{Common, DeviceKey, Naming};
use super::lifecycle::{Books, Out, truncate};
use super::source::{ActionSink, ClusterSource, EventFeed, SourceError};
use super::state::unix_now;

/// Button presses being carried out at once; more are refused as busy.
const MAX_PRESSES: usize = 8;
/// How long shutdown waits for `offline` and the DISCONNECT to go out.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// Refused commands logged and sent as `error` events per [`REFUSAL_WINDOW`]; a flood beyond
/// that is counted and summed up in one warning.
const MAX_REFUSALS: u32 = 20;
/// See [`MAX_REFUSALS`].
const REFUSAL_WINDOW: Duration = Duration::from_secs(10);
/// Longest the store may take for every camera's summary in one poll; a slower store leaves
/// the sensors as they are until the next poll (button presses must not wait behind it).
const SUMMARY_TIMEOUT: Duration = Duration::from_secs(5);
/// Devices whose configs [`Publisher::publish_all`] builds before sending them (~100 KB).
const CONFIG_PIECE: usize = 64;

/// Messages handed to rumqttc, for logs and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages queued for the broker.
    pub sent: u64,
    /// Polls done.
    pub polls: u64,
}

/// The publisher. See the module docs.
#[derive(Debug)]
pub struct Publisher<C, A> {
    settings: MqttSettings,
    cluster: Arc<C>,
    actions: Arc<A>,
    books: Books,
    client: AsyncClient,
    link: watch::Receiver<LinkState>,
    incoming: Incoming,
    retained: mpsc::Receiver<Message>,
    seen_connects: u64,
    out: Vec<Out>,
    results_tx: mpsc::Sender<ActionReport>,
    results_rx: mpsc::Receiver<ActionReport>,
    presses: Arc<Semaphore>,
    tasks: TaskTracker,
    republish_at: Option<Instant>,
    last_refresh: Instant,
    proxmox_error: Option<String>,
    /// Start of the current refusal window, refusals in it.
    refusals: (Instant, u32),
    stats: Stats,
    token: CancellationToken,
    /// The event memory and Frigate, when Jarvis has them.
    feed: Option<EventFeed>,
    /// The Frigate entities' books (with a feed).
    cameras: Option<Cameras>,
    /// Frigate's status changes (with a feed and Frigate enabled).
    frigate_status: Option<watch::Receiver<FrigateStatus>>,
    /// Frigate's arrivals (with a feed and Frigate enabled).
    arrivals: Option<broadcast::Receiver<Event>>,
    /// Say `offline` when stopping (false: a standby brain steps back and the active one
    /// already said `online`).
    farewell: Arc<std::sync::atomic::AtomicBool>,
    /// The speech backends shown on the Jarvis device, when there are any.
    backends: Option<super::speech_backends::SpeechBackends>,
}

impl<C: ClusterSource, A: ActionSink> Publisher<C, A> {
    /// A publisher on a connection made by [`super::connection::connect`].
    pub fn new(
        settings: MqttSettings,
        cluster: Arc<C>,
        actions: Arc<A>,
        link: super::connection::Link,
        token: CancellationToken,
    ) -> Self {
        let naming = Naming::new(
            &settings.discovery_prefix,
            &settings.base_topic,
            settings.cluster_id.as_deref().unwrap_or_default(),
        );
        // Long enough that the periodic refresh keeps every steady value alive; short enough
        // that a Jarvis that stopped polling (but kept its connection) shows up in HA.
        let expire_after = 2 * settings.refresh.as_secs() + settings.poll.as_secs();
        let books = Books::new(
            naming,
            settings.cluster_id.is_some(),
            Common { expire_after },
            settings.grace,
            settings.retain_discovery,
        );
        let (results_tx, results_rx) = mpsc::channel(MAX_PRESSES);
        Self {
            settings,
            cluster,
            actions,
            books,
            client: link.client,
            link: link.state,
            incoming: link.incoming,
            retained: link.retained,
            seen_connects: 0,
            out: Vec::new(),
            results_tx,
            results_rx,
            presses: Arc::new(Semaphore::new(MAX_PRESSES)),
            tasks: TaskTracker::new(),
            republish_at: None,
            last_refresh: Instant::now(),
            proxmox_error: None,
            refusals: (Instant::now(), 0),
            stats: Stats::default(),
            token,
            feed: None,
            cameras: None,
            frigate_status: None,
            arrivals: None,
            farewell: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            backends: None,
        }
    }

    /// A brain in the lease (see `standby`): says `offline` when stopping only while
    /// `farewell` holds, and shows the active brain on Jarvis's device.
    #[must_use]
    pub fn with_farewell(mut self, farewell: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.farewell = farewell;
        self.books
            .show_lease(super::standby::lease_topic(&self.settings.base_topic));
        self
    }

    /// Adds the event memory's size to Jarvis's device and, with Frigate enabled, the Frigate
    /// entities.
    #[must_use]
    pub fn with_events(mut self, feed: EventFeed) -> Self {
        if !feed.store.is_disabled() {
            self.books.show_memory();
        }
        let expire_after = 2 * self.settings.refresh.as_secs() + self.settings.poll.as_secs();
        self.cameras = Some(Cameras::new(
            self.books.naming().clone(),
            Common { expire_after },
            self.settings.grace,
            self.settings.retain_discovery,
            feed.frigate_enabled,
        ));
        if feed.frigate_enabled {
            self.frigate_status = Some(feed.frigate.status.clone());
            self.arrivals = Some(feed.frigate.subscribe());
        }
        self.feed = Some(feed);
        self
    }

    /// Shows each speech backend as a diagnostic sensor of the Jarvis device.
    #[must_use]
    pub fn with_backends(mut self, backends: super::speech_backends::SpeechBackends) -> Self {
        let backends = backends.retaining_discovery(self.settings.retain_discovery);
        self.backends = (!backends.is_empty()).then_some(backends);
        self
    }

    /// What was sent so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Runs until the token is cancelled, then says `offline` and disconnects.
    pub async fn run(mut self) {
        let mut poll = tokio::time::interval(self.settings.poll);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut activity = Some(self.actions.subscribe());
        let mut link_changes = self.link.clone();
        loop {
            self.follow_link().await;
            let republish_at = self.republish_at;
            tokio::select! {
                biased;
                () = self.token.cancelled() => break,
                changed = link_changes.changed() => {
                    if changed.is_err() {
                        warn!("the MQTT connection task ended; publisher stops");
                        break;
                    }
                }
                Some(message) = self.incoming.recv() => self.on_message(message).await,
                Some(message) = self.retained.recv() => self.on_retained(&message),
                Some(report) = self.results_rx.recv() => {
                    self.books.action_outcome(&report, &mut self.out);
                    self.flush().await;
                    // Show the guest's new state without waiting for the next poll.
                    poll.reset_immediately();
                }
                event = next_activity(&mut activity) => self.on_activity(event, &mut activity).await,
                changed = status_changed(&mut self.frigate_status) => {
                    if changed {
                        self.on_frigate_status().await;
                    } else {
                        self.frigate_status = None;
                    }
                }
                arrival = next_arrival(&mut self.arrivals) => self.on_arrival(arrival).await,
                () = sleep_until(republish_at) => {
                    self.republish_at = None;
                    debug!("answering Home Assistant's birth message");
                    self.publish_all().await;
                }
                _ = poll.tick() => self.poll_once().await,
            }
        }
        self.goodbye().await;
    }

    /// Waits until connected and handles the connect (subscriptions, full publish). For the
    /// benchmark, which drives the publisher by hand.
    pub async fn wait_connected(&mut self) {
        let mut link = self.link.clone();
        let _ = link.wait_for(|s| s.connected).await;
        self.follow_link().await;
    }

    /// Handles a (re)connect the publisher has not handled yet.
    async fn follow_link(&mut self) {
        let (connected, connects) = {
            let state = self.link.borrow();
            (state.connected, state.connects)
        };
        if !connected || connects == self.seen_connects {
            return;
        }
        self.seen_connects = connects;
        let naming = self.books.naming().clone();
        // Devices an earlier run published: their retained availability is replayed on
        // subscribe. Unsubscribing at once keeps Jarvis from hearing its own availability
        // updates; the broker handles the two in order, so the replay is complete.
        let availability = naming.availability_filter();
        let subscribed = async {
            self.client
                .subscribe(&availability, QoS::AtLeastOnce)
                .await?;
            self.client.unsubscribe(&availability).await?;
            self.client
                .subscribe_many([
                    SubscribeFilter::new(naming.ha_status_topic(), QoS::AtLeastOnce),
                    SubscribeFilter::new(naming.command_filter(), QoS::AtLeastOnce),
                    SubscribeFilter::new(naming.node_command_filter(), QoS::AtLeastOnce),
                ])
                .await
        };
        if let Err(err) = subscribed.await {
            warn!(cause = %err, "cannot subscribe; retrying on the next connection");
            return;
        }
        // The speech backends' config an earlier run retained: replayed once (see
        // `speech_backends::withdraw`); unsubscribed at once, as the availability above.
        let backends_config = super::speech_backends::config_topic(&naming);
        let replay = async {
            self.client
                .subscribe(&backends_config, QoS::AtLeastOnce)
                .await?;
            self.client.unsubscribe(&backends_config).await
        };
        if let Err(err) = replay.await {
            warn!(cause = %err, "cannot read back the speech backends' sensors");
        }
        // With the lease, the brain before this one may have left an `offline` behind (its
        // last will, published late by a clustered broker): watch for it (see `on_message`).
        if self.books.in_lease() {
            if let Err(err) = self
                .client
                .subscribe(&naming.status_topic, QoS::AtLeastOnce)
                .await
            {
                warn!(cause = %err, "cannot subscribe to Jarvis's status");
            }
        }
        self.publish_all().await;
    }

    /// Every config, availability and state (on connect and HA's birth message). The devices'
    /// configs are built and sent [`CONFIG_PIECE`] devices at a time: a cluster of 1000 guests
    /// has ~5 MB of them, which were held at once at every reconnect (the soak's peak memory
    /// rose by as much at its broker restarts, issue #18).
    pub async fn publish_all(&mut self) {
        let started = Instant::now();
        let mut count = 0;
        self.books.publish_head(&mut self.out);
        let devices = self.books.config_devices();
        let mut at = 0;
        let mut sent = true;
        while sent && at < devices {
            let end = (at + CONFIG_PIECE).min(devices);
            self.books.configs_of(at..end, &mut self.out);
            at = end;
            count += self.out.len();
            sent = self.flush().await;
        }
        if sent {
            self.books.publish_tail(&mut self.out);
            if let Some(cameras) = &mut self.cameras {
                cameras.publish_all(&mut self.out);
            }
            if let Some(backends) = &mut self.backends {
                backends.publish_all(self.books.naming(), &mut self.out);
            }
            count += self.out.len();
            self.flush().await;
        }
        info!(
            messages = count,
            devices = self.books.device_count(),
            took = ?started.elapsed(),
            "published discovery and states"
        );
    }

    /// One poll: read the cluster, update the books, send what changed.
    pub async fn poll_once(&mut self) {
        self.stats.polls += 1;
        let now = Instant::now();
        let mut problems = self.actions.problems();
        if let Some(feed) = &self.feed {
            let store = &feed.store;
            let stats = store.stats();
            self.books
                .set_memory(store.is_available().then_some((stats.events, stats.bytes)));
            if let Some(problem) = store.problem().filter(|_| !store.is_disabled()) {
                problems.push(problem);
            }
        }
        self.books.set_problems(problems);
        match self.read_cluster().await {
            Ok(inventory) => {
                if let Some(error) = self.proxmox_error.take() {
                    info!(after = %error, "Proxmox answers again");
                }
                self.fetch_details(&inventory).await;
                self.books
                    .apply_inventory(inventory, now, unix_now(), &mut self.out);
                // Cached by the source for `backups_ttl_secs`: most polls cost nothing here.
                match self.cluster.backups().await {
                    Ok(Some((backups, max_age_days))) => {
                        self.books
                            .apply_backups(&backups, max_age_days, unix_now(), &mut self.out);
                    }
                    Ok(None) => {}
                    Err(err) => debug!(cause = %err, "no backups this poll"),
                }
            }
            Err(err) => {
                if self.proxmox_error.as_ref() != Some(&err.0) {
                    warn!(cause = %err, "cannot read the Proxmox cluster; its entities are unavailable");
                }
                self.books.proxmox_failed(&err.0, &mut self.out);
                self.proxmox_error = Some(err.0);
            }
        }
        if now.duration_since(self.last_refresh) >= self.settings.refresh {
            self.last_refresh = now;
            self.books.refresh_states(&mut self.out);
            if let Some(cameras) = &self.cameras {
                cameras.refresh_states(&mut self.out);
            }
        }
        if let Some(backends) = &mut self.backends {
            backends.publish_changes(self.books.naming(), &mut self.out);
        }
        // Sent before the store is asked: Proxmox's states must not wait for it.
        self.flush().await;
        if self.cameras.is_some() {
            self.apply_frigate(now);
            self.summarize(None).await;
            self.flush().await;
        }
    }

    /// Frigate's status and the cameras the store knows, into the Frigate books; returns the
    /// cameras that appeared.
    fn apply_frigate(&mut self, now: Instant) -> Vec<String> {
        let (Some(feed), Some(cameras)) = (&self.feed, &mut self.cameras) else {
            return Vec::new();
        };
        let status = feed.frigate.status();
        let remembered = feed.store.vocabulary();
        cameras.apply(&status, &remembered.cameras, now, &mut self.out)
    }

    /// Asks the store for the summary of every shown camera (or of `only`) and updates their
    /// sensors.
    async fn summarize(&mut self, only: Option<&[String]>) {
        let (Some(feed), Some(cameras)) = (&self.feed, &self.cameras) else {
            return;
        };
        if !feed.frigate_enabled || !feed.store.is_available() {
            return;
        }
        let wanted: Vec<(String, String)> = cameras
            .cameras()
            .into_iter()
            .filter(|(slug, _)| only.is_none_or(|only| only.contains(slug)))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let midnight = local_midnight(&feed.tz, jiff::Timestamp::now());
        let store = feed.store.clone();
        let asked = async move {
            let mut summaries = Vec::with_capacity(wanted.len());
            for (slug, name) in wanted {
                match camera_summary(&store, &name, midnight).await {
                    Ok(summary) => summaries.push((slug, summary)),
                    Err(err) => {
                        // The store logs its own problems; `/health` and Jarvis's health show them.
                        debug!(camera = %name, cause = %err, "no camera summary this poll");
                        break;
                    }
                }
            }
            summaries
        };
        let Ok(summaries) = tokio::time::timeout(SUMMARY_TIMEOUT, asked).await else {
            warn!(timeout = ?SUMMARY_TIMEOUT, "the event store is slow; camera sensors wait for the next poll");
            return;
        };
        if let Some(cameras) = &mut self.cameras {
            for (slug, summary) in summaries {
                cameras.set_summary(&slug, summary, &mut self.out);
            }
        }
    }

    async fn on_frigate_status(&mut self) {
        if let Some(status) = &mut self.frigate_status {
            status.borrow_and_update();
        }
        let added = self.apply_frigate(Instant::now());
        self.flush().await;
        if !added.is_empty() {
            self.summarize(Some(&added)).await;
            self.flush().await;
        }
    }

    async fn on_arrival(&mut self, arrival: Result<Event, broadcast::error::RecvError>) {
        match arrival {
            Ok(event) => {
                let new_camera = event
                    .camera
                    .as_deref()
                    .map(super::slug::topic_slug)
                    .filter(|slug| self.cameras.as_ref().is_some_and(|c| !c.has(slug)));
                if let Some(cameras) = &mut self.cameras {
                    cameras.arrival(&event, &mut self.out);
                }
                self.flush().await;
                if let Some(slug) = new_camera {
                    self.summarize(Some(&[slug])).await;
                    self.flush().await;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                warn!(
                    missed,
                    "Frigate arrivals overflowed; some arrival events were not published"
                );
            }
            Err(broadcast::error::RecvError::Closed) => self.arrivals = None,
        }
    }

    async fn read_cluster(&mut self) -> Result<Arc<Inventory>, SourceError> {
        let inventory = self.cluster.inventory().await?;
        if !self.books.cluster_known() {
            let name = self.cluster.cluster_name().await.map_err(|err| {
                SourceError(format!(
                    "cannot read the cluster name for the entities' unique ids ({err}); grant \
                     the token Sys.Audit on / or set mqtt.cluster_id"
                ))
            })?;
            let cluster = match name {
                Some(name) => name,
                // A node outside any cluster: its own name.
                None => inventory
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .min()
                    .ok_or_else(|| SourceError("the cluster has no nodes".into()))?
                    .to_owned(),
            };
            info!(%cluster, "cluster id for Home Assistant unique ids");
            self.books.set_cluster(&cluster);
        }
        Ok(inventory)
    }

    /// Load, version and pending updates of the online nodes, from the source's cache.
    async fn fetch_details(&mut self, inventory: &Inventory) {
        let cluster = &self.cluster;
        let fetches = inventory
            .nodes
            .iter()
            .filter(|n| n.status == NodeState::Online)
            .map(|node| async move {
                let (status, updates, disks) = tokio::join!(
                    cluster.node_status(&node.name),
                    cluster.pending_updates(&node.name),
                    cluster.node_disks(&node.name)
                );
                (node.name.as_str(), status, updates, disks)
            });
        for (node, status, updates, disks) in futures_util::future::join_all(fetches).await {
            if let Err(err) = &disks {
                debug!(node, cause = %err, "no disks this poll");
            }
            self.books.set_node_disks(node, disks.ok());
            if let Err(err) = &status {
                debug!(node, cause = %err, "no node status this poll");
            }
            if let Err(err) = &updates {
                debug!(node, cause = %err, "no pending updates this poll");
            }
            self.books.set_node_detail(node, status.ok(), updates.ok());
        }
    }

    async fn on_message(&mut self, message: Message) {
        let naming = self.books.naming();
        if message.topic == super::speech_backends::config_topic(naming) {
            if message.retain {
                super::speech_backends::withdraw(
                    naming,
                    self.backends.as_ref(),
                    &message.payload,
                    &mut self.out,
                );
                self.flush().await;
            }
            return;
        }
        if message.topic == naming.status_topic {
            // Only subscribed with the lease: this brain is the active one and alive.
            if message.payload.as_ref() == b"offline" {
                info!("an earlier brain's `offline` is at the broker; saying `online` again");
                self.out.push(Out::retained(&naming.status_topic, "online"));
                self.flush().await;
            }
            return;
        }
        if message.topic == naming.ha_status_topic() {
            if message.payload.as_ref() == b"online" && self.republish_at.is_none() {
                let delay = jitter(self.settings.birth_delay_max);
                info!(
                    ?delay,
                    "Home Assistant is online; publishing everything again"
                );
                self.republish_at = Some(Instant::now() + delay);
            }
            return;
        }
        // The target comes from the topic's kind and id only (see `command`).
        let on_node = message
            .topic
            .strip_prefix(naming.base.as_str())
            .is_some_and(|rest| rest.starts_with("/node/"));
        let refused = if on_node {
            match command::parse_node(
                &naming.base,
                &message.topic,
                &message.payload,
                message.retain,
            ) {
                Ok(press) => return self.press_node(press, &message.topic).await,
                Err(err) => err,
            }
        } else {
            match command::parse(
                &naming.base,
                &message.topic,
                &message.payload,
                message.retain,
            ) {
                Ok(press) => return self.press(press, &message.topic).await,
                Err(err) => err,
            }
        };
        if refused == CommandError::Retained {
            // Clear it, or every reconnect would replay it.
            self.out.push(Out {
                topic: message.topic.clone(),
                payload: String::new(),
                retain: true,
            });
        }
        self.refuse(&message.topic, &refused.to_string()).await;
    }

    async fn press(&mut self, press: Press, topic: &str) {
        if !self.books.has_guest(press.vmid) {
            let reason = format!("no guest {} in the cluster", press.vmid);
            self.refuse(topic, &reason).await;
            return;
        }
        info!(vmid = press.vmid, action = %press.action, "button pressed");
        let request = ActionRequest::guest(
            Channel::Mqtt,
            topic.to_owned(),
            None,
            press.vmid,
            press.action,
            // A pressed button is the confirmation; the policy still decides.
            true,
        );
        self.hand_over(request, topic).await;
    }

    /// A node's button: the node is the one its topic names, and nothing else.
    async fn press_node(&mut self, press: NodePress, topic: &str) {
        let Some(node) = self.books.node_named(&press.slug) else {
            let reason = format!("no node {} in the cluster", press.slug);
            self.refuse(topic, &reason).await;
            return;
        };
        info!(node, action = %press.action, "node button pressed");
        let request = ActionRequest {
            channel: Channel::Mqtt,
            client: topic.to_owned(),
            conversation: None,
            action: Action::Node {
                node,
                action: press.action,
            },
            // As for a guest's buttons: the press is the confirmation; the policy (protected
            // nodes and guests, the channel's cap) still decides.
            approved: true,
        };
        self.hand_over(request, topic).await;
    }

    /// Hands a press to the brain in the background; its report comes back on `results`.
    async fn hand_over(&mut self, request: ActionRequest, topic: &str) {
        let Ok(permit) = Arc::clone(&self.presses).try_acquire_owned() else {
            let reason = format!("busy: {MAX_PRESSES} actions are already running");
            self.refuse(topic, &reason).await;
            return;
        };
        let actions = Arc::clone(&self.actions);
        let results = self.results_tx.clone();
        self.tasks.spawn(async move {
            let report = actions.act(request).await;
            drop(permit);
            let _ = results.send(report).await;
        });
    }

    /// Logs a refused command and sends an `error` event, at most [`MAX_REFUSALS`] per
    /// [`REFUSAL_WINDOW`] (a flood of garbage must not flood the log and HA as well).
    async fn refuse(&mut self, topic: &str, reason: &str) {
        let now = Instant::now();
        let (since, count) = &mut self.refusals;
        if now.duration_since(*since) >= REFUSAL_WINDOW {
            if *count > MAX_REFUSALS {
                warn!(
                    suppressed = *count - MAX_REFUSALS,
                    "more refused commands were not logged nor sent as events"
                );
            }
            *since = now;
            *count = 0;
        }
        *count += 1;
        if *count > MAX_REFUSALS {
            return;
        }
        let topic = truncate(topic, 200);
        warn!(topic, "refused a command: {reason}");
        self.books.error_event(topic, reason, &mut self.out);
        self.flush().await;
    }

    fn on_retained(&mut self, message: &Message) {
        if message.payload.is_empty() {
            return;
        }
        let levels: Vec<&str> = message.topic.split('/').collect();
        let base_levels = self.books.naming().base.split('/').count();
        if let [kind, id, "availability"] = levels.get(base_levels..).unwrap_or_default() {
            if *kind == "camera" {
                if let Some(cameras) = &mut self.cameras {
                    cameras.note_previous(id);
                }
            } else if let Some(key) = DeviceKey::from_levels(kind, id) {
                self.books.note_previous(key);
            }
        }
    }

    async fn on_activity(
        &mut self,
        event: Result<Activity, broadcast::error::RecvError>,
        feed: &mut Option<broadcast::Receiver<Activity>>,
    ) {
        match event {
            Ok(activity) => {
                self.books.activity(&activity, &mut self.out);
                self.flush().await;
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                warn!(
                    missed,
                    "activity feed overflowed; some events were not published"
                );
            }
            Err(broadcast::error::RecvError::Closed) => *feed = None,
        }
    }

    /// Sends the outbox; whether all of it went. Gives up on the rest when the connection drops
    /// or Jarvis stops: the next connection publishes everything.
    async fn flush(&mut self) -> bool {
        let mut out = std::mem::take(&mut self.out);
        let mut all = true;
        for message in out.drain(..) {
            if !self.send(message).await {
                all = false;
                break;
            }
        }
        out.clear();
        self.out = out;
        all
    }

    async fn send(&mut self, message: Out) -> bool {
        let connects = {
            let state = self.link.borrow();
            if !state.connected || state.connects != self.seen_connects {
                return false;
            }
            state.connects
        };
        let mut link = self.link.clone();
        let publish = self.client.publish(
            message.topic,
            QoS::AtLeastOnce,
            message.retain,
            message.payload.into_bytes(),
        );
        tokio::select! {
            sent = publish => {
                let ok = sent.is_ok();
                self.stats.sent += u64::from(ok);
                ok
            }
            _ = link.wait_for(|s| !s.connected || s.connects != connects) => false,
            () = self.token.cancelled() => false,
        }
    }

    /// `offline` (retained) and a clean DISCONNECT, so HA marks everything unavailable now
    /// rather than when the broker notices the connection is gone.
    async fn goodbye(self) {
        self.tasks.close();
        let connected = self.link.borrow().connected;
        if connected {
            let naming = self.books.naming();
            let farewell = self.farewell.load(std::sync::atomic::Ordering::Acquire);
            let bye = async {
                if farewell {
                    self.client
                        .publish(&naming.status_topic, QoS::AtLeastOnce, true, "offline")
                        .await?;
                }
                self.client.disconnect().await
            };
            match tokio::time::timeout(GOODBYE_TIMEOUT, bye).await {
                Ok(Ok(())) => debug!("offline sent"),
                Ok(Err(err)) => warn!(cause = %err, "cannot say offline to the broker"),
                Err(_) => warn!("the broker did not take the offline message in time"),
            }
        }
        if tokio::time::timeout(GOODBYE_TIMEOUT, self.tasks.wait())
            .await
            .is_err()
        {
            warn!("button presses still running at shutdown; their outcome is not published");
        }
    }
}

async fn next_activity(
    feed: &mut Option<broadcast::Receiver<Activity>>,
) -> Result<Activity, broadcast::error::RecvError> {
    match feed {
        Some(feed) => feed.recv().await,
        None => std::future::pending().await,
    }
}

/// True when Frigate's status changed, false when its sender is gone.
async fn status_changed(status: &mut Option<watch::Receiver<FrigateStatus>>) -> bool {
    match status {
        Some(status) => status.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn next_arrival(
    arrivals: &mut Option<broadcast::Receiver<Event>>,
) -> Result<Event, broadcast::error::RecvError> {
    match arrivals {
        Some(arrivals) => arrivals.recv().await,
        None => std::future::pending().await,
    }
}

/// What the store says about one camera: its latest person, persons since `midnight`, its
/// latest face and its latest description. Four indexed questions (see `benches/events.rs`).
async fn camera_summary(
    store: &EventStore,
    camera: &str,
    midnight: i64,
) -> Result<CameraSummary, StoreError> {
    let person = Query {
        camera: Some(camera.to_owned()),
        label: Some("person".to_owned()),
        ..Query::objects()
    };
    let last_person = store
        .query(Query {
            limit: 1,
            ..person.clone()
        })
        .await?
        .pop()
        .map(|e| e.start_ms);
    let people_today = store
        .count(Query {
            since_ms: Some(midnight),
            ..person.clone()
        })
        .await?;
    let last_face = store
        .query(Query {
            has_sub_label: true,
            limit: 1,
            ..person
        })
        .await?
        .pop()
        .and_then(|e| Some((e.sub_label?, e.start_ms)));
    // Frigate describes tracked objects and review items alike.
    let last_description = store
        .query(Query {
            source: Some(Source::Frigate),
            camera: Some(camera.to_owned()),
            has_description: true,
            limit: 1,
            ..Query::default()
        })
        .await?
        .pop()
        .and_then(|e| Some((e.description?, e.start_ms)));
    Ok(CameraSummary {
        last_person_ms: last_person,
        people_today,
        last_face,
        last_description,
    })
}

/// The start of today in `tz`, in ms since the epoch.
fn local_midnight(tz: &jiff::tz::TimeZone, now: jiff::Timestamp) -> i64 {
    now.to_zoned_datetime(tz.clone())
        .start_of_day()
        .map_or_else(
            |_| now.as_millisecond() - now.as_millisecond().rem_euclid(86_400_000),
            |midnight| midnight.timestamp().as_millisecond(),
        )
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A random delay up to `max` (HA's docs ask publishers to spread their answers to its birth).
fn jitter(max: Duration) -> Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        return Duration::ZERO;
    }
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    Duration::from_millis(random % (max_ms + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight_is_local() {
        let now: jiff::Timestamp = "2026-12-04T06:30:00Z".parse().unwrap();
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let midnight: jiff::Timestamp = "2026-12-03T23:00:00Z".parse().unwrap();
        assert_eq!(local_midnight(&berlin, now), midnight.as_millisecond());
        let new_york = jiff::tz::TimeZone::get("America/New_York").unwrap();
        // 01:30 in New York: its midnight is five hours after UTC's.
        let midnight: jiff::Timestamp = "2026-12-04T05:00:00Z".parse().unwrap();
        assert_eq!(local_midnight(&new_york, now), midnight.as_millisecond());
        let midnight: jiff::Timestamp = "2026-12-04T00:00:00Z".parse().unwrap();
        assert_eq!(
            local_midnight(&jiff::tz::TimeZone::UTC, now),
            midnight.as_millisecond()
        );
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(50)) <= Duration::from_millis(50));
        }
    }
}
