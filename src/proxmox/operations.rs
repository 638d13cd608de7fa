//! Node power, snapshots and migration: the Proxmox calls behind the brain's actions beyond a
//! guest's power (§4.3 of the integration notes and the PVE API viewer), and what they answer.
//!
//! - `POST /nodes/{node}/status` `command=reboot|shutdown` answers `null`: the node goes down
//!   with pveproxy, so there is no task to follow.
//! - `POST /nodes/{node}/startall|stopall` (`vms=101,102`) answers a UPID.
//! - `GET /nodes/{node}/{qemu|lxc}/{vmid}/snapshot` lists the snapshots plus a `current`
//!   pseudo-entry ("You are here!"), which is not a snapshot and is left out here.
//! - `POST .../snapshot` (`snapname`, `description`) and `POST .../snapshot/{name}/rollback`
//!   answer UPIDs. A snapshot name is a `pve-configid` of at most 40 characters:
//!   `^[a-z][a-z0-9_-]+$`, case-insensitive; `current` is reserved.
//! - `POST /nodes/{node}/qemu/{vmid}/migrate` (`target`, `online=1` for a running VM) and
//!   `.../lxc/{vmid}/migrate` (`target`, `restart=1` for a running container) answer UPIDs.
//!
//! Every write is sent once, like a guest action, and invalidates the cached inventory.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::Proxmox;
use super::error::ProxmoxError;
use super::model::{Guest, GuestKind, GuestRef, GuestState};
use super::wire;

/// Longest snapshot name Proxmox accepts (`pve-snapshot-name`, `maxLength => 40`).
pub const MAX_SNAPSHOT_NAME: usize = 40;

/// A power action on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeAction {
    /// `POST /nodes/{node}/status` `command=reboot`.
    Reboot,
    /// `POST /nodes/{node}/status` `command=shutdown`.
    Shutdown,
    /// `POST /nodes/{node}/startall`: start the guests marked "start at boot".
    StartAll,
    /// `POST /nodes/{node}/stopall`: stop the guests (those given in `vms`).
    StopAll,
}

impl NodeAction {
    /// Every node action.
    pub const ALL: [Self; 4] = [Self::Reboot, Self::Shutdown, Self::StartAll, Self::StopAll];

    /// The MQTT payload and log name: `reboot`, `shutdown`, `start_all`, `stop_all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reboot => "reboot",
            Self::Shutdown => "shutdown",
            Self::StartAll => "start_all",
            Self::StopAll => "stop_all",
        }
    }

    /// Parses [`NodeAction::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for NodeAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One snapshot of a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Its name (`snapname`).
    pub name: String,
    /// The description given when it was taken (may be empty).
    pub description: String,
    /// When it was taken, Unix seconds (`snaptime`).
    pub time: Option<u64>,
    /// Whether the RAM was saved with it (QEMU).
    pub vmstate: bool,
    /// The snapshot before it.
    pub parent: Option<String>,
}

/// How a guest moves to another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationMode {
    /// Stopped: its configuration and disks move; nothing runs meanwhile.
    Offline,
    /// A running VM moves live (`online=1`): no downtime beyond a pause.
    Online,
    /// A running container is shut down, moved and started again (`restart=1`).
    Restart,
}

impl MigrationMode {
    /// The mode for a guest as it is now: live for a running VM, restart for a running
    /// container (Proxmox has no live migration for containers), offline otherwise.
    pub fn for_guest(guest: &Guest) -> Self {
        match (guest.kind, guest.status) {
            (GuestKind::Qemu, GuestState::Running | GuestState::Paused) => Self::Online,
            (GuestKind::Lxc, GuestState::Running | GuestState::Paused) => Self::Restart,
            _ => Self::Offline,
        }
    }
}

/// Why a snapshot name cannot be sent to Proxmox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotNameError {
    /// Nothing given.
    #[error("a snapshot name can't be empty")]
    Empty,
    /// Longer than [`MAX_SNAPSHOT_NAME`].
    #[error("a snapshot name can be at most {MAX_SNAPSHOT_NAME} characters, and this one has {0}")]
    TooLong(usize),
    /// One character only.
    #[error("a snapshot name needs at least two characters")]
    TooShort,
    /// The first character is not a letter.
    #[error("a snapshot name must start with a letter")]
    BadStart,
    /// A character other than letters, digits, `_` and `-`.
    #[error("a snapshot name can only hold letters, digits, '_' and '-', not {0:?}")]
    BadChar(char),
    /// `current` is the pseudo-entry of the present state.
    #[error("'current' is reserved by Proxmox")]
    Reserved,
}

/// Checks a snapshot name the way Proxmox does (`pve-configid`, at most 40 characters).
///
/// # Errors
/// See [`SnapshotNameError`].
pub fn check_snapshot_name(name: &str) -> Result<(), SnapshotNameError> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(SnapshotNameError::Empty);
    };
    let count = name.chars().count();
    if count > MAX_SNAPSHOT_NAME {
        return Err(SnapshotNameError::TooLong(count));
    }
    let valid = |c: &char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-');
    if let Some(bad) = std::iter::once(first).chain(chars).find(|c| !valid(c)) {
        return Err(SnapshotNameError::BadChar(bad));
    }
    if !first.is_ascii_alphabetic() {
        return Err(SnapshotNameError::BadStart);
    }
    if count < 2 {
        return Err(SnapshotNameError::TooShort);
    }
    if name.eq_ignore_ascii_case("current") {
        return Err(SnapshotNameError::Reserved);
    }
    Ok(())
}

/// One entry of `GET .../snapshot`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSnapshot {
    name: Option<String>,
    description: Option<String>,
    snaptime: Option<Value>,
    vmstate: Option<Value>,
    parent: Option<String>,
}

/// The snapshots in a `GET .../snapshot` answer, oldest first, without `current`.
pub(crate) fn snapshots(entries: Vec<Value>) -> Vec<Snapshot> {
    let mut list: Vec<Snapshot> = entries
        .into_iter()
        .filter_map(|entry| serde_json::from_value::<RawSnapshot>(entry).ok())
        .filter_map(|raw| {
            let name = raw.name.filter(|n| !n.is_empty() && n != "current")?;
            Some(Snapshot {
                name,
                description: raw.description.unwrap_or_default().trim().to_owned(),
                time: raw.snaptime.as_ref().and_then(wire::to_u64),
                vmstate: raw
                    .vmstate
                    .as_ref()
                    .and_then(wire::to_u64)
                    .is_some_and(|v| v != 0),
                parent: raw.parent.filter(|p| !p.is_empty()),
            })
        })
        .collect();
    list.sort_by_key(|s| s.time.unwrap_or(0));
    list
}

/// The addresses in a QEMU guest agent `network-get-interfaces` answer (`{"result": [...]}`)
/// or an LXC `interfaces` answer (`[{"inet": "10.0.0.5/24", ...}]`).
pub(crate) fn addresses(data: &Value) -> Vec<IpAddr> {
    let interfaces = data
        .get("result")
        .and_then(Value::as_array)
        .or_else(|| data.as_array());
    let mut found = Vec::new();
    for interface in interfaces.into_iter().flatten() {
        for ip in interface
            .get("ip-addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            found.extend(
                ip.get("ip-address")
                    .and_then(Value::as_str)
                    .and_then(|a| a.parse::<IpAddr>().ok()),
            );
        }
        for key in ["inet", "inet6"] {
            found.extend(
                interface
                    .get(key)
                    .and_then(Value::as_str)
                    .and_then(|a| a.split('/').next())
                    .and_then(|a| a.parse::<IpAddr>().ok()),
            );
        }
    }
    found.retain(|ip| !ip.is_loopback());
    found
}

fn guest_path(guest: &GuestRef) -> Result<String, ProxmoxError> {
    check_node(&guest.node)?;
    Ok(format!(
        "/nodes/{}/{}/{}",
        guest.node,
        guest.kind.api_name(),
        guest.vmid
    ))
}

fn check_node(node: &str) -> Result<(), ProxmoxError> {
    if wire::is_safe_name(node) {
        Ok(())
    } else {
        Err(ProxmoxError::Server {
            status: 400,
            message: format!("{node:?} is not a valid node name"),
            path: "/nodes".into(),
        })
    }
}

fn upid(value: Value, path: &str) -> Result<String, ProxmoxError> {
    match value {
        Value::String(upid) if !upid.is_empty() => Ok(upid),
        other => Err(ProxmoxError::Decode {
            path: path.to_owned(),
            message: format!("expected a task id, got {other}"),
        }),
    }
}

impl Proxmox {
    /// A guest's snapshots, oldest first (`current` left out).
    ///
    /// # Errors
    /// See [`ProxmoxError`].
    pub async fn snapshots(&self, guest: &GuestRef) -> Result<Vec<Snapshot>, ProxmoxError> {
        let path = format!("{}/snapshot", guest_path(guest)?);
        let entries: Vec<Value> = self.read(&path).await?;
        Ok(snapshots(entries))
    }

    /// Takes a snapshot; returns the task's UPID. The name is checked first: a bad one is an
    /// error and nothing is sent.
    ///
    /// # Errors
    /// A bad name ([`ProxmoxError::Server`] 400), or see [`ProxmoxError`].
    pub async fn snapshot(
        &self,
        guest: &GuestRef,
        name: &str,
        description: &str,
    ) -> Result<String, ProxmoxError> {
        let path = format!("{}/snapshot", guest_path(guest)?);
        check_snapshot_name(name).map_err(|err| ProxmoxError::Server {
            status: 400,
            message: err.to_string(),
            path: path.clone(),
        })?;
        let mut form = vec![("snapname", name.to_owned())];
        if !description.is_empty() {
            form.push(("description", description.to_owned()));
        }
        let result = self.post_form::<Value>(&path, &form).await;
        self.invalidate();
        upid(result?, &path)
    }

    /// Rolls a guest back to a snapshot; returns the task's UPID.
    ///
    /// # Errors
    /// A bad name ([`ProxmoxError::Server`] 400), or see [`ProxmoxError`].
    pub async fn rollback(&self, guest: &GuestRef, name: &str) -> Result<String, ProxmoxError> {
        let base = guest_path(guest)?;
        check_snapshot_name(name).map_err(|err| ProxmoxError::Server {
            status: 400,
            message: err.to_string(),
            path: format!("{base}/snapshot"),
        })?;
        let path = format!("{base}/snapshot/{name}/rollback");
        let result = self.post_form::<Value>(&path, &[]).await;
        self.invalidate();
        upid(result?, &path)
    }

    /// Moves a guest to `target`; returns the task's UPID.
    ///
    /// # Errors
    /// See [`ProxmoxError`]. Proxmox refuses, for instance, a VM with local devices.
    pub async fn migrate(
        &self,
        guest: &GuestRef,
        target: &str,
        mode: MigrationMode,
    ) -> Result<String, ProxmoxError> {
        check_node(target)?;
        let path = format!("{}/migrate", guest_path(guest)?);
        let mut form = vec![("target", target.to_owned())];
        match mode {
            MigrationMode::Online => form.push(("online", "1".into())),
            MigrationMode::Restart => form.push(("restart", "1".into())),
            MigrationMode::Offline => {}
        }
        let result = self.post_form::<Value>(&path, &form).await;
        self.invalidate();
        upid(result?, &path)
    }

    /// Reboots or shuts down a node, or starts or stops its guests (`vms`: only these; empty:
    /// all). Returns the UPID of start-all and stop-all; a reboot or shutdown has no task.
    ///
    /// # Errors
    /// See [`ProxmoxError`]; an offline node answers 595.
    pub async fn node_action(
        &self,
        node: &str,
        action: NodeAction,
        vms: &[u32],
    ) -> Result<Option<String>, ProxmoxError> {
        check_node(node)?;
        let vms = vms.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let (path, form) = match action {
            NodeAction::Reboot => (
                format!("/nodes/{node}/status"),
                vec![("command", "reboot".to_owned())],
            ),
            NodeAction::Shutdown => (
                format!("/nodes/{node}/status"),
                vec![("command", "shutdown".to_owned())],
            ),
            // `force`: also the guests not marked "start at boot".
            NodeAction::StartAll => (
                format!("/nodes/{node}/startall"),
                vec![("vms", vms), ("force", "1".to_owned())],
            ),
            NodeAction::StopAll => (format!("/nodes/{node}/stopall"), vec![("vms", vms)]),
        };
        let form: Vec<(&'static str, String)> =
            form.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let result = self.post_form::<Value>(&path, &form).await;
        self.invalidate();
        match (action, result?) {
            (NodeAction::Reboot | NodeAction::Shutdown, _) => Ok(None),
            (_, value) => upid(value, &path).map(Some),
        }
    }

    /// A running guest's IP addresses, from the QEMU guest agent or the container's
    /// interfaces (empty when the agent is not running).
    ///
    /// # Errors
    /// See [`ProxmoxError`].
    pub async fn guest_addresses(&self, guest: &GuestRef) -> Result<Vec<IpAddr>, ProxmoxError> {
        let path = match guest.kind {
            GuestKind::Qemu => format!("{}/agent/network-get-interfaces", guest_path(guest)?),
            GuestKind::Lxc => format!("{}/interfaces", guest_path(guest)?),
        };
        let data: Value = self.read(&path).await?;
        Ok(addresses(&data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn snapshot_names_follow_pve_configid() {
        assert_eq!(check_snapshot_name("before_the_upgrade"), Ok(()));
        assert_eq!(check_snapshot_name("jarvis-20261204_1015"), Ok(()));
        assert_eq!(check_snapshot_name(""), Err(SnapshotNameError::Empty));
        assert_eq!(check_snapshot_name("a"), Err(SnapshotNameError::TooShort));
        assert_eq!(
            check_snapshot_name("before upgrade"),
            Err(SnapshotNameError::BadChar(' '))
        );
        assert_eq!(
            check_snapshot_name("vor_dem_Übergang"),
            Err(SnapshotNameError::BadChar('Ü'))
        );
        assert_eq!(check_snapshot_name("1st"), Err(SnapshotNameError::BadStart));
        assert_eq!(
            check_snapshot_name(&"a".repeat(41)),
            Err(SnapshotNameError::TooLong(41))
        );
        assert_eq!(check_snapshot_name(&"a".repeat(40)), Ok(()));
        assert_eq!(
            check_snapshot_name("Current"),
            Err(SnapshotNameError::Reserved)
        );
    }

    #[test]
    fn the_snapshot_list_leaves_out_current() {
        let list = snapshots(vec![
            json!({"name": "current", "description": "You are here!", "parent": "b", "running": 1}),
            json!({"name": "b", "description": "before the upgrade\n", "snaptime": 1_700_000_100,
                   "vmstate": 0, "parent": "a"}),
            json!({"name": "a", "description": "", "snaptime": "1700000000", "vmstate": 1}),
        ]);
        let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(list[0].vmstate && !list[1].vmstate);
        assert_eq!(list[1].description, "before the upgrade");
        assert_eq!(list[1].parent.as_deref(), Some("a"));
    }

    #[test]
    fn addresses_from_the_agent_and_from_containers() {
        let agent = json!({"result": [
            {"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4"}]},
            {"name": "eth0", "hardware-address": "bc:24:11:00:00:01",
             "ip-addresses": [{"ip-address": "192.168.1.50", "ip-address-type": "ipv4", "prefix": 24}]}
        ]});
        assert_eq!(
            addresses(&agent),
            ["192.168.1.50".parse::<IpAddr>().unwrap()]
        );
        let lxc = json!([{"name": "eth0", "hwaddr": "bc:24:11:00:00:02", "inet": "10.0.0.7/24"}]);
        assert_eq!(addresses(&lxc), ["10.0.0.7".parse::<IpAddr>().unwrap()]);
    }
}
