//! A node's disks and ZFS pools on its device: what the state JSON carries for the three disk
//! entities ([`super::discovery`] adds them to every node):
//! - `Disks` (binary_sensor, `problem`): on when a disk fails SMART, an SSD is worn out or a
//!   pool is not online; the disks and pools as attributes;
//! - `Lowest SSD life left` (%): the most worn SSD's life left;
//! - `ZFS pools`: the worst pool health (`ONLINE` when all are), each pool's as attributes.
//!
//! All `null` (unknown in HA) while the disks cannot be read: the node is offline, or the token
//! lacks Sys.Audit on the node.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::proxmox::NodeDisks;

/// The node state's disk fields (flattened into it).
#[derive(Debug, Default, Serialize)]
pub struct DiskState<'a> {
    /// `ON` when something is wrong, `OFF` when not, `null` when unknown.
    disks_problem: Option<&'static str>,
    /// Every disk, for the attributes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    disks: Vec<DiskEntry<'a>>,
    /// The least life left of any SSD, percent.
    ssd_life: Option<u8>,
    /// The worst pool health.
    zfs: Option<&'a str>,
    /// Each pool's health.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    zfs_pools: BTreeMap<&'a str, &'a str>,
}

#[derive(Debug, Serialize)]
struct DiskEntry<'a> {
    device: &'a str,
    model: Option<&'a str>,
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    health: Option<&'a str>,
    life_left: Option<u8>,
    problem: bool,
}

impl<'a> DiskState<'a> {
    /// The fields for `disks` (`None`: unknown).
    pub fn new(disks: Option<&'a NodeDisks>) -> Self {
        let Some(found) = disks else {
            return Self::default();
        };
        let problem = found.bad_disks().next().is_some() || found.bad_pools().next().is_some();
        Self {
            disks_problem: Some(if problem { "ON" } else { "OFF" }),
            disks: found
                .disks
                .iter()
                .map(|d| DiskEntry {
                    device: &d.devpath,
                    model: d.model.as_deref(),
                    kind: d.kind.as_deref(),
                    health: d.health.as_deref(),
                    life_left: d.life_left,
                    problem: d.bad(),
                })
                .collect(),
            ssd_life: found.lowest_life_left(),
            zfs: found.worst_pool_health(),
            zfs_pools: found
                .pools
                .iter()
                .map(|p| (p.name.as_str(), p.health.as_str()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxmox::{Disk, ZfsPool};

    #[test]
    fn unknown_is_null_and_a_failing_disk_is_a_problem() {
        let json = serde_json::to_value(DiskState::new(None)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"disks_problem": null, "ssd_life": null, "zfs": null})
        );
        let node = NodeDisks {
            disks: vec![Disk {
                devpath: "/dev/sda".into(),
                model: None,
                serial: None,
                size: None,
                kind: Some("ssd".into()),
                health: Some("FAILED".into()),
                life_left: Some(40),
                used: None,
            }],
            pools: vec![ZfsPool {
                name: "rpool".into(),
                health: "ONLINE".into(),
                size: None,
                alloc: None,
                free: None,
                frag: None,
            }],
        };
        let json = serde_json::to_value(DiskState::new(Some(&node))).unwrap();
        assert_eq!(json["disks_problem"], "ON");
        assert_eq!(json["ssd_life"], 40);
        assert_eq!(json["zfs"], "ONLINE");
        assert_eq!(json["zfs_pools"]["rpool"], "ONLINE");
        assert_eq!(json["disks"][0]["problem"], true);
    }
}
