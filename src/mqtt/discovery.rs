//! Home Assistant discovery payloads: one device-based config (`cmps`) per Proxmox node, guest
//! and storage, and one for Jarvis itself. Pure functions of the inventory, so they are unit
//! tested without a broker.
//!
//! Design (see `../shared/docs/ha-integration.md` §1 and §7):
//! - Device discovery: `<prefix>/device/<object id>/config`, one message per device, abbreviated
//!   keys, `o` (origin) always present, no `object_id` option.
//! - Ids: `jarvis_<cluster>_guest_<vmid>`, `jarvis_<cluster>_node_<node>` and
//!   `jarvis_<cluster>_storage_<node>_<storage>`; never the node of a guest, so a migration keeps
//!   the guest's entities. The same string is the discovery object id, the device identifier and
//!   the prefix of every component's `uniq_id`.
//! - Topics: `<base>/<kind>/<id>/{state,availability,command,action}`, with `<id>` the VMID, the
//!   node slug or `<node>_<storage>` slug. States are one JSON object per device, read by each
//!   entity's `val_tpl`.
//! - Availability: `[<base>/status, <base>/proxmox/availability, <device>/availability]`, all
//!   required (`avty_mode: all`): Jarvis alive, Proxmox answering, and the device still in the
//!   cluster.
//! - Frigate (see `../shared/docs/ha-integration.md` §3): what Frigate's own integration
//!   cannot show, from the event memory: a `<base slug>_frigate` device with the house's last
//!   person, people today and last face, and one `<base slug>_camera_<camera>` device per
//!   camera with the same per camera, its last event description and an `arrival` event.
//!   Occupancy, live counts, snapshots, streams and switches stay Frigate's. Availability:
//!   `[<base>/status, <base>/frigate/availability(, <base>/camera/<camera>/availability)]`.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::proxmox::{Guest, GuestAction, GuestKind, Node, NodeStatus, Storage};

use super::entity_ids::{camera_base, guest_base, node_base, storage_base};
use super::slug::{entity_name, topic_slug};

/// What a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceKind {
    /// A cluster node.
    Node,
    /// A VM or container.
    Guest,
    /// A storage on a node.
    Storage,
}

impl DeviceKind {
    /// The topic level and id part: `node`, `guest`, `storage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Guest => "guest",
            Self::Storage => "storage",
        }
    }

    /// Parses a topic level.
    pub fn from_level(level: &str) -> Option<Self> {
        match level {
            "node" => Some(Self::Node),
            "guest" => Some(Self::Guest),
            "storage" => Some(Self::Storage),
            _ => None,
        }
    }
}

/// Identifies a device across polls and restarts: its kind and its topic-safe id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey {
    /// Node, guest or storage.
    pub kind: DeviceKind,
    /// The VMID, the node slug, or `<node slug>_<storage slug>`.
    pub id: String,
}

impl DeviceKey {
    /// A node's key.
    pub fn node(name: &str) -> Self {
        Self {
            kind: DeviceKind::Node,
            id: topic_slug(name),
        }
    }

    /// A guest's key: its VMID only.
    pub fn guest(vmid: u32) -> Self {
        Self {
            kind: DeviceKind::Guest,
            id: vmid.to_string(),
        }
    }

    /// A storage's key (shared storages have one device per node, as Proxmox reports them).
    pub fn storage(node: &str, storage: &str) -> Self {
        Self {
            kind: DeviceKind::Storage,
            id: format!("{}_{}", topic_slug(node), topic_slug(storage)),
        }
    }

    /// Parses `<kind>/<id>` topic levels; `None` for anything Jarvis would not have published.
    pub fn from_levels(kind: &str, id: &str) -> Option<Self> {
        let kind = DeviceKind::from_level(kind)?;
        let valid = !id.is_empty()
            && id.len() <= 100
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid || (kind == DeviceKind::Guest && id.parse::<u32>().is_err()) {
            return None;
        }
        Some(Self {
            kind,
            id: id.to_owned(),
        })
    }
}

/// Every name Jarvis derives its topics and ids from.
#[derive(Debug, Clone)]
pub struct Naming {
    /// HA's discovery prefix.
    pub discovery_prefix: String,
    /// First level of Jarvis's own topics.
    pub base: String,
    /// `jarvis_<cluster slug>`: the start of every Proxmox id.
    pub id_prefix: String,
    /// Jarvis's own device id, `<base slug>_server`.
    pub server_id: String,
    /// `<base>/status`: Jarvis's LWT.
    pub status_topic: String,
    /// `<base>/proxmox/availability`.
    pub proxmox_topic: String,
    /// The Frigate device's id, `<base slug>_frigate`.
    pub frigate_id: String,
    /// The start of camera ids: `<base slug>_camera`.
    pub camera_prefix: String,
    /// `<base>/frigate/availability`: Frigate online.
    pub frigate_topic: String,
    /// Entity id bases that differ from the plain names (collisions), by object id; see
    /// [`super::entity_ids`].
    entity_bases: Arc<HashMap<String, String>>,
}

impl Naming {
    /// Names for a base topic and cluster id (slugged here).
    pub fn new(discovery_prefix: &str, base: &str, cluster: &str) -> Self {
        let base_slug = topic_slug(base);
        let base_slug = if base_slug.is_empty() {
            "jarvis".to_owned()
        } else {
            base_slug
        };
        Self {
            discovery_prefix: discovery_prefix.to_owned(),
            base: base.to_owned(),
            id_prefix: format!("jarvis_{}", topic_slug(cluster)),
            status_topic: format!("{base}/status"),
            proxmox_topic: format!("{base}/proxmox/availability"),
            frigate_id: format!("{base_slug}_frigate"),
            camera_prefix: format!("{base_slug}_camera"),
            frigate_topic: format!("{base}/frigate/availability"),
            server_id: format!("{base_slug}_server"),
            entity_bases: Arc::default(),
        }
    }

    /// The entity id base of a device: `plain` unless it collides (see
    /// [`Naming::set_entity_bases`]).
    pub fn entity_base(&self, object_id: &str, plain: impl FnOnce() -> String) -> String {
        match self.entity_bases.get(object_id) {
            Some(base) => base.clone(),
            None => plain(),
        }
    }

    /// The bases that replace the plain ones, by object id (from
    /// [`super::entity_ids::resolve`]).
    pub fn set_entity_bases(&mut self, bases: HashMap<String, String>) {
        self.entity_bases = Arc::new(bases);
    }

    /// The bases that replace the plain ones, by object id.
    pub fn entity_bases(&self) -> &HashMap<String, String> {
        &self.entity_bases
    }

    /// The same names without replaced bases (to find collisions).
    pub fn plain(&self) -> Self {
        Self {
            entity_bases: Arc::default(),
            ..self.clone()
        }
    }

    /// The Frigate device's topics.
    pub fn frigate_topics(&self) -> FrigateTopics {
        FrigateTopics {
            config: self.config_topic(&self.frigate_id),
            state: format!("{}/frigate/state", self.base),
            availability: self.frigate_topic.clone(),
        }
    }

    /// A camera's discovery and device id; `slug` is its [`topic_slug`].
    pub fn camera_id(&self, slug: &str) -> String {
        format!("{}_{slug}", self.camera_prefix)
    }

    /// A camera's topics.
    pub fn camera_topics(&self, slug: &str) -> CameraTopics {
        let base = format!("{}/camera/{slug}", self.base);
        CameraTopics {
            config: self.config_topic(&self.camera_id(slug)),
            state: format!("{base}/state"),
            event: format!("{base}/event"),
            availability: format!("{base}/availability"),
        }
    }

    /// `<prefix>/status`: HA's birth and LWT.
    pub fn ha_status_topic(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }

    /// Subscription for every guest's command topic.
    pub fn command_filter(&self) -> String {
        format!("{}/guest/+/command", self.base)
    }

    /// Subscription for every node's command topic (the node buttons).
    pub fn node_command_filter(&self) -> String {
        format!("{}/node/+/command", self.base)
    }

    /// Subscription for every device's availability (to find devices published by an earlier
    /// run that are gone from the cluster now).
    pub fn availability_filter(&self) -> String {
        format!("{}/+/+/availability", self.base)
    }

    /// The discovery and device id of a device.
    pub fn object_id(&self, key: &DeviceKey) -> String {
        format!("{}_{}_{}", self.id_prefix, key.kind.as_str(), key.id)
    }

    /// A device's discovery topic.
    pub fn config_topic(&self, object_id: &str) -> String {
        format!("{}/device/{object_id}/config", self.discovery_prefix)
    }

    /// A device's topics.
    pub fn topics(&self, key: &DeviceKey) -> DeviceTopics {
        let base = format!("{}/{}/{}", self.base, key.kind.as_str(), key.id);
        DeviceTopics {
            state: format!("{base}/state"),
            availability: format!("{base}/availability"),
            command: format!("{base}/command"),
            action: format!("{base}/action"),
            backup: format!("{base}/backup"),
        }
    }

    /// Jarvis's own topics.
    pub fn server_topics(&self) -> ServerTopics {
        ServerTopics {
            config: self.config_topic(&self.server_id),
            state: format!("{}/server/state", self.base),
            conversation: format!("{}/server/conversation", self.base),
            event: format!("{}/server/event", self.base),
            backups: format!("{}/server/backups", self.base),
        }
    }
}

/// The topics of one Proxmox device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTopics {
    /// Retained JSON state.
    pub state: String,
    /// Retained `online`/`offline`: still in the cluster.
    pub availability: String,
    /// Button presses (guests and nodes).
    pub command: String,
    /// Retained outcome of the last action (guests and nodes).
    pub action: String,
    /// Retained last backup (guests only).
    pub backup: String,
}

/// Jarvis's own topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTopics {
    /// Discovery.
    pub config: String,
    /// Retained health.
    pub state: String,
    /// Retained last command and reply.
    pub conversation: String,
    /// Events (not retained).
    pub event: String,
    /// Retained guests without a recent backup and failed tasks.
    pub backups: String,
}

/// The Frigate device's topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrigateTopics {
    /// Discovery.
    pub config: String,
    /// Retained house-wide summary.
    pub state: String,
    /// Retained `online`/`offline`: Frigate is up.
    pub availability: String,
}

/// One camera's topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraTopics {
    /// Discovery.
    pub config: String,
    /// Retained summary from the event memory.
    pub state: String,
    /// Arrivals (not retained).
    pub event: String,
    /// Retained `online` while the camera is shown (cleared when it is removed).
    pub availability: String,
}

/// What goes in every Proxmox device config besides the device itself.
#[derive(Debug, Clone)]
pub struct Common {
    /// Seconds without a state before HA marks a sensor unavailable (0 = never).
    pub expire_after: u64,
}

/// The event types of Jarvis's `event` entity.
pub const EVENT_TYPES: [&str; 3] = ["command", "action", "error"];

/// The event types of a camera's `event` entity.
pub const CAMERA_EVENT_TYPES: [&str; 1] = ["arrival"];

#[derive(Serialize)]
struct Origin {
    name: &'static str,
    sw: &'static str,
    url: &'static str,
}

#[derive(Serialize)]
struct Device<'a> {
    ids: [&'a str; 1],
    name: &'a str,
    mf: &'static str,
    mdl: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    via_device: Option<&'a str>,
}

#[derive(Serialize)]
struct Avty<'a> {
    t: &'a str,
}

/// One entity of a device. Empty options are left out.
#[derive(Serialize, Default)]
pub(super) struct Component<'a> {
    p: &'static str,
    name: &'static str,
    uniq_id: String,
    #[serde(rename = "default_entity_id")]
    def_ent_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) dev_cla: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stat_cla: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit_of_meas: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sug_dsp_prc: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ent_cat: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) en: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ic: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stat_t: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) val_tpl: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) json_attr_t: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) json_attr_tpl: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ops: Option<&'static [&'static str]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp_aft: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cmd_t: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) pl_prs: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    evt_typ: Option<&'static [&'static str]>,
}

/// The components, serialized as the `cmps` map in insertion order.
struct Components<'a>(Vec<(&'static str, Component<'a>)>);

impl Serialize for Components<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (key, component) in &self.0 {
            map.serialize_entry(key, component)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct DeviceConfig<'a> {
    dev: Device<'a>,
    o: Origin,
    avty: Vec<Avty<'a>>,
    avty_mode: &'static str,
    qos: u8,
    cmps: Components<'a>,
}

/// Builds one device's components with shared ids and topics.
pub(super) struct Builder<'a> {
    object_id: &'a str,
    entity_base: String,
    state_topic: &'a str,
    expire_after: Option<u64>,
    components: Vec<(&'static str, Component<'a>)>,
}

impl<'a> Builder<'a> {
    fn new(object_id: &'a str, entity_base: String, state_topic: &'a str, common: &Common) -> Self {
        Self {
            object_id,
            entity_base,
            state_topic,
            expire_after: (common.expire_after > 0).then_some(common.expire_after),
            components: Vec::with_capacity(16),
        }
    }

    pub(super) fn base(
        &self,
        platform: &'static str,
        key: &'static str,
        name: &'static str,
    ) -> Component<'a> {
        Component {
            p: platform,
            name,
            uniq_id: format!("{}_{key}", self.object_id),
            def_ent_id: format!("{platform}.{}_{key}", self.entity_base),
            ..Component::default()
        }
    }

    /// A sensor or binary sensor reading the device's state JSON.
    fn read(
        &mut self,
        platform: &'static str,
        key: &'static str,
        name: &'static str,
        template: &'static str,
        edit: impl FnOnce(&mut Component<'a>),
    ) {
        let mut c = self.base(platform, key, name);
        c.stat_t = Some(self.state_topic);
        c.val_tpl = Some(template);
        c.exp_aft = self.expire_after;
        edit(&mut c);
        self.components.push((key, c));
    }

    fn percent(&mut self, key: &'static str, name: &'static str, template: &'static str) {
        self.read("sensor", key, name, template, |c| {
            c.unit_of_meas = Some("%");
            c.stat_cla = Some("measurement");
            c.sug_dsp_prc = Some(1);
        });
    }

    fn bytes(&mut self, key: &'static str, name: &'static str, template: &'static str) {
        self.read("sensor", key, name, template, |c| {
            c.dev_cla = Some("data_size");
            c.unit_of_meas = Some("B");
            c.stat_cla = Some("measurement");
        });
    }

    fn rate(&mut self, key: &'static str, name: &'static str, template: &'static str) {
        self.read("sensor", key, name, template, |c| {
            c.dev_cla = Some("data_rate");
            c.unit_of_meas = Some("B/s");
            c.stat_cla = Some("measurement");
        });
    }

    fn timestamp(&mut self, key: &'static str, name: &'static str, template: &'static str) {
        self.read("sensor", key, name, template, |c| {
            c.dev_cla = Some("timestamp");
            c.ent_cat = Some("diagnostic");
        });
    }

    /// Adds a component built with [`Builder::base`].
    pub(super) fn push(&mut self, key: &'static str, component: Component<'a>) {
        self.components.push((key, component));
    }

    fn finish(self) -> Components<'a> {
        Components(self.components)
    }
}

const ORIGIN: Origin = Origin {
    name: "Jarvis",
    sw: env!("CARGO_PKG_VERSION"),
    url: env!("CARGO_PKG_REPOSITORY"),
};

const NODE_STATES: &[&str] = &["online", "offline", "unknown"];
const GUEST_STATES: &[&str] = &["running", "stopped", "paused", "unknown"];
const HEALTH_STATES: &[&str] = &["ok", "degraded"];

fn to_json(config: &DeviceConfig<'_>) -> String {
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_string(config).unwrap_or_default()
}

fn proxmox_availability<'a>(naming: &'a Naming, topics: &'a DeviceTopics) -> Vec<Avty<'a>> {
    vec![
        Avty {
            t: &naming.status_topic,
        },
        Avty {
            t: &naming.proxmox_topic,
        },
        Avty {
            t: &topics.availability,
        },
    ]
}

/// The discovery payload of a node. `detail` adds the Proxmox version.
pub fn node_config(
    naming: &Naming,
    common: &Common,
    node: &Node,
    detail: Option<&NodeStatus>,
) -> String {
    let key = DeviceKey::node(&node.name);
    let object_id = naming.object_id(&key);
    let topics = naming.topics(&key);
    let sw = detail
        .and_then(|d| d.pveversion.as_deref())
        .map(|v| v.split('/').nth(1).unwrap_or(v));
    let mut b = Builder::new(
        &object_id,
        naming.entity_base(&object_id, || node_base(&node.name)),
        &topics.state,
        common,
    );
    b.read(
        "sensor",
        "status",
        "Status",
        "{{ value_json.status }}",
        |c| {
            c.dev_cla = Some("enum");
            c.ops = Some(NODE_STATES);
            c.ic = Some("mdi:server");
        },
    );
    b.percent("cpu", "CPU", "{{ value_json.cpu }}");
    b.bytes("mem", "Memory used", "{{ value_json.mem }}");
    b.percent("mem_pct", "Memory usage", "{{ value_json.mem_pct }}");
    b.timestamp("started", "Last boot", "{{ value_json.started }}");
    for (key, name, template, enabled) in [
        ("load1", "Load (1 min)", "{{ value_json.load1 }}", true),
        ("load5", "Load (5 min)", "{{ value_json.load5 }}", false),
        ("load15", "Load (15 min)", "{{ value_json.load15 }}", false),
    ] {
        b.read("sensor", key, name, template, |c| {
            c.stat_cla = Some("measurement");
            c.sug_dsp_prc = Some(2);
            c.ic = Some("mdi:gauge");
            c.en = (!enabled).then_some(false);
        });
    }
    b.read(
        "sensor",
        "updates",
        "Pending updates",
        "{{ value_json.updates }}",
        |c| {
            c.stat_cla = Some("measurement");
            c.ic = Some("mdi:package-up");
        },
    );
    disk_sensors(&mut b, &topics.state);
    super::node_buttons::components(&mut b, &topics.command, &topics.action);
    let config = DeviceConfig {
        dev: Device {
            ids: [&object_id],
            name: &node.name,
            mf: "Proxmox",
            mdl: "Proxmox VE node",
            sw,
            via_device: None,
        },
        o: ORIGIN,
        avty: proxmox_availability(naming, &topics),
        avty_mode: "all",
        qos: 1,
        cmps: b.finish(),
    };
    to_json(&config)
}

/// A node's disk entities (see [`super::disks`]): a problem sensor with every disk as
/// attributes, the lowest SSD life left, and the worst ZFS pool health with each pool's.
fn disk_sensors<'a>(b: &mut Builder<'a>, state: &'a str) {
    b.read(
        "binary_sensor",
        "disks",
        "Disks",
        "{{ value_json.disks_problem }}",
        |c| {
            c.dev_cla = Some("problem");
            c.json_attr_t = Some(state);
            c.json_attr_tpl = Some("{{ {'disks': value_json.disks | default([])} | tojson }}");
        },
    );
    b.read(
        "sensor",
        "ssd_life",
        "Lowest SSD life left",
        "{{ value_json.ssd_life }}",
        |c| {
            c.unit_of_meas = Some("%");
            c.stat_cla = Some("measurement");
            c.ic = Some("mdi:harddisk");
        },
    );
    b.read("sensor", "zfs", "ZFS pools", "{{ value_json.zfs }}", |c| {
        c.ic = Some("mdi:database-check");
        c.json_attr_t = Some(state);
        c.json_attr_tpl = Some("{{ value_json.zfs_pools | default({}) | tojson }}");
    });
}

/// Whether a button is enabled in HA from the start. Everything that takes a guest down is
/// off until the user turns it on: a stray tap on a dashboard must not stop a server.
pub fn button_enabled_by_default(action: GuestAction) -> bool {
    matches!(action, GuestAction::Start)
}

/// The device name of a guest: `haos (VM 101)`, `frigate (CT 200)`.
pub fn guest_device_name(guest: &Guest) -> String {
    let kind = match guest.kind {
        GuestKind::Qemu => "VM",
        GuestKind::Lxc => "CT",
    };
    format!("{} ({kind} {})", guest.name, guest.vmid)
}

/// The discovery payload of a guest. Its node appears only as `via_device` and in the state,
/// never in an id.
pub fn guest_config(naming: &Naming, common: &Common, guest: &Guest) -> String {
    let key = DeviceKey::guest(guest.vmid);
    let object_id = naming.object_id(&key);
    let node_id = naming.object_id(&DeviceKey::node(&guest.node));
    let topics = naming.topics(&key);
    let name = guest_device_name(guest);
    let entity_base = naming.entity_base(&object_id, || guest_base(&guest.name, guest.vmid));
    let mut b = Builder::new(&object_id, entity_base, &topics.state, common);
    b.read(
        "sensor",
        "status",
        "Status",
        "{{ value_json.status }}",
        |c| {
            c.dev_cla = Some("enum");
            c.ops = Some(GUEST_STATES);
        },
    );
    b.read(
        "binary_sensor",
        "running",
        "Running",
        "{{ 'ON' if value_json.status == 'running' else 'OFF' }}",
        |c| c.dev_cla = Some("running"),
    );
    b.percent("cpu", "CPU", "{{ value_json.cpu }}");
    b.bytes("mem", "Memory used", "{{ value_json.mem }}");
    b.percent("mem_pct", "Memory usage", "{{ value_json.mem_pct }}");
    b.timestamp("started", "Started", "{{ value_json.started }}");
    if guest.kind == GuestKind::Lxc {
        // QEMU reports 0 here unless the guest agent fills it in.
        b.bytes("disk", "Disk used", "{{ value_json.disk }}");
    }
    b.rate("net_in", "Network in", "{{ value_json.net_in }}");
    b.rate("net_out", "Network out", "{{ value_json.net_out }}");
    b.rate("disk_read", "Disk read", "{{ value_json.disk_read }}");
    b.rate("disk_write", "Disk write", "{{ value_json.disk_write }}");
    b.read("sensor", "node", "Node", "{{ value_json.node }}", |c| {
        c.ent_cat = Some("diagnostic");
        c.ic = Some("mdi:server");
    });
    // The last action is retained and changes only on actions: it must not expire.
    let mut last = b.base("sensor", "last_action", "Last action");
    last.stat_t = Some(&topics.action);
    last.val_tpl = Some("{{ value_json.reply }}");
    last.json_attr_t = Some(&topics.action);
    last.ic = Some("mdi:history");
    b.components.push(("last_action", last));
    super::backups::guest_sensors(&mut b, &topics.backup);
    for action in GuestAction::ALL {
        let (key, name) = match action {
            GuestAction::Start => ("start", "Start"),
            GuestAction::Shutdown => ("shutdown", "Shut down"),
            GuestAction::Stop => ("stop", "Stop"),
            GuestAction::Reboot => ("reboot", "Reboot"),
        };
        let mut c = b.base("button", key, name);
        c.cmd_t = Some(&topics.command);
        c.pl_prs = Some(action.api_name());
        c.en = (!button_enabled_by_default(action)).then_some(false);
        c.dev_cla = (action == GuestAction::Reboot).then_some("restart");
        c.ic = match action {
            GuestAction::Start => Some("mdi:play"),
            GuestAction::Shutdown => Some("mdi:power"),
            GuestAction::Stop => Some("mdi:stop"),
            GuestAction::Reboot => None,
        };
        b.components.push((key, c));
    }
    let config = DeviceConfig {
        dev: Device {
            ids: [&object_id],
            name: &name,
            mf: "Proxmox",
            mdl: match guest.kind {
                GuestKind::Qemu => "QEMU virtual machine",
                GuestKind::Lxc => "LXC container",
            },
            sw: None,
            via_device: Some(&node_id),
        },
        o: ORIGIN,
        avty: proxmox_availability(naming, &topics),
        avty_mode: "all",
        qos: 1,
        cmps: b.finish(),
    };
    to_json(&config)
}

/// The discovery payload of a storage.
pub fn storage_config(naming: &Naming, common: &Common, storage: &Storage) -> String {
    let key = DeviceKey::storage(&storage.node, &storage.storage);
    let object_id = naming.object_id(&key);
    let node_id = naming.object_id(&DeviceKey::node(&storage.node));
    let topics = naming.topics(&key);
    let name = format!("{} ({})", storage.storage, storage.node);
    let model = match &storage.plugintype {
        Some(plugin) => format!("Proxmox storage ({plugin})"),
        None => "Proxmox storage".to_owned(),
    };
    let entity_base =
        naming.entity_base(&object_id, || storage_base(&storage.node, &storage.storage));
    let mut b = Builder::new(&object_id, entity_base, &topics.state, common);
    b.bytes("used", "Used", "{{ value_json.used }}");
    b.bytes("free", "Free", "{{ value_json.free }}");
    b.percent("used_pct", "Usage", "{{ value_json.used_pct }}");
    b.read(
        "binary_sensor",
        "active",
        "Active",
        "{{ 'ON' if value_json.active else 'OFF' }}",
        |c| {
            c.dev_cla = Some("running");
            c.ent_cat = Some("diagnostic");
        },
    );
    let config = DeviceConfig {
        dev: Device {
            ids: [&object_id],
            name: &name,
            mf: "Proxmox",
            mdl: &model,
            sw: None,
            via_device: Some(&node_id),
        },
        o: ORIGIN,
        avty: proxmox_availability(naming, &topics),
        avty_mode: "all",
        qos: 1,
        cmps: b.finish(),
    };
    to_json(&config)
}

/// The discovery payload of Jarvis itself: health, Proxmox reachability, the last command and
/// reply, and an event entity that fires on every command and action. Only Jarvis's own LWT
/// decides its availability.
///
/// With `events`, the event memory's size as two diagnostic sensors.
pub fn server_config(naming: &Naming, events: bool) -> String {
    server_config_with_lease(naming, events, None)
}

/// [`server_config`] with, for a brain in the lease (`[mqtt.lease]`), an "Active brain" sensor
/// that reads the holder from the retained lease on `lease_topic`.
pub fn server_config_with_lease(
    naming: &Naming,
    events: bool,
    lease_topic: Option<&str>,
) -> String {
    let topics = naming.server_topics();
    let object_id = naming.server_id.as_str();
    let mut b = Builder::new(
        object_id,
        entity_name(&naming.base, "jarvis"),
        &topics.state,
        &Common { expire_after: 0 },
    );
    b.read(
        "sensor",
        "health",
        "Health",
        "{{ value_json.health }}",
        |c| {
            c.dev_cla = Some("enum");
            c.ops = Some(HEALTH_STATES);
            c.ic = Some("mdi:heart-pulse");
            c.json_attr_t = Some(&topics.state);
            c.json_attr_tpl = Some("{{ value_json.detail | tojson }}");
        },
    );
    b.read(
        "binary_sensor",
        "proxmox",
        "Proxmox API",
        "{{ 'ON' if value_json.proxmox == 'online' else 'OFF' }}",
        |c| {
            c.dev_cla = Some("connectivity");
            c.ent_cat = Some("diagnostic");
        },
    );
    let mut transcript = b.base("sensor", "last_command", "Last command");
    transcript.stat_t = Some(&topics.conversation);
    transcript.val_tpl = Some("{{ value_json.text }}");
    transcript.ic = Some("mdi:account-voice");
    b.components.push(("last_command", transcript));
    let mut reply = b.base("sensor", "last_reply", "Last reply");
    reply.stat_t = Some(&topics.conversation);
    reply.val_tpl = Some("{{ value_json.reply }}");
    reply.ic = Some("mdi:robot");
    b.components.push(("last_reply", reply));
    let mut event = b.base("event", "activity", "Activity");
    event.stat_t = Some(&topics.event);
    event.evt_typ = Some(&EVENT_TYPES);
    event.ic = Some("mdi:lightning-bolt");
    b.components.push(("activity", event));
    super::backups::server_sensors(&mut b, &topics.backups);
    if let Some(lease) = lease_topic {
        let mut active = b.base("sensor", "active_brain", "Active brain");
        active.stat_t = Some(lease);
        active.val_tpl = Some("{{ value_json.holder if value_json.holder else 'none' }}");
        active.ic = Some("mdi:account-switch");
        active.ent_cat = Some("diagnostic");
        b.components.push(("active_brain", active));
    }
    if events {
        b.read(
            "sensor",
            "events",
            "Events remembered",
            "{{ value_json.events }}",
            |c| {
                c.stat_cla = Some("measurement");
                c.ent_cat = Some("diagnostic");
                c.ic = Some("mdi:database");
            },
        );
        b.read(
            "sensor",
            "events_size",
            "Event memory size",
            "{{ value_json.events_bytes }}",
            |c| {
                c.dev_cla = Some("data_size");
                c.unit_of_meas = Some("B");
                c.stat_cla = Some("measurement");
                c.ent_cat = Some("diagnostic");
            },
        );
    }
    let config = DeviceConfig {
        dev: Device {
            ids: [object_id],
            name: "Jarvis",
            mf: "Jarvis",
            mdl: "Homelab voice assistant",
            sw: Some(ORIGIN.sw),
            via_device: None,
        },
        o: ORIGIN,
        avty: vec![Avty {
            t: &naming.status_topic,
        }],
        avty_mode: "all",
        qos: 1,
        cmps: b.finish(),
    };
    to_json(&config)
}

/// The house-wide summary of the Frigate device: the last person anywhere (with its camera),
/// people today on every camera, the last recognised face. `version` is Frigate's.
pub fn frigate_config(naming: &Naming, common: &Common, version: Option<&str>) -> String {
    let topics = naming.frigate_topics();
    let mut b = Builder::new(
        &naming.frigate_id,
        "frigate".to_owned(),
        &topics.state,
        common,
    );
    memory_sensors(&mut b, &topics.state, "camera");
    let config = DeviceConfig {
        dev: Device {
            ids: [&naming.frigate_id],
            name: "Frigate (Jarvis)",
            mf: "Frigate",
            mdl: "NVR, as Jarvis remembers it",
            sw: version,
            via_device: None,
        },
        o: ORIGIN,
        avty: vec![
            Avty {
                t: &naming.status_topic,
            },
            Avty {
                t: &naming.frigate_topic,
            },
        ],
        avty_mode: "all",
        qos: 1,
        cmps: b.finish(),
    };
    to_json(&config)
}

/// A camera's device: its last person, people today, last face and last event description
/// from the event memory, and the `arrival` event. `name` is Frigate's camera name, `slug`
/// its [`topic_slug`].
pub fn camera_config(naming: &Naming, common: &Common, slug: &str, name: &str) -> String {
    let object_id = naming.camera_id(slug);
    let topics = naming.camera_topics(slug);
    let mut b = Builder::new(
        &object_id,
        naming.entity_base(&object_id, || camera_base(name)),
        &topics.state,
        common,
    );
    memory_sensors(&mut b, &topics.state, "");
    b.read(
        "sensor",
        "last_description",
        "Last event description",
        "{{ value_json.last_description }}",
        |c| {
            c.ic = Some("mdi:text-box-outline");
            c.json_attr_t = Some(&topics.state);
            c.json_attr_tpl = Some("{{ {'when': value_json.last_description_at} | tojson }}");
        },
    );
    let mut arrival = b.base("event", "arrival", "Arrival");
    arrival.stat_t = Some(&topics.event);
    arrival.evt_typ = Some(&CAMERA_EVENT_TYPES);
    arrival.ic = Some("mdi:walk");
    b.components.push(("arrival", arrival));
    let device_name = format!("{} (Jarvis)", camera_title(name));
    let frigate_id = naming.frigate_id.as_str();
    let config = DeviceConfig {
        dev: Device {
            ids: [&object_id],
            name: &device_name,
            mf: "Frigate",
            mdl: "Camera, as Jarvis remembers it",
            sw: None,
            via_device: Some(frigate_id),
        },
        o: ORIGIN,
        avty: vec![
            Avty {
                t: &naming.status_topic,
            },
            Avty {
                t: &naming.frigate_topic,
            },
            Avty {
                t: &topics.availability,
            },
        ],
        avty_mode: "all",
        qos: 1,
        cmps: b.finish(),
    };
    to_json(&config)
}

/// The sensors the Frigate device and each camera share. `where_key` names the state key of
/// the camera a house-wide value came from (empty on a camera's own device).
fn memory_sensors<'a>(b: &mut Builder<'a>, state: &'a str, where_key: &'static str) {
    let (person_attrs, face_attrs) = if where_key.is_empty() {
        (None, "{{ {'when': value_json.last_face_at} | tojson }}")
    } else {
        (
            Some("{{ {'camera': value_json.last_person_camera} | tojson }}"),
            "{{ {'when': value_json.last_face_at, 'camera': value_json.last_face_camera} | tojson }}",
        )
    };
    b.read(
        "sensor",
        "last_person",
        "Last person seen",
        "{{ value_json.last_person }}",
        |c| {
            c.dev_cla = Some("timestamp");
            c.ic = Some("mdi:account-clock");
            if let Some(template) = person_attrs {
                c.json_attr_t = Some(state);
                c.json_attr_tpl = Some(template);
            }
        },
    );
    b.read(
        "sensor",
        "people_today",
        "People today",
        "{{ value_json.people_today }}",
        |c| {
            // Back to 0 at midnight: a new cycle, which `total_increasing` expects.
            c.stat_cla = Some("total_increasing");
            c.ic = Some("mdi:account-multiple");
        },
    );
    b.read(
        "sensor",
        "last_face",
        "Last recognised face",
        "{{ value_json.last_face }}",
        |c| {
            c.ic = Some("mdi:face-recognition");
            c.json_attr_t = Some(state);
            c.json_attr_tpl = Some(face_attrs);
        },
    );
}

/// `front_door` → `Front door`.
pub fn camera_title(name: &str) -> String {
    let spaced = name.replace(['_', '-'], " ");
    let mut chars = spaced.trim().chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxmox::NodeState;
    use serde_json::Value;

    fn naming() -> Naming {
        Naming::new("homeassistant", "jarvis", "homelab")
    }

    fn common() -> Common {
        Common { expire_after: 615 }
    }

    pub(crate) fn guest(vmid: u32, name: &str, node: &str, kind: GuestKind) -> Guest {
        Guest {
            kind,
            cpu: Some(0.05),
            maxcpu: Some(4),
            mem: Some(1 << 30),
            maxmem: Some(4 << 30),
            disk: Some(0),
            maxdisk: Some(32 << 30),
            netin: Some(1000),
            netout: Some(2000),
            diskread: Some(0),
            diskwrite: Some(0),
            uptime: Some(3600),
            ..Guest::example(vmid, name, node)
        }
    }

    fn parse(json: &str) -> Value {
        serde_json::from_str(json).unwrap()
    }

    /// Every rule of §1 that applies to any device payload.
    fn check_common(config: &Value) {
        assert_eq!(config["o"]["name"], "Jarvis");
        assert!(config["o"]["sw"].is_string());
        let ids = config["dev"]["ids"].as_array().unwrap();
        assert_eq!(ids.len(), 1);
        assert!(config["dev"]["name"].is_string());
        let cmps = config["cmps"].as_object().unwrap();
        assert!(!cmps.is_empty());
        let id = ids[0].as_str().unwrap();
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
        for (key, c) in cmps {
            assert!(c["p"].is_string(), "{key}");
            assert_eq!(c["uniq_id"], format!("{id}_{key}"), "{key}");
            assert!(c.get("object_id").is_none());
            let platform = c["p"].as_str().unwrap();
            let entity = c["default_entity_id"].as_str().unwrap();
            let (domain, object) = entity.split_once('.').unwrap();
            assert_eq!(domain, platform, "{key}");
            assert!(
                object
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    && !object.contains("__"),
                "{entity}"
            );
            match platform {
                "sensor" | "binary_sensor" | "event" => assert!(c["stat_t"].is_string(), "{key}"),
                "button" => assert!(c["cmd_t"].is_string() && c["pl_prs"].is_string()),
                other => panic!("unexpected platform {other}"),
            }
            if let Some(cat) = c.get("ent_cat") {
                assert_eq!(cat, "diagnostic", "{key}: sensors may only be diagnostic");
            }
            if c.get("stat_cla").is_some() {
                assert_eq!(c["p"], "sensor");
            }
        }
    }

    #[test]
    fn a_node_has_its_sensors_with_statistics() {
        let node = Node {
            name: "pve1".into(),
            status: NodeState::Online,
            cpu: Some(0.04),
            maxcpu: Some(16),
            mem: Some(1),
            maxmem: Some(2),
            disk: None,
            maxdisk: None,
            uptime: Some(100),
        };
        let detail = NodeStatus {
            pveversion: Some("pve-manager/9.1.2/0123abcd".into()),
            ..NodeStatus::default()
        };
        let config = parse(&node_config(&naming(), &common(), &node, Some(&detail)));
        check_common(&config);
        assert_eq!(config["dev"]["ids"][0], "jarvis_homelab_node_pve1");
        assert_eq!(config["dev"]["sw"], "9.1.2");
        let cmps = &config["cmps"];
        assert_eq!(cmps["cpu"]["unit_of_meas"], "%");
        assert_eq!(cmps["cpu"]["stat_cla"], "measurement");
        assert_eq!(cmps["mem"]["dev_cla"], "data_size");
        assert_eq!(cmps["mem"]["unit_of_meas"], "B");
        assert_eq!(cmps["started"]["dev_cla"], "timestamp");
        assert_eq!(cmps["status"]["dev_cla"], "enum");
        assert_eq!(cmps["load1"]["stat_cla"], "measurement");
        assert_eq!(cmps["load5"]["en"], false);
        assert_eq!(cmps["updates"]["stat_t"], "jarvis/node/pve1/state");
        assert_eq!(cmps["cpu"]["exp_aft"], 615);
        assert_eq!(cmps["cpu"]["default_entity_id"], "sensor.pve1_cpu");
        assert_eq!(
            config["avty"],
            serde_json::json!([
                {"t": "jarvis/status"},
                {"t": "jarvis/proxmox/availability"},
                {"t": "jarvis/node/pve1/availability"}
            ])
        );
        assert_eq!(config["avty_mode"], "all");
    }

    #[test]
    fn a_guest_has_sensors_buttons_and_its_node_only_as_via_device() {
        let vm = guest(101, "haos", "pve1", GuestKind::Qemu);
        let config = parse(&guest_config(&naming(), &common(), &vm));
        check_common(&config);
        assert_eq!(config["dev"]["ids"][0], "jarvis_homelab_guest_101");
        assert_eq!(config["dev"]["name"], "haos (VM 101)");
        assert_eq!(config["dev"]["via_device"], "jarvis_homelab_node_pve1");
        let cmps = config["cmps"].as_object().unwrap();
        for key in [
            "status",
            "running",
            "cpu",
            "mem",
            "started",
            "net_in",
            "net_out",
            "disk_read",
            "disk_write",
            "node",
            "last_action",
        ] {
            assert!(cmps.contains_key(key), "{key}");
        }
        assert!(
            !cmps.contains_key("disk"),
            "QEMU disk use is 0 without the agent"
        );
        assert_eq!(cmps["running"]["dev_cla"], "running");
        assert_eq!(cmps["net_in"]["dev_cla"], "data_rate");
        assert_eq!(cmps["net_in"]["unit_of_meas"], "B/s");
        assert_eq!(cmps["start"]["cmd_t"], "jarvis/guest/101/command");
        assert_eq!(cmps["start"]["pl_prs"], "start");
        assert!(cmps["start"].get("en").is_none());
        for destructive in ["shutdown", "stop", "reboot"] {
            assert_eq!(cmps[destructive]["en"], false, "{destructive}");
            assert_eq!(cmps[destructive]["pl_prs"], destructive);
        }
        assert_eq!(cmps["reboot"]["dev_cla"], "restart");
        assert_eq!(cmps["last_action"]["stat_t"], "jarvis/guest/101/action");
        assert!(cmps["last_action"].get("exp_aft").is_none());
        assert_eq!(cmps["cpu"]["default_entity_id"], "sensor.haos_cpu");

        // A migration changes the via_device and nothing that identifies an entity.
        let moved = Guest {
            node: "pve2".into(),
            ..vm.clone()
        };
        let after = parse(&guest_config(&naming(), &common(), &moved));
        assert_eq!(after["dev"]["via_device"], "jarvis_homelab_node_pve2");
        assert_eq!(after["dev"]["ids"], config["dev"]["ids"]);
        for (key, c) in after["cmps"].as_object().unwrap() {
            assert_eq!(c["uniq_id"], cmps[key]["uniq_id"]);
            assert_eq!(c["stat_t"], cmps[key]["stat_t"]);
        }

        let ct = parse(&guest_config(
            &naming(),
            &common(),
            &guest(200, "frigate", "pve2", GuestKind::Lxc),
        ));
        check_common(&ct);
        assert_eq!(ct["dev"]["name"], "frigate (CT 200)");
        assert_eq!(ct["dev"]["mdl"], "LXC container");
        assert_eq!(ct["cmps"]["disk"]["dev_cla"], "data_size");
    }

    #[test]
    fn hostile_guest_names_stay_in_json_and_out_of_ids_and_topics() {
        let name = "evil/+/#\"name\n<script>  Küche 🚀";
        let vm = guest(4242, name, "pve1", GuestKind::Qemu);
        let json = guest_config(&naming(), &common(), &vm);
        let config = parse(&json);
        check_common(&config);
        assert_eq!(config["dev"]["name"], format!("{name} (VM 4242)"));
        for (_, c) in config["cmps"].as_object().unwrap() {
            for topic_key in ["stat_t", "cmd_t", "json_attr_t"] {
                if let Some(t) = c.get(topic_key).and_then(Value::as_str) {
                    assert!(!t.contains(['+', '#', ' ']), "{t}");
                    assert!(t.starts_with("jarvis/guest/4242/"), "{t}");
                }
            }
        }
        let empty = parse(&guest_config(
            &naming(),
            &common(),
            &guest(7, "???", "pve1", GuestKind::Lxc),
        ));
        assert_eq!(
            empty["cmps"]["cpu"]["default_entity_id"],
            "sensor.guest_7_cpu"
        );
    }

    #[test]
    fn a_storage_has_used_free_and_usage() {
        let storage = Storage {
            storage: "local-lvm".into(),
            node: "pve1".into(),
            plugintype: Some("lvmthin".into()),
            available: true,
            shared: false,
            content: vec!["images".into()],
            used: Some(10),
            total: Some(100),
        };
        let config = parse(&storage_config(&naming(), &common(), &storage));
        check_common(&config);
        assert_eq!(
            config["dev"]["ids"][0],
            "jarvis_homelab_storage_pve1_local-lvm"
        );
        assert_eq!(config["dev"]["mdl"], "Proxmox storage (lvmthin)");
        let cmps = &config["cmps"];
        assert_eq!(cmps["used"]["dev_cla"], "data_size");
        assert_eq!(cmps["free"]["stat_cla"], "measurement");
        assert_eq!(cmps["used_pct"]["unit_of_meas"], "%");
        assert_eq!(
            cmps["used"]["stat_t"],
            "jarvis/storage/pve1_local-lvm/state"
        );
    }

    #[test]
    fn jarvis_has_health_conversation_and_an_event_entity() {
        let config = parse(&server_config(&naming(), false));
        check_common(&config);
        assert!(config["cmps"].get("events").is_none());
        assert_eq!(config["dev"]["ids"][0], "jarvis_server");
        assert_eq!(config["avty"], serde_json::json!([{"t": "jarvis/status"}]));
        let cmps = &config["cmps"];
        assert_eq!(cmps["activity"]["p"], "event");
        assert_eq!(
            cmps["activity"]["evt_typ"],
            serde_json::json!(["command", "action", "error"])
        );
        assert_eq!(cmps["activity"]["stat_t"], "jarvis/server/event");
        assert_eq!(cmps["last_command"]["stat_t"], "jarvis/server/conversation");
        assert_eq!(cmps["last_reply"]["val_tpl"], "{{ value_json.reply }}");
        assert_eq!(cmps["health"]["dev_cla"], "enum");
        assert_eq!(cmps["proxmox"]["dev_cla"], "connectivity");
    }

    #[test]
    fn jarvis_shows_the_event_memory_size_when_it_has_one() {
        let with_lease = parse(&server_config_with_lease(
            &naming(),
            false,
            Some("jarvis/brain/lease"),
        ));
        let active = &with_lease["cmps"]["active_brain"];
        assert_eq!(active["stat_t"], "jarvis/brain/lease", "{active}");
        assert_eq!(active["ent_cat"], "diagnostic");
        let config = parse(&server_config(&naming(), true));
        check_common(&config);
        let cmps = &config["cmps"];
        assert_eq!(cmps["events"]["ent_cat"], "diagnostic");
        assert_eq!(cmps["events"]["stat_cla"], "measurement");
        assert_eq!(cmps["events"]["val_tpl"], "{{ value_json.events }}");
        assert_eq!(cmps["events_size"]["dev_cla"], "data_size");
        assert_eq!(cmps["events_size"]["unit_of_meas"], "B");
        assert_eq!(cmps["events_size"]["stat_t"], "jarvis/server/state");
    }

    #[test]
    fn a_camera_has_its_memory_and_an_arrival_event_behind_frigate() {
        let config = parse(&camera_config(
            &naming(),
            &common(),
            "front_door",
            "front_door",
        ));
        check_common(&config);
        assert_eq!(config["dev"]["ids"][0], "jarvis_camera_front_door");
        assert_eq!(config["dev"]["name"], "Front door (Jarvis)");
        assert_eq!(config["dev"]["via_device"], "jarvis_frigate");
        assert_eq!(
            config["avty"],
            serde_json::json!([
                {"t": "jarvis/status"},
                {"t": "jarvis/frigate/availability"},
                {"t": "jarvis/camera/front_door/availability"}
            ])
        );
        assert_eq!(config["avty_mode"], "all");
        let cmps = config["cmps"].as_object().unwrap();
        let keys: Vec<&str> = cmps.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "arrival",
                "last_description",
                "last_face",
                "last_person",
                "people_today"
            ]
        );
        assert_eq!(cmps["last_person"]["dev_cla"], "timestamp");
        assert!(cmps["last_person"].get("ent_cat").is_none());
        assert_eq!(cmps["people_today"]["stat_cla"], "total_increasing");
        assert_eq!(
            cmps["last_face"]["json_attr_t"],
            "jarvis/camera/front_door/state"
        );
        assert!(
            cmps["last_face"]["json_attr_tpl"]
                .as_str()
                .unwrap()
                .contains("last_face_at")
        );
        assert_eq!(cmps["arrival"]["p"], "event");
        assert_eq!(cmps["arrival"]["evt_typ"], serde_json::json!(["arrival"]));
        assert_eq!(cmps["arrival"]["stat_t"], "jarvis/camera/front_door/event");
        assert!(cmps["arrival"].get("exp_aft").is_none());
        assert_eq!(cmps["last_person"]["exp_aft"], 615);
        assert_eq!(
            cmps["people_today"]["default_entity_id"],
            "sensor.front_door_people_today"
        );
        assert_eq!(
            cmps["arrival"]["default_entity_id"],
            "event.front_door_arrival"
        );
        // Nothing Frigate's own integration already makes.
        for theirs in ["occupancy", "count", "motion", "snapshot", "camera"] {
            assert!(
                !keys.iter().any(|k| k.contains(theirs)),
                "{theirs} is Frigate's"
            );
        }
    }

    #[test]
    fn the_frigate_device_sums_up_the_house() {
        let config = parse(&frigate_config(&naming(), &common(), Some("0.16.2")));
        check_common(&config);
        assert_eq!(config["dev"]["ids"][0], "jarvis_frigate");
        assert_eq!(config["dev"]["sw"], "0.16.2");
        assert_eq!(
            config["avty"],
            serde_json::json!([{"t": "jarvis/status"}, {"t": "jarvis/frigate/availability"}])
        );
        let cmps = &config["cmps"];
        assert_eq!(cmps["last_person"]["stat_t"], "jarvis/frigate/state");
        assert!(
            cmps["last_person"]["json_attr_tpl"]
                .as_str()
                .unwrap()
                .contains("last_person_camera")
        );
        assert_eq!(
            cmps["people_today"]["default_entity_id"],
            "sensor.frigate_people_today"
        );
        assert!(cmps.get("arrival").is_none());
        assert_eq!(camera_title("side-gate_2"), "Side gate 2");
        assert_eq!(camera_title("Garage"), "Garage");
    }

    #[test]
    fn device_keys_round_trip_through_topics() {
        let n = naming();
        for key in [
            DeviceKey::guest(101),
            DeviceKey::node("pve1"),
            DeviceKey::storage("pve1", "local-lvm"),
            DeviceKey::storage("PVE 2", "nfs.backup"),
        ] {
            let topic = n.topics(&key).availability;
            let levels: Vec<&str> = topic.split('/').collect();
            assert_eq!(levels.len(), 4, "{topic}");
            assert_eq!(DeviceKey::from_levels(levels[1], levels[2]), Some(key));
        }
        assert_eq!(DeviceKey::from_levels("guest", "abc"), None);
        assert_eq!(DeviceKey::from_levels("server", "x"), None);
        assert_eq!(DeviceKey::from_levels("node", "a b"), None);
    }
}
