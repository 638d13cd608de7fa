//! Speech-to-text word error rate over Wyoming with the real tiny.en model, on a corpus of
//! homelab commands and everyday sentences (`benches/data/wer/`) spoken by Piper and espeak-ng
//! voices at two speeds, some with noise. Prints figures; asserts nothing. Run with
//! `cargo bench --bench wer` or `scripts/bench.sh wer` (models from `JARVIS_MODELS_DIR`,
//! default `../shared/models`; espeak-ng must be installed).
//!
//! 1. The clips are generated once into `target/wer-corpus/<voice>/<id>.wav` with the reference
//!    text beside each (`<id>.txt`): the layout `wyoming-bench stt --corpus` reads. A clip is
//!    made again only when its line or the generator changed.
//! 2. Jarvis runs in-process with speech-to-text and a fake Proxmox API serving the homelab
//!    cluster (so the cluster's names are whisper's vocabulary), once per server variant. Each
//!    clip goes over its own Wyoming connection as `wyoming-bench stt` sends it: `transcribe`,
//!    `audio-start`, the audio at once in chunks of 1024 samples, 0.5 s of zeros, `audio-stop`;
//!    the time is request → `transcript`.
//! 3. WER (substitutions, insertions, deletions over reference words) per voice, per set and in
//!    all, after lowercasing, dropping punctuation and writing numbers as digits on both sides.
//!    Strict keeps names as the cluster writes them ("media-server", "agent1"); loose also
//!    accepts them with spaces, hyphens or letters apart ("media server", "agent 1", "p v e").
//!    Then latency per set, the worst clips, and counts of loops and inserted words.
//!
//! Environment:
//! - `JARVIS_WER_VARIANTS=default,free,ctx=1500,penalty=30,beams=1,silence=120`: the server variants
//!   to run (see [`variant`]); default `default`.
//! - `JARVIS_WER_LIMIT=N`: only N clips per voice, spread over the corpus.
//! - `JARVIS_WER_CLIPS=homelab-077,piper-joe-1.0/everyday-001`: only the clips whose
//!   `voice/id` contains one of these (to look at a few clips' debug log).
//! - `JARVIS_WER_GUESTS=N`: N more guests in the cluster, named as the soak's (a large cluster:
//!   whisper's prompt holds only some names, and there is no speech grammar past 2000 names).
//! - `JARVIS_WER_ALL=1`: list every clip with an error, not only the worst ten.
//! - `JARVIS_WER_REALTIME=1`: send the audio paced at real time, then 1 s more of silence and
//!   `audio-stop`; the time is end of speech → `transcript` (the endpointer may answer first).
//! - `JARVIS_WER_CHUNK_MS=N`: in real time, chunks of N ms (default 64: 1024 samples, as
//!   `wyoming-bench` sends them; 10 is what Home Assistant's assist pipeline sends).
//! - `JARVIS_WER_REFERENCE=host:port`: also run the corpus against another Wyoming server
//!   (e.g. wyoming-whisper-cpp), with the same client.
//! - `JARVIS_WER_WYOMING_BENCH=path/to/wyoming-bench` (default
//!   `.cache/wyoming-bench-venv/bin/wyoming-bench` when it exists; `0` skips it): also run
//!   `wyoming-bench stt` on the same clips against the first variant (and the reference).
//! - `JARVIS_BENCH_THREADS=N`: whisper threads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs,
    dead_code,
    unreachable_pub
)]

mod common;
#[path = "../tests/common/fake_proxmox.rs"]
mod fake_proxmox;
#[path = "../tests/common/wake_clips.rs"]
mod wake_clips;
use wake_clips::{Rng, loops};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::bench_config;
use fake_proxmox::{FakeCluster, FakeProxmox};
use jarvis::brain::{Channel, Command};
use jarvis::config::Config;
use jarvis::tts::TtsService;
use wyoming::asr::Transcribe;
use wyoming::audio::{AudioChunk, AudioFormat, AudioStart, AudioStop};
use wyoming::{Client, Event};

const FORMAT: AudioFormat = AudioFormat::HA_MIC;
const RATE: u32 = 16_000;
/// Samples per `audio-chunk`, as `wyoming-bench stt` sends them.
const CHUNK_SAMPLES: usize = 1024;

/// Samples per `audio-chunk` in real time (`JARVIS_WER_CHUNK_MS`; default [`CHUNK_SAMPLES`]).
fn realtime_chunk_samples() -> usize {
    std::env::var("JARVIS_WER_CHUNK_MS")
        .ok()
        .and_then(|ms| ms.parse::<usize>().ok())
        .filter(|ms| (1..=1000).contains(ms))
        .map_or(CHUNK_SAMPLES, |ms| ms * RATE as usize / 1000)
}
/// Zeros after the audio before `audio-stop`, as `wyoming-bench stt` sends them.
const TRAILING_SILENCE_MS: u64 = 500;
/// Paced silence after the audio in real-time mode, before `audio-stop`.
const REALTIME_SILENCE_MS: u64 = 1000;
/// A `|` in a spoken line.
const PAUSE_MS: u64 = 600;
/// Silence before and after each clip's speech.
const PAD_MS: u64 = 250;
/// Signal-to-noise ratio of the noisy voices.
const SNR_DB: f64 = 15.0;
/// Changes when the clips would come out differently: every clip is then made again.
const GENERATOR: &str = "wer-clips 2";
/// Longest wait for one transcript.
const CLIP_TIMEOUT: Duration = Duration::from_secs(60);

/// The corpus files, by set.
const SETS: [&str; 2] = ["homelab", "everyday"];

/// Who speaks a voice's clips.
#[derive(Debug, Clone, Copy)]
enum Speaker {
    /// The Piper joe voice through Jarvis's own text-to-speech, at a `length_scale` (and no
    /// noise, so that it is deterministic).
    Piper(f32),
    /// An espeak-ng voice at words per minute.
    Espeak(&'static str, u32),
}

/// Noise mixed into a voice's clips at [`SNR_DB`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Noise {
    Clean,
    /// White noise.
    White,
    /// Four espeak-ng voices saying other everyday sentences at once.
    Babble,
}

#[derive(Debug)]
struct Voice {
    name: &'static str,
    speaker: Speaker,
    noise: Noise,
    /// Every line (1) or every n-th line.
    every: usize,
}

impl Voice {
    const fn clean(name: &'static str, speaker: Speaker) -> Self {
        Self {
            name,
            speaker,
            noise: Noise::Clean,
            every: 1,
        }
    }

    /// Every third line with `noise`.
    const fn noisy(name: &'static str, speaker: Speaker, noise: Noise) -> Self {
        Self {
            name,
            speaker,
            noise,
            every: 3,
        }
    }
}

const VOICES: &[Voice] = &[
    Voice::clean("piper-joe-1.0", Speaker::Piper(1.0)),
    Voice::clean("piper-joe-1.2", Speaker::Piper(1.2)),
    Voice::clean("espeak-en-us-150", Speaker::Espeak("en-us", 150)),
    Voice::clean("espeak-en-us-190", Speaker::Espeak("en-us", 190)),
    Voice::clean("espeak-en-gb-140", Speaker::Espeak("en-gb", 140)),
    Voice::clean("espeak-en-gb-180", Speaker::Espeak("en-gb", 180)),
    Voice::clean("espeak-en-us+f3-150", Speaker::Espeak("en-us+f3", 150)),
    Voice::clean("espeak-en-us+f3-190", Speaker::Espeak("en-us+f3", 190)),
    Voice::noisy("piper-joe-1.0-white15db", Speaker::Piper(1.0), Noise::White),
    Voice::noisy(
        "espeak-en-us-150-babble15db",
        Speaker::Espeak("en-us", 150),
        Noise::Babble,
    ),
];

/// A change to the server's settings.
type Apply = Box<dyn Fn(&mut Config)>;

/// A server variant by its label in `JARVIS_WER_VARIANTS`: `default`; `free` (no grammar-guided
/// decoding, `stt.grammar.enabled = false`); `ctx=N` (`stt.min_audio_ctx = N`); `penalty=N`
/// (`stt.grammar.penalty = N`, how hard the grammar bends the guided decode); `beams=N`
/// (`stt.grammar.beams = N`, the guided decode's beams, 1 for greedy); `silence=N`
/// (`stt.vad.min_silence_ms = N`, the silence after a homelab command, with
/// `JARVIS_WER_REALTIME=1`); `sentence=N` (`stt.vad.sentence_silence_ms = N`, after any other
/// whole sentence); or several joined by `+`
/// (`free+ctx=1500`). A new variant is one more arm.
fn variant(label: &str) -> Option<Apply> {
    let parts: Vec<Apply> = label.split('+').map(one_variant).collect::<Option<_>>()?;
    Some(Box::new(move |config| {
        parts.iter().for_each(|apply| apply(config))
    }))
}

fn one_variant(label: &str) -> Option<Apply> {
    Some(match label {
        "default" => Box::new(|_| {}),
        "free" => Box::new(|config| config.stt.grammar.enabled = false),
        _ => match label.split_once('=')? {
            ("ctx", n) => {
                let ctx: usize = n.parse().ok()?;
                Box::new(move |config| config.stt.min_audio_ctx = ctx)
            }
            ("penalty", n) => {
                let penalty: f32 = n.parse().ok()?;
                Box::new(move |config| config.stt.grammar.penalty = penalty)
            }
            ("beams", n) => {
                let beams: usize = n.parse().ok()?;
                Box::new(move |config| config.stt.grammar.beams = beams)
            }
            ("silence", n) => {
                let ms: u32 = n.parse().ok()?;
                Box::new(move |config| config.stt.vad.min_silence_ms = ms)
            }
            ("sentence", n) => {
                let ms: u32 = n.parse().ok()?;
                Box::new(move |config| config.stt.vad.sentence_silence_ms = ms)
            }
            _ => return None,
        },
    })
}

// --- the corpus -------------------------------------------------------------------------------

/// One line of a corpus file.
#[derive(Debug, Clone)]
struct Line {
    set: &'static str,
    /// `homelab-001`: the set and the line's place among the set's sentences.
    id: String,
    /// What the voice says; `|` is a pause.
    spoken: String,
    /// What the transcript should read.
    written: String,
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/data/wer")
}

/// The sentences of every set: `spoken => written`, or one text for both (without its `|`).
fn corpus() -> Vec<Line> {
    let mut lines = Vec::new();
    for set in SETS {
        let text = std::fs::read_to_string(data_dir().join(format!("{set}.txt"))).unwrap();
        let sentences = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        for (i, sentence) in sentences.enumerate() {
            let (spoken, written) = match sentence.split_once("=>") {
                Some((spoken, written)) => (spoken.trim(), written.trim().to_owned()),
                None => (sentence, sentence.replace(" |", "").replace('|', "")),
            };
            assert!(!written.contains('|'), "{set}: a pause in {written:?}");
            lines.push(Line {
                set,
                id: format!("{set}-{:03}", i + 1),
                spoken: spoken.to_owned(),
                written,
            });
        }
    }
    lines
}

/// Where the clips are kept: `target/wer-corpus`.
fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/wer-corpus")
}

/// One clip of the corpus, at 16 kHz.
#[derive(Debug, Clone)]
struct Clip {
    voice: &'static str,
    set: &'static str,
    id: String,
    reference: String,
    samples: Vec<i16>,
    /// Where speech ends, in ms from the start (measured before noise is mixed in).
    speech_end_ms: u64,
}

/// Makes what is missing or stale under `dir` and loads every clip of `lines` in `voices`;
/// removes clips whose line is gone.
fn ensure_clips(dir: &Path, lines: &[Line], voices: &[Voice]) -> Vec<Clip> {
    let mut maker = Maker::default();
    let mut clips = Vec::new();
    let mut made = 0;
    // Voices no longer in the list would still be read by `wyoming-bench`.
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && !voices.iter().any(|v| v.name == name) {
            std::fs::remove_dir_all(&path).unwrap();
        }
    }
    for voice in voices {
        let voice_dir = dir.join(voice.name);
        std::fs::create_dir_all(&voice_dir).unwrap();
        let mine: Vec<&Line> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| i % voice.every == 0)
            .map(|(_, l)| l)
            .collect();
        for entry in std::fs::read_dir(&voice_dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if !mine.iter().any(|l| l.id == stem) {
                std::fs::remove_file(&path).unwrap();
            }
        }
        for line in mine {
            let wav = voice_dir.join(format!("{}.wav", line.id));
            let txt = voice_dir.join(format!("{}.txt", line.id));
            let meta = voice_dir.join(format!("{}.meta", line.id));
            let stamp = format!("{GENERATOR}\n{}\n", line.spoken);
            let cached = std::fs::read_to_string(&meta).ok().and_then(|m| {
                let end = m.strip_prefix(&stamp)?.trim().parse::<u64>().ok()?;
                (wav.exists() && std::fs::read_to_string(&txt).ok()? == line.written).then_some(end)
            });
            let (samples, speech_end_ms) = match cached {
                Some(end) => (wake_clips::read_wav(&wav).1, end),
                None => {
                    let (samples, end) = maker.clip(voice, line, lines);
                    wake_clips::write_wav(&wav, RATE, &samples);
                    std::fs::write(&txt, &line.written).unwrap();
                    std::fs::write(&meta, format!("{stamp}{end}\n")).unwrap();
                    made += 1;
                    (samples, end)
                }
            };
            clips.push(Clip {
                voice: voice.name,
                set: line.set,
                id: line.id.clone(),
                reference: line.written.clone(),
                samples,
                speech_end_ms,
            });
        }
    }
    if made > 0 {
        println!("generated {made} clips under {}", dir.display());
    }
    clips
}

/// Speaks clips: the Piper voice is loaded once per speed, when first needed.
#[derive(Default)]
struct Maker {
    piper: HashMap<u32, TtsService>,
}

impl Maker {
    /// One part of a line (between pauses) at 16 kHz.
    fn speak(&mut self, speaker: Speaker, text: &str) -> Vec<i16> {
        match speaker {
            Speaker::Espeak(voice, wpm) => wake_clips::espeak(text, voice, wpm).to_16k(),
            Speaker::Piper(length_scale) => {
                let tts = self.piper.entry(length_scale.to_bits()).or_insert_with(|| {
                    let mut config = bench_config();
                    config.tts.enabled = true;
                    config.tts.cache = false;
                    config.tts.length_scale = Some(length_scale);
                    TtsService::load(&config).unwrap()
                });
                wake_clips::piper(tts, text).to_16k()
            }
        }
    }

    /// The clip of `line` in `voice` and where its speech ends (ms).
    fn clip(&mut self, voice: &Voice, line: &Line, all: &[Line]) -> (Vec<i16>, u64) {
        let mut speech = Vec::new();
        for (i, part) in line.spoken.split('|').enumerate() {
            let part = wake_clips::trim_silence(self.speak(voice.speaker, part.trim()));
            if i > 0 {
                speech.extend(wake_clips::silence(RATE, PAUSE_MS));
            }
            speech.extend(part);
        }
        let mut clip = wake_clips::silence(RATE, PAD_MS);
        clip.extend(&speech);
        clip.extend(wake_clips::silence(RATE, PAD_MS));
        let end = wake_clips::speech_end_ms(RATE, &clip);
        let seed = fnv1a(&format!("{}/{}", voice.name, line.id));
        match voice.noise {
            Noise::Clean => {}
            Noise::White => {
                let mut rng = Rng(seed);
                let noise: Vec<f64> = (0..clip.len()).map(|_| rng.uniform() * 2.0 - 1.0).collect();
                mix(&mut clip, &speech, &noise);
            }
            Noise::Babble => {
                let noise = self.babble(clip.len(), seed, all);
                mix(&mut clip, &speech, &noise);
            }
        }
        (clip, end)
    }

    /// `len` samples of four espeak-ng voices talking at once (everyday sentences chosen by
    /// `seed`), each looped from its own offset.
    fn babble(&mut self, len: usize, seed: u64, all: &[Line]) -> Vec<f64> {
        let everyday: Vec<&Line> = all.iter().filter(|l| l.set == "everyday").collect();
        let mut rng = Rng(seed);
        let mut noise = vec![0.0; len];
        for voice in ["en-us+m3", "en-gb+f2", "en-us+m1", "en-gb-x-rp+f4"] {
            let line = everyday[(rng.next() % everyday.len() as u64) as usize];
            let talker = wake_clips::trim_silence(
                wake_clips::espeak(&line.spoken.replace('|', ""), voice, 170).to_16k(),
            );
            let offset = (rng.next() % talker.len() as u64) as usize;
            for (i, n) in noise.iter_mut().enumerate() {
                *n += f64::from(talker[(offset + i) % talker.len()]);
            }
        }
        noise
    }
}

/// Adds `noise` to `clip` at [`SNR_DB`] below the power of `speech`.
fn mix(clip: &mut [i16], speech: &[i16], noise: &[f64]) {
    let power = |s: &mut dyn Iterator<Item = f64>| {
        let (sum, n) = s.fold((0.0, 0usize), |(sum, n), x| (sum + x * x, n + 1));
        sum / n.max(1) as f64
    };
    let speech_power = power(&mut speech.iter().map(|&s| f64::from(s)));
    let noise_power = power(&mut noise.iter().copied());
    let gain = (speech_power / 10f64.powf(SNR_DB / 10.0) / noise_power.max(1e-9)).sqrt();
    for (s, n) in clip.iter_mut().zip(noise) {
        *s = (f64::from(*s) + n * gain).clamp(-32_768.0, 32_767.0) as i16;
    }
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// About `limit` clips of each voice, each set its share (at least one), spread evenly over
/// its lines, and each voice shifted along them: the voices together speak as many different
/// sentences as there are clips (up to the corpus), not the same few sentences each (a subset
/// of 70 clips was once 7 sentences, and flattered the figures).
fn limit_clips(clips: Vec<Clip>, limit: Option<usize>) -> Vec<Clip> {
    let Some(limit) = limit else { return clips };
    let count = |pick: &dyn Fn(&Clip) -> bool| clips.iter().filter(|c| pick(c)).count();
    let mut quota = HashMap::new();
    for (v, voice) in VOICES.iter().enumerate() {
        let all = count(&|c| c.voice == voice.name);
        for set in SETS {
            let n = count(&|c| c.voice == voice.name && c.set == set);
            let take = (limit * n).div_ceil(all.max(1)).clamp(1, n.max(1));
            // The stride between this voice's lines, shared out among the voices.
            let shift = v * n / (take * VOICES.len()).max(1);
            quota.insert((voice.name, set), (n, take, shift));
        }
    }
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    clips
        .into_iter()
        .filter(|c| {
            let i = seen.entry((c.voice, c.set)).or_default();
            let (n, take, shift) = quota[&(c.voice, c.set)];
            let keep = (0..take).any(|k| (k * n / take + shift) % n.max(1) == *i);
            *i += 1;
            keep
        })
        .collect()
}

/// The clips chosen by `JARVIS_WER_LIMIT` as a corpus of links for `wyoming-bench`.
fn link_corpus(clips: &[Clip], limit: usize) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/wer-subset-{limit}"));
    let _ = std::fs::remove_dir_all(&dir);
    for clip in clips {
        let voice_dir = dir.join(clip.voice);
        std::fs::create_dir_all(&voice_dir).unwrap();
        for ext in ["wav", "txt"] {
            let name = format!("{}.{ext}", clip.id);
            std::os::unix::fs::symlink(
                corpus_dir().join(clip.voice).join(&name),
                voice_dir.join(name),
            )
            .unwrap();
        }
    }
    dir
}

// --- scoring ----------------------------------------------------------------------------------

/// Lowercase words without punctuation (apostrophes dropped, hyphens inside words kept), spoken
/// numbers as digits: "What's VM one oh one?" → `whats vm 101`.
fn normalize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace(['\'', '’'], "");
    let cleaned: String = lower
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let words: Vec<String> = cleaned
        .split_whitespace()
        .map(|w| w.trim_matches('-').to_owned())
        .filter(|w| !w.is_empty())
        .collect();
    numbers_as_digits(words)
}

/// Runs of number words become the number they say, as the brain reads them.
fn numbers_as_digits(words: Vec<String>) -> Vec<String> {
    use jarvis::brain::numbers;
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let run = words[i..]
            .iter()
            .take_while(|w| numbers::is_number_word(w))
            .count();
        if run == 0 {
            out.push(words[i].clone());
            i += 1;
            continue;
        }
        match numbers::parse(&words[i..i + run]) {
            Some(n) => out.push(n.to_string()),
            None => out.extend(words[i..i + run].iter().cloned()),
        }
        i += run;
    }
    out
}

/// [`normalize`], then names are matched whatever their spaces and hyphens: words split at
/// hyphens and between letters and digits, then neighbours joined where together they spell
/// one of `names` ("media server" → `mediaserver`, "p v e" → `pve`, "agent 1" → `agent1`).
fn normalize_loose(text: &str, names: &[String]) -> Vec<String> {
    let mut words = Vec::new();
    for word in normalize(text) {
        for part in word.split('-') {
            let mut piece = String::new();
            for c in part.chars() {
                if let Some(last) = piece.chars().last() {
                    if last.is_ascii_digit() != c.is_ascii_digit() {
                        words.push(std::mem::take(&mut piece));
                    }
                }
                piece.push(c);
            }
            if !piece.is_empty() {
                words.push(piece);
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    'words: while i < words.len() {
        for n in (1..=5.min(words.len() - i)).rev() {
            let joined = words[i..i + n].concat();
            if names.contains(&joined) {
                out.push(joined);
                i += n;
                continue 'words;
            }
        }
        out.push(words[i].clone());
        i += 1;
    }
    out
}

/// The cluster's names as [`normalize_loose`] joins them: lowercase, letters and digits only.
fn loose_names(cluster: &FakeCluster) -> Vec<String> {
    cluster
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .chain(cluster.guests.iter().filter_map(|g| g.name.clone()))
        .chain(cluster.storages.iter().map(|s| s.storage.clone()))
        .map(|n| {
            n.to_lowercase()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect()
        })
        .collect()
}

/// Edits from `reference` to `hypothesis`.
#[derive(Debug, Clone, Copy, Default)]
struct Edits {
    sub: usize,
    ins: usize,
    del: usize,
    words: usize,
}

impl Edits {
    fn errors(&self) -> usize {
        self.sub + self.ins + self.del
    }

    fn wer(&self) -> f64 {
        self.errors() as f64 / self.words.max(1) as f64
    }

    fn add(&mut self, other: Edits) {
        self.sub += other.sub;
        self.ins += other.ins;
        self.del += other.del;
        self.words += other.words;
    }
}

/// Levenshtein alignment split into substitutions, insertions and deletions.
fn edits(reference: &[String], hypothesis: &[String]) -> Edits {
    let (n, m) = (reference.len(), hypothesis.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=m).collect();
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(reference[i - 1] != hypothesis[j - 1]);
            d[i][j] = (d[i - 1][j - 1] + cost)
                .min(d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1);
        }
    }
    let mut e = Edits {
        words: n,
        ..Edits::default()
    };
    let (mut i, mut j) = (n, m);
    while i > 0 || j > 0 {
        if i > 0 && j > 0 {
            let cost = usize::from(reference[i - 1] != hypothesis[j - 1]);
            if d[i][j] == d[i - 1][j - 1] + cost {
                e.sub += cost;
                i -= 1;
                j -= 1;
                continue;
            }
        }
        if j > 0 && d[i][j] == d[i][j - 1] + 1 {
            e.ins += 1;
            j -= 1;
        } else {
            e.del += 1;
            i -= 1;
        }
    }
    e
}

// --- measuring --------------------------------------------------------------------------------

/// What one clip came back as.
#[derive(Debug, Clone)]
struct Outcome {
    clip: usize,
    hypothesis: String,
    /// Batch: request → transcript. Real time: end of speech → transcript (negative when the
    /// transcript came first).
    ms: f64,
    failed: bool,
}

fn pcm(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

async fn transcript(
    reader: &mut wyoming::EventReader<tokio::net::tcp::OwnedReadHalf>,
) -> Result<String, String> {
    loop {
        match reader.read_event().await {
            Ok(Some(Event::Transcript(t))) => return Ok(t.text),
            Ok(Some(Event::Error(e))) => return Err(format!("error event: {}", e.text)),
            Ok(Some(_)) => {}
            Ok(None) => return Err("connection closed before the transcript".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// As `wyoming-bench stt` does: everything at once, 0.5 s of zeros, `audio-stop`; returns
/// (request → transcript in ms, text).
async fn batch(addr: SocketAddr, samples: &[i16]) -> Result<(f64, String), String> {
    let client = Client::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut reader, mut writer) = client.into_split();
    let mut audio = samples.to_vec();
    audio.extend(wake_clips::silence(RATE, TRAILING_SILENCE_MS));
    let started = Instant::now();
    let send = async {
        writer.write_event(Transcribe::default()).await?;
        writer.write_event(AudioStart::new(FORMAT, None)).await?;
        for chunk in audio.chunks(CHUNK_SAMPLES) {
            writer
                .write_event(AudioChunk::new(FORMAT, pcm(chunk), None))
                .await?;
        }
        writer.write_event(AudioStop::default()).await
    };
    send.await.map_err(|e| e.to_string())?;
    let text = transcript(&mut reader).await?;
    Ok((started.elapsed().as_secs_f64() * 1000.0, text))
}

/// Paced at real time, then [`REALTIME_SILENCE_MS`] of paced zeros and `audio-stop`; returns
/// (end of speech → transcript in ms, text).
async fn realtime(
    addr: SocketAddr,
    samples: &[i16],
    speech_end_ms: u64,
) -> Result<(f64, String), String> {
    let client = Client::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut reader, mut writer) = client.into_split();
    let mut audio = samples.to_vec();
    audio.extend(wake_clips::silence(RATE, REALTIME_SILENCE_MS));
    let chunk_samples = realtime_chunk_samples();
    let end_chunk = (speech_end_ms * u64::from(RATE) / 1000) as usize / chunk_samples;
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    let sender = tokio::spawn(async move {
        let mut ended = Some(ended_tx);
        writer.write_event(Transcribe::default()).await?;
        writer.write_event(AudioStart::new(FORMAT, None)).await?;
        let period = Duration::from_micros(chunk_samples as u64 * 1_000_000 / u64::from(RATE));
        let mut tick = tokio::time::interval(period);
        for (i, chunk) in audio.chunks(chunk_samples).enumerate() {
            tick.tick().await;
            writer
                .write_event(AudioChunk::new(FORMAT, pcm(chunk), None))
                .await?;
            if i >= end_chunk {
                if let Some(tx) = ended.take() {
                    // For a timeline against the server's debug log (JARVIS_BENCH_LOG).
                    tracing::debug!("bench: the chunk holding the end of speech is sent");
                    let _ = tx.send(Instant::now());
                }
            }
        }
        writer.write_event(AudioStop::default()).await?;
        // Keep the connection open for the transcript, as clients do: a closed write half
        // reads as a client that went away, whose decode is abandoned.
        std::future::pending::<()>().await;
        Ok::<(), wyoming::ProtocolError>(())
    });
    let text = transcript(&mut reader).await;
    let received = Instant::now();
    tracing::debug!("bench: transcript received");
    sender.abort();
    let text = text?;
    // No end yet: the transcript came before the end of speech was sent.
    let ms = match ended_rx.await {
        Ok(ended) if received >= ended => received.duration_since(ended).as_secs_f64() * 1000.0,
        Ok(ended) => -ended.duration_since(received).as_secs_f64() * 1000.0,
        Err(_) => -1.0,
    };
    Ok((ms, text))
}

/// Every clip against the server at `addr`, one at a time.
async fn run_clips(addr: SocketAddr, clips: &[Clip], real_time: bool) -> Vec<Outcome> {
    // One untimed request first: the model's first run is slower.
    let _ = batch(addr, &clips[0].samples).await;
    let mut outcomes = Vec::new();
    for (i, clip) in clips.iter().enumerate() {
        // For reading the server's debug log clip by clip (JARVIS_BENCH_LOG).
        tracing::debug!(clip = %format!("{}/{}", clip.voice, clip.id), reference = %clip.reference, "bench: clip");
        let result = if real_time {
            tokio::time::timeout(
                CLIP_TIMEOUT,
                realtime(addr, &clip.samples, clip.speech_end_ms),
            )
            .await
        } else {
            tokio::time::timeout(CLIP_TIMEOUT, batch(addr, &clip.samples)).await
        };
        let result = result.unwrap_or_else(|_| Err("timed out".into()));
        outcomes.push(match result {
            Ok((ms, hypothesis)) => Outcome {
                clip: i,
                hypothesis,
                ms,
                failed: false,
            },
            Err(e) => Outcome {
                clip: i,
                hypothesis: format!("<{e}>"),
                ms: f64::NAN,
                failed: true,
            },
        });
    }
    outcomes
}

// --- reporting --------------------------------------------------------------------------------

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn latency(values: impl Iterator<Item = f64>) -> String {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    format!(
        "median {:>5.0} ms  p95 {:>5.0} ms  (n = {})",
        percentile(&v, 0.5),
        percentile(&v, 0.95),
        v.len()
    )
}

struct Scored<'a> {
    clip: &'a Clip,
    outcome: &'a Outcome,
    strict: Edits,
    loose: Edits,
    looped: bool,
}

fn report(label: &str, clips: &[Clip], outcomes: &[Outcome], names: &[String], real_time: bool) {
    let scored: Vec<Scored<'_>> = outcomes
        .iter()
        .map(|o| {
            let clip = &clips[o.clip];
            let hyp = if o.failed { "" } else { &o.hypothesis };
            let hyp_words = normalize(hyp);
            Scored {
                clip,
                outcome: o,
                strict: edits(&normalize(&clip.reference), &hyp_words),
                loose: edits(
                    &normalize_loose(&clip.reference, names),
                    &normalize_loose(hyp, names),
                ),
                // A loop inside a hyphenated word ("lite-off-lite-off-...") is a loop too.
                looped: loops(
                    &hyp_words
                        .iter()
                        .flat_map(|w| w.split('-').map(str::to_owned))
                        .collect::<Vec<_>>(),
                ),
            }
        })
        .collect();
    println!();
    println!("== {label}");
    println!(
        "  {:<28} {:<8} {:>5} {:>6} {:>5} {:>5} {:>5} {:>8} {:>8}",
        "voice", "set", "clips", "words", "S", "I", "D", "WER", "loose"
    );
    let row = |voice: &str, set: &str, pick: &dyn Fn(&Scored<'_>) -> bool| {
        let (mut strict, mut loose, mut n) = (Edits::default(), Edits::default(), 0);
        for s in scored.iter().filter(|s| pick(s)) {
            strict.add(s.strict);
            loose.add(s.loose);
            n += 1;
        }
        if n > 0 {
            println!(
                "  {voice:<28} {set:<8} {n:>5} {:>6} {:>5} {:>5} {:>5} {:>7.1}% {:>7.1}%",
                strict.words,
                strict.sub,
                strict.ins,
                strict.del,
                strict.wer() * 100.0,
                loose.wer() * 100.0
            );
        }
    };
    for voice in VOICES {
        for set in SETS {
            row(voice.name, set, &|s| {
                s.clip.voice == voice.name && s.clip.set == set
            });
        }
    }
    for set in SETS {
        row("all voices", set, &|s| s.clip.set == set);
    }
    row("all voices", "all", &|_| true);
    let what = if real_time {
        "end of speech → transcript"
    } else {
        "request → transcript"
    };
    for set in SETS {
        let in_set = || scored.iter().filter(|s| s.clip.set == set);
        if in_set().next().is_none() {
            continue;
        }
        let secs = in_set()
            .map(|s| s.clip.samples.len() as f64 / f64::from(RATE))
            .sum::<f64>()
            / in_set().count().max(1) as f64;
        println!(
            "  {what}, {set:<8}: {} (clips of {secs:.1} s on average)",
            latency(in_set().map(|s| s.outcome.ms))
        );
    }
    if real_time {
        let early = scored.iter().filter(|s| s.outcome.ms < 0.0).count();
        println!("  transcripts before the end of speech was sent: {early}");
    }
    let failed = scored.iter().filter(|s| s.outcome.failed).count();
    let empties: Vec<&Scored<'_>> = scored
        .iter()
        .filter(|s| !s.outcome.failed && normalize(&s.outcome.hypothesis).is_empty())
        .collect();
    let empty = empties.len();
    let looped = scored.iter().filter(|s| s.looped).count();
    let inserting = scored.iter().filter(|s| s.strict.ins >= 3).count();
    println!(
        "  loops (3+ words twice in a row, or 1-2 words three times): {looped};  clips with 3+ inserted \
         words: {inserting};  empty transcripts: {empty};  failed requests: {failed}"
    );
    // An empty transcript is an utterance lost whole: name each (the worst list ranks by WER,
    // where a loop outranks a loss).
    for s in empties {
        println!(
            "  empty: {}/{}: {:?} → {:?}",
            s.clip.voice, s.clip.id, s.clip.reference, s.outcome.hypothesis
        );
    }
    let mut worst: Vec<&Scored<'_>> = scored.iter().filter(|s| s.strict.errors() > 0).collect();
    worst.sort_by(|a, b| {
        b.strict
            .wer()
            .total_cmp(&a.strict.wer())
            .then(b.strict.errors().cmp(&a.strict.errors()))
    });
    let shown = if env_flag("JARVIS_WER_ALL") {
        worst.len()
    } else {
        10
    };
    println!("  worst clips (strict WER):");
    for s in worst.iter().take(shown) {
        println!(
            "    {:>4.0}% {}/{}: {:?} → {:?}",
            s.strict.wer() * 100.0,
            s.clip.voice,
            s.clip.id,
            s.clip.reference,
            s.outcome.hypothesis
        );
    }
    for s in scored.iter().filter(|s| s.looped) {
        println!(
            "    loop: {}/{}: {:?} → {:?}",
            s.clip.voice, s.clip.id, s.clip.reference, s.outcome.hypothesis
        );
    }
}

// --- wyoming-bench ----------------------------------------------------------------------------

/// `wyoming-bench`, when it is installed (scripts/bench.sh wer installs it).
fn wyoming_bench() -> Option<PathBuf> {
    match std::env::var("JARVIS_WER_WYOMING_BENCH") {
        Ok(v) if v == "0" || v.is_empty() => None,
        Ok(v) => Some(PathBuf::from(v)),
        Err(_) => {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(".cache/wyoming-bench-venv/bin/wyoming-bench");
            path.exists().then_some(path)
        }
    }
}

/// `wyoming-bench stt` over `corpus` against `servers`, non-streaming, one round; prints its
/// report.
async fn run_wyoming_bench(program: &Path, servers: &[String], corpus: &Path) {
    println!();
    println!(
        "== wyoming-bench stt {} --corpus {} --mode non_streaming --rounds 1 --warmup 1",
        servers.join(" "),
        corpus.display()
    );
    let out = tokio::process::Command::new(program)
        .arg("stt")
        .args(servers)
        .arg("--corpus")
        .arg(corpus)
        .args(["--mode", "non_streaming", "--rounds", "1", "--warmup", "1"])
        .output()
        .await;
    match out {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            for line in stdout.lines().filter(|l| !l.contains("[corpus]")) {
                println!("  {line}");
            }
            if !out.status.success() {
                println!(
                    "  wyoming-bench failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Err(e) => println!("  wyoming-bench did not start: {e}"),
    }
}

/// The cluster with `more` guests named as the soak names its thousand ("media-backup-12"): a
/// large cluster, whose names do not all fit whisper's prompt and get no speech grammar.
fn with_more_guests(mut cluster: FakeCluster, more: usize) -> FakeCluster {
    const WORDS: [&str; 10] = [
        "media", "backup", "web", "proxy", "mail", "git", "cache", "vault", "photo", "build",
    ];
    for i in 0..more {
        let name = format!("{}-{}-{i}", WORDS[i % 10], WORDS[(i / 10) % 10]);
        cluster
            .guests
            .push(fake_proxmox::FakeGuest::qemu(1000 + i as u32, &name, "pve"));
    }
    cluster
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn main() {
    if let Ok(filter) = std::env::var("JARVIS_BENCH_LOG") {
        let _ = jarvis::telemetry::init(&jarvis::config::LogConfig {
            level: filter,
            format: jarvis::config::LogFormat::Text,
        });
    }
    let labels = std::env::var("JARVIS_WER_VARIANTS").unwrap_or_else(|_| "default".into());
    let variants: Vec<(String, Apply)> = labels
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let apply = variant(l).unwrap_or_else(|| {
                panic!("unknown variant {l:?} (default, free, ctx=N, penalty=N, beams=N, silence=N, sentence=N, joined by +)")
            });
            (l.to_owned(), apply)
        })
        .collect();
    let limit = std::env::var("JARVIS_WER_LIMIT")
        .ok()
        .and_then(|l| l.parse().ok());
    let real_time = env_flag("JARVIS_WER_REALTIME");
    let reference = std::env::var("JARVIS_WER_REFERENCE")
        .ok()
        .filter(|r| !r.is_empty());

    let lines = corpus();
    let mut clips = limit_clips(ensure_clips(&corpus_dir(), &lines, VOICES), limit);
    if let Ok(wanted) = std::env::var("JARVIS_WER_CLIPS") {
        let wanted: Vec<&str> = wanted.split(',').filter(|w| !w.is_empty()).collect();
        clips.retain(|c| {
            let name = format!("{}/{}", c.voice, c.id);
            wanted.iter().any(|w| name.contains(w))
        });
    }
    let cluster = with_more_guests(
        FakeCluster::homelab(),
        std::env::var("JARVIS_WER_GUESTS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    );
    let names = loose_names(&cluster);
    self_check(&names);
    let words: usize = clips.iter().map(|c| normalize(&c.reference).len()).sum();
    println!(
        "speech-to-text WER, tiny.en, {} cores: {} sentences ({} homelab, {} everyday), {} voices, \
         {} clips, {words} reference words{}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        lines.len(),
        lines.iter().filter(|l| l.set == "homelab").count(),
        lines.iter().filter(|l| l.set == "everyday").count(),
        VOICES.len(),
        clips.len(),
        if real_time {
            format!(
                "; real time in chunks of {} ms, end of speech → transcript",
                realtime_chunk_samples() * 1000 / RATE as usize
            )
        } else {
            "; all audio at once, request → transcript".to_owned()
        }
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let fake = FakeProxmox::start(cluster).await;
        let audit = tempfile::tempdir().unwrap();
        let wyoming_bench = wyoming_bench();
        for (i, (label, apply)) in variants.iter().enumerate() {
            let mut config = bench_config();
            config.stt.enabled = true;
            config.proxmox = fake.config();
            config.audit.path = audit.path().join("audit.jsonl");
            if let Some(threads) = std::env::var("JARVIS_BENCH_THREADS")
                .ok()
                .and_then(|t| t.parse().ok())
            {
                config.stt.threads = threads;
            }
            apply(&mut config);
            let ctx = config.stt.min_audio_ctx;
            let grammar = config.stt.grammar.enabled;
            let app = jarvis::app::spawn(config).await.unwrap();
            // The cluster's names reach whisper's prompt once the inventory is cached.
            let _ = app
                .services
                .brain
                .command(Command {
                    text: "How is the cluster doing?".into(),
                    channel: Channel::Http,
                    client: "bench".into(),
                    conversation: Some("bench".into()),
                    approval: None,
                })
                .await;
            let vocabulary = app.services.brain.vocabulary();
            assert!(!vocabulary.is_empty(), "the inventory was not fetched");
            // The speech grammar is built in the background once the inventory is there.
            // (None past `MAX_GRAMMAR_NAMES`: then the wait ends after 10 s.)
            let until = Instant::now() + Duration::from_secs(10);
            while grammar
                && app.services.brain.last_speech_grammar().is_none()
                && Instant::now() < until
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let started = Instant::now();
            let outcomes = run_clips(app.wyoming_addr, &clips, real_time).await;
            report(
                &format!(
                    "Jarvis, variant {label} (stt.min_audio_ctx = {ctx}; vocabulary of {} names: {}{}) \
                     in {:.0} s",
                    vocabulary.len(),
                    vocabulary[..vocabulary.len().min(12)].join(", "),
                    if vocabulary.len() > 12 { ", ..." } else { "" },
                    started.elapsed().as_secs_f64()
                ),
                &clips,
                &outcomes,
                &names,
                real_time,
            );
            if let (0, Some(program)) = (i, &wyoming_bench) {
                let mut servers = vec![app.wyoming_addr.to_string()];
                servers.extend(reference.clone());
                let corpus = match limit {
                    Some(n) => link_corpus(&clips, n),
                    None => corpus_dir(),
                };
                run_wyoming_bench(program, &servers, &corpus).await;
            }
            app.shutdown.cancel();
            let _ = app.finished.await;
        }
        if let Some(reference) = &reference {
            let addr = tokio::net::lookup_host(reference.as_str())
                .await
                .unwrap()
                .next()
                .unwrap();
            let started = Instant::now();
            let outcomes = run_clips(addr, &clips, real_time).await;
            report(
                &format!(
                    "reference server {reference} in {:.0} s",
                    started.elapsed().as_secs_f64()
                ),
                &clips,
                &outcomes,
                &names,
                real_time,
            );
        }
    });
}

/// The scoring checks itself on every run: a bench has no test harness.
fn self_check(names: &[String]) {
    let words =
        |text: &str| -> Vec<String> { text.split_whitespace().map(str::to_owned).collect() };
    assert_eq!(normalize("Start VM one oh one."), words("start vm 101"));
    assert_eq!(normalize("Start VM one hundred one"), words("start vm 101"));
    assert_eq!(normalize("start vm 101!"), words("start vm 101"));
    assert_eq!(
        normalize("What's on media-server?"),
        words("whats on media-server")
    );
    assert_eq!(
        normalize("Wake me at 7:30."),
        normalize("wake me at seven thirty")
    );
    assert_eq!(
        normalize("Set a timer for ten minutes"),
        words("set a timer for 10 minutes")
    );
    for (a, b) in [
        ("Start media-server.", "Start media server."),
        ("How full is local-lvm?", "How full is local L V M?"),
        ("Is agent1 up?", "Is agent one up?"),
        ("Status of pve", "Status of P.V.E."),
        ("Check pihole", "Check pi-hole"),
    ] {
        assert_eq!(
            normalize_loose(a, names),
            normalize_loose(b, names),
            "{a} / {b}"
        );
    }
    let e = edits(&words("start vm 101"), &words("start the vm 101 now"));
    assert_eq!((e.sub, e.ins, e.del, e.words), (0, 2, 0, 3));
    let e = edits(&words("a b c d"), &words("a x d"));
    assert_eq!((e.sub, e.ins, e.del), (1, 0, 1));
    assert!(loops(&words("start media server start media server")));
    assert!(!loops(&words("start media server now")));
    assert!(loops(&words("status of pve pve pve")));
    assert!(!loops(&words("yes yes go ahead")));
}
