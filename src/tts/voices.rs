//! The Piper voices in the models directory: `piper/<name>.onnx` with `piper/<name>.onnx.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::engine::Scales;

/// One voice found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceInfo {
    /// File stem, e.g. `en_US-joe-medium`; clients select voices by it.
    pub name: String,
    /// The ONNX model.
    pub model: PathBuf,
    /// Its JSON configuration.
    pub config: PathBuf,
    /// Language code, e.g. `en_US`.
    pub language: String,
    /// Output sample rate.
    pub sample_rate: u32,
    /// Speaker names by id, for multi-speaker voices (empty otherwise).
    pub speakers: BTreeMap<i64, String>,
    /// Dataset and quality, for people.
    pub description: String,
    /// The voice's own scales (what `tts.length_scale` and the others override).
    pub scales: Scales,
}

#[derive(Deserialize)]
struct VoiceJson {
    audio: AudioJson,
    #[serde(default)]
    language: Option<LanguageJson>,
    espeak: EspeakJson,
    #[serde(default)]
    speaker_id_map: BTreeMap<String, i64>,
    #[serde(default)]
    dataset: Option<String>,
    #[serde(default)]
    inference: Option<InferenceJson>,
}

/// Piper's defaults when a voice's configuration has no `inference` section.
#[derive(Deserialize)]
struct InferenceJson {
    #[serde(default = "default_noise_scale")]
    noise_scale: f32,
    #[serde(default = "default_length_scale")]
    length_scale: f32,
    #[serde(default = "default_noise_w")]
    noise_w: f32,
}

fn default_noise_scale() -> f32 {
    0.667
}
fn default_length_scale() -> f32 {
    1.0
}
fn default_noise_w() -> f32 {
    0.8
}

#[derive(Deserialize)]
struct AudioJson {
    sample_rate: u32,
    #[serde(default)]
    quality: Option<String>,
}

#[derive(Deserialize)]
struct LanguageJson {
    code: String,
}

#[derive(Deserialize)]
struct EspeakJson {
    voice: String,
}

/// Reads a voice's JSON configuration.
///
/// # Errors
/// A message naming the file when it cannot be read or parsed.
pub fn read_voice(model: &Path) -> Result<VoiceInfo, String> {
    let config = PathBuf::from(format!("{}.json", model.display()));
    let text = std::fs::read_to_string(&config)
        .map_err(|err| format!("cannot read {}: {err}", config.display()))?;
    let json: VoiceJson = serde_json::from_str(&text).map_err(|err| {
        format!(
            "{} is not a Piper voice configuration: {err}",
            config.display()
        )
    })?;
    let name = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let language = json
        .language
        .map(|l| l.code)
        .unwrap_or_else(|| json.espeak.voice.replace('-', "_"));
    let description = match (json.dataset, json.audio.quality) {
        (Some(dataset), Some(quality)) => format!("{dataset} ({quality})"),
        (Some(dataset), None) => dataset,
        _ => name.clone(),
    };
    Ok(VoiceInfo {
        name,
        model: model.to_owned(),
        config,
        language,
        sample_rate: json.audio.sample_rate,
        speakers: json
            .speaker_id_map
            .into_iter()
            .map(|(name, id)| (id, name))
            .collect(),
        description,
        scales: json.inference.map_or(
            Scales {
                noise: default_noise_scale(),
                length: default_length_scale(),
                noise_w: default_noise_w(),
            },
            |own| Scales {
                noise: own.noise_scale,
                length: own.length_scale,
                noise_w: own.noise_w,
            },
        ),
    })
}

/// Every voice in `dir` (sorted by name); unreadable ones are returned as errors beside them.
pub fn scan(dir: &Path) -> (Vec<VoiceInfo>, Vec<String>) {
    let mut voices = Vec::new();
    let mut problems = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (voices, problems);
    };
    let mut models: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    models.sort();
    for model in models {
        match read_voice(&model) {
            Ok(voice) => voices.push(voice),
            Err(problem) => problems.push(problem),
        }
    }
    (voices, problems)
}
