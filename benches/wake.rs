//! Wake word figures with the real openWakeWord models. Prints figures; asserts nothing about
//! time. Run with `cargo bench --bench wake` (models from `JARVIS_MODELS_DIR`, default
//! `../shared/models`; espeak-ng must be installed).
//!
//! 1. CPU time per second of audio per stream: `jarvis serve` with only the wake word, fed 1 and
//!    then 100 streams in real time (10 ms chunks every 10 ms, as Home Assistant sends them);
//!    the server process's user + system time over the audio streamed.
//! 2. Detection latency: "hey jarvis" streamed in real time, wall time from sending the chunk in
//!    which the phrase ends (the last 10 ms with energy over 5 % of the loudest) to receiving
//!    `detection`, at ten offsets against the 80 ms step grid; and the same for each of the 100
//!    streams under load.
//! 3. Recall and false accepts on clips generated now with the Piper joe voice and espeak-ng
//!    voices (tests/common/wake_clips.rs): "hey jarvis" variants, ordinary household speech, and
//!    near misses ("hey Travis", "Jarvis", ...), at the configured threshold.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod common;
#[path = "../tests/common/wake_clips.rs"]
mod wake_clips;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bench_config, models_dir, peak_rss_mb, serve_binary};
use wyoming::audio::{AudioChunk, AudioFormat, AudioStart};
use wyoming::wake::Detect;
use wyoming::{Client, Event};

const FORMAT: AudioFormat = AudioFormat::HA_MIC;
/// Seconds each stream runs in the CPU measurement.
const STREAM_SECS: u64 = 20;

fn read_sample(name: &str) -> Vec<i16> {
    wake_clips::read_wav(&models_dir().join("wakeword/samples").join(name)).1
}

fn pcm(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// CPU seconds (user + system) of a process so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

/// Streams `audio` in real time; returns, per detection, the wall time from sending the chunk
/// that holds each phrase end in `ends_ms` (audio time) to receiving it.
async fn real_time(addr: SocketAddr, audio: Vec<i16>, ends_ms: Vec<u64>) -> Vec<Option<f64>> {
    let client = Client::connect(addr).await.unwrap();
    let (mut reader, mut writer) = client.into_split();
    writer
        .write_event(Detect {
            names: Some(vec!["hey_jarvis".into()]),
            context: None,
        })
        .await
        .unwrap();
    writer
        .write_event(AudioStart::new(FORMAT, None))
        .await
        .unwrap();
    let sent_at = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let sent = Arc::clone(&sent_at);
    let chunks = audio.len() / 160;
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for i in 0..chunks {
            tick.tick().await;
            let chunk = pcm(&audio[i * 160..(i + 1) * 160]);
            if writer
                .write_event(AudioChunk::new(FORMAT, chunk, None))
                .await
                .is_err()
            {
                return;
            }
            sent.lock().unwrap().push(Instant::now());
        }
    });
    let mut received = Vec::new();
    let deadline = Duration::from_millis(chunks as u64 * 10 + 2000);
    let _ = tokio::time::timeout(deadline, async {
        while received.len() < ends_ms.len() {
            match reader.read_event().await {
                Ok(Some(Event::Detection(_))) => received.push(Instant::now()),
                Ok(Some(_)) => {}
                _ => return,
            }
        }
    })
    .await;
    // The stream goes on to its end, as a satellite's does.
    let _ = tokio::time::timeout(deadline, sender).await;
    let sent = sent_at.lock().unwrap().clone();
    ends_ms
        .iter()
        .enumerate()
        .map(|(i, end)| {
            let chunk = (*end / 10) as usize;
            let at = received.get(i)?;
            let end_sent = sent.get(chunk.saturating_sub(1))?;
            Some(if at >= end_sent {
                at.duration_since(*end_sent).as_secs_f64() * 1000.0
            } else {
                -(end_sent.duration_since(*at).as_secs_f64() * 1000.0)
            })
        })
        .collect()
}

fn describe(mut values: Vec<f64>) -> String {
    if values.is_empty() {
        return "no values".into();
    }
    values.sort_by(f64::total_cmp);
    let pick = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:.0} ms, p90 {:.0} ms, min {:.0} ms, max {:.0} ms (n = {})",
        pick(0.5),
        pick(0.9),
        values[0],
        values[values.len() - 1],
        values.len()
    )
}

/// `STREAM_SECS` of speech and pauses: "hey jarvis" once, then other speech.
fn stream_audio(hey: &[i16], other: &[i16]) -> (Vec<i16>, u64) {
    let mut audio = wake_clips::silence(16_000, 500);
    let end = 500 + wake_clips::speech_end_ms(16_000, hey);
    audio.extend_from_slice(hey);
    while audio.len() < (STREAM_SECS * 16_000) as usize {
        audio.extend_from_slice(other);
        audio.extend(wake_clips::silence(16_000, 700));
    }
    audio.truncate((STREAM_SECS * 16_000) as usize);
    (audio, end)
}

async fn cpu_per_stream(addr: SocketAddr, pid: u32, streams: usize, hey: &[i16], other: &[i16]) {
    let (audio, end) = stream_audio(hey, other);
    let before = cpu_secs(pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..streams {
        let audio = audio.clone();
        tasks.push(tokio::spawn(async move {
            // Spread the streams' starts over one 10 ms tick, as independent satellites are.
            tokio::time::sleep(Duration::from_micros((i as u64 * 97) % 10_000)).await;
            real_time(addr, audio, vec![end]).await
        }));
    }
    let mut latencies = Vec::new();
    let mut missed = 0;
    for task in tasks {
        match task.await.unwrap()[0] {
            Some(latency) => latencies.push(latency),
            None => missed += 1,
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - before;
    let audio_secs = (streams as u64 * STREAM_SECS) as f64;
    println!(
        "{streams:>3} real-time stream(s) x {STREAM_SECS} s: server CPU {cpu:.2} s in {wall:.1} s \
         = {:.2} % of one core per stream ({:.0} % of one core in all)",
        cpu / audio_secs * 100.0,
        cpu / wall * 100.0,
    );
    println!(
        "    detection latency under this load: {}; missed {missed}",
        describe(latencies)
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!("wake word, openWakeWord hey_jarvis_v0.1, {cores} cores");
        let hey = read_sample("hey_jarvis_joe_16k.wav");
        let other = read_sample("turn_on_kitchen_lights_joe_16k.wav");

        let (mut child, addr) = serve_binary("wake-only.toml").await;
        let pid = child.id().unwrap();

        // Latency on an idle server, at ten phases of the 80 ms step grid.
        let end_in_clip = wake_clips::speech_end_ms(16_000, &hey);
        let mut latencies = Vec::new();
        for offset in (0..80).step_by(8) {
            let lead = 1000 + offset;
            let mut audio = wake_clips::silence(16_000, lead);
            audio.extend_from_slice(&hey);
            audio.extend(wake_clips::silence(16_000, 1000));
            if let Some(latency) = real_time(addr, audio, vec![lead + end_in_clip]).await[0] {
                latencies.push(latency);
            }
        }
        println!(
            "detection latency after the phrase ends (idle server): {}",
            describe(latencies)
        );

        for streams in [1, 100] {
            cpu_per_stream(addr, pid, streams, &hey, &other).await;
        }
        println!(
            "peak RSS of `jarvis serve` (wake word only) after 100 streams: {:.1} MB",
            peak_rss_mb(pid)
        );
        child.kill().await.unwrap();

        // Recall and false accepts on generated clips.
        // The wake word, and the Piper voice that speaks the clips.
        let mut config = bench_config();
        config.wake.enabled = true;
        config.tts.enabled = true;
        config.tts.cache = false;
        let app = jarvis::app::spawn(config).await.unwrap();
        let wake = Arc::clone(app.services.wake.as_ref().unwrap());
        let tts = Arc::clone(app.services.tts.as_ref().unwrap());
        let threshold = wake.config().threshold;
        for (kind, phrases) in [
            ("hey jarvis", wake_clips::POSITIVES),
            ("ordinary speech", wake_clips::NEGATIVES),
            ("near misses", wake_clips::NEAR_MISSES),
        ] {
            let tts = Arc::clone(&tts);
            let clips = tokio::task::spawn_blocking(move || wake_clips::clips(&tts, phrases))
                .await
                .unwrap();
            let mut woke = Vec::new();
            let mut quiet = Vec::new();
            for clip in &clips {
                let mut audio = wake_clips::silence(16_000, 1000);
                audio.extend(clip.to_16k());
                audio.extend(wake_clips::silence(16_000, 1000));
                let audio: Vec<f32> = audio.iter().map(|&s| f32::from(s)).collect();
                let scores = wake.scores(&audio, &[0]).await.unwrap();
                let peak = scores[0].iter().copied().fold(0.0f32, f32::max);
                let line = format!("{} ({peak:.3})", clip.label);
                if peak >= threshold {
                    woke.push(line);
                } else {
                    quiet.push(line);
                }
            }
            println!(
                "{kind}: {} of {} clips wake it (threshold {threshold})",
                woke.len(),
                clips.len()
            );
            let (list, what) = if kind == "hey jarvis" {
                (&quiet, "missed")
            } else {
                (&woke, "woke")
            };
            for line in list {
                println!("    {what}: {line}");
            }
        }
        app.shutdown.cancel();
        let _ = app.finished.await;
    });
}
