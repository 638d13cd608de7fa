//! The API's JSON as it comes (§4.4 of the integration notes), and its conversion to the model.
//!
//! Proxmox is loosely typed: numbers sometimes arrive as strings, booleans as 0/1, and fields
//! are missing when the token lacks a privilege or a node is offline. Every field here is
//! optional and read leniently; a value that makes no sense becomes `None` instead of failing
//! the whole snapshot. Unknown resource types (`pool`, `sdn`, ...) are skipped.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::model::{
    ClusterMember, ClusterStatus, Guest, GuestKind, GuestState, Inventory, Node, NodeState,
    NodeStatus, Storage, TaskResult,
};

/// `{"data": ...}`, the envelope of every answer.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<T> {
    pub(crate) data: T,
}

/// One entry of `/cluster/resources`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Resource {
    #[serde(rename = "type")]
    kind: String,
    #[serde(deserialize_with = "string")]
    id: Option<String>,
    #[serde(deserialize_with = "string")]
    node: Option<String>,
    #[serde(deserialize_with = "string")]
    status: Option<String>,
    #[serde(deserialize_with = "string")]
    name: Option<String>,
    #[serde(deserialize_with = "number")]
    vmid: Option<u64>,
    #[serde(deserialize_with = "flag")]
    template: Option<bool>,
    #[serde(deserialize_with = "float")]
    cpu: Option<f64>,
    #[serde(deserialize_with = "number")]
    maxcpu: Option<u64>,
    #[serde(deserialize_with = "number")]
    mem: Option<u64>,
    #[serde(deserialize_with = "number")]
    maxmem: Option<u64>,
    #[serde(deserialize_with = "number")]
    disk: Option<u64>,
    #[serde(deserialize_with = "number")]
    maxdisk: Option<u64>,
    #[serde(deserialize_with = "number")]
    uptime: Option<u64>,
    #[serde(deserialize_with = "number")]
    netin: Option<u64>,
    #[serde(deserialize_with = "number")]
    netout: Option<u64>,
    #[serde(deserialize_with = "number")]
    diskread: Option<u64>,
    #[serde(deserialize_with = "number")]
    diskwrite: Option<u64>,
    #[serde(deserialize_with = "string")]
    tags: Option<String>,
    #[serde(deserialize_with = "string")]
    lock: Option<String>,
    #[serde(deserialize_with = "string")]
    pool: Option<String>,
    #[serde(deserialize_with = "string")]
    storage: Option<String>,
    #[serde(deserialize_with = "string")]
    plugintype: Option<String>,
    #[serde(deserialize_with = "flag")]
    shared: Option<bool>,
    #[serde(deserialize_with = "string")]
    content: Option<String>,
}

/// Parses the `data` of `/cluster/resources`.
pub(crate) fn inventory(entries: Vec<Value>) -> Inventory {
    let mut inventory = Inventory::default();
    for entry in entries {
        // One odd entry must not hide the rest of the cluster.
        let Ok(resource) = serde_json::from_value::<Resource>(entry) else {
            tracing::debug!("skipping a /cluster/resources entry that is not an object");
            continue;
        };
        match resource.kind.as_str() {
            "node" => inventory.nodes.extend(node(resource)),
            "qemu" => inventory.guests.extend(guest(resource, GuestKind::Qemu)),
            "lxc" => inventory.guests.extend(guest(resource, GuestKind::Lxc)),
            "storage" => inventory.storages.extend(storage(resource)),
            _ => {}
        }
    }
    inventory.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    inventory.guests.sort_by_key(|g| g.vmid);
    inventory
        .storages
        .sort_by(|a, b| (&a.node, &a.storage).cmp(&(&b.node, &b.storage)));
    inventory
}

fn node(r: Resource) -> Option<Node> {
    let name = r.node.or_else(|| {
        r.id.as_deref()
            .and_then(|id| id.strip_prefix("node/"))
            .map(str::to_owned)
    })?;
    Some(Node {
        name,
        status: match r.status.as_deref() {
            Some("online") => NodeState::Online,
            Some("offline") => NodeState::Offline,
            _ => NodeState::Unknown,
        },
        cpu: r.cpu,
        maxcpu: r.maxcpu.and_then(|n| u32::try_from(n).ok()),
        mem: r.mem,
        maxmem: r.maxmem,
        disk: r.disk,
        maxdisk: r.maxdisk,
        uptime: r.uptime,
    })
}

fn guest(r: Resource, kind: GuestKind) -> Option<Guest> {
    let vmid = r
        .vmid
        .or_else(|| {
            r.id.as_deref()
                .and_then(|id| id.split_once('/'))
                .and_then(|(_, n)| n.parse().ok())
        })
        .and_then(|n| u32::try_from(n).ok())?;
    // A guest without a node cannot be addressed; Proxmox always sends it, so this is garbage.
    let node = r.node.filter(|n| !n.is_empty())?;
    let name = r
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| match kind {
            GuestKind::Qemu => format!("vm{vmid}"),
            GuestKind::Lxc => format!("ct{vmid}"),
        });
    Some(Guest {
        vmid,
        kind,
        node,
        name,
        status: guest_state(r.status.as_deref()),
        template: r.template.unwrap_or(false),
        cpu: r.cpu,
        maxcpu: r.maxcpu.and_then(|n| u32::try_from(n).ok()),
        mem: r.mem,
        maxmem: r.maxmem,
        disk: r.disk,
        maxdisk: r.maxdisk,
        netin: r.netin,
        netout: r.netout,
        diskread: r.diskread,
        diskwrite: r.diskwrite,
        uptime: r.uptime,
        tags: split_list(r.tags.as_deref(), &[';', ',', ' ']),
        lock: r.lock.filter(|l| !l.is_empty()),
        pool: r.pool.filter(|p| !p.is_empty()),
    })
}

fn guest_state(status: Option<&str>) -> GuestState {
    match status {
        Some("running") => GuestState::Running,
        Some("stopped") => GuestState::Stopped,
        Some("paused" | "suspended" | "prelaunch") => GuestState::Paused,
        _ => GuestState::Unknown,
    }
}

fn storage(r: Resource) -> Option<Storage> {
    let (node_from_id, storage_from_id) =
        r.id.as_deref()
            .and_then(|id| id.strip_prefix("storage/"))
            .and_then(|rest| rest.split_once('/'))
            .map_or((None, None), |(n, s)| {
                (Some(n.to_owned()), Some(s.to_owned()))
            });
    Some(Storage {
        storage: r.storage.or(storage_from_id)?,
        node: r.node.or(node_from_id)?,
        plugintype: r.plugintype,
        available: r.status.as_deref() == Some("available"),
        shared: r.shared.unwrap_or(false),
        content: split_list(r.content.as_deref(), &[',']),
        used: r.disk,
        total: r.maxdisk,
    })
}

fn split_list(text: Option<&str>, separators: &[char]) -> Vec<String> {
    text.unwrap_or_default()
        .split(separators)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One entry of `/cluster/status`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ClusterEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(deserialize_with = "string")]
    name: Option<String>,
    #[serde(deserialize_with = "flag")]
    quorate: Option<bool>,
    #[serde(deserialize_with = "flag")]
    online: Option<bool>,
    #[serde(deserialize_with = "string")]
    ip: Option<String>,
}

/// Parses the `data` of `/cluster/status`.
pub(crate) fn cluster_status(entries: Vec<Value>) -> ClusterStatus {
    let mut status = ClusterStatus::default();
    for entry in entries {
        let Ok(entry) = serde_json::from_value::<ClusterEntry>(entry) else {
            continue;
        };
        match entry.kind.as_str() {
            "cluster" => {
                status.name = entry.name;
                status.quorate = entry.quorate;
            }
            "node" => {
                if let Some(name) = entry.name {
                    status.members.push(ClusterMember {
                        name,
                        online: entry.online.unwrap_or(false),
                        ip: entry.ip,
                    });
                }
            }
            _ => {}
        }
    }
    status.members.sort_by(|a, b| a.name.cmp(&b.name));
    status
}

/// `total`/`used` pairs of `/nodes/{node}/status`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Usage {
    #[serde(deserialize_with = "number")]
    total: Option<u64>,
    #[serde(deserialize_with = "number")]
    used: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CpuInfo {
    #[serde(deserialize_with = "string")]
    model: Option<String>,
}

/// `/nodes/{node}/status`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawNodeStatus {
    #[serde(deserialize_with = "number")]
    uptime: Option<u64>,
    #[serde(deserialize_with = "float")]
    cpu: Option<f64>,
    loadavg: Option<Vec<Value>>,
    #[serde(deserialize_with = "lenient_struct")]
    memory: Usage,
    #[serde(deserialize_with = "lenient_struct")]
    swap: Usage,
    #[serde(deserialize_with = "lenient_struct")]
    rootfs: Usage,
    #[serde(deserialize_with = "lenient_struct")]
    cpuinfo: CpuInfo,
    #[serde(deserialize_with = "string")]
    pveversion: Option<String>,
    #[serde(deserialize_with = "string")]
    kversion: Option<String>,
}

impl From<RawNodeStatus> for NodeStatus {
    fn from(raw: RawNodeStatus) -> Self {
        let loadavg = raw.loadavg.and_then(|values| {
            let parsed: Vec<f64> = values.iter().filter_map(to_f64).collect();
            <[f64; 3]>::try_from(parsed).ok()
        });
        Self {
            uptime: raw.uptime,
            cpu: raw.cpu,
            loadavg,
            memory_total: raw.memory.total,
            memory_used: raw.memory.used,
            swap_total: raw.swap.total,
            swap_used: raw.swap.used,
            rootfs_total: raw.rootfs.total,
            rootfs_used: raw.rootfs.used,
            cpu_model: raw.cpuinfo.model,
            pveversion: raw.pveversion,
            kversion: raw.kversion,
        }
    }
}

/// `/nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct TaskStatus {
    #[serde(deserialize_with = "string")]
    status: Option<String>,
    #[serde(deserialize_with = "string")]
    exitstatus: Option<String>,
}

impl TaskStatus {
    /// How the task ended, or `None` while it runs.
    pub(crate) fn result(&self) -> Option<TaskResult> {
        if self.status.as_deref() != Some("stopped") {
            return None;
        }
        Some(exit_status(self.exitstatus.as_deref()))
    }
}

/// pve-common `status_is_error`: `OK` and `WARNINGS: n` succeed, any other text is the error.
pub(crate) fn exit_status(exit: Option<&str>) -> TaskResult {
    let Some(exit) = exit.map(str::trim) else {
        return TaskResult::Failed {
            message: "the task stopped without an exit status".into(),
        };
    };
    if exit == "OK" {
        return TaskResult::Ok;
    }
    if let Some(count) = exit.strip_prefix("WARNINGS:") {
        return TaskResult::Warnings {
            count: count.trim().parse().unwrap_or(0),
        };
    }
    TaskResult::Failed {
        message: if exit.is_empty() {
            "the task failed without a message".into()
        } else {
            exit.to_owned()
        },
    }
}

/// The node in a UPID (`UPID:<node>:<pid>:...`), where its task must be polled. `None` when it
/// is not a UPID or the node name could not be one (it goes into a URL path).
pub(crate) fn upid_node(upid: &str) -> Option<&str> {
    let mut parts = upid.split(':');
    if parts.next() != Some("UPID") {
        return None;
    }
    let node = parts.next()?;
    is_safe_name(node).then_some(node)
}

/// A node or storage name safe to put in a path: letters, digits, `-`, `_`, `.`.
pub(crate) fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && name != ".."
}

fn to_f64(value: &Value) -> Option<f64> {
    let n = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    n.is_finite().then_some(n)
}

pub(crate) fn to_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok().or_else(|| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    })
}

pub(super) fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.as_ref().and_then(to_u64))
}

fn float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.as_ref().and_then(to_f64))
}

pub(super) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => Some(b),
        Some(Value::Number(n)) => n.as_f64().map(|f| f != 0.0),
        Some(Value::String(s)) => match s.trim() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" | "" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

/// A nested object that falls back to its default when it is missing, null or malformed.
fn lenient_struct<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    Ok(Option::<Value>::deserialize(d)?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// Reads an answer as the client does (the envelope, then every reader here that takes its
/// `data`), for the fuzz targets (`fuzz/`); the `data`, for the other modules' readers.
#[doc(hidden)]
pub(crate) fn fuzz_answer(body: &[u8]) -> Option<Value> {
    if let Ok(raw) = serde_json::from_slice::<Envelope<RawNodeStatus>>(body) {
        let _ = NodeStatus::from(raw.data);
    }
    if let Ok(task) = serde_json::from_slice::<Envelope<TaskStatus>>(body) {
        let _ = task.data.result();
    }
    let data = serde_json::from_slice::<Envelope<Value>>(body).ok()?.data;
    if let Value::Array(entries) = &data {
        let _ = inventory(entries.clone());
        let _ = cluster_status(entries.clone());
    }
    if let Value::String(text) = &data {
        let _ = (upid_node(text), is_safe_name(text), exit_status(Some(text)));
    }
    let _ = (to_u64(&data), to_f64(&data));
    Some(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /cluster/resources` as §4.4 documents it, plus a pool and an sdn entry.
    const RESOURCES: &str = r#"{"data": [
 {"id": "node/pve1", "type": "node", "node": "pve1", "status": "online", "level": "",
  "uptime": 864213, "cpu": 0.0412, "maxcpu": 16, "mem": 21474836480, "maxmem": 67108864000,
  "disk": 12884901888, "maxdisk": 100861726720, "cgroup-mode": 2},
 {"id": "qemu/101", "type": "qemu", "vmid": 101, "node": "pve1", "name": "haos",
  "status": "running", "template": 0, "uptime": 86400, "cpu": 0.023, "maxcpu": 4,
  "mem": 3221225472, "maxmem": 8589934592, "memhost": 3355443200, "disk": 0, "maxdisk": 34359738368,
  "netin": 123456789, "netout": 98765432, "diskread": 2147483648, "diskwrite": 1073741824,
  "tags": "ha;prod", "hastate": "started", "pool": "home"},
 {"id": "lxc/200", "type": "lxc", "vmid": 200, "node": "pve2", "name": "frigate",
  "status": "stopped", "template": 0, "uptime": 0, "cpu": 0, "maxcpu": 2, "mem": 0,
  "maxmem": 4294967296, "disk": 0, "maxdisk": 21474836480, "netin": 0, "netout": 0,
  "diskread": 0, "diskwrite": 0},
 {"id": "storage/pve1/local-lvm", "type": "storage", "storage": "local-lvm", "node": "pve1",
  "plugintype": "lvmthin", "status": "available", "shared": 0, "content": "images,rootdir",
  "disk": 53687091200, "maxdisk": 214748364800},
 {"id": "pool/home", "type": "pool", "pool": "home"},
 {"id": "sdn/pve1/localnetwork", "type": "sdn", "sdn": "localnetwork", "node": "pve1", "status": "ok"}
]}"#;

    fn parse_resources(text: &str) -> Inventory {
        let envelope: Envelope<Vec<Value>> = serde_json::from_str(text).unwrap();
        inventory(envelope.data)
    }

    #[test]
    fn documented_cluster_resources_parse() {
        let inv = parse_resources(RESOURCES);
        assert_eq!(inv.nodes.len(), 1);
        let node = &inv.nodes[0];
        assert_eq!(node.name, "pve1");
        assert_eq!(node.status, NodeState::Online);
        assert_eq!(node.maxcpu, Some(16));
        assert_eq!(node.mem, Some(21_474_836_480));
        assert_eq!(node.uptime, Some(864_213));

        assert_eq!(inv.guests.len(), 2);
        let haos = inv.guest(101).unwrap();
        assert_eq!(haos.kind, GuestKind::Qemu);
        assert_eq!(haos.name, "haos");
        assert_eq!(haos.node, "pve1");
        assert_eq!(haos.status, GuestState::Running);
        assert!(!haos.template);
        assert_eq!(haos.tags, ["ha", "prod"]);
        assert_eq!(haos.pool.as_deref(), Some("home"));
        assert_eq!(haos.cpu, Some(0.023));
        assert_eq!(haos.netin, Some(123_456_789));
        assert_eq!(haos.lock, None);
        let frigate = inv.guest(200).unwrap();
        assert_eq!(frigate.kind, GuestKind::Lxc);
        assert_eq!(frigate.status, GuestState::Stopped);
        assert_eq!(frigate.node, "pve2");
        assert!(frigate.tags.is_empty());

        assert_eq!(inv.storages.len(), 1);
        let storage = &inv.storages[0];
        assert_eq!(storage.storage, "local-lvm");
        assert_eq!(storage.plugintype.as_deref(), Some("lvmthin"));
        assert!(storage.available);
        assert!(!storage.shared);
        assert_eq!(storage.content, ["images", "rootdir"]);
        assert_eq!(storage.used, Some(53_687_091_200));
        assert_eq!(storage.total, Some(214_748_364_800));
    }

    #[test]
    fn loose_types_and_missing_fields_are_tolerated() {
        let inv = parse_resources(
            r#"{"data": [
            {"id": "qemu/105", "type": "qemu", "vmid": "105", "node": "pve", "status": "running",
             "template": "1", "cpu": "0.5", "maxcpu": 2.0, "mem": "1024", "tags": "a, b;c",
             "lock": "backup"},
            {"id": "lxc/106", "type": "lxc", "node": "pve", "status": "weird"},
            {"id": "qemu/107", "type": "qemu", "vmid": 107, "status": "running"},
            {"id": "node/pve2", "type": "node", "node": "pve2", "status": "offline"},
            {"id": "storage/pve/nas", "type": "storage", "status": "unknown", "shared": true},
            "not an object",
            {"type": "openvz"}
            ]}"#,
        );
        let vm = inv.guest(105).unwrap();
        assert_eq!(vm.name, "vm105");
        assert!(vm.template);
        assert_eq!(vm.cpu, Some(0.5));
        assert_eq!(vm.maxcpu, Some(2));
        assert_eq!(vm.mem, Some(1024));
        assert_eq!(vm.tags, ["a", "b", "c"]);
        assert_eq!(vm.lock.as_deref(), Some("backup"));
        let ct = inv.guest(106).unwrap();
        assert_eq!(ct.name, "ct106");
        assert_eq!(ct.status, GuestState::Unknown);
        assert_eq!(ct.maxmem, None);
        assert!(
            inv.guest(107).is_none(),
            "a guest without a node is dropped"
        );
        let node = inv.node("pve2").unwrap();
        assert_eq!(node.status, NodeState::Offline);
        assert_eq!(node.cpu, None);
        let nas = &inv.storages[0];
        assert_eq!((nas.node.as_str(), nas.storage.as_str()), ("pve", "nas"));
        assert!(nas.shared);
        assert!(!nas.available);
    }

    #[test]
    fn documented_node_status_parses() {
        let text = r##"{"data": {"uptime": 864213, "idle": 0, "cpu": 0.0412, "wait": 0.0011,
 "loadavg": ["0.42", "0.51", "0.47"],
 "memory": {"total": 67108864000, "used": 21474836480, "free": 30000000000, "available": 44000000000},
 "swap": {"total": 8589934592, "used": 0, "free": 8589934592}, "ksm": {"shared": 0},
 "rootfs": {"total": 100861726720, "used": 12884901888, "avail": 82800000000, "free": 87976824832},
 "cpuinfo": {"model": "Intel(R) Core(TM) i7-...", "cpus": 16, "cores": 8, "sockets": 1},
 "kversion": "Linux 6.8.12-4-pve #1 SMP PREEMPT_DYNAMIC ...",
 "current-kernel": {"sysname": "Linux", "release": "6.8.12-4-pve", "version": "#1 SMP ...", "machine": "x86_64"},
 "boot-info": {"mode": "efi", "secureboot": 0},
 "pveversion": "pve-manager/9.1.2/0123abcd"}}"##;
        let envelope: Envelope<RawNodeStatus> = serde_json::from_str(text).unwrap();
        let status = NodeStatus::from(envelope.data);
        assert_eq!(status.uptime, Some(864_213));
        assert_eq!(status.loadavg, Some([0.42, 0.51, 0.47]));
        assert_eq!(status.memory_total, Some(67_108_864_000));
        assert_eq!(status.memory_used, Some(21_474_836_480));
        assert_eq!(status.swap_used, Some(0));
        assert_eq!(status.rootfs_total, Some(100_861_726_720));
        assert_eq!(
            status.cpu_model.as_deref(),
            Some("Intel(R) Core(TM) i7-...")
        );
        assert_eq!(
            status.pveversion.as_deref(),
            Some("pve-manager/9.1.2/0123abcd")
        );

        let sparse: Envelope<RawNodeStatus> =
            serde_json::from_str(r#"{"data": {"memory": null, "loadavg": [1, 2], "swap": 5}}"#)
                .unwrap();
        let status = NodeStatus::from(sparse.data);
        assert_eq!(status.loadavg, None);
        assert_eq!(status.memory_total, None);
    }

    #[test]
    fn documented_cluster_status_parses() {
        let text = r#"{"data": [{"type":"cluster","id":"cluster","name":"homelab","nodes":3,"quorate":1,"version":7},
{"type":"node","id":"node/pve1","name":"pve1","nodeid":1,"ip":"192.168.1.11","online":1,"local":1,"level":""},
{"type":"node","id":"node/pve2","name":"pve2","nodeid":2,"ip":"192.168.1.12","online":0,"local":0,"level":""}]}"#;
        let envelope: Envelope<Vec<Value>> = serde_json::from_str(text).unwrap();
        let status = cluster_status(envelope.data);
        assert_eq!(status.name.as_deref(), Some("homelab"));
        assert_eq!(status.quorate, Some(true));
        assert_eq!(status.members.len(), 2);
        assert_eq!(status.members[0].ip.as_deref(), Some("192.168.1.11"));
        assert!(status.members[0].online);
        assert!(!status.members[1].online);

        // A standalone node: no cluster entry.
        let status = cluster_status(vec![serde_json::json!(
            {"type": "node", "name": "pve", "online": 1}
        )]);
        assert_eq!(status.name, None);
        assert_eq!(status.quorate, None);
    }

    #[test]
    fn task_exit_statuses_follow_pve_common() {
        let task = |text: &str| -> TaskStatus { serde_json::from_str(text).unwrap() };
        assert_eq!(task(r#"{"status": "running"}"#).result(), None);
        assert_eq!(
            task(r#"{"status": "stopped", "exitstatus": "OK"}"#).result(),
            Some(TaskResult::Ok)
        );
        assert_eq!(
            task(r#"{"status": "stopped", "exitstatus": "WARNINGS: 2"}"#).result(),
            Some(TaskResult::Warnings { count: 2 })
        );
        assert_eq!(
            task(r#"{"status": "stopped", "exitstatus": "VM is locked (backup)"}"#).result(),
            Some(TaskResult::Failed {
                message: "VM is locked (backup)".into()
            })
        );
        assert!(matches!(
            task(r#"{"status": "stopped"}"#).result(),
            Some(TaskResult::Failed { .. })
        ));
    }

    #[test]
    fn upid_names_its_node() {
        assert_eq!(
            upid_node("UPID:pve1:000A1B2C:03F2E1D0:66F0A1B2:qmstart:101:jarvis@pve!ha:"),
            Some("pve1")
        );
        assert_eq!(upid_node("UPID:../x:1"), None);
        assert_eq!(upid_node("pve1:0001"), None);
        assert_eq!(upid_node("UPID::1"), None);
    }
}
