//! Shared by the benches: where the models are, running the real server, reading its memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

/// The real models: `JARVIS_MODELS_DIR`, or `../shared/models` beside the checkout.
pub(crate) fn models_dir() -> PathBuf {
    std::env::var_os("JARVIS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/models"))
}

/// The server for a bench: Wyoming on a loopback port, no HTTP or zeroconf, the real models,
/// and every voice service off: each bench turns on what it measures.
pub(crate) fn bench_config() -> jarvis::config::Config {
    let mut config = jarvis::config::Config::default();
    config.wyoming.addr = "127.0.0.1:0".parse().unwrap();
    config.http.enabled = false;
    config.wyoming.zeroconf.enabled = false;
    config.models.dir = models_dir();
    config.stt.enabled = false;
    config.tts.enabled = false;
    config.wake.enabled = false;
    config
}

/// A memory field of this process's `/proc/self/status` ("VmRSS:", "VmHWM:"), in kB (0 where
/// it cannot be read). Not every bench reads its own memory.
#[allow(dead_code)]
pub(crate) fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Peak resident memory of a process, in MB.
pub(crate) fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Starts `jarvis serve` with `config` (a file under `benches/`) on a loopback port; returns
/// the process and its Wyoming address once it serves.
pub(crate) async fn serve_binary(config: &str) -> (tokio::process::Child, std::net::SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join(config);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_jarvis"))
        .args([
            "serve",
            "--wyoming-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args([
            "--no-zeroconf",
            "--log-format",
            "json",
            "--log-level",
            "warn,jarvis::app=info",
        ])
        .arg("--config")
        .arg(config)
        .arg("--models-dir")
        .arg(models_dir())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        if json["message"] == "jarvis is serving" {
            let addr = json["wyoming"].as_str().unwrap().parse().unwrap();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, addr);
        }
    }
    panic!("jarvis serve exited before serving");
}
