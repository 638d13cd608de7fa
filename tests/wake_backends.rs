//! `[[wake.backends]]`: a second Jarvis (a `jarvis serve --role wake` process, or an app in this
//! process) as the remote wake word backend, killed mid-stream, and backends that misbehave. The
//! detections come from the real openWakeWord models.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::wake_clips;
use common::*;
use jarvis::config::Config;
use jarvis::stt::backends::{BackendKind, WakeBackendConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wyoming::Event;
use wyoming::audio::{AudioChunk, AudioFormat, AudioStart};
use wyoming::wake::Detect;

/// The models keep both cores busy: tests take turns.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// "Hey Jarvis" (joe voice, 2.94 s; speech ends at 1.78 s).
fn hey_jarvis() -> Vec<i16> {
    let path = models_dir().join("wakeword/samples/hey_jarvis_joe_16k.wav");
    let (rate, samples) = wake_clips::read_wav(&path);
    assert_eq!(rate, 16_000);
    samples
}

fn silence(ms: u64) -> Vec<i16> {
    wake_clips::silence(16_000, ms)
}

fn remote(addr: impl ToString, priority: i32) -> WakeBackendConfig {
    WakeBackendConfig {
        addr: Some(addr.to_string()),
        priority,
        connect_timeout_ms: 500,
        result_timeout_ms: 1500,
        health_interval_secs: 1,
        ..WakeBackendConfig::default()
    }
}

fn local(priority: i32) -> WakeBackendConfig {
    WakeBackendConfig {
        kind: BackendKind::Local,
        priority,
        ..WakeBackendConfig::default()
    }
}

/// A Jarvis with the local wake word engine behind `remotes` (tried first).
fn routed(remotes: Vec<WakeBackendConfig>) -> Config {
    let mut config = wake_config();
    config.wake.backends = remotes;
    config.wake.backends.push(local(100));
    config
}

/// A Jarvis without a wake word engine of its own: only `remotes`.
fn only(remotes: Vec<WakeBackendConfig>) -> Config {
    let mut config = test_config();
    config.wake.backends = remotes;
    config
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The health of the wake word backend named `label` in `app`.
fn health(app: &jarvis::app::App, label: &str) -> jarvis::stt::backends::Health {
    let backends = app.services.wake_backends.as_ref().expect("backends");
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

/// A wake word stream as Home Assistant sends it: `detect`, `audio-start`, 10 ms chunks, never
/// `audio-stop`; what comes back is collected by a reader task.
struct Stream {
    writer: wyoming::EventWriter<tokio::net::tcp::OwnedWriteHalf>,
    events: mpsc::UnboundedReceiver<Event>,
    seen: Vec<Event>,
}

impl Stream {
    async fn open(addr: SocketAddr) -> Self {
        Self::open_for(addr, "hey_jarvis").await
    }

    /// A stream for the wake word `name`.
    async fn open_for(addr: SocketAddr, name: &str) -> Self {
        let (mut reader, mut writer) = client(addr).await.into_split();
        writer
            .write_event(Detect {
                names: Some(vec![name.into()]),
                context: None,
            })
            .await
            .unwrap();
        writer
            .write_event(AudioStart::new(AudioFormat::HA_MIC, None))
            .await
            .unwrap();
        let (sender, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(event)) = reader.read_event().await {
                if sender.send(event).is_err() {
                    return;
                }
            }
        });
        Self {
            writer,
            events,
            seen: Vec::new(),
        }
    }

    /// Sends `samples` in 10 ms chunks; `pace`: as fast as a live microphone would (in steps
    /// of 100 ms), or all at once.
    async fn send(&mut self, samples: &[i16], pace: bool) {
        for (n, chunk) in samples.chunks(160).enumerate() {
            let pcm: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
            tokio::time::timeout(
                LIMIT,
                self.writer
                    .write_event(AudioChunk::new(AudioFormat::HA_MIC, pcm, None)),
            )
            .await
            .expect("jarvis reads the audio")
            .unwrap();
            if pace && n % 10 == 9 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Detections (names) so far.
    fn detections(&mut self) -> Vec<String> {
        while let Ok(event) = self.events.try_recv() {
            self.seen.push(event);
        }
        self.seen
            .iter()
            .filter_map(|e| match e {
                Event::Detection(d) => d.name.clone(),
                _ => None,
            })
            .collect()
    }

    /// Waits for the `n`th detection; fails on an error event or after [`LIMIT`].
    async fn until_detections(&mut self, n: usize) -> Vec<String> {
        tokio::time::timeout(LIMIT, async {
            while self.detections().len() < n {
                match self.events.recv().await {
                    Some(Event::Error(err)) => panic!("error instead of a detection: {err:?}"),
                    Some(event) => self.seen.push(event),
                    None => panic!("closed before a detection: {:?}", self.seen),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no detection in time: {:?}", self.seen));
        self.detections()
    }
}

/// Silence, "hey jarvis", silence, at the pace of a microphone: one detection, from whichever
/// backend serves the stream. (Sent all at once, audio could outrun a failover by more than the
/// replayed tail; a microphone cannot.)
async fn detects_once(addr: SocketAddr) {
    let mut stream = Stream::open(addr).await;
    stream.send(&silence(500), true).await;
    stream.send(&hey_jarvis(), true).await;
    stream.send(&silence(1000), true).await;
    assert_eq!(stream.until_detections(1).await, ["hey_jarvis"]);
}

#[tokio::test]
async fn a_remote_jarvis_detects_and_info_shows_one_server() {
    let _turn = one_at_a_time().await;
    let remote_box = spawn_app(wake_config()).await;
    let label = remote_box.wyoming_addr.to_string();
    let brain = spawn_app(only(vec![remote(remote_box.wyoming_addr, 1)])).await;
    until("the first health check", || {
        !health(&brain, &label).wake_programs.is_empty()
    })
    .await;
    let info = client(brain.wyoming_addr).await.describe().await.unwrap();
    assert_eq!(info.wake.len(), 1, "{info:?}");
    let words: Vec<&str> = info.wake[0]
        .models
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(words, ["hey_jarvis"]);
    detects_once(brain.wyoming_addr).await;
    let h = health(&brain, &label);
    assert!(h.up && h.latency.is_some() && h.requests == 1, "{h:?}");
    // Asked by its file name, the detection carries the name asked for.
    let mut stream = Stream::open_for(brain.wyoming_addr, "hey_jarvis_v0.1").await;
    stream.send(&silence(500), true).await;
    stream.send(&hey_jarvis(), true).await;
    stream.send(&silence(1000), true).await;
    assert_eq!(stream.until_detections(1).await, ["hey_jarvis_v0.1"]);
    brain.shutdown.cancel();
    remote_box.shutdown.cancel();
}

#[tokio::test]
async fn info_merges_local_and_remote_wake_words_without_duplicates() {
    let _turn = one_at_a_time().await;
    let remote_box = spawn_app(wake_config()).await;
    let label = remote_box.wyoming_addr.to_string();
    let brain = spawn_app(routed(vec![remote(remote_box.wyoming_addr, 1)])).await;
    until("the first health check", || {
        !health(&brain, &label).wake_programs.is_empty()
    })
    .await;
    let info = client(brain.wyoming_addr).await.describe().await.unwrap();
    assert_eq!(info.wake.len(), 1, "{info:?}");
    let words: Vec<&str> = info.wake[0]
        .models
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(words, ["hey_jarvis"], "both have hey_jarvis: listed once");
    brain.shutdown.cancel();
    remote_box.shutdown.cancel();
}

/// A `jarvis serve --role wake` process as Jarvis's only wake backend (its config changed by
/// `edit`), and a stream through Jarvis that the remote has taken. Returns the remote, its
/// label in `/health`, Jarvis and the stream.
async fn stream_on_a_remote(
    edit: impl FnOnce(&mut WakeBackendConfig),
) -> (Served, String, jarvis::app::App, Stream) {
    let remote_box = serve_binary(&["--role", "wake"], &[]).await;
    let label = remote_box.wyoming.to_string();
    let mut config = remote(remote_box.wyoming, 1);
    edit(&mut config);
    let brain = spawn_app(routed(vec![config])).await;
    until("the first health check", || {
        !health(&brain, &label).wake_programs.is_empty()
    })
    .await;
    let mut stream = Stream::open(brain.wyoming_addr).await;
    stream.send(&silence(1000), true).await;
    until("the remote to get the stream", || {
        health(&brain, &label).requests == 1
    })
    .await;
    (remote_box, label, brain, stream)
}

/// The remote, a `jarvis serve --role wake` process, is killed while the stream runs; the local
/// backend takes the stream over, and "hey jarvis" said after the switch is detected.
#[tokio::test]
async fn the_remote_killed_mid_stream_leaves_the_local_backend_listening() {
    let _turn = one_at_a_time().await;
    let (mut remote_box, label, brain, mut stream) = stream_on_a_remote(|_| {}).await;
    remote_box.child.kill().await.unwrap();
    remote_box.child.wait().await.unwrap();
    // A live microphone goes on while the switch happens.
    stream.send(&silence(500), true).await;
    until("the local backend to take the stream", || {
        health(&brain, "local").requests == 1
    })
    .await;
    stream.send(&hey_jarvis(), true).await;
    stream.send(&silence(1000), true).await;
    assert_eq!(stream.until_detections(1).await, ["hey_jarvis"]);
    let h = health(&brain, &label);
    assert!(
        !h.up && h.last_error.is_some(),
        "the dead remote is down: {h:?}"
    );
    brain.shutdown.cancel();
}

/// The wake word said while the backends are switched is not lost: the first half of "hey
/// jarvis" reached only the remote that then died, and is replayed to the local backend.
#[tokio::test]
async fn a_wake_word_spoken_during_the_switch_is_heard_from_the_replayed_tail() {
    let _turn = one_at_a_time().await;
    let remote_box = spawn_app(wake_config()).await;
    let label = remote_box.wyoming_addr.to_string();
    let brain = spawn_app(routed(vec![remote(remote_box.wyoming_addr, 1)])).await;
    let mut stream = Stream::open(brain.wyoming_addr).await;
    let clip = hey_jarvis();
    // Cut 400 ms before the end of the speech: "jarvis" is half said when the remote dies, and
    // what follows alone is not the wake word.
    let cut = (wake_clips::speech_end_ms(16_000, &clip) as usize - 400) * 16;
    let (first, rest) = clip.split_at(cut);
    stream.send(&silence(300), true).await;
    stream.send(first, true).await;
    // The remote has heard the first half when it stops (its connection closes at shutdown).
    remote_box.shutdown.cancel();
    tokio::time::timeout(LIMIT, remote_box.finished)
        .await
        .expect("the remote stops")
        .unwrap()
        .unwrap();
    until("the local backend to take the stream", || {
        health(&brain, "local").requests == 1
    })
    .await;
    stream.send(rest, true).await;
    stream.send(&silence(1000), true).await;
    assert_eq!(stream.until_detections(1).await, ["hey_jarvis"]);
    assert!(!health(&brain, &label).up);
    let local = brain.services.wake.as_ref().unwrap().engine_stats();
    assert_eq!(
        local.detections.load(Ordering::Relaxed),
        1,
        "the local backend heard it"
    );
    brain.shutdown.cancel();
}

/// Stops (`SIGSTOP`) or resumes (`SIGCONT`) a process: a frozen one still has its sockets, the
/// kernel still accepts connections for it and buffers what is sent, and nothing answers.
fn signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// A remote that hangs mid-stream: how long until the local backend has the stream, with
/// health checks a minute apart (only the stream's own probe can notice).
async fn hang_mid_stream(say_it: bool) -> Duration {
    let (remote_box, label, brain, mut stream) =
        stream_on_a_remote(|config| config.health_interval_secs = 60).await;
    signal(&remote_box.child, "-STOP");
    let hung = Instant::now();
    // The microphone goes on, and (`say_it`) "hey jarvis" is said at once, while nobody has
    // noticed the hang yet.
    let audio = if say_it { hey_jarvis() } else { silence(1000) };
    let noticed = async {
        until("the local backend to take the stream", || {
            health(&brain, "local").requests == 1
        })
        .await;
        hung.elapsed()
    };
    let ((), noticed) = tokio::join!(stream.send(&audio, true), noticed);
    stream.send(&silence(1000), true).await;
    if say_it {
        assert_eq!(stream.until_detections(1).await, ["hey_jarvis"]);
    }
    let h = health(&brain, &label);
    assert!(!h.up, "the hung remote is down: {h:?}");
    assert!(
        h.last_error
            .as_deref()
            .is_some_and(|e| e.contains("describe while the stream ran")),
        "{h:?}"
    );
    signal(&remote_box.child, "-CONT");
    brain.shutdown.cancel();
    noticed
}

/// A remote that accepts and then hangs mid-stream (a frozen process): the stream's `describe`
/// probe notices within seconds, long before the next health check (a minute away here), and
/// "hey jarvis" said just as it hung is heard by the local backend from the replayed tail.
#[tokio::test]
async fn a_backend_that_hangs_mid_stream_is_left_within_seconds_and_nothing_is_lost() {
    let _turn = one_at_a_time().await;
    let noticed = hang_mid_stream(true).await;
    eprintln!("hung backend left after {noticed:?}");
    // A generous bound: far below the health interval of 60 s.
    assert!(noticed < Duration::from_secs(20), "{noticed:?}");
}

/// A misbehaving backend: what it does with each connection.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Accepts, reads, never answers (not even `describe`).
    Silent,
    /// Answers with a line that is not a Wyoming header.
    Garbage,
    /// Announces a 100 MB data section.
    Oversized,
    /// Answers `describe` with an `info` that offers no wake word.
    Empty,
}

/// A fake backend on loopback; counts the connections that sent `detect`.
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
                let mut seen_detect = false;
                loop {
                    let n = match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    heard.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&heard).into_owned();
                    if !seen_detect && text.contains("\"detect\"") {
                        seen_detect = true;
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                    let reply: &[u8] = match how {
                        Misbehaviour::Silent => {
                            heard.clear();
                            continue;
                        }
                        Misbehaviour::Garbage => b"\x00\x01 this is not json\n",
                        Misbehaviour::Oversized => {
                            b"{\"type\":\"detection\",\"data_length\":100000000}\n"
                        }
                        Misbehaviour::Empty if text.contains("\"describe\"") => {
                            b"{\"type\":\"info\",\"data\":{\"wake\":[]}}\n"
                        }
                        Misbehaviour::Empty => {
                            heard.clear();
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

/// `how` as the preferred backend: the stream moves to the local one, which detects "hey
/// jarvis" said after the switch; the bad one is down and the next stream skips it.
async fn survives(how: Misbehaviour) {
    let _turn = one_at_a_time().await;
    let (bad, requests) = misbehaving(how).await;
    let label = bad.to_string();
    let brain = spawn_app(routed(vec![remote(bad, 1)])).await;
    // Opened at once: the first health check (1.5 s for a silent backend) is still out.
    let mut stream = Stream::open(brain.wyoming_addr).await;
    until("the bad backend to get the stream", || {
        requests.load(Ordering::SeqCst) == 1
    })
    .await;
    until("the local backend to take the stream", || {
        health(&brain, "local").requests == 1
    })
    .await;
    let h = health(&brain, &label);
    assert!(!h.up, "{h:?}");
    eprintln!("bad backend down: {:?}", h.reason);
    stream.send(&silence(300), false).await;
    stream.send(&hey_jarvis(), false).await;
    stream.send(&silence(1000), false).await;
    assert_eq!(stream.until_detections(1).await, ["hey_jarvis"]);
    eprintln!("detected after the switch");
    // The next stream goes to the healthy local backend first.
    detects_once(brain.wyoming_addr).await;
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "a down backend is skipped"
    );
    brain.shutdown.cancel();
}

#[tokio::test]
async fn a_backend_that_accepts_and_never_answers_loses_the_stream_at_its_health_check() {
    survives(Misbehaviour::Silent).await;
}

#[tokio::test]
async fn a_backend_that_sends_garbage_loses_the_stream() {
    survives(Misbehaviour::Garbage).await;
}

#[tokio::test]
async fn a_backend_that_sends_oversized_frames_loses_the_stream() {
    survives(Misbehaviour::Oversized).await;
}

#[tokio::test]
async fn a_backend_that_advertises_no_wake_words_is_down_and_not_asked() {
    let _turn = one_at_a_time().await;
    let (empty, requests) = misbehaving(Misbehaviour::Empty).await;
    let label = empty.to_string();
    let brain = spawn_app(routed(vec![remote(empty, 1)])).await;
    until("the health check to find nothing", || {
        health(&brain, &label).reason.is_some()
    })
    .await;
    let h = health(&brain, &label);
    assert!(!h.up, "{h:?}");
    assert!(h.reason.unwrap().contains("no wake word"));
    detects_once(brain.wyoming_addr).await;
    assert_eq!(requests.load(Ordering::SeqCst), 0);
    let info = client(brain.wyoming_addr).await.describe().await.unwrap();
    assert_eq!(info.wake[0].models.len(), 1, "{info:?}");
    // `/health` shows each backend's state.
    let url = format!("http://{}/health", brain.http_addr.unwrap());
    let health: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let backends = health["wake_backends"].as_array().unwrap();
    assert_eq!(backends.len(), 2, "{health}");
    assert_eq!(backends[0]["state"], "down");
    assert!(
        backends[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("no wake word"),
        "{health}"
    );
    assert_eq!(backends[1]["kind"], "local");
    assert_eq!(backends[1]["state"], "up");
    assert_eq!(backends[1]["requests"], 1);
    brain.shutdown.cancel();
}

#[tokio::test]
async fn when_every_backend_fails_the_client_gets_one_error_naming_each() {
    let (garbage, _) = misbehaving(Misbehaviour::Garbage).await;
    let closed = free_port();
    let brain = spawn_app(only(vec![remote(garbage, 1), remote(closed, 2)])).await;
    let mut client = client(brain.wyoming_addr).await;
    client
        .send(Detect {
            names: Some(vec!["hey_jarvis".into()]),
            context: None,
        })
        .await
        .unwrap();
    client
        .send(AudioStart::new(AudioFormat::HA_MIC, None))
        .await
        .unwrap();
    let text = expect_error(&mut client, "wake-failed").await;
    assert!(text.contains(&garbage.to_string()), "{text}");
    assert!(text.contains(&closed.to_string()), "{text}");
    assert_still_served(&mut client).await;
    brain.shutdown.cancel();
}

#[tokio::test]
async fn jarvis_as_its_own_wake_backend_is_refused_not_recursed() {
    let _turn = one_at_a_time().await;
    let me = free_port();
    let mut config = routed(vec![remote(me, 1)]);
    config.wyoming.addr = me;
    let brain = spawn_app(config).await;
    detects_once(brain.wyoming_addr).await;
    let h = health(&brain, &me.to_string());
    assert!(h.looped && !h.up, "{h:?}");
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
    until("A to see B", || health(&a, &b_addr.to_string()).up).await;
    // A → B → A: A refuses its own stream; B listens locally and passes detections to A.
    detects_once(a.wyoming_addr).await;
    assert!(health(&b, &a_addr.to_string()).looped);
    assert!(health(&a, &b_addr.to_string()).up);
    a.shutdown.cancel();
    b.shutdown.cancel();
}

/// Detection latency of one stream sent at a microphone's pace (10 ms chunks on a 10 ms tick):
/// from the chunk that completed the audio the detection names (its `timestamp`) being sent, to
/// the detection read.
async fn detection_latency_ms(addr: SocketAddr) -> f64 {
    let (mut reader, mut writer) = client(addr).await.into_split();
    writer
        .write_event(Detect {
            names: Some(vec!["hey_jarvis".into()]),
            context: None,
        })
        .await
        .unwrap();
    writer
        .write_event(AudioStart::new(AudioFormat::HA_MIC, None))
        .await
        .unwrap();
    let mut audio = silence(500);
    audio.extend(hey_jarvis());
    audio.extend(silence(1000));
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sender = tokio::spawn({
        let sent = Arc::clone(&sent);
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            for chunk in audio.chunks(160) {
                tick.tick().await;
                let pcm: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
                writer
                    .write_event(AudioChunk::new(AudioFormat::HA_MIC, pcm, None))
                    .await
                    .unwrap();
                sent.lock().unwrap().push(Instant::now());
            }
            writer
        }
    });
    let latency = tokio::time::timeout(LIMIT, async {
        loop {
            match reader.read_event().await.unwrap() {
                Some(Event::Detection(detection)) => {
                    let at = Instant::now();
                    let timestamp = detection.timestamp.unwrap() as usize;
                    let chunk = timestamp.div_ceil(10).saturating_sub(1);
                    let sent_at = sent.lock().unwrap()[chunk];
                    return at.duration_since(sent_at).as_secs_f64() * 1000.0;
                }
                Some(Event::Error(err)) => panic!("{err:?}"),
                Some(_) => {}
                None => panic!("closed"),
            }
        }
    })
    .await
    .expect("a detection");
    sender.abort();
    latency
}

async fn median_detection_ms(addr: SocketAddr, n: usize) -> f64 {
    let mut times = Vec::new();
    for _ in 0..n {
        times.push(detection_latency_ms(addr).await);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// `cargo test --test wake_backends bench -- --ignored --nocapture` (scripts/bench.sh backends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by scripts/bench.sh backends"]
async fn bench_wake_routing() {
    let _turn = one_at_a_time().await;
    let remote_box = spawn_app(wake_config()).await;
    let router = spawn_app(only(vec![remote(remote_box.wyoming_addr, 1)])).await;
    // Warm up both paths.
    median_detection_ms(remote_box.wyoming_addr, 1).await;
    median_detection_ms(router.wyoming_addr, 1).await;
    let direct = median_detection_ms(remote_box.wyoming_addr, 11).await;
    let through = median_detection_ms(router.wyoming_addr, 11).await;
    println!(
        "wake routing: audio sent -> detection (live pace), median of 11: direct {direct:.2} ms, \
         through Jarvis {through:.2} ms, added {:.2} ms",
        through - direct
    );
    router.shutdown.cancel();

    // Failover: the remote dies while the stream runs; the local backend takes it over.
    let mut failovers = Vec::new();
    for _ in 0..5 {
        let dying = spawn_app(wake_config()).await;
        let app = spawn_app(routed(vec![remote(dying.wyoming_addr, 1)])).await;
        let mut stream = Stream::open(app.wyoming_addr).await;
        stream.send(&silence(300), true).await;
        until("the remote to get the stream", || {
            health(&app, &dying.wyoming_addr.to_string()).requests == 1
        })
        .await;
        let started = Instant::now();
        dying.shutdown.cancel();
        until("the local backend to take the stream", || {
            health(&app, "local").requests == 1
        })
        .await;
        failovers.push(started.elapsed().as_secs_f64() * 1000.0);
        app.shutdown.cancel();
    }
    failovers.sort_by(f64::total_cmp);
    println!(
        "wake failover: remote Jarvis shut down mid-stream -> local backend listening (tail \
         replayed), median of 5: {:.2} ms (polled every 20 ms)",
        failovers[failovers.len() / 2]
    );

    // A remote that hangs (SIGSTOP) mid-stream, health checks a minute apart.
    let mut hangs = Vec::new();
    for _ in 0..3 {
        hangs.push(hang_mid_stream(false).await.as_secs_f64() * 1000.0);
    }
    hangs.sort_by(f64::total_cmp);
    println!(
        "wake failover: remote Jarvis hung (SIGSTOP) mid-stream -> local backend listening \
         (describe probe every {} ms, {} ms to answer), median of 3: {:.0} ms (min {:.0}, max \
         {:.0})",
        jarvis::wake::route::PROBE_EVERY.as_millis(),
        jarvis::wake::route::PROBE_TIMEOUT.as_millis(),
        hangs[1],
        hangs[0],
        hangs[2]
    );
    remote_box.shutdown.cancel();
}

/// `zeroconf = "<instance name>"`: a `jarvis serve --role wake` process advertised over avahi
/// (which must run: `scripts/test.sh` starts it) is found by name and serves the stream.
#[tokio::test]
async fn a_backend_given_by_its_zeroconf_name_is_found_and_used() {
    let _turn = one_at_a_time().await;
    let name = format!("jarvis-wake-test-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jarvis.toml");
    std::fs::write(&file, format!("[wyoming.zeroconf]\nname = \"{name}\"\n")).unwrap();
    let mut served = serve_binary_args(
        &[
            "serve",
            "--log-format",
            "json",
            "--role",
            "wake",
            "--config",
            file.to_str().unwrap(),
        ],
        &[("JARVIS_WYOMING_ADDR", "0.0.0.0:0")],
    )
    .await;
    let advertised = served.wait_for_log("zeroconf").await;
    assert_eq!(
        advertised["message"], "advertised over zeroconf",
        "is avahi-daemon running? scripts/test.sh starts it: {advertised}"
    );
    let backend = WakeBackendConfig {
        addr: None,
        zeroconf: Some(name.clone()),
        ..remote("unused:1", 1)
    };
    let brain = spawn_app(only(vec![backend])).await;
    let label = format!("zeroconf:{name}");
    until("the backend to be found and up", || {
        let h = health(&brain, &label);
        h.found_at.is_some() && h.up && !h.wake_programs.is_empty()
    })
    .await;
    let found_at: SocketAddr = health(&brain, &label).found_at.unwrap().parse().unwrap();
    assert_eq!(found_at.port(), served.wyoming.port());
    detects_once(brain.wyoming_addr).await;
    assert_eq!(health(&brain, &label).requests, 1);
    brain.shutdown.cancel();
    served.child.kill().await.unwrap();
}

/// The MQTT Jarvis device shows each backend as a diagnostic sensor: a remote that refuses
/// connections is `down` with its last error, the local one `up` with the stream it served.
#[tokio::test]
async fn the_mqtt_jarvis_device_has_a_sensor_per_backend() {
    use common::mosquitto::{Mosquitto, Observer};
    let _turn = one_at_a_time().await;
    let broker = Mosquitto::start().await;
    let ha = Observer::connect(broker.port, &["homeassistant/#", "jarvis/#"]).await;
    let closed = free_port();
    let mut config = routed(vec![remote(closed, 1)]);
    config.mqtt = jarvis::mqtt::MqttConfig {
        enabled: true,
        host: "127.0.0.1".into(),
        port: broker.port,
        poll_secs: 1,
        grace_secs: 5,
        birth_delay_ms_max: 10,
        ..jarvis::mqtt::MqttConfig::default()
    };
    let brain = spawn_app(config).await;
    let key = format!("wake_{}", closed.to_string().replace(['.', ':'], "_"));
    let discovery = ha
        .wait_json("homeassistant/device/jarvis_server_backends/config", |_| {
            true
        })
        .await;
    assert_eq!(discovery["dev"]["ids"][0], "jarvis_server");
    let sensor = &discovery["cmps"][&key];
    assert_eq!(sensor["ent_cat"], "diagnostic", "{discovery}");
    assert_eq!(sensor["stat_t"], "jarvis/server/backends");
    assert!(discovery["cmps"]["wake_local"].is_object(), "{discovery}");
    ha.wait_json("jarvis/server/backends", |v| {
        v[&key]["state"] == "down"
            && v[&key]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("connect"))
    })
    .await;
    detects_once(brain.wyoming_addr).await;
    ha.wait_json("jarvis/server/backends", |v| {
        v["wake_local"]["state"] == "up" && v["wake_local"]["requests"] == 1
    })
    .await;
    brain.shutdown.cancel();
}

/// The reference Python Wyoming library (wyoming 1.10.2's `AsyncServer`) as a third-party wake
/// backend with a wake word of its own: `info` lists both servers' words, each stream goes to
/// the backend that has its word, and once the Python server is killed its stream ends in one
/// error (no other backend has that word, so none is tried).
#[tokio::test]
async fn the_reference_python_server_serves_its_own_wake_word() {
    let _turn = one_at_a_time().await;
    let port = free_port();
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peer/wake_server.py");
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
    let label = port.to_string();
    let brain = spawn_app(routed(vec![remote(port, 1)])).await;
    until("the first health check", || {
        !health(&brain, &label).wake_programs.is_empty()
    })
    .await;
    let info = client(brain.wyoming_addr).await.describe().await.unwrap();
    let words: Vec<&str> = info.wake[0]
        .models
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        words,
        ["python_word", "hey_jarvis"],
        "remote first (priority)"
    );

    let mut python_stream = Stream::open_for(brain.wyoming_addr, "python_word").await;
    python_stream.send(&silence(1200), true).await;
    assert_eq!(python_stream.until_detections(1).await, ["python_word"]);
    // "hey jarvis" is not the Python server's: it goes to the local backend at once.
    detects_once(brain.wyoming_addr).await;
    assert_eq!(health(&brain, &label).requests, 1);
    assert_eq!(health(&brain, "local").requests, 1);

    child.kill().await.unwrap();
    python_stream.send(&silence(300), true).await;
    let reason = tokio::time::timeout(LIMIT, async {
        loop {
            match python_stream.events.recv().await {
                Some(Event::Error(err)) => return err,
                Some(_) => {}
                None => panic!("closed without an error"),
            }
        }
    })
    .await
    .expect("an error once every backend failed");
    assert_eq!(reason.code.as_deref(), Some("wake-failed"));
    assert!(reason.text.contains(&label), "{reason:?}");
    assert_eq!(
        health(&brain, "local").requests,
        1,
        "the local one lacks the word"
    );
    brain.shutdown.cancel();
}

/// Backends removed from the configuration leave Home Assistant: the next start sends each
/// removed sensor as `{"p": "sensor"}` over the retained config an earlier run left; with no
/// backend left, the config is cleared.
#[tokio::test]
async fn sensors_of_backends_removed_from_the_configuration_are_withdrawn() {
    use common::mosquitto::{Mosquitto, Observer};
    let _turn = one_at_a_time().await;
    let broker = Mosquitto::start().await;
    let ha = Observer::connect(broker.port, &["homeassistant/#"]).await;
    let topic = "homeassistant/device/jarvis_server_backends/config";
    let mqtt = jarvis::mqtt::MqttConfig {
        enabled: true,
        host: "127.0.0.1".into(),
        port: broker.port,
        poll_secs: 1,
        grace_secs: 5,
        birth_delay_ms_max: 10,
        retain_discovery: true,
        ..jarvis::mqtt::MqttConfig::default()
    };
    let closed = free_port();
    let key = format!("wake_{}", closed.to_string().replace(['.', ':'], "_"));

    // First run: a remote and the local backend.
    let mut config = routed(vec![remote(closed, 1)]);
    config.mqtt = mqtt.clone();
    let first = spawn_app(config).await;
    ha.wait_json(topic, |v| v["cmps"][&key].is_object()).await;
    first.shutdown.cancel();
    tokio::time::timeout(LIMIT, first.finished)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    // Second run: the remote is gone from the configuration.
    let mark = ha.mark();
    let mut config = routed(Vec::new());
    config.mqtt = mqtt.clone();
    let second = spawn_app(config).await;
    let removal = ha
        .wait_for("the remote's sensor withdrawn", |_, log| {
            log[mark..]
                .iter()
                .filter(|s| s.topic == topic)
                .filter_map(|s| serde_json::from_str::<serde_json::Value>(&s.payload).ok())
                .find(|v| v["cmps"][&key] == serde_json::json!({"p": "sensor"}))
        })
        .await;
    assert!(
        removal["cmps"]["wake_local"]["uniq_id"].is_string(),
        "{removal}"
    );
    second.shutdown.cancel();
    tokio::time::timeout(LIMIT, second.finished)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    // Third run: no backends at all; the config is cleared.
    let mark = ha.mark();
    let mut config = wake_config();
    config.mqtt = mqtt;
    let third = spawn_app(config).await;
    ha.wait_for("the config cleared", |_, log| {
        log[mark..]
            .iter()
            .any(|s| s.topic == topic && s.payload.is_empty())
            .then_some(())
    })
    .await;
    // A fresh observer (HA restarting) finds nothing retained there.
    let fresh = Observer::connect(broker.port, &[topic]).await;
    let mark = ha.mark();
    third.shutdown.cancel();
    tokio::time::timeout(LIMIT, third.finished)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(fresh.last(topic), None);
    assert!(ha.since(mark).iter().all(|s| s.topic != topic));
}
