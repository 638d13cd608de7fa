//! Listening: what the brain tells speech-to-text about the words heard so far.
//!
//! - [`Listen::completeness`]: whether they are a whole request yet, so the endpointer ends on a
//!   short pause after "start nextcloud", a little later after a sentence that may go on after
//!   a comma ("Good morning, how are you?", "Yes, go ahead"), and waits after "start the" or
//!   "what is the status of".
//! - [`Listen::write_names`]: the transcript with the cluster's names written as Proxmox writes
//!   them ("P V E" → `pve`, "agent one" → `agent1`, "local LVM" → `local-lvm`).
//!
//! Both run on the async runtime at every pause in speech, so they do no I/O: they read the
//! compiled sentences and the name index of the last inventory fetched ([`Brain`] implements
//! [`Understanding`] with them). Without an inventory, the words alone decide.
//!
//! Design: a homelab command is judged by the template [`Recognizer::recognize`] would pick,
//! as the brain will answer it, and by every template the words are the start of; anything
//! else is a sentence outside the homelab, complete unless its last word asks for more. A
//! reply or a greeting ("yes", "hello") is judged a sentence, not a command.

use std::ops::Range;

use super::engine::Brain;
use super::intents::{self, Reading, Recognizer, Span};
use super::names::{self, Directory, Kinds, Resolution};
use super::numbers;
use crate::stt::{Completeness, Understanding};

/// Words before a name that say which kind of thing it is, not which: a slot holding only these
/// is still open ("start the", "status of node").
const BEFORE_A_NAME: &[&str] = &[
    "the",
    "my",
    "a",
    "an",
    "vm",
    "virtual",
    "container",
    "ct",
    "lxc",
    "guest",
    "node",
    "host",
    "storage",
    "pool",
    "datastore",
    "number",
    "id",
];

/// Tokens one name may take when spoken: "backup server one", "p v e one".
const MAX_NAME_TOKENS: usize = 8;

/// How alike (normalised Levenshtein) a near miss must be to the name the brain resolved it to
/// before the transcript is changed: "pbe" for `pve` (0.67) is, "media" for `media-server`
/// (0.45) is an abbreviation, not a mishearing.
const NEAR_MISS: f64 = 0.6;

/// The words heard so far, read against the sentences and the names of one inventory snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Listen<'a> {
    recognizer: &'a Recognizer,
    directory: Option<&'a Directory>,
}

/// What a slot holds so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Nothing that names anything yet: "the", "node".
    Open,
    /// The start of a name: "media" of `media-server`.
    Partial,
    /// A name the brain resolves (found, ambiguous, or a VMID that does not exist).
    Named,
    /// Nothing in the cluster: not a homelab command after all.
    Foreign,
}

impl<'a> Listen<'a> {
    /// Reads with `recognizer`'s sentences and `directory`'s names (none: no inventory yet).
    pub fn new(recognizer: &'a Recognizer, directory: Option<&'a Directory>) -> Self {
        Self {
            recognizer,
            directory,
        }
    }

    /// How whole `text` is: a homelab command whose names resolve
    /// ([`Completeness::Command`]), a sentence outside the homelab whose last word does not ask
    /// for more, or a reply ([`Completeness::Sentence`]), or neither. Punctuation is ignored.
    pub fn completeness(&self, text: &str) -> Completeness {
        // "Hey Jarvis": the request is still to come (filler is judged before it is dropped,
        // since "jarvis" alone also closes a request).
        if intents::only_filler(&intents::word_spans(text)) {
            return Completeness::Incomplete;
        }
        let spans = intents::spans(text);
        if spans.is_empty() {
            return Completeness::Incomplete;
        }
        let tokens: Vec<String> = spans.into_iter().map(|s| s.word).collect();
        // A question about the event memory with a time phrase said, or being said, after it.
        let memory_reading = |end: usize| {
            self.recognizer
                .reading(tokens.get(..end).unwrap_or_default())
                .is_some_and(|r| r.memory && r.whole)
        };
        if let Some((at, _)) = super::when::trailing(&tokens) {
            if memory_reading(at) {
                return Completeness::Command;
            }
        }
        if super::when::is_unfinished(&tokens) && (1..tokens.len()).any(memory_reading) {
            return Completeness::Incomplete;
        }
        // Without an inventory, questions about the event memory still tell (they need no
        // cluster names); for the rest only the words decide.
        let empty = Directory::default();
        let (directory, memory_only) = match self.directory {
            Some(directory) => (directory, false),
            None => (&empty, true),
        };
        if let Some(completeness) = self.command(directory, &tokens, memory_only) {
            return completeness;
        }
        if tokens
            .last()
            .is_some_and(|w| !crate::stt::flow::asks_for_more(w))
        {
            Completeness::Sentence
        } else {
            Completeness::Incomplete
        }
    }

    /// Whether `tokens` are a whole homelab command ([`Completeness::Command`], or
    /// [`Completeness::Sentence`] for a reply such as "yes"), the start of one
    /// ([`Completeness::Incomplete`]), or not one (`None`).
    fn command(
        &self,
        directory: &Directory,
        tokens: &[String],
        memory_only: bool,
    ) -> Option<Completeness> {
        let mut fills = Fills::default();
        // The template the brain would answer with decides, when its names fit.
        if let Some(reading) = self.recognizer.reading(tokens) {
            if reading.memory || !memory_only {
                if let Some(complete) = fills.verdict(directory, tokens, &reading) {
                    return Some(match (complete, reading.reply) {
                        (false, _) => Completeness::Incomplete,
                        (true, true) => Completeness::Sentence,
                        (true, false) => Completeness::Command,
                    });
                }
            }
        }
        self.recognizer
            .prefix_readings(tokens)
            .iter()
            .filter(|reading| reading.memory || !memory_only)
            .any(|reading| fills.verdict(directory, tokens, reading) == Some(false))
            .then_some(Completeness::Incomplete)
    }

    /// `text` with the names of the cluster it mentions written as Proxmox writes them; every
    /// other character unchanged.
    ///
    /// A name spoken exactly (letters one by one, numbers as words, separators as spaces or
    /// left out) is rewritten anywhere; a near miss ("pbe") only where it fills the slot of a
    /// recognized command and resolves to one name.
    pub fn write_names(&self, text: &str) -> String {
        let Some(directory) = self.directory else {
            return text.to_owned();
        };
        let words = intents::word_spans(text);
        let mut edits = exact_names(directory, text, &words);
        for (at, name) in self.near_misses(directory, text) {
            if !edits
                .iter()
                .any(|(e, _)| e.start < at.end && at.start < e.end)
            {
                edits.push((at, name));
            }
        }
        if edits.is_empty() {
            return text.to_owned();
        }
        edits.sort_by_key(|(at, _)| at.start);
        let mut out = String::with_capacity(text.len());
        let mut from = 0;
        for (at, name) in edits {
            out.push_str(text.get(from..at.start).unwrap_or_default());
            out.push_str(name);
            from = at.end;
        }
        out.push_str(text.get(from..).unwrap_or_default());
        out
    }

    /// Slots of the recognized command that resolve to one name without saying it exactly.
    fn near_misses<'d>(
        &self,
        directory: &'d Directory,
        text: &str,
    ) -> Vec<(Range<usize>, &'d str)> {
        let spans = intents::spans(text);
        let tokens: Vec<&str> = spans.iter().map(|s| s.word.as_str()).collect();
        let Some(reading) = self.recognizer.reading(&tokens) else {
            return Vec::new();
        };
        reading
            .slots
            .iter()
            .filter_map(|slot| {
                let words = tokens.get(slot.range.clone())?;
                let Resolution::Found(target) = directory.resolve(words, slot.kinds) else {
                    return None;
                };
                let name = directory.name(&target)?;
                let name_words = names::normal_words(name);
                // "node pbe": the kind word stays, unless the name starts with it.
                let skip = words
                    .iter()
                    .take_while(|w| {
                        names::is_kind_word(w) && name_words.first().is_none_or(|f| f != *w)
                    })
                    .count();
                let said = words.get(skip..).filter(|s| !s.is_empty())?;
                // A VMID is not a name; an exact name is written by `exact_names`; the start
                // of a name is an abbreviation, not a mishearing.
                if numbers::parse(said).is_some()
                    || directory.written(said).is_some()
                    || directory.is_partial(said)
                {
                    return None;
                }
                let heard = names::spoken_words(said).concat();
                let likeness = strsim::normalized_levenshtein(&heard, &name_words.concat());
                if likeness < NEAR_MISS {
                    return None;
                }
                let first = spans.get(slot.range.start + skip)?;
                let last = spans.get(slot.range.end.checked_sub(1)?)?;
                Some((with_dots(text, first.at.start..last.at.end), name))
            })
            .collect()
    }
}

impl Understanding for Brain {
    fn completeness(&self, text: &str) -> Completeness {
        let directory = self.cached_directory();
        Listen::new(self.recognizer(), directory.as_deref()).completeness(text)
    }

    fn write_names(&self, text: &str) -> String {
        let directory = self.cached_directory();
        Listen::new(self.recognizer(), directory.as_deref()).write_names(text)
    }

    fn grammar(&self) -> Option<std::sync::Arc<crate::stt::grammar::SpeechGrammar>> {
        self.speech_grammar()
    }
}

/// What each slot holds, worked out once per call: many templates share a slot's words.
#[derive(Debug, Default)]
struct Fills {
    known: Vec<(Range<usize>, Kinds, Fill)>,
}

impl Fills {
    /// A reading's verdict: `Some(true)` a whole command whose names resolve, `Some(false)` one
    /// still being said (a template prefix, or a last slot open or holding the start of a
    /// name), `None` when a slot names nothing in the cluster.
    fn verdict(
        &mut self,
        directory: &Directory,
        tokens: &[String],
        reading: &Reading,
    ) -> Option<bool> {
        let mut growing = false;
        for slot in &reading.slots {
            match self.fill(directory, tokens, slot.range.clone(), slot.kinds) {
                Fill::Named => {}
                Fill::Open | Fill::Partial if slot.range.end == tokens.len() => growing = true,
                Fill::Open | Fill::Partial | Fill::Foreign => return None,
            }
        }
        Some(reading.whole && !growing)
    }

    fn fill(
        &mut self,
        directory: &Directory,
        tokens: &[String],
        range: Range<usize>,
        kinds: Kinds,
    ) -> Fill {
        if let Some((_, _, fill)) = self
            .known
            .iter()
            .find(|(r, k, _)| *r == range && *k == kinds)
        {
            return *fill;
        }
        let words = tokens.get(range.clone()).unwrap_or_default();
        // The event memory's names are resolved when the question is answered; here only
        // whether the words are still going: "at the", "in the last".
        let fill = if kinds.memory {
            if words.iter().all(|w| BEFORE_A_NAME.contains(&w.as_str())) {
                Fill::Open
            } else if super::when::is_unfinished(words) {
                Fill::Partial
            } else {
                Fill::Named
            }
        } else if words.iter().all(|w| BEFORE_A_NAME.contains(&w.as_str()))
            && directory.written(words).is_none()
        {
            Fill::Open
        } else if directory.is_partial(words) {
            Fill::Partial
        } else {
            match directory.resolve(words, kinds) {
                Resolution::Unknown { .. } => Fill::Foreign,
                Resolution::Found(_) | Resolution::Ambiguous(_) | Resolution::NoSuchId(_) => {
                    Fill::Named
                }
            }
        };
        self.known.push((range, kinds, fill));
        fill
    }
}

/// Spans of `words` that say a name exactly, longest first, with the name to write instead.
fn exact_names<'d>(
    directory: &'d Directory,
    text: &str,
    words: &[Span],
) -> Vec<(Range<usize>, &'d str)> {
    let letter = |i: usize| {
        words
            .get(i)
            .is_some_and(|w| w.word.chars().count() == 1 && w.word.chars().all(char::is_alphabetic))
    };
    let mut edits = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let longest = MAX_NAME_TOKENS.min(words.len() - i);
        let found = (1..=longest).rev().find_map(|n| {
            let span = words.get(i..i + n)?;
            // Letters said one by one count only as a whole run of two or more ("p v e"), so
            // "a" or "I" never glue onto a name, and "P V E" never loses its "P".
            let letters_whole = (i..i + n).all(|j| {
                !letter(j) || (j > i && letter(j - 1)) || (j + 1 < i + n && letter(j + 1))
            }) && !(letter(i) && i > 0 && letter(i - 1))
                && !(letter(i + n - 1) && letter(i + n));
            if !letters_whole {
                return None;
            }
            let spoken: Vec<&str> = span.iter().map(|w| w.word.as_str()).collect();
            directory.written(&spoken).map(|name| (n, name))
        });
        let Some((n, name)) = found else {
            i += 1;
            continue;
        };
        if let (Some(first), Some(last)) = (words.get(i), words.get(i + n - 1)) {
            let at = first.at.start..last.at.end;
            if rewrite(text.get(at.clone()).unwrap_or_default(), name, n) {
                edits.push((with_dots(text, at), name));
            }
        }
        i += n;
    }
    edits
}

/// Whether the words `said` for `name` (in `tokens` tokens) should become the name. One token
/// that differs only in case changes only when written as an acronym ("PVE"): "Nextcloud"
/// may be a capital at the start of a sentence.
fn rewrite(said: &str, name: &str, tokens: usize) -> bool {
    if said == name {
        return false;
    }
    if tokens > 1 || said.to_lowercase() != name.to_lowercase() {
        return true;
    }
    said.chars().filter(|c| c.is_uppercase()).count() >= 2
}

/// `at` with the dot of an abbreviation after it ("P.V.E."), unless that dot also ends the
/// sentence (the end of the text, or a capital after it).
fn with_dots(text: &str, at: Range<usize>) -> Range<usize> {
    let dotted = text.get(at.clone()).is_some_and(|s| s.contains('.'));
    let rest = text.get(at.end..).unwrap_or_default();
    let Some(after) = rest.strip_prefix('.') else {
        return at;
    };
    if !dotted {
        return at;
    }
    let next = after.trim_start().chars().next();
    let ends_sentence = match next {
        None => true,
        Some(c) => after.starts_with(char::is_whitespace) && c.is_uppercase(),
    };
    if ends_sentence {
        at
    } else {
        at.start..at.end + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxmox::{Guest, GuestKind, Inventory, Node, Storage};

    fn inventory() -> Inventory {
        let guest = |vmid, name: &str, node: &str| Guest::example(vmid, name, node);
        Inventory {
            nodes: vec![Node::example("pve"), Node::example("agent1")],
            guests: vec![
                guest(100, "haos", "pve"),
                guest(101, "media-server", "pve"),
                Guest {
                    kind: GuestKind::Lxc,
                    ..guest(102, "pihole", "pve")
                },
                guest(103, "backup-server-1", "agent1"),
                guest(104, "backup-server-2", "agent1"),
                guest(105, "nextcloud", "agent1"),
            ],
            storages: vec![
                Storage::example("local", "pve"),
                Storage::example("local-lvm", "pve"),
                Storage::example("local-lvm", "agent1"),
                Storage::example("nas", "pve"),
            ],
        }
    }

    struct Fixture {
        recognizer: Recognizer,
        directory: Directory,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                recognizer: Recognizer::new().unwrap(),
                directory: Directory::new(&inventory()),
            }
        }

        fn listen(&self) -> Listen<'_> {
            Listen::new(&self.recognizer, Some(&self.directory))
        }
    }

    /// Asserts that `listen` judges each of `texts` `kind`.
    fn judged(listen: Listen<'_>, kind: Completeness, texts: &[&str]) {
        for text in texts {
            assert_eq!(listen.completeness(text), kind, "{text}");
        }
    }

    #[test]
    fn resolved_commands_are_complete() {
        let f = Fixture::new();
        judged(
            f.listen(),
            Completeness::Command,
            &[
                "what is the status of node pve",
                "What is the status of node pve?",
                "start nextcloud",
                "Reboot the media server.",
                "how much memory does agent one use",
                "is pihole running",
                "which vms are running on agent1",
                "how full is local lvm",
                "status of the backup server two",
                "start VM 999",
                "start vm one oh one",
                "how is the cluster doing",
                "what's running",
                "hey jarvis, start nextcloud please",
                "delete pve",
                "and what about pve",
                "Are there any problems with a cluster?",
                "how about agent one",
                "and pve",
            ],
        );
    }

    #[test]
    fn replies_and_greetings_are_sentences_that_may_go_on() {
        let f = Fixture::new();
        // "Yes, go ahead", "Hello, how are you?": the short silence of a command would cut them
        // at the comma.
        judged(
            f.listen(),
            Completeness::Sentence,
            &[
                "yes",
                "Yes,",
                "cancel",
                "no",
                "hello",
                "the first one",
                "yes please",
            ],
        );
    }

    #[test]
    fn the_start_of_a_command_is_not_complete() {
        let f = Fixture::new();
        judged(
            f.listen(),
            Completeness::Incomplete,
            &[
                "start the",
                "start",
                "reboot",
                "Reboot.",
                "what is the status of",
                "What is the status of?",
                "what is the",
                "how much memory does",
                "how much memory does pve",
                "which vms are running on",
                "status of node",
                "status of media",
                "status of the media",
                "restart the backup server",
                "start vm one",
                "status of p v",
                "is pve",
                "turn on the",
                "show me",
            ],
        );
    }

    #[test]
    fn sentences_outside_the_homelab_end_unless_the_last_word_asks_for_more() {
        let f = Fixture::new();
        let no_cluster = Listen::new(&f.recognizer, None);
        for listen in [f.listen(), no_cluster] {
            judged(
                listen,
                Completeness::Sentence,
                &[
                    "Turn on the kitchen lights.",
                    "turn on the kitchen lights",
                    "what time is it",
                    "what's the weather like today",
                    "I love PBE",
                    "thank you",
                    "tell me a joke",
                    "Good morning",
                ],
            );
            judged(
                listen,
                Completeness::Incomplete,
                &[
                    "",
                    "  ...  ",
                    "hey jarvis",
                    "Hey Jarvis,",
                    "can you",
                    "turn on the",
                    "and so",
                    "I want to",
                    "my",
                    "what is",
                    "it's",
                    "play something by",
                    "the",
                ],
            );
        }
    }

    #[test]
    fn questions_about_the_memory_wait_for_their_place_and_time() {
        let f = Fixture::new();
        for listen in [f.listen(), Listen::new(&f.recognizer, None)] {
            judged(
                listen,
                Completeness::Command,
                &[
                    "was anyone at the front door",
                    "Was anyone at the front door in the last hour?",
                    "what happened since 8 am",
                    "what happened while I was away",
                    "how many people did the garage camera see today",
                    "who is at the front door",
                ],
            );
            judged(
                listen,
                Completeness::Incomplete,
                &[
                    "was anyone at the",
                    "was anyone at the front door in the",
                    "was anyone at the front door in the last",
                    "what happened since",
                    "what happened while I was",
                    "how many people did the garage camera see in the last",
                ],
            );
        }
    }

    #[test]
    fn without_a_cluster_only_the_words_decide() {
        let f = Fixture::new();
        let listen = Listen::new(&f.recognizer, None);
        // No names to resolve: "start" is a sentence like any other, and no command is sure.
        assert_eq!(listen.completeness("start"), Completeness::Sentence);
        assert_eq!(
            listen.completeness("status of media"),
            Completeness::Sentence
        );
        assert_eq!(
            listen.completeness("start nextcloud"),
            Completeness::Sentence
        );
        assert_eq!(
            listen.completeness("what is the status of"),
            Completeness::Incomplete
        );
        assert_eq!(
            listen.write_names("What is the status of node P V E?"),
            "What is the status of node P V E?"
        );
    }

    #[test]
    fn names_spoken_letter_by_letter_are_written_as_the_cluster_writes_them() {
        let f = Fixture::new();
        let l = f.listen();
        for (said, written) in [
            (
                "What is the status of node P V E?",
                "What is the status of node pve?",
            ),
            (
                "What is the status of node P.V.E.?",
                "What is the status of node pve?",
            ),
            (
                "What is the status of node P.V.E.",
                "What is the status of node pve.",
            ),
            ("status of p v e", "status of pve"),
            ("Is PVE up? Yes.", "Is pve up? Yes."),
            ("How full is local L V M?", "How full is local-lvm?"),
            ("How full is local LVM?", "How full is local-lvm?"),
            ("Start HAOS.", "Start haos."),
        ] {
            assert_eq!(l.write_names(said), written, "{said}");
        }
    }

    #[test]
    fn names_with_numbers_and_separators_are_joined() {
        let f = Fixture::new();
        let l = f.listen();
        for (said, written) in [
            (
                "Which VMs are running on agent one?",
                "Which VMs are running on agent1?",
            ),
            (
                "Which VMs are running on agent 1?",
                "Which VMs are running on agent1?",
            ),
            ("Reboot backup server one.", "Reboot backup-server-1."),
            ("Reboot the media server.", "Reboot the media-server."),
            ("Reboot the mediaserver.", "Reboot the media-server."),
            ("Reboot the Media-Server.", "Reboot the media-server."),
            (
                "Start next cloud, then pi hole.",
                "Start nextcloud, then pihole.",
            ),
        ] {
            assert_eq!(l.write_names(said), written, "{said}");
        }
    }

    #[test]
    fn near_misses_are_fixed_only_in_a_recognized_command() {
        let f = Fixture::new();
        let l = f.listen();
        for (said, written) in [
            (
                "What is the status of node pbe?",
                "What is the status of node pve?",
            ),
            (
                "What is the status of node PBE?",
                "What is the status of node pve?",
            ),
            ("Start next clowd.", "Start nextcloud."),
        ] {
            assert_eq!(l.write_names(said), written, "{said}");
        }
        for said in [
            "I love PBE",
            "What is the status of media?",
            "Start VM one oh one.",
            "Start the kitchen lights.",
        ] {
            assert_eq!(l.write_names(said), said);
        }
    }

    #[test]
    fn other_words_are_left_alone() {
        let f = Fixture::new();
        let l = f.listen();
        for said in [
            "Turn on the kitchen lights.",
            "I watched the media coverage.",
            "Play the local news, a b c.",
            "Nextcloud is up.",
            "The backup server is fine.",
            "",
            "P V",
            "I need a V E",
            "Status of pve.",
        ] {
            assert_eq!(l.write_names(said), said);
        }
        // A name inside a run of letters is not cut out of it.
        assert_eq!(l.write_names("A P V E X"), "A P V E X");
    }
}
