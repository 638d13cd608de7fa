//! Questions about physical disks and ZFS pools: "are my disks healthy?", "how are the disks on
//! pve?", "what's the wear on pve's SSDs?", "is the ZFS pool healthy?", "how is rpool?".
//!
//! Each online node's disks and pools are read at once (cached by the client, see
//! [`crate::proxmox::disks`]); offline nodes are skipped and said so. Answers name what is
//! wrong (a failed SMART check, an SSD with little life left, a pool that is not online) and
//! say all is well briefly otherwise. A node whose disks cannot be read is named with the
//! reason; a 403 names the privilege the token lacks.

use futures_util::future::join_all;

use super::engine::{Ctx, Unresolved};
use super::intents::DiskAsk;
use super::names::{Directory, Kinds, Target};
use super::speech;
use crate::proxmox::disks::LOW_WEAR_PERCENT;
use crate::proxmox::{Inventory, NodeDisks, NodeState, Proxmox, ProxmoxError};

/// What was read: each node's disks, or why not.
struct Reads {
    nodes: Vec<(String, Result<std::sync::Arc<NodeDisks>, ProxmoxError>)>,
    offline: Vec<String>,
}

/// The answer to a disk question.
pub(crate) async fn answer(
    proxmox: &Proxmox,
    inventory: &Inventory,
    directory: &Directory,
    ask: DiskAsk,
    target: Option<&[String]>,
    ctx: &Ctx,
) -> Result<String, Unresolved> {
    let words: Option<Vec<String>> = target.map(|words| {
        let mut words = words.to_vec();
        // "pve's SSDs": the possessive is no part of the name.
        if let Some(last) = words.last_mut() {
            if let Some(stem) = last.strip_suffix("'s") {
                *last = stem.to_owned();
            }
        }
        words
    });
    if ask == DiskAsk::Pools {
        return pools(proxmox, inventory, directory, words.as_deref(), ctx).await;
    }
    let node = match &words {
        // Through the conversation: "the second one" after "which one do you mean" is heard.
        Some(words) => match ctx.resolve(directory, words, Kinds::NODES)? {
            Target::Node(name) => Some(name),
            _ => None,
        },
        None => None,
    };
    let reads = read(proxmox, inventory, node.as_deref()).await;
    Ok(match ask {
        DiskAsk::Health => health(&reads, node.as_deref()),
        DiskAsk::Wear => wear(&reads, node.as_deref()),
        DiskAsk::Pools => String::new(),
    })
}

/// Reads every online node's disks (or just `only`'s).
async fn read(proxmox: &Proxmox, inventory: &Inventory, only: Option<&str>) -> Reads {
    let mut offline = Vec::new();
    let mut asked = Vec::new();
    for node in &inventory.nodes {
        if only.is_some_and(|only| only != node.name) {
            continue;
        }
        if node.status == NodeState::Online {
            asked.push(node.name.clone());
        } else {
            offline.push(node.name.clone());
        }
    }
    let results = join_all(asked.iter().map(|node| proxmox.node_disks(node))).await;
    Reads {
        nodes: asked.into_iter().zip(results).collect(),
        offline,
    }
}

impl Reads {
    fn read(&self) -> impl Iterator<Item = (&str, &NodeDisks)> {
        self.nodes
            .iter()
            .filter_map(|(node, result)| result.as_ref().ok().map(|d| (node.as_str(), &**d)))
    }

    /// What could not be checked: offline nodes and failed reads, as sentences.
    fn caveats(&self) -> String {
        let mut out = Vec::new();
        if !self.offline.is_empty() {
            let verb = if self.offline.len() == 1 { "is" } else { "are" };
            out.push(format!(
                "{} {verb} offline, so I couldn't check {}.",
                speech::list(&self.offline, 4),
                if self.offline.len() == 1 {
                    "its disks"
                } else {
                    "their disks"
                }
            ));
        }
        for (node, result) in &self.nodes {
            match result {
                Ok(_) => {}
                Err(ProxmoxError::Forbidden { .. }) => out.push(format!(
                    "I'm not allowed to read the disks on {node}: the API token needs \
                     Sys.Audit on /nodes/{node}."
                )),
                Err(err) => out.push(format!(
                    "I couldn't read the disks on {node}. {}",
                    err.spoken()
                )),
            }
        }
        out.join(" ")
    }

    fn nothing_read(&self) -> bool {
        self.read().next().is_none()
    }
}

fn join(main: String, caveats: String) -> String {
    match (main.is_empty(), caveats.is_empty()) {
        (_, true) => main,
        (true, false) => caveats,
        (false, false) => format!("{main} {caveats}"),
    }
}

fn health(reads: &Reads, node: Option<&str>) -> String {
    let caveats = reads.caveats();
    if reads.nothing_read() {
        return if caveats.is_empty() {
            "I don't know any nodes to check.".into()
        } else {
            caveats
        };
    }
    // The worst first: failing disks, then worn ones, then pools.
    let (mut failing, mut worn, mut pools) = (Vec::new(), Vec::new(), Vec::new());
    let mut disks = 0;
    for (name, found) in reads.read() {
        disks += found.disks.len();
        for disk in found.bad_disks() {
            let model = disk
                .model
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            let what = if disk.failing() {
                "is failing its SMART check".to_owned()
            } else {
                format!(
                    "has only {} percent of its life left",
                    disk.life_left.unwrap_or_default()
                )
            };
            let list = if disk.failing() {
                &mut failing
            } else {
                &mut worn
            };
            list.push(format!("{} on {name}{model} {what}", disk.short_name()));
        }
        for pool in found.bad_pools() {
            pools.push(format!(
                "the ZFS pool {} on {name} is {}",
                pool.name,
                pool.health.to_lowercase()
            ));
        }
    }
    let problems: Vec<String> = failing.into_iter().chain(worn).chain(pools).collect();
    let where_ = node.map(|n| format!(" on {n}")).unwrap_or_default();
    let main = if problems.is_empty() {
        match disks {
            0 => format!("I found no disks{where_}."),
            1 => format!("The disk{where_} is healthy."),
            n => format!("All {n} disks{where_} are healthy."),
        }
    } else if problems.len() == 1 {
        format!("Found a problem: {}.", speech::list(&problems, 4))
    } else {
        format!(
            "Found {} problems: {}.",
            problems.len(),
            speech::list(&problems, 4)
        )
    };
    join(main, caveats)
}

fn wear(reads: &Reads, node: Option<&str>) -> String {
    let caveats = reads.caveats();
    if reads.nothing_read() {
        return if caveats.is_empty() {
            "I don't know any nodes to check.".into()
        } else {
            caveats
        };
    }
    let mut ssds: Vec<(u8, String)> = Vec::new();
    for (name, found) in reads.read() {
        for disk in &found.disks {
            if let Some(left) = disk.life_left {
                ssds.push((left, format!("{} on {name}", disk.short_name())));
            }
        }
    }
    ssds.sort();
    let where_ = node.map(|n| format!(" on {n}")).unwrap_or_default();
    let main = match ssds.first() {
        None => format!("None of the disks{where_} reports a wear level."),
        Some((left, _)) if *left < LOW_WEAR_PERCENT => {
            let worn: Vec<String> = ssds
                .iter()
                .filter(|(left, _)| *left < LOW_WEAR_PERCENT)
                .map(|(left, disk)| format!("{disk} has {left} percent left"))
                .collect();
            format!(
                "{} {} nearly worn out: {}. Plan to replace {}.",
                speech::count(worn.len(), "SSD"),
                if worn.len() == 1 { "is" } else { "are" },
                speech::list(&worn, 4),
                if worn.len() == 1 { "it" } else { "them" }
            )
        }
        Some((left, disk)) if ssds.len() == 1 => {
            format!("The SSD{where_} is fine: {disk} has {left} percent of its life left.")
        }
        Some((left, disk)) => format!(
            "The {} SSDs{where_} are fine; the most worn, {disk}, has {left} percent of its \
             life left.",
            ssds.len()
        ),
    };
    join(main, caveats)
}

/// Pools: one by name (on whichever nodes have it), a node's, or all.
async fn pools(
    proxmox: &Proxmox,
    inventory: &Inventory,
    directory: &Directory,
    words: Option<&[String]>,
    ctx: &Ctx,
) -> Result<String, Unresolved> {
    let reads = read(proxmox, inventory, None).await;
    let said = words.map(|w| w.join(" "));
    let mut node = None;
    let mut pool = None;
    if let Some(said) = &said {
        let named = reads
            .read()
            .any(|(_, d)| d.pools.iter().any(|p| p.name.eq_ignore_ascii_case(said)));
        let stripped = said
            .trim_end_matches(" pool")
            .trim_start_matches("pool ")
            .to_owned();
        if named {
            pool = Some(said.clone());
        } else if let Ok(Target::Node(name)) =
            ctx.resolve(directory, words.unwrap_or_default(), Kinds::NODES)
        {
            node = Some(name);
        } else if stripped != *said {
            pool = Some(stripped);
        } else if reads.nothing_read() {
            pool = Some(said.clone());
        } else {
            let known: Vec<String> = reads
                .read()
                .flat_map(|(_, d)| d.pools.iter().map(|p| p.name.clone()))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            return Ok(if known.is_empty() {
                format!("I don't know a pool called {said}; none of your nodes has a ZFS pool.")
            } else {
                format!(
                    "I don't know a pool called {said}. Your ZFS pools are {}.",
                    speech::list(&known, 6)
                )
            });
        }
    }
    let caveats = reads.caveats();
    if reads.nothing_read() {
        return Ok(if caveats.is_empty() {
            "I don't know any nodes to check.".into()
        } else {
            caveats
        });
    }
    let mut found = Vec::new();
    for (name, disks) in reads.read() {
        if node.as_deref().is_some_and(|n| n != name) {
            continue;
        }
        for p in &disks.pools {
            if pool
                .as_deref()
                .is_none_or(|want| p.name.eq_ignore_ascii_case(want))
            {
                found.push((name, p));
            }
        }
    }
    let main = if found.is_empty() {
        match (&pool, &node) {
            (Some(pool), _) => format!("No node has a ZFS pool called {pool}."),
            (None, Some(node)) => format!("There are no ZFS pools on {node}."),
            (None, None) => "None of your nodes has a ZFS pool.".into(),
        }
    } else {
        let bad: Vec<String> = found
            .iter()
            .filter(|(_, p)| p.unhealthy())
            .map(|(node, p)| {
                format!(
                    "the pool {} on {node} is {}",
                    p.name,
                    p.health.to_lowercase()
                )
            })
            .collect();
        if !bad.is_empty() {
            let fine = found.len() - bad.len();
            let rest = if fine == 0 {
                String::new()
            } else {
                format!(
                    " The other {} online.",
                    if fine == 1 {
                        "one is".to_owned()
                    } else {
                        format!("{fine} are")
                    }
                )
            };
            capitalize(&format!("{}.{rest}", speech::list(&bad, 4)))
        } else if let [(node, p)] = found.as_slice() {
            format!("{} on {node} is online.", p.name)
        } else if let Some(pool) = &pool {
            let nodes: Vec<String> = found.iter().map(|(n, _)| (*n).to_owned()).collect();
            format!("{pool} is online on {}.", speech::list(&nodes, 4))
        } else {
            format!("All {} are online.", speech::count(found.len(), "ZFS pool"))
        }
    };
    Ok(join(main, caveats))
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
