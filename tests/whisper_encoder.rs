//! Encode once, decode twice (`vendor/whisper-rs-sys/JARVIS-PATCH.md`): a whisper state that
//! already holds the mel spectrogram and the encoder's output for the same audio at the same
//! context skips both, and one that holds the same prompt decoded over that encoding does not
//! decode the prompt again. Every decode here on one reused state must give exactly what the
//! same decode gives on a fresh state (text, tokens and their probabilities), and whisper.cpp's
//! own per-call timings (its debug line) must show that each skip happened where it should.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use jarvis::stt::grammar::{GrammarBuilder, Part, SpeechGrammar};
use whisper_rs::{FullParams, WhisperContext, WhisperContextParameters, WhisperState};

/// A decode on the reused state: what to decode, how, and whether the mel spectrogram, the
/// encoder and the prompt must be skipped.
type Step<'a> = (&'a [f32], How<'a>, (bool, bool, bool));

/// What one decode gave: each segment's text, and each token with its probabilities (as bits,
/// so that the comparison is exact).
#[derive(Debug, PartialEq)]
struct Outcome {
    segments: Vec<(String, Vec<Token>)>,
}

/// A token's id and its two probabilities' bits.
type Token = (i32, u32, u32);

/// How to decode.
#[derive(Clone, Copy)]
struct How<'a> {
    audio_ctx: i32,
    prompt: &'a [i32],
    grammar: Option<&'a SpeechGrammar>,
    /// Beam search with this many beams (Jarvis's guided decode); 1: greedy.
    beams: i32,
}

/// Jarvis's settings (`src/stt/whisper.rs`), without its logits filter.
fn params<'a, 'b>(how: How<'b>) -> FullParams<'a, 'b> {
    let mut params = common::whisper_params(how.audio_ctx, 40);
    if !how.prompt.is_empty() {
        params.set_tokens(how.prompt);
    }
    if let Some(grammar) = how.grammar {
        params.set_grammar_rules(Some(std::sync::Arc::clone(grammar.rules())));
        params.set_start_rule(0);
        params.set_grammar_penalty(15.0);
    }
    if how.beams > 1 {
        params.set_beam_search(how.beams, -1.0);
    }
    params
}

fn decode(state: &mut WhisperState, how: How<'_>, samples: &[f32]) -> Outcome {
    state.full(params(how), samples).unwrap();
    let segments = (0..state.full_n_segments())
        .map(|i| {
            let segment = state.get_segment(i).unwrap();
            let tokens = (0..segment.n_tokens())
                .map(|t| {
                    let data = segment.get_token(t).unwrap().token_data();
                    (data.id, data.p.to_bits(), data.plog.to_bits())
                })
                .collect();
            (segment.to_str_lossy().unwrap().into_owned(), tokens)
        })
        .collect();
    Outcome { segments }
}

/// whisper.cpp's log, as the tracing hook hands it on.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// whisper.cpp's per-call timing lines written since the last call.
    fn take_timings(&self) -> Vec<String> {
        let text = String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap();
        text.lines()
            .filter(|l| l.contains("whisper_full_with_state: ctx"))
            .map(str::to_owned)
            .collect()
    }
}

/// The time a timing line gives the mel spectrogram ("mel 3.2 ms").
fn mel_ms(line: &str) -> f64 {
    let rest = &line[line.find("mel ").unwrap() + 4..];
    rest.split(' ').next().unwrap().parse().unwrap()
}

/// The prompts a timing line says were not decoded again ("prompts reused 1").
fn prompts_reused(line: &str) -> u32 {
    let rest = &line[line.find("prompts reused ").unwrap() + 15..];
    rest.split(',').next().unwrap().parse().unwrap()
}

/// The encoder runs a timing line counts ("encode 151.6 ms (1)").
fn encodes(line: &str) -> u32 {
    let rest = &line[line.find("encode ").unwrap()..];
    let count = &rest[rest.find('(').unwrap() + 1..rest.find(')').unwrap()];
    count.parse().unwrap()
}

fn speak(text: &str) -> Vec<f32> {
    let clip = common::wake_clips::espeak(text, "en-us", 160);
    let mut samples =
        common::wake_clips::to_f32(&common::wake_clips::resample(clip.rate, &clip.samples));
    // Jarvis pads short audio to 1.1 s; these are longer, but keep a little silence after.
    samples.extend(std::iter::repeat_n(0.0, 8_000));
    samples
}

/// tiny.en, with flash attention (as Jarvis loads it) or without.
fn tiny(flash_attn: bool) -> WhisperContext {
    let path = common::models_dir().join("whisper/ggml-tiny.en.bin");
    let mut params = WhisperContextParameters::default();
    params.flash_attn(flash_attn);
    WhisperContext::new_with_params(path.to_str().unwrap(), params).unwrap()
}

/// A command naming a node, and a sentence outside the homelab.
fn sentences() -> (Vec<f32>, Vec<f32>) {
    (
        speak("What is the status of node pve?"),
        speak("Turn on the kitchen lights."),
    )
}

/// Jarvis's free decode of a short command: encoder context 320, `prompt`, greedy.
fn free(prompt: &[i32]) -> How<'_> {
    How {
        audio_ctx: 320,
        prompt,
        grammar: None,
        beams: 1,
    }
}

fn grammar() -> SpeechGrammar {
    let mut builder = GrammarBuilder::new();
    for words in [&["what", "is", "the", "status", "of"][..], &["start"][..]] {
        let mut parts: Vec<Part<'_>> = words.iter().map(|w| Part::Word(w)).collect();
        parts.push(Part::Slot("target"));
        builder.sentence(&parts);
    }
    for value in ["pve", "p v e", "node pve", "agent1", "media-server"] {
        builder.value("target", value);
    }
    builder.build()
}

/// The tests of this file one at a time: one turns the attention shortcut off for a while and
/// counts the keys it takes, which the other's decodes would add to.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn a_second_decode_of_the_same_audio_skips_the_encoder_and_gives_what_a_fresh_state_gives() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // With flash attention, as Jarvis loads the model, and without (whisper-rs's default): the
    // cross-attention cache that must stay valid is laid out differently.
    for flash_attn in [true, false] {
        reused_and_fresh_states_agree(flash_attn);
    }
}

fn reused_and_fresh_states_agree(flash_attn: bool) {
    whisper_rs::install_logging_hooks();
    let context = tiny(flash_attn);
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // whisper.cpp logs on the thread that decodes: this one.
    let _guard = tracing::subscriber::set_default(subscriber);

    let (command, other) = sentences();
    let prompt = context.tokenize("pve, agent1, media-server.", 64).unwrap();
    let other_prompt = context
        .tokenize("pve, agent1, media-server, haos.", 64)
        .unwrap();
    let grammar = grammar();
    let free = free(&prompt);
    let guided = How {
        grammar: Some(&grammar),
        ..free
    };
    let beams = How { beams: 3, ..guided };
    let reprompted = How {
        prompt: &other_prompt,
        ..free
    };
    let whole = How {
        audio_ctx: 1500,
        ..free
    };
    let whole_guided = How {
        audio_ctx: 1500,
        ..guided
    };
    let fresh = |how: How<'_>, samples: &[f32]| {
        let mut state = context.create_state().unwrap();
        decode(&mut state, how, samples)
    };

    let steps: [Step<'_>; 12] = [
        (&command, free, (false, false, false)),
        (&command, guided, (true, true, true)),
        // The first beam search on a state makes its self-attention cache anew (for more
        // decoders): the prompt is decoded again into it.
        (&command, beams, (true, true, false)),
        (&command, beams, (true, true, true)),
        (&command, free, (true, true, true)),
        (&command, whole, (true, false, false)),
        (&command, whole_guided, (true, true, true)),
        (&command, free, (true, false, false)),
        // Another prompt over the same encoding, then the first one again.
        (&command, reprompted, (true, true, false)),
        (&command, guided, (true, true, false)),
        (&other, free, (false, false, false)),
        (&other, beams, (true, true, true)),
    ];
    let mut state = context.create_state().unwrap();
    for (i, (samples, how, skipped)) in steps.into_iter().enumerate() {
        let _ = log.take_timings();
        let reused = decode(&mut state, how, samples);
        let timings = log.take_timings();
        assert_eq!(timings.len(), 1, "step {i}: {timings:?}");
        assert_eq!(
            (
                mel_ms(&timings[0]) == 0.0,
                encodes(&timings[0]) == 0,
                prompts_reused(&timings[0]) == 1
            ),
            skipped,
            "flash {flash_attn}, step {i}: {}",
            timings[0]
        );
        assert_eq!(reused, fresh(how, samples), "flash {flash_attn}, step {i}");
        assert!(!reused.segments.is_empty(), "step {i}: nothing heard");
    }

    // A mel spectrogram set by other means (here of the command) is not taken for the audio
    // it was last computed from: the kitchen sentence's is computed again (and encoded, at
    // another context, so that a stale spectrogram would show in the words).
    state.pcm_to_mel(&command, 2).unwrap();
    let _ = log.take_timings();
    let reused = decode(&mut state, whole, &other);
    let timings = log.take_timings();
    assert_eq!(encodes(&timings[0]), 1, "{}", timings[0]);
    assert!(mel_ms(&timings[0]) > 0.0, "{}", timings[0]);
    assert_eq!(prompts_reused(&timings[0]), 0, "{}", timings[0]);
    assert_eq!(reused, fresh(whole, &other));
}

/// whisper.cpp's encoder self-attention and its decoders' cross-attention read
/// `GGML_PAD(n_ctx, 256)` rows of keys and values with no mask, of which all past the audio
/// context are zeros (at context 320: 192 of 512). The CPU flash attention's shortcut for those
/// rows (`vendor/whisper-rs-sys/JARVIS-PATCH.md`) must give exactly what its plain loop gives:
/// the same text, tokens and probabilities, bit for bit, free and guided, at the short context
/// and the whole window. And it must be taken.
#[test]
fn the_attention_shortcut_for_zero_rows_gives_the_same_bits_as_the_plain_loop() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let context = tiny(true);
    let (command, other) = sentences();
    let prompt = context.tokenize("pve, agent1, media-server.", 64).unwrap();
    let grammar = grammar();
    let free = free(&prompt);
    let beams = How {
        grammar: Some(&grammar),
        beams: 3,
        ..free
    };
    let whole = How {
        audio_ctx: 1500,
        ..free
    };
    let cases = [
        (&command, free),
        (&command, beams),
        (&other, free),
        (&other, beams),
        (&command, whole),
        (
            &other,
            How {
                audio_ctx: 448,
                ..free
            },
        ),
    ];
    for (i, (samples, how)) in cases.into_iter().enumerate() {
        whisper_rs::set_attention_shortcut(false);
        let before = whisper_rs::attention_zero_keys();
        let plain = decode(&mut context.create_state().unwrap(), how, samples);
        assert_eq!(
            whisper_rs::attention_zero_keys(),
            before,
            "case {i}: taken while off"
        );
        whisper_rs::set_attention_shortcut(true);
        let short = decode(&mut context.create_state().unwrap(), how, samples);
        assert!(
            whisper_rs::attention_zero_keys() > before,
            "case {i}: never taken"
        );
        assert!(!plain.segments.is_empty(), "case {i}: nothing heard");
        assert_eq!(short, plain, "case {i}, audio context {}", how.audio_ctx);
    }
}

/// A state's attention keys (`WhisperState::set_attention_keys`, JARVIS-PATCH): with flash
/// attention, the encoder's self-attention and the decoders' cross-attention read at least
/// that many keys, zeros past the audio context. Jarvis reads 512 so that a context of 256
/// keeps the zero keys that 320 has (see `ATTENTION_KEYS` in `src/stt/whisper.rs`).
#[test]
fn attention_keys_add_zero_keys_past_a_short_context() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    whisper_rs::set_attention_shortcut(true);
    let context = tiny(true);
    let (command, _) = sentences();
    let prompt = context.tokenize("pve, agent1, media-server.", 64).unwrap();
    let at = |audio_ctx| How {
        audio_ctx,
        ..free(&prompt)
    };
    let with_keys = |keys: usize| {
        let mut state = context.create_state().unwrap();
        assert_eq!(state.set_attention_keys(keys), keys);
        state
    };

    // At context 256 whisper.cpp reads 256 keys, none of them zero.
    let before = whisper_rs::attention_zero_keys();
    let own = decode(&mut context.create_state().unwrap(), at(256), &command);
    assert_eq!(
        whisper_rs::attention_zero_keys(),
        before,
        "zero keys at 256"
    );
    // With 512, every query also reads 256 zero keys, and the decode differs.
    let wider = decode(&mut with_keys(512), at(256), &command);
    assert!(
        whisper_rs::attention_zero_keys() > before,
        "no zero keys read"
    );
    assert!(!wider.segments.is_empty(), "nothing heard");
    assert_ne!(wider, own, "512 keys decoded as 256");

    // A context that already reads 512 keys (320 rounded up to 256) is not changed.
    assert_eq!(
        decode(&mut with_keys(512), at(320), &command),
        decode(&mut context.create_state().unwrap(), at(320), &command)
    );

    // A state that encoded with other keys encodes again, and decodes as a fresh state does.
    let mut state = context.create_state().unwrap();
    let _ = decode(&mut state, at(256), &command);
    assert_eq!(state.set_attention_keys(512), 512);
    assert_eq!(decode(&mut state, at(256), &command), wider);
    assert_eq!(state.set_attention_keys(0), 0);
    assert_eq!(decode(&mut state, at(256), &command), own);

    // No more than the 1536 rows the state holds.
    assert_eq!(
        context.create_state().unwrap().set_attention_keys(5000),
        1536
    );
}
