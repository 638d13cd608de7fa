//! Finding the node, guest or storage someone meant, from words that speech recognition wrote.
//!
//! Names and spoken words are compared in a normal form: lower case, split at punctuation and at
//! letter/digit boundaries, number words as digits ("agent one" and `agent1` are both
//! `agent 1`). On top of exact matches, a sound-alike key (b/p/v/f, d/t, g/k/c/q, s/z, m/n)
//! catches what tiny.en gets slightly wrong ("PBE" for `pve`), and string similarity catches
//! the rest, with a margin so two close names are asked about rather than guessed.

use std::fmt;

use super::numbers;
use crate::proxmox::{GuestKind, Inventory};

/// A thing in the cluster that a command can be about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A node, by name.
    Node(String),
    /// A guest, by VMID.
    Guest(u32),
    /// A storage, by id.
    Storage(String),
}

/// Which kinds of target a slot accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    /// Nodes.
    pub nodes: bool,
    /// Guests.
    pub guests: bool,
    /// Storages.
    pub storages: bool,
    /// Cameras, zones, labels and faces of the event memory (resolved by the memory, not by
    /// the cluster's [`Directory`]).
    pub memory: bool,
}

impl Kinds {
    /// Nodes, guests and storages.
    pub const ANY: Self = Self {
        nodes: true,
        guests: true,
        storages: true,
        memory: false,
    };
    /// Guests only.
    pub const GUESTS: Self = Self {
        nodes: false,
        guests: true,
        storages: false,
        memory: false,
    };
    /// Nodes only.
    pub const NODES: Self = Self {
        nodes: true,
        guests: false,
        storages: false,
        memory: false,
    };
    /// Storages only.
    pub const STORAGES: Self = Self {
        nodes: false,
        guests: false,
        storages: true,
        memory: false,
    };
    /// Names of the event memory only.
    pub const MEMORY: Self = Self {
        nodes: false,
        guests: false,
        storages: false,
        memory: true,
    };

    pub(crate) fn accepts(self, target: &Target) -> bool {
        match target {
            Target::Node(_) => self.nodes,
            Target::Guest(_) => self.guests,
            Target::Storage(_) => self.storages,
        }
    }
}

/// What the words resolved to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// One clear match.
    Found(Target),
    /// Several names fit about equally well: ask which.
    Ambiguous(Vec<Candidate>),
    /// Nothing fits well; the closest name if any is somewhat close.
    Unknown {
        /// A "did you mean" suggestion.
        suggestion: Option<Candidate>,
    },
    /// A number was said, and no guest has that VMID.
    NoSuchId(u32),
}

/// A name that could be meant.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// What it is.
    pub target: Target,
    /// Its name as Proxmox has it.
    pub name: String,
    /// How well it fits, 0..1.
    pub score: f64,
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A score at or above which a name is taken.
const ACCEPT: f64 = 0.82;
/// How far ahead of the runner-up the best name must be to be taken without asking.
const MARGIN: f64 = 0.06;
/// A score at or above which a name is offered as "did you mean".
const SUGGEST: f64 = 0.6;

/// Words that say what kind of thing follows, not which one.
const KIND_WORDS: &[&str] = &[
    "vm",
    "v",
    "m",
    "virtual",
    "machine",
    "container",
    "ct",
    "lxc",
    "guest",
    "number",
    "id",
    "node",
    "host",
    "server",
    "storage",
    "pool",
    "datastore",
    "the",
    "my",
];

/// Whether a word says what kind of thing follows ("vm", "node", "the"), not which one.
pub fn is_kind_word(word: &str) -> bool {
    KIND_WORDS.contains(&word)
}

#[derive(Debug, Clone)]
struct Key {
    words: Vec<String>,
    joined: String,
    sound: String,
}

impl Key {
    fn new(words: Vec<String>) -> Self {
        let joined: String = words.concat();
        let sound = sound_key(&joined);
        Self {
            words,
            joined,
            sound,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    target: Target,
    name: String,
    key: Key,
    /// The key without kind words ("media-server" → "media"), when that differs.
    short: Option<Key>,
}

/// The names of one inventory snapshot, ready for matching.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    entries: Vec<Entry>,
    vmids: Vec<(u32, GuestKind)>,
    /// Entries by their joined key (and by their short key): exact matches without a scan.
    exact: std::collections::HashMap<String, Vec<usize>>,
}

impl Directory {
    /// Indexes every node, guest (templates too) and storage.
    pub fn new(inventory: &Inventory) -> Self {
        let mut entries = Vec::with_capacity(
            inventory.nodes.len() + inventory.guests.len() + inventory.storages.len(),
        );
        let mut push = |target: Target, name: &str| {
            let words = normal_words(name);
            let stripped: Vec<String> = words
                .iter()
                .filter(|w| !KIND_WORDS.contains(&w.as_str()))
                .cloned()
                .collect();
            let short =
                (!stripped.is_empty() && stripped.len() < words.len()).then(|| Key::new(stripped));
            entries.push(Entry {
                target,
                name: name.to_owned(),
                key: Key::new(words),
                short,
            });
        };
        for node in &inventory.nodes {
            push(Target::Node(node.name.clone()), &node.name);
        }
        for guest in &inventory.guests {
            push(Target::Guest(guest.vmid), &guest.name);
        }
        let mut seen = std::collections::HashSet::new();
        for storage in &inventory.storages {
            if seen.insert(storage.storage.as_str()) {
                push(Target::Storage(storage.storage.clone()), &storage.storage);
            }
        }
        let vmids = inventory.guests.iter().map(|g| (g.vmid, g.kind)).collect();
        let mut exact: std::collections::HashMap<String, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            exact.entry(entry.key.joined.clone()).or_default().push(i);
        }
        Self {
            entries,
            vmids,
            exact,
        }
    }

    /// Entries whose whole name is exactly what was said (most commands): no scan needed.
    fn exact_hits(&self, key: &Key, kinds: Kinds) -> Vec<Candidate> {
        self.exact
            .get(&key.joined)
            .into_iter()
            .flatten()
            .map(|&i| &self.entries[i])
            .filter(|e| kinds.accepts(&e.target))
            .map(|e| Candidate {
                target: e.target.clone(),
                name: e.name.clone(),
                score: 1.0,
            })
            .collect()
    }

    /// The name whose normal form is exactly what was said ("p v e", "agent one", "media
    /// server", "mediaserver"), when one name has it.
    pub fn written<S: AsRef<str>>(&self, spoken: &[S]) -> Option<&str> {
        let spoken: Vec<&str> = spoken.iter().map(AsRef::as_ref).collect();
        let joined = spoken_words(&spoken).concat();
        let mut names = self
            .exact
            .get(&joined)?
            .iter()
            .map(|&i| &self.entries[i].name);
        let first = names.next()?;
        // A node and a storage may share a name; two different spellings may not be guessed.
        names.all(|n| n == first).then_some(first.as_str())
    }

    /// The name of a target, as Proxmox has it.
    pub fn name(&self, target: &Target) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| &e.target == target)
            .map(|e| e.name.as_str())
    }

    /// Whether what was said is the start of a name, not yet all of it: "media" for
    /// `media-server`, "backup server" for `backup-server-1`, "p v" for `pve`, "one" for VMID
    /// 101. A whole name is not partial, even when it starts a longer one.
    pub fn is_partial<S: AsRef<str>>(&self, spoken: &[S]) -> bool {
        let spoken: Vec<&str> = spoken.iter().map(AsRef::as_ref).collect();
        let words = spoken_words(&spoken);
        if words.is_empty() || self.exact.contains_key(&words.concat()) {
            return false;
        }
        let unkinded: Vec<String> = words
            .iter()
            .skip_while(|w| is_kind_word(w))
            .cloned()
            .collect();
        let starts = |said: &[String]| {
            let joined = said.concat();
            let letters = said.iter().any(|w| w.chars().count() == 1);
            !said.is_empty()
                && self.entries.iter().any(|e| {
                    e.key.words.len() > said.len() && e.key.words.starts_with(said)
                        || letters
                            && e.key.joined.len() > joined.len()
                            && e.key.joined.starts_with(&joined)
                })
        };
        if starts(&words) || starts(&unkinded) {
            return true;
        }
        // A VMID still being said: "one" of "one oh one".
        match numbers::parse(&unkinded) {
            Some(n) => {
                let said = n.to_string();
                self.vmids.iter().any(|(id, _)| {
                    let id = id.to_string();
                    id.len() > said.len() && id.starts_with(&said)
                })
            }
            None => false,
        }
    }

    /// Resolves spoken words (already split into lower-case tokens) to a target.
    pub fn resolve<S: AsRef<str>>(&self, spoken: &[S], kinds: Kinds) -> Resolution {
        let spoken: Vec<&str> = spoken.iter().map(AsRef::as_ref).collect();
        // "VM one oh one", "container 200", "101": a VMID.
        if kinds.guests {
            let rest: Vec<&str> = spoken
                .iter()
                .copied()
                .filter(|w| !KIND_WORDS.contains(w))
                .collect();
            if let Some(vmid) = numbers::parse(&rest) {
                let said_kind = spoken.iter().any(|w| KIND_WORDS.contains(w));
                if self.vmids.iter().any(|(id, _)| *id == vmid) {
                    return Resolution::Found(Target::Guest(vmid));
                }
                if said_kind || rest.len() == spoken.len() {
                    // A bare number might still be part of a name ("agent one"): try names
                    // first, and report the missing VMID only if no name fits.
                    let by_name = self.by_name(&spoken, kinds);
                    return match by_name {
                        Resolution::Found(_) | Resolution::Ambiguous(_) => by_name,
                        _ => Resolution::NoSuchId(vmid),
                    };
                }
            }
        }
        self.by_name(&spoken, kinds)
    }

    fn by_name(&self, spoken: &[&str], kinds: Kinds) -> Resolution {
        let words = spoken_words(spoken);
        if words.is_empty() {
            return Resolution::Unknown { suggestion: None };
        }
        let full = Key::new(words.clone());
        let mut hits = self.exact_hits(&full, kinds);
        if hits.len() == 1 {
            return Resolution::Found(hits.remove(0).target);
        }
        if hits.len() > 1 {
            return Resolution::Ambiguous(hits);
        }
        let stripped: Vec<String> = words
            .iter()
            .filter(|w| !KIND_WORDS.contains(&w.as_str()))
            .cloned()
            .collect();
        let short =
            (!stripped.is_empty() && stripped.len() < words.len()).then(|| Key::new(stripped));
        let mut scored: Vec<Candidate> = self
            .entries
            .iter()
            .filter(|e| kinds.accepts(&e.target))
            .filter(|e| {
                could_be_close(&full, &e.key)
                    || short.as_ref().is_some_and(|s| could_be_close(s, &e.key))
                    || e.short.as_ref().is_some_and(|es| {
                        could_be_close(&full, es)
                            || short.as_ref().is_some_and(|s| could_be_close(s, es))
                    })
            })
            .map(|e| {
                let mut score = similarity(&full, &e.key);
                for (a, b) in [
                    (short.as_ref(), Some(&e.key)),
                    (Some(&full), e.short.as_ref()),
                    (short.as_ref(), e.short.as_ref()),
                ] {
                    if let (Some(a), Some(b)) = (a, b) {
                        // Matching with a kind word dropped counts a little less.
                        score = score.max(similarity(a, b) * 0.97);
                    }
                }
                Candidate {
                    target: e.target.clone(),
                    name: e.name.clone(),
                    score,
                }
            })
            .filter(|c| c.score >= SUGGEST)
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score));
        let Some(best) = scored.first().cloned() else {
            return Resolution::Unknown { suggestion: None };
        };
        if best.score < ACCEPT {
            return Resolution::Unknown {
                suggestion: Some(best),
            };
        }
        let close: Vec<Candidate> = scored
            .into_iter()
            .take_while(|c| c.score >= ACCEPT && best.score - c.score < MARGIN)
            .collect();
        if close.len() > 1 && best.score < 1.0 || close.len() > 1 && close[1].score >= 1.0 {
            return Resolution::Ambiguous(close);
        }
        Resolution::Found(best.target)
    }
}

/// The one of `names` that `spoken` means (exactly, or as a sound-alike or near miss with a
/// clear lead over the runner-up): its index. Names are compared in their normal form, so
/// `front_door` is "front door".
pub fn best_of<S: AsRef<str>, N: AsRef<str>>(spoken: &[S], names: &[N]) -> Option<usize> {
    let spoken: Vec<&str> = spoken.iter().map(AsRef::as_ref).collect();
    let said = Key::new(spoken_words(&spoken));
    if said.words.is_empty() {
        return None;
    }
    let mut scored: Vec<(usize, f64)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| (i, similarity(&said, &Key::new(normal_words(name.as_ref())))))
        .filter(|(_, score)| *score >= ACCEPT)
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    match scored.as_slice() {
        [] => None,
        [(i, _)] => Some(*i),
        [(i, best), (_, next), ..] => {
            (*best >= 1.0 && *next < 1.0 || best - next >= MARGIN).then_some(*i)
        }
    }
}

/// A cheap test that two keys may reach [`SUGGEST`]: same start (letter or sound), one a word
/// prefix of the other, or lengths close enough for the edit distance.
fn could_be_close(spoken: &Key, name: &Key) -> bool {
    let (a, b) = (spoken.joined.len(), name.joined.len());
    let longest = a.max(b).max(1) as f64;
    let length_ok = 1.0 - a.abs_diff(b) as f64 / longest >= SUGGEST;
    // The first letter is what speech recognition gets right most often; sound-alike first
    // letters ("bi hole") are left to the whole sound key below.
    let same_start = spoken.joined.as_bytes().first() == name.joined.as_bytes().first();
    (length_ok && same_start) || name.words.starts_with(&spoken.words) || spoken.sound == name.sound
}

/// How alike two keys are, 0..1.
fn similarity(spoken: &Key, name: &Key) -> f64 {
    if spoken.joined == name.joined {
        return 1.0;
    }
    if spoken.sound == name.sound {
        return 0.93;
    }
    // All the words said are the start of the name: "media" for "media-server".
    if spoken.words.len() < name.words.len() && name.words.starts_with(&spoken.words) {
        return 0.85;
    }
    let text = strsim::normalized_levenshtein(&spoken.joined, &name.joined);
    let sound = strsim::normalized_levenshtein(&spoken.sound, &name.sound) * 0.95;
    let jw = strsim::jaro_winkler(&spoken.joined, &name.joined) * 0.85;
    text.max(sound).max(jw)
}

/// A name's words: lower case, split at anything not alphanumeric and at letter/digit changes.
pub fn normal_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut last_digit: Option<bool> = None;
    for c in name.chars().flat_map(char::to_lowercase) {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            last_digit = None;
            continue;
        }
        let digit = c.is_ascii_digit();
        if last_digit.is_some_and(|d| d != digit) && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        word.push(c);
        last_digit = Some(digit);
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Spoken tokens in the same form as [`normal_words`]: runs of number words become digits.
pub fn spoken_words(spoken: &[&str]) -> Vec<String> {
    let tokens: Vec<String> = spoken.iter().flat_map(|w| normal_words(w)).collect();
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let run = tokens[i..]
            .iter()
            .take_while(|w| numbers::is_number_word(w))
            .count();
        if run > 0 {
            if let Some(n) = numbers::parse(&tokens[i..i + run]) {
                out.push(n.to_string());
                i += run;
                continue;
            }
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    out
}

/// A rough sound-alike key: consonants that speech recognition confuses share a letter, and
/// doubled letters collapse.
fn sound_key(text: &str) -> String {
    let mut key = String::with_capacity(text.len());
    for c in text.chars() {
        let mapped = match c {
            'b' | 'p' | 'v' | 'f' => 'p',
            'd' | 't' => 't',
            'g' | 'k' | 'c' | 'q' => 'k',
            's' | 'z' | 'x' => 's',
            'm' | 'n' => 'n',
            'h' | 'w' => continue,
            other => other,
        };
        if !key.ends_with(mapped) {
            key.push(mapped);
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxmox::{Guest, Node, Storage};

    fn node(name: &str) -> Node {
        Node::example(name)
    }

    fn guest(vmid: u32, name: &str) -> Guest {
        Guest::example(vmid, name, "pve")
    }

    fn directory() -> Directory {
        Directory::new(&Inventory {
            nodes: vec![node("pve"), node("agent1")],
            guests: vec![
                guest(100, "haos"),
                guest(101, "media-server"),
                guest(102, "pihole"),
                guest(103, "backup-server-1"),
                guest(104, "backup-server-2"),
                guest(105, "nextcloud"),
            ],
            storages: vec![Storage::example("local-lvm", "pve")],
        })
    }

    fn resolve(text: &str, kinds: Kinds) -> Resolution {
        let words: Vec<&str> = text.split_whitespace().collect();
        directory().resolve(&words, kinds)
    }

    #[test]
    fn names_as_speech_recognition_writes_them() {
        let found = |text: &str, target: Target| {
            assert_eq!(
                resolve(text, Kinds::ANY),
                Resolution::Found(target),
                "{text}"
            );
        };
        found("pve", Target::Node("pve".into()));
        found("pbe", Target::Node("pve".into()));
        found("p v e", Target::Node("pve".into()));
        found("agent one", Target::Node("agent1".into()));
        found("agent 1", Target::Node("agent1".into()));
        found("media server", Target::Guest(101));
        found("the media server", Target::Guest(101));
        found("mediaserver", Target::Guest(101));
        found("pi hole", Target::Guest(102));
        found("next cloud", Target::Guest(105));
        found("local lvm", Target::Storage("local-lvm".into()));
    }

    #[test]
    fn vmids_spoken_or_written() {
        for text in [
            "101",
            "one oh one",
            "vm one oh one",
            "one hundred one",
            "vm 101",
        ] {
            assert_eq!(
                resolve(text, Kinds::GUESTS),
                Resolution::Found(Target::Guest(101)),
                "{text}"
            );
        }
        assert_eq!(
            resolve("vm nine nine nine", Kinds::GUESTS),
            Resolution::NoSuchId(999)
        );
    }

    #[test]
    fn names_written_partial_and_by_target() {
        let d = directory();
        let written = |text: &str| {
            let words: Vec<&str> = text.split_whitespace().collect();
            d.written(&words).map(str::to_owned)
        };
        assert_eq!(written("p v e").as_deref(), Some("pve"));
        assert_eq!(written("agent one").as_deref(), Some("agent1"));
        assert_eq!(
            written("backup server one").as_deref(),
            Some("backup-server-1")
        );
        assert_eq!(written("mediaserver").as_deref(), Some("media-server"));
        assert_eq!(written("local lvm").as_deref(), Some("local-lvm"));
        assert_eq!(written("media"), None);
        assert_eq!(written("pbe"), None);

        let partial = |text: &str| {
            let words: Vec<&str> = text.split_whitespace().collect();
            d.is_partial(&words)
        };
        for text in [
            "media",
            "the media",
            "backup server",
            "agent",
            "p v",
            "one",
            "vm one oh",
        ] {
            assert!(partial(text), "{text}");
        }
        for text in [
            "pve",
            "media server",
            "agent one",
            "kitchen",
            "one oh one",
            "nine nine nine",
        ] {
            assert!(!partial(text), "{text}");
        }
        assert_eq!(d.name(&Target::Guest(101)), Some("media-server"));
        assert_eq!(d.name(&Target::Node("pve".into())), Some("pve"));
        assert_eq!(d.name(&Target::Guest(999)), None);
    }

    #[test]
    fn close_names_are_asked_about_and_far_ones_suggested() {
        match resolve("backup server", Kinds::GUESTS) {
            Resolution::Ambiguous(c) => {
                let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
                assert!(names.contains(&"backup-server-1") && names.contains(&"backup-server-2"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            resolve("backup server two", Kinds::GUESTS),
            Resolution::Found(Target::Guest(104))
        );
        match resolve("media serve", Kinds::GUESTS) {
            Resolution::Found(Target::Guest(101)) => {}
            Resolution::Unknown {
                suggestion: Some(c),
            } => assert_eq!(c.name, "media-server"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            resolve("toaster", Kinds::ANY),
            Resolution::Unknown { .. }
        ));
        // Kinds are honoured: pve is a node, not a guest.
        assert!(!matches!(
            resolve("pve", Kinds::GUESTS),
            Resolution::Found(Target::Node(_))
        ));
    }
}
