//! A loaded Piper voice: text to phonemes with espeak-ng (as piper-rs does), phonemes to audio
//! with ONNX Runtime, decoded in pieces so the first audio of a sentence is out early.
//!
//! The voice model is cut before its decoder ([`super::split`]). For a sentence, the front
//! computes the latent of the whole sentence (so its prosody is the same as in one piece), and
//! the decoder turns it into audio piece by piece: a short first piece, then pieces that grow
//! with the audio already out ([`pieces`]). Each piece is decoded with [`Voice::pad`] frames of
//! context on either side, so its samples are those of decoding the sentence whole. When a
//! voice loads, the pieces are checked against the whole decode; a voice that fails the check,
//! or cannot be cut, is run whole (slower to its first audio, same sound).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use ort::session::{RunOptions, Session, SessionInputValue};
use ort::value::TensorRef;
use tracing::{info, warn};

use super::split;
use super::voices::VoiceInfo;

/// Latent frames in the first piece of a sentence: 12 × 256 samples = 139 ms at 22.05 kHz, three
/// 1024-sample chunks.
pub const FIRST_PIECE: usize = 12;
/// A later piece has at most this many times the frames already decoded. Decoding runs at about
/// 1/30 of real time on two cores, so a piece is ready well before the audio before it has
/// played, with few boundaries (each costs `2 × pad` frames of extra decoding); past the first
/// piece [`MAX_PIECE`] is the tighter bound.
const GROWTH: usize = 16;
/// The most frames decoded at once (0.74 s of audio at 22.05 kHz): a longer sentence is decoded
/// in pieces even when it is not urgent, so the decoder's memory does not grow with it. A
/// piece's activations are what a synthesis adds to the process (each upsampling stage holds a
/// few tensors of `frames × 256 × 32` floats): 512 frames held ~36 MB more than 128, and 128
/// ~16 MB more than 64 at the peak (`scripts/bench.sh memory`), for more decoding at the
/// boundaries (2 × 10 frames of context each).
pub const MAX_PIECE: usize = 64;
/// Context frames tried on either side of a piece, smallest first. Medium voices need 10: their
/// pieces then match the whole decode to 1e-6, while 8 leaves differences of 3e-3.
const PADS: [usize; 4] = [10, 12, 16, 24];
/// How far a piece's samples may be from the whole decode's: 2e-4 is under 7 steps of 16-bit
/// audio (-74 dB), far below hearing.
const TOLERANCE: f32 = 2e-4;
/// The sentence the pieces are checked on when a voice loads: about [`MAX_PIECE`] frames long, so
/// its whole decode does not make ONNX Runtime keep more memory than replies need.
const CHECK_TEXT: &str = "The backup finished on time.";
/// The pieces of the check: boundaries close together, one of them near the start.
const CHECK_PIECES: [usize; 3] = [FIRST_PIECE, 3 * FIRST_PIECE, 7 * FIRST_PIECE];

/// Piper's symbols: beginning and end of the utterance, and the pad after every phoneme.
const BOS: char = '^';
const EOS: char = '$';
const PAD: char = '_';

/// espeak-ng has one global state: one phonemization at a time in the whole process.
static ESPEAK: Mutex<()> = Mutex::new(());

/// The voice's scales for one synthesis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scales {
    /// Voice variation.
    pub noise: f32,
    /// Speaking pace (larger is slower).
    pub length: f32,
    /// Phoneme length variation.
    pub noise_w: f32,
}

/// How a sentence's audio is handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// As soon as possible: in pieces (the listener is waiting).
    Pieces,
    /// In one piece (audio before it is still playing): no boundary costs.
    Whole,
}

enum Model {
    Whole(Session),
    Split {
        front: Session,
        decoder: Session,
        latent: String,
        passed: Vec<String>,
    },
}

/// A loaded Piper voice. Not shareable: one synthesis at a time (the caller holds it in a mutex).
pub struct Voice {
    config: piper_rs::ModelConfig,
    model: Model,
    /// Context frames each side of a piece; `None` decodes sentences whole.
    pad: Option<usize>,
}

impl std::fmt::Debug for Voice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Voice")
            .field("split", &matches!(self.model, Model::Split { .. }))
            .field("pad", &self.pad)
            .finish_non_exhaustive()
    }
}

/// The two parts of a cut voice, in temporary files for ONNX Runtime to load.
fn write_parts(split: &split::Split<'_>) -> Result<[tempfile::NamedTempFile; 2], String> {
    use std::io::Write;
    let part = |name: &str, write: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| {
        let dir = std::env::temp_dir();
        let mut file = tempfile::Builder::new()
            .prefix(&format!("jarvis-voice-{name}-"))
            .suffix(".onnx")
            .tempfile_in(&dir)
            .map_err(|err| format!("cannot write to {}: {err}", dir.display()))?;
        let mut out = std::io::BufWriter::new(file.as_file_mut());
        write(&mut out)
            .and_then(|()| out.flush())
            .map_err(|err| format!("cannot write to {}: {err}", dir.display()))?;
        drop(out);
        Ok::<_, String>(file)
    };
    Ok([
        part("front", &|out| split.write_front(out))?,
        part("decoder", &|out| split.write_decoder(out))?,
    ])
}

impl Voice {
    /// Loads a voice, cuts it before the decoder and checks decoding in pieces.
    ///
    /// # Errors
    /// An unreadable configuration or model, or a model ONNX Runtime refuses.
    pub fn load(info: &VoiceInfo) -> Result<Self, String> {
        Self::load_as(info, true)
    }

    /// Loads a voice as one model, as Piper runs it: every sentence's audio comes out whole.
    /// For comparisons, and the fallback for models that cannot be cut.
    ///
    /// # Errors
    /// An unreadable configuration or model, or a model ONNX Runtime refuses.
    pub fn load_whole(info: &VoiceInfo) -> Result<Self, String> {
        Self::load_as(info, false)
    }

    fn load_as(info: &VoiceInfo, cut: bool) -> Result<Self, String> {
        let file = std::fs::File::open(&info.config)
            .map_err(|err| format!("{}: {err}", info.config.display()))?;
        let config: piper_rs::ModelConfig = serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|err| format!("{}: {err}", info.config.display()))?;
        let parts = if cut {
            std::fs::read(&info.model)
                .map_err(|err| format!("{}: {err}", info.model.display()))
                .and_then(|bytes| {
                    let split = split::split(&bytes)?;
                    Ok((write_parts(&split)?, split.latent, split.passed))
                })
        } else {
            Err("loaded whole on request".into())
        };
        let model = match parts {
            Ok(([front, decoder], latent, passed)) => Model::Split {
                front: crate::onnx::pooled_session(front.path())
                    .map_err(|err| format!("{} (front): {err}", info.model.display()))?,
                decoder: crate::onnx::pooled_session(decoder.path())
                    .map_err(|err| format!("{} (decoder): {err}", info.model.display()))?,
                latent,
                passed,
            },
            Err(why) => {
                if cut {
                    warn!(voice = %info.name, %why, "voice not cut before its decoder: each sentence's audio comes out whole");
                }
                Model::Whole(
                    crate::onnx::pooled_session(&info.model)
                        .map_err(|err| format!("{}: {err}", info.model.display()))?,
                )
            }
        };
        let mut voice = Self {
            config,
            model,
            pad: None,
        };
        if matches!(voice.model, Model::Split { .. }) {
            match voice.check_pieces() {
                Ok(pad) => {
                    info!(voice = %info.name, pad, "audio decoded in pieces");
                    voice.pad = Some(pad);
                }
                Err(why) => warn!(
                    voice = %info.name,
                    %why,
                    "decoding in pieces does not match the whole decode: each sentence's audio comes out whole"
                ),
            }
        }
        Ok(voice)
    }

    /// Whether sentences are decoded in pieces, and with how many frames of context.
    pub fn pad(&self) -> Option<usize> {
        self.pad
    }

    /// Synthesizes one sentence. `sink` gets the audio (-1.0..=1.0 at the voice's rate) piece by
    /// piece and returns `false` to stop (the listener left); nothing more is computed then.
    ///
    /// # Errors
    /// Phonemization or ONNX Runtime failures.
    pub fn speak(
        &mut self,
        text: &str,
        speaker: Option<i64>,
        scales: Scales,
        delivery: Delivery,
        sink: &mut dyn FnMut(&[f32]) -> bool,
    ) -> Result<(), String> {
        let ids = self.phoneme_ids(text)?;
        if ids.len() <= 2 {
            return Ok(()); // nothing speakable
        }
        let pad = self.pad;
        let speaker = speaker.unwrap_or(0);
        let multi = self.config.num_speakers > 1;
        match &mut self.model {
            Model::Whole(session) => {
                let outputs = run_front(session, &ids, scales, multi.then_some(speaker))?;
                let (_, audio) = outputs[0]
                    .try_extract_tensor::<f32>()
                    .map_err(|err| err.to_string())?;
                sink(audio);
                Ok(())
            }
            Model::Split {
                front,
                decoder,
                latent,
                passed,
            } => {
                let latent = Latent::compute(
                    front,
                    &ids,
                    scales,
                    multi.then_some(speaker),
                    latent,
                    passed,
                )?;
                let ranges = match (pad, delivery) {
                    (Some(_), Delivery::Pieces) => pieces(latent.frames),
                    (Some(_), Delivery::Whole) => at_most(latent.frames, MAX_PIECE),
                    (None, _) => std::iter::once(0..latent.frames).collect(),
                };
                for range in ranges {
                    let audio = latent.decode(decoder, range, pad.unwrap_or(0))?;
                    if !sink(&audio) {
                        break;
                    }
                }
                Ok(())
            }
        }
    }

    /// Piper's phoneme ids: BOS, then each phoneme followed by PAD, then EOS (piper-phonemize's
    /// order). Phonemes the voice does not know are skipped.
    fn phoneme_ids(&self, text: &str) -> Result<Vec<i64>, String> {
        let phonemes = {
            let _espeak = ESPEAK.lock().unwrap_or_else(PoisonError::into_inner);
            espeak_rs::text_to_phonemes(text, &self.config.espeak.voice, None)
                .map_err(|err| err.to_string())?
                .join(" ")
        };
        let map = &self.config.phoneme_id_map;
        let id = |c: char| map.get(&c).map(Vec::as_slice).unwrap_or_default();
        let mut ids = Vec::with_capacity(2 * phonemes.len() + 3);
        ids.extend_from_slice(id(BOS));
        ids.extend_from_slice(id(PAD));
        for c in phonemes.chars() {
            let known = id(c);
            if !known.is_empty() {
                ids.extend_from_slice(known);
                ids.extend_from_slice(id(PAD));
            }
        }
        ids.extend_from_slice(id(EOS));
        Ok(ids)
    }

    /// Decodes [`CHECK_TEXT`] whole and in pieces with each of [`PADS`], and returns the first
    /// pad whose pieces match the whole decode. Also warms the sessions up, so the first
    /// request does not pay for ONNX Runtime's first-run allocations.
    fn check_pieces(&mut self) -> Result<usize, String> {
        let ids = self.phoneme_ids(CHECK_TEXT)?;
        let own = &self.config.inference;
        let scales = Scales {
            noise: own.noise_scale,
            length: own.length_scale,
            noise_w: own.noise_w,
        };
        let multi = (self.config.num_speakers > 1).then_some(0);
        let Model::Split {
            front,
            decoder,
            latent,
            passed,
        } = &mut self.model
        else {
            return Err("the voice is not cut".into());
        };
        let latent = Latent::compute(front, &ids, scales, multi, latent, passed)?;
        let whole = latent.decode(decoder, 0..latent.frames, 0)?;
        let mut worst = f32::NAN;
        let mut bounds: Vec<usize> = CHECK_PIECES
            .iter()
            .copied()
            .filter(|&end| end < latent.frames)
            .collect();
        bounds.push(latent.frames);
        let mut ranges = Vec::new();
        let mut start = 0;
        for end in bounds {
            ranges.push(start..end);
            start = end;
        }
        if ranges.len() < 2 {
            return Err(format!(
                "the check sentence has only {} frames",
                latent.frames
            ));
        }
        for pad in PADS {
            let mut joined = Vec::with_capacity(whole.len());
            for range in ranges.clone() {
                joined.extend(latent.decode(decoder, range, pad)?);
            }
            if joined.len() != whole.len() {
                return Err(format!(
                    "{} samples in pieces, {} whole",
                    joined.len(),
                    whole.len()
                ));
            }
            worst = joined
                .iter()
                .zip(&whole)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            if worst <= TOLERANCE {
                return Ok(pad);
            }
        }
        Err(format!(
            "largest difference {worst:.5} with {} frames of context",
            PADS[PADS.len() - 1]
        ))
    }
}

/// Options for every run of a voice's sessions: give the arena's extensions back after each
/// run. ONNX Runtime's arena otherwise keeps the most a run ever needed (the whole-sentence
/// decode that checks the pieces at load, the longest sentence since) for the life of the
/// process: ~30 MB a voice held between sentences. Fresh pages per run cost less than a
/// millisecond against the tens of milliseconds a piece takes.
fn run_options() -> Result<&'static RunOptions, String> {
    static OPTIONS: std::sync::OnceLock<Result<RunOptions, String>> = std::sync::OnceLock::new();
    OPTIONS
        .get_or_init(|| {
            let mut options = RunOptions::new().map_err(|err| err.to_string())?;
            options
                .add_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
                .map_err(|err| err.to_string())?;
            Ok(options)
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn run_front<'s>(
    session: &'s mut Session,
    ids: &[i64],
    scales: Scales,
    speaker: Option<i64>,
) -> Result<ort::session::SessionOutputs<'s>, String> {
    let lengths = [ids.len() as i64];
    let scales = [scales.noise, scales.length, scales.noise_w];
    let ids = TensorRef::from_array_view(([1usize, ids.len()], ids)).map_err(|e| e.to_string())?;
    let lengths =
        TensorRef::from_array_view(([1usize], &lengths[..])).map_err(|e| e.to_string())?;
    let scales = TensorRef::from_array_view(([3usize], &scales[..])).map_err(|e| e.to_string())?;
    match speaker {
        Some(speaker) => {
            let speaker = [speaker];
            let speaker =
                TensorRef::from_array_view(([1usize], &speaker[..])).map_err(|e| e.to_string())?;
            session.run_with_options(ort::inputs![ids, lengths, scales, speaker], run_options()?)
        }
        None => session.run_with_options(ort::inputs![ids, lengths, scales], run_options()?),
    }
    .map_err(|err| format!("inference failed: {err}"))
}

/// A sentence's latent, copied out of the front's outputs.
struct Latent<'n> {
    name: &'n str,
    /// `[channels][frames]`, row-major.
    data: Vec<f32>,
    channels: usize,
    frames: usize,
    /// The other decoder inputs: name, shape, values.
    passed: Vec<(&'n str, Vec<i64>, Vec<f32>)>,
}

impl<'n> Latent<'n> {
    fn compute(
        front: &mut Session,
        ids: &[i64],
        scales: Scales,
        speaker: Option<i64>,
        name: &'n str,
        passed: &'n [String],
    ) -> Result<Self, String> {
        let outputs = run_front(front, ids, scales, speaker)?;
        let extract = |tensor: &str| -> Result<(Vec<i64>, Vec<f32>), String> {
            let value = outputs
                .get(tensor)
                .ok_or_else(|| format!("the front has no output {tensor}"))?;
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|err| format!("{tensor}: {err}"))?;
            Ok((shape.to_vec(), data.to_vec()))
        };
        let (shape, data) = extract(name)?;
        let [1, channels, frames] = shape[..] else {
            return Err(format!(
                "latent of shape {shape:?}, not [1, channels, frames]"
            ));
        };
        let passed = passed
            .iter()
            .map(|tensor| extract(tensor).map(|(shape, data)| (tensor.as_str(), shape, data)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name,
            data,
            channels: usize::try_from(channels).map_err(|_| "negative channels")?,
            frames: usize::try_from(frames).map_err(|_| "negative frames")?,
            passed,
        })
    }

    /// The audio of latent frames `range`, decoded with up to `pad` frames of context each side.
    fn decode(
        &self,
        decoder: &mut Session,
        range: Range<usize>,
        pad: usize,
    ) -> Result<Vec<f32>, String> {
        if range.is_empty() || range.end > self.frames {
            return Ok(Vec::new());
        }
        let start = range.start.saturating_sub(pad);
        let end = (range.end + pad).min(self.frames);
        let width = end - start;
        let mut window = Vec::with_capacity(self.channels * width);
        for row in self.data.chunks_exact(self.frames) {
            window.extend_from_slice(&row[start..end]);
        }
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(1 + self.passed.len());
        let latent = TensorRef::from_array_view(([1usize, self.channels, width], &window[..]))
            .map_err(|err| err.to_string())?;
        inputs.push((Cow::Borrowed(self.name), latent.into()));
        for (name, shape, data) in &self.passed {
            let value = TensorRef::from_array_view((shape.clone(), &data[..]))
                .map_err(|err| err.to_string())?;
            inputs.push((Cow::Borrowed(*name), value.into()));
        }
        let outputs = decoder
            .run_with_options(inputs, run_options()?)
            .map_err(|err| format!("decoding failed: {err}"))?;
        let (_, audio) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|err| err.to_string())?;
        if width == 0 || audio.len() % width != 0 {
            return Err(format!("{} samples for {width} frames", audio.len()));
        }
        let hop = audio.len() / width;
        let from = (range.start - start) * hop;
        let to = from + range.len() * hop;
        Ok(audio[from..to].to_vec())
    }
}

/// The pieces a latent of `frames` frames is decoded in when the listener is waiting:
/// [`FIRST_PIECE`] frames, then pieces of at most [`GROWTH`] times the frames before them (and
/// at most [`MAX_PIECE`]). A remainder shorter than the first piece joins the piece before it.
pub fn pieces(frames: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < frames {
        let size = if start == 0 {
            FIRST_PIECE
        } else {
            (start * GROWTH).min(MAX_PIECE)
        };
        let mut end = (start + size).min(frames);
        if frames - end < FIRST_PIECE {
            end = frames;
        }
        ranges.push(start..end);
        start = end;
    }
    ranges
}

/// Pieces of at most `max` frames, as even as can be.
fn at_most(frames: usize, max: usize) -> Vec<Range<usize>> {
    let count = frames.div_ceil(max.max(1)).max(1);
    (0..count)
        .map(|i| i * frames / count..(i + 1) * frames / count)
        .filter(|range| !range.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_start_short_grow_and_cover_every_frame_once() {
        assert_eq!(pieces(0), Vec::<Range<usize>>::new());
        assert_eq!(pieces(5), vec![0..5]);
        assert_eq!(
            pieces(23),
            vec![0..23],
            "a short remainder joins the first piece"
        );
        assert_eq!(pieces(24), vec![0..12, 12..24]);
        assert_eq!(pieces(80), vec![0..12, 12..80]);
        assert_eq!(pieces(150), vec![0..12, 12..76, 76..150]);
        assert_eq!(pieces(183), vec![0..12, 12..76, 76..140, 140..183]);
        let long = pieces(1000);
        assert_eq!(long[..3], [0..12, 12..76, 76..140]);
        assert_eq!(long.last(), Some(&(972..1000)));
        for frames in 0..3000 {
            let ranges = pieces(frames);
            let mut next = 0;
            for (i, range) in ranges.iter().enumerate() {
                assert_eq!(range.start, next);
                assert!(range.end > range.start);
                if i > 0 {
                    assert!(range.len() <= range.start * GROWTH + FIRST_PIECE);
                    assert!(range.len() < MAX_PIECE + FIRST_PIECE);
                }
                next = range.end;
            }
            assert_eq!(next, frames);
        }
    }

    #[test]
    fn a_long_sentence_is_decoded_in_even_pieces_of_bounded_size() {
        assert_eq!(at_most(0, 512), Vec::<Range<usize>>::new());
        assert_eq!(at_most(100, 512), vec![0..100]);
        assert_eq!(at_most(512, 512), vec![0..512]);
        assert_eq!(at_most(513, 512), vec![0..256, 256..513]);
        for frames in 1..5000 {
            let ranges = at_most(frames, 512);
            assert_eq!(ranges.first().map(|r| r.start), Some(0));
            assert_eq!(ranges.last().map(|r| r.end), Some(frames));
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
            assert!(ranges.iter().all(|r| !r.is_empty() && r.len() <= 512));
        }
    }
}
