//! Suggested entity ids (`default_entity_id`): readable, hash-free, and distinct.
//!
//! A device's entities are `<platform>.<base>_<key>`, with `<base>` its plain name
//! ([`node_base`], [`guest_base`], [`storage_base`]): `media-server` gives
//! `sensor.media_server_status`, storage `local-lvm` on `pve` gives `sensor.pve_local_lvm_used`.
//! Only where two devices would suggest the very same entity id (same platform, same object id)
//! does [`resolve`] change a base: a guest gets its VMID (`sensor.web_110_status`), and a device
//! that is not a guest, or a guest that still collides, a short hash of its unique device id.
//! A node or storage keeps its plain name against a guest: guests are the ones with a natural
//! suffix. Names that only look alike (`pve-nas` the guest and `nas` on `pve`, which share no
//! entity) keep their plain names.
//!
//! Design: HA reads `default_entity_id` only when it first registers an entity; afterwards the
//! `unique_id` (never derived from these names, see [`super::discovery`]) finds it, and the user
//! may rename it. So a base may change (a twin appears, a guest is renamed) without effect on
//! entities HA already has; only entities created later follow it. Which devices collide needs
//! every device's components, so the books build the configs with the plain bases, read their
//! entity ids back, and resolve, whenever a name in the cluster changes (not every poll).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use serde::Deserialize;

use crate::proxmox::{Inventory, NodeStatus};

use super::discovery::{self, Common, DeviceKey, Naming};
use super::slug::{entity_name, short_hash};

/// Longest a base may get before its keys (HA allows 255 for the whole entity id).
const MAX_BASE: usize = 80;
/// Rounds of [`resolve`]: plain, VMID (guests) or hash, VMID and hash (guests).
const ROUNDS: usize = 3;

/// A node's plain base: its name.
pub fn node_base(name: &str) -> String {
    entity_name(name, "node")
}

/// A guest's plain base: its name (`guest_<vmid>` when nothing of the name is usable).
pub fn guest_base(name: &str, vmid: u32) -> String {
    let base = entity_name(name, "");
    if base.is_empty() {
        format!("guest_{vmid}")
    } else {
        base
    }
}

/// A storage's plain base: `<node>_<storage>`.
pub fn storage_base(node: &str, storage: &str) -> String {
    format!(
        "{}_{}",
        entity_name(node, "node"),
        entity_name(storage, "storage")
    )
}

/// A camera's plain base: its name.
pub fn camera_base(name: &str) -> String {
    entity_name(name, "camera")
}

/// One device as [`resolve`] sees it.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The device's unique id (the discovery object id).
    pub object_id: String,
    /// Its plain base.
    pub plain: String,
    /// A guest's VMID.
    pub vmid: Option<u32>,
    /// Its components as `(platform, key)`.
    pub components: Vec<(String, String)>,
}

impl Claim {
    /// A claim from a config built with the plain base: its components are read back from the
    /// payload's `cmps`. `None` for a payload that is not a device config.
    pub fn from_config(
        object_id: &str,
        plain: String,
        vmid: Option<u32>,
        config: &str,
    ) -> Option<Self> {
        #[derive(Deserialize)]
        struct Config {
            cmps: HashMap<String, Component>,
        }
        #[derive(Deserialize)]
        struct Component {
            p: String,
        }
        let config: Config = serde_json::from_str(config).ok()?;
        let mut components: Vec<(String, String)> =
            config.cmps.into_iter().map(|(key, c)| (c.p, key)).collect();
        components.sort();
        Some(Self {
            object_id: object_id.to_owned(),
            plain,
            vmid,
            components,
        })
    }

    /// Every entity id the device suggests with `base`.
    fn entity_ids<'a>(&'a self, base: &'a str) -> impl Iterator<Item = String> + 'a {
        self.components
            .iter()
            .map(move |(platform, key)| format!("{platform}.{base}_{key}"))
    }

    fn base(&self, round: usize) -> String {
        let hash = || short_hash(&self.object_id);
        let base = match (round, self.vmid) {
            (0, _) => return self.plain.clone(),
            (1, Some(vmid)) => format!("{}_{vmid}", self.plain),
            (_, Some(vmid)) => format!("{}_{vmid}_{}", self.plain, hash()),
            (_, None) => format!("{}_{}", self.plain, hash()),
        };
        if base.len() > MAX_BASE {
            // Keep the suffix, which is what tells the device apart.
            let suffix = base.rsplit('_').next().unwrap_or_default();
            let mut head = self.plain.clone();
            head.truncate(MAX_BASE.saturating_sub(suffix.len() + 1));
            let head = head.trim_end_matches('_');
            return format!("{head}_{suffix}");
        }
        base
    }

    fn last_round(&self) -> usize {
        if self.vmid.is_some() {
            ROUNDS - 1
        } else {
            ROUNDS - 2
        }
    }
}

/// The bases that differ from the plain ones, by object id. `reserved` are entity ids taken by
/// devices that never move (Jarvis's own).
pub fn resolve(claims: &[Claim], reserved: &HashSet<String>) -> HashMap<String, String> {
    let mut rounds = vec![0usize; claims.len()];
    for _ in 0..ROUNDS {
        let mut owners: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, claim) in claims.iter().enumerate() {
            let base = claim.base(rounds[i]);
            for id in claim.entity_ids(&base) {
                owners.entry(id).or_default().push(i);
            }
        }
        let mut bump: HashSet<usize> = HashSet::new();
        for (id, mut group) in owners {
            group.dedup();
            let taken = reserved.contains(&id);
            if group.len() < 2 && !taken {
                continue;
            }
            let movable = |i: &usize| rounds[*i] < claims[*i].last_round();
            let guests: Vec<usize> = group
                .iter()
                .copied()
                .filter(|i| claims[*i].vmid.is_some() && movable(i))
                .collect();
            if guests.is_empty() {
                bump.extend(group.iter().copied().filter(movable));
            } else {
                bump.extend(guests);
            }
        }
        if bump.is_empty() {
            break;
        }
        for i in bump {
            rounds[i] += 1;
        }
    }
    claims
        .iter()
        .zip(rounds)
        .filter(|(_, round)| *round > 0)
        .map(|(claim, round)| (claim.object_id.clone(), claim.base(round)))
        .collect()
}

/// What the bases depend on: every device's name and kind. Resolving again is only needed
/// when this changes.
pub fn names_key(inventory: &Inventory) -> u64 {
    let mut hasher = DefaultHasher::new();
    for node in &inventory.nodes {
        node.name.hash(&mut hasher);
    }
    for guest in inventory.guests.iter().filter(|g| !g.template) {
        (guest.vmid, &guest.name, guest.kind).hash(&mut hasher);
    }
    for storage in &inventory.storages {
        (&storage.node, &storage.storage).hash(&mut hasher);
    }
    hasher.finish()
}

/// The bases of the inventory's devices that differ from their plain names: builds every
/// config with the plain names (`naming` without replaced bases), reads the entity ids back
/// and [`resolve`]s them, with Jarvis's own entity ids reserved.
pub fn inventory_bases(
    naming: &Naming,
    common: &Common,
    inventory: &Inventory,
    details: &HashMap<String, NodeStatus>,
    memory: bool,
) -> HashMap<String, String> {
    let naming = naming.plain();
    let mut claims = Vec::with_capacity(
        inventory.nodes.len() + inventory.guests.len() + inventory.storages.len(),
    );
    for node in &inventory.nodes {
        let object_id = naming.object_id(&DeviceKey::node(&node.name));
        let config = discovery::node_config(&naming, common, node, details.get(&node.name));
        claims.extend(Claim::from_config(
            &object_id,
            node_base(&node.name),
            None,
            &config,
        ));
    }
    for guest in inventory.guests.iter().filter(|g| !g.template) {
        let object_id = naming.object_id(&DeviceKey::guest(guest.vmid));
        let config = discovery::guest_config(&naming, common, guest);
        claims.extend(Claim::from_config(
            &object_id,
            guest_base(&guest.name, guest.vmid),
            Some(guest.vmid),
            &config,
        ));
    }
    for storage in &inventory.storages {
        let object_id = naming.object_id(&DeviceKey::storage(&storage.node, &storage.storage));
        let config = discovery::storage_config(&naming, common, storage);
        claims.extend(Claim::from_config(
            &object_id,
            storage_base(&storage.node, &storage.storage),
            None,
            &config,
        ));
    }
    // A later poll may show the same device twice (a storage listed twice): one claim each.
    let mut seen = HashSet::new();
    claims.retain(|c| seen.insert(c.object_id.clone()));
    let server = discovery::server_config(&naming, memory);
    let reserved: HashSet<String> = Claim::from_config(
        &naming.server_id,
        entity_name(&naming.base, "jarvis"),
        None,
        &server,
    )
    .map(|c| c.entity_ids(&c.plain).collect())
    .unwrap_or_default();
    resolve(&claims, &reserved)
}

/// The bases of cameras, `(object id, Frigate's name)`, that differ from their names: two
/// names that slug alike (`side-gate`, `side_gate`), or a camera named like the Frigate device
/// (`frigate`), whose entities are the cameras'. All cameras have the same components.
pub fn camera_bases<'a>(
    cameras: impl Iterator<Item = (String, &'a str)>,
) -> HashMap<String, String> {
    let components = vec![("sensor".to_owned(), "last_person".to_owned())];
    let claims: Vec<Claim> = cameras
        .map(|(object_id, name)| Claim {
            object_id,
            plain: camera_base(name),
            vmid: None,
            components: components.clone(),
        })
        .collect();
    let reserved: HashSet<String> = ["sensor.frigate_last_person".to_owned()].into();
    resolve(&claims, &reserved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(object_id: &str, plain: &str, vmid: Option<u32>, keys: &[&str]) -> Claim {
        Claim {
            object_id: object_id.into(),
            plain: plain.into(),
            vmid,
            components: keys
                .iter()
                .map(|k| ("sensor".to_owned(), (*k).to_owned()))
                .collect(),
        }
    }

    const GUEST: &[&str] = &["status", "cpu", "mem"];
    const NODE: &[&str] = &["status", "cpu", "load1"];
    const STORAGE: &[&str] = &["used", "free"];

    #[test]
    fn distinct_names_stay_plain() {
        let claims = [
            claim("g101", "media_server", Some(101), GUEST),
            claim("g102", "nextcloud", Some(102), GUEST),
            claim("n1", "pve", None, NODE),
            claim("s1", "pve_nas", None, STORAGE),
            claim("g103", "pve_nas", Some(103), GUEST),
        ];
        assert!(resolve(&claims, &HashSet::new()).is_empty());
    }

    #[test]
    fn twins_get_their_vmids_and_a_node_keeps_its_name() {
        let claims = [
            claim("g110", "web", Some(110), GUEST),
            claim("g111", "web", Some(111), GUEST),
            claim("n1", "pve", None, NODE),
            claim("g112", "pve", Some(112), GUEST),
        ];
        let bases = resolve(&claims, &HashSet::new());
        assert_eq!(bases["g110"], "web_110");
        assert_eq!(bases["g111"], "web_111");
        assert_eq!(bases["g112"], "pve_112");
        assert!(!bases.contains_key("n1"));
    }

    #[test]
    fn a_suffix_that_collides_again_gets_a_hash() {
        // `pve` (112) becomes `pve_112`, which is another node's name.
        let claims = [
            claim("n1", "pve", None, NODE),
            claim("n2", "pve_112", None, NODE),
            claim("g112", "pve", Some(112), GUEST),
        ];
        let bases = resolve(&claims, &HashSet::new());
        assert!(bases["g112"].starts_with("pve_112_"), "{bases:?}");
        assert_eq!(bases.len(), 1);
    }

    #[test]
    fn non_guests_that_collide_get_hashes_and_reserved_ids_stay() {
        let claims = [
            claim("s1", "pve_backup_1", None, STORAGE),
            claim("s2", "pve_backup_1", None, STORAGE),
            claim("g1", "jarvis", Some(120), &["health"]),
        ];
        let reserved: HashSet<String> = ["sensor.jarvis_health".to_owned()].into();
        let bases = resolve(&claims, &reserved);
        assert_ne!(bases["s1"], bases["s2"]);
        assert!(bases["s1"].starts_with("pve_backup_1_"));
        assert_eq!(bases["g1"], "jarvis_120");
        // Stable: the same claims give the same bases.
        assert_eq!(resolve(&claims, &reserved), bases);
    }

    #[test]
    fn a_prefix_collision_through_keys_is_found() {
        // `nextcloud` + `backup_status` and `nextcloud-backup` + `status`.
        let claims = [
            claim("g1", "nextcloud", Some(104), &["backup_status"]),
            claim("g2", "nextcloud_backup", Some(105), &["status"]),
        ];
        let bases = resolve(&claims, &HashSet::new());
        assert_eq!(bases["g1"], "nextcloud_104");
        assert_eq!(bases["g2"], "nextcloud_backup_105");
    }

    #[test]
    fn cameras_that_slug_alike_are_told_apart() {
        let bases = camera_bases(
            [
                ("c1".to_owned(), "side-gate"),
                ("c2".to_owned(), "side_gate"),
                ("c3".to_owned(), "front_door"),
                ("c4".to_owned(), "frigate"),
            ]
            .into_iter(),
        );
        assert_eq!(bases.len(), 3, "{bases:?}");
        assert_ne!(bases["c1"], bases["c2"]);
        assert!(bases["c4"].starts_with("frigate_"));
    }

    #[test]
    fn plain_bases() {
        assert_eq!(guest_base("media-server", 101), "media_server");
        assert_eq!(guest_base("???", 7), "guest_7");
        assert_eq!(storage_base("pve", "local-lvm"), "pve_local_lvm");
        assert_eq!(node_base("PVE.lan"), "pve_lan");
        let long = claim("x", &"a".repeat(200), Some(5), GUEST).base(2);
        assert!(long.len() <= MAX_BASE, "{long}");
    }
}
