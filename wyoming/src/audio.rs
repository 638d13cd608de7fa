//! Audio events: `audio-start`, `audio-chunk`, `audio-stop`.
//!
//! Audio is raw little-endian PCM. `width` is bytes per sample, `timestamp` is in milliseconds.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// Sample rate, sample width and channel count of PCM audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AudioFormat {
    /// Samples per second, e.g. 16000.
    pub rate: u32,
    /// Bytes per sample: 1 (unsigned 8-bit), 2 (signed 16-bit) or 4 (signed 32-bit).
    pub width: u32,
    /// Interleaved channels.
    pub channels: u32,
}

impl Default for AudioFormat {
    fn default() -> Self {
        Self::HA_MIC
    }
}

impl AudioFormat {
    /// 16 kHz, 16-bit, mono: what Home Assistant streams for speech-to-text and wake words.
    pub const HA_MIC: Self = Self {
        rate: 16_000,
        width: 2,
        channels: 1,
    };

    /// Bytes of one frame (one sample in every channel).
    pub fn bytes_per_frame(&self) -> u64 {
        u64::from(self.width) * u64::from(self.channels)
    }

    /// Duration of `len` bytes of audio in this format, in milliseconds (0 for an impossible format).
    pub fn duration_ms(&self, len: usize) -> u64 {
        let per_second = self.bytes_per_frame() * u64::from(self.rate);
        (len as u64 * 1000).checked_div(per_second).unwrap_or(0)
    }
}

/// `audio-start`: a stream of audio begins.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioStart {
    /// Samples per second.
    pub rate: u32,
    /// Bytes per sample.
    pub width: u32,
    /// Interleaved channels.
    pub channels: u32,
    /// Milliseconds since the stream started.
    #[serde(default)]
    pub timestamp: Option<i64>,
}

/// `audio-chunk`: a piece of audio; the samples travel as the payload.
#[skip_serializing_none]
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioChunk {
    /// Samples per second.
    pub rate: u32,
    /// Bytes per sample.
    pub width: u32,
    /// Interleaved channels.
    pub channels: u32,
    /// Milliseconds since the stream started.
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// The PCM samples (the event payload).
    #[serde(skip)]
    pub audio: Bytes,
}

impl std::fmt::Debug for AudioChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioChunk")
            .field("format", &self.format())
            .field("timestamp", &self.timestamp)
            .field("audio_len", &self.audio.len())
            .finish()
    }
}

/// `audio-stop`: the audio stream has ended.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AudioStop {
    /// Milliseconds since the stream started.
    pub timestamp: Option<i64>,
}

// Design: the format fields are spelled out rather than a flattened `AudioFormat`, because serde's
// `flatten` buffers every key and doubles the cost of decoding the 100 chunks a second HA sends.
macro_rules! format_accessors {
    ($($ty:ident),*) => {$(
        impl $ty {
            /// The audio format as one value.
            pub fn format(&self) -> AudioFormat {
                AudioFormat { rate: self.rate, width: self.width, channels: self.channels }
            }
        }
    )*};
}
format_accessors!(AudioStart, AudioChunk);

impl AudioStart {
    /// An `audio-start` for `format`.
    pub fn new(format: AudioFormat, timestamp: Option<i64>) -> Self {
        Self {
            rate: format.rate,
            width: format.width,
            channels: format.channels,
            timestamp,
        }
    }
}

impl AudioChunk {
    /// An `audio-chunk` of `audio` in `format`.
    pub fn new(format: AudioFormat, audio: impl Into<Bytes>, timestamp: Option<i64>) -> Self {
        Self {
            rate: format.rate,
            width: format.width,
            channels: format.channels,
            timestamp,
            audio: audio.into(),
        }
    }
}
