//! Spoken clips for the wake-word tests and benchmark, generated at run time (nothing is stored):
//! "hey jarvis" and phrases that are not it, in the Piper joe voice (through Jarvis's own
//! text-to-speech) and in several espeak-ng voices.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use jarvis::tts::TtsService;
use wyoming::audio::AudioFormat;

/// Ways of saying the wake word.
pub const POSITIVES: &[&str] = &["Hey Jarvis.", "Hey, Jarvis!", "Hey Jarvis"];

/// What a household says to its assistant and to each other: must never wake it.
pub const NEGATIVES: &[&str] = &[
    "Turn on the kitchen lights.",
    "What's the weather like tomorrow?",
    "Start the backup on the second node.",
    "Stop the virtual machine.",
    "Good morning, how are you?",
    "Hey there, dinner is ready.",
    "Hey Siri, set a timer.",
    "Okay Google, play some music.",
    "Harvest moon is rising.",
    "Jars of jam and jelly.",
    "Is the garage door closed?",
    "Reboot the storage server, please.",
];

/// Phrases that sound like the wake word: reported by the benchmark, not asserted.
pub const NEAR_MISSES: &[&str] = &[
    "Hey Travis",
    "Jarvis",
    "Hey service",
    "Hey, Java is fun",
    "Have you seen Jarvis Cocker?",
];

/// espeak-ng voices and speeds (words per minute).
pub const ESPEAK_VOICES: &[(&str, u32)] = &[
    ("en-us", 150),
    ("en-gb+m1", 130),
    ("en-us+m3", 170),
    ("en-us+f2", 150),
];

/// A clip of mono 16-bit audio.
#[derive(Debug, Clone)]
pub struct Clip {
    /// What was said, by whom.
    pub label: String,
    /// Sample rate.
    pub rate: u32,
    /// Mono samples.
    pub samples: Vec<i16>,
}

impl Clip {
    /// The same speech at 16 kHz.
    pub fn to_16k(&self) -> Vec<i16> {
        resample(self.rate, &self.samples)
    }

    /// Where speech ends, in ms from the start of the clip: the end of the last 10 ms with
    /// energy over 5 % of the loudest.
    pub fn speech_end_ms(&self) -> u64 {
        speech_end_ms(self.rate, &self.samples)
    }
}

/// `rate` → 16 kHz with Jarvis's own converter.
pub fn resample(rate: u32, samples: &[i16]) -> Vec<i16> {
    let pcm: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let format = AudioFormat {
        rate,
        width: 2,
        channels: 1,
    };
    jarvis::stt::audio::to_whisper(format, &pcm)
        .unwrap()
        .iter()
        .map(|s| (s * 32_768.0).clamp(-32_768.0, 32_767.0) as i16)
        .collect()
}

/// See [`Clip::speech_end_ms`].
pub fn speech_end_ms(rate: u32, samples: &[i16]) -> u64 {
    let window = (rate / 100) as usize;
    let energies: Vec<f64> = samples
        .chunks(window)
        .map(|w| (w.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / w.len() as f64).sqrt())
        .collect();
    let loudest = energies.iter().copied().fold(0.0, f64::max);
    let last = energies
        .iter()
        .rposition(|&e| e > loudest * 0.05)
        .unwrap_or(0);
    (last as u64 + 1) * 10
}

/// 16-bit mono samples and rate of a WAV file.
pub fn read_wav(path: &Path) -> (u32, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    assert_eq!(reader.spec().channels, 1, "{}", path.display());
    let rate = reader.spec().sample_rate;
    (rate, reader.samples::<i16>().map(Result::unwrap).collect())
}

/// Writes mono 16-bit samples as a WAV file.
pub fn write_wav(path: &Path, rate: u32, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
}

/// `text` in an espeak-ng voice.
pub fn espeak(text: &str, voice: &str, speed: u32) -> Clip {
    let out = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &speed.to_string(), "--stdout", text])
        .output()
        .expect("espeak-ng runs (scripts/bootstrap.sh --test installs it)");
    assert!(
        out.status.success(),
        "espeak-ng: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = hound::WavReader::new(std::io::Cursor::new(out.stdout)).unwrap();
    let rate = reader.spec().sample_rate;
    // espeak-ng's streamed WAV header has no length; read what is there.
    let samples = reader.samples::<i16>().map_while(Result::ok).collect();
    Clip {
        label: format!("espeak {voice} {speed}: {text}"),
        rate,
        samples,
    }
}

/// `text` in the default Piper voice.
pub fn piper(tts: &TtsService, text: &str) -> Clip {
    let selection = tts.select(None).unwrap();
    let samples = tts.synthesize_blocking(&selection, text).unwrap();
    Clip {
        label: format!("piper {}: {text}", selection.voice.name),
        rate: selection.voice.sample_rate,
        samples,
    }
}

/// Every phrase of `phrases` in Piper and in each espeak-ng voice.
pub fn clips(tts: &TtsService, phrases: &[&str]) -> Vec<Clip> {
    let mut clips = Vec::new();
    for text in phrases {
        clips.push(piper(tts, text));
        for (voice, speed) in ESPEAK_VOICES {
            clips.push(espeak(text, voice, *speed));
        }
    }
    clips
}

/// 16-bit samples as whisper and Silero take them: floats in -1..1.
pub fn to_f32(samples: &[i16]) -> Vec<f32> {
    samples.iter().map(|&s| f32::from(s) / 32_768.0).collect()
}

/// A command in an espeak-ng voice as the WER bench (benches/wer.rs) makes its clean clips: at
/// 16 kHz, trimmed, with 250 ms of silence before and after.
pub fn espeak_command(spoken: &str, voice: &str, wpm: u32) -> Vec<i16> {
    let speech = espeak(spoken, voice, wpm).to_16k();
    let mut audio = silence(16_000, 250);
    audio.extend(trim_silence(speech));
    audio.extend(silence(16_000, 250));
    audio
}

/// `ms` of digital silence at `rate`.
pub fn silence(rate: u32, ms: u64) -> Vec<i16> {
    vec![0; (u64::from(rate) * ms / 1000) as usize]
}

/// Drops the silence (under 1 % of the loudest sample) before and after speech in 16 kHz
/// `samples`, keeping 30 ms, as the WER bench's corpus does.
pub fn trim_silence(samples: Vec<i16>) -> Vec<i16> {
    let loudest = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    let quiet = loudest / 100;
    let keep = (16_000 / 1000 * 30) as usize;
    let Some(first) = samples.iter().position(|s| s.unsigned_abs() > quiet) else {
        return samples;
    };
    let last = samples
        .iter()
        .rposition(|s| s.unsigned_abs() > quiet)
        .unwrap();
    samples[first.saturating_sub(keep)..(last + keep).min(samples.len())].to_vec()
}

/// xorshift64*: deterministic noise.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Whether some phrase of 3 or more words comes twice in a row, or of 1 or 2 words three
/// times ("pve pve pve").
pub fn loops(words: &[String]) -> bool {
    let repeated = |n: usize, times: usize| {
        words.len() >= n * times
            && (0..=words.len() - n * times)
                .any(|i| (1..times).all(|t| words[i..i + n] == words[i + t * n..i + (t + 1) * n]))
    };
    (3..=words.len() / 2).any(|n| repeated(n, 2)) || repeated(1, 3) || repeated(2, 3)
}
