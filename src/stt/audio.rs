//! Audio conversion for speech-to-text: any PCM format Wyoming can carry, to 16 kHz mono `f32`.
//!
//! Channels are averaged, samples scaled to [-1, 1], and the rate converted with a windowed-sinc
//! resampler (rubato), never by dropping or repeating samples. Conversion is incremental: chunks
//! are pushed as they arrive and the 16 kHz samples are available right away, which is what lets
//! the endpointer and speculative decoding run while the user is still speaking.

use rubato::{
    Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};
use wyoming::audio::AudioFormat;

/// Whisper's sample rate.
pub const WHISPER_RATE: u32 = 16_000;

/// Input frames per resampler call: 10 ms at 48 kHz, small enough to add no audible latency.
const RESAMPLE_CHUNK: usize = 480;

/// Why audio cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// The format is impossible or unsupported.
    #[error("unsupported audio format: {0}")]
    Format(String),
    /// A chunk's format differs from the stream's.
    #[error("audio-chunk format {got:?} differs from audio-start {expected:?}")]
    FormatChanged {
        /// The stream's format.
        expected: AudioFormat,
        /// The chunk's.
        got: AudioFormat,
    },
}

/// Checks that a format can be converted: rate 1 Hz..=384 kHz, width 1, 2 or 4, 1..=16 channels.
///
/// # Errors
/// [`AudioError::Format`] naming the bad field.
pub fn validate(format: AudioFormat) -> Result<(), AudioError> {
    if format.rate == 0 || format.rate > 384_000 {
        return Err(AudioError::Format(format!(
            "rate {} Hz (must be 1 to 384000)",
            format.rate
        )));
    }
    if !matches!(format.width, 1 | 2 | 4) {
        return Err(AudioError::Format(format!(
            "width {} bytes (must be 1, 2 or 4)",
            format.width
        )));
    }
    if format.channels == 0 || format.channels > 16 {
        return Err(AudioError::Format(format!(
            "{} channels (must be 1 to 16)",
            format.channels
        )));
    }
    Ok(())
}

/// Converts a stream of PCM chunks in one format to 16 kHz mono `f32`.
pub struct Converter {
    format: AudioFormat,
    /// Bytes of an incomplete frame left over from the previous chunk.
    carry: Vec<u8>,
    resampler: Option<SincFixedIn<f32>>,
    /// Mono input-rate samples waiting for a full resampler chunk.
    pending: Vec<f32>,
    output: Vec<f32>,
    /// Samples taken out with [`Converter::drain`].
    drained: usize,
}

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("format", &self.format)
            .field("output_len", &self.output.len())
            .finish_non_exhaustive()
    }
}

impl Converter {
    /// A converter for `format`.
    ///
    /// # Errors
    /// See [`validate`].
    pub fn new(format: AudioFormat) -> Result<Self, AudioError> {
        validate(format)?;
        let resampler = if format.rate == WHISPER_RATE {
            None
        } else {
            let params = SincInterpolationParameters {
                sinc_len: 128,
                f_cutoff: 0.925,
                oversampling_factor: 128,
                interpolation: SincInterpolationType::Linear,
                window: WindowFunction::BlackmanHarris2,
            };
            let ratio = f64::from(WHISPER_RATE) / f64::from(format.rate);
            let resampler =
                SincFixedIn::new(ratio, 1.0, params, RESAMPLE_CHUNK, 1).map_err(|err| {
                    AudioError::Format(format!("cannot resample from {} Hz: {err}", format.rate))
                })?;
            Some(resampler)
        };
        Ok(Self {
            format,
            carry: Vec::new(),
            resampler,
            pending: Vec::new(),
            output: Vec::new(),
            drained: 0,
        })
    }

    /// The input format.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Adds an `audio-chunk`, which must be in the format `audio-start` announced.
    ///
    /// # Errors
    /// A chunk in another format: the text for a `bad-audio-format` error event.
    pub fn push_chunk(&mut self, chunk: &wyoming::audio::AudioChunk) -> Result<(), String> {
        if chunk.format() != self.format {
            return Err(format!(
                "audio-chunk format {:?} differs from audio-start {:?}",
                chunk.format(),
                self.format
            ));
        }
        self.push(&chunk.audio);
        Ok(())
    }

    /// Adds a chunk of PCM bytes in the stream's format.
    pub fn push(&mut self, pcm: &[u8]) {
        let frame_bytes = (self.format.width * self.format.channels) as usize;
        let mut bytes = pcm;
        let joined;
        if !self.carry.is_empty() {
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(pcm);
            joined = buf;
            bytes = &joined;
        }
        let whole = bytes.len() / frame_bytes * frame_bytes;
        self.carry.extend_from_slice(&bytes[whole..]);
        let mono = bytes[..whole]
            .chunks_exact(frame_bytes)
            .map(|frame| mix(frame, self.format.width as usize));
        match &mut self.resampler {
            None => self.output.extend(mono),
            Some(resampler) => {
                self.pending.extend(mono);
                let mut consumed = 0;
                while self.pending.len() - consumed >= resampler.input_frames_next() {
                    let need = resampler.input_frames_next();
                    let input = [&self.pending[consumed..consumed + need]];
                    if let Ok(out) = resampler.process(&input, None) {
                        if let Some(channel) = out.first() {
                            self.output.extend_from_slice(channel);
                        }
                    }
                    consumed += need;
                }
                self.pending.drain(..consumed);
            }
        }
    }

    /// Flushes what the resampler still holds (call once, at the end of the stream).
    pub fn finish(&mut self) {
        if let Some(resampler) = &mut self.resampler {
            let input = [&self.pending[..]];
            if let Ok(out) = resampler.process_partial(Some(&input), None) {
                if let Some(channel) = out.first() {
                    self.output.extend_from_slice(channel);
                }
            }
            self.pending.clear();
        }
    }

    /// The 16 kHz mono samples converted so far (since the last [`Converter::drain`]).
    pub fn samples(&self) -> &[f32] {
        &self.output
    }

    /// Takes the converted samples out, so a stream that never ends does not grow (the wake
    /// word keeps only what it has not processed yet).
    pub fn drain(&mut self) -> std::vec::Drain<'_, f32> {
        self.drained += self.output.len();
        self.output.drain(..)
    }

    /// Seconds of audio converted so far, drained samples included.
    pub fn seconds(&self) -> f32 {
        (self.drained + self.output.len()) as f32 / WHISPER_RATE as f32
    }
}

/// One frame (all channels) to one mono sample in [-1, 1].
fn mix(frame: &[u8], width: usize) -> f32 {
    let channels = frame.chunks_exact(width);
    let count = channels.len() as f32;
    let sum: f32 = channels
        .map(|s| match *s {
            [b] => (f32::from(b) - 128.0) / 128.0,
            [a, b] => f32::from(i16::from_le_bytes([a, b])) / 32_768.0,
            [a, b, c, d] => i32::from_le_bytes([a, b, c, d]) as f32 / 2_147_483_648.0,
            _ => 0.0,
        })
        .sum();
    sum / count
}

/// Converts a whole buffer at once (for `jarvis transcribe` and tests).
///
/// # Errors
/// See [`validate`].
pub fn to_whisper(format: AudioFormat, pcm: &[u8]) -> Result<Vec<f32>, AudioError> {
    let mut converter = Converter::new(format)?;
    converter.push(pcm);
    converter.finish();
    Ok(converter.output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    fn i16_bytes(samples: &[f32], channels: usize) -> Vec<u8> {
        samples
            .iter()
            .flat_map(|&s| {
                let v = ((s * 32767.0) as i16).to_le_bytes();
                std::iter::repeat_n(v, channels).flatten()
            })
            .collect()
    }

    /// Frequency of the strongest bin by a plain DFT over a few candidate frequencies.
    fn power_at(samples: &[f32], rate: u32, freq: f32) -> f32 {
        let (mut re, mut im) = (0.0f32, 0.0f32);
        for (i, s) in samples.iter().enumerate() {
            let phase = 2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32;
            re += s * phase.cos();
            im += s * phase.sin();
        }
        (re * re + im * im).sqrt() / samples.len() as f32
    }

    #[test]
    fn a_chunk_in_another_format_than_audio_start_is_refused() {
        use wyoming::audio::AudioChunk;
        let mut converter = Converter::new(AudioFormat::HA_MIC).unwrap();
        let same = AudioChunk::new(AudioFormat::HA_MIC, vec![0u8; 320], None);
        assert!(converter.push_chunk(&same).is_ok());
        let stereo = AudioFormat {
            channels: 2,
            ..AudioFormat::HA_MIC
        };
        let other = AudioChunk::new(stereo, vec![0u8; 320], None);
        let text = converter.push_chunk(&other).unwrap_err();
        assert!(text.contains("differs from audio-start"), "{text}");
        assert_eq!(
            converter.samples().len(),
            160,
            "the odd chunk added nothing"
        );
    }

    #[test]
    fn impossible_formats_are_refused() {
        for (rate, width, channels) in [
            (0, 2, 1),
            (16000, 3, 1),
            (16000, 2, 0),
            (16000, 0, 1),
            (500_000, 2, 1),
        ] {
            let format = AudioFormat {
                rate,
                width,
                channels,
            };
            assert!(Converter::new(format).is_err(), "{format:?}");
        }
    }

    #[test]
    fn sixteen_khz_mono_passes_through_exactly() {
        let pcm: Vec<u8> = [0i16, 16384, -16384, 32767]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let out = to_whisper(AudioFormat::HA_MIC, &pcm).unwrap();
        assert_eq!(out, vec![0.0, 0.5, -0.5, 32767.0 / 32768.0]);
    }

    #[test]
    fn widths_and_channels_are_mixed_to_mono() {
        // Stereo u8: (255, 1) averages to ~0; 32-bit: full scale.
        let out = to_whisper(
            AudioFormat {
                rate: 16000,
                width: 1,
                channels: 2,
            },
            &[255, 1, 128, 128],
        )
        .unwrap();
        assert!(out.iter().all(|s| s.abs() < 0.01), "{out:?}");
        let out = to_whisper(
            AudioFormat {
                rate: 16000,
                width: 4,
                channels: 1,
            },
            &i32::MIN.to_le_bytes(),
        )
        .unwrap();
        assert_eq!(out, vec![-1.0]);
    }

    #[test]
    fn a_frame_split_across_chunks_is_kept() {
        let pcm = i16_bytes(&[0.25, -0.25, 0.5], 2);
        let mut converter = Converter::new(AudioFormat {
            rate: 16000,
            width: 2,
            channels: 2,
        })
        .unwrap();
        for byte in &pcm {
            converter.push(std::slice::from_ref(byte));
        }
        assert_eq!(converter.samples().len(), 3);
        assert!((converter.samples()[2] - 0.5).abs() < 1e-3);
    }

    #[test]
    fn drained_samples_still_count_in_the_duration() {
        let mut converter = Converter::new(AudioFormat::HA_MIC).unwrap();
        converter.push(&[0u8; 3200]);
        assert_eq!(converter.drain().count(), 1600);
        converter.push(&[0u8; 3200]);
        assert_eq!(converter.samples().len(), 1600);
        assert!((converter.seconds() - 0.2).abs() < 1e-6);
    }

    #[test]
    fn resampling_keeps_duration_and_pitch() {
        for rate in [8000, 22050, 44100, 48000] {
            let input = sine(rate, 440.0, 1.0);
            let pcm = i16_bytes(&input, 2);
            // Pushed in 10 ms chunks, as a client streams it.
            let mut converter = Converter::new(AudioFormat {
                rate,
                width: 2,
                channels: 2,
            })
            .unwrap();
            for chunk in pcm.chunks((rate as usize / 100) * 4) {
                converter.push(chunk);
            }
            converter.finish();
            let out = converter.samples();
            let expected = WHISPER_RATE as usize;
            assert!(
                out.len().abs_diff(expected) < 300,
                "{rate}: {} samples",
                out.len()
            );
            // The 440 Hz tone survives; nothing appears at a mirrored frequency.
            let body = &out[1000..out.len() - 1000];
            let tone = power_at(body, WHISPER_RATE, 440.0);
            let other = power_at(body, WHISPER_RATE, 1200.0);
            assert!(
                tone > 0.2 && other < 0.01,
                "{rate}: tone {tone}, other {other}"
            );
        }
    }
}
