//! `[[stt.backends]]`: two Jarvis instances on loopback (one the other's remote backend), the
//! reference Python Wyoming server as a third-party backend, and backends that misbehave. The
//! transcripts come from the real whisper tiny.en model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use jarvis::config::Config;
use jarvis::stt::backends::{BackendKind, SttBackendConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wyoming::asr::{Transcribe, Transcript};
use wyoming::audio::{AudioChunk, AudioFormat, AudioStart, AudioStop};
use wyoming::{Client, Event};

/// Decodes take turns: whisper on a 2-core machine is slowed many times by a parallel decode.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

fn jfk() -> PathBuf {
    models_dir().join("whisper/samples/jfk.wav")
}

fn kitchen() -> PathBuf {
    models_dir().join("wakeword/samples/turn_on_kitchen_lights_joe_16k.wav")
}

fn pcm_of(path: &PathBuf) -> Vec<u8> {
    let mut reader = hound::WavReader::open(path).unwrap();
    assert_eq!(reader.spec().sample_rate, 16_000);
    assert_eq!(reader.spec().channels, 1);
    reader
        .samples::<i16>()
        .flat_map(|s| s.unwrap().to_le_bytes())
        .collect()
}

/// Whisper with our endpointing off: `audio-stop` ends the audio (JFK's pauses must not).
fn local_stt() -> Config {
    let mut config = stt_config();
    config.stt.vad.enabled = false;
    config
}

fn remote(addr: impl ToString, priority: i32) -> SttBackendConfig {
    SttBackendConfig {
        addr: Some(addr.to_string()),
        priority,
        connect_timeout_ms: 500,
        // Whisper in a debug build takes seconds for JFK on two cores.
        result_timeout_ms: 30_000,
        health_interval_secs: 1,
        ..SttBackendConfig::default()
    }
}

fn local(priority: i32) -> SttBackendConfig {
    SttBackendConfig {
        kind: BackendKind::Local,
        priority,
        ..SttBackendConfig::default()
    }
}

/// A Jarvis with the local whisper engine behind `remotes` (tried first).
fn routed(remotes: Vec<SttBackendConfig>) -> Config {
    let mut config = local_stt();
    config.stt.backends = remotes;
    config.stt.backends.push(local(100));
    config
}

/// A free loopback port (for configurations that must name their own address).
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn send_audio(client: &mut Client, pcm: &[u8]) {
    let format = AudioFormat::HA_MIC;
    for chunk in pcm.chunks(320) {
        client
            .send(AudioChunk::new(format, chunk.to_vec(), None))
            .await
            .unwrap();
    }
}

/// `transcribe`, `audio-start`, the audio, `audio-stop`; then the transcript's text (and the
/// event types seen up to it).
async fn transcribe(addr: SocketAddr, pcm: &[u8]) -> (String, Vec<String>) {
    let mut client = client(addr).await;
    client.send(Transcribe::default()).await.unwrap();
    client
        .send(AudioStart::new(AudioFormat::HA_MIC, None))
        .await
        .unwrap();
    send_audio(&mut client, pcm).await;
    client.send(AudioStop::default()).await.unwrap();
    until_transcript(&mut client).await
}

async fn until_transcript(client: &mut Client) -> (String, Vec<String>) {
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), client.recv())
            .await
            .expect("transcript in time")
            .expect("well-formed event")
            .expect("server closed before the transcript");
        seen.push(event.kind().to_owned());
        match event {
            Event::Transcript(t) => return (t.text.to_lowercase(), seen),
            Event::Error(err) => panic!("error instead of a transcript: {err:?} after {seen:?}"),
            _ => {}
        }
    }
}

fn assert_jfk(text: &str) {
    for words in [
        "my fellow americans",
        "ask not what your country can do for you",
        "ask what you can do for your country",
    ] {
        assert!(text.contains(words), "{words:?} missing from {text:?}");
    }
}

fn assert_kitchen(text: &str) {
    assert!(text.contains("kitchen"), "{text:?}");
}

/// The health of the backend named `label` in `app`.
fn health(app: &jarvis::app::App, label: &str) -> jarvis::stt::backends::Health {
    let backends = app.services.stt_backends.as_ref().expect("backends");
    backends
        .all()
        .iter()
        .find(|b| b.label == label)
        .expect("backend")
        .health()
}

/// Waits (polling, bounded) until `check` holds.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_remote_jarvis_transcribes_and_info_shows_one_server() {
    let _turn = one_at_a_time().await;
    let gpu_box = spawn_app(local_stt()).await;
    // The brain's Jarvis has no engine of its own: the remote does all the work.
    let mut config = test_config();
    config.stt.backends = vec![remote(gpu_box.wyoming_addr, 1)];
    let brain = spawn_app(config).await;
    let label = gpu_box.wyoming_addr.to_string();
    until("the first health check", || {
        !health(&brain, &label).programs.is_empty()
    })
    .await;
    let info = client(brain.wyoming_addr).await.describe().await.unwrap();
    assert_eq!(info.asr.len(), 1, "{info:?}");
    let models: Vec<&str> = info.asr[0].models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(models, ["tiny.en"]);
    assert_eq!(info.asr[0].models[0].languages, ["en"]);
    let (text, seen) = transcribe(brain.wyoming_addr, &pcm_of(&jfk())).await;
    assert_jfk(&text);
    assert_eq!(seen.first().map(String::as_str), Some("transcript-start"));
    let h = health(&brain, &label);
    assert!(h.up && h.latency.is_some(), "{h:?}");
    brain.shutdown.cancel();
    gpu_box.shutdown.cancel();
}

#[tokio::test]
async fn info_merges_local_and_remote_models_without_duplicates() {
    let _turn = one_at_a_time().await;
    let gpu_box = spawn_app(local_stt()).await;
    let brain = spawn_app(routed(vec![remote(gpu_box.wyoming_addr, 1)])).await;
    let label = gpu_box.wyoming_addr.to_string();
    until("the first health check", || {
        !health(&brain, &label).programs.is_empty()
    })
    .await;
    let info = client(brain.wyoming_addr).await.describe().await.unwrap();
    assert_eq!(info.asr.len(), 1);
    let names: Vec<&str> = info.asr[0].models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["tiny.en"], "both have tiny.en: listed once");
    brain.shutdown.cancel();
    gpu_box.shutdown.cancel();
}

#[tokio::test]
async fn the_remote_killed_mid_request_leaves_the_local_backend_every_word() {
    let _turn = one_at_a_time().await;
    let gpu_box = spawn_app(local_stt()).await;
    let brain = spawn_app(routed(vec![remote(gpu_box.wyoming_addr, 1)])).await;
    let pcm = pcm_of(&jfk());
    let (first, rest) = pcm.split_at(pcm.len() / 2);

    let mut client = client(brain.wyoming_addr).await;
    client.send(Transcribe::default()).await.unwrap();
    client
        .send(AudioStart::new(AudioFormat::HA_MIC, None))
        .await
        .unwrap();
    send_audio(&mut client, first).await;
    // The remote has heard half of it when it dies (loopback forwards within milliseconds;
    // were it slower, the remote would die before hearing it, which must work as well).
    tokio::time::sleep(Duration::from_millis(300)).await;
    gpu_box.shutdown.cancel();
    tokio::time::timeout(LIMIT, gpu_box.finished)
        .await
        .expect("the remote stops")
        .unwrap()
        .unwrap();
    send_audio(&mut client, rest).await;
    client.send(AudioStop::default()).await.unwrap();
    let (text, _) = until_transcript(&mut client).await;
    assert_jfk(&text);
    let h = health(&brain, &gpu_box.wyoming_addr.to_string());
    assert!(!h.up, "the dead remote is marked down: {h:?}");
    brain.shutdown.cancel();
}

/// A misbehaving backend: what it does with each connection.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Accepts, reads, never answers.
    Silent,
    /// Answers with a line that is not a Wyoming header.
    Garbage,
    /// Announces a 100 MB data section.
    Oversized,
    /// Answers `describe` with an `info` that offers nothing, and `transcribe` with nothing.
    Empty,
    /// Takes all the audio, then closes the connection at `audio-stop`.
    DiesAtStop,
    /// Answers `audio-start` with an `error` event.
    Refuses,
}

/// A fake backend on loopback; counts the connections that sent audio.
async fn misbehaving(how: Misbehaviour) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut heard = Vec::new();
                let mut seen_audio = false;
                loop {
                    let n = match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    heard.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&heard).into_owned();
                    if !seen_audio && text.contains("\"audio-start\"") {
                        seen_audio = true;
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                    let reply: &[u8] = match how {
                        Misbehaviour::Silent => continue,
                        Misbehaviour::Garbage => b"\x00\x01 this is not json\n",
                        Misbehaviour::Oversized => {
                            b"{\"type\":\"transcript\",\"data_length\":100000000}\n"
                        }
                        Misbehaviour::Empty if text.contains("\"describe\"") => {
                            b"{\"type\":\"info\",\"data\":{}}\n"
                        }
                        Misbehaviour::Empty => continue,
                        Misbehaviour::Refuses if text.contains("\"audio-start\"") => {
                            b"{\"type\":\"error\",\"data\":{\"text\":\"model not loaded\",\"code\":\"oops\"}}\n"
                        }
                        Misbehaviour::Refuses => continue,
                        Misbehaviour::DiesAtStop if text.contains("\"audio-stop\"") => return,
                        Misbehaviour::DiesAtStop => {
                            // Keep only the tail, where a split "audio-stop" may start.
                            let keep = heard.len().saturating_sub(64);
                            heard.drain(..keep);
                            continue;
                        }
                    };
                    if stream.write_all(reply).await.is_err() {
                        return;
                    }
                    heard.clear();
                }
            });
        }
    });
    (addr, requests)
}

/// `how` as the preferred backend: the local one still transcribes, and the bad one is down.
async fn survives(how: Misbehaviour) {
    let _turn = one_at_a_time().await;
    let (bad, requests) = misbehaving(how).await;
    let mut bad_backend = remote(bad, 1);
    // Long enough that only a request (not the health check) finds it out first.
    bad_backend.health_interval_secs = 3600;
    bad_backend.result_timeout_ms = 1500;
    let brain = spawn_app(routed(vec![bad_backend])).await;
    let started = Instant::now();
    let (text, _) = transcribe(brain.wyoming_addr, &pcm_of(&kitchen())).await;
    assert_kitchen(&text);
    let h = health(&brain, &bad.to_string());
    assert!(!h.up, "{h:?}");
    eprintln!(
        "transcript after {:?} with the bad backend first ({:?})",
        started.elapsed(),
        h.reason
    );
    // The next request does not wait on it again first... the healthy local one goes first.
    let before = requests.load(Ordering::SeqCst);
    let (text, _) = transcribe(brain.wyoming_addr, &pcm_of(&kitchen())).await;
    assert_kitchen(&text);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        before,
        "a down backend is skipped"
    );
    brain.shutdown.cancel();
}

#[tokio::test]
async fn a_backend_that_never_answers_times_out_to_the_next() {
    survives(Misbehaviour::Silent).await;
}

#[tokio::test]
async fn a_backend_that_sends_garbage_is_dropped_for_the_next() {
    survives(Misbehaviour::Garbage).await;
}

#[tokio::test]
async fn a_backend_that_sends_oversized_frames_is_dropped_for_the_next() {
    survives(Misbehaviour::Oversized).await;
}

#[tokio::test]
async fn a_backend_that_answers_with_an_error_event_is_dropped_for_the_next() {
    survives(Misbehaviour::Refuses).await;
}

#[tokio::test]
async fn when_every_backend_fails_the_client_gets_one_error_naming_each() {
    let (silent, _) = misbehaving(Misbehaviour::Refuses).await;
    let closed = free_port();
    let mut config = test_config();
    config.stt.backends = vec![remote(silent, 1), remote(closed, 2)];
    let brain = spawn_app(config).await;
    let mut client = client(brain.wyoming_addr).await;
    client.send(Transcribe::default()).await.unwrap();
    client
        .send(AudioStart::new(AudioFormat::HA_MIC, None))
        .await
        .unwrap();
    send_audio(&mut client, &[0u8; 3200]).await;
    client.send(AudioStop::default()).await.unwrap();
    let text = expect_error(&mut client, "stt-failed").await;
    assert!(text.contains("model not loaded"), "{text}");
    assert!(text.contains(&closed.to_string()), "{text}");
    assert_still_served(&mut client).await;
    brain.shutdown.cancel();
}

#[tokio::test]
async fn routed_audio_is_kept_only_up_to_the_limit() {
    let instant = instant_backend().await;
    let mut config = test_config();
    config.stt.max_audio_secs = 1;
    config.stt.backends = vec![remote(instant, 1)];
    let brain = spawn_app(config).await;
    let mut client = client(brain.wyoming_addr).await;
    client.send(Transcribe::default()).await.unwrap();
    client
        .send(AudioStart::new(AudioFormat::HA_MIC, None))
        .await
        .unwrap();
    // 2.5 s of 16 kHz audio: over the limit of 1 s (and its second of slack).
    send_audio(&mut client, &vec![0u8; 80_000]).await;
    let text = expect_error(&mut client, "audio-too-long").await;
    assert!(text.contains("stt.max_audio_secs"), "{text}");
    client.send(AudioStop::default()).await.unwrap();
    assert_still_served(&mut client).await;
    brain.shutdown.cancel();
}

#[tokio::test]
async fn a_backend_that_advertises_nothing_is_down_and_not_asked() {
    let _turn = one_at_a_time().await;
    let (empty, requests) = misbehaving(Misbehaviour::Empty).await;
    let brain = spawn_app(routed(vec![remote(empty, 1)])).await;
    let label = empty.to_string();
    until("the health check to find nothing", || {
        health(&brain, &label).reason.is_some()
    })
    .await;
    let h = health(&brain, &label);
    assert!(!h.up, "{h:?}");
    assert!(h.reason.unwrap().contains("no speech-to-text"));
    let (text, _) = transcribe(brain.wyoming_addr, &pcm_of(&kitchen())).await;
    assert_kitchen(&text);
    assert_eq!(requests.load(Ordering::SeqCst), 0);
    // `info` shows only what the local engine offers.
    let info = client(brain.wyoming_addr).await.describe().await.unwrap();
    assert_eq!(info.asr[0].models.len(), 1);
    // `/health` shows each backend's state.
    let url = format!("http://{}/health", brain.http_addr.unwrap());
    let health: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let backends = health["stt_backends"].as_array().unwrap();
    assert_eq!(backends.len(), 2, "{health}");
    assert_eq!(backends[0]["up"], false);
    assert!(
        backends[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no speech-to-text")
    );
    assert_eq!(backends[1]["kind"], "local");
    assert_eq!(backends[1]["up"], true);
    brain.shutdown.cancel();
}

#[tokio::test]
async fn a_refused_connection_fails_over_at_once() {
    let _turn = one_at_a_time().await;
    let closed = free_port();
    let mut config = routed(vec![remote(closed, 1)]);
    config.stt.backends[0].health_interval_secs = 3600;
    let brain = spawn_app(config).await;
    let (text, _) = transcribe(brain.wyoming_addr, &pcm_of(&kitchen())).await;
    assert_kitchen(&text);
    assert!(!health(&brain, &closed.to_string()).up);
    brain.shutdown.cancel();
}

#[tokio::test]
async fn jarvis_as_its_own_backend_is_refused_not_recursed() {
    let _turn = one_at_a_time().await;
    let me = free_port();
    let mut config = routed(vec![remote(me, 1)]);
    config.wyoming.addr = me;
    let brain = spawn_app(config).await;
    let (text, _) = transcribe(brain.wyoming_addr, &pcm_of(&kitchen())).await;
    assert_kitchen(&text);
    let h = health(&brain, &me.to_string());
    assert!(h.looped && !h.up, "{h:?}");
    // For good: the health check does not bring it back.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!health(&brain, &me.to_string()).up);
    brain.shutdown.cancel();
}

#[tokio::test]
async fn two_jarvis_pointing_at_each_other_are_refused_not_recursed() {
    let _turn = one_at_a_time().await;
    let (a_addr, b_addr) = (free_port(), free_port());
    let mut a_config = routed(vec![remote(b_addr, 1)]);
    a_config.wyoming.addr = a_addr;
    let mut b_config = routed(vec![remote(a_addr, 1)]);
    b_config.wyoming.addr = b_addr;
    let a = spawn_app(a_config).await;
    let b = spawn_app(b_config).await;
    // A started first and found B not there yet: wait until it sees B up.
    until("A to see B", || health(&a, &b_addr.to_string()).up).await;
    // A → B → A: A refuses its own request; B transcribes locally and answers A.
    let (text, _) = transcribe(a.wyoming_addr, &pcm_of(&kitchen())).await;
    assert_kitchen(&text);
    let (b_sees_a, a_sees_b) = (
        health(&b, &a_addr.to_string()),
        health(&a, &b_addr.to_string()),
    );
    assert!(b_sees_a.looped, "{b_sees_a:?}");
    assert!(a_sees_b.up, "{a_sees_b:?}");
    a.shutdown.cancel();
    b.shutdown.cancel();
}

/// The reference Python Wyoming server (wyoming 1.10.2's `AsyncServer`) as a third-party backend.
#[tokio::test]
async fn the_reference_python_server_serves_as_a_backend() {
    let _turn = one_at_a_time().await;
    let port = free_port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peer/asr_server.py");
    let mut child = tokio::process::Command::new(python())
        .arg(script)
        .arg(port.port().to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(
        LIMIT,
        tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut line),
    )
    .await
    .expect("the server says it is ready")
    .unwrap();
    assert!(line.contains("ready"), "{line}");
    let brain = spawn_app(routed(vec![remote(port, 1)])).await;
    let label = port.to_string();
    until("the first health check", || {
        !health(&brain, &label).programs.is_empty()
    })
    .await;
    let info = client(brain.wyoming_addr).await.describe().await.unwrap();
    let names: Vec<&str> = info.asr[0].models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["python-echo", "tiny.en"],
        "remote first (priority), local too"
    );
    let pcm = pcm_of(&kitchen());
    let (text, _) = transcribe(brain.wyoming_addr, &pcm).await;
    assert_eq!(text, format!("python heard {} bytes", pcm.len()));
    child.kill().await.unwrap();
    // Killed: the next request fails over to the local engine.
    let (text, _) = transcribe(brain.wyoming_addr, &pcm).await;
    assert_kitchen(&text);
    brain.shutdown.cancel();
}

/// An instant backend: a transcript as soon as `audio-stop` arrives.
async fn instant_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                stream.set_nodelay(true).unwrap();
                let mut client = Client::from_stream(stream, wyoming::Limits::default());
                while let Ok(Some(event)) = client.recv().await {
                    match event {
                        Event::Describe(_) => {
                            let mut info = wyoming::info::Info::default();
                            info.asr.push(wyoming::info::AsrProgram {
                                name: "instant".into(),
                                attribution: wyoming::info::Attribution::new("t", "t"),
                                installed: true,
                                description: None,
                                version: None,
                                models: Vec::new(),
                                supports_transcript_streaming: false,
                                requires_external_vad: true,
                                prefers_auto_gain_enabled: false,
                                prefers_noise_reduction_enabled: false,
                            });
                            let _ = client.send(info).await;
                        }
                        Event::AudioStop(_) => {
                            let _ = client
                                .send(Transcript {
                                    text: "instant".into(),
                                    ..Transcript::default()
                                })
                                .await;
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    addr
}

/// Time from `audio-stop` sent to the transcript read, over `n` requests of `pcm`; the median.
/// `settle`: wait this long before `audio-stop`, as a live stream does (its audio has been
/// forwarded by then), rather than sending it right behind a burst of audio.
async fn median_ms(addr: SocketAddr, pcm: &[u8], n: usize, settle: Duration) -> f64 {
    let mut times = Vec::new();
    for _ in 0..n {
        let mut client = client(addr).await;
        client.send(Transcribe::default()).await.unwrap();
        client
            .send(AudioStart::new(AudioFormat::HA_MIC, None))
            .await
            .unwrap();
        send_audio(&mut client, pcm).await;
        tokio::time::sleep(settle).await;
        let started = Instant::now();
        client.send(AudioStop::default()).await.unwrap();
        until_transcript(&mut client).await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// `cargo test --test stt_backends bench -- --ignored --nocapture` (scripts/bench.sh backends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by scripts/bench.sh backends"]
async fn bench_routing_and_failover() {
    let _turn = one_at_a_time().await;
    let pcm = pcm_of(&kitchen());
    let instant = instant_backend().await;
    let only = |backends: Vec<SttBackendConfig>| {
        let mut config = test_config();
        config.stt.backends = backends;
        config
    };
    let router = spawn_app(only(vec![remote(instant, 1)])).await;
    for (what, settle) in [
        (
            "live (audio-stop 50 ms after the last chunk)",
            Duration::from_millis(50),
        ),
        (
            "burst (audio-stop right behind 3.4 s of audio)",
            Duration::ZERO,
        ),
    ] {
        let direct = median_ms(instant, &pcm, 30, settle).await;
        let routed = median_ms(router.wyoming_addr, &pcm, 30, settle).await;
        println!(
            "routing, {what}: audio-stop -> transcript, median of 30: direct {direct:.2} ms, \
             through Jarvis {routed:.2} ms, added {:.2} ms",
            routed - direct
        );
    }
    router.shutdown.cancel();

    // Failover to the same instant backend, behind one that refuses connections or never
    // answers: a fresh Jarvis each time, so the bad backend is always tried first.
    let (silent_addr, _) = misbehaving(Misbehaviour::Silent).await;
    let settle = Duration::from_millis(50);
    let mut refused = Vec::new();
    let mut silent = Vec::new();
    let mut dropped = Vec::new();
    let mut dies = Vec::new();
    for _ in 0..9 {
        let (dying, _) = misbehaving(Misbehaviour::DiesAtStop).await;
        let mut bad = remote(dying, 1);
        bad.health_interval_secs = 3600;
        let app = spawn_app(only(vec![bad, remote(instant, 2)])).await;
        dies.push(median_ms(app.wyoming_addr, &pcm, 1, settle).await);
        app.shutdown.cancel();
        let mut bad = remote(free_port(), 1);
        bad.health_interval_secs = 3600;
        let app = spawn_app(only(vec![bad, remote(instant, 2)])).await;
        refused.push(median_ms(app.wyoming_addr, &pcm, 1, settle).await);
        app.shutdown.cancel();
        let mut bad = remote(silent_addr, 1);
        bad.health_interval_secs = 3600;
        bad.result_timeout_ms = 500;
        let app = spawn_app(only(vec![bad, remote(instant, 2)])).await;
        silent.push(median_ms(app.wyoming_addr, &pcm, 1, settle).await);
        app.shutdown.cancel();
        let (garbage, _) = misbehaving(Misbehaviour::Garbage).await;
        let mut bad = remote(garbage, 1);
        bad.health_interval_secs = 3600;
        let app = spawn_app(only(vec![bad, remote(instant, 2)])).await;
        dropped.push(median_ms(app.wyoming_addr, &pcm, 1, settle).await);
        app.shutdown.cancel();
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "failover to an instant backend (audio-stop -> transcript, median of 9): first backend \
         closes at audio-stop (3.4 s of audio replayed) {:.2} ms; refused connection first \
         {:.2} ms; garbage first {:.2} ms; silent first (result_timeout_ms = 500) {:.2} ms",
        median(dies),
        median(refused),
        median(dropped),
        median(silent)
    );
}

/// Two Jarvis processes: `jarvis serve --role stt` (the GPU box) and a brain in this process
/// that uses it as its speech-to-text backend. (`stt` alone: ONNX Runtime, which text-to-speech
/// loads, may print a plain-text warning on stderr that the JSON log reader refuses.)
#[tokio::test]
async fn a_speech_only_jarvis_process_serves_a_brain_jarvis() {
    let _turn = one_at_a_time().await;
    let speech = serve_binary(&["--role", "stt"], &[]).await;
    let info = client(speech.wyoming).await.describe().await.unwrap();
    assert!(!info.asr.is_empty() && info.tts.is_empty(), "{info:?}");
    assert!(info.handle.is_empty() && info.intent.is_empty() && info.wake.is_empty());
    let mut intent = client(speech.wyoming).await;
    intent
        .send(Transcript {
            text: "what is the status of the cluster".into(),
            ..Transcript::default()
        })
        .await
        .unwrap();
    let reason = expect_error(&mut intent, "service-unavailable").await;
    assert!(reason.contains("--role"), "{reason}");

    let mut config = test_config();
    config.stt.backends = vec![remote(speech.wyoming, 1)];
    let brain = spawn_app(config).await;
    let (text, _) = transcribe(brain.wyoming_addr, &pcm_of(&kitchen())).await;
    assert_kitchen(&text);
    assert!(health(&brain, &speech.wyoming.to_string()).up);
    brain.shutdown.cancel();
}
