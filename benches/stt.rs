//! Speech-to-text latency over Wyoming with the real tiny.en and Silero models. Prints figures;
//! asserts nothing about time. Run with `cargo bench --bench stt` (models from
//! `JARVIS_MODELS_DIR`, default `../shared/models`).
//!
//! 1. jfk.wav (11 s) and a 2-second command, streamed as fast as possible then `audio-stop`:
//!    time from the last audio byte to the transcript, and the real-time factor.
//! 2. The 2-second command streamed in real time (10 ms chunks every 10 ms) with endpointing and
//!    no `audio-stop`: time from the end of speech to the transcript.
//! 3. Peak RSS of the process (server and this client).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod common;

use std::path::PathBuf;

use common::{bench_config, models_dir, peak_rss_mb, serve_binary};
use std::time::{Duration, Instant};

use jarvis::config::Config;
use wyoming::asr::Transcribe;
use wyoming::audio::{AudioChunk, AudioFormat, AudioStart, AudioStop};
use wyoming::{Client, Event};

const RUNS: usize = 7;

fn read_wav(path: PathBuf) -> Vec<i16> {
    let mut reader = hound::WavReader::open(&path).unwrap();
    reader.samples::<i16>().map(Result::unwrap).collect()
}

fn pcm(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn config(vad: bool) -> Config {
    // Speech-to-text alone: no Piper voice, wake word or ONNX Runtime threads beside it.
    let mut config = bench_config();
    config.stt.enabled = true;
    config.stt.vad.enabled = vad;
    if let Some(threads) = std::env::var("JARVIS_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
    {
        config.stt.threads = threads;
    }
    config
}

async fn transcript(client: &mut Client) -> String {
    loop {
        match client.recv().await.unwrap().expect("transcript") {
            Event::Transcript(t) => return t.text,
            Event::Error(e) => panic!("{}", e.text),
            _ => {}
        }
    }
}

/// Streams `samples` at full speed, then `audio-stop`; returns (last byte -> transcript, text).
async fn batch(addr: std::net::SocketAddr, samples: &[i16]) -> (Duration, String) {
    let mut client = Client::connect(addr).await.unwrap();
    client.send(Transcribe::default()).await.unwrap();
    client
        .send(AudioStart::new(AudioFormat::HA_MIC, None))
        .await
        .unwrap();
    for chunk in pcm(samples).chunks(320) {
        client
            .send(AudioChunk::new(AudioFormat::HA_MIC, chunk.to_vec(), None))
            .await
            .unwrap();
    }
    client.send(AudioStop::default()).await.unwrap();
    let sent = Instant::now();
    let text = transcript(&mut client).await;
    (sent.elapsed(), text)
}

/// Streams in real time with no `audio-stop`; returns (end of speech -> transcript, text).
async fn live(
    addr: std::net::SocketAddr,
    samples: &[i16],
    speech_end_chunk: usize,
) -> (Duration, String) {
    let mut client = Client::connect(addr).await.unwrap();
    client.send(Transcribe::default()).await.unwrap();
    client
        .send(AudioStart::new(AudioFormat::HA_MIC, None))
        .await
        .unwrap();
    let (mut reader, mut writer) = client.into_split();
    let audio = pcm(samples);
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    let sender = tokio::spawn(async move {
        let mut ended = Some(ended_tx);
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for (i, chunk) in audio.chunks(320).enumerate() {
            tick.tick().await;
            if writer
                .write_event(AudioChunk::new(AudioFormat::HA_MIC, chunk.to_vec(), None))
                .await
                .is_err()
            {
                return;
            }
            if i == speech_end_chunk {
                if let Some(tx) = ended.take() {
                    let _ = tx.send(Instant::now());
                }
            }
        }
    });
    let text = loop {
        match reader.read_event().await.unwrap().expect("transcript") {
            Event::Transcript(t) => break t.text,
            Event::Error(e) => panic!("{}", e.text),
            _ => {}
        }
    };
    let received = Instant::now();
    sender.abort();
    let ended = ended_rx.await.expect("speech ended before the transcript");
    (received.saturating_duration_since(ended), text)
}

fn summary(name: &str, mut times: Vec<Duration>, audio_secs: f32, text: &str) {
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "{name:<44} median {:>6.1} ms  min {:>6.1} ms  max {:>6.1} ms  RTF {:.3}  {text:?}",
        median.as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0,
        median.as_secs_f32() / audio_secs,
    );
}

fn main() {
    if let Ok(filter) = std::env::var("JARVIS_BENCH_LOG") {
        let _ = jarvis::telemetry::init(&jarvis::config::LogConfig {
            level: filter,
            format: jarvis::config::LogFormat::Text,
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let jfk = read_wav(models_dir().join("whisper/samples/jfk.wav"));
        let kitchen =
            read_wav(models_dir().join("wakeword/samples/turn_on_kitchen_lights_joe_16k.wav"));
        // "Turn on the kitchen lights": speech from 1.0 s to 2.3 s; keep 0.6..2.6 s = 2.0 s.
        let command = &kitchen[(0.6 * 16_000.0) as usize..(2.6 * 16_000.0) as usize];
        println!(
            "speech-to-text, tiny.en, {} cores",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );

        let app = jarvis::app::spawn(config(false)).await.unwrap();
        for (name, samples) in [
            ("jfk.wav (11.0 s), last byte -> transcript", &jfk[..]),
            ("2 s command, last byte -> transcript", command),
        ] {
            let _ = batch(app.wyoming_addr, samples).await; // warm-up
            let mut times = Vec::new();
            let mut text = String::new();
            for _ in 0..RUNS {
                let (t, s) = batch(app.wyoming_addr, samples).await;
                times.push(t);
                text = s;
            }
            summary(name, times, samples.len() as f32 / 16_000.0, &text);
        }
        app.shutdown.cancel();
        let _ = app.finished.await;
        drop(app.services);

        let app = jarvis::app::spawn(config(true)).await.unwrap();
        // Real-time stream: the 2 s command, then a second of silence; speech ends in the chunk
        // holding the last sample louder than the room.
        let mut stream = command.to_vec();
        stream.extend(std::iter::repeat_n(0i16, 16_000));
        let last_loud = stream.iter().rposition(|s| s.unsigned_abs() > 300).unwrap();
        let end_chunk = last_loud / 160;
        let mut times = Vec::new();
        let mut text = String::new();
        for _ in 0..RUNS {
            let (t, s) = live(app.wyoming_addr, &stream, end_chunk).await;
            times.push(t);
            text = s;
        }
        summary(
            "2 s command, live, end of speech -> transcript",
            times,
            2.0,
            &text,
        );
        app.shutdown.cancel();
        let _ = app.finished.await;
        drop(app.services);

        // Peak RSS of the real server process (default configuration, endpointing on) after
        // it has served both kinds of request.
        let (mut child, addr) = serve_binary("stt-only.toml").await;
        let _ = batch(addr, &jfk).await;
        let _ = live(addr, &stream, end_chunk).await;
        let pid = child.id().unwrap();
        println!(
            "peak RSS of `jarvis serve` (speech-to-text only) after jfk + live command: {:.1} MB",
            peak_rss_mb(pid)
        );
        child.kill().await.unwrap();
    });
}
