//! Shared helpers for the integration tests: start Jarvis in-process or as the real binary, and
//! talk to it with the `wyoming` client or raw bytes. Every network wait has a timeout, so a hang
//! fails the test instead of stalling CI.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod aedes;
pub mod fake_frigate;
pub mod fake_proxmox;
pub mod fake_supervisor;
pub mod file_server;
pub mod mosquitto;
pub mod wake_clips;
pub mod webdriver;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use jarvis::app::{self, App};
use jarvis::config::Config;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use wyoming::{Client, Event};

/// Upper bound for any single wait in a test.
pub const LIMIT: Duration = Duration::from_secs(20);

/// The real models: `JARVIS_MODELS_DIR`, or `../shared/models` beside the checkout.
pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("JARVIS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/models"));
    assert!(
        dir.join("whisper/ggml-tiny.en.bin").is_file(),
        "models not found in {}: set JARVIS_MODELS_DIR",
        dir.display()
    );
    dir
}

/// A configuration on loopback, ephemeral ports, no zeroconf, and no models loaded (protocol
/// tests do not need them); see [`stt_config`].
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.wyoming.addr = "127.0.0.1:0".parse().unwrap();
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    config.wyoming.zeroconf.enabled = false;
    config.stt.enabled = false;
    config.tts.enabled = false;
    // Never the real /var/lib/jarvis: one throwaway log per test process.
    config.audit.path = test_audit_path();
    // One event store per configuration: tests in one process must not see each other's events.
    config.events.path = test_events_path();
    config.wake.enabled = false;
    config
}

/// An event store path private to this call.
pub fn test_events_path() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir()
        .join(format!("jarvis-tests-{}", std::process::id()))
        .join(format!("events-{n}.db"))
}

/// [`test_config`] with the wake word on the real openWakeWord models.
pub fn wake_config() -> Config {
    let mut config = test_config();
    config.models.dir = models_dir();
    config.wake.enabled = true;
    config
}

/// An audit log path private to this test process.
pub fn test_audit_path() -> PathBuf {
    std::env::temp_dir()
        .join(format!("jarvis-tests-{}", std::process::id()))
        .join("audit.jsonl")
}

/// [`test_config`] with text-to-speech on the real Piper voice.
pub fn tts_config() -> Config {
    let mut config = test_config();
    config.models.dir = models_dir();
    config.tts.enabled = true;
    // No shared cache between tests: each test synthesizes for real.
    config.tts.cache = false;
    config
}

/// [`tts_config`] with Piper's random variation off (`noise_scale` and `noise_w` 0), so a
/// sentence gives the same audio on every run: for tests that transcribe Piper's speech, where
/// tiny.en hears some of Piper's variations of a word as another word.
pub fn steady_tts_config() -> Config {
    let mut config = tts_config();
    config.tts.noise_scale = Some(0.0);
    config.tts.noise_w = Some(0.0);
    config
}

/// [`test_config`] with speech-to-text on the real models.
pub fn stt_config() -> Config {
    let mut config = test_config();
    config.models.dir = models_dir();
    config.stt.enabled = true;
    config
}

/// Starts Jarvis in this process.
pub async fn spawn_app(config: Config) -> App {
    app::spawn(config).await.expect("jarvis starts")
}

/// A connected client.
pub async fn client(addr: SocketAddr) -> Client {
    tokio::time::timeout(LIMIT, Client::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Receives one event, failing the test on timeout.
pub async fn recv(client: &mut Client) -> Option<Event> {
    recv_within(client, LIMIT).await
}

/// [`recv`], failing the test after `limit` instead of [`LIMIT`].
pub async fn recv_within(client: &mut Client, limit: Duration) -> Option<Event> {
    tokio::time::timeout(limit, client.recv())
        .await
        .expect("event in time")
        .expect("well-formed event")
}

/// Receives the next event and expects an `error` with `code`; returns its text.
pub async fn expect_error(client: &mut Client, code: &str) -> String {
    match recv(client).await {
        Some(Event::Error(err)) => {
            assert_eq!(err.code.as_deref(), Some(code), "error text: {}", err.text);
            err.text
        }
        other => panic!("expected an error {code}, got {other:?}"),
    }
}

/// Sends raw bytes on a fresh connection and returns everything the server sends until it closes.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut out))
        .await
        .expect("server closes the connection in time")
        .unwrap();
    out
}

/// The `error` events in raw server output, as (code, text).
pub fn errors_in(raw: &[u8]) -> Vec<(String, String)> {
    let mut codec = wyoming::WyomingCodec::default();
    let mut buf = bytes::BytesMut::from(raw);
    let mut errors = Vec::new();
    while let Some(frame) = tokio_util::codec::Decoder::decode(&mut codec, &mut buf).unwrap() {
        if let Ok(Event::Error(err)) = Event::from_frame(frame) {
            errors.push((err.code.unwrap_or_default(), err.text));
        }
    }
    errors
}

/// Checks that a connection opened earlier still gets answers: ping, then describe.
pub async fn assert_still_served(client: &mut Client) {
    client
        .send(wyoming::misc::Ping {
            text: Some("still there?".into()),
        })
        .await
        .unwrap();
    match recv(client).await {
        Some(Event::Pong(pong)) => assert_eq!(pong.text.as_deref(), Some("still there?")),
        other => panic!("expected pong, got {other:?}"),
    }
    tokio::time::timeout(LIMIT, client.describe())
        .await
        .expect("info in time")
        .expect("info");
}

/// The `jarvis` binary built for these tests.
pub fn jarvis_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_jarvis"))
}

/// Python with `wyoming==1.10.2` (from `scripts/test.sh`'s `.venv`, or `WYOMING_PYTHON`).
pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("WYOMING_PYTHON") {
        return python.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "the reference Python client is missing: run scripts/test.sh (it creates .venv with \
         wyoming==1.10.2) or set WYOMING_PYTHON"
    );
    venv
}

/// Runs `tests/peer/SCRIPT` with the reference Python and returns the JSON it prints.
pub async fn run_python_peer(script: &str, args: &[&str]) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peer")
        .join(script);
    let output = tokio::time::timeout(LIMIT, Command::new(python()).arg(path).args(args).output())
        .await
        .unwrap_or_else(|_| panic!("{script} finishes in time"))
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|err| panic!("{script} printed {stdout:?}: {err}"))
}

/// A running `jarvis serve` process and the addresses it reported.
pub struct Served {
    pub child: Child,
    pub wyoming: SocketAddr,
    /// `None` when the HTTP API is disabled.
    pub http: Option<SocketAddr>,
    /// Log lines up to "jarvis is serving".
    pub log: Vec<String>,
    /// Log lines after it, as they come.
    pub later: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Served {
    /// The first JSON log line whose message contains `needle`, from the lines logged before
    /// "jarvis is serving" or, waiting for them, after it.
    pub async fn wait_for_log(&mut self, needle: &str) -> serde_json::Value {
        let early = self.log.iter().find_map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).ok()?;
            json["message"].as_str()?.contains(needle).then_some(json)
        });
        if let Some(json) = early {
            return json;
        }
        tokio::time::timeout(LIMIT, async {
            while let Some(line) = self.later.recv().await {
                let json: serde_json::Value = serde_json::from_str(&line).unwrap();
                if json["message"].as_str().is_some_and(|m| m.contains(needle)) {
                    return json;
                }
            }
            panic!("jarvis exited without logging {needle:?}");
        })
        .await
        .unwrap_or_else(|_| panic!("no log line with {needle:?} in time"))
    }
}

/// Runs `jarvis serve` with JSON logs and no zeroconf on ephemeral loopback ports (set through
/// `JARVIS_*_ADDR`, which `envs` may replace) and waits until it serves.
pub async fn serve_binary(extra_args: &[&str], envs: &[(&str, &str)]) -> Served {
    let mut args = vec!["serve", "--log-format", "json", "--no-zeroconf"];
    args.extend_from_slice(extra_args);
    serve_binary_args(&args, envs).await
}

/// Runs the binary with exactly `args` (which must ask for JSON logs) and waits until it serves.
pub async fn serve_binary_args(args: &[&str], envs: &[(&str, &str)]) -> Served {
    let mut command = Command::new(jarvis_bin());
    command
        .args(args)
        // Addresses come from the environment, so the tests also cover env overrides.
        .env("JARVIS_WYOMING_ADDR", "127.0.0.1:0")
        .env("JARVIS_HTTP_ADDR", "127.0.0.1:0")
        .env("JARVIS_MODELS_DIR", models_dir())
        .env("JARVIS_AUDIT_PATH", test_audit_path())
        .env("JARVIS_EVENTS_PATH", test_events_path())
        .env_remove("JARVIS_CONFIG")
        .env_remove("JARVIS_NO_ZEROCONF")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start jarvis");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let ready = tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push(line.clone());
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                panic!("log line is not JSON: {line}");
            };
            if json["message"] == "jarvis is serving" {
                return json;
            }
        }
        panic!("jarvis exited before serving: {log:?}");
    })
    .await
    .expect("jarvis serves in time");
    // Keep draining stderr so the child never blocks on a full pipe; later lines go to `later`.
    let (tx, later) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    let wyoming = ready["wyoming"].as_str().unwrap().parse().unwrap();
    let http = ready["http"].as_str().unwrap().parse().ok();
    Served {
        child,
        wyoming,
        http,
        log,
        later,
    }
}

/// Jarvis's whisper settings for a short command ([`jarvis::stt::whisper::command_params`], two
/// threads, English) at encoder context `audio_ctx`, without its prompt, grammar or logits
/// filter.
pub fn whisper_params<'a, 'b>(audio_ctx: i32, max_tokens: i32) -> whisper_rs::FullParams<'a, 'b> {
    let mut params = jarvis::stt::whisper::command_params(2);
    params.set_language(Some("en"));
    params.set_audio_ctx(audio_ctx);
    params.set_max_tokens(max_tokens);
    params
}
