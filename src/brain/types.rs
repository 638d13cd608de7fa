//! The brain's public vocabulary: who asks ([`Channel`]), what an action request and its report
//! look like, and the [`Activity`] feed that the MQTT publisher turns into HA events.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::proxmox::{GuestAction, NodeAction, TaskOutcome};

/// Where a command came from. Permissions are configured per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Wyoming (HA Assist, satellites).
    Voice,
    /// `POST /v1/command`.
    Http,
    /// An MQTT button press.
    Mqtt,
    /// The web panel (`/panel/`): typed or spoken in the browser, or a Confirm button.
    Panel,
}

impl Channel {
    /// `voice`, `http`, `mqtt` or `panel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Voice => "voice",
            Self::Http => "http",
            Self::Mqtt => "mqtt",
            Self::Panel => "panel",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the safety policy decided about an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Carried out.
    Allowed,
    /// Waiting for a spoken confirmation (or an approval on the HTTP API).
    NeedsConfirmation,
    /// Refused: read-only mode, a protected guest, a channel without the permission, or a
    /// forbidden action.
    Refused,
}

/// What an action does, and to what: a guest (by VMID) or a node (by name). Each variant
/// carries its parameters, so a request cannot name a target its action does not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start, shut down, stop or reboot a guest.
    Power {
        /// The guest.
        vmid: u32,
        /// What to do.
        action: GuestAction,
    },
    /// Take a snapshot of a guest (a safe write).
    Snapshot {
        /// The guest.
        vmid: u32,
        /// A valid snapshot name (see [`crate::proxmox::operations::check_snapshot_name`]).
        name: String,
        /// Why, in the words said.
        description: String,
    },
    /// Roll a guest back to one of its snapshots (destructive).
    Rollback {
        /// The guest.
        vmid: u32,
        /// The snapshot's name.
        snapshot: String,
    },
    /// Move a guest to another node (destructive).
    Migrate {
        /// The guest.
        vmid: u32,
        /// The node it moves to.
        target: String,
    },
    /// Reboot or shut down a node, or start or stop its guests (destructive).
    Node {
        /// The node.
        node: String,
        /// What to do.
        action: NodeAction,
    },
}

impl Action {
    /// The guest acted on, for guest actions.
    pub fn vmid(&self) -> Option<u32> {
        match self {
            Self::Power { vmid, .. }
            | Self::Snapshot { vmid, .. }
            | Self::Rollback { vmid, .. }
            | Self::Migrate { vmid, .. } => Some(*vmid),
            Self::Node { .. } => None,
        }
    }

    /// Its kind, as reports and the audit log name it.
    pub fn kind(&self) -> ActionKind {
        match self {
            Self::Power { action, .. } => match action {
                GuestAction::Start => ActionKind::Start,
                GuestAction::Shutdown => ActionKind::Shutdown,
                GuestAction::Stop => ActionKind::Stop,
                GuestAction::Reboot => ActionKind::Reboot,
            },
            Self::Snapshot { .. } => ActionKind::Snapshot,
            Self::Rollback { .. } => ActionKind::Rollback,
            Self::Migrate { .. } => ActionKind::Migrate,
            Self::Node { action, .. } => match action {
                NodeAction::Reboot => ActionKind::NodeReboot,
                NodeAction::Shutdown => ActionKind::NodeShutdown,
                NodeAction::StartAll => ActionKind::StartAll,
                NodeAction::StopAll => ActionKind::StopAll,
            },
        }
    }
}

/// The kind of an [`Action`], without its parameters: `start`, `shutdown`, `stop`, `reboot`
/// (a guest's power, as before), `snapshot`, `rollback`, `migrate`, `node_reboot`,
/// `node_shutdown`, `start_all`, `stop_all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Start a guest.
    Start,
    /// Shut a guest down.
    Shutdown,
    /// Stop a guest.
    Stop,
    /// Reboot a guest.
    Reboot,
    /// Snapshot a guest.
    Snapshot,
    /// Roll a guest back to a snapshot.
    Rollback,
    /// Move a guest to another node.
    Migrate,
    /// Reboot a node.
    NodeReboot,
    /// Shut a node down.
    NodeShutdown,
    /// Start a node's guests.
    StartAll,
    /// Stop a node's guests.
    StopAll,
}

impl ActionKind {
    /// The name in reports and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Shutdown => "shutdown",
            Self::Stop => "stop",
            Self::Reboot => "reboot",
            Self::Snapshot => "snapshot",
            Self::Rollback => "rollback",
            Self::Migrate => "migrate",
            Self::NodeReboot => "node_reboot",
            Self::NodeShutdown => "node_shutdown",
            Self::StartAll => "start_all",
            Self::StopAll => "stop_all",
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request to act on a guest or a node, from any channel. Voice and HTTP commands become one
/// of these after intent matching; an MQTT button press is one directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRequest {
    /// Where it came from.
    pub channel: Channel,
    /// Who sent it: a peer address, an MQTT client id, ...
    pub client: String,
    /// The conversation it belongs to, for confirmations.
    pub conversation: Option<String>,
    /// What to do, to what.
    pub action: Action,
    /// Already approved (an HTTP approval keyword, a confirmed MQTT button): no spoken
    /// confirmation is asked for. The policy still applies.
    pub approved: bool,
}

impl ActionRequest {
    /// A power action on a guest.
    pub fn guest(
        channel: Channel,
        client: String,
        conversation: Option<String>,
        vmid: u32,
        action: GuestAction,
        approved: bool,
    ) -> Self {
        Self {
            channel,
            client,
            conversation,
            action: Action::Power { vmid, action },
            approved,
        }
    }
}

/// What came of an [`ActionRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionReport {
    /// The guest's VMID (guest actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// Its name, when the guest is known.
    pub guest: Option<String>,
    /// The node acted on (node actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The action.
    pub action: ActionKind,
    /// The snapshot taken or rolled back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The node a guest moves to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What the policy decided.
    pub decision: Decision,
    /// The Proxmox task, when the action was carried out.
    pub task: Option<TaskOutcome>,
    /// A short sentence for people: the result, the question, or the reason for a refusal.
    pub reply: String,
}

impl ActionReport {
    /// A report on `action` without a task yet.
    pub fn new(action: &Action, decision: Decision, reply: String) -> Self {
        let (snapshot, target, node) = match action {
            Action::Snapshot { name, .. } => (Some(name.clone()), None, None),
            Action::Rollback { snapshot, .. } => (Some(snapshot.clone()), None, None),
            Action::Migrate { target, .. } => (None, Some(target.clone()), None),
            Action::Node { node, .. } => (None, None, Some(node.clone())),
            Action::Power { .. } => (None, None, None),
        };
        Self {
            vmid: action.vmid(),
            guest: None,
            node,
            action: action.kind(),
            snapshot,
            target,
            decision,
            task: None,
            reply,
        }
    }
}

/// Something the brain did, broadcast to whoever listens (the MQTT publisher's event entity).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event_type", rename_all = "snake_case")]
pub enum Activity {
    /// A command (spoken, typed or posted) was handled.
    Command {
        /// Channel.
        channel: Channel,
        /// What was said or sent.
        text: String,
        /// The intent matched, if any.
        intent: Option<String>,
        /// The reply.
        reply: String,
    },
    /// An action was decided (and carried out if allowed).
    Action {
        /// Channel.
        channel: Channel,
        /// The report, with the task outcome.
        #[serde(flatten)]
        report: ActionReport,
    },
}

/// An action waiting for its confirmation, as the panel lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    /// What the panel sends back to confirm or cancel it: the channel and conversation.
    pub id: String,
    /// The guest's VMID (none for a node action).
    pub vmid: Option<u32>,
    /// What it acts on: the guest's name (or "guest VMID"), or the node.
    pub guest: String,
    /// The action.
    pub action: ActionKind,
    /// The channel that asked for it.
    pub channel: Channel,
    /// The question that was asked.
    pub question: String,
    /// Seconds left to confirm.
    pub expires_in_secs: u64,
}
