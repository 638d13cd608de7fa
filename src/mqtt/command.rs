//! Button presses: checking what arrives on a command topic before anything acts on it.
//!
//! A command topic is `<base>/guest/<vmid>/command` and its payload one of `start`, `shutdown`,
//! `stop` or `reboot` (the buttons' `pl_prs`). Everything else is refused here with a reason
//! for the log and Jarvis's event entity; nothing here decides whether an action is allowed
//! (the brain's policy does).

use crate::proxmox::GuestAction;

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

/// Why a message on a command topic was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The topic is not `<base>/guest/<vmid>/command` with a valid VMID.
    #[error("not a guest command topic")]
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
