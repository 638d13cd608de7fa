//! Service description: `describe`, `info` and `select-program`.
//!
//! Every program and model ("artifact") carries `name`, `attribution`, `installed`,
//! `description` and `version`. Home Assistant's parser crashes when a required key is missing, so
//! this crate always writes all five (`description` and `version` as `null` when unknown).

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::audio::AudioFormat;
use crate::event::{null_as_default, null_as_true};

/// `describe`: asks for `info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Describe {}

/// `select-program`: picks a program by name for the rest of the connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectProgram {
    /// Program name from `info`.
    pub name: String,
}

/// Who made a program or model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Attribution {
    /// Author or project name.
    pub name: String,
    /// Where to find it (may be empty).
    pub url: String,
}

impl Attribution {
    /// An attribution.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
        }
    }
}

/// Declares an artifact struct: the five common fields, then the struct's own.
macro_rules! artifact {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[skip_serializing_none]
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            /// Unique name within its list.
            pub name: String,
            /// Who made it.
            #[serde(default, deserialize_with = "null_as_default")]
            pub attribution: Attribution,
            /// Whether it can be used now (HA ignores programs that are not installed).
            #[serde(default, deserialize_with = "null_as_default")]
            pub installed: bool,
            /// Human-readable description (HA shows it as a label).
            #[serde(default)]
            #[serialize_always]
            pub description: Option<String>,
            /// Version string.
            #[serde(default)]
            #[serialize_always]
            pub version: Option<String>,
            $($(#[$fmeta])* pub $field: $ty,)*
        }
    };
}

artifact!(
    /// A speech-to-text model.
    AsrModel {
        /// Language codes, e.g. `en`.
        #[serde(default, deserialize_with = "null_as_default")]
        languages: Vec<String>,
    }
);

artifact!(
    /// A speech-to-text program.
    AsrProgram {
        /// Its models.
        #[serde(default, deserialize_with = "null_as_default")]
        models: Vec<AsrModel>,
        /// Sends `transcript-start/chunk/stop`.
        #[serde(default, deserialize_with = "null_as_default")]
        supports_transcript_streaming: bool,
        /// False when the server finds the end of speech itself (HA 2026.10+ then skips its VAD).
        #[serde(default = "yes", deserialize_with = "null_as_true")]
        requires_external_vad: bool,
        /// Asks HA to apply auto gain.
        #[serde(default = "yes", deserialize_with = "null_as_true")]
        prefers_auto_gain_enabled: bool,
        /// Asks HA to apply noise reduction.
        #[serde(default = "yes", deserialize_with = "null_as_true")]
        prefers_noise_reduction_enabled: bool,
    }
);

/// One speaker of a multi-speaker voice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtsVoiceSpeaker {
    /// Speaker name.
    pub name: String,
}

artifact!(
    /// A text-to-speech voice.
    TtsVoice {
        /// Language codes, e.g. `en_US`.
        #[serde(default, deserialize_with = "null_as_default")]
        languages: Vec<String>,
        /// Speakers of a multi-speaker voice.
        #[serde(default)]
        speakers: Option<Vec<TtsVoiceSpeaker>>,
    }
);

artifact!(
    /// A text-to-speech program. Note: it lists `voices`, not `models`.
    TtsProgram {
        /// Its voices.
        #[serde(default, deserialize_with = "null_as_default")]
        voices: Vec<TtsVoice>,
        /// Accepts `synthesize-start/chunk/stop` (HA then streams every request).
        #[serde(default, deserialize_with = "null_as_default")]
        supports_synthesize_streaming: bool,
    }
);

artifact!(
    /// An intent-handling model.
    HandleModel {
        /// Language codes; empty means all.
        #[serde(default, deserialize_with = "null_as_default")]
        languages: Vec<String>,
    }
);

artifact!(
    /// An intent-handling program (HA shows it as a conversation agent).
    HandleProgram {
        /// Its models.
        #[serde(default, deserialize_with = "null_as_default")]
        models: Vec<HandleModel>,
        /// Sends `handled-start/chunk/stop`.
        #[serde(default, deserialize_with = "null_as_default")]
        supports_handled_streaming: bool,
        /// Can control the home (HA sets the CONTROL feature).
        #[serde(default, deserialize_with = "null_as_default")]
        supports_home_control: bool,
    }
);

artifact!(
    /// A wake-word model.
    WakeModel {
        /// Language codes.
        #[serde(default, deserialize_with = "null_as_default")]
        languages: Vec<String>,
        /// The phrase to say, e.g. `Hey Jarvis`.
        #[serde(default)]
        #[serialize_always]
        phrase: Option<String>,
    }
);

artifact!(
    /// A wake-word program.
    WakeProgram {
        /// Its models.
        #[serde(default, deserialize_with = "null_as_default")]
        models: Vec<WakeModel>,
    }
);

artifact!(
    /// An intent-recognition model.
    IntentModel {
        /// Language codes.
        #[serde(default, deserialize_with = "null_as_default")]
        languages: Vec<String>,
    }
);

artifact!(
    /// An intent-recognition program.
    IntentProgram {
        /// Its models.
        #[serde(default, deserialize_with = "null_as_default")]
        models: Vec<IntentModel>,
    }
);

artifact!(
    /// A microphone program.
    MicProgram {
        /// Format of the audio it records.
        mic_format: AudioFormat,
    }
);

artifact!(
    /// A sound-output program.
    SndProgram {
        /// Format of the audio it plays.
        snd_format: AudioFormat,
    }
);

artifact!(
    /// A satellite. Never set it on a service: HA then creates no STT, TTS, wake or conversation
    /// entities.
    Satellite {
        /// Area the satellite is in.
        #[serde(default)]
        area: Option<String>,
        /// Has its own voice activity detection.
        #[serde(default)]
        has_vad: Option<bool>,
        /// Wake words it listens for.
        #[serde(default)]
        active_wake_words: Option<Vec<String>>,
        /// How many wake words it can listen for at once.
        #[serde(default)]
        max_active_wake_words: Option<u32>,
        /// Can be triggered remotely.
        #[serde(default)]
        supports_trigger: Option<bool>,
    }
);

/// `info`: what a server offers. The lists are always written, even when empty.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Info {
    /// Speech-to-text programs.
    #[serde(deserialize_with = "null_as_default")]
    pub asr: Vec<AsrProgram>,
    /// Text-to-speech programs.
    #[serde(deserialize_with = "null_as_default")]
    pub tts: Vec<TtsProgram>,
    /// Intent-handling programs.
    #[serde(deserialize_with = "null_as_default")]
    pub handle: Vec<HandleProgram>,
    /// Intent-recognition programs.
    #[serde(deserialize_with = "null_as_default")]
    pub intent: Vec<IntentProgram>,
    /// Wake-word programs.
    #[serde(deserialize_with = "null_as_default")]
    pub wake: Vec<WakeProgram>,
    /// Microphones.
    #[serde(deserialize_with = "null_as_default")]
    pub mic: Vec<MicProgram>,
    /// Sound outputs.
    #[serde(deserialize_with = "null_as_default")]
    pub snd: Vec<SndProgram>,
    /// Set only by satellites.
    pub satellite: Option<Satellite>,
}

fn yes() -> bool {
    true
}
