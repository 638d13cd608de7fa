//! The Home Assistant add-on: its start script (`addon/jarvis/run.sh`) run for real, with the
//! built `jarvis`, against a fake Supervisor API (tests/common/fake_supervisor.rs), a real
//! Mosquitto for the MQTT service and a local file server for the first-start download; and
//! `config.yaml`, `repository.yaml`, `translations/en.yaml` and the Dockerfile checked against
//! the rules of Home Assistant's developer documentation (docs/apps/configuration.md,
//! repository.md) and Supervisor's own validation.
//!
//! The script runs outside a container: `JARVIS_ADDON_DATA`/`JARVIS_ADDON_CONFIG` stand for
//! `/data` and `/config`, `JARVIS_SUPERVISOR_URL` for `http://supervisor`, and
//! `JARVIS_WYOMING_ADDR`/`JARVIS_HTTP_ADDR` give Jarvis free loopback ports.
//!
//! `the_image_starts_against_the_fake_supervisor` (ignored) runs the built image with podman
//! instead; `addon/build-local.sh` builds the image and runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fake_supervisor::{FakeSupervisor, TOKEN};
use common::file_server::{Behaviour, FileServer};
use common::mosquitto::{Mosquitto, Observer};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use yaml_rust2::{Yaml, YamlLoader};

/// Jarvis loading its models (a debug build) and anything else a start waits for.
const START: Duration = Duration::from_secs(90);

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml(path: &str) -> Yaml {
    let text = std::fs::read_to_string(repo(path)).unwrap();
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(docs.len(), 1, "{path}: one YAML document");
    docs.remove(0)
}

fn json_of(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => json!(i),
        Yaml::Real(r) => json!(r.parse::<f64>().unwrap()),
        Yaml::Boolean(b) => json!(b),
        Yaml::Null => Value::Null,
        Yaml::Array(items) => Value::Array(items.iter().map(json_of).collect()),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), json_of(v)))
                .collect(),
        ),
        other => panic!("unexpected YAML {other:?}"),
    }
}

/// What Supervisor writes to `/data/options.json` for a fresh install: `config.yaml`'s
/// `options`, plus `changes`.
fn options(changes: Value) -> Value {
    let mut options = json_of(&yaml("addon/jarvis/config.yaml")["options"]);
    for (key, value) in changes.as_object().unwrap() {
        options[key] = value.clone();
    }
    options
}

/// A free loopback port (bound, then released for the script).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The model files the default options need, as laid out in the models folder.
const DEFAULT_MODELS: &[&str] = &[
    "whisper/ggml-tiny.en.bin",
    "whisper/ggml-silero-v6.2.0.bin",
    "piper/en_US-joe-medium.onnx",
    "piper/en_US-joe-medium.onnx.json",
    "wakeword/hey_jarvis_v0.1.onnx",
    "wakeword/melspectrogram.onnx",
    "wakeword/embedding_model.onnx",
    "wakeword/silero_vad.onnx",
];

/// One add-on installation: its `/data` and `/config`, and the ports its Jarvis listens on.
struct Addon {
    dir: tempfile::TempDir,
    wyoming: u16,
    http: u16,
}

impl Addon {
    fn new(options: &Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        let addon = Self {
            dir,
            wyoming: free_port(),
            http: free_port(),
        };
        addon.write_options(options);
        addon
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn write_options(&self, options: &Value) {
        std::fs::write(self.data().join("options.json"), options.to_string()).unwrap();
    }

    /// Links the shared copies of `files` into `/data/models`, as a previous start would have
    /// downloaded them.
    fn install_models(&self, files: &[&str]) {
        let shared = common::models_dir();
        for file in files {
            let link = self.data().join("models").join(file);
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(shared.join(file), link).unwrap();
        }
    }

    /// Runs the start script against the Supervisor at `supervisor`.
    fn start(&self, supervisor: &str) -> Running {
        let mut command = Command::new("bash");
        command
            .arg(repo("addon/jarvis/run.sh"))
            .env("JARVIS_BIN", common::jarvis_bin())
            .env("JARVIS_ADDON_DATA", self.data())
            .env("JARVIS_ADDON_CONFIG", self.dir.path().join("config"))
            .env(
                "JARVIS_ADDON_ONNXRUNTIME",
                common::models_dir().join("onnxruntime/libonnxruntime.so.1.24.2"),
            )
            .env("JARVIS_ADDON_HOST", "local-jarvis")
            .env("JARVIS_SUPERVISOR_URL", supervisor)
            .env("SUPERVISOR_TOKEN", TOKEN)
            .env("JARVIS_SUPERVISOR_TIMEOUT_SECS", "2")
            .env("JARVIS_WYOMING_ADDR", format!("127.0.0.1:{}", self.wyoming))
            .env("JARVIS_HTTP_ADDR", format!("127.0.0.1:{}", self.http))
            // Nothing from the developer's environment: the add-on has none of it.
            .env_remove("JARVIS_CONFIG")
            .env_remove("JARVIS_MODELS_DIR")
            .env_remove("JARVIS_ONNXRUNTIME")
            .env_remove("JARVIS_AUDIT_PATH")
            .env_remove("JARVIS_EVENTS_PATH")
            .env_remove("JARVIS_LOG_LEVEL")
            .env_remove("JARVIS_NO_ZEROCONF")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Running::spawn(command)
    }
}

/// A running start script and everything it printed (stdout and stderr, in arrival order).
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    changed: Arc<Notify>,
}

impl Running {
    fn spawn(mut command: Command) -> Self {
        let mut child = command.spawn().expect("start run.sh");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let changed = Arc::new(Notify::new());
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        Self::collect(stdout, &lines, &changed);
        Self::collect(stderr, &lines, &changed);
        Self {
            child,
            lines,
            changed,
        }
    }

    fn collect(
        stream: impl AsyncRead + Unpin + Send + 'static,
        lines: &Arc<Mutex<Vec<String>>>,
        changed: &Arc<Notify>,
    ) {
        let (lines, changed) = (lines.clone(), changed.clone());
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.lock().unwrap().push(line);
                changed.notify_waiters();
            }
        });
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn log(&self) -> String {
        self.lines().join("\n")
    }

    /// Waits for a line containing `needle`.
    async fn wait_for(&self, needle: &str, limit: Duration) -> String {
        let found = tokio::time::timeout(limit, async {
            loop {
                let notified = self.changed.notified();
                if let Some(line) = self.lines().into_iter().find(|l| l.contains(needle)) {
                    return line;
                }
                notified.await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no line with {needle:?} in {limit:?}:\n{}", self.log()))
    }

    /// Sends SIGTERM, as `docker stop` does through the container's init.
    fn terminate(&self) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the script to exit; its status and every line it printed.
    async fn exit(mut self, limit: Duration) -> (ExitStatus, Vec<String>) {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("run.sh still running after {limit:?}:\n{}", self.log()))
            .unwrap();
        // The readers finish once the pipes close (every child of the script has exited).
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while Arc::strong_count(&self.lines) > 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        (status, self.lines())
    }
}

/// `GET /health` on Jarvis's HTTP port (what the image's HEALTHCHECK asks).
async fn health(port: u16) -> Value {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Whether Jarvis answers `describe` on `port`.
async fn answers_describe(port: u16) -> bool {
    let attempt = async {
        let mut client = wyoming::Client::connect(("127.0.0.1", port)).await.ok()?;
        client.describe().await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), attempt).await,
        Ok(Some(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_options_become_a_checked_configuration_and_jarvis_is_announced_once_it_answers() {
    let broker = Mosquitto::with_user("addons", "mqtt-secret-9f8e").await;
    let supervisor = FakeSupervisor::start().await.with_mqtt(json!({
        "addon": "core_mosquitto",
        "host": "127.0.0.1",
        // As the API docs show it: a string.
        "port": broker.port.to_string(),
        "ssl": false,
        "protocol": "3.1.1",
        "username": "addons",
        "password": "mqtt-secret-9f8e"
    }));
    let observer = Observer::connect_as(
        broker.port,
        &["jarvis/#"],
        Some(("addons", "mqtt-secret-9f8e")),
    )
    .await;
    let addon = Addon::new(&options(json!({
        "http_api_key": "api-key-5d4c",
        // A node that does not answer: Jarvis serves on, and the secret stays out of the log.
        "proxmox_urls": ["https://127.0.0.1:9/"],
        "proxmox_token_secret": "pve-secret-1a2b3c",
        "policy_protected_guests": ["100", "haos"],
        "timezone": "Europe/Berlin"
    })));
    addon.install_models(DEFAULT_MODELS);
    let running = addon.start(&supervisor.url());

    let announced = supervisor.wait_for("POST", "/discovery", START).await;
    assert!(announced.authorized, "{announced:?}");
    assert_eq!(
        announced.body,
        json!({"service": "wyoming", "config": {"uri": format!("tcp://local-jarvis:{}", addon.wyoming)}})
    );
    assert_eq!(
        announced.server_answered,
        Some(true),
        "announced before Jarvis answered describe"
    );
    running
        .wait_for("announced the Wyoming server", START)
        .await;

    // The configuration it wrote is one `jarvis check-config` accepts, private to the add-on.
    let config = addon.data().join("jarvis.toml");
    let check = std::process::Command::new(common::jarvis_bin())
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let parsed = jarvis::config::Config::load(&config).unwrap();
    assert!(!parsed.wyoming.zeroconf.enabled);
    assert!(parsed.mqtt.enabled && parsed.proxmox.enabled);
    assert_eq!(parsed.policy.protected_guests, ["100", "haos"]);
    assert_eq!(parsed.models.dir, addon.data().join("models"));

    // MQTT with the credentials Supervisor handed out: Jarvis is online at the broker.
    observer
        .wait_topic("jarvis/status", |p| p == "online")
        .await;
    let health = health(addon.http).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["mqtt"]["connected"], true, "{health}");
    assert!(answers_describe(addon.wyoming).await);
    assert!(supervisor.calls().iter().all(|c| c.authorized));
    assert!(supervisor.calls_to("POST", "/addons/self/stop").is_empty());

    // Stopping the add-on: Jarvis gets SIGTERM and the script exits cleanly.
    running.terminate();
    let (status, lines) = running.exit(START).await;
    assert!(status.success(), "{status:?}:\n{}", lines.join("\n"));
    let log = lines.join("\n");
    assert!(log.contains("to download: nothing"), "{log}");
    assert!(
        log.contains(&format!(
            "MQTT broker 127.0.0.1:{} from Supervisor, user addons",
            broker.port
        )),
        "{log}"
    );
    for secret in [
        "mqtt-secret-9f8e",
        "pve-secret-1a2b3c",
        "api-key-5d4c",
        TOKEN,
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_are_one_line_naming_the_option_and_a_clean_stop() {
    let supervisor = FakeSupervisor::start().await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut missing_voice = options(json!({}));
    missing_voice.as_object_mut().unwrap().remove("voice");
    // (options.json, what the line must name, what else it must say, Supervisor alive)
    let cases: Vec<(Option<String>, &str, &str, bool)> = vec![
        (
            Some(options(json!({"wake_threshold": 1.5})).to_string()),
            "option wake_threshold",
            "at most 1",
            true,
        ),
        (
            Some(missing_voice.to_string()),
            "option voice",
            "is missing",
            true,
        ),
        (
            Some(options(json!({"proxmox_urls": "https://pve1:8006"})).to_string()),
            "option proxmox_urls",
            "expected a sequence",
            true,
        ),
        (
            Some(options(json!({"proxmox_urls": ["https://pve1:8006"]})).to_string()),
            "option proxmox_token_secret",
            "is required",
            true,
        ),
        (
            Some(
                options(json!({
                    "proxmox_urls": ["https://pve1:8006"],
                    "proxmox_token_secret": 918_273_645
                }))
                .to_string(),
            ),
            "option proxmox_token_secret",
            "not shown",
            true,
        ),
        (
            Some(options(json!({"timezone": "Atlantis/Capital"})).to_string()),
            "option timezone",
            "Atlantis/Capital",
            true,
        ),
        (
            Some(options(json!({"voice": "de_DE-thorsten-high"})).to_string()),
            "option voice",
            "piper",
            true,
        ),
        (
            Some(options(json!({"stt_model": "custom"})).to_string()),
            "option stt_custom_model",
            "is required",
            true,
        ),
        (None, "options.json", "cannot read", true),
        (
            Some("{\"log_level\": ".into()),
            "options.json",
            "not valid JSON",
            true,
        ),
        // Supervisor gone as well: the add-on still stops cleanly.
        (
            Some(options(json!({"events_retention_days": "forever"})).to_string()),
            "option events_retention_days",
            "invalid type",
            false,
        ),
    ];
    for (index, (file, names, says, alive)) in cases.into_iter().enumerate() {
        let addon = Addon::new(&json!({}));
        match &file {
            Some(text) => std::fs::write(addon.data().join("options.json"), text).unwrap(),
            None => std::fs::remove_file(addon.data().join("options.json")).unwrap(),
        }
        let stops_before = supervisor.calls_to("POST", "/addons/self/stop").len();
        let url = if alive {
            supervisor.url()
        } else {
            dead.clone()
        };
        let (status, lines) = addon.start(&url).exit(START).await;
        let lines: Vec<&String> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
        assert!(status.success(), "case {index}: {status:?} {lines:?}");
        assert_eq!(lines.len(), 1, "case {index}: one line, got {lines:?}");
        assert!(lines[0].starts_with("jarvis: "), "case {index}: {lines:?}");
        assert!(lines[0].contains(names), "case {index}: {lines:?}");
        assert!(lines[0].contains(says), "case {index}: {lines:?}");
        assert!(!lines[0].contains("918273645"), "case {index}: {lines:?}");
        if alive {
            // Stopped through Supervisor, so its watchdog does not start it again.
            let stops = supervisor.calls_to("POST", "/addons/self/stop");
            assert_eq!(stops.len(), stops_before + 1, "case {index}");
            assert!(stops.last().unwrap().authorized);
        }
        assert!(!addon.data().join("jarvis.toml").exists(), "case {index}");
        assert!(!answers_describe(addon.wyoming).await, "case {index}");
    }
    assert!(supervisor.calls_to("POST", "/discovery").is_empty());
    assert!(supervisor.calls_to("GET", "/services/mqtt").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_option_stops_the_add_on_through_supervisor_with_status_zero() {
    // Supervisor answers the stop request once the container has stopped, and stops it with
    // SIGTERM (to the script, through Docker's init): the script must exit 0 then, not die.
    let supervisor = FakeSupervisor::start().await.holding_stop();
    let addon = Addon::new(&options(json!({"wake_threshold": 0.0})));
    let running = addon.start(&supervisor.url());
    running.wait_for("option wake_threshold", START).await;
    let stop = supervisor
        .wait_arrival("POST", "/addons/self/stop", START)
        .await;
    assert!(!stop.answered);
    running.terminate();
    let (status, lines) = running.exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_mqtt_service_the_entities_are_off_and_jarvis_still_serves() {
    let supervisor = FakeSupervisor::start().await;
    let addon = Addon::new(&options(json!({"frigate_enabled": true})));
    addon.install_models(DEFAULT_MODELS);
    let running = addon.start(&supervisor.url());
    running
        .wait_for("no MQTT broker in Home Assistant", START)
        .await;
    running
        .wait_for("Frigate's events are not followed", START)
        .await;
    let announced = supervisor.wait_for("POST", "/discovery", START).await;
    assert_eq!(announced.server_answered, Some(true));
    let health = health(addon.http).await;
    assert!(health.get("mqtt").is_none(), "{health}");
    let config = jarvis::config::Config::load(&addon.data().join("jarvis.toml")).unwrap();
    assert!(!config.mqtt.enabled && !config.frigate.enabled);
    assert_eq!(supervisor.calls_to("GET", "/services/mqtt").len(), 1);
    running.terminate();
    let (status, lines) = running.exit(START).await;
    assert!(status.success(), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_supervisor_is_waited_for_and_one_too_slow_is_done_without() {
    // Slow, but within the 2 s the add-on waits: everything works, only later.
    let broker = Mosquitto::start().await;
    let slow = FakeSupervisor::start()
        .await
        .with_mqtt(json!({"host": "127.0.0.1", "port": broker.port, "ssl": false}))
        .slow(Duration::from_millis(1200), None);
    let addon = Addon::new(&options(json!({})));
    addon.install_models(DEFAULT_MODELS);
    let running = addon.start(&slow.url());
    let announced = slow.wait_for("POST", "/discovery", START).await;
    assert_eq!(announced.server_answered, Some(true));
    running
        .wait_for("announced the Wyoming server", START)
        .await;
    assert!(
        running.log().contains("MQTT broker 127.0.0.1"),
        "{}",
        running.log()
    );
    running.terminate();
    assert!(running.exit(START).await.0.success());

    // Too slow for the first two calls (the broker, the first announcement): MQTT is off, and
    // the announcement is tried again until Supervisor answers.
    let too_slow = FakeSupervisor::start()
        .await
        .with_mqtt(json!({"host": "127.0.0.1", "port": broker.port, "ssl": false}))
        .slow(Duration::from_secs(4), Some(2));
    let addon = Addon::new(&options(json!({})));
    addon.install_models(DEFAULT_MODELS);
    let running = addon.start(&too_slow.url());
    running
        .wait_for(
            "Supervisor did not answer GET /services/mqtt: timed out",
            START,
        )
        .await;
    running
        .wait_for("announced the Wyoming server", START)
        .await;
    let log = running.log();
    assert!(log.contains("MQTT entities are off"), "{log}");
    assert!(
        log.contains("Supervisor did not answer POST /discovery: timed out; trying again"),
        "{log}"
    );
    assert!(too_slow.calls_to("POST", "/discovery").len() >= 2);
    assert!(health(addon.http).await.get("mqtt").is_none());
    running.terminate();
    assert!(running.exit(START).await.0.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_supervisor_leaves_jarvis_serving_and_says_so() {
    let addon = Addon::new(&options(json!({})));
    addon.install_models(DEFAULT_MODELS);
    let running = addon.start(&format!("http://127.0.0.1:{}", free_port()));
    running
        .wait_for("Supervisor did not answer GET /services/mqtt", START)
        .await;
    // Four more tries over 15 s, then one line that says what to do.
    let gave_up = running
        .wait_for("Home Assistant was not told about Jarvis", START)
        .await;
    assert!(gave_up.contains("add it by hand"), "{gave_up}");
    assert!(answers_describe(addon.wyoming).await);
    assert_eq!(health(addon.http).await["status"], "ok");
    running.terminate();
    let (status, lines) = running.exit(START).await;
    assert!(status.success(), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_discovery_is_said_once_and_not_retried() {
    // What Supervisor answers when `discovery` in config.yaml lacks the service.
    let supervisor = FakeSupervisor::start().await.refusing_discovery(
        403,
        "Apps must list services they provide via discovery in their config!",
    );
    let addon = Addon::new(&options(json!({})));
    addon.install_models(DEFAULT_MODELS);
    let running = addon.start(&supervisor.url());
    let line = running
        .wait_for("Home Assistant was not told about Jarvis", START)
        .await;
    assert!(
        line.contains("Supervisor refused POST /discovery (403): Apps must list services"),
        "{line}"
    );
    assert_eq!(supervisor.calls_to("POST", "/discovery").len(), 1);
    assert!(answers_describe(addon.wyoming).await);
    running.terminate();
    let (status, lines) = running.exit(START).await;
    assert!(status.success(), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("trying again")),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_downloads_the_models_resumes_after_an_interruption_then_works_offline() {
    let shared = common::models_dir();
    let server = FileServer::start().await;
    // The mirror layout DOCS.md gives for models_mirror_url.
    let served = [
        (
            "/mirror/whisper-vad/ggml-silero-v6.2.0.bin",
            "whisper/ggml-silero-v6.2.0.bin",
        ),
        (
            "/mirror/piper/en/en_US/joe/medium/en_US-joe-medium.onnx",
            "piper/en_US-joe-medium.onnx",
        ),
        (
            "/mirror/piper/en/en_US/joe/medium/en_US-joe-medium.onnx.json",
            "piper/en_US-joe-medium.onnx.json",
        ),
        (
            "/mirror/wakeword/hey_jarvis_v0.1.onnx",
            "wakeword/hey_jarvis_v0.1.onnx",
        ),
        (
            "/mirror/wakeword/melspectrogram.onnx",
            "wakeword/melspectrogram.onnx",
        ),
        (
            "/mirror/wakeword/silero_vad.onnx",
            "wakeword/silero_vad.onnx",
        ),
    ];
    for (url, file) in served {
        server.put(url, std::fs::read(shared.join(file)).unwrap());
    }
    let supervisor = FakeSupervisor::start().await;
    let addon = Addon::new(&options(
        json!({"models_mirror_url": server.url("/mirror")}),
    ));
    // The shared copies of these two are not the upstream files, which the catalog's checksums
    // would refuse: they stand for models downloaded before.
    addon.install_models(&["whisper/ggml-tiny.en.bin", "wakeword/embedding_model.onnx"]);

    // First start: the download stalls 300 KB into the first file, and the add-on is stopped.
    server.set(Behaviour::StallAfter(300_000));
    let running = addon.start(&supervisor.url());
    running
        .wait_for(
            "to download: whisper-vad-silero-v6.2.0, piper-en_US-joe-medium, \
             wake-hey_jarvis_v0.1, wake-melspectrogram, wake-silero_vad",
            START,
        )
        .await;
    let part = addon
        .data()
        .join("models/whisper/ggml-silero-v6.2.0.bin.part");
    // The downloader writes through a 256 KiB buffer: the first flush is the sign.
    tokio::time::timeout(START, async {
        while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the first file is partly downloaded");
    running.terminate();
    let (status, lines) = running.exit(START).await;
    assert!(status.success(), "{status:?} {lines:?}");
    assert!(
        supervisor.calls_to("POST", "/discovery").is_empty(),
        "{lines:?}"
    );
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept <= 300_000, "{kept}");

    // Second start: the download resumes where it stopped, every file is verified, and Jarvis
    // is announced.
    server.set(Behaviour::Normal);
    let running = addon.start(&supervisor.url());
    running.wait_for("resuming at", START).await;
    let announced = supervisor.wait_for("POST", "/discovery", START).await;
    assert_eq!(announced.server_answered, Some(true));
    let resumed = server.log().into_iter().find(|s| {
        s.path == "/mirror/whisper-vad/ggml-silero-v6.2.0.bin"
            && s.range.as_deref() == Some(format!("bytes={kept}-").as_str())
    });
    assert!(resumed.is_some(), "{:?}", server.log());
    for (_, file) in served {
        assert_eq!(
            std::fs::read(addon.data().join("models").join(file)).unwrap(),
            std::fs::read(shared.join(file)).unwrap(),
            "{file}"
        );
    }
    running.terminate();
    assert!(running.exit(START).await.0.success());

    // Third start, the mirror gone: nothing to download, and Jarvis serves.
    let requests = server.log().len();
    drop(server);
    let supervisor = FakeSupervisor::start().await;
    let running = addon.start(&supervisor.url());
    supervisor.wait_for("POST", "/discovery", START).await;
    running.terminate();
    let (status, lines) = running.exit(START).await;
    assert!(status.success(), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("to download: nothing")),
        "{lines:?}"
    );
    assert!(requests > 0);
}

// ---------------------------------------------------------------------------------------------
// The files Supervisor reads, checked against the documented schema.
// ---------------------------------------------------------------------------------------------

/// Keys `config.yaml` may have, and their types (developers docs, docs/apps/configuration.md;
/// Supervisor's `_SCHEMA_APP_CONFIG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    Int,
    List,
    Dict,
    /// `options`/`schema`: checked on their own below.
    Any,
}

const CONFIG_KEYS: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("version", Kind::Str),
    ("slug", Kind::Str),
    ("description", Kind::Str),
    ("arch", Kind::List),
    ("machine", Kind::List),
    ("url", Kind::Str),
    ("startup", Kind::Str),
    ("webui", Kind::Str),
    ("boot", Kind::Str),
    ("ports", Kind::Dict),
    ("ports_description", Kind::Dict),
    ("host_network", Kind::Bool),
    ("host_ipc", Kind::Bool),
    ("host_dbus", Kind::Bool),
    ("host_pid", Kind::Bool),
    ("host_uts", Kind::Bool),
    ("devices", Kind::List),
    ("homeassistant", Kind::Str),
    ("hassio_role", Kind::Str),
    ("hassio_api", Kind::Bool),
    ("homeassistant_api", Kind::Bool),
    ("docker_api", Kind::Bool),
    ("privileged", Kind::List),
    ("full_access", Kind::Bool),
    ("apparmor", Kind::Any),
    ("map", Kind::List),
    ("environment", Kind::Dict),
    ("audio", Kind::Bool),
    ("video", Kind::Bool),
    ("gpio", Kind::Bool),
    ("usb", Kind::Bool),
    ("uart", Kind::Bool),
    ("udev", Kind::Bool),
    ("devicetree", Kind::Bool),
    ("kernel_modules", Kind::Bool),
    ("stdin", Kind::Bool),
    ("legacy", Kind::Bool),
    ("options", Kind::Any),
    ("schema", Kind::Any),
    ("image", Kind::Str),
    ("timeout", Kind::Int),
    ("tmpfs", Kind::Bool),
    ("discovery", Kind::List),
    ("services", Kind::List),
    ("auth_api", Kind::Bool),
    ("ingress", Kind::Bool),
    ("ingress_port", Kind::Int),
    ("ingress_entry", Kind::Str),
    ("ingress_stream", Kind::Bool),
    ("panel_icon", Kind::Str),
    ("panel_title", Kind::Str),
    ("panel_admin", Kind::Bool),
    ("backup", Kind::Str),
    ("backup_pre", Kind::Str),
    ("backup_post", Kind::Str),
    ("backup_exclude", Kind::List),
    ("stage", Kind::Str),
    ("init", Kind::Bool),
    ("watchdog", Kind::Str),
    ("realtime", Kind::Bool),
    ("journald", Kind::Bool),
    ("breaking_versions", Kind::List),
    ("ulimits", Kind::Dict),
];

fn kind_of(yaml: &Yaml) -> Kind {
    match yaml {
        Yaml::String(_) => Kind::Str,
        Yaml::Boolean(_) => Kind::Bool,
        Yaml::Integer(_) => Kind::Int,
        Yaml::Array(_) => Kind::List,
        Yaml::Hash(_) => Kind::Dict,
        _ => Kind::Any,
    }
}

fn hash(yaml: &Yaml) -> BTreeMap<String, Yaml> {
    yaml.as_hash()
        .unwrap_or_else(|| panic!("expected a mapping, got {yaml:?}"))
        .iter()
        .map(|(k, v)| (k.as_str().expect("string keys").to_owned(), v.clone()))
        .collect()
}

fn strings(yaml: &Yaml) -> Vec<String> {
    yaml.as_vec()
        .unwrap_or_else(|| panic!("expected a list, got {yaml:?}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

/// Whether `element` is a schema type the docs list (Supervisor's `RE_SCHEMA_ELEMENT`):
/// `str`, `str(min,max)`, `bool`, `int`/`float` with optional ranges, `email`, `url`,
/// `password`, `port`, `match(REGEX)`, `list(a|b)`, `device(filter)`, each with an optional `?`.
fn schema_type_is_documented(element: &str) -> bool {
    let element = element.trim();
    let base = element.strip_suffix('?').unwrap_or(element);
    let ranged = |name: &str, number: fn(&str) -> bool| {
        if base == name {
            return true;
        }
        let Some(args) = base
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
        else {
            return false;
        };
        let Some((min, max)) = args.split_once(',') else {
            return false;
        };
        (min.is_empty() || number(min)) && (max.is_empty() || number(max)) && args != ","
    };
    let int = |s: &str| s.parse::<i64>().is_ok();
    let float = |s: &str| s.parse::<f64>().is_ok();
    let count = |s: &str| s.parse::<u64>().is_ok();
    matches!(base, "bool" | "email" | "url" | "port" | "device")
        || ranged("str", count)
        || ranged("password", count)
        || ranged("int", int)
        || ranged("float", float)
        || (base.starts_with("match(") && base.ends_with(')'))
        || (base.starts_with("list(") && base.ends_with(')') && base.len() > "list()".len())
        || (base.starts_with("device(subsystem=") && base.ends_with(')'))
}

/// Whether `value` passes `element` (for the defaults in `options`).
fn option_fits(element: &str, value: &Yaml) -> bool {
    let base = element.trim().trim_end_matches('?');
    let range = |text: &str| -> (Option<f64>, Option<f64>) {
        let args = text
            .split_once('(')
            .map(|(_, r)| r.trim_end_matches(')'))
            .unwrap_or(",");
        let (min, max) = args.split_once(',').unwrap_or(("", ""));
        (min.parse().ok(), max.parse().ok())
    };
    let within = |n: f64| {
        let (min, max) = range(base);
        min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)
    };
    match value {
        Yaml::Boolean(_) => base == "bool",
        Yaml::Integer(i) => {
            (base.starts_with("int") || base.starts_with("float")) && within(*i as f64)
        }
        Yaml::Real(r) => base.starts_with("float") && within(r.parse().unwrap()),
        Yaml::String(s) if base.starts_with("list(") => base["list(".len()..base.len() - 1]
            .split('|')
            .any(|choice| choice == s),
        Yaml::String(s) if base == "url" => s.starts_with("http://") || s.starts_with("https://"),
        Yaml::String(_) => {
            base.starts_with("str") || base.starts_with("password") || base.starts_with("match")
        }
        _ => false,
    }
}

#[test]
fn config_yaml_follows_the_documented_app_schema() {
    let config = hash(&yaml("addon/jarvis/config.yaml"));
    let allowed: BTreeMap<&str, Kind> = CONFIG_KEYS.iter().copied().collect();
    for (key, value) in &config {
        let kind = allowed
            .get(key.as_str())
            .unwrap_or_else(|| panic!("config.yaml: {key} is not a documented key"));
        if *kind != Kind::Any {
            assert_eq!(
                kind_of(value),
                *kind,
                "config.yaml: {key} has the wrong type"
            );
        }
    }
    for required in ["name", "version", "slug", "description", "arch"] {
        assert!(
            config.contains_key(required),
            "config.yaml: {required} is required"
        );
    }
    let slug = config["slug"].as_str().unwrap();
    assert!(
        !slug.is_empty()
            && slug
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
        "slug {slug:?} is not URL-safe"
    );
    // The version is the image tag, and Jarvis's own version.
    assert_eq!(config["version"].as_str(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(strings(&config["arch"]), ["amd64", "aarch64"]);
    if let Some(startup) = config.get("startup") {
        let startup = startup.as_str().unwrap();
        assert!(["initialize", "system", "services", "application", "once"].contains(&startup));
    }
    if let Some(boot) = config.get("boot") {
        assert!(["auto", "manual", "manual_only"].contains(&boot.as_str().unwrap()));
    }
    // `image` is the generic (multi-arch) name, without a tag.
    let image = config["image"].as_str().unwrap();
    assert!(!image.contains(':') && !image.contains("{arch}"), "{image}");
    // Supervisor's RE_SERVICE: only mqtt and mysql, with provide/want/need.
    assert_eq!(strings(&config["services"]), ["mqtt:want"]);
    assert_eq!(strings(&config["discovery"]), ["wyoming"]);
    // Ports: "PORT/tcp|udp": host port or null (not published on the host).
    let ports = hash(&config["ports"]);
    assert_eq!(ports.keys().collect::<Vec<_>>(), ["10700/tcp", "10701/tcp"]);
    for (port, host) in &ports {
        let (number, proto) = port.split_once('/').unwrap();
        assert!(number.parse::<u16>().is_ok() && ["tcp", "udp"].contains(&proto));
        assert!(matches!(host, Yaml::Null | Yaml::Integer(_)), "{port}");
    }
    // A folder for the user's own models, of a type Supervisor maps (`app_config` is the
    // current name of `addon_config`).
    for entry in strings(&config["map"]) {
        let (kind, mode) = entry.split_once(':').unwrap_or((entry.as_str(), "ro"));
        assert!(
            [
                "homeassistant_config",
                "app_config",
                "all_app_configs",
                "local_apps",
                "ssl",
                "backup",
                "share",
                "media",
                "data"
            ]
            .contains(&kind)
                && ["ro", "rw"].contains(&mode),
            "map {entry}"
        );
    }
    assert!(strings(&config["map"]).contains(&"app_config:rw".to_owned()));
    // The models and the TTS cache stay out of backups: the names run.sh's configuration uses.
    let excluded = strings(&config["backup_exclude"]);
    assert!(excluded.contains(&"models".to_owned()) && excluded.contains(&"tts-cache".to_owned()));
    let toml = std::fs::read_to_string(repo("src/addon/options.rs")).unwrap();
    assert!(toml.contains("data.join(\"models\")") && toml.contains("data.join(\"tts-cache\")"));
    // No s6-overlay in the image: `init` must not be false (the docs: false only for s6 v3).
    assert_ne!(config.get("init").and_then(Yaml::as_bool), Some(false));
    // The panel through ingress, on the HTTP port (which serves it at `panel/`); the
    // watchdog is the image's HEALTHCHECK.
    assert_eq!(config["ingress"], Yaml::Boolean(true));
    assert_eq!(config["ingress_port"], Yaml::Integer(10701));
    assert_eq!(config["ingress_entry"], Yaml::String("panel/".into()));
    assert!(config.contains_key("panel_icon") && config.contains_key("panel_title"));
    assert!(!config.contains_key("webui"));
    assert!(!config.contains_key("watchdog"));
    // The linter's errors and warnings (frenck/action-addon-linter): deprecated or
    // all-powerful keys, and any key set to its default value.
    for flagged in [
        "advanced",
        "full_access",
        "codenotary",
        "squash",
        "auto_uart",
    ] {
        assert!(!config.contains_key(flagged), "{flagged}");
    }
    let defaults: &[(&str, Yaml)] = &[
        ("startup", Yaml::String("application".into())),
        ("boot", Yaml::String("auto".into())),
        ("init", Yaml::Boolean(true)),
        ("stage", Yaml::String("stable".into())),
        ("backup", Yaml::String("hot".into())),
        ("timeout", Yaml::Integer(10)),
        ("hassio_role", Yaml::String("default".into())),
        ("panel_icon", Yaml::String("mdi:puzzle".into())),
        ("ingress_port", Yaml::Integer(8099)),
    ];
    for (key, default) in defaults {
        assert_ne!(
            config.get(*key),
            Some(default),
            "{key} uses its default value"
        );
    }
    for (key, value) in &config {
        let is_default_false = CONFIG_KEYS
            .iter()
            .any(|(k, kind)| k == key && *kind == Kind::Bool)
            && *value == Yaml::Boolean(false)
            && !["init", "panel_admin", "apparmor"].contains(&key.as_str());
        assert!(!is_default_false, "{key}: false is its default value");
    }

    // options and schema: every option has a schema entry; optional (`?`) entries have no
    // default; every element is a documented type and every default fits its type.
    let options = hash(&config["options"]);
    let schema = hash(&config["schema"]);
    for (key, default) in &options {
        let element = schema
            .get(key)
            .unwrap_or_else(|| panic!("option {key} has no schema entry"));
        match (element, default) {
            (Yaml::Array(types), Yaml::Array(values)) => {
                let element = types[0].as_str().unwrap();
                for value in values {
                    assert!(option_fits(element, value), "option {key}: {value:?}");
                }
            }
            (Yaml::String(element), value) => {
                assert!(
                    !element.ends_with('?'),
                    "option {key} is optional but has a default"
                );
                assert!(
                    option_fits(element, value),
                    "option {key}: {value:?} is not a {element}"
                );
            }
            other => panic!("option {key}: {other:?}"),
        }
    }
    for (key, element) in &schema {
        let elements: Vec<&str> = match element {
            Yaml::String(element) => vec![element.as_str()],
            Yaml::Array(types) => {
                assert_eq!(types.len(), 1, "schema {key}: a list holds one type");
                vec![types[0].as_str().expect("lists of plain types")]
            }
            other => panic!("schema {key}: {other:?}"),
        };
        for element in elements {
            assert!(
                schema_type_is_documented(element),
                "schema {key}: {element}"
            );
            if !options.contains_key(key) && !matches!(schema[key], Yaml::Array(_)) {
                assert!(
                    element.ends_with('?'),
                    "schema {key} is required but has no default"
                );
            }
        }
    }
    // Secrets are `password`, so the UI hides them and Supervisor checks them.
    for key in schema.keys() {
        if ["secret", "password", "api_key"]
            .iter()
            .any(|s| key.contains(s))
        {
            assert!(
                schema[key].as_str().unwrap().starts_with("password"),
                "{key} must be a password"
            );
        }
    }
}

#[test]
fn every_option_of_the_schema_is_understood_by_jarvis() {
    let config = hash(&yaml("addon/jarvis/config.yaml"));
    let schema = hash(&config["schema"]);
    // A value for every option, optional ones included.
    let mut all = options(json!({}));
    for (key, element) in &schema {
        if all.get(key).is_some() {
            continue;
        }
        all[key] = match element.as_str().unwrap().trim_end_matches('?') {
            "password" => json!("a-secret"),
            "url" => json!("http://192.0.2.10:8080/v1"),
            _ => json!(""),
        };
    }
    all["timezone"] = json!("Europe/Berlin");
    all["stt_custom_model"] = json!("");
    all["frigate_username"] = json!("viewer");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("options.json"), all.to_string()).unwrap();
    let output = std::process::Command::new(common::jarvis_bin())
        .args(["addon", "configure", "--options"])
        .arg(dir.path().join("options.json"))
        .arg("--out")
        .arg(dir.path().join("jarvis.toml"))
        .env("JARVIS_ADDON_DATA", dir.path())
        .env("JARVIS_ADDON_CONFIG", dir.path().join("config"))
        // No Supervisor here: the broker is simply missing.
        .env(
            "JARVIS_SUPERVISOR_URL",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("a-secret"), "{stderr}");
    let config = jarvis::config::Config::load(&dir.path().join("jarvis.toml")).unwrap();
    assert_eq!(config.frigate.username.as_deref(), Some("viewer"));
    assert!(config.llm.url.is_some());
    assert_eq!(config.events.timezone, "Europe/Berlin");
}

#[test]
fn translations_name_and_describe_every_option_and_port() {
    let config = hash(&yaml("addon/jarvis/config.yaml"));
    let translations = hash(&yaml("addon/jarvis/translations/en.yaml"));
    for key in translations.keys() {
        assert!(
            ["configuration", "network"].contains(&key.as_str()),
            "{key}"
        );
    }
    let configuration = hash(&translations["configuration"]);
    let schema = hash(&config["schema"]);
    for key in schema.keys() {
        let entry = hash(
            configuration
                .get(key)
                .unwrap_or_else(|| panic!("translations/en.yaml: no entry for option {key}")),
        );
        let name = entry.get("name").and_then(Yaml::as_str).unwrap_or_default();
        let description = entry
            .get("description")
            .and_then(Yaml::as_str)
            .unwrap_or_default();
        assert!(!name.is_empty() && !description.is_empty(), "{key}");
    }
    for key in configuration.keys() {
        assert!(
            schema.contains_key(key),
            "translation for unknown option {key}"
        );
    }
    let network = hash(&translations["network"]);
    let ports = hash(&config["ports"]);
    assert_eq!(
        network.keys().collect::<Vec<_>>(),
        ports.keys().collect::<Vec<_>>()
    );
}

#[test]
fn repository_yaml_and_the_add_on_folder_follow_the_documented_layout() {
    // repository.yaml: `name` required; `url` and `maintainer` optional strings.
    let repository = hash(&yaml("repository.yaml"));
    assert!(repository["name"].as_str().is_some_and(|n| !n.is_empty()));
    for (key, value) in &repository {
        assert!(
            ["name", "url", "maintainer"].contains(&key.as_str()),
            "{key}"
        );
        assert!(value.as_str().is_some(), "{key}");
    }
    assert!(repository["url"].as_str().unwrap().starts_with("https://"));
    // The add-on folder holds what the store shows.
    for file in [
        "config.yaml",
        "Dockerfile",
        "DOCS.md",
        "README.md",
        "CHANGELOG.md",
        "icon.png",
        "logo.png",
        "translations/en.yaml",
        "run.sh",
    ] {
        assert!(
            repo("addon/jarvis").join(file).is_file(),
            "addon/jarvis/{file}"
        );
    }
    // Supervisor finds add-ons by searching for config.yaml: no other file may have the name.
    let mut found = Vec::new();
    find_named(&repo(""), "config.yaml", &mut found);
    assert_eq!(found, [repo("addon/jarvis/config.yaml")]);
    // PNG images as docs/apps/presentation.md recommends: the icon square (128x128), the
    // logo around 250x100.
    for (file, size) in [("icon.png", (128, 128)), ("logo.png", (250, 100))] {
        let bytes = std::fs::read(repo("addon/jarvis").join(file)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{file}");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), size, "{file}");
    }
}

fn find_named(dir: &Path, name: &str, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if !file.starts_with('.') && file != "target" {
                find_named(&path, name, found);
            }
        } else if file == name {
            found.push(path);
        }
    }
}

#[test]
fn the_dockerfile_builds_from_build_from_and_checks_health() {
    let dockerfile = std::fs::read_to_string(repo("addon/jarvis/Dockerfile")).unwrap();
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert!(lines.iter().any(|l| l.starts_with("ARG BUILD_FROM")));
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert_eq!(*froms.last().unwrap(), &"FROM ${BUILD_FROM}");
    // Nothing fetched but Debian packages, crates and the ONNX Runtime wheel.
    for line in &lines {
        for fetcher in [
            "curl -",
            "curl http",
            "wget ",
            "git clone",
            "ADD http",
            "rustup",
        ] {
            assert!(
                !line.contains(fetcher) || line.starts_with("CMD curl"),
                "downloads outside a package registry: {line}"
            );
        }
    }
    assert!(dockerfile.contains("\"onnxruntime==${ORT_VERSION}\""));
    assert!(dockerfile.contains("ARG ORT_VERSION=1.24.2"));
    assert!(dockerfile.contains("espeak-ng-data"));
    assert!(dockerfile.contains("PIPER_ESPEAKNG_DATA_DIRECTORY"));
    // The health check is the one Supervisor's watchdog acts on: /health on the HTTP port.
    let health = dockerfile
        .split("HEALTHCHECK")
        .nth(1)
        .expect("a HEALTHCHECK");
    assert!(health.contains("http://127.0.0.1:10701/health"), "{health}");
    assert!(health.contains("--start-period="));
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/bin/jarvis-addon\"]"));
    assert!(dockerfile.contains("COPY addon/jarvis/run.sh /usr/bin/jarvis-addon"));
    assert!(dockerfile.contains("io.hass.type=\"app\""));
    // The image's paths are the add-on's defaults.
    let options = std::fs::read_to_string(repo("src/addon/mod.rs")).unwrap();
    assert!(options.contains("/usr/lib/jarvis/libonnxruntime.so.1.24.2"));
    assert!(dockerfile.contains("/usr/lib/jarvis/libonnxruntime.so.${ORT_VERSION}"));
}

/// The image built by `addon/build-local.sh`, started with podman against the fake Supervisor:
/// the first start downloads the models from a local server, Jarvis answers inside the
/// container, and the Wyoming server is announced. Needs `JARVIS_ADDON_IMAGE` (and podman).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the image from addon/build-local.sh and podman"]
async fn the_image_starts_against_the_fake_supervisor() {
    let image = std::env::var("JARVIS_ADDON_IMAGE").expect("JARVIS_ADDON_IMAGE");
    let podman_opts = std::env::var("JARVIS_ADDON_PODMAN_OPTS").unwrap_or_default();
    let shared = common::models_dir();
    let server = FileServer::start().await;
    for (url, file) in [
        (
            "/m/whisper-vad/ggml-silero-v6.2.0.bin",
            "whisper/ggml-silero-v6.2.0.bin",
        ),
        (
            "/m/piper/en/en_US/joe/medium/en_US-joe-medium.onnx",
            "piper/en_US-joe-medium.onnx",
        ),
        (
            "/m/piper/en/en_US/joe/medium/en_US-joe-medium.onnx.json",
            "piper/en_US-joe-medium.onnx.json",
        ),
        (
            "/m/wakeword/hey_jarvis_v0.1.onnx",
            "wakeword/hey_jarvis_v0.1.onnx",
        ),
        (
            "/m/wakeword/melspectrogram.onnx",
            "wakeword/melspectrogram.onnx",
        ),
        ("/m/wakeword/silero_vad.onnx", "wakeword/silero_vad.onnx"),
    ] {
        server.put(url, std::fs::read(shared.join(file)).unwrap());
    }
    let supervisor = FakeSupervisor::start().await;
    let addon = Addon::new(&options(json!({"models_mirror_url": server.url("/m")})));
    // Copies, not links: the container sees only /data.
    for file in ["whisper/ggml-tiny.en.bin", "wakeword/embedding_model.onnx"] {
        let dest = addon.data().join("models").join(file);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(shared.join(file), dest).unwrap();
    }
    let name = format!("jarvis-addon-test-{}", std::process::id());
    let mut command = Command::new("podman");
    command
        .arg("run")
        .arg("--rm")
        .arg("--init")
        .args([
            "--name",
            &name,
            "--network",
            "host",
            "--hostname",
            "local-jarvis",
        ])
        .args(podman_opts.split_whitespace())
        .arg("-v")
        .arg(format!("{}:/data", addon.data().display()))
        .arg("-v")
        .arg(format!(
            "{}:/config",
            addon.dir.path().join("config").display()
        ))
        .args(["-e", &format!("SUPERVISOR_TOKEN={TOKEN}")])
        .args(["-e", &format!("JARVIS_SUPERVISOR_URL={}", supervisor.url())])
        .args([
            "-e",
            &format!("JARVIS_WYOMING_ADDR=127.0.0.1:{}", addon.wyoming),
        ])
        .args(["-e", &format!("JARVIS_HTTP_ADDR=127.0.0.1:{}", addon.http)])
        .arg(&image)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let running = Running::spawn(command);
    let limit = Duration::from_secs(300);
    running
        .wait_for("to download: whisper-vad-silero-v6.2.0", limit)
        .await;
    let announced = supervisor.wait_for("POST", "/discovery", limit).await;
    assert_eq!(
        announced.body["config"]["uri"],
        format!("tcp://local-jarvis:{}", addon.wyoming)
    );
    assert_eq!(announced.server_answered, Some(true));
    assert_eq!(health(addon.http).await["status"], "ok");
    // Text-to-speech inside the image (espeak-ng's data and ONNX Runtime are where the
    // image put them): a synthesize answered with audio.
    let mut client = wyoming::Client::connect(("127.0.0.1", addon.wyoming))
        .await
        .unwrap();
    client
        .send(wyoming::tts::Synthesize {
            text: "Hello from the add-on.".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut audio = 0usize;
    tokio::time::timeout(limit, async {
        while let Some(event) = client.recv().await.unwrap() {
            match event {
                wyoming::Event::AudioChunk(chunk) => audio += chunk.audio.len(),
                wyoming::Event::AudioStop(_) => break,
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert!(audio > 10_000, "{audio} bytes of audio");
    let status = std::process::Command::new("podman")
        .args(["stop", "-t", "20", &name])
        .status()
        .unwrap();
    assert!(status.success());
    let (status, lines) = running.exit(limit).await;
    println!("{}", lines.join("\n"));
    assert!(status.success(), "{status:?}");
}
