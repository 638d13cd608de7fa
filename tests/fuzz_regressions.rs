//! The fuzz targets' inputs in the normal test suite: every seed of `fuzz/corpus/<target>/` and
//! every input that once crashed a target (`tests/data/fuzz/<target>/`, kept after its fix) is
//! fed to the target's entry point (`jarvis::fuzzing`), which must return without a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bytes::BytesMut;
use tokio_util::codec::Decoder;
use wyoming::{Event, Limits, WyomingCodec};

/// The inputs of `target`: its seeds and its past crashes.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for dir in [
        root.join("fuzz/corpus").join(target),
        root.join("tests/data/fuzz").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            found.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    found
}

fn feed(target: &str, run: impl Fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "{target}: no seeds");
    for (name, bytes) in inputs {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&bytes)));
        assert!(result.is_ok(), "{name} panicked");
    }
}

#[test]
fn http_bodies() {
    feed("http_command", jarvis::fuzzing::http_command);
    feed("http_event", jarvis::fuzzing::http_event);
}

#[test]
fn mqtt_commands() {
    feed("mqtt_command", jarvis::fuzzing::mqtt_command);
}

#[test]
fn proxmox_answers() {
    feed("proxmox_answer", jarvis::fuzzing::proxmox_answer);
}

#[test]
fn frigate_payloads() {
    feed("frigate_payload", jarvis::fuzzing::frigate_payload);
}

#[test]
fn configurations() {
    feed("config", jarvis::fuzzing::config);
}

#[test]
fn onnx_models() {
    feed("onnx_model", jarvis::fuzzing::onnx_model);
}

/// As `fuzz/fuzz_targets/wyoming_codec.rs`: the first byte is the piece size.
#[test]
fn wyoming_streams() {
    feed("wyoming_codec", |data| {
        let Some((&step, wire)) = data.split_first() else {
            return;
        };
        let mut codec = WyomingCodec::new(Limits {
            max_line: 1024,
            max_data: 4096,
            max_payload: 4096,
        });
        let mut buf = BytesMut::new();
        for piece in wire.chunks(usize::from(step).max(1)) {
            buf.extend_from_slice(piece);
            while let Ok(Some(frame)) = codec.decode(&mut buf) {
                let _ = Event::try_from(frame);
            }
        }
    });
}
