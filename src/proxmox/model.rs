//! What Jarvis knows about a Proxmox VE cluster, in the shape the brain and the MQTT publisher
//! use. The client turns the API's loosely typed JSON (§4.4 of the integration notes: numbers that
//! are sometimes strings, booleans as 0/1, fields missing without `Sys.Audit`) into these.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// QEMU virtual machine or LXC container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    /// A QEMU/KVM virtual machine (`qemu` in the API).
    Qemu,
    /// An LXC container (`lxc` in the API).
    Lxc,
}

impl GuestKind {
    /// The path segment the API uses: `qemu` or `lxc`.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::Qemu => "qemu",
            Self::Lxc => "lxc",
        }
    }

    /// How people say it: "VM" or "container".
    pub fn spoken(self) -> &'static str {
        match self {
            Self::Qemu => "VM",
            Self::Lxc => "container",
        }
    }
}

/// A node's state in `/cluster/resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// `online`.
    Online,
    /// `offline`.
    Offline,
    /// `unknown` or anything else.
    Unknown,
}

/// A guest's state. `Paused` comes from `qmpstatus` when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestState {
    /// `running`.
    Running,
    /// `stopped`.
    Stopped,
    /// Running but paused or suspended (`qmpstatus`).
    Paused,
    /// `unknown` or anything else.
    Unknown,
}

impl GuestState {
    /// The word used in replies and MQTT states.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Paused => "paused",
            Self::Unknown => "unknown",
        }
    }
}

/// A cluster node (`type: node` in `/cluster/resources`). Usage figures are `None` when the
/// token lacks `Sys.Audit` or the node is offline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Node name, e.g. `pve1`.
    pub name: String,
    /// Online, offline or unknown.
    pub status: NodeState,
    /// CPU use, 0..1 of `maxcpu`.
    pub cpu: Option<f64>,
    /// Number of CPUs.
    pub maxcpu: Option<u32>,
    /// Memory used, bytes.
    pub mem: Option<u64>,
    /// Memory total, bytes.
    pub maxmem: Option<u64>,
    /// Root disk used, bytes.
    pub disk: Option<u64>,
    /// Root disk size, bytes.
    pub maxdisk: Option<u64>,
    /// Seconds since boot.
    pub uptime: Option<u64>,
}

/// A VM or container (`type: qemu|lxc`). Templates are included and flagged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Guest {
    /// VMID, unique in the cluster.
    pub vmid: u32,
    /// VM or container.
    pub kind: GuestKind,
    /// The node it runs on now (changes on migration).
    pub node: String,
    /// Its name (`name`); `vm<vmid>`/`ct<vmid>` when it has none.
    pub name: String,
    /// Running, stopped, ...
    pub status: GuestState,
    /// A template, not a guest that runs.
    pub template: bool,
    /// CPU use, 0..1 of `maxcpu`.
    pub cpu: Option<f64>,
    /// Virtual CPUs.
    pub maxcpu: Option<u32>,
    /// Memory used, bytes.
    pub mem: Option<u64>,
    /// Memory assigned, bytes.
    pub maxmem: Option<u64>,
    /// Disk used, bytes (0 for QEMU without the guest agent).
    pub disk: Option<u64>,
    /// Disk size, bytes.
    pub maxdisk: Option<u64>,
    /// Network bytes received since start (a counter).
    pub netin: Option<u64>,
    /// Network bytes sent since start (a counter).
    pub netout: Option<u64>,
    /// Disk bytes read since start (a counter).
    pub diskread: Option<u64>,
    /// Disk bytes written since start (a counter).
    pub diskwrite: Option<u64>,
    /// Seconds since start.
    pub uptime: Option<u64>,
    /// Tags (`;`-separated in the API).
    pub tags: Vec<String>,
    /// A lock such as `backup` or `migrate`, when held.
    pub lock: Option<String>,
    /// Resource pool.
    pub pool: Option<String>,
}

impl Guest {
    /// Where actions on this guest are sent.
    pub fn reference(&self) -> GuestRef {
        GuestRef {
            vmid: self.vmid,
            kind: self.kind,
            node: self.node.clone(),
        }
    }
}

#[cfg(test)]
impl Node {
    /// An online node without usage figures, for unit tests.
    pub(crate) fn example(name: &str) -> Self {
        Self {
            name: name.into(),
            status: NodeState::Online,
            cpu: None,
            maxcpu: None,
            mem: None,
            maxmem: None,
            disk: None,
            maxdisk: None,
            uptime: None,
        }
    }
}

#[cfg(test)]
impl Storage {
    /// An available, unshared storage without content or usage figures, for unit tests.
    pub(crate) fn example(storage: &str, node: &str) -> Self {
        Self {
            storage: storage.into(),
            node: node.into(),
            plugintype: None,
            available: true,
            shared: false,
            content: Vec::new(),
            used: None,
            total: None,
        }
    }
}

#[cfg(test)]
impl Guest {
    /// A running VM without usage figures, for unit tests; set fields with `..`.
    pub(crate) fn example(vmid: u32, name: &str, node: &str) -> Self {
        Self {
            vmid,
            kind: GuestKind::Qemu,
            node: node.into(),
            name: name.into(),
            status: GuestState::Running,
            template: false,
            cpu: None,
            maxcpu: None,
            mem: None,
            maxmem: None,
            disk: None,
            maxdisk: None,
            netin: None,
            netout: None,
            diskread: None,
            diskwrite: None,
            uptime: None,
            tags: Vec::new(),
            lock: None,
            pool: None,
        }
    }
}

/// Enough to address a guest in the API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct GuestRef {
    /// VMID.
    pub vmid: u32,
    /// VM or container.
    pub kind: GuestKind,
    /// Its node.
    pub node: String,
}

/// A storage on a node (`type: storage`). Shared storages appear once per node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Storage {
    /// Storage id, e.g. `local-lvm`.
    pub storage: String,
    /// The node reporting it.
    pub node: String,
    /// Plugin type, e.g. `lvmthin`, `zfspool`, `nfs`.
    pub plugintype: Option<String>,
    /// `available` (true) or not.
    pub available: bool,
    /// Shared between nodes.
    pub shared: bool,
    /// Content types, e.g. `images`, `rootdir`.
    pub content: Vec<String>,
    /// Bytes used.
    pub used: Option<u64>,
    /// Bytes total.
    pub total: Option<u64>,
}

/// One `/cluster/resources` snapshot: every node, guest and storage the token can see.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Inventory {
    /// Nodes, by name.
    pub nodes: Vec<Node>,
    /// VMs and containers (templates included), by VMID.
    pub guests: Vec<Guest>,
    /// Storages, by node then id.
    pub storages: Vec<Storage>,
}

impl Inventory {
    /// The guest with this VMID.
    pub fn guest(&self, vmid: u32) -> Option<&Guest> {
        self.guests.iter().find(|g| g.vmid == vmid)
    }

    /// The node with this name (exact).
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// `/cluster/status`: quorum and membership. A single node without a cluster has no name and
/// no quorum entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterStatus {
    /// Cluster name, when the node is in a cluster.
    pub name: Option<String>,
    /// Whether the cluster has quorum (`None` for a standalone node).
    pub quorate: Option<bool>,
    /// Members and whether each is online.
    pub members: Vec<ClusterMember>,
}

/// One node entry of `/cluster/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterMember {
    /// Node name.
    pub name: String,
    /// Online in the cluster.
    pub online: bool,
    /// Its cluster address.
    pub ip: Option<String>,
}

/// `/nodes/{node}/status`: the detail behind a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeStatus {
    /// Seconds since boot.
    pub uptime: Option<u64>,
    /// CPU use, 0..1.
    pub cpu: Option<f64>,
    /// Load averages over 1, 5 and 15 minutes.
    pub loadavg: Option<[f64; 3]>,
    /// Memory total, bytes.
    pub memory_total: Option<u64>,
    /// Memory used, bytes.
    pub memory_used: Option<u64>,
    /// Swap total, bytes.
    pub swap_total: Option<u64>,
    /// Swap used, bytes.
    pub swap_used: Option<u64>,
    /// Root filesystem total, bytes.
    pub rootfs_total: Option<u64>,
    /// Root filesystem used, bytes.
    pub rootfs_used: Option<u64>,
    /// CPU model.
    pub cpu_model: Option<String>,
    /// `pve-manager/9.1.2/...`.
    pub pveversion: Option<String>,
    /// Kernel version line.
    pub kversion: Option<String>,
}

/// A power action on a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestAction {
    /// `status/start`.
    Start,
    /// `status/shutdown`: ACPI or agent shutdown, may take a while.
    Shutdown,
    /// `status/stop`: hard power off.
    Stop,
    /// `status/reboot`.
    Reboot,
}

impl GuestAction {
    /// Every action.
    pub const ALL: [Self; 4] = [Self::Start, Self::Shutdown, Self::Stop, Self::Reboot];

    /// The API path segment: `start`, `shutdown`, `stop`, `reboot`.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Shutdown => "shutdown",
            Self::Stop => "stop",
            Self::Reboot => "reboot",
        }
    }

    /// Parses the API / MQTT name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.api_name() == name)
    }
}

impl fmt::Display for GuestAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.api_name())
    }
}

/// How a Proxmox task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum TaskResult {
    /// `exitstatus: OK`.
    Ok,
    /// `exitstatus: WARNINGS: n`: done, with warnings.
    Warnings {
        /// How many.
        count: u32,
    },
    /// Any other exit status: the task's error message.
    Failed {
        /// Proxmox's text, e.g. `VM is locked (backup)`.
        message: String,
    },
    /// Still running when Jarvis stopped waiting.
    TimedOut,
}

impl TaskResult {
    /// Whether the action took effect.
    pub fn succeeded(&self) -> bool {
        matches!(self, Self::Ok | Self::Warnings { .. })
    }
}

/// A finished (or abandoned) task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskOutcome {
    /// The task's UPID.
    pub upid: String,
    /// The node the task ran on (from the UPID).
    pub node: String,
    /// How it ended.
    #[serde(flatten)]
    pub result: TaskResult,
    /// From submission to the end (or to giving up).
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
