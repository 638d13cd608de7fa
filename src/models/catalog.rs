//! The catalog: every model `jarvis models pull` can download, built in or added by the user
//! under `[[models.extra]]`.
//!
//! Design: a built-in entry names its files relative to an [`Origin`] (the publisher's base URL,
//! which `[models]` can point at a mirror), so the same table serves upstream and a local copy.
//! An entry may hold several files (a Piper voice is a model plus its JSON config); it is
//! installed when all of them are.
//!
//! Checksums: a built-in file carries a sha256 only where the value was found published for that
//! exact upstream file, and agreed between independent sources (see the notes on each group). A
//! file without one is still downloaded, and `pull` prints the sha256 of what it got and says it
//! could not verify it.

use std::fmt;
use std::path::{Component, Path};

use url::Url;

use super::digest::Sha256Digest;
use crate::config::{ExtraModel, ModelsConfig};

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Speech-to-text (whisper.cpp ggml).
    Whisper,
    /// Text-to-speech voice (Piper ONNX).
    Piper,
    /// Wake word and its feature models (openWakeWord ONNX).
    Wake,
    /// Voice activity detection.
    Vad,
}

impl ModelKind {
    /// The lowercase name used in the config and in `jarvis models list`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Whisper => "whisper",
            Self::Piper => "piper",
            Self::Wake => "wake",
            Self::Vad => "vad",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a built-in file is published; each has a base URL in `[models]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `models.whisper_base_url`: ggerganov/whisper.cpp on Hugging Face.
    Whisper,
    /// `models.whisper_vad_base_url`: ggml-org/whisper-vad on Hugging Face.
    WhisperVad,
    /// `models.piper_base_url`: rhasspy/piper-voices v1.0.0 on Hugging Face.
    Piper,
    /// `models.wake_base_url`: the openWakeWord v0.5.1 GitHub release.
    Wake,
}

impl Origin {
    /// The configured base URL for this origin.
    pub fn base_url(self, config: &ModelsConfig) -> &Url {
        match self {
            Self::Whisper => &config.whisper_base_url,
            Self::WhisperVad => &config.whisper_vad_base_url,
            Self::Piper => &config.piper_base_url,
            Self::Wake => &config.wake_base_url,
        }
    }

    /// The config key that sets the base URL, for messages.
    pub fn config_key(self) -> &'static str {
        match self {
            Self::Whisper => "models.whisper_base_url",
            Self::WhisperVad => "models.whisper_vad_base_url",
            Self::Piper => "models.piper_base_url",
            Self::Wake => "models.wake_base_url",
        }
    }
}

/// One file of a built-in entry.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinFile {
    /// Path inside the models directory.
    pub path: &'static str,
    /// Whose base URL the file hangs off.
    pub origin: Origin,
    /// Path relative to that base URL.
    pub remote: &'static str,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// The published sha256 of this exact upstream file, when known.
    pub sha256: Option<Sha256Digest>,
}

/// A built-in catalog entry.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinModel {
    /// What the user types.
    pub name: &'static str,
    /// What it is for.
    pub kind: ModelKind,
    /// Its files (at least one).
    pub files: &'static [BuiltinFile],
}

/// One downloadable file, with its URL resolved against the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFile {
    /// Path inside the models directory (relative, `/`-separated).
    pub path: String,
    /// Where to download it from.
    pub url: Url,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// Expected sha256, when known.
    pub sha256: Option<Sha256Digest>,
}

/// A catalog entry with its URLs resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// What the user types.
    pub name: String,
    /// What it is for.
    pub kind: ModelKind,
    /// Its files (at least one).
    pub files: Vec<ModelFile>,
    /// Whether it comes from `[[models.extra]]`.
    pub extra: bool,
}

impl Model {
    /// Total size, when every file's size is known.
    pub fn size(&self) -> Option<u64> {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Why a catalog could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A base URL and a relative path do not make a URL.
    #[error("{key} = {base:?} and {remote:?} do not make a valid URL: {error}")]
    BadUrl {
        /// The config key of the base URL.
        key: &'static str,
        /// The base URL.
        base: String,
        /// The relative path.
        remote: &'static str,
        /// Why.
        error: url::ParseError,
    },
}

/// The catalog: built-in entries (in table order), then the user's extras.
#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<Model>,
}

impl Catalog {
    /// Resolves the built-in table and `[[models.extra]]` against `config`.
    ///
    /// # Errors
    /// When a base URL cannot be joined with a file's path (config validation rules out most).
    pub fn new(config: &ModelsConfig) -> Result<Self, CatalogError> {
        let mut models = Vec::with_capacity(BUILTIN.len() + config.extra.len());
        for entry in BUILTIN {
            let files = entry
                .files
                .iter()
                .map(|file| {
                    let base = file.origin.base_url(config);
                    Ok(ModelFile {
                        path: file.path.to_owned(),
                        url: join_url(base, file.remote).map_err(|error| CatalogError::BadUrl {
                            key: file.origin.config_key(),
                            base: base.to_string(),
                            remote: file.remote,
                            error,
                        })?,
                        size: file.size,
                        sha256: file.sha256,
                    })
                })
                .collect::<Result<Vec<_>, CatalogError>>()?;
            models.push(Model {
                name: entry.name.to_owned(),
                kind: entry.kind,
                files,
                extra: false,
            });
        }
        models.extend(config.extra.iter().map(extra_model));
        Ok(Self { models })
    }

    /// Every entry, built-in first.
    pub fn models(&self) -> &[Model] {
        &self.models
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Names close to `name` (typos, a missing `whisper-` prefix), best first, at most five.
    pub fn suggestions(&self, name: &str) -> Vec<String> {
        let wanted = name.to_lowercase();
        let mut scored: Vec<(usize, &str)> = self
            .models
            .iter()
            .filter_map(|m| {
                let candidate = m.name.to_lowercase();
                let distance = edit_distance(&wanted, &candidate);
                // Allow about one typo per four characters, and any name that contains what
                // was typed (or the other way round), so `tiny.en` finds `whisper-tiny.en`.
                let close = distance <= (wanted.len() / 4).max(2)
                    || (wanted.len() >= 3 && candidate.contains(&wanted))
                    || (candidate.len() >= 3 && wanted.contains(&candidate));
                close.then_some((distance, m.name.as_str()))
            })
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(5)
            .map(|(_, n)| n.to_owned())
            .collect()
    }
}

fn extra_model(extra: &ExtraModel) -> Model {
    Model {
        name: extra.name.clone(),
        kind: extra.kind,
        files: vec![ModelFile {
            path: extra.file.clone(),
            url: extra.url.clone(),
            size: None,
            sha256: extra.sha256,
        }],
        extra: true,
    }
}

/// `base` + `/` + `remote`, whether or not `base` ends in a slash. (`Url::join` would drop the
/// last path segment of a base without a trailing slash.)
pub fn join_url(base: &Url, remote: &str) -> Result<Url, url::ParseError> {
    let base = base.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/{}", remote.trim_start_matches('/')))
}

/// Whether `path` is a plain relative path that stays inside the models directory.
pub fn is_safe_relative_path(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && !path.ends_with('/')
        && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Default `models.whisper_base_url`.
pub const DEFAULT_WHISPER_BASE_URL: &str =
    "https://huggingface.co/ggerganov/whisper.cpp/resolve/main";
/// Default `models.whisper_vad_base_url`.
pub const DEFAULT_WHISPER_VAD_BASE_URL: &str =
    "https://huggingface.co/ggml-org/whisper-vad/resolve/main";
/// Default `models.piper_base_url`: pinned to the v1.0.0 tag, whose files the checksums describe.
pub const DEFAULT_PIPER_BASE_URL: &str =
    "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0";
/// Default `models.wake_base_url`: the openWakeWord release that publishes the ONNX models.
pub const DEFAULT_WAKE_BASE_URL: &str =
    "https://github.com/dscripka/openWakeWord/releases/download/v0.5.1";

const fn sha(hex: &str) -> Option<Sha256Digest> {
    Some(Sha256Digest::from_hex_const(hex))
}

/// A whisper.cpp ggml model: `ggml-<model>.bin` upstream, `whisper/ggml-<model>.bin` here.
macro_rules! whisper {
    ($model:literal, $size:expr, $sha:literal) => {
        BuiltinModel {
            name: concat!("whisper-", $model),
            kind: ModelKind::Whisper,
            files: &[BuiltinFile {
                path: concat!("whisper/ggml-", $model, ".bin"),
                origin: Origin::Whisper,
                remote: concat!("ggml-", $model, ".bin"),
                size: Some($size),
                sha256: sha($sha),
            }],
        }
    };
}

/// An openWakeWord v0.5.1 release asset, stored under `wakeword/`.
macro_rules! wake {
    ($name:literal, $kind:expr, $file:literal, $size:expr, $sha:literal) => {
        BuiltinModel {
            name: $name,
            kind: $kind,
            files: &[BuiltinFile {
                path: concat!("wakeword/", $file),
                origin: Origin::Wake,
                remote: $file,
                size: $size,
                sha256: sha($sha),
            }],
        }
    };
}

/// The built-in table.
///
/// Whisper (ggerganov/whisper.cpp on Hugging Face): the model card publishes SHA-1 only; the
/// sha256 values (the Hugging Face LFS object ids) and sizes are those pinned, identically, by
/// several independent projects that verify these downloads (including Nix fixed-output
/// hashes and manifests pinned to revision 5359861c). The Silero VAD v6.2.0 value is pinned
/// the same way for ggml-org/whisper-vad, and equals the whisper.cpp repository's copy.
///
/// Piper `en_US-joe-medium`: the `.onnx` equals the byte-identical copy in the shared model
/// store (md5 checked against piper's voices.json); both values are also pinned by independent
/// projects against rhasspy/piper-voices v1.0.0.
///
/// openWakeWord: the v0.5.1 release assets, as pinned by Nix fetchurl hashes and other projects
/// against those exact URLs. (The copies in the `openwakeword` 0.4.0 wheel differ for
/// `embedding_model.onnx`, so those were not used.)
pub const BUILTIN: &[BuiltinModel] = &[
    whisper!(
        "tiny",
        77_691_713,
        "be07e048e1e599ad46341c8d2a135645097a538221678b7acdd1b1919c6e1b21"
    ),
    whisper!(
        "tiny.en",
        77_704_715,
        "921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f"
    ),
    whisper!(
        "base",
        147_951_465,
        "60ed5bc3dd14eea856493d334349b405782ddcaf0028d4b5df4088345fba2efe"
    ),
    whisper!(
        "base.en",
        147_964_211,
        "a03779c86df3323075f5e796cb2ce5029f00ec8869eee3fdfb897afe36c6d002"
    ),
    whisper!(
        "small",
        487_601_967,
        "1be3a9b2063867b937e64e2ec7483364a79917e157fa98c5d94b5c1fffea987b"
    ),
    whisper!(
        "small.en",
        487_614_201,
        "c6138d6d58ecc8322097e0f987c32f1be8bb0a18532a3f88f734d1bbf9c41e5d"
    ),
    whisper!(
        "medium",
        1_533_763_059,
        "6c14d5adee5f86394037b4e4e8b59f1673b6cee10e3cf0b11bbdbee79c156208"
    ),
    whisper!(
        "medium.en",
        1_533_774_781,
        "cc37e93478338ec7700281a7ac30a10128929eb8f427dda2e865faa8f6da4356"
    ),
    whisper!(
        "large-v3-turbo",
        1_624_555_275,
        "1fc70f774d38eb169993ac391eea357ef47c88757ef72ee5943879b7e8e2bc69"
    ),
    BuiltinModel {
        name: "whisper-vad-silero-v6.2.0",
        kind: ModelKind::Vad,
        files: &[BuiltinFile {
            path: "whisper/ggml-silero-v6.2.0.bin",
            origin: Origin::WhisperVad,
            remote: "ggml-silero-v6.2.0.bin",
            size: Some(885_098),
            sha256: sha("2aa269b785eeb53a82983a20501ddf7c1d9c48e33ab63a41391ac6c9f7fb6987"),
        }],
    },
    BuiltinModel {
        name: "piper-en_US-joe-medium",
        kind: ModelKind::Piper,
        files: &[
            BuiltinFile {
                path: "piper/en_US-joe-medium.onnx",
                origin: Origin::Piper,
                remote: "en/en_US/joe/medium/en_US-joe-medium.onnx",
                size: Some(63_201_294),
                sha256: sha("58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"),
            },
            BuiltinFile {
                path: "piper/en_US-joe-medium.onnx.json",
                origin: Origin::Piper,
                remote: "en/en_US/joe/medium/en_US-joe-medium.onnx.json",
                size: Some(4_794),
                sha256: sha("3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"),
            },
        ],
    },
    wake!(
        "wake-hey_jarvis_v0.1",
        ModelKind::Wake,
        "hey_jarvis_v0.1.onnx",
        Some(1_271_370),
        "94a13cfe60075b132f6a472e7e462e8123ee70861bc3fb58434a73712ee0d2cb"
    ),
    wake!(
        "wake-melspectrogram",
        ModelKind::Wake,
        "melspectrogram.onnx",
        Some(1_087_958),
        "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f"
    ),
    wake!(
        "wake-embedding_model",
        ModelKind::Wake,
        "embedding_model.onnx",
        None,
        "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f"
    ),
    wake!(
        "wake-silero_vad",
        ModelKind::Vad,
        "silero_vad.onnx",
        Some(1_807_522),
        "a35ebf52fd3ce5f1469b2a36158dba761bc47b973ea3382b3186ca15b1f5af28"
    ),
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn catalog() -> Catalog {
        Catalog::new(&ModelsConfig::default()).unwrap()
    }

    #[test]
    fn names_and_paths_are_unique_and_paths_stay_inside_the_models_dir() {
        let catalog = catalog();
        let mut names = HashSet::new();
        let mut paths = HashSet::new();
        for model in catalog.models() {
            assert!(names.insert(model.name.clone()), "duplicate {}", model.name);
            assert!(!model.files.is_empty(), "{} has no files", model.name);
            for file in &model.files {
                assert!(paths.insert(file.path.clone()), "duplicate {}", file.path);
                assert!(is_safe_relative_path(&file.path), "{}", file.path);
                assert_eq!(file.url.scheme(), "https", "{}", file.url);
            }
        }
    }

    #[test]
    fn whisper_entries_follow_the_shared_models_layout_and_upstream_names() {
        let catalog = catalog();
        let tiny = catalog.get("whisper-tiny.en").unwrap();
        assert_eq!(tiny.kind, ModelKind::Whisper);
        assert_eq!(tiny.files[0].path, "whisper/ggml-tiny.en.bin");
        assert_eq!(
            tiny.files[0].url.as_str(),
            "https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-tiny.en.bin"
        );
        let vad = catalog.get("whisper-vad-silero-v6.2.0").unwrap();
        assert_eq!(vad.kind, ModelKind::Vad);
        assert_eq!(vad.files[0].path, "whisper/ggml-silero-v6.2.0.bin");
        assert_eq!(
            vad.files[0].url.as_str(),
            "https://huggingface.co/ggml-org/whisper-vad/resolve/main/ggml-silero-v6.2.0.bin"
        );
        for model in [
            "tiny",
            "tiny.en",
            "base",
            "base.en",
            "small",
            "small.en",
            "medium",
            "medium.en",
            "large-v3-turbo",
        ] {
            let entry = catalog.get(&format!("whisper-{model}")).unwrap();
            assert_eq!(entry.files[0].path, format!("whisper/ggml-{model}.bin"));
            assert!(
                entry.files[0]
                    .url
                    .as_str()
                    .ends_with(&format!("/ggml-{model}.bin"))
            );
        }
    }

    #[test]
    fn the_piper_voice_has_its_model_and_config() {
        let catalog = catalog();
        let joe = catalog.get("piper-en_US-joe-medium").unwrap();
        let paths: Vec<_> = joe.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "piper/en_US-joe-medium.onnx",
                "piper/en_US-joe-medium.onnx.json"
            ]
        );
        assert_eq!(
            joe.files[0].url.as_str(),
            "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0/en/en_US/joe/medium/en_US-joe-medium.onnx"
        );
        assert_eq!(joe.size(), Some(63_201_294 + 4_794));
    }

    #[test]
    fn the_wake_models_come_from_the_release_and_live_in_wakeword() {
        let catalog = catalog();
        let jarvis = catalog.get("wake-hey_jarvis_v0.1").unwrap();
        assert_eq!(jarvis.files[0].path, "wakeword/hey_jarvis_v0.1.onnx");
        assert_eq!(
            jarvis.files[0].url.as_str(),
            "https://github.com/dscripka/openWakeWord/releases/download/v0.5.1/hey_jarvis_v0.1.onnx"
        );
        assert_eq!(catalog.get("wake-embedding_model").unwrap().size(), None);
    }

    #[test]
    fn base_urls_are_joined_with_or_without_a_trailing_slash() {
        let config = ModelsConfig {
            whisper_base_url: Url::parse("http://127.0.0.1:9/mirror/").unwrap(),
            wake_base_url: Url::parse("http://127.0.0.1:9/wake").unwrap(),
            ..ModelsConfig::default()
        };
        let catalog = Catalog::new(&config).unwrap();
        assert_eq!(
            catalog.get("whisper-base").unwrap().files[0].url.as_str(),
            "http://127.0.0.1:9/mirror/ggml-base.bin"
        );
        assert_eq!(
            catalog.get("wake-silero_vad").unwrap().files[0]
                .url
                .as_str(),
            "http://127.0.0.1:9/wake/silero_vad.onnx"
        );
    }

    #[test]
    fn extras_follow_the_built_in_entries() {
        let config = ModelsConfig {
            extra: vec![ExtraModel {
                name: "my-voice".into(),
                kind: ModelKind::Piper,
                file: "piper/my.onnx".into(),
                url: Url::parse("http://example.invalid/my.onnx").unwrap(),
                sha256: None,
            }],
            ..ModelsConfig::default()
        };
        let catalog = Catalog::new(&config).unwrap();
        let last = catalog.models().last().unwrap();
        assert_eq!(last.name, "my-voice");
        assert!(last.extra);
        assert_eq!(last.files[0].path, "piper/my.onnx");
    }

    #[test]
    fn suggestions_find_typos_and_missing_prefixes() {
        let catalog = catalog();
        assert_eq!(catalog.suggestions("whisper-tiny.e")[0], "whisper-tiny.en");
        assert!(
            catalog
                .suggestions("tiny.en")
                .contains(&"whisper-tiny.en".to_owned())
        );
        assert!(
            catalog
                .suggestions("hey_jarvis")
                .contains(&"wake-hey_jarvis_v0.1".to_owned())
        );
        assert!(catalog.suggestions("llama-70b").is_empty());
    }

    #[test]
    fn relative_paths_that_escape_are_refused() {
        assert!(is_safe_relative_path("whisper/ggml-tiny.bin"));
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a/", "./a"] {
            assert!(!is_safe_relative_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
