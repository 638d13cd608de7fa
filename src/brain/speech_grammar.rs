//! The grammar that guides speech recognition towards the brain's sentences and the cluster's
//! names, built once per inventory snapshot.

use crate::proxmox::Inventory;
use crate::stt::grammar::{GrammarBuilder, SpeechGrammar};

use super::intents::{LEADING_FILLER, Recognizer, TRAILING_FILLER};

/// What precedes a name in speech, by the slot it fills ("the status of node pve").
const NODE_WORDS: &[&str] = &["", "node ", "the node ", "host "];
const GUEST_WORDS: &[&str] = &[
    "",
    "vm ",
    "the vm ",
    "container ",
    "the container ",
    "guest ",
];
const STORAGE_WORDS: &[&str] = &["", "storage ", "the storage "];
/// Words that may follow a guest's name and say its kind.
const GUEST_KINDS_AFTER: &[&str] = &["vm", "container"];
/// A guest by number: "VM 101", "container 200", "101". Proxmox VMIDs have three digits or
/// more (100 and up), and so does the grammar (`%` one digit, `#` one or more): whisper writes
/// "one oh three" as "1-03" or "1 or 3", and a grammar that took one digit let the guided decode
/// end at "container 1" (4 clips of the WER bench); now the end is held back until the number
/// is whole.
const VMID_FORMS: &[&str] = &[
    "%%#",
    "vm %%#",
    "container %%#",
    "guest %%#",
    "virtual machine %%#",
];

/// How people say when: the phrases [`super::when`] reads (`#` is a number in digits).
const TIME_PHRASES: &[&str] = &[
    "in the last hour",
    "in the last half hour",
    "in the last # minutes",
    "in the last # hours",
    "in the last # days",
    "in the past hour",
    "in the past # minutes",
    "in the past # hours",
    "the last hour",
    "last hour",
    "today",
    "this morning",
    "this afternoon",
    "this evening",
    "tonight",
    "yesterday",
    "last night",
    "overnight",
    "this week",
    "since #",
    "since # am",
    "since # pm",
    "since #am",
    "since #pm",
    "since # a.m.",
    "since # p.m.",
    "since #:#",
    "since #:# am",
    "since #:# pm",
    "since # o'clock",
    "since noon",
    "since midnight",
    "since yesterday",
    "since this morning",
    "since last night",
    "while i was away",
    "while i was out",
    "while i was gone",
    "while we were away",
    "while we were out",
    "since i left",
    "right now",
    "now",
];

/// Why a snapshot is taken, as said after "before", "for" or "after" ("snapshot nextcloud
/// before the upgrade"). The words are free and a grammar cannot hold them all, so only the
/// usual reasons guide the decoding; any other reason is still heard, just not guided. The
/// names Jarvis derives from them ("before the upgrade" for `before_the_upgrade`) are the
/// snapshot names a rollback most often says; the live snapshot list is not known here.
const SNAPSHOT_NOTES: &[&str] = &[
    "the upgrade",
    "an upgrade",
    "the update",
    "an update",
    "the updates",
    "updates",
    "upgrading",
    "updating",
    "the migration",
    "the reboot",
    "the install",
    "the change",
    "the changes",
    "maintenance",
    "testing",
];

/// Who or what questions ask about, besides the labels and faces seen.
const OBJECT_WORDS: &[&str] = &[
    "anyone",
    "anybody",
    "someone",
    "somebody",
    "people",
    "a person",
    "any people",
    "anything",
    "something",
    "any cars",
    "a car",
    "cars",
    "any packages",
    "a package",
    "any dogs",
    "a dog",
    "any cats",
    "a cat",
];

/// The brain's templates with the inventory's names (written, with separators spoken as spaces,
/// and short names letter by letter: "pve", "P V E") as the values of their slots.
pub(crate) fn build(
    recognizer: &Recognizer,
    inventory: &Inventory,
    memory: &crate::events::Vocabulary,
) -> SpeechGrammar {
    let mut builder = GrammarBuilder::new();
    for template in recognizer.templates() {
        for parts in template.parts() {
            builder.sentence(&parts);
        }
    }
    // Questions about the event memory, with a time phrase after them or before them.
    for template in recognizer.memory_templates() {
        for mut parts in template.parts() {
            parts.push(crate::stt::grammar::Part::Slot("when"));
            builder.sentence(&parts);
            parts.pop();
            parts.insert(0, crate::stt::grammar::Part::Slot("when"));
            builder.sentence(&parts);
        }
    }
    for phrase in TIME_PHRASES {
        builder.value("when", phrase);
    }
    // "in the last 10 days", "in the last 24 hours".
    builder.value("days", "#");
    builder.value("hours", "#");
    for note in SNAPSHOT_NOTES {
        builder.value("note", note);
        for when in ["before", "after"] {
            builder.value("snapshot", &format!("{when} {note}"));
        }
    }
    for object in OBJECT_WORDS {
        builder.value("object", object);
    }
    for label in &memory.labels {
        let label = label.replace('_', " ").to_lowercase();
        for form in [
            format!("a {label}"),
            format!("any {label}s"),
            format!("{label}s"),
            label,
        ] {
            builder.value("object", &form);
        }
    }
    for name in &memory.sub_labels {
        for form in spoken_forms(name) {
            builder.value("object", &form);
        }
    }
    for name in memory.cameras.iter().chain(&memory.zones) {
        for form in spoken_forms(name) {
            builder.value("place", &form);
        }
    }
    // Sentences that begin with filler ("hey jarvis, start nextcloud").
    for filler in LEADING_FILLER {
        builder.prefix(&filler.join(" "));
    }
    // And that end with it ("which vms are running right now").
    for filler in TRAILING_FILLER {
        builder.suffix(&filler.join(" "));
    }
    let nodes = inventory.nodes.iter().map(|n| n.name.as_str());
    let guests = inventory
        .guests
        .iter()
        .filter(|g| !g.template)
        .map(|g| g.name.as_str());
    let storages = inventory.storages.iter().map(|s| s.storage.as_str());
    // Each kind's names are held once, in a slot of their own that the sentences' slots refer
    // to after their words ("the vm " then any guest's name), and for guests before words that
    // say their kind too ("the media-server container": the brain drops kind words wherever
    // they stand).
    for (names, own, kind_words, kinds_after, slots) in [
        (
            nodes.collect::<Vec<_>>(),
            "names:node",
            NODE_WORDS,
            &[][..],
            &["target", "node"][..],
        ),
        (
            guests.collect(),
            "names:guest",
            GUEST_WORDS,
            GUEST_KINDS_AFTER,
            &["target", "guest"][..],
        ),
        (
            storages.collect(),
            "names:storage",
            STORAGE_WORDS,
            &[][..],
            &["target", "storage"][..],
        ),
    ] {
        if names.is_empty() {
            continue;
        }
        for name in names {
            for form in spoken_forms(name) {
                builder.value(own, &form);
            }
        }
        for the in ["", "the "] {
            for kind in kind_words {
                for slot in slots {
                    builder.value_then(slot, &format!("{the}{kind}"), own);
                }
            }
            for kind in kinds_after {
                for slot in slots {
                    builder.value_then_words(slot, the, own, kind);
                }
            }
        }
    }
    for form in VMID_FORMS {
        builder.value("target", form);
        builder.value("guest", form);
    }
    builder.build()
}

/// How a name can come out of speech recognition: as written, with its separators as spaces,
/// and, for a short name of letters, letter by letter ("P V E").
fn spoken_forms(name: &str) -> Vec<String> {
    let mut forms = vec![name.to_lowercase()];
    let spaced: String = name
        .chars()
        .map(|c| if matches!(c, '-' | '_' | '.') { ' ' } else { c })
        .collect::<String>()
        .to_lowercase();
    // "agent1" is also "agent 1".
    let mut split = String::new();
    let mut previous: Option<char> = None;
    for c in spaced.chars() {
        if let Some(p) = previous {
            if p.is_alphabetic() && c.is_ascii_digit() || p.is_ascii_digit() && c.is_alphabetic() {
                split.push(' ');
            }
        }
        split.push(c);
        previous = Some(c);
    }
    for form in [spaced, split] {
        if !forms.contains(&form) {
            forms.push(form);
        }
    }
    if (2..=4).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphabetic()) {
        let letters: Vec<String> = name.chars().map(|c| c.to_string()).collect();
        forms.push(letters.join(" ").to_lowercase());
    }
    forms
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The brain's recognizer and the speech grammar for `inventory`, without event names.
    fn grammar_for(inventory: Inventory) -> (Recognizer, SpeechGrammar) {
        let recognizer = Recognizer::new().unwrap();
        let grammar = build(
            &recognizer,
            &inventory,
            &crate::events::Vocabulary::default(),
        );
        (recognizer, grammar)
    }

    #[test]
    fn questions_about_the_memory_with_its_names_and_times() {
        let recognizer = Recognizer::new().unwrap();
        let memory = crate::events::Vocabulary {
            cameras: vec!["front_door".into(), "garage".into()],
            zones: vec!["porch".into()],
            labels: vec!["person".into(), "car".into()],
            sub_labels: vec!["Alice".into()],
        };
        let grammar = build(&recognizer, &Inventory::default(), &memory);
        for text in [
            "Was anyone at the front door in the last hour?",
            "Was anyone at the front door in the last 2 hours?",
            "When did Alice last arrive?",
            "How many people did the garage camera see today?",
            "What happened since 8 am?",
            "What happened while I was away?",
            "Were there any cars on the porch last night?",
            "Who is at the front door?",
        ] {
            assert!(grammar.accepts(text), "{text}");
        }
        assert!(!grammar.accepts("Was anyone at the garden gate?"));
        assert!(!grammar.accepts("What happened since lunch?"));
    }

    #[test]
    fn backup_task_and_snapshot_sentences_with_numbers_and_usual_reasons() {
        let (_, grammar) = grammar_for(Inventory {
            guests: vec![crate::proxmox::Guest::example(104, "nextcloud", "pve")],
            ..Inventory::default()
        });
        for text in [
            "Which guests have no backup in the last 10 days?",
            "Did anything fail in the last 48 hours?",
            "When was nextcloud last backed up?",
            "Snapshot nextcloud before the upgrade.",
            "Take a snapshot of nextcloud for maintenance.",
            "Roll nextcloud back to before the upgrade.",
            "Roll back nextcloud to the latest snapshot.",
        ] {
            assert!(grammar.accepts(text), "{text}");
        }
        // Free words are not all in the grammar: those sentences are heard unguided.
        assert!(!grammar.accepts("Snapshot nextcloud before my cat walks on the keyboard."));
    }

    #[test]
    fn what_the_brain_reads_as_filler_or_kind_words_is_in_the_grammar() {
        // The brain drops trailing filler ("right now") and kind words wherever they stand
        // ("the media-server container"); a transcript that says them is a command as it is.
        let (recognizer, grammar) = grammar_for(Inventory {
            nodes: vec![crate::proxmox::Node::example("pve")],
            guests: vec![crate::proxmox::Guest::example(101, "media-server", "pve")],
            ..Inventory::default()
        });
        for text in [
            "Restart the media-server container.",
            "Stop media-server vm.",
            "What's the status of the media-server container?",
            "Which VMs are running right now?",
            "Restart media-server, please.",
            "Are there any updates for pve?",
        ] {
            assert!(grammar.accepts(text), "{text}");
            assert!(recognizer.recognize(text).is_some(), "{text}");
        }
        assert!(!grammar.accepts("Restart the container media-server container."));
    }

    #[test]
    fn a_guest_number_has_three_digits_or_more_as_proxmox_vmids_do() {
        let recognizer = Recognizer::new().unwrap();
        let grammar = build(
            &recognizer,
            &Inventory::default(),
            &crate::events::Vocabulary::default(),
        );
        for text in [
            "Turn on container 103.",
            "Stop VM 102.",
            "What's the state of VM 1001?",
            "Start container 123456789.",
        ] {
            assert!(grammar.accepts(text), "{text}");
        }
        // "one oh three" cut short: the guided decode may not end there.
        for text in ["Turn on container 1", "Stop VM 10", "Stop VM 1"] {
            assert!(!grammar.accepts(text), "{text}");
            assert!(grammar.unfinished(text), "{text}");
        }
        // Other numbers are still any number of digits.
        assert!(grammar.accepts("Did anything fail in the last 2 hours?"));
    }

    #[test]
    fn names_are_written_spaced_split_and_spelled() {
        assert_eq!(spoken_forms("pve"), ["pve", "p v e"]);
        assert_eq!(spoken_forms("agent1"), ["agent1", "agent 1"]);
        assert_eq!(
            spoken_forms("media-server"),
            ["media-server", "media server"]
        );
        assert_eq!(
            spoken_forms("backup-server-1"),
            ["backup-server-1", "backup server 1"]
        );
        assert_eq!(spoken_forms("local-lvm"), ["local-lvm", "local lvm"]);
    }
}
