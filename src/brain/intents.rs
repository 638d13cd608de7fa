//! The local intents: what Jarvis understands without an LLM, as sentence templates.
//!
//! Recognition only finds the intent and the words in its slots; the brain resolves those
//! words against the live inventory (see [`super::names`]) and answers.

use std::ops::Range;

use super::grammar::{Captures, Template, TemplateError};
use super::names::Kinds;
use crate::proxmox::{GuestAction, GuestKind, GuestState, NodeAction};

/// What part of a node or guest a status question is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aspect {
    /// Everything worth saying.
    All,
    /// CPU use.
    Cpu,
    /// Memory use.
    Memory,
    /// Time since boot.
    Uptime,
    /// Load average (nodes).
    Load,
    /// Pending package updates (nodes).
    Updates,
    /// Disk use.
    Disk,
    /// Running or not.
    Running,
}

impl Aspect {
    /// Every aspect.
    pub const ALL: [Self; 8] = [
        Self::All,
        Self::Cpu,
        Self::Memory,
        Self::Uptime,
        Self::Load,
        Self::Updates,
        Self::Disk,
        Self::Running,
    ];

    /// Its name in slots and LLM tool arguments: `cpu`, `memory`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Uptime => "uptime",
            Self::Load => "load",
            Self::Updates => "updates",
            Self::Disk => "disk",
            Self::Running => "running",
        }
    }

    /// The aspect with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// What a question about disks asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskAsk {
    /// SMART health (and wear) of the physical disks.
    Health,
    /// How worn the SSDs are.
    Wear,
    /// ZFS pool health.
    Pools,
}

/// A recognized intent, slots still as spoken words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Nodes online, quorum, guests running and stopped, anything unhealthy.
    ClusterOverview,
    /// A node's, guest's or storage's status.
    Status {
        /// Who.
        target: Vec<String>,
        /// What about it.
        aspect: Aspect,
    },
    /// Guests by state, kind and node.
    ListGuests {
        /// Only running or only stopped guests.
        state: Option<GuestState>,
        /// Only VMs or only containers.
        kind: Option<GuestKind>,
        /// Only this node's.
        node: Option<Vec<String>>,
    },
    /// Storage use, of one storage or node, or all.
    Storage {
        /// A storage or node.
        target: Option<Vec<String>>,
    },
    /// A power action on a guest.
    Action {
        /// What to do.
        action: GuestAction,
        /// Which guest.
        guest: Vec<String>,
    },
    /// Reboot or shut down a node, or start or stop all its guests.
    NodePower {
        /// What to do.
        action: NodeAction,
        /// Which node.
        node: Vec<String>,
    },
    /// A guest's snapshots.
    ListSnapshots {
        /// Which guest.
        guest: Vec<String>,
    },
    /// Take a snapshot of a guest.
    TakeSnapshot {
        /// Which guest.
        guest: Vec<String>,
        /// Why, as said after the guest ("before the upgrade"): the description, and the name
        /// when none is given.
        note: Option<Vec<String>>,
        /// The name said ("called pre upgrade").
        name: Option<Vec<String>>,
    },
    /// Roll a guest back to a snapshot.
    Rollback {
        /// Which guest.
        guest: Vec<String>,
        /// Which snapshot; `None`: the latest.
        snapshot: Option<Vec<String>>,
    },
    /// Move a guest to another node.
    Migrate {
        /// Which guest.
        guest: Vec<String>,
        /// Where to.
        node: Vec<String>,
    },
    /// Something Jarvis never does (delete, destroy, shell commands).
    Forbidden {
        /// What was asked, for the reply.
        what: &'static str,
    },
    /// Are you there?
    Ping,
    /// What can you do?
    Help,
    /// Was something (a label, a face) seen, at a place, in a window? Words as spoken.
    Seen {
        /// What: "anyone", "cars", "alice" (`None`: anyone, as in "who was at the door").
        object: Option<Vec<String>>,
        /// Where: a camera or zone.
        place: Option<Vec<String>>,
        /// When: a time phrase (see [`super::when`]).
        when: Option<Vec<String>>,
        /// Asked in the present tense ("is anyone at the door"): only what is going on now.
        present: bool,
    },
    /// When was something last seen?
    LastSeen {
        /// What.
        object: Vec<String>,
        /// Where.
        place: Option<Vec<String>>,
    },
    /// How many were seen?
    CountSeen {
        /// What.
        object: Vec<String>,
        /// Where.
        place: Option<Vec<String>>,
        /// When (default: today).
        when: Option<Vec<String>>,
    },
    /// Who is at a place now?
    WhoIsAt {
        /// Where.
        place: Vec<String>,
    },
    /// What happened, in a window (default: the last 12 hours)?
    Summary {
        /// Where, if asked about one place.
        place: Option<Vec<String>>,
        /// When.
        when: Option<Vec<String>>,
    },
    /// Is Frigate up?
    FrigateStatus,
    /// Disk health, SSD wear or ZFS pools, of every node or one (see [`super::disks`]).
    Disks {
        /// What about them.
        ask: DiskAsk,
        /// A node, or for pools a pool or node.
        target: Option<Vec<String>>,
    },
    /// Did the last backup job (or last night's) succeed?
    BackupJob {
        /// Asked about last night.
        last_night: bool,
    },
    /// When was a guest last backed up?
    LastBackup {
        /// Which guest, as spoken.
        guest: Vec<String>,
    },
    /// Which guests have no backup within some days (`None`: `proxmox.backup_max_age_days`)?
    StaleBackups {
        /// The window in days.
        days: Option<u32>,
    },
    /// Which tasks failed in the last hours (or today)?
    FailedTasks {
        /// The window in hours.
        hours: u32,
        /// Since midnight instead.
        today: bool,
    },
    /// Yes, confirm.
    Confirm,
    /// No, cancel.
    Cancel,
    /// An answer to "which one do you mean?": "the second one", "number two".
    Pick {
        /// The words, as said.
        choice: Vec<String>,
    },
    /// The last question again, about something else: "and nextcloud?", "what about agent1?".
    Also {
        /// The new subject.
        target: Vec<String>,
    },
}

impl Intent {
    /// The intent's name, as `intent` events, the HTTP API and the audit log show it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ClusterOverview => "ClusterOverview",
            Self::Status { .. } => "Status",
            Self::ListGuests { .. } => "ListGuests",
            Self::Storage { .. } => "StorageUsage",
            Self::Action { action, .. } => match action {
                GuestAction::Start => "StartGuest",
                GuestAction::Shutdown => "ShutdownGuest",
                GuestAction::Stop => "StopGuest",
                GuestAction::Reboot => "RebootGuest",
            },
            Self::NodePower { action, .. } => match action {
                NodeAction::Reboot => "RebootNode",
                NodeAction::Shutdown => "ShutdownNode",
                NodeAction::StartAll => "StartAllGuests",
                NodeAction::StopAll => "StopAllGuests",
            },
            Self::ListSnapshots { .. } => "ListSnapshots",
            Self::TakeSnapshot { .. } => "TakeSnapshot",
            Self::Rollback { .. } => "RollbackSnapshot",
            Self::Migrate { .. } => "MigrateGuest",
            Self::Forbidden { .. } => "Forbidden",
            Self::Seen { .. } => "EventSeen",
            Self::LastSeen { .. } => "EventLastSeen",
            Self::CountSeen { .. } => "EventCount",
            Self::WhoIsAt { .. } => "WhoIsAt",
            Self::Summary { .. } => "EventSummary",
            Self::FrigateStatus => "FrigateStatus",
            Self::Disks { ask, .. } => match ask {
                DiskAsk::Health => "DiskHealth",
                DiskAsk::Wear => "DiskWear",
                DiskAsk::Pools => "ZfsHealth",
            },
            Self::BackupJob { .. } => "BackupJob",
            Self::LastBackup { .. } => "LastBackup",
            Self::StaleBackups { .. } => "StaleBackups",
            Self::FailedTasks { .. } => "FailedTasks",
            Self::Ping => "Ping",
            Self::Help => "Help",
            Self::Confirm => "Confirm",
            Self::Cancel => "Cancel",
            Self::Pick { .. } => "Pick",
            Self::Also { .. } => "Also",
        }
    }

    /// Whether running it may change the cluster (so it must not be cut short once started).
    pub fn acts(&self) -> bool {
        matches!(
            self,
            Self::Action { .. }
                | Self::NodePower { .. }
                | Self::TakeSnapshot { .. }
                | Self::Rollback { .. }
                | Self::Migrate { .. }
                | Self::Confirm
        )
    }

    /// The same question about something else ("and nextcloud?" after "how is pve?"): the
    /// intent with its subject replaced, or `None` when it has no subject to replace.
    pub fn with_subject(&self, words: Vec<String>) -> Option<Self> {
        let mut intent = self.clone();
        match &mut intent {
            Self::Status { target, .. } => *target = words,
            Self::Storage { target } => *target = Some(words),
            Self::ListGuests { node, .. } => *node = Some(words),
            Self::Action { guest, .. } | Self::ListSnapshots { guest } => *guest = words,
            Self::NodePower { node, .. } => *node = words,
            Self::Disks { target, .. } => *target = Some(words),
            Self::LastBackup { guest } => *guest = words,
            // "Was anyone at the front door?" "And the driveway?": the place changes; "did
            // you see Alice today?" "And Bob?": the object does.
            Self::Seen { place, object, .. } if place.is_some() || object.is_none() => {
                *place = Some(words);
            }
            Self::Seen { object, .. } => *object = Some(words),
            Self::CountSeen { place, .. } if place.is_some() => *place = Some(words),
            Self::CountSeen { object, .. } | Self::LastSeen { object, .. } => *object = words,
            Self::Summary { place, .. } => *place = Some(words),
            Self::WhoIsAt { place } => *place = words,
            _ => return None,
        }
        Some(intent)
    }

    /// The slots as `(name, words)`, for `intent` events and the API.
    pub fn slots(&self) -> Vec<(&'static str, String)> {
        let mut slots = Vec::new();
        match self {
            Self::Status { target, aspect } => {
                slots.push(("target", target.join(" ")));
                if *aspect != Aspect::All {
                    slots.push(("aspect", aspect.as_str().to_owned()));
                }
            }
            Self::ListGuests { state, kind, node } => {
                if let Some(state) = state {
                    slots.push(("state", state.as_str().to_owned()));
                }
                if let Some(kind) = kind {
                    slots.push(("kind", kind.api_name().to_owned()));
                }
                if let Some(node) = node {
                    slots.push(("node", node.join(" ")));
                }
            }
            Self::Storage { target: Some(t) } => slots.push(("target", t.join(" "))),
            Self::Disks {
                target: Some(t), ..
            } => slots.push(("target", t.join(" "))),
            Self::Action { action, guest } => {
                slots.push(("guest", guest.join(" ")));
                slots.push(("action", action.api_name().to_owned()));
            }
            Self::NodePower { action, node } => {
                slots.push(("node", node.join(" ")));
                slots.push(("action", action.as_str().to_owned()));
            }
            Self::ListSnapshots { guest } => slots.push(("guest", guest.join(" "))),
            Self::TakeSnapshot { guest, note, name } => {
                slots.push(("guest", guest.join(" ")));
                push_words(&mut slots, [("note", note), ("name", name)]);
            }
            Self::Rollback { guest, snapshot } => {
                slots.push(("guest", guest.join(" ")));
                push_words(&mut slots, [("snapshot", snapshot)]);
            }
            Self::Migrate { guest, node } => {
                slots.push(("guest", guest.join(" ")));
                slots.push(("node", node.join(" ")));
            }
            Self::Seen {
                object,
                place,
                when,
                ..
            } => push_words(
                &mut slots,
                [("object", object), ("place", place), ("when", when)],
            ),
            Self::LastSeen { object, place } => push_words(
                &mut slots,
                [("object", &Some(object.clone())), ("place", place)],
            ),
            Self::CountSeen {
                object,
                place,
                when,
            } => push_words(
                &mut slots,
                [
                    ("object", &Some(object.clone())),
                    ("place", place),
                    ("when", when),
                ],
            ),
            Self::WhoIsAt { place } => slots.push(("place", place.join(" "))),
            Self::Pick { choice } => slots.push(("choice", choice.join(" "))),
            Self::Also { target } => slots.push(("target", target.join(" "))),
            Self::Summary { place, when } => {
                push_words(&mut slots, [("place", place), ("when", when)]);
            }
            Self::LastBackup { guest } => slots.push(("guest", guest.join(" "))),
            Self::StaleBackups { days: Some(days) } => slots.push(("days", days.to_string())),
            Self::FailedTasks { hours, today } => {
                slots.push(("hours", hours.to_string()));
                if *today {
                    slots.push(("when", "today".to_owned()));
                }
            }
            _ => {}
        }
        slots
    }
}

/// Each slot that holds words, as `(name, words)`.
fn push_words<const N: usize>(
    slots: &mut Vec<(&'static str, String)>,
    words: [(&'static str, &Option<Vec<String>>); N],
) {
    for (name, value) in words {
        if let Some(value) = value {
            slots.push((name, value.join(" ")));
        }
    }
}

/// How a template's match becomes an intent.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Overview,
    Status(Aspect),
    List,
    Storage,
    Action(GuestAction),
    NodePower(NodeAction),
    ListSnapshots,
    TakeSnapshot,
    Rollback,
    Migrate,
    Forbidden(&'static str),
    Ping,
    Help,
    Confirm,
    Cancel,
    Pick,
    Also,
    Seen,
    LastSeen,
    Count,
    WhoIsAt,
    Summary,
    FrigateStatus,
    Disks(DiskAsk),
    BackupJob,
    LastBackup,
    StaleBackups,
    FailedTasks,
}

impl Kind {
    /// Questions about the event memory: a time phrase around them belongs to them.
    fn is_memory(self) -> bool {
        matches!(
            self,
            Self::Seen | Self::LastSeen | Self::Count | Self::WhoIsAt | Self::Summary
        )
    }

    /// A reply or a greeting rather than a request ("yes", "cancel", "the first one", "hello"):
    /// people often go on after it ("Yes, go ahead", "Hello, how are you?").
    fn is_reply(self) -> bool {
        matches!(
            self,
            Self::Ping | Self::Help | Self::Confirm | Self::Cancel | Self::Pick
        )
    }
}

const IS: &str = "(what's|whats|what is|what are|tell me|give me|show me|show)";

/// The built-in sentences. `{target}` is a node, guest or storage; `{guest}` a guest; `{node}`
/// a node.
fn sentences() -> Vec<(Kind, String)> {
    let mut s: Vec<(Kind, String)> = Vec::new();
    let mut add = |kind: Kind, templates: &[&str]| {
        for t in templates {
            s.push((kind, t.replace("{IS}", IS)));
        }
    };
    add(
        Kind::Overview,
        &[
            "(how is|how's|hows) [the|my] (cluster|homelab|lab|proxmox|server room) [doing]",
            "[{IS}] [the|my] (cluster|homelab|proxmox) (status|overview|summary|health)",
            "[{IS}] [the] status of [the|my] (cluster|homelab|proxmox)",
            "(is|are) (anything|something|any nodes|any node|any guests|any vms) (down|unhealthy|wrong|broken|offline|failing)",
            // tiny.en often hears "the cluster" as "a cluster".
            "(is|are) [there] (any|anything) (problems|issues) [with [the|my|a] (cluster|homelab|lab|proxmox)]",
            "(does|is) [the] cluster (have quorum|quorate|healthy|ok|okay)",
            "(status|overview) report",
        ],
    );
    add(
        Kind::Status(Aspect::All),
        &[
            "[{IS}] [the] (status|state|health) of {target}",
            "(how is|how's|hows) {target} [doing]",
            "{target} (status|health)",
            "(check|status) {target}",
        ],
    );
    add(
        Kind::Status(Aspect::Running),
        &[
            "is {target} (running|up|online|down|stopped|offline|on|off|alive)",
            "is {target} (still) (running|up|online)",
        ],
    );
    add(
        Kind::Status(Aspect::Memory),
        &[
            "how much (memory|ram) (is|does) {target} (using|use|have|got)",
            "how much (memory|ram) [is] (used|free|left) (on|by|in) {target}",
            "[{IS}] [the] (memory|ram) (usage|use|used) (of|on|for|by) {target}",
            "[{IS}] {target} (memory|ram) [usage|use]",
        ],
    );
    add(
        Kind::Status(Aspect::Cpu),
        &[
            "how (busy|loaded) is {target}",
            "how much (cpu|processor) (is|does) {target} (using|use)",
            "[{IS}] [the] (cpu|processor) (usage|use|load) (of|on|for) {target}",
            "[{IS}] {target} (cpu|processor) [usage|use|load]",
        ],
    );
    add(
        Kind::Status(Aspect::Uptime),
        &[
            "how long has {target} been (up|running|online|on)",
            "[{IS}] [the] uptime (of|on|for) {target}",
            "[{IS}] {target} uptime",
            "when did {target} (boot|start|come up)",
        ],
    );
    add(
        Kind::Status(Aspect::Load),
        &[
            "[{IS}] [the] load [average] (of|on|for) {target}",
            "[{IS}] {target} load [average]",
        ],
    );
    add(
        Kind::Status(Aspect::Updates),
        &[
            "(are there|is there|any) [any] [pending] (updates|upgrades|update) (on|for) {target}",
            "how many [pending] (updates|upgrades) (are there) (on|for) {target}",
            "how many [pending] (updates|upgrades) does {target} (have|need)",
            "does {target} (need|have) [any] [pending] (updates|upgrades|an update)",
            "(is|are) {target} up to date",
        ],
    );
    add(
        Kind::Status(Aspect::Disk),
        &[
            "how full is [the] (disk|root disk|drive) (of|on) {target}",
            "[{IS}] [the] disk (usage|use|space) (of|on|for) {target}",
        ],
    );
    add(
        Kind::List,
        &[
            "(list|show [me]|which|what|name) [the|all] [my] (vms|vm|guests|guest|containers|container|virtual machines|machines) [are] [(running|stopped|up|down|off|on)]",
            "(list|show [me]|which|what|name) [the|all] [my] (vms|vm|guests|guest|containers|container|virtual machines|machines) [are] [(running|stopped|up|down|off)] on {node}",
            "(list|show [me]|which|what|name) [the|all] [my] (running|stopped) (vms|guests|containers|virtual machines|machines) [on {node}]",
            "(what's|whats|what is|what) (running|stopped) on {node}",
            "(what's|whats|what is|what) (running|stopped)",
            "(which|what) (vms|guests|containers|machines) are (running|stopped|up|down|off) [on {node}]",
            "how many (vms|guests|containers|machines) are (running|stopped|up|down|off) [on {node}]",
        ],
    );
    add(
        Kind::Storage,
        &[
            "[{IS}] [the] storage (usage|status|space|use)",
            "[{IS}] [the] storage (usage|status|space|use) (on|of|for) {target}",
            "how full is [the] [storage] {target} [storage]",
            "how much [free] space is (left|free|used) on [the] [storage] {target} [storage]",
            "how full (is|are) [the|my] (storage|disks|datastores|storages)",
            "how much [free] space is (left|free|used) on [the|my] (storage|disks|datastores|storages)",
            "how much (disk|storage) space is (left|free|used) [on {target}]",
            "(is|are) [the|my] (storage|disks|datastores) (full|filling up|ok|okay)",
        ],
    );
    for (action, verbs, particles) in [
        (
            GuestAction::Start,
            "(start|start up|boot|boot up|power on|turn on|switch on|spin up|launch|fire up|bring up)",
            Some("(turn|switch|power|start|boot|bring|spin|fire) {guest} (on|up)"),
        ),
        (
            GuestAction::Shutdown,
            "(shut down|shutdown|shut off|power down|power off|turn off|switch off|bring down)",
            Some("(turn|switch|power|shut|bring) {guest} (off|down)"),
        ),
        (
            GuestAction::Stop,
            "(stop|kill|force stop|hard stop|force off|pull the plug on)",
            None,
        ),
        (
            GuestAction::Reboot,
            "(reboot|restart|reset|power cycle|bounce)",
            None,
        ),
    ] {
        add(
            Kind::Action(action),
            &[&format!("{verbs} {{guest}} [now|again]")],
        );
        if let Some(particles) = particles {
            add(Kind::Action(action), &[&format!("{particles} [now|again]")]);
        }
    }
    // Node power, snapshots and migration (see `super::operations`).
    const EVERY: &str =
        "(all|every|each) [of] [the] [my] [(guests|guest|vms|vm|containers|container|machines)]";
    add(
        Kind::NodePower(NodeAction::Reboot),
        &["(reboot|restart|power cycle) [the] (node|host|server|hypervisor) {node} [now]"],
    );
    add(
        Kind::NodePower(NodeAction::Shutdown),
        &[
            "(shut down|shutdown|power down|power off|turn off) [the] (node|host|server|hypervisor) {node} [now]",
        ],
    );
    add(
        Kind::NodePower(NodeAction::StartAll),
        &[
            &format!("(start|boot|power on|start up) {EVERY} on [the] [node] {{node}}"),
            "(start|boot|power on|start up) everything on [the] [node] {node}",
        ],
    );
    add(
        Kind::NodePower(NodeAction::StopAll),
        &[
            &format!("(stop|shut down|shutdown|power off) {EVERY} on [the] [node] {{node}}"),
            "(stop|shut down|shutdown|power off) everything on [the] [node] {node}",
        ],
    );
    add(
        Kind::ListSnapshots,
        &[
            "(list|show [me]|what are|which are|tell me|name) [the|all] [my] snapshots (of|for|on) {guest}",
            "(what|which) snapshots (does|has) {guest} [(got|have)]",
            "(does|has) {guest} (have|got) [any] snapshots",
            "how many snapshots (does|has) {guest} [(got|have)]",
        ],
    );
    const SNAP: &str = "(snapshot|take a snapshot of|make a snapshot of|create a snapshot of)";
    add(
        Kind::TakeSnapshot,
        &[
            &format!("{SNAP} {{guest}} [now]"),
            &format!("{SNAP} {{guest}} (before|for|ahead of|prior to|after) {{note}}"),
            &format!("{SNAP} {{guest}} (called|named) {{snapshot}}"),
        ],
    );
    const LAST: &str = "[the] (last|latest|previous|most recent|newest) snapshot";
    add(
        Kind::Rollback,
        &[
            &format!("(roll back|rollback|revert) {{guest}} to {LAST}"),
            &format!("roll {{guest}} back to {LAST}"),
            &format!("restore {{guest}} (to|from) {LAST}"),
            "(roll back|rollback|revert) {guest} to [the] [snapshot] {snapshot}",
            "roll {guest} back to [the] [snapshot] {snapshot}",
            "restore {guest} (to|from) [the] snapshot {snapshot}",
        ],
    );
    add(
        Kind::Migrate,
        &[
            "(move|migrate|transfer) {guest} to [the] [node|host] {node}",
            "(move|migrate) {guest} (over to|onto|across to) [the] [node|host] {node}",
        ],
    );
    add(
        Kind::Forbidden("delete"),
        &[
            "(delete|destroy|remove|wipe|purge|erase|format) {target}",
            "(delete|destroy|remove|wipe|purge|erase) [all] (vms|guests|containers|everything|snapshots|backups|the cluster)",
        ],
    );
    add(
        Kind::Forbidden("run commands"),
        &[
            "(run|execute) [a|the|this] (command|shell command|script|shell) [on {target}]",
            "(run|execute) {target} (command|script)",
            "(open|give me) a (shell|terminal|console) [on {target}]",
        ],
    );
    // The event memory. A time phrase at either end ("in the last hour", "since 8 am") is
    // taken off before matching (see `Recognizer::recognize`), so none appears here.
    const AT: &str = "(at|in|on|by|near|around|outside|to|into|through|past|up|down|along)";
    const MOVE: &str = "(come|came|go|went|walk|walked|drive|drove|pass|passed|get|got|show up|turn up|arrive|arrived|visit|visited|stop by)";
    add(
        Kind::Seen,
        &[
            &format!(
                "(was|were|is|are|has|have) [there] [been] {{object}} {AT} [the|my] {{place}}"
            ),
            "did [the|my] {place} [camera] (see|spot|detect|catch|notice|pick up) {object}",
            "(has|have) [the|my] {place} [camera] (seen|spotted|detected|caught|noticed) {object}",
            &format!("did {{object}} {MOVE} {AT} [the|my] {{place}}"),
            &format!(
                "(has|have) {{object}} (been|come|gone|walked|driven) {AT} [the|my] {{place}}"
            ),
            &format!("who (was|came|went|has been) {AT} [the|my] {{place}}"),
            "(was|were|is|are) there (anyone|anybody|someone|somebody|people|any people) (around|about|outside)",
            "(was|is) {object} (home|here|around)",
            "(has|did) {object} (come home|arrive|show up|turn up|been here|come by)",
        ],
    );
    add(
        Kind::LastSeen,
        &[
            &format!("when did {{object}} last {MOVE} [{AT} [the|my] {{place}}]"),
            &format!(
                "when (was|were) {{object}} last (seen|spotted|detected|here|home|around) [{AT} [the|my] {{place}}]"
            ),
            &format!("when (was|were) {{object}} last {AT} [the|my] {{place}}"),
            "when did [the|my] {place} [camera] last (see|spot|detect|catch) {object}",
            &format!("when was the last {{object}} {AT} [the|my] {{place}}"),
            &format!(
                "when was the last time {{object}} (was|were|came|went) {AT} [the|my] {{place}}"
            ),
            "when was the last time {object} (was|were) (seen|spotted|detected|here|home)",
            "when did [the|my] {place} [camera] last see {object}",
            "when did i last see {object}",
        ],
    );
    add(
        Kind::Count,
        &[
            "how many {object} did [the|my] {place} [camera] (see|spot|detect|catch|pick up)",
            &format!("how many {{object}} (were|came|went|walked|drove) {AT} [the|my] {{place}}"),
            &format!("how many {{object}} have (been|come|gone) {AT} [the|my] {{place}}"),
            &format!(
                "how many {{object}} (were|have been) (seen|spotted|detected) [{AT} [the|my] {{place}}]"
            ),
            "how many (times|events|detections) (did|has) [the|my] {place} [camera] (see|detect|spot|seen|detected|spotted) {object}",
        ],
    );
    add(
        Kind::WhoIsAt,
        &[
            &format!("(who is|who's|whos) {AT} [the|my] {{place}}"),
            &format!("(who is|who's|whos) (there|outside) {AT} [the|my] {{place}}"),
            &format!(
                "is (anyone|anybody|someone|somebody) {AT} [the|my] {{place}} (now|right now)"
            ),
        ],
    );
    add(
        Kind::Summary,
        &[
            "(what|what's|whats) (happened|happening|been happening|went on|has happened|is new|new)",
            &format!(
                "(what|what's|whats) (happened|happening|been happening|went on|has happened) {AT} [the|my] {{place}}"
            ),
            "(did i|did we|have i|have we) miss[ed] (anything|something)",
            "(anything|something) (new|happen|happened|going on|interesting)",
            "(give me|tell me|read me) [a|the] (summary|recap|rundown|update)",
            "(summary|recap|rundown) [please]",
            "(any|were there any) (events|visitors|detections|alerts)",
        ],
    );
    add(
        Kind::FrigateStatus,
        &[
            "(is|are) frigate (up|running|online|working|down|offline|ok|okay|alive)",
            "(is|are) [the|my] (cameras|nvr) (up|running|online|working|down|offline|ok|okay|recording)",
            "[{IS}] [the] (status of frigate|frigate status|status of the cameras|camera status)",
            "(how is|how's|hows) frigate [doing]",
        ],
    );
    const DISKS: &str = "(disks|drives|ssds|ssd)";
    const HEALTHY: &str = "(healthy|failing|dying|good|fine|alright)";
    const WHAT: &str = "(what's|whats|what is|tell me)";
    const WEAR: &str = "(wear|wearout|wear level|life left)";
    const POOLS: &str = "(zfs|zpool|zfs pool|zfs pools|pool|pools)";
    add(
        Kind::Disks(DiskAsk::Health),
        &[
            &format!("(are|is) [the|my] {DISKS} {HEALTHY}"),
            &format!("(are|is) [the] {DISKS} (on|in) {{target}} {HEALTHY}"),
            &format!("(are|is) {{target}} {DISKS} {HEALTHY}"),
            &format!("how are [the|my] {DISKS} [doing]"),
            &format!("how are [the] {DISKS} (on|in) {{target}} [doing]"),
            &format!("how are {{target}} {DISKS} [doing]"),
            &format!("[{WHAT}] [the] (disk|drive|smart) (health|status)"),
            &format!("[{WHAT}] [the] (disk|drive|smart) (health|status) (of|on) {{target}}"),
            &format!("check [the|my] {DISKS} [on {{target}}]"),
            &format!("(is|are) [there] any (failing|bad|dead|broken) {DISKS} [on {{target}}]"),
            &format!("(did|has) (any|a) {DISKS} (failed|died)"),
        ],
    );
    add(
        Kind::Disks(DiskAsk::Wear),
        &[
            &format!("[{WHAT}] [the] {WEAR} (of|on) [the|my] {DISKS}"),
            &format!("[{WHAT}] [the] {WEAR} (of|on) [the] {DISKS} (on|in) {{target}}"),
            &format!("[{WHAT}] [the] {WEAR} (of|on) {{target}} {DISKS}"),
            &format!("how worn (are|is) [the|my] {DISKS} [(on|in) {{target}}]"),
            &format!("how worn (are|is) {{target}} {DISKS}"),
            &format!("how much life (is left|left) (on|in) [the|my] {DISKS}"),
            &format!("(are|is) [the|my] {DISKS} (worn|worn out|wearing out)"),
        ],
    );
    add(
        Kind::Disks(DiskAsk::Pools),
        &[
            &format!("(is|are) [the|my] {POOLS} ({HEALTHY}|ok|okay|online|degraded)"),
            &format!("(how is|how's|hows|how are) [the|my] {POOLS} [doing]"),
            &format!("[{WHAT}] [the] {POOLS} (health|status) [(of|on) {{target}}]"),
            &format!("(how is|how's|hows|how are) [the] {POOLS} on {{target}} [doing]"),
            &format!("(how is|how's|hows) [the] {POOLS} {{target}} [doing]"),
            &format!("is [the] {POOLS} {{target}} {HEALTHY}"),
            "(how is|how's|hows) [the] rpool [pool] [doing]",
            "is [the] rpool [pool] (healthy|ok|okay|online|degraded|fine|good)",
            "(how is|how's|hows) [the] {target} (pool|zpool|zfs pool) [doing]",
        ],
    );
    add(Kind::BackupJob, super::backups::JOB_SENTENCES);
    add(Kind::LastBackup, super::backups::LAST_BACKUP_SENTENCES);
    add(Kind::StaleBackups, super::backups::STALE_SENTENCES);
    add(Kind::FailedTasks, super::backups::FAILED_SENTENCES);
    add(
        Kind::Ping,
        &[
            "ping",
            "are you (there|alive|awake|listening|up|online|working)",
            "(hello|hi|hey) [there]",
            "jarvis",
        ],
    );
    add(
        Kind::Help,
        &[
            "help",
            "what can you do",
            "what (can|should) i (say|ask) [you]",
            "what do you (do|know|understand)",
            "how do i use you",
        ],
    );
    add(
        Kind::Confirm,
        &[
            "(yes|yeah|yep|yup|confirm|confirmed|affirmative|sure|correct|do it|go ahead|proceed)",
            "(yes|yeah|yep|sure|ok|okay) [please] (do it|go ahead|confirm|proceed)",
            "i confirm",
            "(yes|yeah) please",
        ],
    );
    add(
        Kind::Cancel,
        &[
            "(no|nope|cancel|never mind|nevermind|abort|don't|do not|forget it|stop)",
            "no (thanks|thank you|don't|cancel|stop)",
            "(cancel|abort) (that|it)",
        ],
    );
    add(
        Kind::Pick,
        &[
            "[i mean] [the] (first|second|third|fourth|fifth|last) [one] [please]",
            "[i mean] (number|option) (one|two|three|four|five|1|2|3|4|5) [please]",
        ],
    );
    add(
        Kind::Also,
        &[
            // Longest first: the first alternative that matches is the reading, and "and"
            // first read "and what about pve" as a question about "what about pve".
            "(and what about|and how about|the same for|what about|how about|same for|and) {target} [too|then]",
        ],
    );
    s
}

/// A recognized sentence: the intent and the tokens it was matched on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognized {
    /// The intent with its slots.
    pub intent: Intent,
}

/// The compiled sentences, indexed by first word.
#[derive(Debug, Clone)]
pub struct Recognizer {
    templates: Vec<(Kind, Template)>,
    /// Expansions `(template, expansion)` by their first word.
    by_first_word: std::collections::HashMap<String, Vec<(usize, usize)>>,
    /// Expansions that start with a slot.
    slot_first: Vec<(usize, usize)>,
}

impl Recognizer {
    /// Compiles the built-in sentences.
    ///
    /// # Errors
    /// A built-in template that does not parse (a bug; tests catch it).
    pub fn new() -> Result<Self, TemplateError> {
        let templates: Vec<(Kind, Template)> = sentences()
            .into_iter()
            .map(|(kind, text)| Template::parse(&text).map(|t| (kind, t)))
            .collect::<Result<_, _>>()?;
        let mut by_first_word: std::collections::HashMap<String, Vec<(usize, usize)>> =
            std::collections::HashMap::new();
        let mut slot_first = Vec::new();
        for (t, (_, template)) in templates.iter().enumerate() {
            for e in 0..template.len() {
                match template.first_word(e) {
                    Some(word) => by_first_word
                        .entry(word.to_owned())
                        .or_default()
                        .push((t, e)),
                    None => slot_first.push((t, e)),
                }
            }
        }
        Ok(Self {
            templates,
            by_first_word,
            slot_first,
        })
    }

    /// The compiled templates.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        self.templates.iter().map(|(_, template)| template)
    }

    /// The compiled templates of questions about the event memory (a time phrase may follow
    /// them).
    pub fn memory_templates(&self) -> impl Iterator<Item = &Template> {
        self.templates
            .iter()
            .filter(|(kind, _)| kind.is_memory())
            .map(|(_, template)| template)
    }

    /// Expansions of all templates (for benchmarks and tests).
    pub fn expansions(&self) -> usize {
        self.templates.iter().map(|(_, t)| t.len()).sum()
    }

    /// Finds the intent in what someone said. The most specific template wins (most literal
    /// words); between equals, the first.
    pub fn recognize(&self, text: &str) -> Option<Recognized> {
        let all = tokens(text);
        // A question about the memory with a time phrase at one end: match it without.
        let timed = super::when::trailing(&all)
            .map(|(at, _)| (all[..at].to_vec(), all[at..].to_vec()))
            .or_else(|| {
                super::when::leading(&all).map(|(at, _)| (all[at..].to_vec(), all[..at].to_vec()))
            })
            .and_then(|(core, when)| {
                let found = self.best(&core)?;
                self.templates[found.0]
                    .0
                    .is_memory()
                    .then_some((core, when, found))
            });
        let (tokens, when, (t, captures)) = match timed {
            Some((core, when, found)) => (core, Some(when), found),
            None => {
                let found = self.best(&all)?;
                (all, None, found)
            }
        };
        let kind = self.templates[t].0;
        let slot = |name: &str| captures.get(name, &tokens).map(<[String]>::to_vec);
        let has = |words: &[&str]| tokens.iter().any(|t| words.contains(&t.as_str()));
        let intent = match kind {
            Kind::Overview => Intent::ClusterOverview,
            Kind::Status(aspect) => Intent::Status {
                target: slot("target")?,
                aspect,
            },
            Kind::List => Intent::ListGuests {
                state: if has(&["stopped", "down", "off"]) {
                    Some(GuestState::Stopped)
                } else if has(&["running", "up"]) {
                    Some(GuestState::Running)
                } else {
                    None
                },
                kind: if has(&["containers", "container"]) {
                    Some(GuestKind::Lxc)
                } else if has(&["vms", "vm", "virtual"]) {
                    Some(GuestKind::Qemu)
                } else {
                    None
                },
                node: slot("node"),
            },
            Kind::Storage => Intent::Storage {
                target: slot("target"),
            },
            Kind::Action(action) => Intent::Action {
                action,
                guest: slot("guest")?,
            },
            Kind::NodePower(action) => Intent::NodePower {
                action,
                node: slot("node")?,
            },
            Kind::ListSnapshots => Intent::ListSnapshots {
                guest: slot("guest")?,
            },
            Kind::TakeSnapshot => {
                // The reason with its preposition: "before the upgrade".
                let after_guest = captures
                    .iter()
                    .find(|(name, _)| *name == "guest")
                    .map(|(_, range)| range.end);
                let note = slot("note")
                    .and(after_guest)
                    .and_then(|from| tokens.get(from..).map(<[String]>::to_vec));
                Intent::TakeSnapshot {
                    guest: slot("guest")?,
                    note,
                    name: slot("snapshot"),
                }
            }
            Kind::Rollback => Intent::Rollback {
                guest: slot("guest")?,
                snapshot: slot("snapshot"),
            },
            Kind::Migrate => Intent::Migrate {
                guest: slot("guest")?,
                node: slot("node")?,
            },
            Kind::Forbidden(what) => Intent::Forbidden { what },
            Kind::Ping => Intent::Ping,
            Kind::Help => Intent::Help,
            Kind::Confirm => Intent::Confirm,
            Kind::Cancel => Intent::Cancel,
            Kind::Pick => Intent::Pick {
                choice: tokens.clone(),
            },
            Kind::Also => Intent::Also {
                target: slot("target")?,
            },
            Kind::Seen => Intent::Seen {
                object: slot("object"),
                place: slot("place"),
                present: when.is_none()
                    && matches!(tokens.first().map(String::as_str), Some("is" | "are")),
                when,
            },
            Kind::LastSeen => Intent::LastSeen {
                object: slot("object")?,
                place: slot("place"),
            },
            Kind::Count => Intent::CountSeen {
                object: slot("object")?,
                place: slot("place"),
                when,
            },
            Kind::WhoIsAt => Intent::WhoIsAt {
                place: slot("place")?,
            },
            Kind::Summary => Intent::Summary {
                place: slot("place"),
                when,
            },
            Kind::FrigateStatus => Intent::FrigateStatus,
            Kind::Disks(ask) => Intent::Disks {
                ask,
                // `rpool` is said, not captured: it is the pool asked about.
                target: slot("target").or_else(|| has(&["rpool"]).then(|| vec!["rpool".into()])),
            },
            Kind::BackupJob => Intent::BackupJob {
                last_night: has(super::backups::NIGHT_WORDS),
            },
            Kind::LastBackup => Intent::LastBackup {
                guest: slot("guest")?,
            },
            Kind::StaleBackups => Intent::StaleBackups {
                days: super::backups::days(slot("days").as_deref(), &tokens)?,
            },
            Kind::FailedTasks => Intent::FailedTasks {
                hours: super::backups::hours(slot("hours").as_deref())?,
                today: has(&["today", "morning"]),
            },
        };
        Some(Recognized { intent })
    }

    /// How [`Recognizer::recognize`] reads `tokens` (from [`spans`]): the slots of the template
    /// it would pick, with the names each may hold.
    pub fn reading<S: AsRef<str>>(&self, tokens: &[S]) -> Option<Reading> {
        let (t, captures) = self.best(tokens)?;
        Some(self.reading_of(t, &captures, true))
    }

    /// Every template `tokens` is the start of, with more still to say: "start the", "what is
    /// the status of", "how much memory does pve". The last slot may still be growing.
    pub fn prefix_readings<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<Reading> {
        let Some(first) = tokens.first() else {
            return Vec::new();
        };
        if tokens.len() > MAX_TOKENS {
            return Vec::new();
        }
        let mut readings = Vec::new();
        for &(t, e) in self.candidates(first.as_ref()) {
            for captures in self.templates[t].1.prefixes_of_expansion(e, tokens) {
                readings.push(self.reading_of(t, &captures, false));
            }
        }
        readings
    }

    fn reading_of(&self, t: usize, captures: &Captures, whole: bool) -> Reading {
        let kind = self.templates[t].0;
        let slots = captures
            .iter()
            .map(|(name, range)| SlotReading {
                range,
                kinds: slot_kinds(kind, name),
            })
            .collect();
        Reading {
            whole,
            slots,
            memory: kind.is_memory(),
            reply: kind.is_reply(),
        }
    }

    /// Expansions that can match tokens starting with `first`.
    fn candidates<'s>(&'s self, first: &str) -> impl Iterator<Item = &'s (usize, usize)> + 's {
        self.by_first_word
            .get(first)
            .into_iter()
            .flatten()
            .chain(self.slot_first.iter())
    }

    /// The template that matches all of `tokens`: the most specific (most literal words);
    /// between equals, the one listed first.
    fn best<S: AsRef<str>>(&self, tokens: &[S]) -> Option<(usize, Captures)> {
        let first = tokens.first()?;
        if tokens.len() > MAX_TOKENS {
            return None;
        }
        // Only expansions that start with the first word (or a slot) can match.
        let mut best: Option<(usize, Captures)> = None;
        for &(t, e) in self.candidates(first.as_ref()) {
            let template = &self.templates[t].1;
            let better = best.as_ref().is_none_or(|(bt, _)| {
                let current = self.templates[*bt].1.specificity();
                template.specificity() > current || template.specificity() == current && t < *bt
            });
            if !better {
                continue;
            }
            if let Some(captures) = template.matches_expansion(e, tokens) {
                best = Some((t, captures));
            }
        }
        best
    }
}

/// Longest request, in tokens, that is matched against the templates.
const MAX_TOKENS: usize = 40;

/// What the names in a slot may be, as the brain resolves them for each intent.
fn slot_kinds(kind: Kind, slot: &str) -> Kinds {
    match (kind, slot) {
        // Free words, read when the command is answered, as the event memory's names are.
        (_, "object" | "place" | "note" | "snapshot") => Kinds::MEMORY,
        (_, "node") => Kinds::NODES,
        (Kind::Disks(DiskAsk::Health | DiskAsk::Wear), _) => Kinds::NODES,
        // Numbers, read when the question is answered.
        (_, "days" | "hours") => Kinds::MEMORY,
        (Kind::Storage, _) => Kinds {
            nodes: true,
            guests: false,
            storages: true,
            memory: false,
        },
        _ => Kinds::ANY,
    }
}

/// How words fit one template: where its slots are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// The words are the whole sentence; otherwise its start, with more still to say.
    pub whole: bool,
    /// The slots the words fill, in order.
    pub slots: Vec<SlotReading>,
    /// A question about the event memory (answered without the cluster's names).
    pub memory: bool,
    /// A reply or a greeting ("yes", "cancel", "hello"), not a request: it may go on.
    pub reply: bool,
}

/// One slot of a [`Reading`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotReading {
    /// The tokens it holds.
    pub range: Range<usize>,
    /// What kind of name it takes.
    pub kinds: Kinds,
}

/// Words that open or close a request without changing it.
pub(crate) const LEADING_FILLER: &[&[&str]] = &[
    &["hey", "jarvis"],
    &["ok", "jarvis"],
    &["okay", "jarvis"],
    &["jarvis"],
    &["please"],
    &["can", "you"],
    &["could", "you"],
    &["would", "you"],
    &["will", "you"],
    &["i", "want", "you", "to"],
    &["i'd", "like", "you", "to"],
    &["go", "and"],
    &["tell", "me"],
    &["do", "you", "know"],
];
pub(crate) const TRAILING_FILLER: &[&[&str]] = &[
    &["please"],
    &["for", "me"],
    &["right", "now"],
    &["jarvis"],
    &["thanks"],
    &["thank", "you"],
];

/// Lower-case words without punctuation (apostrophes inside words kept) or filler.
pub fn tokens(text: &str) -> Vec<String> {
    spans(text).into_iter().map(|s| s.word).collect()
}

/// One word of a text and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The word as [`tokens`] has it: lower case, no punctuation around it.
    pub word: String,
    /// Its bytes in the text.
    pub at: Range<usize>,
}

/// [`tokens`] with where each word is in `text`, so a match can be mapped back to the text.
pub fn spans(text: &str) -> Vec<Span> {
    let mut words = word_spans(text);
    loop {
        let before = words.len();
        for filler in LEADING_FILLER {
            if words.len() > filler.len() && starts_with(&words, filler) {
                words.drain(..filler.len());
            }
        }
        for filler in TRAILING_FILLER {
            if words.len() > filler.len()
                && words[words.len() - filler.len()..]
                    .iter()
                    .zip(filler.iter())
                    .all(|(w, f)| w.word == *f)
            {
                words.truncate(words.len() - filler.len());
            }
        }
        if words.len() == before {
            break;
        }
    }
    words
}

/// Every word of `text` with where it is, filler included.
pub fn word_spans(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let separator =
        |c: char| c.is_whitespace() || (c.is_ascii_punctuation() && c != '\'' && c != '-');
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (start, separator(c)) {
            (None, false) => start = Some(i),
            (Some(from), true) => {
                start = None;
                let piece = text.get(from..i).unwrap_or_default();
                let inner = piece.trim_start_matches(['\'', '-']);
                let skipped = piece.len() - inner.len();
                let inner = inner.trim_end_matches(['\'', '-']);
                if !inner.is_empty() {
                    out.push(Span {
                        word: inner.to_lowercase().replace('\u{2019}', "'"),
                        at: from + skipped..from + skipped + inner.len(),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

fn starts_with(words: &[Span], phrase: &[&str]) -> bool {
    words.len() >= phrase.len() && words.iter().zip(phrase).all(|(w, p)| w.word == *p)
}

/// Whether the words are only what opens a request ("hey jarvis", "can you", "please"): the
/// request itself is still to come.
pub fn only_filler(words: &[Span]) -> bool {
    let mut rest = words;
    while !rest.is_empty() {
        let Some(filler) = LEADING_FILLER.iter().find(|f| starts_with(rest, f)) else {
            return false;
        };
        rest = rest.get(filler.len()..).unwrap_or_default();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recognize(text: &str) -> Intent {
        Recognizer::new()
            .unwrap()
            .recognize(text)
            .unwrap_or_else(|| panic!("not recognized: {text}"))
            .intent
    }

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_sentences_from_the_issue() {
        assert_eq!(
            recognize("What's the status of node pve?"),
            Intent::Status {
                target: words("node pve"),
                aspect: Aspect::All
            }
        );
        assert_eq!(
            recognize("How much memory is home using?"),
            Intent::Status {
                target: words("home"),
                aspect: Aspect::Memory
            }
        );
        assert_eq!(
            recognize("Start VM one oh one."),
            Intent::Action {
                action: GuestAction::Start,
                guest: words("vm one oh one")
            }
        );
        assert_eq!(
            recognize("Reboot the media server."),
            Intent::Action {
                action: GuestAction::Reboot,
                guest: words("the media server")
            }
        );
        assert_eq!(
            recognize("Hey Jarvis, how is the cluster doing?"),
            Intent::ClusterOverview
        );
        assert_eq!(recognize("Is anything down?"), Intent::ClusterOverview);
        for said in [
            "Are there any problems with the cluster?",
            "Are there any problems with a cluster?",
            "Are there any issues with my homelab?",
        ] {
            assert_eq!(recognize(said), Intent::ClusterOverview, "{said}");
        }
        assert_eq!(recognize("Ping."), Intent::Ping);
        assert_eq!(recognize("What can you do?"), Intent::Help);
        assert_eq!(recognize("Yes, do it."), Intent::Confirm);
        assert_eq!(recognize("Confirm."), Intent::Confirm);
        for said in [
            "And what about pve?",
            "what about pve",
            "and how about pve too",
            "and pve",
        ] {
            assert_eq!(
                recognize(said),
                Intent::Also {
                    target: vec!["pve".into()]
                },
                "{said}"
            );
        }
        assert_eq!(recognize("Cancel."), Intent::Cancel);
        assert_eq!(recognize("Never mind."), Intent::Cancel);
    }

    #[test]
    fn listing_guests_by_state_kind_and_node() {
        assert_eq!(
            recognize("Which VMs are running on agent one?"),
            Intent::ListGuests {
                state: Some(GuestState::Running),
                kind: Some(GuestKind::Qemu),
                node: Some(words("agent one"))
            }
        );
        assert_eq!(
            recognize("List stopped containers."),
            Intent::ListGuests {
                state: Some(GuestState::Stopped),
                kind: Some(GuestKind::Lxc),
                node: None
            }
        );
        assert_eq!(
            recognize("What's running on pve?"),
            Intent::ListGuests {
                state: Some(GuestState::Running),
                kind: None,
                node: Some(words("pve"))
            }
        );
    }

    #[test]
    fn aspects_storage_and_forbidden() {
        for (text, aspect) in [
            ("How long has pve been up?", Aspect::Uptime),
            ("What's the CPU usage of agent1?", Aspect::Cpu),
            ("Are there updates for pve?", Aspect::Updates),
            ("Are there any updates for pve?", Aspect::Updates),
            ("What's the load on pve?", Aspect::Load),
            ("Is pihole running?", Aspect::Running),
        ] {
            assert!(
                matches!(recognize(text), Intent::Status { aspect: a, .. } if a == aspect),
                "{text}"
            );
        }
        assert_eq!(
            recognize("How full is the storage?"),
            Intent::Storage { target: None }
        );
        assert_eq!(
            recognize("How full is local-lvm?"),
            Intent::Storage {
                target: Some(words("local-lvm"))
            }
        );
        assert!(matches!(
            recognize("Delete VM 101"),
            Intent::Forbidden { .. }
        ));
        assert!(matches!(
            recognize("Run a shell command on pve"),
            Intent::Forbidden { .. }
        ));
        assert!(matches!(
            recognize("Shut down the media server"),
            Intent::Action {
                action: GuestAction::Shutdown,
                ..
            }
        ));
        assert!(matches!(
            recognize("Turn nextcloud off"),
            Intent::Action {
                action: GuestAction::Shutdown,
                ..
            }
        ));
    }

    #[test]
    fn not_recognized() {
        let r = Recognizer::new().unwrap();
        assert!(r.recognize("").is_none());
        assert!(r.recognize("the quick brown fox jumps").is_none());
        assert!(r.recognize(&"word ".repeat(1000)).is_none());
    }
}
