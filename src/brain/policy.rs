//! The safety policy: every action has a tier, and the configuration says which tiers each
//! channel may use, whether Jarvis is read-only, and which guests are never touched.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::types::{Action, ActionRequest, Channel};
use crate::config::PolicyConfig;
use crate::proxmox::{Guest, GuestAction, NodeAction};

/// How much harm an action can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Reading status: always allowed.
    Read,
    /// Changes that lose nothing: starting a guest.
    SafeWrite,
    /// Changes that interrupt a service: shutdown, stop, reboot. Need a confirmation.
    Destructive,
    /// Never done: deleting, destroying, shell commands.
    Forbidden,
}

impl Tier {
    /// The tier of a guest power action.
    pub fn of(action: GuestAction) -> Self {
        match action {
            GuestAction::Start => Self::SafeWrite,
            GuestAction::Shutdown | GuestAction::Stop | GuestAction::Reboot => Self::Destructive,
        }
    }

    /// The tier of any action: a snapshot loses nothing; a rollback loses what changed since,
    /// a migration interrupts (or restarts) the guest, and every node action takes guests down
    /// or starts many at once.
    pub fn of_action(action: &Action) -> Self {
        match action {
            Action::Power { action, .. } => Self::of(*action),
            Action::Snapshot { .. } => Self::SafeWrite,
            Action::Rollback { .. } | Action::Migrate { .. } | Action::Node { .. } => {
                Self::Destructive
            }
        }
    }
}

/// What the policy says about one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Ask for a confirmation first.
    Confirm,
    /// Refuse, with the reason to say.
    Refuse(String),
}

/// The verb of an action in a sentence: "start", "shut down", ...
pub fn verb(action: GuestAction) -> &'static str {
    match action {
        GuestAction::Start => "start",
        GuestAction::Shutdown => "shut down",
        GuestAction::Stop => "stop",
        GuestAction::Reboot => "reboot",
    }
}

/// What an action does to `name`, as said after "I won't": "start nextcloud", "roll
/// nextcloud back to before_the_upgrade", "reboot pve", "stop the guests on pve".
pub fn phrase(action: &Action, name: &str) -> String {
    match action {
        Action::Power { action, .. } => format!("{} {name}", verb(*action)),
        Action::Snapshot { .. } => format!("snapshot {name}"),
        Action::Rollback { snapshot, .. } => format!("roll {name} back to {snapshot}"),
        Action::Migrate { target, .. } => format!("move {name} to {target}"),
        Action::Node { action, .. } => match action {
            NodeAction::Reboot => format!("reboot {name}"),
            NodeAction::Shutdown => format!("shut down {name}"),
            NodeAction::StartAll => format!("start the guests on {name}"),
            NodeAction::StopAll => format!("stop the guests on {name}"),
        },
    }
}

/// Read-only mode and the channel's cap, for any action on `name`.
fn gate(config: &PolicyConfig, request: &ActionRequest, name: &str) -> Option<Verdict> {
    let tier = Tier::of_action(&request.action);
    let what = phrase(&request.action, name);
    if config.read_only {
        return Some(Verdict::Refuse(format!(
            "I'm in read-only mode, so I won't {what}. Set policy.read_only to false to allow \
             actions."
        )));
    }
    let allowed = config.channels.max_tier(request.channel);
    if tier > allowed {
        return Some(Verdict::Refuse(format!(
            "I can't {what} from {}: that channel is limited to {} actions (policy.channels).",
            channel_name(request.channel),
            tier_words(allowed)
        )));
    }
    None
}

/// Judges an action on a guest.
pub fn judge(config: &PolicyConfig, request: &ActionRequest, guest: &Guest) -> Verdict {
    let tier = Tier::of_action(&request.action);
    if let Some(verdict) = gate(config, request, &guest.name) {
        return verdict;
    }
    if tier >= Tier::Destructive && is_protected(config, guest) {
        let never = match &request.action {
            Action::Rollback { .. } => "roll it back",
            Action::Migrate { .. } => "move it",
            _ => "shut it down, stop or reboot it",
        };
        return Verdict::Refuse(format!(
            "{} is protected, so I never {never} (policy.protected_guests).",
            guest.name
        ));
    }
    if guest.template {
        match &request.action {
            Action::Power { .. } => {
                return Verdict::Refuse(format!(
                    "{} is a template; templates can't be started or stopped.",
                    guest.name
                ));
            }
            Action::Snapshot { .. } | Action::Rollback { .. } => {
                return Verdict::Refuse(format!(
                    "{} is a template; templates have no snapshots.",
                    guest.name
                ));
            }
            Action::Migrate { .. } | Action::Node { .. } => {}
        }
    }
    if tier >= Tier::Destructive && !request.approved {
        return Verdict::Confirm;
    }
    Verdict::Allow
}

/// Judges an action on a node: read-only mode, the channel's cap, and `policy.protected_nodes`
/// (never rebooted or shut down). What the node runs is weighed by the caller (see
/// `super::operations`), which knows the guests on it.
pub fn judge_node(config: &PolicyConfig, request: &ActionRequest, node: &str) -> Verdict {
    if let Some(verdict) = gate(config, request, node) {
        return verdict;
    }
    let powers_off = matches!(
        request.action,
        Action::Node {
            action: NodeAction::Reboot | NodeAction::Shutdown,
            ..
        }
    );
    if powers_off && is_protected_node(config, node) {
        return Verdict::Refuse(format!(
            "{node} is protected, so I never reboot or shut it down (policy.protected_nodes)."
        ));
    }
    if !request.approved {
        return Verdict::Confirm;
    }
    Verdict::Allow
}

/// Whether `node` is in `policy.protected_nodes`.
pub fn is_protected_node(config: &PolicyConfig, node: &str) -> bool {
    config
        .protected_nodes
        .iter()
        .any(|p| p.trim().eq_ignore_ascii_case(node))
}

/// Whether a guest is in `policy.protected_guests` (by VMID or name).
pub fn is_protected(config: &PolicyConfig, guest: &Guest) -> bool {
    config.protected_guests.iter().any(|p| {
        p.trim().parse::<u32>().map_or_else(
            |_| p.trim().eq_ignore_ascii_case(&guest.name),
            |vmid| vmid == guest.vmid,
        )
    })
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Voice => "voice",
        Channel::Http => "the HTTP API",
        Channel::Mqtt => "MQTT",
        Channel::Panel => "the panel",
    }
}

fn tier_words(tier: Tier) -> &'static str {
    match tier {
        Tier::Read => "read-only",
        Tier::SafeWrite => "safe",
        Tier::Destructive | Tier::Forbidden => "all",
    }
}

/// An action waiting for its confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The action, to be run once confirmed.
    pub request: ActionRequest,
    /// The question that was asked.
    pub question: String,
    asked: Instant,
}

/// Actions waiting for a confirmation, one per conversation, each for a limited time.
#[derive(Debug)]
pub struct Confirmations {
    timeout: Duration,
    capacity: usize,
    pending: Mutex<HashMap<String, Pending>>,
}

/// Why a confirmation found nothing to confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmError {
    /// This conversation has nothing waiting.
    Nothing,
    /// It waited too long.
    Expired(Box<Pending>),
}

impl Confirmations {
    /// At most `capacity` conversations wait at once; the oldest question goes first.
    pub fn new(timeout: Duration, capacity: usize) -> Self {
        Self {
            timeout,
            capacity: capacity.max(1),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// How long a question waits.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Asks in `conversation`, replacing an earlier question there.
    pub fn ask(&self, conversation: &str, request: ActionRequest, question: String) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let timeout = self.timeout;
        pending.retain(|_, p| p.asked.elapsed() <= timeout);
        if pending.len() >= self.capacity && !pending.contains_key(conversation) {
            if let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.asked)
                .map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
        }
        pending.insert(
            conversation.to_owned(),
            Pending {
                request,
                question,
                asked: Instant::now(),
            },
        );
    }

    /// Takes the question waiting in `conversation`, if it is still in time.
    ///
    /// # Errors
    /// Nothing waiting, or too late (the question is dropped either way).
    pub fn take(&self, conversation: &str) -> Result<Pending, ConfirmError> {
        let taken = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(conversation));
        match taken {
            None => Err(ConfirmError::Nothing),
            Some(p) if p.asked.elapsed() > self.timeout => Err(ConfirmError::Expired(Box::new(p))),
            Some(p) => Ok(p),
        }
    }

    /// The questions waiting in time, with their keys and the time left, oldest first (the
    /// panel lists them with Confirm and Cancel buttons).
    pub fn waiting(&self) -> Vec<(String, Pending, Duration)> {
        let Ok(pending) = self.pending.lock() else {
            return Vec::new();
        };
        let mut all: Vec<_> = pending
            .iter()
            .filter_map(|(key, p)| {
                let left = self.timeout.checked_sub(p.asked.elapsed())?;
                Some((key.clone(), p.clone(), left))
            })
            .collect();
        all.sort_by_key(|(_, p, _)| p.asked);
        all
    }

    /// Whether `conversation` has a question waiting (in time).
    pub fn is_waiting(&self, conversation: &str) -> bool {
        self.pending
            .lock()
            .ok()
            .and_then(|p| {
                p.get(conversation)
                    .map(|p| p.asked.elapsed() <= self.timeout)
            })
            .unwrap_or(false)
    }
}

/// Permissions per channel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelPermissions {
    /// Voice (Wyoming).
    pub voice: Tier,
    /// The HTTP API.
    pub http: Tier,
    /// MQTT buttons.
    pub mqtt: Tier,
    /// The web panel.
    pub panel: Tier,
}

impl Default for ChannelPermissions {
    fn default() -> Self {
        Self {
            voice: Tier::Destructive,
            http: Tier::Destructive,
            mqtt: Tier::Destructive,
            panel: Tier::Destructive,
        }
    }
}

impl ChannelPermissions {
    /// The highest tier a channel may use.
    pub fn max_tier(&self, channel: Channel) -> Tier {
        match channel {
            Channel::Voice => self.voice,
            Channel::Http => self.http,
            Channel::Mqtt => self.mqtt,
            Channel::Panel => self.panel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(vmid: u32, name: &str) -> Guest {
        Guest::example(vmid, name, "pve")
    }

    fn request(channel: Channel, action: GuestAction, approved: bool) -> ActionRequest {
        ActionRequest::guest(
            channel,
            "test".into(),
            Some("c1".into()),
            101,
            action,
            approved,
        )
    }

    #[test]
    fn tiers_channels_protection_and_read_only() {
        let mut config = PolicyConfig::default();
        let media = guest(101, "media-server");
        assert_eq!(
            judge(
                &config,
                &request(Channel::Voice, GuestAction::Start, false),
                &media
            ),
            Verdict::Allow
        );
        assert_eq!(
            judge(
                &config,
                &request(Channel::Voice, GuestAction::Reboot, false),
                &media
            ),
            Verdict::Confirm
        );
        assert_eq!(
            judge(
                &config,
                &request(Channel::Http, GuestAction::Reboot, true),
                &media
            ),
            Verdict::Allow
        );
        config.channels.mqtt = Tier::SafeWrite;
        assert!(matches!(
            judge(&config, &request(Channel::Mqtt, GuestAction::Stop, true), &media),
            Verdict::Refuse(r) if r.contains("MQTT")
        ));
        config.protected_guests = vec!["100".into(), "Media-Server".into()];
        assert!(matches!(
            judge(&config, &request(Channel::Voice, GuestAction::Shutdown, true), &media),
            Verdict::Refuse(r) if r.contains("protected")
        ));
        assert_eq!(
            judge(
                &config,
                &request(Channel::Voice, GuestAction::Start, false),
                &media
            ),
            Verdict::Allow
        );
        config.read_only = true;
        assert!(matches!(
            judge(&config, &request(Channel::Voice, GuestAction::Start, false), &media),
            Verdict::Refuse(r) if r.contains("read-only")
        ));
    }

    #[test]
    fn confirmations_belong_to_one_conversation_and_expire() {
        let confirmations = Confirmations::new(Duration::from_millis(50), 2);
        let r = request(Channel::Voice, GuestAction::Reboot, false);
        confirmations.ask("a", r.clone(), "Reboot?".into());
        assert_eq!(confirmations.take("b").unwrap_err(), ConfirmError::Nothing);
        assert!(confirmations.take("a").is_ok());
        assert_eq!(confirmations.take("a").unwrap_err(), ConfirmError::Nothing);
        confirmations.ask("a", r.clone(), "Reboot?".into());
        std::thread::sleep(Duration::from_millis(80));
        assert!(matches!(
            confirmations.take("a"),
            Err(ConfirmError::Expired(_))
        ));
        // Bounded: a third conversation pushes out the oldest.
        confirmations.ask("1", r.clone(), "?".into());
        confirmations.ask("2", r.clone(), "?".into());
        confirmations.ask("3", r, "?".into());
        assert!(!confirmations.is_waiting("1"));
        assert!(confirmations.is_waiting("2") && confirmations.is_waiting("3"));
    }
}
