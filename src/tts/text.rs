//! Text preparation for speech: cleaning, SSML to plain text, and splitting into sentences.
//!
//! Audio for a sentence can only start once the sentence is synthesized, so the first sentence
//! decides how soon the user hears anything. A long first sentence is therefore split at its
//! first clause boundary (comma, semicolon, colon, dash) once it has enough words.

/// Characters that end a sentence (the reference server's auto-punctuation, plus `;`).
const SENTENCE_ENDS: &[char] = &['.', '!', '?', ';', '。', '？', '！', '．', '؟'];
/// Characters after which a long first sentence may be cut.
const CLAUSE_ENDS: &[char] = &[',', ':', '—', '–'];
/// Words after which a first sentence is cut at the next clause boundary.
pub const FIRST_CLAUSE_WORDS: usize = 8;
/// Words after which any sentence is cut, at its last clause boundary or else between words: a
/// sentence is synthesized as a whole (its time to the first audio and the voice's memory grow
/// with it), and 40 words are about 15 seconds of speech.
pub const MAX_SENTENCE_WORDS: usize = 40;
/// Bytes after which any sentence is cut, at its last clause boundary or space or else right
/// there: long "words" (a hash, a URL) are spelled out phoneme by phoneme.
pub const MAX_SENTENCE_BYTES: usize = 400;
/// Abbreviations whose period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "approx", "no", "vol", "fig", "jr",
    "sr",
];

/// Removes what Piper cannot speak: control characters, emoji and other symbols. Whitespace
/// runs become one space.
pub fn clean(text: &str) -> String {
    let kept: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() || is_speakable_punctuation(c) {
                c
            } else {
                ' '
            }
        })
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_speakable_punctuation(c: char) -> bool {
    matches!(
        c,
        '.' | ','
            | '!'
            | '?'
            | ';'
            | ':'
            | '\''
            | '"'
            | '-'
            | '('
            | ')'
            | '%'
            | '&'
            | '/'
            | '+'
            | '='
            | '°'
            | '€'
            | '$'
            | '£'
            | '’'
            | '‘'
            | '“'
            | '”'
            | '—'
            | '–'
            | '。'
            | '？'
            | '！'
            | '．'
            | '؟'
            | '،'
    )
}

/// The spoken text of SSML: tags dropped, the five XML entities decoded. Prosody markup is not
/// rendered (Piper has no SSML), but nothing inside a tag is ever read out.
pub fn ssml_to_text(ssml: &str) -> String {
    let mut out = String::with_capacity(ssml.len());
    let mut in_tag = false;
    for c in ssml.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Cuts a growing text into sentences as it streams in.
#[derive(Debug, Default)]
pub struct SentenceSplitter {
    buffer: String,
    /// Whether a sentence was already given out (only the first is cut at clauses).
    started: bool,
}

impl SentenceSplitter {
    /// An empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds text; returns the sentences it completed.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.buffer.push_str(text);
        let mut out = Vec::new();
        while let Some(end) = self.next_boundary() {
            let sentence: String = self.buffer.drain(..end).collect();
            let sentence = clean(&sentence);
            if !sentence.is_empty() {
                out.push(sentence);
                self.started = true;
            }
        }
        out
    }

    /// The rest of the text, as the last sentence (if it has any words).
    pub fn finish(&mut self) -> Option<String> {
        let rest = clean(&std::mem::take(&mut self.buffer));
        (!rest.is_empty()).then_some(rest)
    }

    /// Byte index just after the next complete sentence (or first clause) in the buffer.
    fn next_boundary(&self) -> Option<usize> {
        let text = &self.buffer;
        let mut words = 0;
        let mut in_word = false;
        let mut last_clause = None;
        let mut last_space = None;
        for (i, c) in text.char_indices() {
            if i >= MAX_SENTENCE_BYTES {
                return Some(last_clause.or(last_space).unwrap_or(i));
            }
            if c.is_whitespace() {
                in_word = false;
                if words >= MAX_SENTENCE_WORDS {
                    return Some(last_clause.unwrap_or(i));
                }
                if i > 0 {
                    last_space = Some(i);
                }
                continue;
            }
            if !in_word {
                in_word = true;
                words += 1;
            }
            let after = i + c.len_utf8();
            // A boundary needs what follows: whitespace (or a newline) proves the sentence is over.
            let next = text[after..].chars().next();
            let followed_by_space = next.is_some_and(char::is_whitespace);
            if SENTENCE_ENDS.contains(&c) && followed_by_space && !self.is_abbreviation(&text[..i])
            {
                return Some(after);
            }
            if CLAUSE_ENDS.contains(&c) && followed_by_space {
                if !self.started && words >= FIRST_CLAUSE_WORDS {
                    return Some(after);
                }
                last_clause = Some(after);
            }
        }
        // A line break ends a sentence too (lists, headings).
        text.find('\n')
            .filter(|&i| !text[..i].trim().is_empty())
            .map(|i| i + 1)
    }

    /// Whether the word before a period is an abbreviation or a number ("3.5", "Dr.").
    fn is_abbreviation(&self, before: &str) -> bool {
        let word = before
            .rsplit(char::is_whitespace)
            .next()
            .unwrap_or_default()
            .trim_start_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        ABBREVIATIONS.contains(&word.as_str())
            || (word.len() == 1 && word.chars().all(char::is_alphabetic))
    }
}

/// Splits a whole text into sentences.
pub fn sentences(text: &str) -> Vec<String> {
    let mut splitter = SentenceSplitter::new();
    let mut out = splitter.push(text);
    out.extend(splitter.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_split_at_their_ends_not_at_abbreviations_or_numbers() {
        assert_eq!(
            sentences("Node pve is online. It runs 3.5 GB of guests! Dr. Who? Yes"),
            vec![
                "Node pve is online.",
                "It runs 3.5 GB of guests!",
                "Dr. Who?",
                "Yes"
            ]
        );
        assert_eq!(
            sentences("e.g. this one. And that."),
            vec!["e.g. this one.", "And that."]
        );
    }

    #[test]
    fn a_long_first_sentence_is_cut_at_its_first_clause_and_later_ones_are_not() {
        let text = "The cluster has three nodes and twelve guests running, of which two are stopped. \
                    Later, much later, with many words here, it is fine.";
        let parts = sentences(text);
        assert_eq!(
            parts[0],
            "The cluster has three nodes and twelve guests running,"
        );
        assert_eq!(parts[1], "of which two are stopped.");
        assert_eq!(
            parts[2],
            "Later, much later, with many words here, it is fine."
        );
    }

    #[test]
    fn a_sentence_of_more_than_forty_words_is_cut_at_a_clause_or_between_words() {
        let words = |n: usize| vec!["word"; n].join(" ");
        let text = format!("Short start. {}", words(100));
        let parts = sentences(&text);
        assert_eq!(parts[0], "Short start.");
        assert_eq!(
            parts[1..]
                .iter()
                .map(|p| p.split(' ').count())
                .collect::<Vec<_>>(),
            vec![40, 40, 20]
        );
        let text = format!("Short start. {}, {} end.", words(30), words(30));
        let parts = sentences(&text);
        assert_eq!(parts[1], format!("{},", words(30)), "cut at the clause");
        assert_eq!(parts[2], format!("{} end.", words(30)));
        // Streamed: the cut is made as soon as forty words are in.
        let mut splitter = SentenceSplitter::new();
        assert_eq!(splitter.push("Hi. "), vec!["Hi."]);
        assert!(splitter.push(&words(39)).is_empty());
        assert_eq!(splitter.push(" word more"), vec![words(40)]);
        // A "word" of 1000 letters comes in pieces of at most 400 bytes.
        let parts = sentences(&"é".repeat(500));
        assert_eq!(parts.concat(), "é".repeat(500));
        assert!(
            parts.iter().all(|p| p.len() <= MAX_SENTENCE_BYTES),
            "{parts:?}"
        );
    }

    #[test]
    fn streamed_text_gives_each_sentence_once_it_is_complete() {
        let mut splitter = SentenceSplitter::new();
        assert!(splitter.push("Rebooting media").is_empty());
        assert!(
            splitter.push("-server now.").is_empty(),
            "needs what follows the period"
        );
        assert_eq!(splitter.push(" Done"), vec!["Rebooting media-server now."]);
        assert_eq!(splitter.finish().as_deref(), Some("Done"));
        assert_eq!(splitter.finish(), None);
    }

    #[test]
    fn control_characters_and_emoji_are_not_spoken() {
        assert_eq!(
            clean("Hello\u{0007} world 🚀🔥\tagain\u{200b}."),
            "Hello world again ."
        );
        assert_eq!(clean("\u{0000}\u{001b}[31m"), "31m");
    }

    #[test]
    fn ssml_is_read_as_its_text() {
        assert_eq!(
            clean(&ssml_to_text(
                "<speak>Hello <break time=\"1s\"/> &amp; <emphasis>bye</emphasis></speak>"
            )),
            "Hello & bye"
        );
    }
}
