//! whisper.cpp with a grammar, as patched for Jarvis (`vendor/whisper-rs-sys/JARVIS-PATCH.md`,
//! "the grammar is a bias, not a renormalisation"): a guided decode still chooses its tokens
//! with the grammar's penalties, but scores each token with whisper's own log probability
//! before the grammar (less any penalty that token got). Jarvis keeps a guided decode over the
//! free one, and ranks the guided decode's beams, by that score; renormalised over what the
//! grammar allows, as upstream scores, a word whisper did not hear looks likely once the
//! grammar leaves little else.
//!
//! Also the early end of a guided decode that cannot be kept (`whisper_jarvis_abandon_below`):
//! asked for a mean log probability its beams can no longer reach, whisper stops, and a decode
//! that does reach it is never stopped or changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jarvis::stt::grammar::{GrammarBuilder, Part, SpeechGrammar};
use whisper_rs::{FullParams, WhisperContext, WhisperContextParameters, WhisperState};

/// A text token of a decode: its id, its score (`plog`) and its probability as chosen (`p`).
#[derive(Debug, Clone, Copy)]
struct Token {
    id: i32,
    plog: f32,
    p: f32,
}

/// tiny.en with flash attention, as Jarvis loads it.
fn tiny_en() -> Arc<WhisperContext> {
    let path = common::models_dir().join("whisper/ggml-tiny.en.bin");
    let mut params = WhisperContextParameters::default();
    params.flash_attn(true);
    Arc::new(WhisperContext::new_with_params(path.to_str().unwrap(), params).unwrap())
}

/// `said` as espeak-ng speaks a command, as whisper takes it.
fn spoken(said: &str) -> Vec<f32> {
    common::wake_clips::to_f32(&common::wake_clips::espeak_command(said, "en-us", 160))
}

/// A grammar whose sentences name `agent1` or `media-server`, never `pve`.
fn grammar() -> SpeechGrammar {
    let mut builder = GrammarBuilder::new();
    let words = ["what", "is", "the", "status", "of", "node"];
    let mut parts: Vec<Part<'_>> = words.iter().map(|w| Part::Word(w)).collect();
    parts.push(Part::Slot("target"));
    builder.sentence(&parts);
    for value in ["agent1", "media-server"] {
        builder.value("target", value);
    }
    builder.build()
}

fn text_tokens(context: &WhisperContext, state: &WhisperState) -> Vec<Token> {
    let eot = context.token_eot();
    (0..state.full_n_segments())
        .filter_map(|i| state.get_segment(i))
        .flat_map(|segment| {
            (0..segment.n_tokens())
                .filter_map(|t| segment.get_token(t))
                .map(|token| token.token_data())
                .collect::<Vec<_>>()
        })
        .filter(|data| data.id < eot)
        .map(|data| Token {
            id: data.id,
            plog: data.plog,
            p: data.p,
        })
        .collect()
}

/// The guided decode of `samples`, greedy (`beams` 1) or with beams, as Jarvis runs it.
fn guided(
    context: &Arc<WhisperContext>,
    state: &mut WhisperState,
    samples: &[f32],
    grammar: &Arc<SpeechGrammar>,
    beams: i32,
) -> Vec<Token> {
    let mut params = common::whisper_params(320, 40);
    params.set_grammar_rules(Some(Arc::clone(grammar.rules())));
    params.set_start_rule(0);
    params.set_grammar_penalty(15.0);
    if beams > 1 {
        params.set_beam_search(beams, -1.0);
    }
    // Jarvis's own filter: end-of-text is held back until the grammar's sentence is finished.
    params.set_logits_filter(Some(jarvis::stt::whisper::hold_back_end(
        Arc::clone(grammar),
        Arc::clone(context),
        15.0,
    )));
    state.full(params, samples).unwrap();
    text_tokens(context, state)
}

/// Decodes `samples` without a grammar, forcing the tokens of `script` then end-of-text, and
/// returns whisper's own log probability of each scripted token, read (as a log-softmax of
/// its logits) before the forcing.
/// The next decode on `state` is bit for bit `free`, the one before scoring.
fn assert_next_decode_unchanged(
    context: &WhisperContext,
    state: &mut WhisperState,
    params: FullParams<'_, '_>,
    samples: &[f32],
    free: &[Token],
) {
    state.full(params, samples).unwrap();
    let again = text_tokens(context, state);
    let bits = |tokens: &[Token]| -> Vec<(i32, u32)> {
        tokens.iter().map(|t| (t.id, t.plog.to_bits())).collect()
    };
    assert_eq!(bits(free), bits(&again));
}

fn forced(
    context: &Arc<WhisperContext>,
    state: &mut WhisperState,
    samples: &[f32],
    script: &[i32],
) -> (Vec<f32>, Vec<Token>) {
    let eot = context.token_eot();
    let seen = Arc::new(Mutex::new(vec![f32::NAN; script.len()]));
    let mut params = common::whisper_params(320, 40);
    let (seen_by_filter, script) = (Arc::clone(&seen), script.to_vec());
    params.set_logits_filter(Some(Box::new(move |tokens, logits| {
        let step = tokens.len();
        let want = script.get(step).copied().unwrap_or(eot);
        if let Some(slot) = seen_by_filter.lock().unwrap().get_mut(step) {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = logits
                .iter()
                .filter(|l| l.is_finite())
                .map(|l| f64::from(l - max).exp())
                .sum();
            *slot = logits[usize::try_from(want).unwrap()] - max - sum.ln() as f32;
        }
        for (id, logit) in logits.iter_mut().enumerate() {
            if i32::try_from(id).unwrap() != want {
                *logit = f32::NEG_INFINITY;
            }
        }
    })));
    state.full(params, samples).unwrap();
    let tokens = text_tokens(context, state);
    let seen = seen.lock().unwrap().clone();
    (seen, tokens)
}

#[test]
fn a_guided_decode_scores_its_tokens_as_whisper_heard_them_not_as_the_grammar_bent_them() {
    let context = tiny_en();
    let mut state = context.create_state().unwrap();
    let samples = spoken("What is the status of node pve?");
    let grammar = Arc::new(grammar());
    for beams in [1, 3] {
        let tokens = guided(&context, &mut state, &samples, &grammar, beams);
        let bytes: Vec<u8> = tokens
            .iter()
            .flat_map(|t| context.token_to_bytes(t.id).unwrap().to_vec())
            .collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        // The grammar bent the name: pve is not one of its words.
        let lower = text.to_lowercase();
        assert!(
            lower.contains("agent1") || lower.contains("media-server"),
            "beams {beams}: {text:?}"
        );
        let script: Vec<i32> = tokens.iter().map(|t| t.id).collect();
        let (own, replayed) = forced(&context, &mut state, &samples, &script);
        assert_eq!(
            replayed.iter().map(|t| t.id).collect::<Vec<_>>(),
            script,
            "beams {beams}: the forced decode wrote other tokens"
        );
        // The beams are decoded as one batch and the forced decode a token at a time: with
        // ggml's llamafile kernels built in, the two take different matrix multiplications,
        // whose rounding differs by up to ~2e-3 in a log probability (the grammar's bending,
        // checked below, moves it by more than 1).
        for (i, (token, own)) in tokens.iter().zip(&own).enumerate() {
            assert!(
                (token.plog - own).abs() < 1e-2,
                "beams {beams}, token {i} of {text:?}: scored {} but whisper's own log probability is {own}",
                token.plog
            );
        }
        // A name whisper did not hear is unlikely in its own view, and the guided decode's
        // probability, renormalised over what the grammar allows, says otherwise: the score
        // is not that probability.
        let bent = tokens
            .iter()
            .zip(&own)
            .filter(|(token, own)| **own < -1.0 && token.p.ln() > **own + 1.0)
            .count();
        assert!(
            bent > 0,
            "beams {beams}: {text:?}: {tokens:?} against {own:?}"
        );
    }
}

/// A guided decode with 3 beams as Jarvis runs it, capped at `max_tokens`, asked to stop below
/// `floor`: its text tokens, whether whisper abandoned it, and how many
/// times the decoders asked for a next token (the logits filter's calls).
fn guided_with_floor(
    context: &Arc<WhisperContext>,
    state: &mut WhisperState,
    samples: &[f32],
    grammar: &Arc<SpeechGrammar>,
    max_tokens: i32,
    floor: Option<f32>,
) -> (Vec<Token>, bool, usize) {
    let mut params = common::whisper_params(320, max_tokens);
    params.set_grammar_rules(Some(Arc::clone(grammar.rules())));
    params.set_start_rule(0);
    params.set_grammar_penalty(15.0);
    params.set_beam_search(3, -1.0);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let mut hold_back =
        jarvis::stt::whisper::hold_back_end(Arc::clone(grammar), Arc::clone(context), 15.0);
    params.set_logits_filter(Some(Box::new(move |tokens, logits| {
        counted.fetch_add(1, Ordering::Relaxed);
        hold_back(tokens, logits);
    })));
    state.set_abandon_below(floor);
    state.full(params, samples).unwrap();
    let abandoned = state.abandoned();
    state.set_abandon_below(None);
    (
        text_tokens(context, state),
        abandoned,
        calls.load(Ordering::Relaxed),
    )
}

fn mean(tokens: &[Token]) -> f32 {
    tokens.iter().map(|t| t.plog).sum::<f32>() / tokens.len() as f32
}

#[test]
fn a_guided_decode_is_abandoned_only_once_it_cannot_reach_the_floor() {
    let context = tiny_en();
    let mut state = context.create_state().unwrap();
    let grammar = Arc::new(grammar());
    // A command whose name the grammar bends (pve is not one of its names), and a sentence
    // outside the homelab the grammar can only wreck. Capped as Jarvis caps a guided decode of
    // a short command (its free decode's ~10 tokens + 4; this free decode of the kitchen
    // sentence loops).
    let max_tokens = 14;
    for (said, wrecked) in [
        ("What is the status of node pve?", false),
        ("Turn on the kitchen lights.", true),
    ] {
        let samples = spoken(said);
        let (whole, abandoned, calls) =
            guided_with_floor(&context, &mut state, &samples, &grammar, max_tokens, None);
        assert!(!abandoned, "{said}: abandoned without a floor");
        let reached = mean(&whole);
        // A floor the decode reaches (just): never abandoned, and the very same tokens.
        let (same, abandoned, _) = guided_with_floor(
            &context,
            &mut state,
            &samples,
            &grammar,
            max_tokens,
            Some(reached - 0.01),
        );
        assert!(!abandoned, "{said}: abandoned below its own mean {reached}");
        let bits = |tokens: &[Token]| -> Vec<(i32, u32, u32)> {
            tokens
                .iter()
                .map(|t| (t.id, t.plog.to_bits(), t.p.to_bits()))
                .collect()
        };
        assert_eq!(bits(&same), bits(&whole), "{said}");
        if wrecked {
            // Jarvis's floor for a free decode it is fairly sure of is about -3; the grammar's
            // penalties sink every beam far below that within a few tokens.
            assert!(reached < -3.0, "{said}: guided mean {reached}");
            let floor = -3.0;
            let (cut, abandoned, cut_calls) = guided_with_floor(
                &context,
                &mut state,
                &samples,
                &grammar,
                max_tokens,
                Some(floor),
            );
            assert!(abandoned, "{said}: not abandoned below {floor}");
            assert!(
                mean(&cut) < floor,
                "{said}: abandoned at a mean of {}",
                mean(&cut)
            );
            assert!(
                cut_calls < calls,
                "{said}: {cut_calls} decoder steps, {calls} without the floor"
            );
        }
    }
}

#[test]
fn whisper_scores_a_whole_sentence_as_it_would_decode_it_token_by_token() {
    // `WhisperState::score` (JARVIS-PATCH): after a decode, the log probability of each token of
    // a sentence given those before it, the prompt and the encoding reused, in a few batched
    // passes of the decoder. Jarvis scores the grammar's sentences nearest to a misheard
    // transcript so. The values must be whisper's own, as a decode forced through the same
    // tokens reads them; and scoring must not change the next decode on the state.
    let context = tiny_en();
    let mut fresh = context.create_state().unwrap();
    assert!(fresh.score(&[440]).is_err(), "nothing decoded yet");
    let mut state = context.create_state().unwrap();
    let samples = spoken("What is the status of node pve?");
    let params = || common::whisper_params(320, 40);
    state.full(params(), &samples).unwrap();
    let free = text_tokens(&context, &state);
    // The free decode's own words, and a sentence it did not write (longer than one batch).
    for sentence in [
        None,
        Some(" What is the status of the media server on node agent one today?"),
    ] {
        let script: Vec<i32> = match sentence {
            None => free.iter().map(|t| t.id).collect(),
            Some(text) => context.tokenize(text, 64).unwrap(),
        };
        assert!(sentence.is_none() || script.len() > 8, "{script:?}");
        let (own, _) = forced(&context, &mut state, &samples, &script);
        let scored = state.score(&script).unwrap();
        assert_eq!(scored.len(), script.len() + 1);
        // The forced decode a token at a time, the score in batches: the kernels' rounding
        // differs by up to ~2e-3 (see above).
        for (i, (own, scored)) in own.iter().zip(&scored).enumerate() {
            assert!(
                (own - scored).abs() < 1e-2,
                "{sentence:?}, token {i}: scored {scored}, whisper's own {own}"
            );
        }
        let end = scored[script.len()];
        assert!(end.is_finite() && end < 0.0, "end-of-text {end}");
        if sentence.is_none() {
            // The sentence whisper wrote ends where it did.
            assert!(end > -1.0, "end-of-text after whisper's own words: {end}");
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let heard = state
        .score(&free.iter().map(|t| t.id).collect::<Vec<_>>())
        .unwrap();
    let other = state
        .score(&context.tokenize(" Start the dishwasher.", 64).unwrap())
        .unwrap();
    assert!(
        mean(&heard) > mean(&other) + 2.0,
        "{heard:?} against {other:?}"
    );
    assert_next_decode_unchanged(&context, &mut state, params(), &samples, &free);
}

#[test]
fn whisper_scores_many_sentences_at_once_as_it_scores_each_alone() {
    // `WhisperState::score_sentences` (JARVIS-PATCH): the sentences as one tree of tokens, a
    // beginning they share decoded once, several sentences' tokens in each pass. Jarvis scores
    // the free decode's words and the grammar's nearest sentences so. Each sentence must get
    // the values it gets alone, whatever it shares: a beginning, all of another sentence, or
    // nothing; more sentences than whisper has decoders, and more tokens than one pass takes.
    let context = tiny_en();
    let mut fresh = context.create_state().unwrap();
    assert!(
        fresh.score_sentences(&[&[440]]).is_err(),
        "nothing decoded yet"
    );
    let mut state = context.create_state().unwrap();
    let samples = spoken("What is the status of node pve?");
    let params = || common::whisper_params(320, 40);
    state.full(params(), &samples).unwrap();
    let free = text_tokens(&context, &state);
    let mut sentences: Vec<Vec<i32>> = vec![free.iter().map(|t| t.id).collect()];
    for text in [
        " What is the status of node agent one?",
        " What is the status of node",
        " What is the status of node pve?",
        " What is the status of node pve?",
        " What is the load on node pve?",
        " Start the dishwasher.",
        " Stop nextcloud.",
        " Start nextcloud.",
        " Start the media server.",
        " Is pve up?",
    ] {
        sentences.push(context.tokenize(text, 64).unwrap());
    }
    let refs: Vec<&[i32]> = sentences.iter().map(Vec::as_slice).collect();
    let together = state.score_sentences(&refs).unwrap();
    assert_eq!(together.len(), sentences.len());
    for (sentence, scored) in sentences.iter().zip(&together) {
        let alone = state.score(sentence).unwrap();
        assert_eq!(scored.len(), sentence.len() + 1);
        // Other batches, so the kernels round differently (see above).
        for (i, (alone, scored)) in alone.iter().zip(scored).enumerate() {
            assert!(
                (alone - scored).abs() < 1e-2,
                "{sentence:?}, token {i}: {scored} together, {alone} alone"
            );
        }
    }
    // A sentence that is another's beginning gets its own end-of-text: whisper expects the
    // free decode's words to go on after "... of node".
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(together[2].last().unwrap() < &-3.0, "{:?}", together[2]);
    assert!(mean(&together[0]) > mean(&together[6]) + 2.0);
    // A sentence without tokens is refused, and nothing is scored.
    assert!(state.score_sentences(&[&sentences[0], &[]]).is_err());
    assert_next_decode_unchanged(&context, &mut state, params(), &samples, &free);
}
