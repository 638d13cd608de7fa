//! `[[tts.backends]]`: a Jarvis speaking through another Jarvis (real Piper voice), failover
//! before the first audio, an `error` after it, and a loop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use jarvis::config::Config;
use jarvis::stt::backends::{BackendKind, TtsBackendConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wyoming::tts::{Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop};
use wyoming::{Client, Event};

/// Synthesis takes turns: Piper on a 2-core machine is slowed by a parallel one.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

fn remote(addr: impl ToString, priority: i32) -> TtsBackendConfig {
    TtsBackendConfig {
        addr: Some(addr.to_string()),
        priority,
        connect_timeout_ms: 500,
        result_timeout_ms: 20_000,
        health_interval_secs: 1,
        ..TtsBackendConfig::default()
    }
}

/// A Jarvis with the local Piper voice behind `remotes` (tried first).
fn routed(remotes: Vec<TtsBackendConfig>) -> Config {
    let mut config = tts_config();
    config.tts.backends = remotes;
    config.tts.backends.push(TtsBackendConfig {
        kind: BackendKind::Local,
        priority: 100,
        ..TtsBackendConfig::default()
    });
    config
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Reads until `last` (an event type); returns the types seen and the bytes of audio.
async fn until(client: &mut Client, last: &str) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut audio = 0;
    loop {
        let event = recv(client).await.expect("server closed early");
        seen.push(event.kind().to_owned());
        if let Event::AudioChunk(chunk) = &event {
            audio += chunk.audio.len();
        }
        if event.kind() == last || matches!(event, Event::Error(_)) {
            return (seen, audio);
        }
    }
}

fn hello() -> Synthesize {
    Synthesize {
        text: "Hello from the other box.".into(),
        ..Synthesize::default()
    }
}

fn health(app: &jarvis::app::App, label: &str) -> jarvis::stt::backends::Health {
    app.services
        .tts_backends
        .as_ref()
        .expect("backends")
        .all()
        .iter()
        .find(|b| b.label == label)
        .expect("backend")
        .health()
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_jarvis_without_voices_speaks_through_another_and_shows_its_voices() {
    let _turn = one_at_a_time().await;
    let speaker = spawn_app(tts_config()).await;
    let mut config = test_config();
    config.tts.backends = vec![remote(speaker.wyoming_addr, 1)];
    let brain = spawn_app(config).await;
    let label = speaker.wyoming_addr.to_string();
    wait_for("the first health check", || {
        !health(&brain, &label).tts_programs.is_empty()
    })
    .await;
    let info = client(brain.wyoming_addr).await.describe().await.unwrap();
    assert_eq!(info.tts.len(), 1);
    let voices: Vec<&str> = info.tts[0].voices.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(voices, ["en_US-joe-medium"]);

    let mut client = client(brain.wyoming_addr).await;
    client.send(hello()).await.unwrap();
    let (seen, audio) = until(&mut client, "audio-stop").await;
    assert_eq!(
        seen.first().map(String::as_str),
        Some("audio-start"),
        "{seen:?}"
    );
    assert!(
        audio > 22_050,
        "at least half a second of speech: {audio} bytes"
    );

    // Streamed: one audio group per sentence, then synthesize-stopped.
    let mut client = common::client(brain.wyoming_addr).await;
    client.send(SynthesizeStart::default()).await.unwrap();
    for text in ["First sentence. ", "Second ", "sentence."] {
        client
            .send(SynthesizeChunk { text: text.into() })
            .await
            .unwrap();
    }
    client
        .send(Synthesize {
            text: "First sentence. Second sentence.".into(),
            ..Synthesize::default()
        })
        .await
        .unwrap();
    client.send(SynthesizeStop {}).await.unwrap();
    let (seen, _) = until(&mut client, "synthesize-stopped").await;
    let groups = seen.iter().filter(|t| *t == "audio-start").count();
    assert_eq!(groups, 2, "{seen:?}");
    brain.shutdown.cancel();
    speaker.shutdown.cancel();
}

/// A fake backend: `reply` gives what to write after it has read `text` so far (None: nothing);
/// closes after writing when `close`.
async fn fake(reply: fn(&str) -> Option<Vec<u8>>, close: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut heard = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => heard.extend_from_slice(&buf[..n]),
                    }
                    if let Some(bytes) = reply(&String::from_utf8_lossy(&heard)) {
                        heard.clear();
                        if stream.write_all(&bytes).await.is_err() || close {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

fn garbage(text: &str) -> Option<Vec<u8>> {
    text.contains("\"synthesize")
        .then(|| b"\x00\xff not a header\n".to_vec())
}

fn silent(_: &str) -> Option<Vec<u8>> {
    None
}

/// `audio-start` and one chunk of audio, then the connection closes.
fn dies_mid_speech(text: &str) -> Option<Vec<u8>> {
    text.contains("\"synthesize\"").then(|| {
        let mut out = br#"{"type":"audio-start","data":{"rate":22050,"width":2,"channels":1}}"#
            .to_vec();
        out.push(b'\n');
        out.extend_from_slice(
            br#"{"type":"audio-chunk","data":{"rate":22050,"width":2,"channels":1},"payload_length":4}"#,
        );
        out.extend_from_slice(b"\n\x01\x00\x02\x00");
        out
    })
}

#[tokio::test]
async fn a_backend_that_fails_before_its_first_audio_is_left_for_the_next() {
    let _turn = one_at_a_time().await;
    let bad_garbage = fake(garbage, true).await;
    let bad_silent = fake(silent, false).await;
    let mut quiet = remote(bad_silent, 2);
    quiet.result_timeout_ms = 500;
    quiet.health_interval_secs = 3600;
    let mut noisy = remote(bad_garbage, 1);
    noisy.health_interval_secs = 3600;
    let closed = remote(free_port(), 0);
    let app = spawn_app(routed(vec![closed, noisy, quiet])).await;
    let mut client = client(app.wyoming_addr).await;
    client.send(hello()).await.unwrap();
    let (seen, audio) = until(&mut client, "audio-stop").await;
    assert_eq!(
        seen.first().map(String::as_str),
        Some("audio-start"),
        "{seen:?}"
    );
    assert!(audio > 22_050);
    for bad in [bad_garbage, bad_silent] {
        assert!(!health(&app, &bad.to_string()).up);
    }
    let url = format!("http://{}/health", app.http_addr.unwrap());
    let health: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let backends = health["tts_backends"].as_array().unwrap();
    let up: Vec<bool> = backends
        .iter()
        .map(|b| b["up"].as_bool().unwrap())
        .collect();
    assert_eq!(up, [false, false, false, true], "{health}");
    assert_eq!(backends[3]["kind"], "local");
    app.shutdown.cancel();
}

#[tokio::test]
async fn a_backend_that_fails_after_its_first_audio_ends_in_an_error() {
    let _turn = one_at_a_time().await;
    let dying = fake(dies_mid_speech, true).await;
    let mut backend = remote(dying, 1);
    backend.health_interval_secs = 3600;
    let app = spawn_app(routed(vec![backend])).await;
    let mut client = client(app.wyoming_addr).await;
    client.send(hello()).await.unwrap();
    let (seen, audio) = until(&mut client, "audio-stop").await;
    assert_eq!(seen, ["audio-start", "audio-chunk", "error"]);
    assert_eq!(audio, 4);
    assert_still_served(&mut client).await;
    app.shutdown.cancel();
}

#[tokio::test]
async fn jarvis_as_its_own_voice_backend_is_refused_not_recursed() {
    let _turn = one_at_a_time().await;
    let me = free_port();
    let mut config = routed(vec![remote(me, 1)]);
    config.wyoming.addr = me;
    let app = spawn_app(config).await;
    let mut client = client(app.wyoming_addr).await;
    client.send(hello()).await.unwrap();
    let (seen, audio) = until(&mut client, "audio-stop").await;
    assert_eq!(
        seen.first().map(String::as_str),
        Some("audio-start"),
        "{seen:?}"
    );
    assert!(audio > 22_050);
    assert!(health(&app, &me.to_string()).looped);
    app.shutdown.cancel();
}

/// `audio-start`, one 10 ms chunk and `audio-stop` for each `synthesize`.
fn instant(text: &str) -> Option<Vec<u8>> {
    text.contains("\"synthesize\"").then(|| {
        let mut out = dies_mid_speech(text).unwrap_or_default();
        out.extend_from_slice(b"{\"type\":\"audio-stop\"}\n");
        out
    })
}

/// Time from `synthesize` sent to the first `audio-chunk` read, median of `n`.
async fn first_audio_ms(addr: SocketAddr, n: usize) -> f64 {
    let mut times = Vec::new();
    for _ in 0..n {
        let mut client = client(addr).await;
        let started = Instant::now();
        client.send(hello()).await.unwrap();
        loop {
            match recv(&mut client).await.expect("audio") {
                Event::AudioChunk(_) => break,
                Event::Error(err) => panic!("{err:?}"),
                _ => {}
            }
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// `cargo test --test tts_backends bench -- --ignored --nocapture` (scripts/bench.sh backends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by scripts/bench.sh backends"]
async fn bench_first_audio_through_a_backend() {
    let _turn = one_at_a_time().await;
    let backend = fake(instant, false).await;
    let mut config = test_config();
    let mut remote = remote(backend, 1);
    remote.health_interval_secs = 3600;
    config.tts.backends = vec![remote];
    let router = spawn_app(config).await;
    let direct = first_audio_ms(backend, 30).await;
    let routed = first_audio_ms(router.wyoming_addr, 30).await;
    println!(
        "routing (tts): synthesize -> first audio-chunk, median of 30: direct {direct:.2} ms, \
         through Jarvis {routed:.2} ms, added {:.2} ms",
        routed - direct
    );
    router.shutdown.cancel();
}
