//! Satellite events: run/pause, connection and streaming state, `run-pipeline` and timers.
//!
//! These pass between a satellite and Home Assistant; Jarvis reads and writes them only as a peer.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::event::null_as_default;

/// `run-satellite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSatellite {}

/// `pause-satellite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseSatellite {}

/// `satellite-connected`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SatelliteConnected {}

/// `satellite-disconnected`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SatelliteDisconnected {}

/// `streaming-started`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamingStarted {}

/// `streaming-stopped`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamingStopped {}

/// A stage of an assist pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipelineStage {
    /// Wake word detection.
    #[default]
    Wake,
    /// Speech-to-text.
    Asr,
    /// Intent recognition.
    Intent,
    /// Intent handling.
    Handle,
    /// Text-to-speech.
    Tts,
}

/// `run-pipeline`: a satellite asks HA to run an assist pipeline.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPipeline {
    /// First stage.
    pub start_stage: PipelineStage,
    /// Last stage.
    pub end_stage: PipelineStage,
    /// Wake word to listen for.
    #[serde(default)]
    pub wake_word_name: Option<String>,
    /// Wake words to listen for.
    #[serde(default)]
    pub wake_word_names: Option<Vec<String>>,
    /// Text to announce.
    #[serde(default)]
    pub announce_text: Option<String>,
    /// Run again when the pipeline ends.
    #[serde(default, deserialize_with = "null_as_default")]
    pub restart_on_end: bool,
}

/// `timer-started`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerStarted {
    /// Timer id.
    pub id: String,
    /// Length in seconds.
    pub total_seconds: i64,
    /// Timer name.
    #[serde(default)]
    pub name: Option<String>,
    /// Hours as asked for.
    #[serde(default)]
    pub start_hours: Option<i64>,
    /// Minutes as asked for.
    #[serde(default)]
    pub start_minutes: Option<i64>,
    /// Seconds as asked for.
    #[serde(default)]
    pub start_seconds: Option<i64>,
}

/// `timer-updated`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerUpdated {
    /// Timer id.
    pub id: String,
    /// Whether it is running.
    pub is_active: bool,
    /// Seconds left.
    pub total_seconds: i64,
}

/// `timer-cancelled`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerCancelled {
    /// Timer id.
    pub id: String,
}

/// `timer-finished`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerFinished {
    /// Timer id.
    pub id: String,
}
