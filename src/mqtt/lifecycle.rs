//! What Jarvis has told Home Assistant, and what it must tell it next: the bookkeeping behind
//! discovery, states, availability and removal. Synchronous and broker-free: every method adds
//! the messages to send to an outbox, and the publisher sends them.
//!
//! Lifecycle rules:
//! - A device appears when a poll first shows it: config, `online` availability, state.
//! - A changed name or node (a migration) publishes the config again; ids never change.
//! - A state is published only when its JSON differs from the last one; everything is sent
//!   again on (re)connect, on HA's birth message, every `refresh` and when Proxmox comes back.
//! - A device missing from a successful poll goes `offline` at once and is removed (empty
//!   retained config and states) once it has been missing for the grace period. A failed poll
//!   changes nothing but Proxmox's availability, so it can never remove anything.
//! - Devices published by an earlier run (learned from their retained availability) that are
//!   no longer in the cluster are removed the same way.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::brain::{ActionReport, Activity};
use crate::proxmox::{Inventory, NodeDisks, NodeState, NodeStatus};

use super::discovery::{self, Common, DeviceKey, DeviceTopics, Naming};
use super::entity_ids;
use super::state::{self, GuestMemory, NodeMemory};

/// Longest state HA accepts for a sensor.
const MAX_STATE_CHARS: usize = 255;
/// Devices remembered from an earlier run; more are ignored (a hostile retained flood).
const MAX_PREVIOUS: usize = 100_000;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    /// Topic.
    pub topic: String,
    /// Payload; empty removes a retained message or a discovered device.
    pub payload: String,
    /// Retained at the broker.
    pub retain: bool,
}

impl Out {
    pub(super) fn retained(topic: &str, payload: impl Into<String>) -> Self {
        Self {
            topic: topic.to_owned(),
            payload: payload.into(),
            retain: true,
        }
    }
}

/// What Jarvis knows about one published device.
#[derive(Debug)]
struct Record {
    object_id: String,
    topics: DeviceTopics,
    /// What the published config was built from; `None` for a device only known from an
    /// earlier run.
    fingerprint: Option<u64>,
    available: bool,
    state: Option<String>,
    action: Option<String>,
    missing_since: Option<Instant>,
    seen_cycle: u64,
    memory: Memory,
}

#[derive(Debug)]
enum Memory {
    None,
    Node(NodeMemory),
    Guest(GuestMemory),
}

/// Proxmox as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Upstream {
    Unknown,
    Online,
    Offline(String),
}

/// The bookkeeping.
#[derive(Debug)]
pub struct Books {
    naming: Naming,
    cluster_known: bool,
    common: Common,
    grace: Duration,
    retain_discovery: bool,
    records: HashMap<DeviceKey, Record>,
    previous: BTreeSet<DeviceKey>,
    details: HashMap<String, NodeStatus>,
    updates: HashMap<String, u32>,
    /// Each node's disks, as last read (`None`: could not be read).
    disks: HashMap<String, Option<Arc<NodeDisks>>>,
    inventory: Option<Arc<Inventory>>,
    upstream: Upstream,
    server_state: Option<String>,
    problems: Vec<String>,
    conversation: Option<String>,
    /// The event memory's figures, when Jarvis's device shows them.
    memory: Option<MemoryState>,
    cycle: u64,
    scratch: Vec<u8>,
    /// What the entity id bases were resolved for ([`entity_ids::names_key`]).
    entity_names: Option<u64>,
    /// Each guest's published backup state, by VMID.
    backup_states: HashMap<u32, String>,
    /// Jarvis's published backups state.
    server_backups: Option<String>,
    /// The brain lease's topic, when Jarvis's device shows the active brain.
    lease_topic: Option<String>,
}

#[derive(Serialize)]
struct ServerState<'a> {
    health: &'static str,
    proxmox: &'static str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    memory: Option<MemoryState>,
    detail: ServerDetail<'a>,
}

/// The event memory's size on Jarvis's device (`null` while the store cannot say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
struct MemoryState {
    events: Option<u64>,
    events_bytes: Option<u64>,
}

#[derive(Serialize)]
struct ServerDetail<'a> {
    proxmox_error: Option<&'a str>,
    problems: &'a [String],
    devices: usize,
}

#[derive(Serialize)]
struct Conversation<'a> {
    text: &'a str,
    reply: &'a str,
    channel: &'a str,
    intent: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorEvent<'a> {
    event_type: &'static str,
    topic: &'a str,
    reason: &'a str,
}

impl Books {
    /// Empty books. `cluster` is the cluster id when fixed by the configuration; otherwise
    /// [`Books::set_cluster`] must be called before the first inventory.
    pub fn new(
        naming: Naming,
        cluster_known: bool,
        common: Common,
        grace: Duration,
        retain_discovery: bool,
    ) -> Self {
        Self {
            naming,
            cluster_known,
            common,
            grace,
            retain_discovery,
            records: HashMap::new(),
            previous: BTreeSet::new(),
            details: HashMap::new(),
            updates: HashMap::new(),
            disks: HashMap::new(),
            inventory: None,
            upstream: Upstream::Unknown,
            server_state: None,
            problems: Vec::new(),
            conversation: None,
            memory: None,
            cycle: 0,
            scratch: Vec::with_capacity(512),
            entity_names: None,
            backup_states: HashMap::new(),
            server_backups: None,
            lease_topic: None,
        }
    }

    /// The names in use.
    pub fn naming(&self) -> &Naming {
        &self.naming
    }

    /// Whether the cluster id is known (devices can be published).
    pub fn cluster_known(&self) -> bool {
        self.cluster_known
    }

    /// Sets the cluster id (once, before any device is published).
    pub fn set_cluster(&mut self, cluster: &str) {
        let naming = Naming::new(&self.naming.discovery_prefix, &self.naming.base, cluster);
        self.naming = naming;
        self.cluster_known = true;
    }

    /// Devices published now, for tests and logs.
    pub fn device_count(&self) -> usize {
        self.records
            .values()
            .filter(|r| r.fingerprint.is_some())
            .count()
    }

    /// Whether a guest can be acted on: published and still in the cluster.
    pub fn has_guest(&self, vmid: u32) -> bool {
        self.records
            .get(&DeviceKey::guest(vmid))
            .is_some_and(|r| r.fingerprint.is_some() && r.missing_since.is_none())
    }

    /// The name of the node whose topic slug is `slug`, when it can be acted on: published and
    /// still in the cluster (online or not: the brain says why it won't act on an offline one).
    pub fn node_named(&self, slug: &str) -> Option<String> {
        let node = self
            .inventory
            .as_ref()?
            .nodes
            .iter()
            .find(|n| DeviceKey::node(&n.name).id == slug)?;
        self.records
            .get(&DeviceKey::node(&node.name))
            .is_some_and(|r| r.fingerprint.is_some() && r.missing_since.is_none())
            .then(|| node.name.clone())
    }

    /// The last inventory applied.
    pub fn inventory(&self) -> Option<&Arc<Inventory>> {
        self.inventory.as_ref()
    }

    /// Node detail and pending updates, fetched by the publisher.
    pub fn set_node_detail(
        &mut self,
        node: &str,
        detail: Option<NodeStatus>,
        updates: Option<u32>,
    ) {
        if let Some(detail) = detail {
            self.details.insert(node.to_owned(), detail);
        }
        if let Some(updates) = updates {
            self.updates.insert(node.to_owned(), updates);
        }
    }

    /// A node's disks and pools, fetched by the publisher (`None`: they could not be read, so
    /// its disk sensors are unknown).
    pub fn set_node_disks(&mut self, node: &str, disks: Option<Arc<NodeDisks>>) {
        self.disks.insert(node.to_owned(), disks);
    }

    /// A device's retained availability seen at connect: published by an earlier run.
    pub fn note_previous(&mut self, key: DeviceKey) {
        if !self.records.contains_key(&key) && self.previous.len() < MAX_PREVIOUS {
            self.previous.insert(key);
        }
    }

    /// Proxmox could not be read: everything goes unavailable, nothing is removed.
    pub fn proxmox_failed(&mut self, error: &str, out: &mut Vec<Out>) {
        if self.upstream != Upstream::Offline(error.to_owned()) {
            if !matches!(self.upstream, Upstream::Offline(_)) {
                out.push(Out::retained(&self.naming.proxmox_topic, "offline"));
            }
            self.upstream = Upstream::Offline(error.to_owned());
        }
        self.server_state(out);
    }

    /// Applies a successful poll.
    pub fn apply_inventory(
        &mut self,
        inventory: Arc<Inventory>,
        now: Instant,
        wall: i64,
        out: &mut Vec<Out>,
    ) {
        if !self.cluster_known {
            return;
        }
        if self.upstream != Upstream::Online {
            out.push(Out::retained(&self.naming.proxmox_topic, "online"));
            // States may have expired in HA while Proxmox was away.
            if matches!(self.upstream, Upstream::Offline(_)) {
                self.refresh_states(out);
            }
            self.upstream = Upstream::Online;
        }
        self.cycle += 1;
        let cycle = self.cycle;
        let retain = self.retain_discovery;
        for key in std::mem::take(&mut self.previous) {
            if let Entry::Vacant(slot) = self.records.entry(key) {
                let object_id = self.naming.object_id(slot.key());
                let topics = self.naming.topics(slot.key());
                slot.insert(Record {
                    object_id,
                    topics,
                    fingerprint: None,
                    available: true,
                    state: None,
                    action: None,
                    missing_since: None,
                    seen_cycle: 0,
                    memory: Memory::None,
                });
            }
        }
        self.resolve_entity_ids(&inventory);

        for node in &inventory.nodes {
            let key = DeviceKey::node(&node.name);
            let detail = self.details.get(&node.name);
            let fingerprint =
                fingerprint(&(&node.name, detail.and_then(|d| d.pveversion.as_deref())));
            let updates = self.updates.get(&node.name).copied();
            let online = node.status == NodeState::Online;
            let record = touch(
                &mut self.records,
                &self.naming,
                retain,
                key,
                cycle,
                fingerprint,
                out,
                || discovery::node_config(&self.naming, &self.common, node, detail),
            );
            let Some(record) = record else { continue };
            if !matches!(record.memory, Memory::Node(_)) {
                record.memory = Memory::Node(NodeMemory::default());
            }
            if let Memory::Node(memory) = &mut record.memory {
                let detail = detail.filter(|_| online);
                memory.disks = self.disks.get(&node.name).cloned().flatten();
                memory.write_state(node, detail, updates, wall, &mut self.scratch);
            }
            publish_state(record, &self.scratch, out);
        }
        for guest in inventory.guests.iter().filter(|g| !g.template) {
            let key = DeviceKey::guest(guest.vmid);
            let fingerprint = fingerprint(&(&guest.name, &guest.node, guest.kind));
            let record = touch(
                &mut self.records,
                &self.naming,
                retain,
                key,
                cycle,
                fingerprint,
                out,
                || discovery::guest_config(&self.naming, &self.common, guest),
            );
            let Some(record) = record else { continue };
            if !matches!(record.memory, Memory::Guest(_)) {
                record.memory = Memory::Guest(GuestMemory::default());
            }
            if let Memory::Guest(memory) = &mut record.memory {
                memory.write_state(guest, wall, &mut self.scratch);
            }
            publish_state(record, &self.scratch, out);
        }
        for storage in &inventory.storages {
            let key = DeviceKey::storage(&storage.node, &storage.storage);
            let fingerprint = fingerprint(&(&storage.storage, &storage.node, &storage.plugintype));
            let record = touch(
                &mut self.records,
                &self.naming,
                retain,
                key,
                cycle,
                fingerprint,
                out,
                || discovery::storage_config(&self.naming, &self.common, storage),
            );
            let Some(record) = record else { continue };
            state::write_storage_state(storage, &mut self.scratch);
            publish_state(record, &self.scratch, out);
        }

        // What this poll did not show.
        let grace = self.grace;
        let mut gone = Vec::new();
        for (key, record) in &mut self.records {
            if record.seen_cycle == cycle {
                continue;
            }
            let since = *record.missing_since.get_or_insert(now);
            if now.duration_since(since) >= grace {
                gone.push(key.clone());
            } else if record.available {
                record.available = false;
                out.push(Out::retained(&record.topics.availability, "offline"));
            }
        }
        for key in gone {
            self.remove(&key, out);
        }
        self.inventory = Some(inventory);
        self.server_state(out);
    }

    /// Resolves the suggested entity ids again when a name changed; a device whose base
    /// changed gets its config again.
    fn resolve_entity_ids(&mut self, inventory: &Inventory) {
        let key = entity_ids::names_key(inventory);
        if self.entity_names == Some(key) {
            return;
        }
        self.entity_names = Some(key);
        let bases = entity_ids::inventory_bases(
            &self.naming,
            &self.common,
            inventory,
            &self.details,
            self.memory.is_some(),
        );
        let before = self.naming.clone();
        self.naming.set_entity_bases(bases);
        for record in self.records.values_mut() {
            let id = record.object_id.as_str();
            if before.entity_base(id, String::new) != self.naming.entity_base(id, String::new) {
                // Forgotten, so the next touch sends the config again.
                record.fingerprint = None;
            }
        }
    }

    /// Removes a device from HA and clears its retained messages.
    fn remove(&mut self, key: &DeviceKey, out: &mut Vec<Out>) {
        let Some(record) = self.records.remove(key) else {
            return;
        };
        out.push(Out::retained(
            &self.naming.config_topic(&record.object_id),
            "",
        ));
        for topic in [
            &record.topics.state,
            &record.topics.action,
            &record.topics.availability,
        ] {
            out.push(Out::retained(topic, ""));
        }
        let vmid = (key.kind == discovery::DeviceKind::Guest)
            .then(|| key.id.parse::<u32>().ok())
            .flatten();
        if vmid.and_then(|v| self.backup_states.remove(&v)).is_some() {
            out.push(Out::retained(&record.topics.backup, ""));
        }
    }

    /// The backups as of `now`: each shown guest's "Last backup" state and Jarvis's "Guests
    /// without recent backup" and "Failed tasks (24 h)", where they changed.
    pub fn apply_backups(
        &mut self,
        backups: &crate::proxmox::Backups,
        max_age_days: u32,
        now: i64,
        out: &mut Vec<Out>,
    ) {
        let Some(inventory) = self.inventory.clone() else {
            return;
        };
        for guest in inventory.guests.iter().filter(|g| !g.template) {
            let Some(record) = self
                .records
                .get(&DeviceKey::guest(guest.vmid))
                .filter(|r| r.fingerprint.is_some() && r.missing_since.is_none())
            else {
                continue;
            };
            let payload = super::backups::guest_payload(backups, guest.vmid, now, max_age_days);
            if self.backup_states.get(&guest.vmid) != Some(&payload) {
                out.push(Out::retained(&record.topics.backup, &*payload));
                self.backup_states.insert(guest.vmid, payload);
            }
        }
        let payload = super::backups::server_payload(backups, &inventory, now, max_age_days);
        if self.server_backups.as_deref() != Some(&payload) {
            out.push(Out::retained(
                &self.naming.server_topics().backups,
                &*payload,
            ));
            self.server_backups = Some(payload);
        }
    }

    /// Shows the active brain on Jarvis's device, read from the lease on `topic`.
    pub fn show_lease(&mut self, topic: String) {
        self.lease_topic = Some(topic);
    }

    /// Whether this brain takes part in the lease (see [`Books::show_lease`]).
    pub fn in_lease(&self) -> bool {
        self.lease_topic.is_some()
    }

    /// Shows the event memory's size on Jarvis's device (its config gets two sensors).
    pub fn show_memory(&mut self) {
        self.memory.get_or_insert_with(MemoryState::default);
    }

    /// The event memory's figures now (`None` while it is unavailable); published with
    /// Jarvis's health on the next poll.
    pub fn set_memory(&mut self, figures: Option<(u64, u64)>) {
        if let Some(memory) = &mut self.memory {
            *memory = MemoryState {
                events: figures.map(|f| f.0),
                events_bytes: figures.map(|f| f.1),
            };
        }
    }

    /// What else keeps Jarvis from working fully (from the brain); shown with its health.
    pub fn set_problems(&mut self, problems: Vec<String>) {
        self.problems = problems;
    }

    /// Jarvis's health state, when it changed.
    fn server_state(&mut self, out: &mut Vec<Out>) {
        let (health, proxmox, error) = match &self.upstream {
            Upstream::Online => ("ok", "online", None),
            Upstream::Offline(error) => ("degraded", "offline", Some(error.as_str())),
            Upstream::Unknown => ("degraded", "unknown", None),
        };
        let health = if self.problems.is_empty() {
            health
        } else {
            "degraded"
        };
        let payload = ServerState {
            health,
            proxmox,
            memory: self.memory,
            detail: ServerDetail {
                proxmox_error: error,
                problems: &self.problems,
                devices: self.device_count(),
            },
        };
        let payload = serde_json::to_string(&payload).unwrap_or_default();
        if self.server_state.as_deref() != Some(&payload) {
            out.push(Out::retained(&self.naming.server_topics().state, &*payload));
            self.server_state = Some(payload);
        }
    }

    /// Everything, as after a (re)connect or HA's birth message: Jarvis's device, then every
    /// config, then availability and states. The publisher sends the same in pieces
    /// ([`Books::publish_head`], [`Books::configs_of`], [`Books::publish_tail`]).
    pub fn publish_all(&mut self, out: &mut Vec<Out>) {
        self.publish_head(out);
        self.configs_of(0..usize::MAX, out);
        self.publish_tail(out);
    }

    /// What [`Books::publish_all`] sends before the devices' configs: Jarvis's device, its
    /// state and the Proxmox availability.
    pub fn publish_head(&mut self, out: &mut Vec<Out>) {
        let server = self.naming.server_topics();
        out.push(Out::retained(&self.naming.status_topic, "online"));
        out.push(Out {
            topic: server.config.clone(),
            payload: discovery::server_config_with_lease(
                &self.naming,
                self.memory.is_some(),
                self.lease_topic.as_deref(),
            ),
            retain: self.retain_discovery,
        });
        if self.server_state.is_none() {
            self.server_state(out);
        } else if let Some(state) = &self.server_state {
            out.push(Out::retained(&server.state, state.as_str()));
        }
        if let Some(conversation) = &self.conversation {
            out.push(Out::retained(&server.conversation, conversation.as_str()));
        }
        if let Some(backups) = &self.server_backups {
            out.push(Out::retained(&server.backups, backups.as_str()));
        }
        match self.upstream {
            Upstream::Online => out.push(Out::retained(&self.naming.proxmox_topic, "online")),
            Upstream::Offline(_) => out.push(Out::retained(&self.naming.proxmox_topic, "offline")),
            Upstream::Unknown => {}
        }
    }

    /// Devices with a config in [`Books::publish_all`] (published or not): nodes, guests that
    /// are not templates and storages, in that order.
    pub fn config_devices(&self) -> usize {
        self.inventory.as_ref().map_or(0, |inventory| {
            inventory.nodes.len()
                + inventory.guests.iter().filter(|g| !g.template).count()
                + inventory.storages.len()
        })
    }

    /// The configs of the devices at `range` in the order of [`Books::config_devices`] that are
    /// published: [`Books::publish_all`]'s configs a piece at a time, so that the publisher never
    /// holds every config of a large cluster at once (1000 guests: ~5 MB, at every reconnect
    /// and every HA restart).
    pub fn configs_of(&self, range: std::ops::Range<usize>, out: &mut Vec<Out>) {
        if let Some(inventory) = &self.inventory {
            self.configs(inventory, range, out);
        }
    }

    /// What [`Books::publish_all`] sends after the configs: availability and states.
    pub fn publish_tail(&self, out: &mut Vec<Out>) {
        for record in self.records.values() {
            if record.fingerprint.is_none() {
                continue;
            }
            let availability = if record.available {
                "online"
            } else {
                "offline"
            };
            out.push(Out::retained(&record.topics.availability, availability));
            if let Some(action) = &record.action {
                out.push(Out::retained(&record.topics.action, action.as_str()));
            }
        }
        for (vmid, state) in &self.backup_states {
            let topic = self.naming.topics(&DeviceKey::guest(*vmid)).backup;
            out.push(Out::retained(&topic, state.as_str()));
        }
        self.refresh_states(out);
    }

    fn configs(&self, inventory: &Inventory, range: std::ops::Range<usize>, out: &mut Vec<Out>) {
        let published = |key: &DeviceKey| {
            self.records
                .get(key)
                .filter(|r| r.fingerprint.is_some() && r.missing_since.is_none())
                .map(|r| self.naming.config_topic(&r.object_id))
        };
        let retain = self.retain_discovery;
        let guests = inventory.guests.iter().filter(|g| !g.template);
        let (nodes, guest_count) = (inventory.nodes.len(), guests.clone().count());
        // Each kind's part of `range`, in its own indices.
        let part = |from: usize, len: usize| {
            let start = range.start.saturating_sub(from).min(len);
            let end = range.end.saturating_sub(from).min(len);
            start..end.max(start)
        };
        let in_nodes = part(0, nodes);
        let in_guests = part(nodes, guest_count);
        let in_storages = part(nodes + guest_count, inventory.storages.len());
        for node in &inventory.nodes[in_nodes] {
            if let Some(topic) = published(&DeviceKey::node(&node.name)) {
                let detail = self.details.get(&node.name);
                let payload = discovery::node_config(&self.naming, &self.common, node, detail);
                out.push(Out {
                    topic,
                    payload,
                    retain,
                });
            }
        }
        for guest in guests.skip(in_guests.start).take(in_guests.len()) {
            if let Some(topic) = published(&DeviceKey::guest(guest.vmid)) {
                let payload = discovery::guest_config(&self.naming, &self.common, guest);
                out.push(Out {
                    topic,
                    payload,
                    retain,
                });
            }
        }
        for storage in &inventory.storages[in_storages] {
            if let Some(topic) = published(&DeviceKey::storage(&storage.node, &storage.storage)) {
                let payload = discovery::storage_config(&self.naming, &self.common, storage);
                out.push(Out {
                    topic,
                    payload,
                    retain,
                });
            }
        }
    }

    /// Every retained device state again (the periodic refresh).
    pub fn refresh_states(&self, out: &mut Vec<Out>) {
        for record in self.records.values() {
            if let Some(state) = &record.state {
                out.push(Out::retained(&record.topics.state, state.as_str()));
            }
        }
    }

    /// The outcome of an action, on its guest's or node's `Last action` sensor (when it
    /// changed).
    pub fn action_outcome(&mut self, report: &ActionReport, out: &mut Vec<Out>) {
        let key = match (report.vmid, &report.node) {
            (Some(vmid), _) => DeviceKey::guest(vmid),
            (None, Some(node)) => DeviceKey::node(node),
            (None, None) => return,
        };
        let Some(record) = self.records.get_mut(&key) else {
            return;
        };
        if record.fingerprint.is_none() {
            return;
        }
        let mut shown = report.clone();
        shown.reply = truncate(&report.reply, MAX_STATE_CHARS).to_owned();
        let payload = serde_json::to_string(&shown).unwrap_or_default();
        if record.action.as_deref() != Some(&payload) {
            out.push(Out::retained(&record.topics.action, &*payload));
            record.action = Some(payload);
        }
    }

    /// Something the brain did: an event on Jarvis's event entity, and the last command and
    /// reply or the guest's last action.
    pub fn activity(&mut self, activity: &Activity, out: &mut Vec<Out>) {
        let topics = self.naming.server_topics();
        match activity {
            Activity::Command {
                channel,
                text,
                intent,
                reply,
            } => {
                let payload = serde_json::to_string(&Conversation {
                    text: truncate(text, MAX_STATE_CHARS),
                    reply: truncate(reply, MAX_STATE_CHARS),
                    channel: channel.as_str(),
                    intent: intent.as_deref(),
                })
                .unwrap_or_default();
                out.push(Out::retained(&topics.conversation, &*payload));
                self.conversation = Some(payload);
            }
            Activity::Action { report, .. } => self.action_outcome(report, out),
        }
        let mut event = serde_json::to_string(activity).unwrap_or_default();
        if event.len() > 16 * 1024 {
            // Only a command's text or reply can be this long: send them shortened.
            if let Activity::Command {
                channel,
                text,
                intent,
                reply,
            } = activity
            {
                let short = Activity::Command {
                    channel: *channel,
                    text: truncate(text, 1000).to_owned(),
                    intent: intent.clone(),
                    reply: truncate(reply, 1000).to_owned(),
                };
                event = serde_json::to_string(&short).unwrap_or_default();
            }
        }
        out.push(Out {
            topic: topics.event,
            payload: event,
            retain: false,
        });
    }

    /// A refused message, as an `error` event on Jarvis's event entity.
    pub fn error_event(&self, topic: &str, reason: &str, out: &mut Vec<Out>) {
        let payload = serde_json::to_string(&ErrorEvent {
            event_type: "error",
            topic: truncate(topic, 200),
            reason,
        })
        .unwrap_or_default();
        out.push(Out {
            topic: self.naming.server_topics().event,
            payload,
            retain: false,
        });
    }
}

/// Finds or creates the record of a device seen in this poll and publishes its config when it
/// is new or changed. `None` for a duplicate within the poll.
#[expect(
    clippy::too_many_arguments,
    reason = "split borrows of the books' fields"
)]
fn touch<'r>(
    records: &'r mut HashMap<DeviceKey, Record>,
    naming: &Naming,
    retain: bool,
    key: DeviceKey,
    cycle: u64,
    fingerprint: u64,
    out: &mut Vec<Out>,
    config: impl FnOnce() -> String,
) -> Option<&'r mut Record> {
    let record = match records.entry(key) {
        Entry::Occupied(slot) => slot.into_mut(),
        Entry::Vacant(slot) => {
            let object_id = naming.object_id(slot.key());
            let topics = naming.topics(slot.key());
            slot.insert(Record {
                object_id,
                topics,
                fingerprint: None,
                available: false,
                state: None,
                action: None,
                missing_since: None,
                seen_cycle: 0,
                memory: Memory::None,
            })
        }
    };
    if record.seen_cycle == cycle {
        return None;
    }
    record.seen_cycle = cycle;
    record.missing_since = None;
    // A device known only from an earlier run has an old availability at the broker.
    let first = record.fingerprint.is_none();
    if record.fingerprint != Some(fingerprint) {
        out.push(Out {
            topic: naming.config_topic(&record.object_id),
            payload: config(),
            retain,
        });
        record.fingerprint = Some(fingerprint);
    }
    if !record.available || first {
        record.available = true;
        out.push(Out::retained(&record.topics.availability, "online"));
    }
    Some(record)
}

fn publish_state(record: &mut Record, payload: &[u8], out: &mut Vec<Out>) {
    if record.state.as_deref().map(str::as_bytes) == Some(payload) {
        return;
    }
    let payload = String::from_utf8_lossy(payload).into_owned();
    out.push(Out::retained(&record.topics.state, &*payload));
    record.state = Some(payload);
}

fn fingerprint(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// At most `max` characters of `text`.
pub fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brain::{Channel, Decision};
    use crate::proxmox::{Guest, GuestAction, Node, Storage};

    fn node(name: &str) -> Node {
        Node {
            cpu: Some(0.1),
            maxcpu: Some(8),
            mem: Some(1 << 30),
            maxmem: Some(8 << 30),
            uptime: Some(10_000),
            ..Node::example(name)
        }
    }

    fn guest(vmid: u32, node: &str) -> Guest {
        Guest {
            cpu: Some(0.02),
            maxcpu: Some(2),
            mem: Some(1 << 29),
            maxmem: Some(1 << 31),
            disk: Some(0),
            netin: Some(0),
            netout: Some(0),
            diskread: Some(0),
            diskwrite: Some(0),
            uptime: Some(500),
            ..Guest::example(vmid, &format!("vm{vmid}"), node)
        }
    }

    fn inventory() -> Inventory {
        Inventory {
            nodes: vec![node("pve1"), node("pve2")],
            guests: vec![guest(101, "pve1"), guest(102, "pve2")],
            storages: vec![Storage {
                storage: "local".into(),
                node: "pve1".into(),
                plugintype: Some("dir".into()),
                available: true,
                shared: false,
                content: vec![],
                used: Some(1),
                total: Some(10),
            }],
        }
    }

    fn books() -> Books {
        let mut books = Books::new(
            Naming::new("homeassistant", "jarvis", "x"),
            false,
            Common { expire_after: 0 },
            Duration::from_secs(300),
            false,
        );
        books.set_cluster("homelab");
        books
    }

    fn topics(out: &[Out]) -> Vec<&str> {
        out.iter().map(|o| o.topic.as_str()).collect()
    }

    fn apply(books: &mut Books, inv: &Inventory, at: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        books.apply_inventory(Arc::new(inv.clone()), at, 1_000_000, &mut out);
        out
    }

    #[test]
    fn the_first_poll_publishes_every_device_and_the_next_nothing() {
        let mut books = books();
        let t0 = Instant::now();
        let out = apply(&mut books, &inventory(), t0);
        let configs = out.iter().filter(|o| o.topic.ends_with("/config")).count();
        assert_eq!(configs, 5, "{:?}", topics(&out));
        assert!(topics(&out).contains(&"jarvis/proxmox/availability"));
        assert!(topics(&out).contains(&"jarvis/guest/101/availability"));
        assert!(topics(&out).contains(&"jarvis/guest/101/state"));
        assert!(out.iter().all(|o| !o.payload.is_empty()));
        assert_eq!(books.device_count(), 5);

        let again = apply(&mut books, &inventory(), t0 + Duration::from_secs(15));
        assert_eq!(again, vec![], "nothing changed, nothing sent");
    }

    #[test]
    fn a_migration_republishes_the_config_and_state_only() {
        let mut books = books();
        let t0 = Instant::now();
        apply(&mut books, &inventory(), t0);
        let mut moved = inventory();
        moved.guests[0].node = "pve2".into();
        let out = apply(&mut books, &moved, t0 + Duration::from_secs(15));
        assert_eq!(
            topics(&out),
            [
                "homeassistant/device/jarvis_homelab_guest_101/config",
                "jarvis/guest/101/state"
            ]
        );
        assert!(out[0].payload.contains("jarvis_homelab_node_pve2"));
        assert!(out[1].payload.contains("\"node\":\"pve2\""));
    }

    #[test]
    fn a_deleted_guest_goes_offline_then_is_removed_after_the_grace_period() {
        let mut books = books();
        let t0 = Instant::now();
        apply(&mut books, &inventory(), t0);
        let mut gone = inventory();
        gone.guests.remove(0);
        let out = apply(&mut books, &gone, t0 + Duration::from_secs(15));
        assert_eq!(topics(&out), ["jarvis/guest/101/availability"]);
        assert_eq!(out[0].payload, "offline");
        assert!(!books.has_guest(101));

        let out = apply(&mut books, &gone, t0 + Duration::from_secs(200));
        assert_eq!(out, vec![], "still in its grace period");

        let out = apply(&mut books, &gone, t0 + Duration::from_secs(316));
        assert_eq!(
            topics(&out),
            [
                "homeassistant/device/jarvis_homelab_guest_101/config",
                "jarvis/guest/101/state",
                "jarvis/guest/101/action",
                "jarvis/guest/101/availability",
                "jarvis/server/state",
            ]
        );
        assert!(out[..4].iter().all(|o| o.payload.is_empty() && o.retain));
        assert_eq!(books.device_count(), 4);
    }

    #[test]
    fn a_guest_back_within_the_grace_period_comes_back_online() {
        let mut books = books();
        let t0 = Instant::now();
        apply(&mut books, &inventory(), t0);
        let mut gone = inventory();
        gone.guests.remove(0);
        apply(&mut books, &gone, t0 + Duration::from_secs(15));
        let out = apply(&mut books, &inventory(), t0 + Duration::from_secs(30));
        assert_eq!(topics(&out), ["jarvis/guest/101/availability"]);
        assert_eq!(out[0].payload, "online");
        // The clock restarted: a later disappearance gets a full grace period again.
        let out = apply(&mut books, &gone, t0 + Duration::from_secs(400));
        assert_eq!(topics(&out), ["jarvis/guest/101/availability"]);
    }

    #[test]
    fn failed_polls_make_proxmox_unavailable_and_remove_nothing() {
        let mut books = books();
        let t0 = Instant::now();
        apply(&mut books, &inventory(), t0);
        let mut out = Vec::new();
        books.proxmox_failed("connection refused", &mut out);
        assert_eq!(
            topics(&out),
            ["jarvis/proxmox/availability", "jarvis/server/state"]
        );
        assert_eq!(out[0].payload, "offline");
        assert!(out[1].payload.contains("degraded"));
        let mut out = Vec::new();
        books.proxmox_failed("connection refused", &mut out);
        assert_eq!(out, vec![], "the same failure again sends nothing");
        assert_eq!(books.device_count(), 5);

        // Back after longer than the grace period: nothing removed, every state sent again.
        let out = apply(&mut books, &inventory(), t0 + Duration::from_secs(3600));
        assert_eq!(out[0].topic, "jarvis/proxmox/availability");
        assert_eq!(out[0].payload, "online");
        let states = out.iter().filter(|o| o.topic.ends_with("/state")).count();
        assert_eq!(states, 6, "{:?}", topics(&out));
        assert!(!out.iter().any(|o| o.payload.is_empty()));
    }

    #[test]
    fn devices_from_an_earlier_run_are_removed_when_gone() {
        let mut books = books();
        books.note_previous(DeviceKey::guest(999));
        books.note_previous(DeviceKey::guest(101));
        let t0 = Instant::now();
        let out = apply(&mut books, &inventory(), t0);
        assert!(topics(&out).contains(&"jarvis/guest/999/availability"));
        assert!(!books.has_guest(999));
        let out = apply(&mut books, &inventory(), t0 + Duration::from_secs(301));
        assert!(
            topics(&out).contains(&"homeassistant/device/jarvis_homelab_guest_999/config"),
            "{:?}",
            topics(&out)
        );
        assert_eq!(books.device_count(), 5);
    }

    #[test]
    fn jarvis_shows_the_event_memory_figures_once_asked_to() {
        let mut books = books();
        let mut out = Vec::new();
        books.proxmox_failed("down", &mut out);
        let state: serde_json::Value = serde_json::from_str(&out[1].payload).unwrap();
        assert!(state.get("events").is_none(), "{state}");

        let mut books = self::books();
        books.show_memory();
        let mut out = Vec::new();
        books.proxmox_failed("down", &mut out);
        let state: serde_json::Value = serde_json::from_str(&out[1].payload).unwrap();
        assert_eq!(
            state["events"],
            serde_json::Value::Null,
            "unknown until the store says"
        );
        books.set_memory(Some((1234, 56_789)));
        books.set_problems(vec!["event store x: the disk is full".into()]);
        let mut out = Vec::new();
        books.proxmox_failed("down", &mut out);
        let state: serde_json::Value = serde_json::from_str(&out[0].payload).unwrap();
        assert_eq!(state["events"], 1234);
        assert_eq!(state["events_bytes"], 56_789);
        assert_eq!(
            state["detail"]["problems"][0],
            "event store x: the disk is full"
        );
        let mut out = Vec::new();
        books.publish_all(&mut out);
        let config = out
            .iter()
            .find(|o| o.topic == "homeassistant/device/jarvis_server/config")
            .unwrap();
        assert!(config.payload.contains("events_size"));
    }

    #[test]
    fn publish_all_in_pieces_sends_the_same_messages_in_the_same_order() {
        let mut books = books();
        apply(&mut books, &inventory(), Instant::now());
        let mut whole = Vec::new();
        books.publish_all(&mut whole);
        let devices = books.config_devices();
        assert!(devices > 3, "{devices}");
        for piece in [1, 2, 3, devices, devices + 5] {
            let mut pieces = Vec::new();
            books.publish_head(&mut pieces);
            let mut at = 0;
            while at < devices {
                books.configs_of(at..(at + piece).min(devices), &mut pieces);
                at += piece;
            }
            books.publish_tail(&mut pieces);
            let topics = |out: &[Out]| {
                out.iter()
                    .map(|o| (o.topic.clone(), o.payload.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(topics(&pieces), topics(&whole), "pieces of {piece}");
        }
        let mut none = Vec::new();
        books.configs_of(devices..devices + 10, &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn publish_all_sends_configs_before_states() {
        let mut books = books();
        apply(&mut books, &inventory(), Instant::now());
        let mut out = Vec::new();
        books.publish_all(&mut out);
        let first_state = out
            .iter()
            .position(|o| o.topic.starts_with("jarvis/guest") && o.topic.ends_with("/state"))
            .unwrap();
        let last_config = out
            .iter()
            .rposition(|o| o.topic.ends_with("/config"))
            .unwrap();
        assert!(last_config < first_state);
        assert_eq!(out[0].topic, "jarvis/status");
        assert_eq!(
            out.iter().filter(|o| o.topic.ends_with("/config")).count(),
            6
        );
        assert!(out.iter().all(|o| o.retain || o.topic.ends_with("/config")));
    }

    #[test]
    fn activity_feeds_the_event_entity_conversation_and_last_action() {
        let mut books = books();
        apply(&mut books, &inventory(), Instant::now());
        let mut out = Vec::new();
        books.activity(
            &Activity::Command {
                channel: Channel::Voice,
                text: "x".repeat(1000),
                intent: Some("status".into()),
                reply: "all good".into(),
            },
            &mut out,
        );
        assert_eq!(
            topics(&out),
            ["jarvis/server/conversation", "jarvis/server/event"]
        );
        let conversation: serde_json::Value = serde_json::from_str(&out[0].payload).unwrap();
        assert_eq!(conversation["text"].as_str().unwrap().len(), 255);
        let event: serde_json::Value = serde_json::from_str(&out[1].payload).unwrap();
        assert_eq!(event["event_type"], "command");
        assert!(!out[1].retain);

        let report = ActionReport {
            guest: Some("vm101".into()),
            ..ActionReport::new(
                &crate::brain::Action::Power {
                    vmid: 101,
                    action: GuestAction::Start,
                },
                Decision::Refused,
                "vm101 is protected".into(),
            )
        };
        let mut out = Vec::new();
        books.action_outcome(&report, &mut out);
        assert_eq!(topics(&out), ["jarvis/guest/101/action"]);
        let mut out = Vec::new();
        books.activity(
            &Activity::Action {
                channel: Channel::Mqtt,
                report: report.clone(),
            },
            &mut out,
        );
        assert_eq!(
            topics(&out),
            ["jarvis/server/event"],
            "the same outcome is not sent twice"
        );
        let event: serde_json::Value = serde_json::from_str(&out[0].payload).unwrap();
        assert_eq!(event["event_type"], "action");
        assert_eq!(event["decision"], "refused");

        let mut out = Vec::new();
        books.error_event("jarvis/guest/5/command", "unknown guest", &mut out);
        let event: serde_json::Value = serde_json::from_str(&out[0].payload).unwrap();
        assert_eq!(event["event_type"], "error");
    }
}
