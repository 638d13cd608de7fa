//! Codec throughput: 10 ms audio chunks (320 bytes, what HA streams 100 times a second) and 1 MB
//! payloads. Run with `cargo bench -p wyoming --bench codec`; criterion prints time per event
//! (events/s = 1 / time) and throughput.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio_util::codec::{Decoder, Encoder};
use wyoming::audio::{AudioChunk, AudioFormat};
use wyoming::{Event, WyomingCodec};

fn chunk(len: usize) -> Event {
    let audio: Bytes = (0..len).map(|i| i as u8).collect::<Vec<u8>>().into();
    AudioChunk::new(AudioFormat::HA_MIC, audio, Some(1_000)).into()
}

fn bench_size(c: &mut Criterion, name: &str, len: usize) {
    let event = chunk(len);
    let mut wire = BytesMut::new();
    WyomingCodec::default().encode(&event, &mut wire).unwrap();
    let wire = wire.freeze();

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(wire.len() as u64));

    group.bench_function("decode frame", |b| {
        let mut codec = WyomingCodec::default();
        b.iter(|| {
            let mut buf = BytesMut::from(&wire[..]);
            black_box(codec.decode(&mut buf).unwrap().unwrap())
        })
    });
    group.bench_function("decode event", |b| {
        let mut codec = WyomingCodec::default();
        b.iter(|| {
            let mut buf = BytesMut::from(&wire[..]);
            let frame = codec.decode(&mut buf).unwrap().unwrap();
            black_box(Event::from_frame(frame).unwrap())
        })
    });
    group.bench_function("encode event", |b| {
        let mut codec = WyomingCodec::default();
        let mut buf = BytesMut::with_capacity(wire.len() * 2);
        b.iter(|| {
            buf.clear();
            codec.encode(&event, &mut buf).unwrap();
            black_box(buf.len())
        })
    });
    group.bench_function("encode+decode event", |b| {
        let mut codec = WyomingCodec::default();
        let mut buf = BytesMut::with_capacity(wire.len() * 2);
        b.iter(|| {
            codec.encode(&event, &mut buf).unwrap();
            let frame = codec.decode(&mut buf).unwrap().unwrap();
            black_box(Event::from_frame(frame).unwrap())
        })
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    bench_size(c, "audio-chunk 320 B", 320);
    bench_size(c, "audio-chunk 1 MB", 1_000_000);
}

criterion_group!(benches, codec);
criterion_main!(benches);
