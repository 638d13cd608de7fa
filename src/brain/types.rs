//! The brain's public vocabulary: who asks ([`Channel`]), what an action request and its report
//! look like, and the [`Activity`] feed that the MQTT publisher turns into HA events.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::proxmox::{GuestAction, TaskOutcome};

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

/// A request to act on one guest, from any channel. Voice and HTTP commands become one of these
/// after intent matching; an MQTT button press is one directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRequest {
    /// Where it came from.
    pub channel: Channel,
    /// Who sent it: a peer address, an MQTT client id, ...
    pub client: String,
    /// The conversation it belongs to, for confirmations.
    pub conversation: Option<String>,
    /// The guest's VMID.
    pub vmid: u32,
    /// What to do.
    pub action: GuestAction,
    /// Already approved (an HTTP approval keyword, a confirmed MQTT button): no spoken
    /// confirmation is asked for. The policy still applies.
    pub approved: bool,
}

/// What came of an [`ActionRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionReport {
    /// The guest's VMID.
    pub vmid: u32,
    /// Its name, when the guest is known.
    pub guest: Option<String>,
    /// The action.
    pub action: GuestAction,
    /// What the policy decided.
    pub decision: Decision,
    /// The Proxmox task, when the action was carried out.
    pub task: Option<TaskOutcome>,
    /// A short sentence for people: the result, the question, or the reason for a refusal.
    pub reply: String,
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
    /// The guest's VMID.
    pub vmid: u32,
    /// Its name (or "guest VMID").
    pub guest: String,
    /// The action.
    pub action: GuestAction,
    /// The channel that asked for it.
    pub channel: Channel,
    /// The question that was asked.
    pub question: String,
    /// Seconds left to confirm.
    pub expires_in_secs: u64,
}
