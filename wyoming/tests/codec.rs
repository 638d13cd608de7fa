//! Codec tests over every event type: byte-by-byte splits, concatenation, round trips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};
use wyoming::{Event, Frame, Limits, WyomingCodec};

fn encode(event: &Event) -> BytesMut {
    let mut buf = BytesMut::new();
    WyomingCodec::default()
        .encode(event, &mut buf)
        .expect("encode");
    buf
}

#[test]
fn every_event_round_trips_through_the_codec() {
    for event in common::all_events() {
        let mut buf = encode(&event);
        let frame = WyomingCodec::default()
            .decode(&mut buf)
            .expect("decode")
            .expect("a whole frame");
        assert!(buf.is_empty(), "{}: bytes left over", event.kind());
        assert_eq!(Event::from_frame(frame).expect("typed"), event);
    }
}

#[test]
fn every_event_type_is_covered_by_the_samples() {
    // One sample per variant: if a variant is added without a sample, this count changes.
    let kinds: std::collections::BTreeSet<String> = common::all_events()
        .iter()
        .map(|e| e.kind().to_owned())
        .collect();
    assert_eq!(kinds.len(), 48, "{kinds:?}");
}

#[test]
fn every_frame_decodes_when_split_at_every_byte_boundary() {
    for event in common::all_events() {
        let wire = encode(&event);
        // The 1 MB audio sample makes every split of it O(n²); its splits are covered by the
        // byte-at-a-time feed below.
        if wire.len() > 100_000 {
            continue;
        }
        for split in 0..=wire.len() {
            let mut codec = WyomingCodec::default();
            let mut buf = BytesMut::from(&wire[..split]);
            let early = codec.decode(&mut buf).expect("first part");
            if split < wire.len() {
                assert!(
                    early.is_none(),
                    "{} decoded from {split} of {} bytes",
                    event.kind(),
                    wire.len()
                );
                buf.extend_from_slice(&wire[split..]);
                let frame = codec.decode(&mut buf).expect("second part").expect("frame");
                assert_eq!(
                    Event::from_frame(frame).expect("typed"),
                    event,
                    "split at {split}"
                );
            } else {
                let frame = early.expect("whole frame");
                assert_eq!(Event::from_frame(frame).expect("typed"), event);
            }
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn all_events_fed_one_byte_at_a_time_decode_in_order() {
    let events = common::all_events();
    let mut wire = BytesMut::new();
    for event in &events {
        wire.extend_from_slice(&encode(event));
    }
    let mut codec = WyomingCodec::default();
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for &byte in wire.iter() {
        buf.extend_from_slice(&[byte]);
        while let Some(frame) = codec.decode(&mut buf).expect("decode") {
            decoded.push(Event::from_frame(frame).expect("typed"));
        }
    }
    assert_eq!(decoded, events);
    assert!(codec.decode_eof(&mut buf).expect("clean eof").is_none());
}

#[test]
fn large_info_goes_in_a_data_block_not_the_header_line() {
    let info: Event = common::large_info(400).into();
    let wire = encode(&info);
    let newline = wire.iter().position(|&b| b == b'\n').expect("header line");
    assert!(newline < 200, "header line is {newline} bytes");
    assert!(
        wire.len() > 64 * 1024,
        "sample must be larger than the Python line limit"
    );
    let mut buf = wire.clone();
    let frame = WyomingCodec::default()
        .decode(&mut buf)
        .expect("decode")
        .expect("frame");
    assert_eq!(Event::from_frame(frame).expect("typed"), info);
}

#[test]
fn unknown_events_pass_through_unchanged() {
    let wire = b"{\"type\":\"x-new\",\"data\":{\"a\":1},\"data_length\":7,\"payload_length\":2}\n{\"b\":2}hi";
    let mut buf = BytesMut::from(&wire[..]);
    let frame = WyomingCodec::default()
        .decode(&mut buf)
        .expect("decode")
        .expect("frame");
    let event = Event::from_frame(frame.clone()).expect("unknown is not an error");
    assert_eq!(event, Event::Unknown(frame.clone()));
    assert_eq!(frame.data.get("a"), Some(&serde_json::json!(1)));
    assert_eq!(frame.data.get("b"), Some(&serde_json::json!(2)));
    assert_eq!(frame.payload.as_deref(), Some(&b"hi"[..]));
    // Written back, it decodes to the same frame.
    let mut out = encode(&event);
    let again = WyomingCodec::default()
        .decode(&mut out)
        .expect("decode")
        .expect("frame");
    assert_eq!(again, frame);
}

#[test]
fn reads_what_old_and_python_writers_send() {
    let mut codec = WyomingCodec::new(Limits::default());
    // wyoming 1.0 (inline data, no version), Python 1.10.2 (spaces, nulls), CRLF, block over inline.
    let wire = concat!(
        "{\"type\": \"transcript\", \"data\": {\"text\": \"inline\"}}\n",
        "{\"type\": \"audio-start\", \"version\": \"1.10.2\", \"data_length\": 61}\r\n",
        "{\"rate\": 16000, \"width\": 2, \"channels\": 1, \"timestamp\": null}",
        "{\"type\": \"detect\", \"data\": {\"names\": [\"a\"], \"context\": null}, \"data_length\": 15}\n{\"names\": null}",
        "{\"type\": \"describe\", \"data_length\": null, \"payload_length\": 0}\n",
    );
    let mut buf = BytesMut::from(wire.as_bytes());
    let mut events = Vec::new();
    while let Some(frame) = codec.decode(&mut buf).expect("decode") {
        events.push(Event::from_frame(frame).expect("typed"));
    }
    let expected: Vec<Event> = vec![
        wyoming::asr::Transcript {
            text: "inline".into(),
            ..Default::default()
        }
        .into(),
        wyoming::audio::AudioStart::new(wyoming::audio::AudioFormat::HA_MIC, None).into(),
        wyoming::wake::Detect::default().into(),
        wyoming::info::Describe {}.into(),
    ];
    assert_eq!(events, expected);
}

#[test]
fn a_frame_is_written_with_data_as_a_block() {
    let frame = Frame::new("transcript").with_data(
        serde_json::json!({"text": "hi"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let mut buf = BytesMut::new();
    WyomingCodec::default()
        .encode(&frame, &mut buf)
        .expect("encode");
    assert_eq!(
        &buf[..],
        &b"{\"type\":\"transcript\",\"version\":\"1.10.2\",\"data_length\":13}\n{\"text\":\"hi\"}"
            [..]
    );
    // No data, no payload: a bare header, as the reference writes `describe`.
    let mut buf = BytesMut::new();
    WyomingCodec::default()
        .encode(&Event::from(wyoming::info::Describe {}), &mut buf)
        .expect("encode");
    assert_eq!(
        &buf[..],
        &b"{\"type\":\"describe\",\"version\":\"1.10.2\"}\n"[..]
    );
}
