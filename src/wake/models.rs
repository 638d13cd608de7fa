//! Which wake words there are: every openWakeWord classifier in the wake-word folder, plus any
//! extra files the configuration names.
//!
//! A classifier is any `*.onnx` there except the shared feature models (`melspectrogram`,
//! `embedding_model`) and `silero_vad`. Its name is the file stem without openWakeWord's version
//! suffix (`hey_jarvis_v0.1.onnx` is `hey_jarvis`, version `0.1`, phrase "Hey Jarvis"), the id
//! wyoming-openwakeword gives it too, so Home Assistant pipelines set up with that server keep
//! working. Dropping a custom openWakeWord model into the folder is enough to offer it.

use std::path::{Path, PathBuf};

/// Files in the wake-word folder that are not wake words.
const NOT_WAKE_WORDS: &[&str] = &["melspectrogram", "embedding_model", "silero_vad"];

/// The pre-trained openWakeWord models, which are English.
const ENGLISH: &[&str] = &[
    "alexa",
    "hey_jarvis",
    "hey_marvin",
    "hey_mycroft",
    "hey_rhasspy",
    "okay_nabu",
    "timer",
    "weather",
];

/// A wake word on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeWord {
    /// The id in `info`, `detect` and `detection`, e.g. `hey_jarvis`.
    pub name: String,
    /// The file stem, e.g. `hey_jarvis_v0.1`; `detect` accepts it too.
    pub stem: String,
    /// What to say, e.g. `Hey Jarvis`.
    pub phrase: String,
    /// Model version from the file name, e.g. `0.1`.
    pub version: Option<String>,
    /// Languages it was trained for (empty when unknown).
    pub languages: Vec<String>,
    /// The classifier file.
    pub path: PathBuf,
}

impl WakeWord {
    /// Describes the classifier at `path`.
    pub fn from_path(path: &Path) -> Option<Self> {
        let stem = path.file_stem()?.to_str()?.to_owned();
        let (name, version) = split_version(&stem);
        let phrase = name
            .split(['_', '-', ' '])
            .filter(|word| !word.is_empty())
            .map(title_case)
            .collect::<Vec<_>>()
            .join(" ");
        let languages = if ENGLISH.contains(&name) {
            vec!["en".to_owned()]
        } else {
            Vec::new()
        };
        Some(Self {
            name: name.to_owned(),
            phrase,
            version: version.map(str::to_owned),
            languages,
            path: path.to_owned(),
            stem,
        })
    }

    /// Whether a `detect` name means this wake word (its id or its file stem, any case).
    pub fn answers_to(&self, requested: &str) -> bool {
        let requested = requested.trim();
        requested.eq_ignore_ascii_case(&self.name) || requested.eq_ignore_ascii_case(&self.stem)
    }
}

/// The wake words in `dir` plus `extra` files, sorted by name, without duplicate names (the
/// first wins). Problems are returned for the log, not raised: one bad file does not stop the
/// others.
pub fn discover(dir: &Path, extra: &[PathBuf]) -> (Vec<WakeWord>, Vec<String>) {
    let mut problems = Vec::new();
    let mut found = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|e| e == "onnx") && path.is_file())
                .filter(|path| {
                    path.file_stem()
                        .and_then(|s| s.to_str())
                        .is_some_and(|s| !NOT_WAKE_WORDS.contains(&s))
                })
                .collect();
            files.sort();
            found.extend(files);
        }
        Err(err) => problems.push(format!("cannot read {}: {err}", dir.display())),
    }
    for path in extra {
        if path.is_file() {
            found.push(path.clone());
        } else {
            problems.push(format!("wake.extra_models: {} not found", path.display()));
        }
    }
    let mut words: Vec<WakeWord> = Vec::new();
    for path in found {
        match WakeWord::from_path(&path) {
            Some(word) if words.iter().any(|w| w.name == word.name) => problems.push(format!(
                "{}: another model is already called {}",
                path.display(),
                word.name
            )),
            Some(word) => words.push(word),
            None => problems.push(format!("{}: not a usable file name", path.display())),
        }
    }
    words.sort_by(|a, b| a.name.cmp(&b.name));
    (words, problems)
}

/// `hey_jarvis_v0.1` → (`hey_jarvis`, `0.1`); names without a version stay as they are.
fn split_version(stem: &str) -> (&str, Option<&str>) {
    if let Some((name, version)) = stem.rsplit_once("_v") {
        let numeric = !version.is_empty()
            && version.chars().all(|c| c.is_ascii_digit() || c == '.')
            && version.starts_with(|c: char| c.is_ascii_digit());
        if numeric && !name.is_empty() {
            return (name, Some(version));
        }
    }
    (stem, None)
}

fn title_case(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_phrases_and_versions_come_from_the_file_name() {
        let word = WakeWord::from_path(Path::new("/m/wakeword/hey_jarvis_v0.1.onnx")).unwrap();
        assert_eq!(word.name, "hey_jarvis");
        assert_eq!(word.stem, "hey_jarvis_v0.1");
        assert_eq!(word.phrase, "Hey Jarvis");
        assert_eq!(word.version.as_deref(), Some("0.1"));
        assert_eq!(word.languages, vec!["en"]);
        assert!(word.answers_to("hey_jarvis") && word.answers_to("HEY_JARVIS_v0.1"));
        assert!(!word.answers_to("hey_mycroft"));

        let custom = WakeWord::from_path(Path::new("computer-lights.onnx")).unwrap();
        assert_eq!(custom.name, "computer-lights");
        assert_eq!(custom.phrase, "Computer Lights");
        assert_eq!(custom.version, None);
        assert!(custom.languages.is_empty());
        assert_eq!(split_version("ok_vtwo"), ("ok_vtwo", None));
        assert_eq!(split_version("_v1"), ("_v1", None));
    }

    #[test]
    fn discovery_skips_the_feature_models_and_reports_problems() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "melspectrogram.onnx",
            "embedding_model.onnx",
            "silero_vad.onnx",
            "hey_jarvis_v0.1.onnx",
            "alexa_v0.1.onnx",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(file), b"x").unwrap();
        }
        let extra = vec![
            dir.path().join("missing.onnx"),
            dir.path().join("hey_jarvis_v0.1.onnx"),
        ];
        let (words, problems) = discover(dir.path(), &extra);
        let names: Vec<&str> = words.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["alexa", "hey_jarvis"]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        let (words, problems) = discover(&dir.path().join("nope"), &[]);
        assert!(words.is_empty() && problems[0].contains("cannot read"));
    }
}
