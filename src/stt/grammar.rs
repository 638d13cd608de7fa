//! Grammar-guided decoding: whisper.cpp can bias its tokens towards a grammar (GBNF rules, given
//! as element lists), lowering the logits of tokens the grammar does not allow by a penalty.
//!
//! A [`SpeechGrammar`] is built from sentences of words and slots (the brain's templates) and the
//! values each slot takes (the cluster's names, written and spoken). Words form a trie, and so do
//! the characters of each slot's values, so whisper.cpp's grammar state stays small (one stack
//! per distinct next character) however many names the cluster has. Words are lower case but
//! for a capital at the start of the sentence; names also Capitalised or in capitals ("PVE");
//! a comma may follow leading filler ("Hey Jarvis,"), and a sentence may end with `.`, `?` or
//! `!`. (Letters in either case anywhere, and commas after any word, let whisper write "therE,
//! On, tHe" and still match.)
//!
//! A number said as digits (a `#` value: a VMID) never begins a sentence, although a slot that
//! takes one may ("{target} status" is not "101 status", but still "vm 101 status"): at the
//! start of speech whisper writes number homophones as digits ("4-stop" for "force stop", "2"
//! for "to"), and a guided decode that keeps such a digit can only go on as a number ("4
//! status"). A sentence that does begin with a bare VMID is still transcribed (unguided) and
//! understood by the brain; names that begin with a digit ("3cx") are not numbers.
//!
//! The same grammar answers [`SpeechGrammar::accepts`] for a transcript, so a free decode that
//! is already in the grammar is not decoded again (greedy decoding with a penalty on the tokens
//! outside the grammar picks the same tokens when every token it picked was inside it).

use std::collections::{BTreeMap, HashMap};

use std::sync::Arc;

use whisper_rs::{GrammarRules, WhisperGrammarElement, WhisperGrammarElementType as Kind};

/// What a sentence is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    /// A word, as written (matched in either case).
    Word(&'a str),
    /// One of the values of the named slot.
    Slot(&'a str),
}

/// A slot value's placeholder for a number said as digits ("vm #" is "vm 101").
pub const DIGITS: char = '#';

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Edge {
    Word(String),
    Slot(String),
}

#[derive(Debug, Default)]
struct WordNode {
    next: BTreeMap<Edge, usize>,
    end: bool,
}

#[derive(Debug, Default)]
struct CharNode {
    /// `DIGITS` stands for one or more digits.
    next: BTreeMap<char, usize>,
    end: bool,
}

/// Collects sentences and slot values; [`GrammarBuilder::build`] makes the grammar.
#[derive(Debug)]
pub struct GrammarBuilder {
    words: Vec<WordNode>,
    slots: BTreeMap<String, Vec<CharNode>>,
    prefixes: Vec<String>,
}

impl Default for GrammarBuilder {
    fn default() -> Self {
        Self {
            words: vec![WordNode::default()],
            slots: BTreeMap::new(),
            prefixes: Vec::new(),
        }
    }
}

impl GrammarBuilder {
    /// An empty grammar.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sentence.
    pub fn sentence(&mut self, parts: &[Part<'_>]) {
        let mut node = 0;
        for part in parts {
            let edge = match part {
                Part::Word(word) => Edge::Word(normal(word)),
                Part::Slot(slot) => Edge::Slot((*slot).to_owned()),
            };
            node = match self.words[node].next.get(&edge) {
                Some(&next) => next,
                None => {
                    self.words.push(WordNode::default());
                    let next = self.words.len() - 1;
                    self.words[node].next.insert(edge, next);
                    next
                }
            };
        }
        self.words[node].end = true;
    }

    /// Words that may come before any sentence ("hey jarvis", "please"), followed by a comma or
    /// not.
    pub fn prefix(&mut self, words: &str) {
        let words = normal(words);
        if !words.is_empty() && !self.prefixes.contains(&words) {
            self.prefixes.push(words);
        }
    }

    /// Adds a value of `slot`: words separated by single spaces, `#` for a number in digits.
    /// It may come out in lower case, Capitalised or in capitals.
    pub fn value(&mut self, slot: &str, value: &str) {
        let value = normal(value);
        if value.is_empty() {
            return;
        }
        for form in [value.clone(), capitalised(&value), value.to_uppercase()] {
            self.insert_value(slot, &form);
        }
    }

    fn insert_value(&mut self, slot: &str, value: &str) {
        let trie = self
            .slots
            .entry(slot.to_owned())
            .or_insert_with(|| vec![CharNode::default()]);
        let mut node = 0;
        for c in value.chars() {
            node = match trie[node].next.get(&c) {
                Some(&next) => next,
                None => {
                    trie.push(CharNode::default());
                    let next = trie.len() - 1;
                    trie[node].next.insert(c, next);
                    next
                }
            };
        }
        trie[node].end = true;
    }

    /// The grammar, rule 0 its start.
    pub fn build(self) -> SpeechGrammar {
        let mut rules = Rules::default();
        let root = rules.reserve();
        let comma = rules.reserve();
        let end = rules.reserve();
        let digits = rules.reserve();
        rules.set(
            comma,
            vec![
                el(Kind::Character, ','),
                raw(Kind::Alternate, 0),
                raw(Kind::End, 0),
            ],
        );
        rules.set(
            end,
            vec![
                el(Kind::Character, '.'),
                el(Kind::CharacterAlternate, '?'),
                el(Kind::CharacterAlternate, '!'),
                raw(Kind::Alternate, 0),
                raw(Kind::End, 0),
            ],
        );
        // digits ::= [0-9] digits | [0-9]
        rules.set(
            digits,
            vec![
                el(Kind::Character, '0'),
                el(Kind::CharacterRangeUpper, '9'),
                raw(Kind::RuleReference, digits),
                raw(Kind::Alternate, 0),
                el(Kind::Character, '0'),
                el(Kind::CharacterRangeUpper, '9'),
                raw(Kind::End, 0),
            ],
        );
        // One rule per node of each slot's character trie, and for a slot that begins a
        // sentence, its first node without the values that begin with a number in digits (see
        // the module's documentation).
        let mut slot_rules: HashMap<&str, (usize, Option<usize>)> = HashMap::new();
        for (slot, trie) in &self.slots {
            let first = rules.rules.len();
            for _ in trie {
                rules.reserve();
            }
            let body_of = |node: &CharNode, numbers: bool| {
                let mut body = Vec::new();
                for (&c, &next) in &node.next {
                    if c == DIGITS && !numbers {
                        continue;
                    }
                    alternative(&mut body);
                    if c == DIGITS {
                        body.push(raw(Kind::RuleReference, digits));
                    } else {
                        push_char(&mut body, c);
                    }
                    body.push(raw(Kind::RuleReference, first + next));
                }
                if node.end {
                    alternative(&mut body);
                }
                body.push(raw(Kind::End, 0));
                body
            };
            for (i, node) in trie.iter().enumerate() {
                rules.set(first + i, body_of(node, true));
            }
            // A slot of numbers alone cannot begin a sentence at all.
            let leading = trie[0].next.keys().any(|&c| c != DIGITS).then(|| {
                let rule = rules.reserve();
                rules.set(rule, body_of(&trie[0], false));
                rule
            });
            slot_rules.insert(slot, (first, leading));
        }
        // One rule per node of the word trie: " " (the next words, as a character trie, each
        // then [,] and the node after it | a slot's value [,] node after) | end. The words
        // after a node share their characters, so whisper.cpp keeps one grammar stack per next
        // character, not one per next word.
        let first = rules.rules.len();
        for _ in &self.words {
            rules.reserve();
        }
        for (i, node) in self.words.iter().enumerate() {
            let mut entries: Vec<Entry> = Vec::new();
            for (edge, &next) in &node.next {
                let tail = vec![raw(Kind::RuleReference, first + next)];
                match edge {
                    Edge::Word(word) => {
                        if i == 0 {
                            entries.push((capitalised(word).chars().collect(), tail.clone()));
                        }
                        entries.push((word.chars().collect(), tail));
                    }
                    Edge::Slot(slot) => {
                        // A slot with no values: nothing can fill it.
                        let rule = slot_rules
                            .get(slot.as_str())
                            .and_then(|&(rule, leading)| if i == 0 { leading } else { Some(rule) });
                        if let Some(rule) = rule {
                            let mut body = vec![raw(Kind::RuleReference, rule)];
                            body.extend(tail);
                            entries.push((Vec::new(), body));
                        }
                    }
                }
            }
            if i == 0 {
                // Filler before a sentence ("hey jarvis, ...") leads back to its start.
                for prefix in &self.prefixes {
                    let tail = vec![
                        raw(Kind::RuleReference, comma),
                        raw(Kind::RuleReference, first),
                    ];
                    entries.push((capitalised(prefix).chars().collect(), tail.clone()));
                    entries.push((prefix.chars().collect(), tail));
                }
            }
            let mut body = Vec::new();
            if !entries.is_empty() {
                let words = char_trie(&mut rules, &entries);
                body.push(el(Kind::Character, ' '));
                body.push(raw(Kind::RuleReference, words));
            }
            if node.end {
                alternative(&mut body);
                body.push(raw(Kind::RuleReference, end));
            }
            body.push(raw(Kind::End, 0));
            rules.set(first + i, body);
        }
        rules.set(
            root,
            vec![raw(Kind::RuleReference, first), raw(Kind::End, 0)],
        );
        SpeechGrammar {
            rules: Arc::new(GrammarRules::new(&rules.rules)),
            words: self.words,
            slots: self.slots,
            prefixes: self.prefixes,
        }
    }
}

/// A string of characters to match, then the elements that follow it.
type Entry = (Vec<char>, Vec<WhisperGrammarElement>);

/// Rules matching any of `entries`: a string of characters, then its tail of elements (an empty
/// string: the tail alone). Returns the first rule; the strings share their common starts.
fn char_trie(rules: &mut Rules, entries: &[Entry]) -> usize {
    let rule = rules.reserve();
    let mut body = Vec::new();
    // Entries that end here, then one alternative per next character.
    for (_, tail) in entries.iter().filter(|(chars, _)| chars.is_empty()) {
        alternative(&mut body);
        body.extend(tail.iter().copied());
    }
    let mut next: BTreeMap<char, Vec<Entry>> = BTreeMap::new();
    for (chars, tail) in entries.iter().filter(|(chars, _)| !chars.is_empty()) {
        next.entry(chars[0])
            .or_default()
            .push((chars[1..].to_vec(), tail.clone()));
    }
    for (c, rest) in next {
        let child = char_trie(rules, &rest);
        alternative(&mut body);
        push_char(&mut body, c);
        body.push(raw(Kind::RuleReference, child));
    }
    body.push(raw(Kind::End, 0));
    rules.set(rule, body);
    rule
}

/// Starts another alternative in a rule body (nothing before the first).
fn alternative(body: &mut Vec<WhisperGrammarElement>) {
    if !body.is_empty() {
        body.push(raw(Kind::Alternate, 0));
    }
}

/// A character, as it is.
fn push_char(body: &mut Vec<WhisperGrammarElement>, c: char) {
    body.push(el(Kind::Character, c));
}

/// `text` with its first letter in capitals.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

fn el(kind: Kind, c: char) -> WhisperGrammarElement {
    WhisperGrammarElement::new(kind, u32::from(c))
}

fn raw(kind: Kind, value: usize) -> WhisperGrammarElement {
    WhisperGrammarElement::new(kind, u32::try_from(value).unwrap_or(u32::MAX))
}

#[derive(Default)]
struct Rules {
    rules: Vec<Vec<WhisperGrammarElement>>,
}

impl Rules {
    fn reserve(&mut self) -> usize {
        self.rules.push(Vec::new());
        self.rules.len() - 1
    }

    fn set(&mut self, rule: usize, body: Vec<WhisperGrammarElement>) {
        self.rules[rule] = body;
    }
}

/// Lower case, single spaces, no sentence punctuation; apostrophes and hyphens inside words
/// kept.
fn normal(text: &str) -> String {
    words(text).join(" ")
}

/// The words of a transcript as the grammar compares them.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '?' | '!' | ';' | ':'))
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != DIGITS)
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The grammar: whisper.cpp's rules, and what it needs to check a transcript against them.
#[derive(Debug)]
pub struct SpeechGrammar {
    /// In whisper.cpp's layout, converted once: every guided decode shares them (a homelab's
    /// grammar has ~300 000 rules; converting them took ~11 ms a decode).
    rules: Arc<GrammarRules>,
    words: Vec<WordNode>,
    slots: BTreeMap<String, Vec<CharNode>>,
    prefixes: Vec<String>,
}

/// Where a walk through a slot's character trie is: at a node, or inside the digits of a `#`
/// edge (which also stands at the node after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Node(usize),
    Digits(usize),
}

impl SpeechGrammar {
    /// The rules for `FullParams::set_grammar_rules`, rule 0 the start.
    pub fn rules(&self) -> &Arc<GrammarRules> {
        &self.rules
    }

    /// Whether the grammar accepts `text` (case, commas and final punctuation aside).
    pub fn accepts(&self, text: &str) -> bool {
        self.walk(&words(text), false)
    }

    /// Whether `text`, a decode in progress (its last word perhaps cut short), can still become
    /// a sentence of the grammar and is not one yet.
    pub fn unfinished(&self, text: &str) -> bool {
        let words = words(text);
        !words.is_empty() && self.walk(&words, true) && !self.walk(&words, false)
    }

    /// Matches `words` from the start, after any prefix; with `open`, as the beginning of a
    /// sentence (the last word may be the start of a word or name).
    fn walk(&self, words: &[String], open: bool) -> bool {
        if self.matches_from(0, words, open) {
            return true;
        }
        self.prefixes.iter().any(|prefix| {
            let prefix: Vec<&str> = prefix.split(' ').collect();
            words.len() > prefix.len()
                && words.iter().zip(&prefix).all(|(w, p)| w == p)
                && self.matches_from(0, &words[prefix.len()..], open)
        })
    }

    fn matches_from(&self, at: usize, words: &[String], open: bool) -> bool {
        let Some(node) = self.words.get(at) else {
            return false;
        };
        let Some((first, rest)) = words.split_first() else {
            return node.end || open && !node.next.is_empty();
        };
        node.next.iter().any(|(edge, &next)| match edge {
            Edge::Word(word) => {
                if word == first {
                    self.matches_from(next, rest, open)
                } else {
                    open && rest.is_empty() && word.starts_with(first.as_str())
                }
            }
            Edge::Slot(slot) => (1..=words.len()).any(|n| {
                let value = words[..n].join(" ");
                let ends = self.slot_states(slot, &value, at == 0);
                let whole = ends.iter().any(|at| self.is_end(slot, *at));
                whole && self.matches_from(next, &words[n..], open)
                    || open && n == words.len() && !ends.is_empty()
            }),
        })
    }

    /// Where `value` leads in the character trie of `slot` (nowhere: not the start of a value);
    /// `leading`: the slot begins the sentence, where a number in digits does not.
    fn slot_states(&self, slot: &str, value: &str, leading: bool) -> Vec<At> {
        let Some(trie) = self.slots.get(slot) else {
            return Vec::new();
        };
        let mut states = vec![At::Node(0)];
        for c in value.chars() {
            let mut next = Vec::new();
            for state in states {
                let node = match state {
                    At::Digits(after) => {
                        if c.is_ascii_digit() {
                            next.push(At::Digits(after));
                        }
                        after
                    }
                    At::Node(node) => node,
                };
                if let Some(&child) = trie[node].next.get(&c) {
                    next.push(At::Node(child));
                }
                // The root is only ever the first character's state.
                if c.is_ascii_digit() && !(leading && node == 0) {
                    if let Some(&child) = trie[node].next.get(&DIGITS) {
                        next.push(At::Digits(child));
                    }
                }
            }
            next.dedup();
            if next.is_empty() {
                return next;
            }
            states = next;
        }
        states
    }

    fn is_end(&self, slot: &str, at: At) -> bool {
        let node = match at {
            At::Node(node) | At::Digits(node) => node,
        };
        self.slots
            .get(slot)
            .and_then(|trie| trie.get(node))
            .is_some_and(|n| n.end)
    }

    /// Rules in the grammar (for the log and tests).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the grammar has no sentence.
    pub fn is_empty(&self) -> bool {
        self.words.first().is_none_or(|root| root.next.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn homelab() -> SpeechGrammar {
        let mut b = GrammarBuilder::new();
        b.sentence(&[
            Part::Word("what"),
            Part::Word("is"),
            Part::Word("the"),
            Part::Word("status"),
            Part::Word("of"),
            Part::Slot("target"),
        ]);
        b.sentence(&[Part::Word("start"), Part::Slot("guest")]);
        b.prefix("hey jarvis");
        for name in ["pve", "node pve", "p v e", "media-server", "media server"] {
            b.value("target", name);
        }
        b.value("guest", "media-server");
        b.value("guest", "vm #");
        b.build()
    }

    #[test]
    fn transcripts_are_checked_against_the_sentences_and_names() {
        let g = homelab();
        assert!(g.accepts("What is the status of node pve?"));
        assert!(g.accepts("what is the status of P V E"));
        assert!(g.accepts("Hey Jarvis, start media-server."));
        assert!(g.accepts("Start VM 101."));
        assert!(!g.accepts("What is the status of node pbe?"));
        assert!(!g.accepts("Start VM."));
        assert!(!g.accepts("Turn on the kitchen lights."));
        assert!(!g.accepts("what is the status of"));
        assert!(!g.accepts(""));
    }

    #[test]
    fn a_number_in_digits_does_not_begin_a_sentence_but_a_name_with_one_does() {
        let mut b = GrammarBuilder::new();
        b.sentence(&[Part::Slot("guest"), Part::Word("status")]);
        b.sentence(&[Part::Word("force"), Part::Word("stop"), Part::Slot("guest")]);
        b.sentence(&[Part::Slot("days"), Part::Word("days")]);
        b.prefix("hey jarvis");
        for value in ["#", "vm #", "frigate", "3cx"] {
            b.value("guest", value);
        }
        b.value("days", "#");
        let g = b.build();
        assert!(g.accepts("Force stop frigate."));
        assert!(g.accepts("Force stop 101."), "a VMID later in the sentence");
        assert!(g.accepts("VM 101 status?"));
        assert!(g.accepts("Frigate status."));
        assert!(g.accepts("3cx status"), "a name, not a number");
        assert!(!g.accepts("4 status"));
        assert!(!g.accepts("101 status"));
        assert!(!g.accepts("Hey Jarvis, 101 status"), "after filler too");
        assert!(!g.accepts("10 days"), "a slot of numbers alone");
        assert!(!g.unfinished("4"));
        assert!(!g.unfinished("4 stat"));
        assert!(g.unfinished("Force stop"));
        assert!(g.unfinished("3"), "the start of 3cx");
    }

    #[test]
    fn a_decode_in_progress_is_told_unfinished_while_the_grammar_can_still_complete_it() {
        let g = homelab();
        assert!(g.unfinished("What is the status of"));
        assert!(g.unfinished("What is the status of node"));
        assert!(g.unfinished("What is the status of node P"));
        assert!(g.unfinished("What is the stat"));
        assert!(g.unfinished(" Hey Jarvis, start media"));
        assert!(g.unfinished("Start VM"));
        assert!(!g.unfinished("Start VM 101"), "complete");
        assert!(!g.unfinished("What is the status of node pve."), "complete");
        assert!(!g.unfinished("Turn on the"), "not in the grammar");
        assert!(
            !g.unfinished("What is the status of node pbe"),
            "left the grammar"
        );
        assert!(!g.unfinished(""));
    }

    #[test]
    fn the_rules_are_well_formed_for_whisper() {
        let g = homelab();
        assert!(!g.is_empty());
        let rules: Vec<Vec<WhisperGrammarElement>> =
            (0..g.len()).map(|i| g.rules().rule(i).unwrap()).collect();
        for (i, rule) in rules.iter().enumerate() {
            assert_eq!(
                rule.last().map(|e| e.element_type),
                Some(Kind::End),
                "rule {i} ends with END"
            );
            assert_eq!(
                rule.iter().filter(|e| e.element_type == Kind::End).count(),
                1,
                "rule {i} has one END"
            );
            for e in rule {
                if e.element_type == Kind::RuleReference {
                    assert!(
                        (e.value as usize) < rules.len(),
                        "rule {i} refers past the end"
                    );
                }
            }
        }
        // Names share their characters: "media-server" and "media server" are one path up
        // to the hyphen.
        let nodes_before = rules.len();
        let mut b = GrammarBuilder::new();
        b.sentence(&[Part::Slot("target")]);
        for i in 0..1000 {
            b.value("target", &format!("guest-{i}"));
        }
        let big = b.build();
        assert!(big.len() < 1000 * 12, "{} rules for 1000 names", big.len());
        assert!(nodes_before > 4);
    }
}
