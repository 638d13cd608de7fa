//! Button presses: checking what arrives on a command topic before anything acts on it.
//!
//! A guest's command topic is `<base>/guest/<vmid>/command` and its payload one of `start`,
//! `shutdown`, `stop` or `reboot`; a node's is `<base>/node/<node slug>/command` and its payload
//! one of `reboot`, `shutdown`, `start_all` or `stop_all` (the buttons' `pl_prs`). The target is
//! the topic's, never the payload's: a payload only says what to do, so a message on one node's
//! topic cannot act on another node or on a guest. Everything else is refused here with a reason
//! for the log and Jarvis's event entity; nothing here decides whether an action is allowed
//! (the brain's policy does).
//!
//! Confirmation: a pressed button is the confirmation, for guests and nodes alike (HA has no
//! way to ask back, and a question nobody hears would only time out). What guards against a
//! stray tap is that every button that takes something down is disabled by default in HA, so
//! a user turns it on deliberately; and the brain's policy still applies in full: read-only
//! mode, `policy.channels.mqtt`, protected guests and nodes (a node that runs a protected guest
//! is never rebooted or shut down; stop-all leaves protected guests running), and the audit log.

use super::discovery::DeviceKey;
use crate::proxmox::{GuestAction, NodeAction};

/// Longest payload looked at; a longer one is refused without being read.
pub const MAX_COMMAND_BYTES: usize = 32;

/// A press that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Press {
    /// The guest.
    pub vmid: u32,
    /// What to do.
    pub action: GuestAction,
}

/// A press on a node's button that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePress {
    /// The node's topic slug (see [`DeviceKey::node`]); the publisher finds the node by it.
    pub slug: String,
    /// What to do.
    pub action: NodeAction,
}

/// Why a message on a command topic was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The topic is not `<base>/guest/<vmid>/command` with a valid VMID.
    #[error("not a command topic")]
    BadTopic,
    /// Retained: a broker would replay it at every reconnect.
    #[error("retained commands are ignored (a broker would replay them at every reconnect)")]
    Retained,
    /// Longer than [`MAX_COMMAND_BYTES`].
    #[error("payload of {0} bytes is too long for a command")]
    TooLong(usize),
    /// Not one of the four actions.
    #[error("unknown command {0:?}; expected start, shutdown, stop or reboot")]
    Unknown(String),
    /// Not one of the four node actions.
    #[error("unknown command {0:?}; expected reboot, shutdown, start_all or stop_all")]
    UnknownNode(String),
}

/// Checks a message on `<base>/guest/+/command`.
///
/// # Errors
/// See [`CommandError`].
pub fn parse(base: &str, topic: &str, payload: &[u8], retain: bool) -> Result<Press, CommandError> {
    let vmid = topic
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix("/guest/"))
        .and_then(|rest| rest.strip_suffix("/command"))
        .filter(|id| !id.is_empty() && id.len() <= 10 && id.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|id| id.parse::<u32>().ok())
        .ok_or(CommandError::BadTopic)?;
    if retain {
        return Err(CommandError::Retained);
    }
    if payload.len() > MAX_COMMAND_BYTES {
        return Err(CommandError::TooLong(payload.len()));
    }
    let text = String::from_utf8_lossy(payload);
    let word = text.trim();
    GuestAction::from_name(word)
        .map(|action| Press { vmid, action })
        .ok_or_else(|| Unknown(word.chars().filter(|c| !c.is_control()).collect()))
}

/// Checks a message on `<base>/node/+/command`.
///
/// # Errors
/// See [`CommandError`].
pub fn parse_node(
    base: &str,
    topic: &str,
    payload: &[u8],
    retain: bool,
) -> Result<NodePress, CommandError> {
    let key = topic
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix("/node/"))
        .and_then(|rest| rest.strip_suffix("/command"))
        .and_then(|slug| DeviceKey::from_levels("node", slug))
        .ok_or(CommandError::BadTopic)?;
    if retain {
        return Err(CommandError::Retained);
    }
    if payload.len() > MAX_COMMAND_BYTES {
        return Err(CommandError::TooLong(payload.len()));
    }
    let text = String::from_utf8_lossy(payload);
    let word = text.trim();
    NodeAction::from_name(word)
        .map(|action| NodePress {
            slug: key.id,
            action,
        })
        .ok_or_else(|| {
            CommandError::UnknownNode(word.chars().filter(|c| !c.is_control()).collect())
        })
}

use CommandError::Unknown;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_buttons_parse() {
        for action in GuestAction::ALL {
            let press = parse(
                "jarvis",
                "jarvis/guest/101/command",
                action.api_name().as_bytes(),
                false,
            );
            assert_eq!(press, Ok(Press { vmid: 101, action }));
        }
        assert_eq!(
            parse("jarvis", "jarvis/guest/7/command", b" reboot\n", false),
            Ok(Press {
                vmid: 7,
                action: GuestAction::Reboot
            })
        );
    }

    #[test]
    fn the_node_buttons_parse_and_name_only_their_node() {
        for action in NodeAction::ALL {
            let press = parse_node(
                "jarvis",
                "jarvis/node/pve/command",
                action.as_str().as_bytes(),
                false,
            );
            assert_eq!(
                press,
                Ok(NodePress {
                    slug: "pve".into(),
                    action
                })
            );
        }
        let refused: [(&str, &[u8], bool, CommandError); 10] = [
            (
                "jarvis/node/pve/command",
                b"stop",
                false,
                CommandError::UnknownNode("stop".into()),
            ),
            (
                "jarvis/node/pve/command",
                b"reboot agent1",
                false,
                CommandError::UnknownNode("reboot agent1".into()),
            ),
            (
                "jarvis/node/pve/command",
                b"{\"node\":\"agent1\"}",
                false,
                CommandError::UnknownNode("{\"node\":\"agent1\"}".into()),
            ),
            (
                "jarvis/node/pve/command",
                b"re\x00boot",
                false,
                CommandError::UnknownNode("reboot".into()),
            ),
            (
                "jarvis/node/pve/command",
                &[b'x'; 33],
                false,
                CommandError::TooLong(33),
            ),
            (
                "jarvis/node/pve/command",
                b"reboot",
                true,
                CommandError::Retained,
            ),
            (
                "jarvis/node/PVE/command",
                b"reboot",
                false,
                CommandError::BadTopic,
            ),
            (
                "jarvis/node/a b/command",
                b"reboot",
                false,
                CommandError::BadTopic,
            ),
            (
                "jarvis/node//command",
                b"reboot",
                false,
                CommandError::BadTopic,
            ),
            (
                "jarvis/node/pve/extra/command",
                b"reboot",
                false,
                CommandError::BadTopic,
            ),
        ];
        for (topic, payload, retain, expected) in refused {
            assert_eq!(
                parse_node("jarvis", topic, payload, retain),
                Err(expected),
                "{topic} {payload:?}"
            );
        }
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let cases: [(&str, &[u8], bool, CommandError); 9] = [
            (
                "jarvis/guest/101/command",
                b"START",
                false,
                Unknown("START".into()),
            ),
            (
                "jarvis/guest/101/command",
                b"",
                false,
                Unknown(String::new()),
            ),
            (
                "jarvis/guest/101/command",
                b"\xff\xfe\x00",
                false,
                Unknown("\u{fffd}\u{fffd}".into()),
            ),
            (
                "jarvis/guest/101/command",
                &[b'x'; 33],
                false,
                CommandError::TooLong(33),
            ),
            (
                "jarvis/guest/101/command",
                b"start",
                true,
                CommandError::Retained,
            ),
            (
                "jarvis/guest/abc/command",
                b"start",
                false,
                CommandError::BadTopic,
            ),
            (
                "jarvis/guest/99999999999/command",
                b"start",
                false,
                CommandError::BadTopic,
            ),
            (
                "jarvis/guest/-1/command",
                b"start",
                false,
                CommandError::BadTopic,
            ),
            (
                "other/guest/1/command",
                b"start",
                false,
                CommandError::BadTopic,
            ),
        ];
        for (topic, payload, retain, expected) in cases {
            assert_eq!(
                parse("jarvis", topic, payload, retain),
                Err(expected),
                "{topic}"
            );
        }
    }
}
