//! Sentence templates with slots, in the style of Home Assistant's hassil:
//! `(what's|what is) [the] status of {target}`.
//!
//! - `(a|b c)`: one of the alternatives, each a sequence;
//! - `[x y]`: optional;
//! - `{slot}`: one or more words captured for the slot;
//! - anything else: a literal word.
//!
//! Matching works on whole tokens with backtracking, so a slot takes as many words as the rest of
//! the template allows.

use std::ops::Range;

/// One compiled template: every sequence it can match, alternatives and optionals expanded.
#[derive(Debug, Clone)]
pub struct Template {
    sequences: Vec<Vec<Item>>,
    /// Literal words in the shortest expansion, to prefer the more specific of two matches.
    literals: usize,
}

/// Words are shared between expansions (a template expands to thousands of sequences of the
/// same few words): a clone is a reference count, not a new string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Word(std::sync::Arc<str>),
    Slot(&'static str),
}

/// A template that does not parse: a bug in the built-in sentences, caught by tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad template {template:?}: {reason}")]
pub struct TemplateError {
    template: String,
    reason: &'static str,
}

/// What a template matched: each slot's token range.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Captures {
    slots: Vec<(&'static str, Range<usize>)>,
}

impl Captures {
    /// The tokens a slot captured.
    pub fn get<'t, S>(&self, name: &str, tokens: &'t [S]) -> Option<&'t [S]> {
        self.slots
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, range)| tokens.get(range.clone()))
    }

    /// Each slot's name and token range, in template order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Range<usize>)> + '_ {
        self.slots
            .iter()
            .map(|(name, range)| (*name, range.clone()))
    }
}

/// Slot names must be `'static` (they come from the built-in sentences).
const SLOT_NAMES: &[&str] = &[
    "target", "guest", "node", "storage", "object", "place", "when", "note", "snapshot", "days",
    "hours",
];
/// Expansions one template may have; more is a template written badly.
const MAX_EXPANSIONS: usize = 4096;
/// Ways one expansion may be the start of a token list, at most (one per slot end).
const MAX_PREFIXES: usize = 64;

impl Template {
    /// Compiles a template.
    ///
    /// # Errors
    /// Unbalanced brackets, an empty alternative, an unknown slot name, or too many expansions.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let err = |reason| TemplateError {
            template: text.to_owned(),
            reason,
        };
        let tokens = lex(text);
        let mut pos = 0;
        let sequences = parse_seq(&tokens, &mut pos, None).map_err(err)?;
        if pos != tokens.len() {
            return Err(err("unbalanced closing bracket"));
        }
        let literals = sequences
            .iter()
            .map(|s| s.iter().filter(|i| matches!(i, Item::Word(_))).count())
            .min()
            .unwrap_or(0);
        Ok(Self {
            sequences,
            literals,
        })
    }

    /// Literal words the template needs at least.
    pub fn specificity(&self) -> usize {
        self.literals
    }

    /// How many sequences the template expands to.
    pub fn len(&self) -> usize {
        self.sequences.len()
    }

    /// Whether the template matches nothing (never true for a parsed template).
    pub fn is_empty(&self) -> bool {
        self.sequences.is_empty()
    }

    /// The first word of expansion `i`, or `None` when it starts with a slot.
    pub fn first_word(&self, i: usize) -> Option<&str> {
        match self.sequences.get(i)?.first()? {
            Item::Word(w) => Some(w.as_ref()),
            Item::Slot(_) => None,
        }
    }

    /// Every sequence the template expands to, as words and slots for a speech grammar.
    pub fn parts(&self) -> impl Iterator<Item = Vec<crate::stt::grammar::Part<'_>>> {
        use crate::stt::grammar::Part;
        self.sequences.iter().map(|sequence| {
            sequence
                .iter()
                .map(|item| match item {
                    Item::Word(word) => Part::Word(word),
                    Item::Slot(slot) => Part::Slot(slot),
                })
                .collect()
        })
    }

    /// Matches expansion `i` against the whole token list.
    pub fn matches_expansion<S: AsRef<str>>(&self, i: usize, tokens: &[S]) -> Option<Captures> {
        let sequence = self.sequences.get(i)?;
        if sequence.len() > tokens.len() {
            return None;
        }
        let mut captures = Captures::default();
        match_items(sequence, tokens, 0, &mut captures).then_some(captures)
    }

    /// Every way the whole token list is a proper prefix of expansion `i`: each token matched
    /// and at least one item of the expansion still to come ("what is the status of" for
    /// `what is the status of {target}`). A slot that ends with the tokens may still be
    /// growing; one not reached yet has no capture.
    pub fn prefixes_of_expansion<S: AsRef<str>>(&self, i: usize, tokens: &[S]) -> Vec<Captures> {
        let mut found = Vec::new();
        if let Some(sequence) = self.sequences.get(i) {
            prefix_items(sequence, tokens, 0, &mut Captures::default(), &mut found);
        }
        found
    }

    /// Matches the whole token list; slots take one word or more.
    pub fn matches<S: AsRef<str>>(&self, tokens: &[S]) -> Option<Captures> {
        self.sequences.iter().find_map(|sequence| {
            let mut captures = Captures::default();
            match_items(sequence, tokens, 0, &mut captures).then_some(captures)
        })
    }
}

fn match_items<S: AsRef<str>>(
    items: &[Item],
    tokens: &[S],
    at: usize,
    captures: &mut Captures,
) -> bool {
    let Some((first, rest)) = items.split_first() else {
        return at == tokens.len();
    };
    match first {
        Item::Word(word) => {
            tokens.get(at).is_some_and(|t| t.as_ref() == word.as_ref())
                && match_items(rest, tokens, at + 1, captures)
        }
        Item::Slot(name) => {
            // The words after the slot must fit in what is left: skip ends that cannot work.
            let needed = rest.len();
            for end in (at + 1)..=tokens.len().saturating_sub(needed.min(tokens.len())) {
                captures.slots.push((name, at..end));
                if match_items(rest, tokens, end, captures) {
                    return true;
                }
                captures.slots.pop();
            }
            false
        }
    }
}

fn prefix_items<S: AsRef<str>>(
    items: &[Item],
    tokens: &[S],
    at: usize,
    captures: &mut Captures,
    found: &mut Vec<Captures>,
) {
    if found.len() >= MAX_PREFIXES {
        return;
    }
    if at == tokens.len() {
        if !items.is_empty() {
            found.push(captures.clone());
        }
        return;
    }
    let Some((first, rest)) = items.split_first() else {
        return;
    };
    match first {
        Item::Word(word) => {
            if tokens.get(at).is_some_and(|t| t.as_ref() == word.as_ref()) {
                prefix_items(rest, tokens, at + 1, captures, found);
            }
        }
        Item::Slot(name) => {
            for end in (at + 1)..=tokens.len() {
                captures.slots.push((name, at..end));
                prefix_items(rest, tokens, end, captures, found);
                captures.slots.pop();
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lex {
    Open(char),
    Close(char),
    Bar,
    Word(String),
    Slot(String),
}

fn lex(text: &str) -> Vec<Lex> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' | '[' => out.push(Lex::Open(c)),
            ')' | ']' => out.push(Lex::Close(c)),
            '|' => out.push(Lex::Bar),
            '{' => {
                let mut name = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    name.push(c);
                }
                out.push(Lex::Slot(name));
            }
            c if c.is_whitespace() => {}
            c => {
                let mut word = c.to_lowercase().collect::<String>();
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || "()[]|{}".contains(next) {
                        break;
                    }
                    word.extend(next.to_lowercase());
                    chars.next();
                }
                out.push(Lex::Word(word));
            }
        }
    }
    out
}

/// Every sequence `a` then `b` can make.
fn product(a: Vec<Vec<Item>>, b: &[Vec<Item>]) -> Result<Vec<Vec<Item>>, &'static str> {
    if a.len().saturating_mul(b.len()) > MAX_EXPANSIONS {
        return Err("too many expansions");
    }
    Ok(a.into_iter()
        .flat_map(|x| {
            b.iter().map(move |y| {
                // Exactly as long as it needs: thousands of these are kept.
                let mut s = Vec::with_capacity(x.len() + y.len());
                s.extend(x.iter().cloned());
                s.extend(y.iter().cloned());
                s
            })
        })
        .collect())
}

/// Parses up to the closing bracket `close` (or the end) into every sequence it can match.
fn parse_seq(
    tokens: &[Lex],
    pos: &mut usize,
    close: Option<char>,
) -> Result<Vec<Vec<Item>>, &'static str> {
    let mut alternatives: Vec<Vec<Vec<Item>>> = Vec::new();
    let mut current: Vec<Vec<Item>> = vec![Vec::new()];
    while *pos < tokens.len() {
        let token = &tokens[*pos];
        *pos += 1;
        match token {
            Lex::Word(w) => current = product(current, &[vec![Item::Word(w.as_str().into())]])?,
            Lex::Slot(name) => {
                let name = SLOT_NAMES
                    .iter()
                    .find(|n| **n == name.as_str())
                    .ok_or("unknown slot name")?;
                current = product(current, &[vec![Item::Slot(name)]])?;
            }
            Lex::Bar => {
                alternatives.push(std::mem::replace(&mut current, vec![Vec::new()]));
            }
            Lex::Open(kind) => {
                let closing = if *kind == '(' { ')' } else { ']' };
                let mut inner = parse_seq(tokens, pos, Some(closing))?;
                if *kind == '[' {
                    inner.push(Vec::new());
                }
                current = product(current, &inner)?;
            }
            Lex::Close(c) => {
                if Some(*c) != close {
                    return Err("unbalanced closing bracket");
                }
                alternatives.push(current);
                return finish(alternatives);
            }
        }
    }
    if close.is_some() {
        return Err("unclosed bracket");
    }
    alternatives.push(current);
    finish(alternatives)
}

fn finish(alternatives: Vec<Vec<Vec<Item>>>) -> Result<Vec<Vec<Item>>, &'static str> {
    if alternatives.len() > 1 && alternatives.iter().any(|a| a.iter().all(Vec::is_empty)) {
        return Err("empty alternative");
    }
    let all: Vec<Vec<Item>> = alternatives.into_iter().flatten().collect();
    if all.len() > MAX_EXPANSIONS {
        return Err("too many expansions");
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<&str> {
        text.split_whitespace().collect()
    }

    #[test]
    fn alternatives_optionals_and_slots() {
        let t = Template::parse("(what's|what is) [the] status of [node] {target}").unwrap();
        let tokens = words("what is the status of node pve");
        let c = t.matches(&tokens).unwrap();
        assert_eq!(c.get("target", &tokens), Some(&["pve"][..]));
        let tokens = words("what's status of the media server");
        let c = t.matches(&tokens).unwrap();
        assert_eq!(
            c.get("target", &tokens),
            Some(&["the", "media", "server"][..])
        );
        assert!(t.matches(&words("what is the status of")).is_none());
        assert!(t.matches(&words("status of pve")).is_none());
        assert_eq!(t.specificity(), 3);
    }

    #[test]
    fn two_slots_and_nested_groups() {
        let t = Template::parse("(list|show) [the] (running|stopped) guests on {node}").unwrap();
        let tokens = words("show running guests on agent one");
        let c = t.matches(&tokens).unwrap();
        assert_eq!(c.get("node", &tokens), Some(&["agent", "one"][..]));
        let t = Template::parse("is {guest} [(up|running)]").unwrap();
        assert!(t.matches(&words("is pihole up")).is_some());
        assert!(t.matches(&words("is pihole")).is_some());
    }

    #[test]
    fn prefixes_stop_before_the_end_of_the_template() {
        let t = Template::parse("(what's|what is) [the] status of [node] {target}").unwrap();
        // Each prefix reading's target, joined.
        let prefixes = |text: &str| -> Vec<Option<String>> {
            let tokens = words(text);
            (0..t.len())
                .flat_map(|e| t.prefixes_of_expansion(e, &tokens))
                .map(|c| c.get("target", &tokens).map(|w| w.join(" ")))
                .collect()
        };
        // The slot is still to come: one reading per expansion that fits, no capture.
        assert!(!prefixes("what is the status of").is_empty());
        assert!(
            prefixes("what is the status of")
                .iter()
                .all(Option::is_none)
        );
        assert!(!prefixes("what").is_empty());
        assert!(!prefixes("what is the").is_empty());
        // The whole sentence is a match, not a prefix; a word off the template is neither.
        assert!(prefixes("what is the status of pve").is_empty());
        assert!(prefixes("what is the weather").is_empty());
        assert!(prefixes("").iter().all(Option::is_none));

        // Words after the slot still to come: the slot holds what was said so far.
        let t = Template::parse("how much (memory|ram) (is|does) {target} (using|use)").unwrap();
        let tokens = words("how much memory does agent one");
        let found: Vec<Captures> = (0..t.len())
            .flat_map(|e| t.prefixes_of_expansion(e, &tokens))
            .collect();
        let slots: Vec<&[&str]> = found
            .iter()
            .filter_map(|c| c.get("target", &tokens))
            .collect();
        assert!(!slots.is_empty());
        assert!(slots.iter().all(|s| s == &["agent", "one"]), "{slots:?}");
        // Said whole, the sentence is a prefix only with its last word taken into the slot.
        let tokens = words("how much memory does pve use");
        assert!(
            (0..t.len())
                .flat_map(|e| t.prefixes_of_expansion(e, &tokens))
                .all(|c| c.get("target", &tokens) == Some(&["pve", "use"][..]))
        );
    }

    #[test]
    fn bad_templates_are_errors() {
        assert!(Template::parse("(a|b").is_err());
        assert!(Template::parse("a]").is_err());
        assert!(Template::parse("{nope}").is_err());
        assert!(Template::parse("(a||b)").is_err());
        let huge = "(a|b|c|d|e|f|g|h) ".repeat(6);
        assert!(Template::parse(&huge).is_err());
    }
}
