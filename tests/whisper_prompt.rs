//! The vocabulary prompt with a big inventory (found by the soak, `benches/soak.rs`): 1000
//! guest names make a prompt of more tokens than whisper takes. `tokenize` must then fail
//! (whisper-rs 0.16.0 gave a `Vec` with a length of ~2^64), and with room for every token it
//! gives them all, for Jarvis to keep the first 224.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use whisper_rs::{WhisperContext, WhisperContextParameters};

#[test]
fn a_prompt_longer_than_the_limit_is_an_error_not_a_huge_vec() {
    let path = common::models_dir().join("whisper/ggml-tiny.en.bin");
    let context = WhisperContext::new_with_params(
        path.to_str().unwrap(),
        WhisperContextParameters::default(),
    )
    .unwrap();
    let prompt = (0..200)
        .map(|i| format!("media-backup-{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    assert!(context.tokenize(&prompt, 224).is_err());
    let tokens = context.tokenize(&prompt, prompt.len() + 1).unwrap();
    assert!(
        tokens.len() > 224 && tokens.len() <= prompt.len(),
        "{}",
        tokens.len()
    );
    assert!(context.tokenize("pve, agent1.", 224).unwrap().len() < 10);
}
