//! One sample of every event type, with every field set, for round-trip tests.
#![allow(dead_code, unreachable_pub)]

use bytes::Bytes;
use serde_json::json;
use wyoming::asr::*;
use wyoming::audio::*;
use wyoming::handle::*;
use wyoming::info::*;
use wyoming::intent::*;
use wyoming::misc::*;
use wyoming::satellite::*;
use wyoming::tts::*;
use wyoming::vad::*;
use wyoming::wake::*;
use wyoming::{Data, Event, Frame};

pub fn context() -> Option<Data> {
    json!({"conversation_id": "c-1", "nested": {"n": 1, "s": "ünïcode ✓"}})
        .as_object()
        .cloned()
}

fn attribution() -> Attribution {
    Attribution::new("Jarvis", "https://example.invalid/jarvis")
}

/// An `info` as large as a real Piper catalogue (well over the 64 KiB header-line limit).
pub fn large_info(voices: usize) -> Info {
    let voices = (0..voices)
        .map(|i| TtsVoice {
            name: format!("en_US-voice{i}-medium"),
            attribution: attribution(),
            installed: true,
            description: Some(format!("Voice number {i} — “quoted”")),
            version: Some("1.0.0".into()),
            languages: vec!["en_US".into()],
            speakers: Some(vec![
                TtsVoiceSpeaker { name: "p1".into() },
                TtsVoiceSpeaker { name: "p2".into() },
            ]),
        })
        .collect();
    Info {
        asr: vec![AsrProgram {
            name: "jarvis-stt".into(),
            attribution: attribution(),
            installed: true,
            description: Some("whisper.cpp".into()),
            version: Some("0.1.0".into()),
            models: vec![AsrModel {
                name: "tiny.en".into(),
                attribution: Attribution::new("OpenAI", "https://github.com/openai/whisper"),
                installed: true,
                description: None,
                version: None,
                languages: vec!["en".into()],
            }],
            supports_transcript_streaming: true,
            requires_external_vad: false,
            prefers_auto_gain_enabled: false,
            prefers_noise_reduction_enabled: true,
        }],
        tts: vec![TtsProgram {
            name: "jarvis-tts".into(),
            attribution: attribution(),
            installed: true,
            description: None,
            version: None,
            voices,
            supports_synthesize_streaming: true,
        }],
        handle: vec![HandleProgram {
            name: "jarvis".into(),
            attribution: attribution(),
            installed: true,
            description: Some("Homelab".into()),
            version: Some("0.1.0".into()),
            models: vec![HandleModel {
                name: "jarvis".into(),
                attribution: attribution(),
                installed: true,
                description: None,
                version: None,
                languages: vec!["en".into()],
            }],
            supports_handled_streaming: true,
            supports_home_control: true,
        }],
        intent: vec![IntentProgram {
            name: "jarvis-intent".into(),
            attribution: attribution(),
            installed: false,
            description: None,
            version: None,
            models: vec![IntentModel {
                name: "jarvis".into(),
                attribution: attribution(),
                installed: true,
                description: None,
                version: None,
                languages: vec!["en".into(), "de".into()],
            }],
        }],
        wake: vec![WakeProgram {
            name: "jarvis-wake".into(),
            attribution: attribution(),
            installed: true,
            description: None,
            version: None,
            models: vec![WakeModel {
                name: "hey_jarvis".into(),
                attribution: attribution(),
                installed: true,
                description: Some("Hey Jarvis".into()),
                version: Some("0.1".into()),
                languages: vec!["en".into()],
                phrase: Some("Hey Jarvis".into()),
            }],
        }],
        mic: vec![MicProgram {
            name: "mic".into(),
            attribution: attribution(),
            installed: true,
            description: None,
            version: None,
            mic_format: AudioFormat::HA_MIC,
        }],
        snd: vec![SndProgram {
            name: "snd".into(),
            attribution: attribution(),
            installed: true,
            description: None,
            version: None,
            snd_format: AudioFormat {
                rate: 22050,
                width: 2,
                channels: 1,
            },
        }],
        satellite: Some(Satellite {
            name: "kitchen".into(),
            attribution: attribution(),
            installed: true,
            description: None,
            version: None,
            area: Some("Kitchen".into()),
            has_vad: Some(true),
            active_wake_words: Some(vec!["hey_jarvis".into()]),
            max_active_wake_words: Some(2),
            supports_trigger: Some(true),
        }),
    }
}

/// PCM with every byte value, so a payload bug shows.
pub fn pcm(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// One event of every type this crate knows, plus an unknown one.
pub fn all_events() -> Vec<Event> {
    let fmt = AudioFormat::HA_MIC;
    vec![
        AudioStart::new(fmt, Some(0)).into(),
        AudioChunk::new(fmt, pcm(320), Some(10)).into(),
        AudioChunk::new(fmt, pcm(1_000_000), None).into(),
        AudioStop {
            timestamp: Some(20),
        }
        .into(),
        Describe {}.into(),
        large_info(3).into(),
        Info::default().into(),
        SelectProgram {
            name: "jarvis-stt".into(),
        }
        .into(),
        Transcribe {
            name: Some("tiny.en".into()),
            language: Some("en".into()),
            context: context(),
            vad_sensitivity: Some("aggressive".into()),
            transcript_names: Some(vec!["pve".into(), "agent1".into()]),
            transcript_terms: Some(vec!["Proxmox".into()]),
        }
        .into(),
        Transcript {
            text: "start VM one oh one".into(),
            language: Some("en".into()),
            context: context(),
        }
        .into(),
        TranscriptStart {
            language: Some("en".into()),
            context: context(),
        }
        .into(),
        TranscriptChunk {
            text: "start ".into(),
        }
        .into(),
        TranscriptStop {}.into(),
        Synthesize {
            text: "Reboot media-server on pve? Say confirm.".into(),
            voice: Some(SynthesizeVoice {
                name: Some("en_US-joe-medium".into()),
                language: None,
                speaker: Some("0".into()),
            }),
            text_format: Some("text".into()),
            context: context(),
        }
        .into(),
        SynthesizeStart {
            voice: Some(SynthesizeVoice {
                name: None,
                language: Some("en_US".into()),
                speaker: None,
            }),
            text_format: Some("ssml".into()),
            context: context(),
        }
        .into(),
        SynthesizeChunk {
            text: "Hello. ".into(),
        }
        .into(),
        SynthesizeStop {}.into(),
        SynthesizeStopped {}.into(),
        Detect {
            names: Some(vec!["hey_jarvis".into()]),
            context: context(),
        }
        .into(),
        Detection {
            name: Some("hey_jarvis".into()),
            timestamp: Some(1234),
            speaker: Some("alice".into()),
            context: context(),
        }
        .into(),
        NotDetected { context: context() }.into(),
        VoiceStarted {
            timestamp: Some(100),
        }
        .into(),
        VoiceStopped {
            timestamp: Some(900),
        }
        .into(),
        Recognize {
            text: "status of node pve".into(),
            context: context(),
        }
        .into(),
        Intent {
            name: "NodeStatus".into(),
            entities: vec![
                Entity {
                    name: "node".into(),
                    value: json!("pve"),
                },
                Entity {
                    name: "vmid".into(),
                    value: json!(101),
                },
            ],
            text: Some("pve is online".into()),
            context: context(),
        }
        .into(),
        NotRecognized {
            text: Some("Sorry?".into()),
            context: context(),
        }
        .into(),
        IntentsStart { context: context() }.into(),
        IntentsStop { context: context() }.into(),
        Handled {
            text: Some("pve is online, 3 guests running.".into()),
            context: context(),
        }
        .into(),
        NotHandled {
            text: Some("I can't do that.".into()),
            context: context(),
        }
        .into(),
        HandledStart { context: context() }.into(),
        HandledChunk {
            text: "pve ".into(),
        }
        .into(),
        HandledStop {}.into(),
        Ping {
            text: Some("are you there".into()),
        }
        .into(),
        Pong {
            text: Some("are you there".into()),
        }
        .into(),
        Error::new("busy", "server is busy").into(),
        UserEvent {
            name: "custom".into(),
            data: json!({"k": [1, 2, 3]}).as_object().cloned(),
            context: context(),
        }
        .into(),
        Played {}.into(),
        RunSatellite {}.into(),
        PauseSatellite {}.into(),
        SatelliteConnected {}.into(),
        SatelliteDisconnected {}.into(),
        StreamingStarted {}.into(),
        StreamingStopped {}.into(),
        RunPipeline {
            start_stage: PipelineStage::Wake,
            end_stage: PipelineStage::Tts,
            wake_word_name: Some("hey_jarvis".into()),
            wake_word_names: Some(vec!["hey_jarvis".into(), "okay_nabu".into()]),
            announce_text: Some("Backup finished".into()),
            restart_on_end: true,
        }
        .into(),
        TimerStarted {
            id: "t1".into(),
            total_seconds: 90,
            name: Some("tea".into()),
            start_hours: Some(0),
            start_minutes: Some(1),
            start_seconds: Some(30),
        }
        .into(),
        TimerUpdated {
            id: "t1".into(),
            is_active: false,
            total_seconds: 45,
        }
        .into(),
        TimerCancelled { id: "t1".into() }.into(),
        TimerFinished { id: "t1".into() }.into(),
        Event::Unknown(
            Frame::new("x-jarvis-future")
                .with_data(
                    json!({"a": 1, "b": null})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                )
                .with_payload(pcm(7)),
        ),
    ]
}
