//! A node's physical disks and ZFS pools: `GET /nodes/{node}/disks/list` (SMART health and
//! wear-out per disk) and `GET /nodes/{node}/disks/zfs` (pool health), read together and cached
//! per node for the slow-read TTL (`updates_ttl`: SMART reads can wake sleeping drives, and
//! disks change slowly). Both need Sys.Audit on `/nodes/{node}`.
//!
//! What counts as a problem is decided here, once, for the brain and the MQTT sensors alike:
//! a disk whose SMART health is neither `PASSED` nor `OK` (`UNKNOWN` is not known to be bad),
//! an SSD with less than [`LOW_WEAR_PERCENT`] of its life left, and a pool that is not
//! `ONLINE`.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::client::Proxmox;
use super::error::ProxmoxError;
use super::wire;

/// Below this much life left (percent), an SSD counts as worn out.
pub const LOW_WEAR_PERCENT: u8 = 10;

/// One physical disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disk {
    /// `/dev/sda`.
    pub devpath: String,
    /// The model, when SMART or udev knows it.
    pub model: Option<String>,
    /// The serial number.
    pub serial: Option<String>,
    /// Bytes.
    pub size: Option<u64>,
    /// `hdd`, `ssd`, `nvme`, `usb`, `unknown`.
    pub kind: Option<String>,
    /// SMART health as Proxmox reports it: `PASSED`, `OK`, `FAILED`, `UNKNOWN`.
    pub health: Option<String>,
    /// Life left in percent (Proxmox's `wearout`); `None` for disks without one (`N/A`).
    pub life_left: Option<u8>,
    /// What uses it: `ZFS`, `LVM`, `partitions`, `mounted`...
    pub used: Option<String>,
}

impl Disk {
    /// SMART says the disk is failing (anything but `PASSED`, `OK` or `UNKNOWN`).
    pub fn failing(&self) -> bool {
        self.health.as_deref().is_some_and(|h| {
            !matches!(
                h.to_ascii_uppercase().as_str(),
                "PASSED" | "OK" | "UNKNOWN" | ""
            )
        })
    }

    /// A solid-state disk (SATA SSD or NVMe): the ones with a wear-out.
    pub fn solid_state(&self) -> bool {
        matches!(self.kind.as_deref(), Some("ssd" | "nvme")) || self.life_left.is_some()
    }

    /// Less than [`LOW_WEAR_PERCENT`] of its life left.
    pub fn worn(&self) -> bool {
        self.life_left.is_some_and(|left| left < LOW_WEAR_PERCENT)
    }

    /// Failing or worn out.
    pub fn bad(&self) -> bool {
        self.failing() || self.worn()
    }

    /// The device name without `/dev/`: `sda`, `nvme0n1`.
    pub fn short_name(&self) -> &str {
        self.devpath
            .strip_prefix("/dev/")
            .unwrap_or(self.devpath.as_str())
    }
}

/// One ZFS pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZfsPool {
    /// `rpool`.
    pub name: String,
    /// `ONLINE`, `DEGRADED`, `FAULTED`, `OFFLINE`, `UNAVAIL`, `REMOVED`.
    pub health: String,
    /// Bytes.
    pub size: Option<u64>,
    /// Bytes allocated.
    pub alloc: Option<u64>,
    /// Bytes free.
    pub free: Option<u64>,
    /// Fragmentation, percent.
    pub frag: Option<u64>,
}

impl ZfsPool {
    /// Anything but `ONLINE`.
    pub fn unhealthy(&self) -> bool {
        !self.health.eq_ignore_ascii_case("ONLINE")
    }
}

/// A node's disks and pools.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeDisks {
    /// Physical disks, as Proxmox lists them.
    pub disks: Vec<Disk>,
    /// ZFS pools (none on a node without ZFS).
    pub pools: Vec<ZfsPool>,
}

impl NodeDisks {
    /// Disks that are failing or worn out.
    pub fn bad_disks(&self) -> impl Iterator<Item = &Disk> {
        self.disks.iter().filter(|d| d.bad())
    }

    /// Pools that are not `ONLINE`.
    pub fn bad_pools(&self) -> impl Iterator<Item = &ZfsPool> {
        self.pools.iter().filter(|p| p.unhealthy())
    }

    /// The least life left of any SSD, percent.
    pub fn lowest_life_left(&self) -> Option<u8> {
        self.disks.iter().filter_map(|d| d.life_left).min()
    }

    /// The worst pool health (`None` without pools): any unhealthy one, else `ONLINE`.
    pub fn worst_pool_health(&self) -> Option<&str> {
        self.bad_pools()
            .next()
            .or_else(|| self.pools.first())
            .map(|p| p.health.as_str())
    }
}

impl Proxmox {
    /// A node's disks (`/disks/list`) and ZFS pools (`/disks/zfs`), at most `updates_ttl` old.
    ///
    /// # Errors
    /// See [`ProxmoxError`]; a 403 names Sys.Audit on `/nodes/{node}`. A name that cannot be a
    /// node is a 400 [`ProxmoxError::Server`].
    pub async fn node_disks(&self, node: &str) -> Result<Arc<NodeDisks>, ProxmoxError> {
        if !wire::is_safe_name(node) {
            return Err(ProxmoxError::Server {
                status: 400,
                message: format!("{node:?} is not a valid node name"),
                path: "/nodes".into(),
            });
        }
        let (slot, ttl) = self.disks_slot(node);
        slot.get(Some(ttl), || async {
            let (list_path, zfs_path) = (
                format!("/nodes/{node}/disks/list"),
                format!("/nodes/{node}/disks/zfs"),
            );
            let (list, pools) = tokio::join!(
                self.get::<Vec<Value>>(&list_path),
                self.get::<Vec<Value>>(&zfs_path),
            );
            Ok(NodeDisks {
                disks: list?.iter().filter_map(disk).collect(),
                pools: pools?.iter().filter_map(pool).collect(),
            })
        })
        .await
    }
}

fn text(entry: &Value, key: &str) -> Option<String> {
    match entry.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(entry: &Value, key: &str) -> Option<u64> {
    match entry.get(key)? {
        Value::Number(n) => n
            .as_u64()
            // Floats (`wearout` may come as 98.0) are rounded; negatives make no sense.
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f.round() as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn disk(entry: &Value) -> Option<Disk> {
    let devpath = text(entry, "devpath")?;
    Some(Disk {
        devpath,
        model: text(entry, "model"),
        serial: text(entry, "serial"),
        size: number(entry, "size"),
        kind: text(entry, "type").map(|t| t.to_ascii_lowercase()),
        health: text(entry, "health"),
        // `N/A` (or missing) for disks without a wear-out attribute.
        life_left: number(entry, "wearout").and_then(|w| u8::try_from(w.min(100)).ok()),
        used: text(entry, "used"),
    })
}

fn pool(entry: &Value) -> Option<ZfsPool> {
    Some(ZfsPool {
        name: text(entry, "name")?,
        health: text(entry, "health").unwrap_or_else(|| "UNKNOWN".into()),
        size: number(entry, "size"),
        alloc: number(entry, "alloc"),
        free: number(entry, "free"),
        frag: number(entry, "frag"),
    })
}

/// The disk and pool readers over a list from the API, for the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub(crate) fn fuzz_entries(entries: &[Value]) {
    let disks = NodeDisks {
        disks: entries.iter().filter_map(disk).collect(),
        pools: entries.iter().filter_map(pool).collect(),
    };
    for disk in &disks.disks {
        let _ = (disk.bad(), disk.short_name());
    }
    let _ = (disks.lowest_life_left(), disks.worst_pool_health());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_and_pools_are_read_leniently() {
        let list = serde_json::json!([
            {"devpath": "/dev/sda", "model": "Samsung SSD 870", "serial": "S1", "size": 500107862016_u64,
             "type": "ssd", "health": "PASSED", "wearout": 97, "used": "ZFS", "gpt": 1},
            {"devpath": "/dev/sdb", "type": "hdd", "health": "FAILED", "wearout": "N/A", "size": "4000787030016"},
            {"devpath": "/dev/nvme0n1", "type": "nvme", "health": "OK", "wearout": 6.0},
            {"devpath": "/dev/sdc", "type": "hdd", "health": "UNKNOWN"},
            {"model": "no devpath"}
        ]);
        let disks: Vec<Disk> = list.as_array().unwrap().iter().filter_map(disk).collect();
        assert_eq!(disks.len(), 4);
        assert_eq!(disks[0].life_left, Some(97));
        assert!(!disks[0].bad());
        assert!(disks[1].failing() && disks[1].life_left.is_none());
        assert_eq!(disks[1].size, Some(4_000_787_030_016));
        assert!(disks[2].worn() && !disks[2].failing());
        assert!(!disks[3].bad(), "UNKNOWN is not known to be bad");
        let pools = serde_json::json!([
            {"name": "rpool", "health": "ONLINE", "size": 1000, "alloc": 400, "free": 600, "frag": 3, "dedup": 1.0},
            {"name": "tank", "health": "DEGRADED"}
        ]);
        let pools: Vec<ZfsPool> = pools.as_array().unwrap().iter().filter_map(pool).collect();
        let node = NodeDisks { disks, pools };
        assert_eq!(node.bad_disks().count(), 2);
        assert_eq!(node.lowest_life_left(), Some(6));
        assert_eq!(node.worst_pool_health(), Some("DEGRADED"));
        assert_eq!(node.bad_pools().next().unwrap().name, "tank");
        assert_eq!(NodeDisks::default().worst_pool_health(), None);
    }
}
