//! Grammar-guided decoding: whisper.cpp can bias its tokens towards a grammar (GBNF rules, given
//! as element lists), lowering the logits of tokens the grammar does not allow by a penalty.
//!
//! A [`SpeechGrammar`] is built from sentences of words and slots (the brain's templates) and the
//! values each slot takes (the cluster's names, written and spoken). Words form a trie (its equal
//! endings made one), and so do the characters of each slot's values, so whisper.cpp's grammar
//! state stays small (one stack per distinct next character) however many names the cluster
//! has; a slot's values may end in any value of another slot, so each name is held once. Words
//! are lower case but for a capital at the start of the sentence; each word of a value is in
//! lower case, capitalised or in capitals ("pve", "Pve", "PVE"; see [`Case`]);
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
//! [`SpeechGrammar::nearest`] finds the sentences nearest to a transcript in spelling, for
//! whisper to score (`super::whisper`).
//!
//! The same grammar answers [`SpeechGrammar::accepts`] for a transcript, so a free decode that
//! is already in the grammar is not decoded again (greedy decoding with a penalty on the tokens
//! outside the grammar picks the same tokens when every token it picked was inside it).

use std::collections::{BTreeMap, HashMap, HashSet};

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
/// A slot value's placeholder for exactly one digit: a number of at least three digits is
/// `%%#`. (`###` would say the same, but three "one or more" runs in a row can split a long run
/// of digits in many ways, and whisper.cpp keeps a grammar stack for each: a guided decode that
/// wrote a run of 30 digits took 1.2 s instead of 0.16 s.)
pub const DIGIT: char = '%';

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    next: Chars,
    /// Any value of another slot, then the node given ([`GrammarBuilder::value_then`]).
    subs: BTreeMap<String, usize>,
    end: bool,
}

/// A node's next characters and their nodes, sorted: most nodes of a name have one, and a
/// short list costs a fraction of a map's node (a cluster's names make ~100 000 of them).
#[derive(Debug, Default)]
struct Chars(Vec<(char, usize)>);

impl Chars {
    fn get(&self, c: &char) -> Option<&usize> {
        let at = self.0.binary_search_by_key(c, |&(k, _)| k).ok()?;
        self.0.get(at).map(|(_, next)| next)
    }

    fn insert(&mut self, c: char, next: usize) {
        match self.0.binary_search_by_key(&c, |&(k, _)| k) {
            Ok(at) => {
                if let Some(entry) = self.0.get_mut(at) {
                    entry.1 = next;
                }
            }
            Err(at) => self.0.insert(at, (c, next)),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&char, &usize)> {
        self.0.iter().map(|(c, next)| (c, next))
    }

    fn values(&self) -> impl Iterator<Item = &usize> {
        self.0.iter().map(|(_, next)| next)
    }
}

/// Collects sentences and slot values; [`GrammarBuilder::build`] makes the grammar.
///
/// The sentences' word trie is kept as one table of transitions between numbered nodes, over
/// numbered words: the brain's templates spell out ~85 000 nodes that share endings down to
/// ~600 ([`shared_endings`]), and a map per node held ~40 MB on the way there.
#[derive(Debug)]
pub struct GrammarBuilder {
    /// Each distinct edge once; the trie refers to them by their place here.
    edges: Vec<Edge>,
    edge_ids: HashMap<Edge, u32>,
    /// (node, edge) -> the node it leads to.
    trie: HashMap<(u32, u32), u32>,
    /// Whether each node ends a sentence; as many as there are nodes.
    ends: Vec<bool>,
    slots: BTreeMap<String, Vec<CharNode>>,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
}

impl Default for GrammarBuilder {
    fn default() -> Self {
        Self {
            edges: Vec::new(),
            edge_ids: HashMap::new(),
            trie: HashMap::new(),
            ends: vec![false],
            slots: BTreeMap::new(),
            prefixes: Vec::new(),
            suffixes: Vec::new(),
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
        let mut node = 0u32;
        for part in parts {
            let edge = match part {
                Part::Word(word) => Edge::Word(normal(word)),
                Part::Slot(slot) => Edge::Slot((*slot).to_owned()),
            };
            let edge = match self.edge_ids.get(&edge) {
                Some(&id) => id,
                None => {
                    let id = u32::try_from(self.edges.len()).unwrap_or(u32::MAX);
                    self.edges.push(edge.clone());
                    self.edge_ids.insert(edge, id);
                    id
                }
            };
            let fresh = u32::try_from(self.ends.len()).unwrap_or(u32::MAX);
            node = *self.trie.entry((node, edge)).or_insert(fresh);
            if node == fresh {
                self.ends.push(false);
            }
        }
        if let Some(end) = self.ends.get_mut(node as usize) {
            *end = true;
        }
    }

    /// Words that may come before any sentence ("hey jarvis", "please"), followed by a comma or
    /// not.
    pub fn prefix(&mut self, words: &str) {
        let words = normal(words);
        if !words.is_empty() && !self.prefixes.contains(&words) {
            self.prefixes.push(words);
        }
    }

    /// Words that may end any sentence without changing it ("right now", "please"), as the
    /// brain reads them: [`SpeechGrammar::accepts`] takes a sentence with them, so a transcript
    /// that says them is not decoded again (they are not in the rules: whisper is not steered
    /// towards them).
    pub fn suffix(&mut self, words: &str) {
        let words = normal(words);
        if !words.is_empty() && !self.suffixes.contains(&words) {
            self.suffixes.push(words);
        }
    }

    /// Adds a value of `slot`: words separated by single spaces, `#` for a number in digits,
    /// `%` for one digit.
    /// Its letters may come out in either case ("pve", "Pve", "PVE"); it is kept once, in
    /// lower case.
    pub fn value(&mut self, slot: &str, value: &str) {
        let value = normal(value);
        if !value.is_empty() {
            self.insert_value(slot, &value);
        }
    }

    /// Adds values of `slot` made of the words `prefix` (perhaps none), then any value of the
    /// slot `names` ("the vm " then any guest's name). The names are held once however many
    /// prefixes and slots share them, where spelling out every combination would copy each
    /// name into every one (a grammar for a cluster of 1000 guests had 670 000 rules). The
    /// prefix's letters may come out in either case, as a value's. `names` must hold plain
    /// values only ([`GrammarBuilder::value`]): a reference to a slot that has references of
    /// its own, or no values, is left out (whisper.cpp's grammar cannot follow a loop of them).
    pub fn value_then(&mut self, slot: &str, prefix: &str, names: &str) {
        self.name_node(slot, prefix, names);
    }

    /// As [`GrammarBuilder::value_then`], and the same values followed by the words `suffix`
    /// ("the " then any guest's name then " container").
    pub fn value_then_words(&mut self, slot: &str, prefix: &str, names: &str, suffix: &str) {
        let suffix = normal(suffix);
        let Some(after) = self.name_node(slot, prefix, names) else {
            return;
        };
        if suffix.is_empty() {
            return;
        }
        let end = self.insert_chars_from(slot, after, &format!(" {suffix}"));
        if let Some(trie) = self.slots.get_mut(slot) {
            trie[end].end = true;
        }
    }

    /// The node of `slot`'s trie after the words `prefix` and a value of `names`, made as
    /// needed; a value may end there.
    fn name_node(&mut self, slot: &str, prefix: &str, names: &str) -> Option<usize> {
        let mut prefix = normal(prefix);
        if !prefix.is_empty() {
            prefix.push(' ');
        }
        let node = self.insert_chars(slot, &prefix);
        let trie = self.slots.get_mut(slot)?;
        if let Some(&after) = trie[node].subs.get(names) {
            return Some(after);
        }
        trie.push(CharNode::default());
        let after = trie.len() - 1;
        trie[after].end = true;
        trie[node].subs.insert(names.to_owned(), after);
        Some(after)
    }

    fn insert_value(&mut self, slot: &str, value: &str) {
        let node = self.insert_chars(slot, value);
        if let Some(trie) = self.slots.get_mut(slot) {
            trie[node].end = true;
        }
    }

    /// The node of `slot`'s trie that `chars` lead to, made as needed.
    fn insert_chars(&mut self, slot: &str, chars: &str) -> usize {
        self.insert_chars_from(slot, 0, chars)
    }

    /// The node of `slot`'s trie that `chars` lead to from `from`, made as needed.
    fn insert_chars_from(&mut self, slot: &str, from: usize, chars: &str) -> usize {
        let trie = self
            .slots
            .entry(slot.to_owned())
            .or_insert_with(|| vec![CharNode::default()]);
        let mut node = from.min(trie.len() - 1);
        for c in chars.chars() {
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
        node
    }

    /// The grammar, rule 0 its start.
    pub fn build(mut self) -> SpeechGrammar {
        let words = shared_endings(
            &self.edges,
            std::mem::take(&mut self.trie),
            &std::mem::take(&mut self.ends),
        );
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
        // the module's documentation). Reserved first: a slot's rules refer to other slots'.
        // References only to slots that have values and no references of their own.
        let plain: HashSet<String> = self
            .slots
            .iter()
            .filter(|(_, trie)| trie.iter().all(|node| node.subs.is_empty()))
            .map(|(slot, _)| slot.clone())
            .collect();
        for trie in self.slots.values_mut() {
            for node in trie.iter_mut() {
                node.subs.retain(|sub, _| plain.contains(sub));
                node.next.0.shrink_to_fit();
            }
            trie.shrink_to_fit();
        }
        // The nodes from which a value can still end (a reference left out above can leave a
        // branch that never does; an empty rule would let whisper end there). A child is
        // always made after its parent, so one pass from the last node back decides each.
        let alive: HashMap<&str, Vec<bool>> = self
            .slots
            .iter()
            .map(|(slot, trie)| {
                let mut alive = vec![false; trie.len()];
                for i in (0..trie.len()).rev() {
                    let node = &trie[i];
                    alive[i] = node.end
                        || node.next.values().any(|&n| alive.get(n) == Some(&true))
                        || node.subs.values().any(|&n| alive.get(n) == Some(&true));
                }
                (slot.as_str(), alive)
            })
            .collect();
        let lives = |slot: &str, node: usize| {
            alive
                .get(slot)
                .and_then(|a| a.get(node))
                .copied()
                .unwrap_or(false)
        };
        // Whether a value of `slot` can begin a sentence: one not a number in digits.
        let leads = |slot: &str| {
            self.slots.get(slot).is_some_and(|trie| {
                trie[0]
                    .next
                    .iter()
                    .any(|(&c, &next)| c != DIGITS && c != DIGIT && lives(slot, next))
            })
        };
        let can_lead = |slot: &str, trie: &[CharNode]| {
            leads(slot)
                || trie[0]
                    .subs
                    .iter()
                    .any(|(sub, &next)| lives(slot, next) && lives(sub, 0) && leads(sub))
        };
        let mut slot_rules: HashMap<&str, (usize, Option<usize>)> = HashMap::new();
        for (slot, trie) in &self.slots {
            if !lives(slot, 0) {
                continue;
            }
            let root = rules.reserve();
            let leading = can_lead(slot, trie).then(|| rules.reserve());
            slot_rules.insert(slot, (root, leading));
        }
        for (slot, trie) in &self.slots {
            let Some(&(root, leading)) = slot_rules.get(slot.as_str()) else {
                continue;
            };
            // One rule per node of the slot's character trie and [`Case`] of the word so far,
            // made as they are reached from the slot's first node.
            let mut made: HashMap<(usize, Case), usize> = HashMap::new();
            made.insert((0, Case::Start), root);
            let mut todo = vec![(0, Case::Start, root, true)];
            if let Some(rule) = leading {
                // A slot of numbers alone cannot begin a sentence at all.
                todo.push((0, Case::Start, rule, false));
            }
            while let Some((at, case, rule, numbers)) = todo.pop() {
                let node = &trie[at];
                let mut rule_of = |next: usize, case: Case, rules: &mut Rules| {
                    *made.entry((next, case)).or_insert_with(|| {
                        let rule = rules.reserve();
                        todo.push((next, case, rule, true));
                        rule
                    })
                };
                let mut body = Vec::new();
                for (&c, &next) in node.next.iter() {
                    if (c == DIGITS || c == DIGIT) && !numbers || !lives(slot, next) {
                        continue;
                    }
                    if c == DIGITS || c == DIGIT {
                        alternative(&mut body);
                        if c == DIGITS {
                            body.push(raw(Kind::RuleReference, digits));
                        } else {
                            body.push(el(Kind::Character, '0'));
                            body.push(el(Kind::CharacterRangeUpper, '9'));
                        }
                        body.push(raw(
                            Kind::RuleReference,
                            rule_of(next, Case::Start, &mut rules),
                        ));
                        continue;
                    }
                    for (written, after) in case.letter(c) {
                        alternative(&mut body);
                        push_char(&mut body, written);
                        body.push(raw(Kind::RuleReference, rule_of(next, after, &mut rules)));
                    }
                }
                for (sub, &next) in &node.subs {
                    if !lives(slot, next) {
                        continue;
                    }
                    let sub_rule = slot_rules
                        .get(sub.as_str())
                        .and_then(|&(all, leading)| if numbers { Some(all) } else { leading });
                    if let Some(sub_rule) = sub_rule {
                        alternative(&mut body);
                        body.push(raw(Kind::RuleReference, sub_rule));
                        body.push(raw(
                            Kind::RuleReference,
                            rule_of(next, Case::Start, &mut rules),
                        ));
                    }
                }
                if node.end {
                    alternative(&mut body);
                }
                body.push(raw(Kind::End, 0));
                rules.set(rule, body);
            }
        }
        // One rule per node of the word trie: " " (the next words, as a character trie, each
        // then [,] and the node after it | a slot's value [,] node after) | end. The words
        // after a node share their characters, so whisper.cpp keeps one grammar stack per next
        // character, not one per next word.
        let first = rules.rules.len();
        for _ in &words {
            rules.reserve();
        }
        for (i, node) in words.iter().enumerate() {
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
            words,
            slots: self.slots,
            prefixes: self.prefixes,
            suffixes: self.suffixes,
        }
    }
}

/// The word trie with the nodes that end the same way merged into one (a trie made a minimal
/// graph: "... on node {target}" and "... of node {target}" share "node {target}" and what may
/// follow). The sentences are the same; the rules are made once per node, so the brain's
/// templates, which share their endings everywhere, need a fraction of them. A child is always
/// numbered after its parent, so one pass from the last node back finds each node's equal. The
/// root stays first.
fn shared_endings(edges: &[Edge], trie: HashMap<(u32, u32), u32>, ends: &[bool]) -> Vec<WordNode> {
    // Each node's transitions, sorted by node: one table rather than one map per node.
    let mut transitions: Vec<(u32, u32, u32)> = trie
        .into_iter()
        .map(|((node, edge), child)| (node, edge, child))
        .collect();
    transitions.sort_unstable();
    let mut id_of = vec![0u32; ends.len()];
    let mut distinct: Vec<(bool, Vec<(u32, u32)>)> = Vec::new();
    let mut by_ending: HashMap<(bool, Vec<(u32, u32)>), u32> = HashMap::new();
    let mut upto = transitions.len();
    for node in (0..ends.len()).rev() {
        let from = transitions[..upto].partition_point(|&(n, _, _)| (n as usize) < node);
        let next: Vec<(u32, u32)> = transitions[from..upto]
            .iter()
            .map(|&(_, edge, child)| (edge, id_of.get(child as usize).copied().unwrap_or(0)))
            .collect();
        upto = from;
        let end = ends.get(node).copied().unwrap_or(false);
        let fresh = u32::try_from(distinct.len()).unwrap_or(u32::MAX);
        let id = *by_ending.entry((end, next.clone())).or_insert(fresh);
        if id == fresh {
            distinct.push((end, next));
        }
        if let Some(slot) = id_of.get_mut(node) {
            *slot = id;
        }
    }
    drop(transitions);
    drop(by_ending);
    // Renumber: the root first, then the others.
    let root = id_of.first().copied().unwrap_or(0) as usize;
    let mut order = vec![root];
    order.extend((0..distinct.len()).rev().filter(|&id| id != root));
    let mut place = vec![0usize; distinct.len()];
    for (at, &id) in order.iter().enumerate() {
        if let Some(p) = place.get_mut(id) {
            *p = at;
        }
    }
    order
        .iter()
        .filter_map(|&id| distinct.get(id))
        .map(|(end, next)| WordNode {
            next: next
                .iter()
                .filter_map(|&(edge, id)| {
                    let edge = edges.get(edge as usize)?.clone();
                    Some((edge, place.get(id as usize).copied().unwrap_or(0)))
                })
                .collect(),
            end: *end,
        })
        .collect()
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

/// The letter case of the word of a slot's value written so far. Each word of a value (the
/// characters between two that are not letters) is in lower case, capitalised or in capitals:
/// "pve", "Pve" or "PVE", "Media-server" or "MEDIA-SERVER", never "pVe" or "mEdIa". With a
/// letter in either case anywhere, a guided decode could spell a name in pieces that whisper
/// finds very unlikely ("HOSt Pve status.", "Stop mEdIa-SeRvEr.": 37 of 152 guided decodes on
/// the WER bench's 250 clips), which were then not kept but for one, whose transcript read
/// "What's the health of noDe agent1?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Case {
    /// No letter of the word yet.
    Start,
    /// One letter, a capital: the word is capitalised or in capitals.
    Capital,
    /// Lower case (after a first letter in either case).
    Lower,
    /// Capitals.
    Upper,
}

impl Case {
    /// How the letter `c` of a value (kept in lower case) may be written in this case, each
    /// with the case after it. A character that is not a letter with one capital ends the word.
    fn letter(self, c: char) -> impl Iterator<Item = (char, Case)> {
        let mut upper = c.to_uppercase();
        let upper = match (upper.next(), upper.next()) {
            (Some(u), None) if u != c => Some(u),
            _ => None,
        };
        let (first, second) = match (upper, self) {
            (None, _) => ((c, Case::Start), None),
            (Some(u), Case::Start) => ((c, Case::Lower), Some((u, Case::Capital))),
            (Some(u), Case::Capital) => ((c, Case::Lower), Some((u, Case::Upper))),
            (Some(_), Case::Lower) => ((c, Case::Lower), None),
            (Some(u), Case::Upper) => ((u, Case::Upper), None),
        };
        std::iter::once(first).chain(second)
    }
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
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != DIGITS && c != DIGIT)
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Which end of a sentence a prefix or suffix stands at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Start,
    End,
}

/// `words` without the words of `affix` (separated by single spaces) at that `side`, when they
/// stand there and something is left.
fn without<'w>(words: &'w [String], affix: &str, side: Side) -> Option<&'w [String]> {
    let n = affix.split(' ').count();
    if words.len() <= n {
        return None;
    }
    let (rest, there) = match side {
        Side::Start => {
            let (there, rest) = words.split_at(n);
            (rest, there)
        }
        Side::End => words.split_at(words.len() - n),
    };
    there
        .iter()
        .zip(affix.split(' '))
        .all(|(w, a)| w == a)
        .then_some(rest)
}

/// Where the character `c` leads from `at` in `trie` (`leading`: at the first character of a
/// value that begins the sentence, where a number in digits does not).
fn step(trie: &[CharNode], at: At, c: char, leading: bool) -> Vec<At> {
    let mut next = Vec::new();
    let node = match at {
        At::Digits(after) => {
            if c.is_ascii_digit() {
                next.push(At::Digits(after));
            }
            after
        }
        At::Node(node) => node,
    };
    let Some(here) = trie.get(node) else {
        return next;
    };
    if let Some(&child) = here.next.get(&c) {
        next.push(At::Node(child));
    }
    // The root is only ever the first character's state.
    if c.is_ascii_digit() && !(leading && node == 0) {
        if let Some(&child) = here.next.get(&DIGITS) {
            next.push(At::Digits(child));
        }
        if let Some(&child) = here.next.get(&DIGIT) {
            next.push(At::Node(child));
        }
    }
    next
}

/// The grammar: whisper.cpp's rules, and what it needs to check a transcript against them.
#[derive(Debug)]
pub struct SpeechGrammar {
    /// In whisper.cpp's layout, converted once: every guided decode shares them (a homelab's
    /// grammar had ~300 000 rules before the word trie shared its endings; converting them took
    /// ~11 ms a decode).
    rules: Arc<GrammarRules>,
    words: Vec<WordNode>,
    slots: BTreeMap<String, Vec<CharNode>>,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
}

/// Where a walk through a slot's character trie is: at a node, or inside the digits of a `#`
/// edge (which also stands at the node after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Node(usize),
    Digits(usize),
}

impl At {
    fn node(self) -> usize {
        match self {
            Self::Node(node) | Self::Digits(node) => node,
        }
    }
}

/// A state of a walk through a slot's values: where in the slot's trie, and inside a value of
/// another slot that it refers to (the walk goes on at `at` once that value ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State<'a> {
    at: At,
    inner: Option<(&'a str, At)>,
}

impl SpeechGrammar {
    /// The rules for `FullParams::set_grammar_rules`, rule 0 the start.
    pub fn rules(&self) -> &Arc<GrammarRules> {
        &self.rules
    }

    /// Whether the grammar accepts `text` (case, commas and final punctuation aside), perhaps
    /// ending in words that end any sentence ([`GrammarBuilder::suffix`]).
    pub fn accepts(&self, text: &str) -> bool {
        let words = words(text);
        self.walk(&words, false)
            || self
                .suffixes
                .iter()
                .filter_map(|suffix| without(&words, suffix, Side::End))
                .any(|rest| self.walk(rest, false))
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
        self.prefixes
            .iter()
            .filter_map(|prefix| without(words, prefix, Side::Start))
            .any(|rest| self.matches_from(0, rest, open))
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
    fn slot_states(&self, slot: &str, value: &str, leading: bool) -> Vec<State<'_>> {
        let Some(trie) = self.slots.get(slot) else {
            return Vec::new();
        };
        let mut states = Vec::new();
        self.enter(
            trie,
            State {
                at: At::Node(0),
                inner: None,
            },
            &mut states,
        );
        let mut first = true;
        for c in value.chars() {
            let mut next = Vec::new();
            for state in states {
                match state.inner {
                    Some((sub, inner)) => {
                        let Some(sub_trie) = self.slots.get(sub) else {
                            continue;
                        };
                        // The root of the value inside is the first character's state only
                        // when its reference is at the root too.
                        let lead = leading && first;
                        for inner in step(sub_trie, inner, c, lead) {
                            let stepped = State {
                                at: state.at,
                                inner: Some((sub, inner)),
                            };
                            self.enter(trie, stepped, &mut next);
                        }
                    }
                    None => {
                        for at in step(trie, state.at, c, leading && first) {
                            self.enter(trie, State { at, inner: None }, &mut next);
                        }
                    }
                }
            }
            if next.is_empty() {
                return next;
            }
            states = next;
            first = false;
        }
        states
    }

    /// Adds `state` to `states` with where it leads without a character: into the values of the
    /// slots its node refers to, and out of a value inside that has ended.
    fn enter<'a>(&'a self, trie: &[CharNode], state: State<'a>, states: &mut Vec<State<'a>>) {
        if states.contains(&state) {
            return;
        }
        states.push(state);
        match state.inner {
            Some((sub, inner)) => {
                let ended = self
                    .slots
                    .get(sub)
                    .and_then(|t| t.get(inner.node()))
                    .is_some_and(|n| n.end);
                if ended {
                    self.enter(
                        trie,
                        State {
                            at: state.at,
                            inner: None,
                        },
                        states,
                    );
                }
            }
            None => {
                let Some(node) = trie.get(state.at.node()) else {
                    return;
                };
                // Only to plain slots: [`GrammarBuilder::build`] dropped the others.
                for (sub, &after) in &node.subs {
                    if let Some((sub, _)) = self.slots.get_key_value(sub.as_str()) {
                        let inside = State {
                            at: At::Node(after),
                            inner: Some((sub.as_str(), At::Node(0))),
                        };
                        self.enter(trie, inside, states);
                    }
                }
            }
        }
    }

    fn is_end(&self, slot: &str, state: State<'_>) -> bool {
        state.inner.is_none()
            && self
                .slots
                .get(slot)
                .and_then(|trie| trie.get(state.at.node()))
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

/// A sentence of the grammar near a transcript in spelling ([`SpeechGrammar::nearest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Near {
    /// The sentence, words and names as the grammar writes them, its first letter a capital.
    pub text: String,
    /// Letters and digits to change, add or drop (case, spaces and punctuation aside) to turn
    /// the transcript into it.
    pub cost: usize,
}

/// Most row extensions one [`SpeechGrammar::nearest`] search makes (~25 operations each): a
/// bound on its time whatever the grammar (a few ms).
const NEAREST_BUDGET: usize = 200_000;
/// The most ways [`spoken_numbers`] reads one run of digit groups (each group read two ways
/// doubles them).
const MAX_NUMBER_FORMS: usize = 8;

/// Where a search goes on once a slot's value has ended.
#[derive(Debug, Clone, Copy)]
enum Then<'g> {
    /// The sentence's next word node.
    Words(usize),
    /// The outer slot's node after a value of the slot it refers to.
    Slot(&'g str, usize),
}

/// One [`SpeechGrammar::nearest`] search: a depth-first walk of the sentences, each prefix
/// carrying its row of edit distances to the prefixes of the target, and cut off once no
/// prefix of the target is within the bound.
struct Search<'g> {
    grammar: &'g SpeechGrammar,
    target: Vec<char>,
    numbers: Vec<String>,
    best: Vec<Near>,
    keep: usize,
    bound: usize,
    budget: usize,
}

impl<'g> Search<'g> {
    /// The highest cost still worth following.
    fn limit(&self) -> usize {
        match self.best.last() {
            Some(worst) if self.best.len() >= self.keep => worst.cost,
            _ => self.bound,
        }
    }

    /// `row` extended by one character of a sentence; `None` once nothing within the limit.
    fn extend(&mut self, row: &[usize], c: char) -> Option<Vec<usize>> {
        if !c.is_alphanumeric() {
            return Some(row.to_vec());
        }
        self.budget = self.budget.checked_sub(1)?;
        let c = c.to_lowercase().next().unwrap_or(c);
        let mut next = Vec::with_capacity(row.len());
        next.push(row.first().copied().unwrap_or(0) + 1);
        for (j, t) in self.target.iter().enumerate() {
            let left = next.last().copied().unwrap_or(usize::MAX - 1) + 1;
            let up = row.get(j + 1).copied().unwrap_or(usize::MAX - 1) + 1;
            let diagonal = row.get(j).copied().unwrap_or(usize::MAX - 1) + usize::from(*t != c);
            next.push(left.min(up).min(diagonal));
        }
        let least = next.iter().copied().min().unwrap_or(usize::MAX);
        (least <= self.limit()).then_some(next)
    }

    fn extend_all(&mut self, row: &[usize], chars: &str) -> Option<Vec<usize>> {
        let mut row = row.to_vec();
        for c in chars.chars() {
            row = self.extend(&row, c)?;
        }
        Some(row)
    }

    /// A whole sentence: kept if it is among the nearest so far.
    fn offer(&mut self, row: &[usize], text: &str) {
        let cost = row.last().copied().unwrap_or(usize::MAX);
        if cost > self.limit() {
            return;
        }
        let text = capitalised(text.trim_start());
        if self.best.iter().any(|near| near.text == text) {
            return;
        }
        let at = self.best.partition_point(|near| near.cost <= cost);
        self.best.insert(at, Near { text, cost });
        self.best.truncate(self.keep);
    }

    fn words(&mut self, node: usize, row: &[usize], text: &mut String) {
        let grammar = self.grammar;
        let Some(here) = grammar.words.get(node) else {
            return;
        };
        if here.end {
            self.offer(row, text);
        }
        for (edge, &next) in &here.next {
            if self.budget == 0 {
                return;
            }
            let len = text.len();
            match edge {
                Edge::Word(word) => {
                    if let Some(row) = self.extend_all(row, word) {
                        text.push(' ');
                        text.push_str(word);
                        self.words(next, &row, text);
                    }
                }
                Edge::Slot(slot) => {
                    if let Some((slot, _)) = grammar.slots.get_key_value(slot.as_str()) {
                        text.push(' ');
                        self.chars(slot, 0, row, text, &mut vec![Then::Words(next)]);
                    }
                }
            }
            text.truncate(len);
        }
    }

    /// The values of `slot` from its node `node`; `then`: where to go on at a value's end.
    fn chars(
        &mut self,
        slot: &'g str,
        node: usize,
        row: &[usize],
        text: &mut String,
        then: &mut Vec<Then<'g>>,
    ) {
        let grammar = self.grammar;
        let Some(here) = grammar.slots.get(slot).and_then(|trie| trie.get(node)) else {
            return;
        };
        if here.end {
            if let Some(after) = then.pop() {
                match after {
                    Then::Words(next) => self.words(next, row, text),
                    Then::Slot(outer, at) => self.chars(outer, at, row, text, then),
                }
                then.push(after);
            }
        }
        for (sub, &after) in &here.subs {
            if let Some((sub, _)) = grammar.slots.get_key_value(sub.as_str()) {
                then.push(Then::Slot(slot, after));
                self.chars(sub, 0, row, text, then);
                then.pop();
            }
        }
        let mut numbered = false;
        for (&c, &next) in here.next.iter() {
            if self.budget == 0 {
                return;
            }
            let len = text.len();
            if c == DIGITS || c == DIGIT {
                // Every edge of a run is handled at the first.
                if std::mem::replace(&mut numbered, true) {
                    continue;
                }
                // A number: one the transcript holds, where the grammar takes that many digits.
                let Some((least, exact, after)) = digit_run(grammar, slot, node) else {
                    continue;
                };
                let numbers: Vec<String> = self
                    .numbers
                    .iter()
                    .filter(|n| n.len() >= least && (!exact || n.len() == least))
                    .cloned()
                    .collect();
                for number in numbers {
                    if let Some(row) = self.extend_all(row, &number) {
                        text.push_str(&number);
                        self.chars(slot, after, &row, text, then);
                        text.truncate(len);
                    }
                }
                continue;
            }
            if let Some(row) = self.extend(row, c) {
                text.push(c);
                self.chars(slot, next, &row, text, then);
                text.truncate(len);
            }
        }
    }
}

/// The run of digit placeholders from `node` of `slot`'s trie (`%` one digit, `#` one or more):
/// the fewest digits it takes, whether exactly that many, and the node after it.
fn digit_run(grammar: &SpeechGrammar, slot: &str, node: usize) -> Option<(usize, bool, usize)> {
    let trie = grammar.slots.get(slot)?;
    let (mut least, mut at) = (0, node);
    loop {
        let here = trie.get(at)?;
        match (here.next.get(&DIGIT), here.next.get(&DIGITS)) {
            (Some(&next), _) => {
                least += 1;
                at = next;
            }
            (None, Some(&next)) => return Some((least + 1, false, next)),
            (None, None) => return (least > 0).then_some((least, true, at)),
        }
    }
}

/// The numbers `text` holds: each run of digits, and the runs that follow one another with
/// only a hyphen, a point, a comma or spaces between them, or a spoken zero ("oh", "o", "or"),
/// joined. Whisper writes a number said digit by digit so: "one oh three" comes out as "1-03",
/// "1.0.2", "1 or 3"; each is also looked for as 103 or 102. A run that ends in zeros joined
/// to a shorter one is also their sum: "100-4" is also 104.
fn spoken_numbers(text: &str) -> Vec<String> {
    // The runs of digits, each with what joins it to the run before (`None`: nothing does).
    let mut runs: Vec<(Option<&str>, &str)> = Vec::new();
    let mut last_end: Option<usize> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if !c.is_ascii_digit() {
            continue;
        }
        let mut end = start + 1;
        while let Some(&(at, _)) = chars.peek().filter(|(_, c)| c.is_ascii_digit()) {
            end = at + 1;
            chars.next();
        }
        let joint = last_end.and_then(|last| {
            let between = text[last..start].trim_matches([' ', '-', '.', ',']);
            match between.to_ascii_lowercase().as_str() {
                "" => Some(""),
                "oh" | "o" | "or" => Some("0"),
                _ => None,
            }
        });
        runs.push((joint, &text[start..end]));
        last_end = Some(end);
    }
    let mut numbers: Vec<String> = Vec::new();
    for (first, &(_, digits)) in runs.iter().enumerate() {
        let mut forms = vec![digits.to_owned()];
        for &(joint, digits) in &runs[first + 1..] {
            let Some(joint) = joint else { break };
            let mut next = Vec::with_capacity(2 * forms.len());
            for form in &forms {
                next.push(format!("{form}{joint}{digits}"));
                // "100-4" is also a hundred and four.
                let zeros = form.len() - form.trim_end_matches('0').len();
                if joint.is_empty() && digits.len() <= zeros {
                    next.push(format!("{}{digits}", &form[..form.len() - digits.len()]));
                }
            }
            numbers.extend(std::mem::replace(&mut forms, next));
            if forms.len() > MAX_NUMBER_FORMS {
                break;
            }
        }
        numbers.extend(forms);
    }
    let mut seen = HashSet::new();
    numbers.retain(|n| seen.insert(n.clone()));
    numbers
}

impl SpeechGrammar {
    /// Up to `keep` sentences of the grammar nearest to `text` in spelling, nearest first:
    /// those that turn into it with at most `bound` letters or digits changed, added or
    /// dropped (case, spaces and punctuation aside). A number in the grammar is one of the
    /// transcript's. What whisper mishears in a command is mostly a sound or two ("Top
    /// nextcloud." for "Stop nextcloud.", "Half-oil is the local storage." for "How full is
    /// ..."), so the sentence said is usually among the nearest; whisper then says which of
    /// them it heard. The search stops after a fixed amount of work, however large the
    /// grammar.
    pub fn nearest(&self, text: &str, keep: usize, bound: usize) -> Vec<Near> {
        let target: Vec<char> = text
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        let numbers = spoken_numbers(text);
        let mut search = Search {
            grammar: self,
            target,
            numbers,
            best: Vec::new(),
            keep,
            bound,
            budget: NEAREST_BUDGET,
        };
        let row: Vec<usize> = (0..=search.target.len()).collect();
        search.words(0, &row, &mut String::new());
        search.best
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

    /// Whether whisper.cpp's rules, as built, match all of `text` (after the space whisper
    /// writes before its first word) from the root rule: each
    /// alternative of a rule in turn, characters (with their alternates and ranges) and rule
    /// references in order.
    fn whisper_matches(g: &SpeechGrammar, text: &str) -> bool {
        let rules: Vec<Vec<WhisperGrammarElement>> =
            (0..g.len()).map(|i| g.rules().rule(i).unwrap()).collect();
        let text: Vec<char> = std::iter::once(' ').chain(text.chars()).collect();
        ends(&rules, 0, &text, 0).contains(&text.len())
    }

    /// The positions of `text` where `rule`, begun at `at`, can end.
    fn ends(
        rules: &[Vec<WhisperGrammarElement>],
        rule: usize,
        text: &[char],
        at: usize,
    ) -> Vec<usize> {
        let body = &rules[rule];
        let body = &body[..body.len() - 1]; // the END
        let mut out = Vec::new();
        for alternative in body.split(|e| e.element_type == Kind::Alternate) {
            let mut positions = vec![at];
            let mut k = 0;
            while k < alternative.len() && !positions.is_empty() {
                let e = alternative[k];
                k += 1;
                if e.element_type == Kind::RuleReference {
                    positions = positions
                        .iter()
                        .flat_map(|&p| ends(rules, e.value as usize, text, p))
                        .collect();
                    positions.sort_unstable();
                    positions.dedup();
                    continue;
                }
                assert_eq!(e.element_type, Kind::Character, "rule {rule}");
                let mut set = vec![(e.value, e.value)];
                while let Some(next) = alternative.get(k) {
                    match next.element_type {
                        Kind::CharacterAlternate => set.push((next.value, next.value)),
                        Kind::CharacterRangeUpper => set.last_mut().unwrap().1 = next.value,
                        _ => break,
                    }
                    k += 1;
                }
                positions.retain(|&p| {
                    text.get(p).is_some_and(|&c| {
                        set.iter()
                            .any(|&(lo, hi)| (lo..=hi).contains(&u32::from(c)))
                    })
                });
                positions.iter_mut().for_each(|p| *p += 1);
            }
            out.extend(positions);
        }
        out
    }

    #[test]
    fn each_word_of_a_name_is_lower_case_capitalised_or_in_capitals() {
        let g = homelab();
        for text in [
            "What is the status of node pve?",
            "What is the status of node Pve?",
            "What is the status of node PVE?",
            "What is the status of P V E?",
            "What is the status of Node PVE?",
            "Start media-server.",
            "Start Media-server.",
            "Start MEDIA-SERVER.",
            "Start Media-Server.",
            "Start VM 101.",
        ] {
            assert!(whisper_matches(&g, text), "{text}");
            assert!(g.accepts(text), "{text}");
        }
        // Letters in either case anywhere in a word: whisper spells such names in pieces it
        // finds very unlikely ("HOSt", "mEdIa-SeRvEr").
        for text in [
            "What is the status of node pVe?",
            "What is the status of node PvE?",
            "What is the status of nOde pve?",
            "Start mEdIa-server.",
            "Start media-serveR.",
            "Start vM 101.",
        ] {
            assert!(!whisper_matches(&g, text), "{text}");
        }
        // The sentence's own words are as they were: lower case, the first capitalised.
        assert!(!whisper_matches(&g, "WHAT is the status of pve?"));
        assert!(!whisper_matches(&g, "Turn on the kitchen lights."));
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

    /// A grammar whose guest names are held once and referred to after their words.
    fn with_names(names: &[&str]) -> SpeechGrammar {
        let mut b = GrammarBuilder::new();
        b.sentence(&[Part::Word("start"), Part::Slot("guest")]);
        b.sentence(&[Part::Slot("guest"), Part::Word("status")]);
        for name in names {
            b.value("names", name);
        }
        for prefix in ["", "vm ", "the vm ", "container "] {
            b.value_then("guest", prefix, "names");
        }
        b.value("guest", "vm #");
        b.build()
    }

    #[test]
    fn names_held_once_are_reached_after_every_prefix() {
        let g = with_names(&["nextcloud", "media-server", "media server", "3cx", "#"]);
        assert!(g.accepts("Start nextcloud."));
        assert!(g.accepts("start the vm nextcloud"));
        assert!(g.accepts("Start VM Media-Server."));
        assert!(g.accepts("start container 3cx"));
        assert!(
            g.accepts("Start VM 101."),
            "a plain value beside the references"
        );
        assert!(
            g.accepts("start vm 42"),
            "a number among the names, after words"
        );
        assert!(g.accepts("Nextcloud status?"));
        assert!(
            g.accepts("3cx status"),
            "a name that begins with a digit may lead"
        );
        assert!(
            !g.accepts("42 status"),
            "a number alone does not begin a sentence"
        );
        assert!(!g.accepts("start the vm"));
        assert!(!g.accepts("start the vm nextclouds"));
        assert!(
            !g.accepts("start the container nextcloud"),
            "not a prefix given"
        );
        assert!(g.unfinished("start the vm next"));
        assert!(g.unfinished("start the"));
        assert!(!g.unfinished("start the vm nextcloud"), "complete");
        assert!(!g.unfinished("start the vm pbe"));
    }

    #[test]
    fn the_nearest_sentences_are_those_a_misheard_transcript_is_fewest_letters_from() {
        let g = with_names(&["nextcloud", "media-server", "3cx", "#"]);
        let near = g.nearest("Top nextcloud.", 3, 5);
        assert_eq!(near[0].text, "Start nextcloud", "{near:?}");
        assert_eq!(near[0].cost, 4, "{near:?}");
        // Names through references, numbers the transcript holds, case and hyphens aside.
        let near = g.nearest("Start the Vm media server", 1, 4);
        assert_eq!(near[0].text, "Start the vm media-server", "{near:?}");
        assert_eq!(near[0].cost, 0);
        let near = g.nearest("Star vm-101.", 2, 4);
        assert_eq!(near[0].text, "Start vm 101", "{near:?}");
        assert_eq!(near[0].cost, 1);
        assert!(near.iter().all(|n| g.accepts(&n.text)), "{near:?}");
        // Nearest first, each once, none past the bound.
        let near = g.nearest("nextcloud stat", 10, 6);
        assert_eq!(near[0].text, "Nextcloud status");
        assert!(near.windows(2).all(|w| w[0].cost <= w[1].cost), "{near:?}");
        assert!(near.iter().all(|n| n.cost <= 6), "{near:?}");
        let texts: HashSet<&str> = near.iter().map(|n| n.text.as_str()).collect();
        assert_eq!(texts.len(), near.len(), "{near:?}");
        assert!(g.nearest("Tell me a joke about penguins.", 3, 4).is_empty());
        // A number said digit by digit, as whisper writes it, is also the number.
        for said in [
            "Start vm 1-01.",
            "Start vm 1.0.1",
            "Start vm 1 or 1.",
            "Start vm 1, oh, 1",
        ] {
            let near = g.nearest(said, 3, 4);
            assert!(
                near.iter().any(|n| n.text == "Start vm 101"),
                "{said}: {near:?}"
            );
        }
        assert_eq!(spoken_numbers("vm 1-03 and 7"), ["1", "103", "03", "7"]);
        assert_eq!(
            spoken_numbers("1 or 3 to 2.5"),
            ["1", "103", "3", "2", "25", "5"]
        );
        // A number only where the transcript has one.
        assert!(
            g.nearest("Start vm", 5, 2)
                .iter()
                .all(|n| !n.text.contains(char::is_numeric))
        );
    }

    #[test]
    fn a_name_may_be_followed_by_words_that_say_its_kind() {
        let mut b = GrammarBuilder::new();
        b.sentence(&[Part::Word("restart"), Part::Slot("guest")]);
        b.value("names", "media-server");
        b.value("names", "pihole");
        b.value_then_words("guest", "the", "names", "container");
        b.value_then("guest", "", "names");
        let g = b.build();
        for text in [
            "Restart the media-server container.",
            "restart the pihole container",
            "Restart the pihole.",
            "Restart pihole",
        ] {
            assert!(g.accepts(text), "{text}");
            assert!(
                whisper_matches(&g, &text.to_lowercase().replace('.', "")),
                "{text}"
            );
        }
        assert!(
            !g.accepts("Restart pihole container"),
            "only after its own prefix"
        );
        assert!(!g.accepts("Restart the container"));
        let near = g.nearest("Restart the media-server contain.", 2, 4);
        assert_eq!(
            near[0].text, "Restart the media-server container",
            "{near:?}"
        );
    }

    #[test]
    fn words_that_end_any_sentence_are_accepted_after_one() {
        let mut b = GrammarBuilder::new();
        b.sentence(&[Part::Word("start"), Part::Slot("guest")]);
        b.value("guest", "media-server");
        b.suffix("right now");
        b.suffix("please");
        let g = b.build();
        assert!(g.accepts("Start media-server right now."));
        assert!(g.accepts("start media-server, please"));
        assert!(g.accepts("Start media-server."));
        assert!(!g.accepts("right now"), "the words alone are no sentence");
        assert!(!g.accepts("start right now"));
        assert!(!g.accepts("start media-server now please"));
    }

    #[test]
    fn a_reference_that_could_loop_or_names_nothing_is_left_out() {
        let mut b = GrammarBuilder::new();
        b.sentence(&[Part::Word("start"), Part::Slot("a")]);
        b.sentence(&[Part::Word("stop"), Part::Slot("c")]);
        b.value_then("a", "x", "b");
        b.value_then("b", "y", "a");
        b.value("a", "plain");
        b.value_then("c", "z", "nothing");
        let g = b.build();
        assert!(g.accepts("start plain"));
        assert!(
            !g.accepts("start x"),
            "the prefix of a reference left out is not a value"
        );
        assert!(!g.accepts("stop z"));
        assert!(!g.accepts("stop"));
        // Whisper would end a value in the branches that cannot end: none is in the rules.
        let rules: Vec<Vec<WhisperGrammarElement>> =
            (0..g.len()).map(|i| g.rules().rule(i).unwrap()).collect();
        let dead = rules
            .iter()
            .flatten()
            .filter(|e| {
                e.element_type == Kind::Character
                    && [u32::from('x'), u32::from('z')].contains(&e.value)
            })
            .count();
        assert_eq!(dead, 0, "nothing leads into the branches that cannot end");
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
        // Held once, 1000 names behind a dozen prefixes in two slots cost about what they
        // cost in one place, not 24 times as much.
        let mut b = GrammarBuilder::new();
        b.sentence(&[Part::Word("start"), Part::Slot("guest")]);
        b.sentence(&[Part::Word("status"), Part::Slot("target")]);
        for i in 0..1000 {
            b.value("names", &format!("guest-{i}"));
        }
        for the in ["", "the "] {
            for kind in [
                "",
                "vm ",
                "container ",
                "guest ",
                "the vm ",
                "the container ",
            ] {
                for slot in ["guest", "target"] {
                    b.value_then(slot, &format!("{the}{kind}"), "names");
                }
            }
        }
        let shared = b.build();
        assert!(shared.len() < 2 * big.len(), "{} rules", shared.len());
        assert!(shared.accepts("Status the container guest-999"));
        let rules: Vec<Vec<WhisperGrammarElement>> = (0..shared.len())
            .map(|i| shared.rules().rule(i).unwrap())
            .collect();
        for (i, rule) in rules.iter().enumerate() {
            for e in rule {
                if e.element_type == Kind::RuleReference {
                    assert!(
                        (e.value as usize) < rules.len(),
                        "rule {i} refers past the end"
                    );
                }
            }
        }
    }
}
