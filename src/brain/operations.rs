//! Node power, snapshots and migration: the intents that ask for them, the policy around them
//! and their replies. `engine.rs` routes the intents here and hands over every
//! [`ActionRequest`] that is not a guest's power.
//!
//! Decisions, beyond the tiers in [`policy`]:
//! - A node reboot or shutdown takes every running guest on it down, protected ones included,
//!   so it is refused while a protected guest runs there (move it away or stop it first), and
//!   for a node in `policy.protected_nodes` or one Jarvis or Home Assistant runs on directly.
//!   The question names what goes down ("Reboot pve? Its 3 running guests go down with it:
//!   media-server, pihole and nextcloud.").
//! - Stop-all skips protected guests (`vms=` lists the others) and says so; start-all starts
//!   the stopped guests (`vms=` and `force=1`, else Proxmox starts only those marked "start at
//!   boot").
//! - Protected guests are `policy.protected_guests`, plus, with `policy.detect_protected`, the
//!   guests that run Home Assistant or Jarvis: named like Home Assistant or like this machine,
//!   or with an address (guest agent, container interfaces) that is this machine's or one of
//!   `policy.home_assistant_hosts`.
//! - A snapshot name said or derived is checked as Proxmox checks it before anything is sent;
//!   a rollback names the snapshot's age and what is lost; a migration names the target node
//!   and the downtime its mode implies.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::audit;
use super::engine::{Brain, Ctx, Response};
use super::intents::Intent;
use super::names::{Directory, Kinds, Target};
use super::policy::{self, Verdict};
use super::speech;
use super::types::{Action, ActionReport, ActionRequest, Decision};
use crate::proxmox::operations::check_snapshot_name;
use crate::proxmox::{
    Guest, GuestAction, GuestState, Inventory, MigrationMode, NodeAction, NodeState, Proxmox,
    ProxmoxError, Snapshot, TaskResult,
};

/// How long the guest agent of one guest may take to tell its addresses.
const ADDRESS_TIMEOUT: Duration = Duration::from_secs(2);
/// Names Home Assistant's VM or container usually has (separators removed, lower case).
const HOME_ASSISTANT_NAMES: &[&str] = &[
    "haos",
    "hassos",
    "hass",
    "hassio",
    "homeassistant",
    "homeassistantos",
];

/// Answers the intents of this module.
pub(super) async fn run(
    brain: &Brain,
    proxmox: &Proxmox,
    directory: &Directory,
    intent: &Intent,
    ctx: &Ctx,
) -> Response {
    match intent {
        Intent::NodePower { action, node } => match ctx.resolve(directory, node, Kinds::NODES) {
            Ok(Target::Node(node)) => {
                act(
                    brain,
                    ctx,
                    Action::Node {
                        node,
                        action: *action,
                    },
                )
                .await
            }
            Ok(_) => Response::local(format!("{} isn't a node.", node.join(" "))),
            Err(unresolved) => unresolved.into(),
        },
        Intent::ListSnapshots { guest } => match guest_of(brain, ctx, directory, guest).await {
            Ok(guest) => match proxmox.snapshots(&guest.reference()).await {
                Ok(list) => Response::local(describe_snapshots(&guest.name, &list, now())),
                Err(err) => Response::local(read_error(&err, &guest)),
            },
            Err(response) => *response,
        },
        Intent::TakeSnapshot { guest, note, name } => {
            let guest = match guest_of(brain, ctx, directory, guest).await {
                Ok(guest) => guest,
                Err(response) => return *response,
            };
            let description = note.as_ref().map(|words| words.join(" "));
            let name = match name {
                Some(words) => words.join("_"),
                None => {
                    let taken: HashSet<String> = proxmox
                        .snapshots(&guest.reference())
                        .await
                        .map(|list| list.into_iter().map(|s| s.name).collect())
                        .unwrap_or_default();
                    derive_name(description.as_deref(), &taken, SystemTime::now())
                }
            };
            if let Err(err) = check_snapshot_name(&name) {
                // Nothing is sent; the report still goes through the audit log.
                return act_refused(
                    brain,
                    ctx,
                    Action::Snapshot {
                        vmid: guest.vmid,
                        name,
                        description: description.unwrap_or_default(),
                    },
                    format!("I can't use that name: {err}. Nothing was changed."),
                )
                .await;
            }
            let action = Action::Snapshot {
                vmid: guest.vmid,
                name,
                description: description.unwrap_or_else(|| "taken by Jarvis".into()),
            };
            act(brain, ctx, action).await
        }
        Intent::Rollback { guest, snapshot } => {
            let guest = match guest_of(brain, ctx, directory, guest).await {
                Ok(guest) => guest,
                Err(response) => return *response,
            };
            let list = match proxmox.snapshots(&guest.reference()).await {
                Ok(list) => list,
                Err(err) => return Response::local(read_error(&err, &guest)),
            };
            let found = match snapshot {
                None => list.iter().max_by_key(|s| s.time.unwrap_or(0)),
                Some(words) => find_snapshot(&list, words),
            };
            let Some(found) = found else {
                let reply = match (snapshot, list.is_empty()) {
                    (_, true) => format!("{} has no snapshots to roll back to.", guest.name),
                    (Some(words), false) => format!(
                        "{} has no snapshot called {}. Its snapshots are {}.",
                        guest.name,
                        words.join(" "),
                        speech::list(&names(&list), 5)
                    ),
                    (None, false) => format!("{} has no snapshots to roll back to.", guest.name),
                };
                return act_refused(
                    brain,
                    ctx,
                    Action::Rollback {
                        vmid: guest.vmid,
                        snapshot: snapshot.as_ref().map(|w| w.join("_")).unwrap_or_default(),
                    },
                    reply,
                )
                .await;
            };
            let action = Action::Rollback {
                vmid: guest.vmid,
                snapshot: found.name.clone(),
            };
            act(brain, ctx, action).await
        }
        Intent::Migrate { guest, node } => {
            let guest = match guest_of(brain, ctx, directory, guest).await {
                Ok(guest) => guest,
                Err(response) => return *response,
            };
            match ctx.resolve(directory, node, Kinds::NODES) {
                Ok(Target::Node(target)) => {
                    let action = Action::Migrate {
                        vmid: guest.vmid,
                        target,
                    };
                    act(brain, ctx, action).await
                }
                Ok(_) => Response::local(format!("{} isn't a node.", node.join(" "))),
                Err(unresolved) => unresolved.into(),
            }
        }
        _ => Response::local("Sorry, I didn't understand that."),
    }
}

/// "Reboot pve", "shut down pve" said like a guest's power action.
pub(super) async fn power_node_said(
    brain: &Brain,
    node: &str,
    action: GuestAction,
    ctx: &Ctx,
) -> Response {
    let action = match action {
        GuestAction::Reboot => NodeAction::Reboot,
        GuestAction::Shutdown => NodeAction::Shutdown,
        GuestAction::Start => {
            return Response::local(format!(
                "{node} is a node. To start its stopped guests, say start all guests on {node}."
            ));
        }
        GuestAction::Stop => {
            return Response::local(format!(
                "{node} is a node. To stop its guests, say stop all guests on {node}; to power it \
                 off, say shut down node {node}."
            ));
        }
    };
    act(
        brain,
        ctx,
        Action::Node {
            node: node.to_owned(),
            action,
        },
    )
    .await
}

async fn act(brain: &Brain, ctx: &Ctx, action: Action) -> Response {
    let report = brain
        .act(ActionRequest {
            channel: ctx.channel,
            client: ctx.client.clone(),
            conversation: Some(ctx.conversation.clone()),
            action,
            approved: ctx.approved,
        })
        .await;
    Response {
        actions: vec![report.clone()],
        ..Response::local(report.reply)
    }
}

/// A request refused before it reached the policy (a bad snapshot name, a snapshot that does
/// not exist), audited and announced like any other.
async fn act_refused(brain: &Brain, ctx: &Ctx, action: Action, reason: String) -> Response {
    let report = brain
        .record_refusal(
            ActionRequest {
                channel: ctx.channel,
                client: ctx.client.clone(),
                conversation: Some(ctx.conversation.clone()),
                action,
                approved: ctx.approved,
            },
            reason,
        )
        .await;
    Response {
        actions: vec![report.clone()],
        ..Response::local(report.reply)
    }
}

/// The guest the words name (not a node or storage).
async fn guest_of(
    brain: &Brain,
    ctx: &Ctx,
    directory: &Directory,
    words: &[String],
) -> Result<Guest, Box<Response>> {
    match ctx.resolve(directory, words, Kinds::ANY) {
        Ok(Target::Guest(vmid)) => {
            let guest = brain
                .proxmox
                .as_ref()
                .and_then(Proxmox::cached_inventory)
                .and_then(|(inventory, _)| inventory.guest(vmid).cloned());
            guest.ok_or_else(|| {
                Box::new(Response::local(format!("There's no guest with ID {vmid}.")))
            })
        }
        Ok(Target::Node(name)) => Err(Box::new(Response::local(format!(
            "{name} is a node; snapshots and moves are for VMs and containers."
        )))),
        Ok(Target::Storage(id)) => Err(Box::new(Response::local(format!(
            "{id} is a storage, not a VM or container."
        )))),
        Err(unresolved) => Err(Box::new(unresolved.into())),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn names(list: &[Snapshot]) -> Vec<String> {
    list.iter().map(|s| s.name.clone()).collect()
}

/// "from 3 hours ago", or nothing when the time is unknown.
fn age(snapshot: &Snapshot, now: u64) -> String {
    snapshot
        .time
        .map(|t| {
            format!(
                " from {} ago",
                speech::duration(now.saturating_sub(t)).replace(" and ", ", ")
            )
        })
        .unwrap_or_default()
}

fn describe_snapshots(guest: &str, list: &[Snapshot], now: u64) -> String {
    if list.is_empty() {
        return format!("{guest} has no snapshots.");
    }
    let newest_first: Vec<String> = list
        .iter()
        .rev()
        .map(|s| format!("{}{}", s.name, age(s, now)))
        .collect();
    format!(
        "{guest} has {}: {}.",
        speech::count(list.len(), "snapshot"),
        speech::list(&newest_first, 4)
    )
}

/// The snapshot the words name: by name (spaces standing for `_` or `-`, or left out) or by
/// its description.
fn find_snapshot<'s>(list: &'s [Snapshot], words: &[String]) -> Option<&'s Snapshot> {
    let key = |text: &str| -> String {
        text.chars()
            .filter(char::is_ascii_alphanumeric)
            .flat_map(|c| c.to_lowercase())
            .collect()
    };
    let said = key(&words.join(""));
    let said = said.strip_prefix("snapshot").unwrap_or(&said).to_owned();
    if said.is_empty() {
        return None;
    }
    list.iter()
        .find(|s| key(&s.name) == said)
        .or_else(|| list.iter().find(|s| key(&s.description) == said))
}

/// A valid snapshot name from the words said after the guest ("before the upgrade" →
/// `before_the_upgrade`), else `jarvis_<UTC date>_<time>`; `_2`, `_3`, ... when taken.
pub(crate) fn derive_name(note: Option<&str>, taken: &HashSet<String>, at: SystemTime) -> String {
    let from_words = note
        .map(|note| {
            let mut name = String::new();
            // A word with letters outside ASCII is left out, not mangled ("über" is not "ber").
            for word in note.split_whitespace().filter(|w| w.is_ascii()) {
                let word: String = word
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                    .flat_map(|c| c.to_lowercase())
                    .collect();
                if word.is_empty() {
                    continue;
                }
                let extra = usize::from(!name.is_empty()) + word.len();
                if name.len() + extra > 32 {
                    break;
                }
                if !name.is_empty() {
                    name.push('_');
                }
                name.push_str(&word);
            }
            name
        })
        .filter(|name| check_snapshot_name(name).is_ok());
    let base = from_words.unwrap_or_else(|| {
        // 2026-12-04T10:15:00Z → jarvis_20261204_1015
        let stamp = humantime::format_rfc3339_seconds(at).to_string();
        let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
        let (date, time) = digits.split_at(digits.len().min(8));
        format!("jarvis_{date}_{}", time.get(..4).unwrap_or(time))
    });
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

fn read_error(err: &ProxmoxError, guest: &Guest) -> String {
    match err {
        ProxmoxError::Forbidden { .. } => format!(
            "Proxmox won't show me {}'s snapshots: my API token lacks VM.Audit on /vms/{}.",
            guest.name, guest.vmid
        ),
        other => other.spoken(),
    }
}

/// Decides and carries out every action but a guest's power (see [`Brain::act`]).
pub(super) async fn decide_and_act(
    brain: &Brain,
    request: &ActionRequest,
) -> (ActionReport, Option<String>) {
    let refuse = |guest: Option<&Guest>, reply: String| {
        let outcome = Some(format!("refused: {reply}"));
        let mut report = ActionReport::new(&request.action, Decision::Refused, reply);
        report.guest = guest.map(|g| g.name.clone());
        (report, outcome)
    };
    let Some(proxmox) = brain.proxmox.as_ref() else {
        return refuse(None, super::engine::NO_PROXMOX.into());
    };
    let inventory = match proxmox.inventory().await {
        Ok(inventory) => inventory,
        Err(err) => return refuse(None, err.spoken()),
    };
    if let Action::Node { node, action } = &request.action {
        return decide_node(brain, proxmox, &inventory, request, node, *action).await;
    }
    let Some(guest) = request.action.vmid().and_then(|vmid| inventory.guest(vmid)) else {
        return refuse(
            None,
            format!(
                "There's no guest with ID {}.",
                request.action.vmid().unwrap_or(0)
            ),
        );
    };
    let said = policy::phrase(&request.action, &guest.name);
    let verdict = policy::judge(&brain.policy, request, guest);
    if let Verdict::Refuse(reason) = verdict {
        return refuse(Some(guest), reason);
    }
    if inventory
        .node(&guest.node)
        .is_some_and(|n| n.status != NodeState::Online)
    {
        return refuse(
            Some(guest),
            format!(
                "{} is on {}, which is offline, so I can't {said}.",
                guest.name, guest.node
            ),
        );
    }
    // What the question says, and checks that need Proxmox or the inventory.
    let question = match &request.action {
        Action::Snapshot { name, .. } => {
            if let Err(err) = check_snapshot_name(name) {
                return refuse(Some(guest), format!("I can't use that name: {err}."));
            }
            None
        }
        Action::Rollback { snapshot, .. } => {
            let list = match proxmox.snapshots(&guest.reference()).await {
                Ok(list) => list,
                Err(err) => return refuse(Some(guest), read_error(&err, guest)),
            };
            let Some(found) = list.iter().find(|s| s.name == *snapshot) else {
                return refuse(
                    Some(guest),
                    format!("{} has no snapshot called {snapshot}.", guest.name),
                );
            };
            let mut question = format!(
                "Roll {} back to {}{}? Everything since then is lost",
                guest.name,
                found.name,
                age(found, now())
            );
            if guest.status == GuestState::Running && !found.vmstate {
                question.push_str(", and it ends up stopped");
            }
            question.push('.');
            Some(question)
        }
        Action::Migrate { target, .. } => {
            if *target == guest.node {
                return refuse(
                    Some(guest),
                    format!("{} is already on {target}.", guest.name),
                );
            }
            match inventory.node(target) {
                None => {
                    return refuse(Some(guest), format!("I don't know a node called {target}."));
                }
                Some(node) if node.status != NodeState::Online => {
                    return refuse(
                        Some(guest),
                        format!("{target} is offline, so I can't move {} there.", guest.name),
                    );
                }
                Some(_) => {}
            }
            let kind = guest.kind.spoken();
            let downtime = match MigrationMode::for_guest(guest) {
                MigrationMode::Online => format!(
                    "It's a running {kind}, so it moves live: no downtime beyond a short pause."
                ),
                MigrationMode::Restart => {
                    format!("It's a running {kind}, so it restarts: a short downtime.")
                }
                MigrationMode::Offline => {
                    format!("It's a stopped {kind}, so nothing is interrupted.")
                }
            };
            Some(format!("Move {} to {target}? {downtime}", guest.name))
        }
        Action::Power { .. } | Action::Node { .. } => None,
    };
    if !brain.audit.is_writable() {
        return refuse(
            Some(guest),
            format!("I can't {said} because my audit log can't be written. Fix audit.path first."),
        );
    }
    if verdict == Verdict::Confirm {
        let question = question.unwrap_or_else(|| format!("{}?", capitalize(&said)));
        return ask(brain, request, Some(guest), question);
    }
    if let Some(reason) = brain.lease_refusal() {
        return refuse(Some(guest), reason);
    }
    let reference = guest.reference();
    let sent = match &request.action {
        Action::Snapshot {
            name, description, ..
        } => proxmox.snapshot(&reference, name, description).await,
        Action::Rollback { snapshot, .. } => proxmox.rollback(&reference, snapshot).await,
        Action::Migrate { target, .. } => {
            proxmox
                .migrate(&reference, target, MigrationMode::for_guest(guest))
                .await
        }
        Action::Power { .. } | Action::Node { .. } => {
            return refuse(Some(guest), "That isn't an action for here.".into());
        }
    };
    let mut report = ActionReport::new(&request.action, Decision::Allowed, String::new());
    report.guest = Some(guest.name.clone());
    let upid = match sent {
        Ok(upid) => upid,
        Err(err) => {
            report.reply = write_error(&err, &said, &request.action);
            return (report, Some(format!("failed: {err}")));
        }
    };
    let outcome = proxmox.wait_task(&upid).await;
    let done = match &request.action {
        Action::Snapshot { name, .. } => {
            format!("I took a snapshot of {} called {name}.", guest.name)
        }
        Action::Rollback { snapshot, .. } => format!("{} is back at {snapshot}.", guest.name),
        Action::Migrate { target, .. } => format!("{} is now on {target}.", guest.name),
        Action::Power { .. } | Action::Node { .. } => String::new(),
    };
    report.reply = task_reply(&outcome.result, &done, &said);
    let words = audit::outcome(&outcome.result);
    report.task = Some(outcome);
    (report, Some(words))
}

/// A node action: the node's state, the policy, what it runs and who is protected.
async fn decide_node(
    brain: &Brain,
    proxmox: &Proxmox,
    inventory: &Inventory,
    request: &ActionRequest,
    node: &str,
    action: NodeAction,
) -> (ActionReport, Option<String>) {
    let refuse = |reply: String| {
        let outcome = Some(format!("refused: {reply}"));
        (
            ActionReport::new(&request.action, Decision::Refused, reply),
            outcome,
        )
    };
    let said = policy::phrase(&request.action, node);
    let Some(found) = inventory.node(node) else {
        return refuse(format!("I don't know a node called {node}."));
    };
    if found.status != NodeState::Online {
        return refuse(format!(
            "{node} is {}, so I can't {said}.",
            match found.status {
                NodeState::Offline => "offline",
                _ => "not answering",
            }
        ));
    }
    let verdict = policy::judge_node(&brain.policy, request, node);
    if let Verdict::Refuse(reason) = verdict {
        return refuse(reason);
    }
    let guests: Vec<&Guest> = inventory
        .guests
        .iter()
        .filter(|g| g.node == node && !g.template)
        .collect();
    let running: Vec<&Guest> = guests
        .iter()
        .copied()
        .filter(|g| g.status == GuestState::Running || g.status == GuestState::Paused)
        .collect();
    let watch = Watch::new(&brain.policy);
    let protected = watch.protected(proxmox, &running).await;
    let is_protected = |g: &Guest| protected.iter().any(|p| p.vmid == g.vmid);
    let protected_names: Vec<String> = protected.iter().map(|g| g.name.clone()).collect();
    let (question, vms) = match action {
        NodeAction::Reboot | NodeAction::Shutdown => {
            if let Some(why) = watch.hosts_node(proxmox, node).await {
                return refuse(format!(
                    "{why} runs on {node}, so I won't {said}. Do it from the Proxmox web \
                     interface."
                ));
            }
            if !protected.is_empty() {
                return refuse(format!(
                    "{node} runs {}, which {} protected, so I won't {said}: {} would go down \
                     with it. Move {} to another node first.",
                    speech::list(&protected_names, 4),
                    if protected.len() == 1 { "is" } else { "are" },
                    if protected.len() == 1 { "it" } else { "they" },
                    if protected.len() == 1 { "it" } else { "them" },
                ));
            }
            let names: Vec<String> = running.iter().map(|g| g.name.clone()).collect();
            let blast = match names.len() {
                0 => "Nothing runs on it.".to_owned(),
                n => format!(
                    "{} go{} down with it: {}.",
                    capitalize(&if n == 1 {
                        "its 1 running guest".to_owned()
                    } else {
                        format!("its {n} running guests")
                    }),
                    if n == 1 { "es" } else { "" },
                    speech::list(&names, 3)
                ),
            };
            (format!("{}? {blast}", capitalize(&said)), Vec::new())
        }
        NodeAction::StopAll => {
            let stopping: Vec<&Guest> = running
                .iter()
                .copied()
                .filter(|g| !is_protected(g))
                .collect();
            if stopping.is_empty() {
                let reply = if protected.is_empty() {
                    format!("Nothing is running on {node}.")
                } else {
                    format!(
                        "Only {} {} running on {node}, and protected, so there's nothing for me \
                         to stop.",
                        speech::list(&protected_names, 4),
                        if protected.len() == 1 { "is" } else { "are" }
                    )
                };
                return (
                    ActionReport::new(&request.action, Decision::Allowed, reply),
                    Some("nothing to do".into()),
                );
            }
            let names: Vec<String> = stopping.iter().map(|g| g.name.clone()).collect();
            let mut question = format!(
                "Stop all guests on {node}? That stops {}: {}.",
                speech::count(names.len(), "guest"),
                speech::list(&names, 3)
            );
            if !protected.is_empty() {
                question.push_str(&format!(
                    " {} {} protected, so I'll leave {} running.",
                    speech::list(&protected_names, 3),
                    if protected.len() == 1 { "is" } else { "are" },
                    if protected.len() == 1 { "it" } else { "them" },
                ));
            }
            (question, stopping.iter().map(|g| g.vmid).collect())
        }
        NodeAction::StartAll => {
            let stopped: Vec<&Guest> = guests
                .iter()
                .copied()
                .filter(|g| g.status == GuestState::Stopped)
                .collect();
            if stopped.is_empty() {
                return (
                    ActionReport::new(
                        &request.action,
                        Decision::Allowed,
                        format!("Everything on {node} is already running."),
                    ),
                    Some("nothing to do".into()),
                );
            }
            let names: Vec<String> = stopped.iter().map(|g| g.name.clone()).collect();
            (
                format!(
                    "Start {} on {node}: {}?",
                    if names.len() == 1 {
                        "the 1 stopped guest".to_owned()
                    } else {
                        format!("the {} stopped guests", names.len())
                    },
                    speech::list(&names, 3)
                ),
                stopped.iter().map(|g| g.vmid).collect(),
            )
        }
    };
    if !brain.audit.is_writable() {
        return refuse(format!(
            "I can't {said} because my audit log can't be written. Fix audit.path first."
        ));
    }
    if verdict == Verdict::Confirm {
        return ask(brain, request, None, question);
    }
    if let Some(reason) = brain.lease_refusal() {
        return refuse(reason);
    }
    let mut report = ActionReport::new(&request.action, Decision::Allowed, String::new());
    let sent = proxmox.node_action(node, action, &vms).await;
    let upid = match sent {
        Ok(Some(upid)) => upid,
        Ok(None) => {
            report.reply = match action {
                NodeAction::Shutdown => format!("{node} is shutting down."),
                _ => format!("{node} is rebooting."),
            };
            return (
                report,
                Some("sent (a node reboot or shutdown has no task)".into()),
            );
        }
        Err(err) => {
            report.reply = write_error(&err, &said, &request.action);
            return (report, Some(format!("failed: {err}")));
        }
    };
    let outcome = proxmox.wait_task(&upid).await;
    let names: Vec<String> = vms
        .iter()
        .filter_map(|vmid| inventory.guest(*vmid).map(|g| g.name.clone()))
        .collect();
    let done = format!(
        "{} {} on {node}: {}.",
        if action == NodeAction::StartAll {
            "Started"
        } else {
            "Stopped"
        },
        speech::count(names.len(), "guest"),
        speech::list(&names, 3)
    );
    report.reply = task_reply(&outcome.result, &done, &said);
    let words = audit::outcome(&outcome.result);
    report.task = Some(outcome);
    (report, Some(words))
}

/// Asks for a confirmation in the request's conversation.
fn ask(
    brain: &Brain,
    request: &ActionRequest,
    guest: Option<&Guest>,
    question: String,
) -> (ActionReport, Option<String>) {
    let mut report = ActionReport::new(&request.action, Decision::Refused, String::new());
    report.guest = guest.map(|g| g.name.clone());
    let Some(conversation) = &request.conversation else {
        report.reply = "This needs a confirmation, and this request has no conversation to \
                        confirm in."
            .into();
        return (report, Some("refused: no conversation".into()));
    };
    let question = format!(
        "{question} Say confirm within {} seconds.",
        brain.confirmations.timeout().as_secs()
    );
    let key = Ctx::key_of(request.channel, conversation);
    brain
        .confirmations
        .ask(&key, request.clone(), question.clone());
    report.decision = Decision::NeedsConfirmation;
    report.reply = question;
    (report, Some("waiting for confirmation".into()))
}

fn task_reply(result: &TaskResult, done: &str, said: &str) -> String {
    match result {
        TaskResult::Ok => done.to_owned(),
        TaskResult::Warnings { count } => format!(
            "{} ({} from Proxmox).",
            done.trim_end_matches('.'),
            speech::count(*count as usize, "warning")
        ),
        TaskResult::Failed { message } => format!("Proxmox couldn't {said}: {message}."),
        TaskResult::TimedOut => format!("I asked Proxmox to {said}, but it hasn't finished yet."),
    }
}

fn write_error(err: &ProxmoxError, said: &str, action: &Action) -> String {
    match err {
        ProxmoxError::Forbidden { .. } => {
            let privilege = match action {
                Action::Snapshot { vmid, .. } => format!("VM.Snapshot on /vms/{vmid}"),
                Action::Rollback { vmid, .. } => {
                    format!("VM.Snapshot.Rollback on /vms/{vmid}")
                }
                Action::Migrate { vmid, .. } => format!("VM.Migrate on /vms/{vmid}"),
                Action::Node {
                    node,
                    action: NodeAction::Reboot | NodeAction::Shutdown,
                } => format!("Sys.PowerMgmt on /nodes/{node}"),
                Action::Node { .. } | Action::Power { .. } => "VM.PowerMgmt".into(),
            };
            format!("Proxmox won't let me {said}: my API token lacks {privilege}.")
        }
        ProxmoxError::Server { message, .. } => format!(
            "Proxmox couldn't {said}: {}.",
            message
                .lines()
                .next()
                .unwrap_or_default()
                .trim_end_matches('.')
        ),
        other => other.spoken(),
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Who must not go down: the configured guests and, with `policy.detect_protected`, the
/// machines Home Assistant and Jarvis run on.
struct Watch<'p> {
    policy: &'p crate::config::PolicyConfig,
    /// This machine's addresses and Home Assistant's.
    addresses: Vec<IpAddr>,
    /// This machine's host name, lower case.
    hostname: Option<String>,
}

impl<'p> Watch<'p> {
    fn new(policy: &'p crate::config::PolicyConfig) -> Self {
        let mut addresses = policy.home_assistant_hosts.clone();
        let mut hostname = None;
        if policy.detect_protected {
            addresses.extend(
                if_addrs::get_if_addrs()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|i| i.ip())
                    .filter(|ip| !ip.is_loopback()),
            );
            hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_lowercase())
                .filter(|h| !h.is_empty() && h != "localhost");
        }
        Self {
            policy,
            addresses,
            hostname,
        }
    }

    /// The guests among `running` that must not go down.
    async fn protected<'g>(&self, proxmox: &Proxmox, running: &[&'g Guest]) -> Vec<&'g Guest> {
        let mut found: Vec<&Guest> = running
            .iter()
            .copied()
            .filter(|g| policy::is_protected(self.policy, g) || self.by_name(g))
            .collect();
        if !self.policy.detect_protected || self.addresses.is_empty() {
            return found;
        }
        let rest: Vec<&Guest> = running
            .iter()
            .copied()
            .filter(|g| !found.iter().any(|f| f.vmid == g.vmid))
            .collect();
        let lookups = rest.iter().map(|g| async move {
            let addresses =
                tokio::time::timeout(ADDRESS_TIMEOUT, proxmox.guest_addresses(&g.reference()))
                    .await;
            match addresses {
                Ok(Ok(list)) if list.iter().any(|ip| self.addresses.contains(ip)) => Some(*g),
                _ => None,
            }
        });
        found.extend(
            futures_util::future::join_all(lookups)
                .await
                .into_iter()
                .flatten(),
        );
        found
    }

    fn by_name(&self, guest: &Guest) -> bool {
        if !self.policy.detect_protected {
            return false;
        }
        let bare: String = guest
            .name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .flat_map(|c| c.to_lowercase())
            .collect();
        HOME_ASSISTANT_NAMES.contains(&bare.as_str())
            || self
                .hostname
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(&guest.name))
    }

    /// Who runs on `node` itself (its cluster address is this machine's or Home Assistant's).
    async fn hosts_node(&self, proxmox: &Proxmox, node: &str) -> Option<&'static str> {
        if !self.policy.detect_protected || self.addresses.is_empty() {
            return None;
        }
        let status = proxmox.cluster_status().await.ok()?;
        let ip: IpAddr = status
            .members
            .iter()
            .find(|m| m.name == node)?
            .ip
            .as_deref()?
            .parse()
            .ok()?;
        if self.policy.home_assistant_hosts.contains(&ip) {
            Some("Home Assistant")
        } else if self.addresses.contains(&ip) {
            Some("Jarvis")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(name: &str, description: &str, time: u64) -> Snapshot {
        Snapshot {
            name: name.into(),
            description: description.into(),
            time: Some(time),
            vmstate: false,
            parent: None,
        }
    }

    #[test]
    fn names_are_derived_from_the_words_or_the_time() {
        let none = HashSet::new();
        let at = UNIX_EPOCH + Duration::from_secs(1_796_379_300); // 2026-12-04 10:15 UTC
        assert_eq!(
            derive_name(Some("before the upgrade"), &none, at),
            "before_the_upgrade"
        );
        assert_eq!(derive_name(None, &none, at), "jarvis_20261204_1015");
        // Words that make no valid name: the time instead.
        assert_eq!(derive_name(Some("über"), &none, at), "jarvis_20261204_1015");
        assert_eq!(
            derive_name(Some("2 things"), &none, at),
            "jarvis_20261204_1015"
        );
        let long = derive_name(Some(&"word ".repeat(30)), &none, at);
        assert!(
            check_snapshot_name(&long).is_ok() && long.len() <= 32,
            "{long}"
        );
        let taken: HashSet<String> = ["before_the_upgrade".to_owned()].into();
        assert_eq!(
            derive_name(Some("before the upgrade"), &taken, at),
            "before_the_upgrade_2"
        );
    }

    #[test]
    fn snapshots_are_found_by_name_or_description() {
        let list = [
            snapshot("before_the_upgrade", "before the upgrade", 100),
            snapshot("weekly-1", "", 200),
        ];
        let words = |t: &str| t.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            find_snapshot(&list, &words("before the upgrade")).map(|s| s.name.as_str()),
            Some("before_the_upgrade")
        );
        assert_eq!(
            find_snapshot(&list, &words("weekly 1")).map(|s| s.name.as_str()),
            Some("weekly-1")
        );
        assert!(find_snapshot(&list, &words("nope")).is_none());
        assert_eq!(
            describe_snapshots("nextcloud", &list, 200 + 3 * 3600),
            "nextcloud has 2 snapshots: weekly-1 from 3 hours ago and before_the_upgrade from \
             3 hours, 1 minute ago."
        );
    }
}
