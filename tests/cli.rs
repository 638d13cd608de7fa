//! The real `jarvis` binary: configuration checks, JSON logging, env overrides, HTTP `/health`,
//! the reference Python client as a peer, and shutdown on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command as StdCommand;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

fn jarvis(args: &[&str]) -> std::process::Output {
    StdCommand::new(jarvis_bin())
        .args(args)
        .env_remove("JARVIS_CONFIG")
        .output()
        .expect("run jarvis")
}

#[test]
fn check_config_accepts_the_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/jarvis.toml");
    let out = jarvis(&["check-config", example]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
}

#[test]
fn check_config_names_the_offending_key_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[wyoming]\nmax_conections = 5\n",
            "wyoming.max_conections",
            "unknown field",
        ),
        (
            "[http]\naddr = \"localhost\"\n",
            "http.addr",
            "invalid socket address",
        ),
        (
            "[wyoming.zeroconf]\nenabled = \"yes\"\n",
            "wyoming.zeroconf.enabled",
            "bool",
        ),
        (
            "[wyoming]\nmax_payload_bytes = 10\n",
            "wyoming.max_payload_bytes",
            "at least",
        ),
        ("[log]\nformat = \"xml\"\n", "log.format", "unknown variant"),
    ];
    for (text, key, why) in cases {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let out = jarvis(&["check-config", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {stderr}");
        assert!(
            stderr.contains(key) && stderr.contains(why),
            "{text}: {stderr}"
        );
    }
    let out = jarvis(&["check-config", "/nonexistent/jarvis.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

#[test]
fn serve_refuses_a_bad_config_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[wyoming]\nport = 10700\n").unwrap();
    let out = jarvis(&["serve", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wyoming.port"));
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: jarvis\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    timeout(LIMIT, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    response
}

fn signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("still running").to_string();
    let status = StdCommand::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn serve_logs_json_answers_health_and_stops_cleanly_on_sigterm() {
    let mut served = serve_binary(&[], &[]).await;
    let response = http_get(served.http.expect("http enabled"), "/health").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let health: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["services"].as_array().unwrap().len(), 4);
    // Zeroconf is off, yet the instance (the HACS integration's unique id) is named: the default.
    assert_eq!(
        health["instance"],
        jarvis::zeroconf::default_instance_name(),
        "{health}"
    );

    // It started itself again with glibc's malloc tunables (src/main.rs), as the same process.
    // (glibc 2.36 cuts its copy of the variable after the first tunable as it reads them.)
    if cfg!(target_env = "gnu") {
        let pid = served.child.id().expect("still running");
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let tunables: &[u8] = b"GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072";
        assert!(
            environ
                .split(|byte| *byte == 0)
                .any(|var| var.starts_with(tunables)),
            "{}",
            String::from_utf8_lossy(&environ)
        );
    }

    let mut client = client(served.wyoming).await;
    assert_still_served(&mut client).await;

    signal(&served.child, "-TERM");
    let status = timeout(Duration::from_secs(10), served.child.wait())
        .await
        .expect("jarvis exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        served
            .log
            .iter()
            .all(|line| serde_json::from_str::<serde_json::Value>(line).is_ok())
    );
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigint() {
    let mut served = serve_binary(&[], &[]).await;
    let mut client = client(served.wyoming).await;
    assert_still_served(&mut client).await;
    signal(&served.child, "-INT");
    served.wait_for_log("wyoming server stopped").await;
    let status = timeout(Duration::from_secs(10), served.child.wait())
        .await
        .expect("jarvis exits after SIGINT")
        .unwrap();
    assert!(status.success(), "{status:?}");
    // The open connection was closed by the server, not left hanging.
    assert!(recv(&mut client).await.is_none());
}

#[tokio::test]
async fn environment_overrides_the_config_file_and_flags_override_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jarvis.toml");
    // An address this host does not have: serving at all proves the override won.
    std::fs::write(
        &file,
        "[wyoming]\naddr = \"192.0.2.1:10700\"\n[http]\nenabled = false\n",
    )
    .unwrap();
    let mut served = serve_binary(&["--config", file.to_str().unwrap()], &[]).await;
    assert!(
        served.http.is_none(),
        "the file's http.enabled = false still applies"
    );
    let mut first = client(served.wyoming).await;
    assert_still_served(&mut first).await;
    served.child.kill().await.unwrap();

    let mut served = serve_binary(
        &["--wyoming-addr", "127.0.0.1:0"],
        &[("JARVIS_WYOMING_ADDR", "192.0.2.1:10700")],
    )
    .await;
    let mut client = client(served.wyoming).await;
    assert_still_served(&mut client).await;
    served.child.kill().await.unwrap();
}

#[tokio::test]
async fn the_reference_python_client_drives_jarvis_as_home_assistant_does() {
    let mut served = serve_binary(&[], &[]).await;
    let port = served.wyoming.port().to_string();
    let wake_wav = models_dir().join("wakeword/samples/hey_jarvis_joe_16k.wav");
    let results = run_python_peer("ha_client.py", &[&port, wake_wav.to_str().unwrap()]).await;
    assert_eq!(
        results["describe"],
        serde_json::json!({"asr": 1, "tts": 1, "wake": 1, "handle": 1, "intent": 0, "satellite": false})
    );
    // The conversation agent: no Proxmox configured here, and Jarvis says so.
    let handled = results["handle"]["handled"].as_str().unwrap_or_default();
    assert!(handled.starts_with("Proxmox isn't set up yet"), "{results}");
    // What Jarvis does not understand is not-handled, so HA reports it (and, with "prefer
    // handling commands locally", HA's own intents had their chance first).
    assert!(
        results["handle_unknown"]["not_handled"].is_string(),
        "{results}"
    );
    assert_eq!(results["recognize"]["intent"], "StartGuest", "{results}");
    assert_eq!(
        results["recognize"]["entities"],
        serde_json::json!({"guest": "vm one oh one", "action": "start"})
    );
    assert!(
        results["not_recognized"]["not_recognized"].is_string(),
        "{results}"
    );
    // Half a second of digital silence has no words in it.
    assert_eq!(
        results["stt"],
        serde_json::json!({"transcript": ""}),
        "{results}"
    );
    // "Hello from Home Assistant." is over a second of 22.05 kHz 16-bit audio.
    assert_eq!(results["tts"]["audio_rate"], 22050, "{results}");
    let bytes = results["tts"]["audio_bytes"].as_u64().unwrap();
    assert!((40_000..300_000).contains(&bytes), "{results}");
    assert_eq!(results["wake"]["detection"], "hey_jarvis", "{results}");
    served.child.kill().await.unwrap();
}

/// Runs `jarvis serve` on a models directory; it must stop at start-up. Returns its stderr.
fn serve_fails_at_start_up(models: &str) -> String {
    let out = StdCommand::new(jarvis_bin())
        .args(["serve", "--models-dir", models, "--no-zeroconf"])
        .args([
            "--wyoming-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .env_remove("JARVIS_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

/// Runs `jarvis` with `args` and the real models directory.
fn jarvis_with_models<I, S>(args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    StdCommand::new(jarvis_bin())
        .args(args)
        .arg("--models-dir")
        .arg(models_dir())
        .env_remove("JARVIS_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn a_missing_or_corrupt_model_stops_serve_with_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().to_str().unwrap();
    let stderr = serve_fails_at_start_up(models);
    assert!(stderr.contains("whisper/ggml-tiny.en.bin"), "{stderr}");
    assert!(
        stderr.contains("jarvis models pull whisper-tiny.en"),
        "{stderr}"
    );

    std::fs::create_dir_all(dir.path().join("whisper")).unwrap();
    std::fs::write(
        dir.path().join("whisper/ggml-tiny.en.bin"),
        b"not a model at all",
    )
    .unwrap();
    let stderr = serve_fails_at_start_up(models);
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
}

#[test]
fn transcribe_prints_the_text_of_a_wav_file() {
    let jfk = models_dir().join("whisper/samples/jfk.wav");
    let out = jarvis_with_models([std::ffi::OsStr::new("transcribe"), jfk.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ask not what your country can do for you"),
        "{stdout}"
    );
}

#[test]
fn say_writes_a_wav_file_that_transcribes_back_to_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("out.wav");
    let text = "The backup has finished and three guests are running.";
    let out = jarvis_with_models([
        std::ffi::OsStr::new("say"),
        std::ffi::OsStr::new(text),
        std::ffi::OsStr::new("-o"),
        wav.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reader = hound::WavReader::open(&wav).unwrap();
    assert_eq!(reader.spec().sample_rate, 22_050);
    assert!(
        reader.duration() > 22_050 / 2,
        "{} samples",
        reader.duration()
    );
    let out = jarvis_with_models([std::ffi::OsStr::new("transcribe"), wav.as_os_str()]);
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.contains("running"), "{text}");
}

#[tokio::test]
async fn sigterm_during_a_decode_stops_cleanly() {
    // A worker thread still inside whisper.cpp when the process exits used to crash it
    // (SIGSEGV from the C++ libraries' destructors): the engine now joins its threads.
    use wyoming::asr::Transcribe;
    use wyoming::audio::{AudioChunk, AudioFormat, AudioStart, AudioStop};
    let mut served = serve_binary(&[], &[]).await;
    let jfk = models_dir().join("whisper/samples/jfk.wav");
    let samples: Vec<u8> = hound::WavReader::open(jfk)
        .unwrap()
        .samples::<i16>()
        .flat_map(|s| s.unwrap().to_le_bytes())
        .collect();
    let mut client = client(served.wyoming).await;
    let format = AudioFormat::HA_MIC;
    client.send(Transcribe::default()).await.unwrap();
    client.send(AudioStart::new(format, None)).await.unwrap();
    for chunk in samples.chunks(3200) {
        let chunk = AudioChunk::new(format, chunk.to_vec(), None);
        client.send(chunk).await.unwrap();
    }
    client.send(AudioStop::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    signal(&served.child, "-TERM");
    let status = timeout(Duration::from_secs(20), served.child.wait())
        .await
        .expect("jarvis exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    // Stopping a decode on purpose is no error: whisper.cpp's "failed to encode" stays out.
    let mut errors = Vec::new();
    while let Some(line) = served.later.recv().await {
        if line.contains("\"ERROR\"") {
            errors.push(line);
        }
    }
    assert!(errors.is_empty(), "{errors:#?}");
}
