//! Follow-ups within one conversation: the answer to "which one do you mean?" ("the second one",
//! "number two", a name), "yes" to "did you mean nextcloud?" or to an offer ("shall I start
//! it?"), and "and nextcloud?" after a question about something else.
//!
//! Design: the brain keeps the last turn of each conversation (channel and `conversation_id`):
//! the intent it answered, and the question it asked back, if any. A turn is understood for
//! `policy.followup_timeout_secs`; after that it is kept a while longer so that a late answer
//! hears that the conversation expired rather than a puzzled "what do you mean?". The map is
//! bounded: the oldest conversation goes first.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::intents::Intent;
use super::names::{self, Candidate, Target};
use super::numbers;

/// A question Jarvis asked that the next sentence may answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ask {
    /// "Which one do you mean: a or b?": the words that were unclear, and the names they
    /// could mean, in the order they were said.
    Choose {
        /// The unclear words, as in the intent's slot.
        words: Vec<String>,
        /// The candidates, in the order spoken.
        candidates: Vec<Candidate>,
    },
    /// "Did you mean a?"
    Suggest {
        /// The unclear words, as in the intent's slot.
        words: Vec<String>,
        /// The name offered.
        candidate: Candidate,
    },
    /// "Shall I start it?": "yes" runs this intent.
    Offer(Intent),
}

/// One turn of a conversation: what was asked, and what Jarvis asked back.
#[derive(Debug, Clone)]
pub(crate) struct Turn {
    /// The intent that was answered (with its slots as spoken).
    pub(crate) intent: Intent,
    /// The question asked back, if any.
    pub(crate) ask: Option<Ask>,
}

/// What a conversation remembers.
#[derive(Debug, Clone)]
pub(crate) enum Recall {
    /// A recent turn.
    Fresh(Turn),
    /// There was one, but it is older than the timeout.
    Expired,
    /// Nothing.
    Nothing,
}

/// The last turn of each recent conversation.
#[derive(Debug)]
pub(crate) struct Conversations {
    turns: Mutex<HashMap<String, (Turn, Instant)>>,
    timeout: Duration,
    capacity: usize,
}

/// An expired turn is still recognised as expired for this many timeouts.
const KEEP_EXPIRED: u32 = 12;

impl Conversations {
    /// Turns understood for `timeout`, at most `capacity` conversations.
    pub(crate) fn new(timeout: Duration, capacity: usize) -> Self {
        Self {
            turns: Mutex::new(HashMap::new()),
            timeout,
            capacity: capacity.max(1),
        }
    }

    fn turns(&self) -> MutexGuard<'_, HashMap<String, (Turn, Instant)>> {
        // Entries are inserted and removed whole: a panic elsewhere cannot leave one half
        // written.
        self.turns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers `turn` as the last of conversation `key`.
    pub(crate) fn remember(&self, key: &str, turn: Turn) {
        let mut turns = self.turns();
        let keep = self.timeout.saturating_mul(KEEP_EXPIRED);
        turns.retain(|_, (_, at)| at.elapsed() < keep);
        if turns.len() >= self.capacity && !turns.contains_key(key) {
            let oldest = turns
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                turns.remove(&oldest);
            }
        }
        turns.insert(key.to_owned(), (turn, Instant::now()));
    }

    /// The last turn of conversation `key`.
    pub(crate) fn recall(&self, key: &str) -> Recall {
        match self.turns().get(key) {
            Some((turn, at)) if at.elapsed() < self.timeout => Recall::Fresh(turn.clone()),
            Some(_) => Recall::Expired,
            None => Recall::Nothing,
        }
    }

    /// Forgets the question asked back in conversation `key` (it was answered, or passed
    /// over), keeping the intent for "and nextcloud?".
    pub(crate) fn settle(&self, key: &str) {
        if let Some((turn, _)) = self.turns().get_mut(key) {
            turn.ask = None;
        }
    }
}

/// Which of `candidates` the words pick: by position ("the second one", "number two", "2",
/// "the last one"), by VMID, or by name ("backup-server-2").
pub(crate) fn pick(words: &[String], candidates: &[Candidate]) -> Option<usize> {
    let core: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| {
            !matches!(
                *w,
                "the"
                    | "one"
                    | "number"
                    | "option"
                    | "please"
                    | "i"
                    | "mean"
                    | "meant"
                    | "that"
                    | "choice"
                    | "pick"
                    | "take"
                    | "go"
                    | "with"
                    | "uh"
                    | "um"
            )
        })
        .collect();
    let ordinal = match core.as_slice() {
        ["first" | "1st"] => Some(0),
        ["second" | "2nd"] => Some(1),
        ["third" | "3rd"] => Some(2),
        ["fourth" | "4th"] => Some(3),
        ["fifth" | "5th"] => Some(4),
        ["last" | "latter"] => candidates.len().checked_sub(1),
        ["former"] => Some(0),
        // "the one", "number one": "one" was taken as filler.
        [] if words.iter().any(|w| w == "one") && words.len() > 1 => Some(0),
        _ => None,
    };
    if let Some(index) = ordinal {
        return (index < candidates.len()).then_some(index);
    }
    if let Some(n) = numbers::parse(&core) {
        // A small number is a position; a larger one a VMID among the candidates.
        if let Ok(index) = usize::try_from(n) {
            if (1..=candidates.len()).contains(&index) {
                return Some(index - 1);
            }
        }
        return candidates.iter().position(|c| c.target == Target::Guest(n));
    }
    let names: Vec<&str> = candidates.iter().map(|c| c.name.as_str()).collect();
    names::best_of(words, &names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates() -> Vec<Candidate> {
        ["backup-server-1", "backup-server-2", "backup-server-3"]
            .iter()
            .zip([201, 202, 203])
            .map(|(name, vmid)| Candidate {
                target: Target::Guest(vmid),
                name: (*name).to_owned(),
                score: 0.9,
            })
            .collect()
    }

    fn said(text: &str) -> Vec<String> {
        super::super::intents::tokens(text)
    }

    #[test]
    fn positions_numbers_vmids_and_names_pick_a_candidate() {
        let c = candidates();
        for (text, want) in [
            ("the second one", Some(1)),
            ("second", Some(1)),
            ("the first one", Some(0)),
            ("the last one", Some(2)),
            ("number two", Some(1)),
            ("number 3", Some(2)),
            ("3", Some(2)),
            ("the one", Some(0)),
            ("202", Some(1)),
            ("backup server 2", Some(1)),
            ("backup-server-3", Some(2)),
            ("the fifth one", None),
            ("number seven", None),
            ("999", None),
            ("nextcloud", None),
        ] {
            assert_eq!(pick(&said(text), &c), want, "{text}");
        }
    }

    #[test]
    fn turns_expire_and_the_oldest_conversation_goes_first() {
        let turn = Turn {
            intent: Intent::Ping,
            ask: None,
        };
        let conversations = Conversations::new(Duration::from_millis(40), 2);
        conversations.remember("a", turn.clone());
        conversations.remember("b", turn.clone());
        assert!(matches!(conversations.recall("a"), Recall::Fresh(_)));
        conversations.remember("c", turn);
        assert!(matches!(conversations.recall("a"), Recall::Nothing));
        assert!(matches!(conversations.recall("c"), Recall::Fresh(_)));
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(conversations.recall("c"), Recall::Expired));
        assert!(matches!(conversations.recall("zzz"), Recall::Nothing));
    }

    #[test]
    fn settling_forgets_the_question_but_not_the_intent() {
        let conversations = Conversations::new(Duration::from_secs(60), 8);
        conversations.remember(
            "a",
            Turn {
                intent: Intent::Help,
                ask: Some(Ask::Offer(Intent::Ping)),
            },
        );
        conversations.settle("a");
        match conversations.recall("a") {
            Recall::Fresh(turn) => {
                assert_eq!(turn.intent, Intent::Help);
                assert!(turn.ask.is_none());
            }
            other => panic!("{other:?}"),
        }
    }
}
