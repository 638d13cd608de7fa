//! Text-to-speech latency over Wyoming with the real Piper voice. Prints figures; asserts
//! nothing about time. Run with `cargo bench --bench tts` (models from `JARVIS_MODELS_DIR`,
//! default `../shared/models`).
//!
//! For 1-, 2- and 4-sentence texts (first sentence of at most eight words): time from sending
//! `synthesize` to the first `audio-chunk`, total time, and the real-time factor (total time /
//! audio duration), cold and cached. Then the peak RSS of `jarvis serve` with only
//! text-to-speech loaded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod common;

use common::{bench_config, models_dir, peak_rss_mb, serve_binary};
use std::time::{Duration, Instant};

use jarvis::config::Config;
use jarvis::tts::engine::{Delivery, Scales, Voice};
use wyoming::tts::Synthesize;
use wyoming::{Client, Event};

const RUNS: usize = 7;

const TEXTS: [(&str, &str); 3] = [
    ("1 sentence", "Node pve is online and healthy."),
    (
        "2 sentences",
        "Node pve is online. Three of its guests are running and two are stopped.",
    ),
    (
        "4 sentences",
        "Rebooting media-server on pve. It should be back in about a minute. \
         The nightly backup finished without errors. Storage local-lvm is sixty percent full.",
    ),
];

/// Returns (first chunk, total, seconds of audio).
async fn synthesize(addr: std::net::SocketAddr, text: &str) -> (Duration, Duration, f32) {
    let mut client = Client::connect(addr).await.unwrap();
    let started = Instant::now();
    client
        .send(Synthesize {
            text: text.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut first = None;
    let mut bytes = 0usize;
    let mut rate = 22_050;
    loop {
        match client.recv().await.unwrap().expect("audio") {
            Event::AudioStart(start) => rate = start.rate,
            Event::AudioChunk(chunk) => {
                first.get_or_insert_with(|| started.elapsed());
                bytes += chunk.audio.len();
            }
            Event::AudioStop(_) => break,
            Event::Error(err) => panic!("{}", err.text),
            _ => {}
        }
    }
    (
        first.unwrap_or_default(),
        started.elapsed(),
        bytes as f32 / 2.0 / rate as f32,
    )
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// One sentence straight through the engine, no Wyoming: (first audio, all audio, seconds).
fn speak(voice: &mut Voice, text: &str, delivery: Delivery) -> (Duration, Duration, f32) {
    let started = Instant::now();
    let mut first = None;
    let mut samples = 0;
    let scales = Scales {
        noise: 0.667,
        length: 1.0,
        noise_w: 0.8,
    };
    voice
        .speak(text, None, scales, delivery, &mut |audio| {
            first.get_or_insert_with(|| started.elapsed());
            samples += audio.len();
            true
        })
        .unwrap();
    (first.unwrap(), started.elapsed(), samples as f32 / 22_050.0)
}

/// The voice run as Piper runs it (one model) against the cut voice, whole and in pieces.
/// The three take turns, so a busy moment on the machine falls on all of them.
fn engine() {
    let dir = models_dir();
    jarvis::onnx::init_runtime(&dir.join(&Config::default().tts.onnxruntime)).unwrap();
    let info = jarvis::tts::voices::read_voice(&dir.join("piper/en_US-joe-medium.onnx")).unwrap();
    let mut model = Voice::load_whole(&info).unwrap();
    let mut cut = Voice::load(&info).unwrap();
    println!(
        "-- one sentence through the engine (no Wyoming), median of {ENGINE_RUNS}; cut voice decoded with {:?} frames of context",
        cut.pad()
    );
    for text in [
        "Node pve is online.",
        "Node pve is online and healthy.",
        "Rebooting media-server on node pve now, it should be back in about a minute.",
    ] {
        let mut runs: [Vec<(Duration, Duration, f32)>; 3] = Default::default();
        for _ in 0..ENGINE_RUNS {
            runs[0].push(speak(&mut model, text, Delivery::Whole));
            runs[1].push(speak(&mut cut, text, Delivery::Whole));
            runs[2].push(speak(&mut cut, text, Delivery::Pieces));
        }
        println!("{text:?}");
        for (name, runs) in ["whole model", "cut, whole", "cut, pieces"]
            .iter()
            .zip(runs)
        {
            let audio = runs[0].2;
            let first = median(runs.iter().map(|r| r.0).collect());
            let total = median(runs.iter().map(|r| r.1).collect());
            println!(
                "  {name:<12} first audio {:>6.1} ms  all {:>6.1} ms  audio {audio:>5.2} s  RTF {:.3}",
                first.as_secs_f64() * 1000.0,
                total.as_secs_f64() * 1000.0,
                total.as_secs_f32() / audio
            );
        }
    }
}

const ENGINE_RUNS: usize = 15;

fn main() {
    engine();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut config = bench_config();
        config.tts.enabled = true;
        config.tts.cache = false;
        let cache_dir = std::env::temp_dir().join(format!("jarvis-tts-bench-{}", std::process::id()));
        println!("text-to-speech, en_US-joe-medium, {} cores", std::thread::available_parallelism().map_or(1, |n| n.get()));
        for cached in [false, true] {
        let mut config = config.clone();
        config.tts.cache = cached;
        config.tts.cache_dir = cache_dir.clone();
        let app = jarvis::app::spawn(config).await.unwrap();
        println!("-- {}", if cached { "cached" } else { "cold (no cache)" });
        for (name, text) in TEXTS {
            let _ = synthesize(app.wyoming_addr, text).await; // warm-up
            let mut firsts = Vec::new();
            let mut totals = Vec::new();
            let mut audio = 0.0;
            for _ in 0..RUNS {
                let (first, total, secs) = synthesize(app.wyoming_addr, text).await;
                firsts.push(first);
                totals.push(total);
                audio = secs;
            }
            let (first, total) = (median(firsts), median(totals));
            println!(
                "{name:<12} first audio-chunk {:>6.1} ms  total {:>7.1} ms  audio {audio:>5.2} s  RTF {:.3}",
                first.as_secs_f64() * 1000.0,
                total.as_secs_f64() * 1000.0,
                total.as_secs_f32() / audio
            );
        }
        app.shutdown.cancel();
        let _ = app.finished.await;
        }
        let _ = std::fs::remove_dir_all(&cache_dir);

        // Peak RSS of the real server process with only text-to-speech loaded, after the
        // longest text.
        let (mut child, addr) = serve_binary("tts-only.toml").await;
        let _ = synthesize(addr, TEXTS[2].1).await;
        let pid = child.id().unwrap();
        println!("peak RSS of `jarvis serve` (text-to-speech only) after 4 sentences: {:.1} MB", peak_rss_mb(pid));
        child.kill().await.unwrap();
    });
}
