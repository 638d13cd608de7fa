//! The fake Proxmox API's node power, snapshots and migration, in the shapes of the PVE API:
//!
//! - `POST /nodes/{n}/status` `command=reboot|shutdown` → `null` (no task);
//! - `POST /nodes/{n}/startall|stopall` (`vms`, `force`) → a `startall`/`stopall` task that
//!   starts or stops the listed guests;
//! - `GET|POST /nodes/{n}/{qemu|lxc}/{id}/snapshot` (the list ends with the `current`
//!   pseudo-entry; `snapname` is checked as `pve-configid`, max 40) and
//!   `POST .../snapshot/{name}/rollback` (500 for a snapshot that does not exist);
//! - `POST /nodes/{n}/{qemu|lxc}/{id}/migrate` (`target`; a running VM needs `online=1`, a
//!   running container `restart=1`) → a task after which the guest is on the target;
//! - `GET .../qemu/{id}/agent/network-get-interfaces` and `.../lxc/{id}/interfaces`.
//!
//! An offline node answers 595, as pveproxy does. Every form posted is recorded ([`forms`]).
//! A child of `fake_proxmox`, so it shares its tasks and knobs.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use super::{FakeCluster, FakeProxmox, Shared, TOKEN_ID, Task, data, error, lock};

/// A snapshot of a fake guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSnapshot {
    pub name: String,
    pub description: String,
    /// Unix seconds.
    pub snaptime: u64,
    pub vmstate: bool,
}

impl FakeSnapshot {
    /// A snapshot taken `ago` seconds before now.
    pub fn new(name: &str, description: &str, ago: u64) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            snaptime: now().saturating_sub(ago),
            vmstate: false,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct State {
    snapshots: HashMap<u32, Vec<FakeSnapshot>>,
    addresses: HashMap<u32, Vec<String>>,
    /// `(path, form)` of every POST handled here.
    forms: Vec<(String, Vec<(String, String)>)>,
}

/// What a task does to the cluster when it ends with `OK`.
#[derive(Debug)]
pub(super) enum Effect {
    Snapshot(u32, FakeSnapshot),
    Rollback {
        vmid: u32,
        stop: bool,
    },
    Migrate {
        vmid: u32,
        target: String,
    },
    Status {
        vmids: Vec<u32>,
        status: &'static str,
    },
}

pub(super) fn apply(effect: Effect, cluster: &mut FakeCluster, state: &mut State) {
    match effect {
        Effect::Snapshot(vmid, snapshot) => state.snapshots.entry(vmid).or_default().push(snapshot),
        Effect::Rollback { vmid, stop } => {
            if let Some(guest) = cluster.guest_mut(vmid) {
                if stop {
                    guest.status = "stopped".into();
                }
            }
        }
        Effect::Migrate { vmid, target } => {
            if let Some(guest) = cluster.guest_mut(vmid) {
                guest.node = target;
            }
        }
        Effect::Status { vmids, status } => {
            for vmid in vmids {
                if let Some(guest) = cluster.guest_mut(vmid) {
                    guest.status = status.into();
                }
            }
        }
    }
}

impl FakeProxmox {
    pub fn add_snapshot(&self, vmid: u32, snapshot: FakeSnapshot) {
        lock(&self.shared.actions)
            .snapshots
            .entry(vmid)
            .or_default()
            .push(snapshot);
    }

    pub fn snapshots(&self, vmid: u32) -> Vec<FakeSnapshot> {
        super::settle_tasks(&self.shared);
        lock(&self.shared.actions)
            .snapshots
            .get(&vmid)
            .cloned()
            .unwrap_or_default()
    }

    /// What the guest agent (or the container's interfaces) reports.
    pub fn set_guest_addresses(&self, vmid: u32, addresses: &[&str]) {
        lock(&self.shared.actions)
            .addresses
            .insert(vmid, addresses.iter().map(|a| (*a).to_owned()).collect());
    }

    /// The form of the last POST whose path starts with `prefix`.
    pub fn last_form(&self, prefix: &str) -> Option<HashMap<String, String>> {
        lock(&self.shared.actions)
            .forms
            .iter()
            .rev()
            .find(|(path, _)| path.starts_with(prefix))
            .map(|(_, form)| form.iter().cloned().collect())
    }

    pub fn guest_node(&self, vmid: u32) -> Option<String> {
        super::settle_tasks(&self.shared);
        self.with_cluster(|c| c.guest_mut(vmid).map(|g| g.node.clone()))
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Handles the paths above; `None` for everything else.
pub(super) fn route(shared: &Shared, method: &Method, path: &str, body: &[u8]) -> Option<Response> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["nodes", node, rest @ ..] = segments.as_slice() else {
        return None;
    };
    let get = method == Method::GET;
    let post = method == Method::POST;
    let ours = match rest {
        ["status" | "startall" | "stopall"] => post,
        [_, _, "snapshot"] => get || post,
        [_, _, "snapshot", _, "rollback"] | [_, _, "migrate"] => post,
        ["qemu", _, "agent", "network-get-interfaces"] | ["lxc", _, "interfaces"] => get,
        _ => false,
    };
    if !ours {
        return None;
    }
    {
        let cluster = lock(&shared.cluster);
        let Some(found) = cluster.nodes.iter().find(|n| n.name == *node) else {
            return Some(error(595, &format!("no such node '{node}'")));
        };
        if !found.online {
            return Some(error(
                595,
                &format!("Connection refused ({node} is offline)"),
            ));
        }
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    if post {
        lock(&shared.actions)
            .forms
            .push((path.to_owned(), form.clone()));
    }
    let param = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let vmid = rest.get(1).and_then(|v| v.parse::<u32>().ok());
    Some(match rest {
        ["status"] => match param("command").as_deref() {
            Some("reboot" | "shutdown") => data(Value::Null),
            _ => error(400, "Parameter verification failed."),
        },
        [which @ ("startall" | "stopall")] => {
            let vms: Vec<u32> = param("vms")
                .unwrap_or_default()
                .split([',', ';', ' '])
                .filter_map(|v| v.parse().ok())
                .collect();
            let vms = if vms.is_empty() {
                lock(&shared.cluster)
                    .guests
                    .iter()
                    .filter(|g| g.node == *node && !g.template)
                    .map(|g| g.vmid)
                    .collect()
            } else {
                vms
            };
            let status = if *which == "startall" {
                "running"
            } else {
                "stopped"
            };
            task(
                shared,
                node,
                which,
                "",
                Effect::Status { vmids: vms, status },
            )
        }
        [kind, _, rest @ ..] => {
            let Some(vmid) = vmid else {
                return Some(error(400, "Parameter verification failed."));
            };
            let guest = lock(&shared.cluster)
                .guests
                .iter()
                .find(|g| g.vmid == vmid && g.node == *node && g.kind.api_name() == *kind)
                .cloned();
            let Some(guest) = guest else {
                let dir = if *kind == "qemu" {
                    "qemu-server"
                } else {
                    "lxc"
                };
                return Some(error(
                    500,
                    &format!("Configuration file 'nodes/{node}/{dir}/{vmid}.conf' does not exist"),
                ));
            };
            let running = guest.status == "running";
            match rest {
                ["snapshot"] if get => {
                    let list = lock(&shared.actions)
                        .snapshots
                        .get(&vmid)
                        .cloned()
                        .unwrap_or_default();
                    let mut entries: Vec<Value> = Vec::new();
                    let mut parent: Option<String> = None;
                    for s in &list {
                        let mut entry = json!({
                            "name": s.name, "description": s.description,
                            "snaptime": s.snaptime,
                        });
                        if *kind == "qemu" {
                            entry["vmstate"] = json!(u8::from(s.vmstate));
                        }
                        if let Some(p) = &parent {
                            entry["parent"] = json!(p);
                        }
                        parent = Some(s.name.clone());
                        entries.push(entry);
                    }
                    let mut current = json!({"name": "current", "description": "You are here!", "running": u8::from(running)});
                    if let Some(p) = parent {
                        current["parent"] = json!(p);
                    }
                    entries.push(current);
                    data(Value::Array(entries))
                }
                ["snapshot"] => {
                    let name = param("snapname").unwrap_or_default();
                    if !valid_snapname(&name) {
                        return Some(error(400, "Parameter verification failed."));
                    }
                    let taken = lock(&shared.actions)
                        .snapshots
                        .get(&vmid)
                        .is_some_and(|l| l.iter().any(|s| s.name == name));
                    if taken {
                        return Some(error(500, &format!("snapshot name '{name}' already used")));
                    }
                    let snapshot = FakeSnapshot {
                        name,
                        description: param("description").unwrap_or_default(),
                        snaptime: now(),
                        vmstate: param("vmstate").as_deref() == Some("1"),
                    };
                    let kind = if *kind == "qemu" {
                        "qmsnapshot"
                    } else {
                        "vzsnapshot"
                    };
                    task(
                        shared,
                        node,
                        kind,
                        &vmid.to_string(),
                        Effect::Snapshot(vmid, snapshot),
                    )
                }
                ["snapshot", name, "rollback"] => {
                    let found = lock(&shared.actions)
                        .snapshots
                        .get(&vmid)
                        .and_then(|l| l.iter().find(|s| s.name == *name).cloned());
                    let Some(found) = found else {
                        return Some(error(500, &format!("snapshot '{name}' does not exist")));
                    };
                    let kind = if *kind == "qemu" {
                        "qmrollback"
                    } else {
                        "vzrollback"
                    };
                    task(
                        shared,
                        node,
                        kind,
                        &vmid.to_string(),
                        Effect::Rollback {
                            vmid,
                            stop: !found.vmstate,
                        },
                    )
                }
                ["migrate"] => {
                    let Some(target) = param("target") else {
                        return Some(error(400, "Parameter verification failed."));
                    };
                    let target_online = lock(&shared.cluster)
                        .nodes
                        .iter()
                        .find(|n| n.name == target)
                        .map(|n| n.online);
                    match target_online {
                        None => {
                            return Some(error(500, &format!("no such cluster node '{target}'")));
                        }
                        Some(false) => {
                            return Some(error(
                                500,
                                &format!("target node '{target}' is not online"),
                            ));
                        }
                        Some(true) => {}
                    }
                    if target == *node {
                        return Some(error(500, "target is local node."));
                    }
                    if running && *kind == "qemu" && param("online").as_deref() != Some("1") {
                        return Some(error(500, "can't migrate running VM without --online"));
                    }
                    if running && *kind == "lxc" && param("restart").as_deref() != Some("1") {
                        return Some(error(
                            500,
                            "CT is running - use online migration or restart mode",
                        ));
                    }
                    let kind = if *kind == "qemu" {
                        "qmigrate"
                    } else {
                        "vzmigrate"
                    };
                    task(
                        shared,
                        node,
                        kind,
                        &vmid.to_string(),
                        Effect::Migrate { vmid, target },
                    )
                }
                ["agent", "network-get-interfaces"] | ["interfaces"] => {
                    let addresses = lock(&shared.actions).addresses.get(&vmid).cloned();
                    match (*kind, addresses) {
                        (_, _) if !running => error(500, &format!("VM {vmid} is not running")),
                        ("qemu", None) => error(500, "QEMU guest agent is not running"),
                        ("qemu", Some(list)) => data(json!({"result": [{
                            "name": "eth0", "hardware-address": "bc:24:11:00:00:01",
                            "ip-addresses": list.iter().map(|ip| json!({
                                "ip-address": ip, "ip-address-type": "ipv4", "prefix": 24,
                            })).collect::<Vec<_>>(),
                        }]})),
                        (_, list) => data(Value::Array(
                            list.unwrap_or_default()
                                .iter()
                                .map(|ip| {
                                    json!({"name": "eth0", "hwaddr": "bc:24:11:00:00:02",
                                                 "inet": format!("{ip}/24")})
                                })
                                .collect(),
                        )),
                    }
                }
                _ => error(501, &format!("Method '{method} {path}' not implemented")),
            }
        }
        _ => error(501, &format!("Method '{method} {path}' not implemented")),
    })
}

/// `pve-configid` (`^[a-z][a-z0-9_-]+$`, case-insensitive), at most 40 characters.
fn valid_snapname(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() >= 2
        && name.len() <= 40
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn task(shared: &Shared, node: &str, kind: &str, id: &str, effect: Effect) -> Response {
    let mut knobs = lock(&shared.knobs);
    let exit = knobs
        .task_failures
        .pop_front()
        .unwrap_or_else(|| "OK".into());
    let finish_after = (!knobs.tasks_never_end).then_some(knobs.task_delay);
    drop(knobs);
    let n = shared.task_counter.fetch_add(1, Ordering::SeqCst);
    let start = 0x66F0_A1B2 + n;
    let upid = format!(
        "UPID:{node}:{:08X}:{:08X}:{start:08X}:{kind}:{id}:{TOKEN_ID}:",
        0x000A_1B2C + n,
        0x03F2_E1D0 + n
    );
    lock(&shared.tasks).insert(
        upid.clone(),
        Task {
            node: node.into(),
            created: Instant::now(),
            finish_after,
            exit,
            effect: None,
            applied: false,
            more: Some(effect),
        },
    );
    data(Value::String(upid))
}
