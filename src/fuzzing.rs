//! Entry points for the fuzz targets (`fuzz/`, cargo-fuzz): each takes untrusted bytes the way
//! the server does (the same parsers and checks, without the network or a model) and must
//! return, whatever the bytes, without a panic. Not part of the API.

use std::path::Path;

use serde_json::Value;

/// `POST /v1/command`'s body: axum's JSON extractor, then the text checks.
pub fn http_command(body: &[u8]) {
    let _ = crate::http_api::fuzz_command_body(body);
}

/// `POST /v1/event`'s body: axum's JSON extractor, then the checks that make it an event.
pub fn http_event(body: &[u8]) {
    if let Ok(event) = crate::http_api::fuzz_event_body(body, 1_790_000_000_000) {
        let _ = event.in_progress();
    }
}

/// A message on a guest's command topic: the first byte says whether it is retained, the text
/// up to the first NUL is the topic, the rest the payload.
pub fn mqtt_command(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (topic, payload) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let topic = String::from_utf8_lossy(topic);
    let _ = crate::mqtt::command::parse("jarvis", &topic, payload, flags & 1 == 1);
}

/// A Proxmox VE API answer (`{"data": ...}`), through every reader of the client: the cluster's
/// resources and status, a node's status, a task's status, backups (tasks, storage content,
/// task logs), disks and ZFS pools, snapshots and a guest's addresses.
pub fn proxmox_answer(body: &[u8]) {
    let Some(data) = crate::proxmox::fuzz_answer(body) else {
        return;
    };
    let _ = crate::proxmox::operations::addresses(&data);
    if let Value::Array(entries) = data {
        crate::proxmox::backups::fuzz_entries(&entries);
        crate::proxmox::disks::fuzz_entries(&entries);
        let _ = crate::proxmox::operations::snapshots(entries);
    }
}

/// A Frigate payload: the first byte picks the topic or API answer it is read as (events,
/// reviews, tracked object updates, availability, stats, a camera count, the API's events,
/// reviews and config), the rest is the payload.
pub fn frigate_payload(data: &[u8]) {
    use crate::frigate::wire::{
        ApiEvent, Available, Context, EventMessage, FrigateSetup, Lenient, ReviewItem,
        ReviewMessage, Stats, TrackedObjectUpdate, parse_count,
    };
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let url = url::Url::parse("http://frigate.local:5000/").ok();
    let context = Context::new(url.as_ref());
    match which % 8 {
        0 => {
            if let Ok(message) = serde_json::from_slice::<EventMessage>(payload) {
                let _ = message.after.to_event(&context);
            }
        }
        1 => {
            if let Ok(message) = serde_json::from_slice::<ReviewMessage>(payload) {
                let _ = message.after.to_event();
            }
        }
        2 => {
            if let Ok(update) = serde_json::from_slice::<TrackedObjectUpdate>(payload) {
                let _ = (update.kind(), update.to_event());
            }
        }
        3 => {
            let _ = Available::parse(payload);
        }
        4 => {
            let _ = serde_json::from_slice::<Stats>(payload);
        }
        5 => {
            let _ = parse_count(payload);
        }
        6 => {
            if let Ok(list) = serde_json::from_slice::<Vec<Lenient<ApiEvent>>>(payload) {
                for event in list.into_iter().filter_map(|e| e.0.ok()) {
                    let _ = event.to_event(&context);
                }
            }
            if let Ok(list) = serde_json::from_slice::<Vec<Lenient<ReviewItem>>>(payload) {
                for review in list.into_iter().filter_map(|r| r.0.ok()) {
                    let _ = review.to_event();
                }
            }
        }
        _ => {
            let _ = serde_json::from_slice::<FrigateSetup>(payload);
        }
    }
}

/// A configuration file: parsed, then validated, as `Config::load` does.
pub fn config(text: &[u8]) {
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let path = Path::new("jarvis.toml");
    if let Ok(config) = crate::config::Config::parse(text, path) {
        let _ = config.validate(path);
    }
}

/// An ONNX model file: the protobuf reader, then the readers that rewrite models (the wake
/// word's streaming graph, a Piper voice's split into front and decoder).
pub fn onnx_model(model: &[u8]) {
    let _ = crate::onnx::protobuf::parse(model);
    let _ = crate::onnx::schema::model_and_graph(model);
    let _ = crate::wake::streaming::input_dims(model);
    let _ = crate::wake::streaming::output_dims(model);
    if let Ok(streaming) = crate::wake::streaming::rewrite(model, 8) {
        let _ = crate::onnx::protobuf::parse(&streaming.model);
    }
    if let Ok(split) = crate::tts::fuzz_split(model) {
        let mut out = Vec::new();
        let _ = split.write_front(&mut out);
        out.clear();
        let _ = split.write_decoder(&mut out);
    }
}
