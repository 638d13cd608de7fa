//! `jarvis models list` and `jarvis models pull`, run as the real binary against an in-process
//! HTTP server: verified installs, checksum mismatches, resuming, servers that ignore ranges,
//! error statuses, broken and stalled connections, and what `list` shows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::file_server::{Behaviour, FileServer, Served};
use common::{LIMIT, jarvis_bin};
use jarvis::models::digest::Sha256Digest;
use tokio::process::Command;
use tokio::time::timeout;

/// The catalog's sha256 of upstream `ggml-tiny.en.bin`.
const TINY_EN_SHA256: &str = "921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f";

/// Pseudo-random bytes, different for each seed, big enough to arrive in several chunks.
fn model_bytes(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

const LEN: usize = 300_000;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_ok(&self) {
        assert_eq!(
            self.code,
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }

    fn assert_failed(&self) {
        assert_eq!(
            self.code,
            Some(1),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `jarvis ARGS` with a clean environment plus `envs`, failing the test on a hang.
async fn jarvis(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut command = Command::new(jarvis_bin());
    command
        .args(args)
        .env_remove("JARVIS_CONFIG")
        .env_remove("JARVIS_MODELS_DIR")
        .kill_on_drop(true);
    for (key, value) in envs {
        command.env(key, value);
    }
    let output = timeout(LIMIT, command.output())
        .await
        .expect("jarvis finishes in time")
        .expect("run jarvis");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A models directory and a config pointing `[models]` at the test server.
struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
}

impl Setup {
    /// `extras` are `[[models.extra]]` bodies; `models` extra lines for `[models]`.
    fn new(server: &FileServer, models: &str, extras: &[String]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("models");
        let config = tmp.path().join("jarvis.toml");
        let mut text = format!(
            "[models]\ndir = {:?}\nwhisper_base_url = {:?}\nread_timeout_secs = 1\n{models}\n",
            dir.to_str().unwrap(),
            server.url("/hf/whisper.cpp/")
        );
        for extra in extras {
            text.push_str("\n[[models.extra]]\n");
            text.push_str(extra);
        }
        std::fs::write(&config, text).unwrap();
        Self {
            _tmp: tmp,
            dir,
            config,
        }
    }

    async fn models(&self, args: &[&str]) -> Run {
        let mut all = vec!["models", "--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        jarvis(&all, &[]).await
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }
}

fn extra(name: &str, file: &str, url: &str, sha256: Option<Sha256Digest>) -> String {
    let mut text = format!("name = {name:?}\nkind = \"whisper\"\nfile = {file:?}\nurl = {url:?}\n");
    if let Some(sha) = sha256 {
        text.push_str(&format!("sha256 = \"{sha}\"\n"));
    }
    text
}

/// Every file under `dir` (empty when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(next) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// A server with one file at `/files/test.bin`, and a setup whose extra `test-model` points at
/// it with the right sha256.
async fn one_model() -> (FileServer, Setup, Vec<u8>) {
    let server = FileServer::start().await;
    let bytes = model_bytes(1, LEN);
    server.put("/files/test.bin", bytes.clone());
    let setup = Setup::new(
        &server,
        "",
        &[extra(
            "test-model",
            "whisper/ggml-test.bin",
            &server.url("/files/test.bin"),
            Some(Sha256Digest::of(&bytes)),
        )],
    );
    (server, setup, bytes)
}

const FINAL: &str = "whisper/ggml-test.bin";
const PART: &str = "whisper/ggml-test.bin.part";

#[tokio::test]
async fn pull_installs_a_verified_file() {
    let (server, setup, bytes) = one_model().await;
    let run = setup.models(&["pull", "test-model"]).await;
    run.assert_ok();
    assert_eq!(std::fs::read(setup.path(FINAL)).unwrap(), bytes);
    assert!(!setup.path(PART).exists());
    let digest = Sha256Digest::of(&bytes).to_string();
    assert!(
        run.stdout.contains(&format!("sha256 {digest} verified")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("installed test-model in"),
        "{}",
        run.stdout
    );
    assert_eq!(
        server.log(),
        [Served {
            path: "/files/test.bin".into(),
            range: None,
            status: 200,
            body_bytes: LEN,
        }]
    );
}

#[tokio::test]
async fn a_checksum_mismatch_installs_nothing_and_deletes_the_part() {
    let server = FileServer::start().await;
    let bytes = model_bytes(2, LEN);
    server.put("/files/test.bin", bytes.clone());
    let wanted = Sha256Digest::of(b"some other file");
    let setup = Setup::new(
        &server,
        "",
        &[extra(
            "test-model",
            FINAL,
            &server.url("/files/test.bin"),
            Some(wanted),
        )],
    );
    let run = setup.models(&["pull", "test-model"]).await;
    run.assert_failed();
    let actual = Sha256Digest::of(&bytes);
    assert!(run.stderr.contains("checksum mismatch"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("expected sha256 {wanted}, got {actual}")),
        "{}",
        run.stderr
    );
    assert_eq!(files_under(&setup.dir), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn a_part_file_is_resumed_with_a_range_request_for_the_rest() {
    let (server, setup, bytes) = one_model().await;
    let have = 120_000;
    std::fs::create_dir_all(setup.path("whisper")).unwrap();
    std::fs::write(setup.path(PART), &bytes[..have]).unwrap();

    let run = setup.models(&["pull", "test-model"]).await;
    run.assert_ok();
    assert_eq!(std::fs::read(setup.path(FINAL)).unwrap(), bytes);
    assert!(!setup.path(PART).exists());
    assert!(run.stdout.contains("resumed at"), "{}", run.stdout);
    assert_eq!(
        server.log(),
        [Served {
            path: "/files/test.bin".into(),
            range: Some(format!("bytes={have}-")),
            status: 206,
            body_bytes: LEN - have,
        }],
        "only the missing bytes were sent"
    );
}

#[tokio::test]
async fn the_range_survives_a_redirect_to_the_cdn() {
    let server = FileServer::start().await;
    let bytes = model_bytes(5, LEN);
    server.put("/cdn/blob", bytes.clone());
    server.redirect("/hf/resolve/test.bin", "/cdn/blob");
    let setup = Setup::new(
        &server,
        "",
        &[extra(
            "test-model",
            FINAL,
            &server.url("/hf/resolve/test.bin"),
            Some(Sha256Digest::of(&bytes)),
        )],
    );
    let have = 1000;
    std::fs::create_dir_all(setup.path("whisper")).unwrap();
    std::fs::write(setup.path(PART), &bytes[..have]).unwrap();

    setup.models(&["pull", "test-model"]).await.assert_ok();
    assert_eq!(std::fs::read(setup.path(FINAL)).unwrap(), bytes);
    let range = Some(format!("bytes={have}-"));
    assert_eq!(
        server.log(),
        [
            Served {
                path: "/hf/resolve/test.bin".into(),
                range: range.clone(),
                status: 302,
                body_bytes: 0,
            },
            Served {
                path: "/cdn/blob".into(),
                range,
                status: 206,
                body_bytes: LEN - have,
            },
        ]
    );
}

#[tokio::test]
async fn a_server_that_ignores_ranges_gets_a_fresh_start() {
    let (server, setup, bytes) = one_model().await;
    server.set(Behaviour::IgnoreRange);
    // Bytes that are not the file's: appending the full body to them could never verify.
    std::fs::create_dir_all(setup.path("whisper")).unwrap();
    std::fs::write(setup.path(PART), vec![0xAA; 50_000]).unwrap();

    let run = setup.models(&["pull", "test-model"]).await;
    run.assert_ok();
    assert_eq!(std::fs::read(setup.path(FINAL)).unwrap(), bytes);
    let log = server.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].range.as_deref(), Some("bytes=50000-"));
    assert_eq!((log[0].status, log[0].body_bytes), (200, LEN));
}

#[tokio::test]
async fn a_part_longer_than_the_file_starts_over_after_416() {
    let (server, setup, bytes) = one_model().await;
    std::fs::create_dir_all(setup.path("whisper")).unwrap();
    std::fs::write(setup.path(PART), vec![0; LEN + 10]).unwrap();

    let run = setup.models(&["pull", "test-model"]).await;
    run.assert_ok();
    assert_eq!(std::fs::read(setup.path(FINAL)).unwrap(), bytes);
    let statuses: Vec<_> = server
        .log()
        .iter()
        .map(|s| (s.status, s.range.clone()))
        .collect();
    assert_eq!(
        statuses,
        [(416, Some(format!("bytes={}-", LEN + 10))), (200, None)]
    );
}

#[tokio::test]
async fn error_statuses_are_explained_and_leave_no_files() {
    let server = FileServer::start().await;
    let setup = Setup::new(
        &server,
        "",
        &[extra(
            "missing",
            FINAL,
            &server.url("/files/nope.bin"),
            None,
        )],
    );
    let run = setup.models(&["pull", "missing"]).await;
    run.assert_failed();
    let url = server.url("/files/nope.bin");
    assert!(
        run.stderr
            .contains(&format!("{url} answered 404 Not Found")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("the file is not there"),
        "{}",
        run.stderr
    );
    assert_eq!(files_under(&setup.dir), Vec::<PathBuf>::new());

    server.set(Behaviour::Status(500));
    let run = setup.models(&["pull", "missing"]).await;
    run.assert_failed();
    assert!(
        run.stderr.contains("500 Internal Server Error") && run.stderr.contains("try again later"),
        "{}",
        run.stderr
    );
    assert_eq!(files_under(&setup.dir), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn a_cut_connection_keeps_the_part_and_the_next_pull_resumes() {
    let (server, setup, bytes) = one_model().await;
    let cut = 100_000;
    server.set(Behaviour::CutAfter(cut));
    let run = setup.models(&["pull", "test-model"]).await;
    run.assert_failed();
    assert!(run.stderr.contains("broke off"), "{}", run.stderr);
    assert!(
        run.stderr.contains("run the same command again to resume"),
        "{}",
        run.stderr
    );
    assert!(!setup.path(FINAL).exists());
    assert_eq!(std::fs::read(setup.path(PART)).unwrap(), &bytes[..cut]);

    server.set(Behaviour::Normal);
    let run = setup.models(&["pull", "test-model"]).await;
    run.assert_ok();
    assert_eq!(std::fs::read(setup.path(FINAL)).unwrap(), bytes);
    assert!(!setup.path(PART).exists());
    let log = server.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[1].range, Some(format!("bytes={cut}-")));
    assert_eq!((log[1].status, log[1].body_bytes), (206, LEN - cut));
}

#[tokio::test]
async fn a_stalled_download_times_out_and_resumes_later() {
    let (server, setup, bytes) = one_model().await;
    let sent = 70_000;
    server.set(Behaviour::StallAfter(sent));
    // `read_timeout_secs = 1` in the setup's config.
    let run = setup.models(&["pull", "test-model"]).await;
    run.assert_failed();
    assert!(
        run.stderr.contains("no data from") && run.stderr.contains("for 1 s"),
        "{}",
        run.stderr
    );
    assert!(!setup.path(FINAL).exists());
    assert_eq!(std::fs::read(setup.path(PART)).unwrap(), &bytes[..sent]);

    server.set(Behaviour::Normal);
    setup.models(&["pull", "test-model"]).await.assert_ok();
    assert_eq!(std::fs::read(setup.path(FINAL)).unwrap(), bytes);
    assert_eq!(server.log()[1].range, Some(format!("bytes={sent}-")));
}

#[tokio::test]
async fn an_installed_model_is_left_alone_unless_forced() {
    let (server, setup, bytes) = one_model().await;
    setup.models(&["pull", "test-model"]).await.assert_ok();
    assert_eq!(server.log().len(), 1);

    let run = setup.models(&["pull", "test-model"]).await;
    run.assert_ok();
    assert!(
        run.stdout.contains("already installed (sha256 verified)")
            && run.stdout.contains("use --force"),
        "{}",
        run.stdout
    );
    assert_eq!(server.log().len(), 1, "no request for an installed model");

    let run = setup.models(&["pull", "test-model", "--force"]).await;
    run.assert_ok();
    assert_eq!(server.log().len(), 2, "--force downloads again");
    assert_eq!(std::fs::read(setup.path(FINAL)).unwrap(), bytes);
}

#[tokio::test]
async fn a_corrupted_install_is_replaced_only_by_a_verified_download() {
    let (server, setup, bytes) = one_model().await;
    std::fs::create_dir_all(setup.path("whisper")).unwrap();
    std::fs::write(setup.path(FINAL), b"corrupted").unwrap();
    server.set(Behaviour::CutAfter(1000));
    let run = setup.models(&["pull", "test-model"]).await;
    run.assert_failed();
    assert!(
        run.stdout.contains("is not the expected one"),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read(setup.path(FINAL)).unwrap(),
        b"corrupted",
        "the old file stays until a verified one replaces it"
    );
    server.set(Behaviour::Normal);
    setup.models(&["pull", "test-model"]).await.assert_ok();
    assert_eq!(std::fs::read(setup.path(FINAL)).unwrap(), bytes);
}

#[tokio::test]
async fn a_download_without_a_checksum_is_installed_and_its_sha256_printed() {
    let server = FileServer::start().await;
    let bytes = model_bytes(3, 5000);
    server.put("/files/plain.bin", bytes.clone());
    let setup = Setup::new(
        &server,
        "",
        &[extra(
            "plain",
            "whisper/plain.bin",
            &server.url("/files/plain.bin"),
            None,
        )],
    );
    let run = setup.models(&["pull", "plain"]).await;
    run.assert_ok();
    let digest = Sha256Digest::of(&bytes);
    assert!(
        run.stdout
            .contains(&format!("sha256 {digest} NOT verified")),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read(setup.path("whisper/plain.bin")).unwrap(),
        bytes
    );

    // --sha256 checks it on request.
    let wrong = Sha256Digest::of(b"x");
    let run = setup
        .models(&["pull", "plain", "--force", "--sha256", &wrong.to_string()])
        .await;
    run.assert_failed();
    assert!(
        run.stderr.contains(&format!("expected sha256 {wrong}")),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(setup.path("whisper/plain.bin")).unwrap(),
        bytes,
        "the installed file is untouched"
    );
}

#[tokio::test]
async fn built_in_models_come_from_the_configured_base_url_and_are_checked() {
    let server = FileServer::start().await;
    let fake = model_bytes(4, 10_000);
    server.put("/hf/whisper.cpp/ggml-tiny.en.bin", fake.clone());
    let setup = Setup::new(&server, "", &[]);

    // The catalog's checksum is the upstream file's, which this is not.
    let run = setup.models(&["pull", "whisper-tiny.en"]).await;
    run.assert_failed();
    assert!(
        run.stderr.contains(&format!(
            "expected sha256 {TINY_EN_SHA256}, got {}",
            Sha256Digest::of(&fake)
        )),
        "{}",
        run.stderr
    );
    assert!(!setup.path("whisper/ggml-tiny.en.bin").exists());

    // With the user's checksum it installs, in the layout the engines expect.
    let sha = Sha256Digest::of(&fake).to_string();
    let run = setup
        .models(&["pull", "whisper-tiny.en", "--sha256", &sha])
        .await;
    run.assert_ok();
    assert!(
        run.stdout
            .contains(&format!("the catalog lists sha256 {TINY_EN_SHA256}")),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read(setup.path("whisper/ggml-tiny.en.bin")).unwrap(),
        fake
    );
    assert!(
        server
            .log()
            .iter()
            .all(|s| s.path == "/hf/whisper.cpp/ggml-tiny.en.bin")
    );
}

#[tokio::test]
async fn list_shows_installed_partial_and_missing_models() {
    let (server, setup, _) = one_model().await;
    // A second extra with only a partial download, a third with nothing.
    let setup = {
        let text = std::fs::read_to_string(&setup.config).unwrap();
        let more = format!(
            "{text}\n[[models.extra]]\n{}\n[[models.extra]]\n{}",
            extra(
                "half",
                "whisper/half.bin",
                &server.url("/files/half.bin"),
                None
            ),
            extra(
                "never",
                "whisper/never.bin",
                &server.url("/files/never.bin"),
                None
            )
        );
        std::fs::write(&setup.config, more).unwrap();
        setup
    };
    setup.models(&["pull", "test-model"]).await.assert_ok();
    std::fs::write(setup.path("whisper/half.bin.part"), vec![1; 2048]).unwrap();

    // The models directory can also come from the environment (and wins over the file).
    let other = tempfile::tempdir().unwrap();
    let run = jarvis(
        &["models", "list", "--config", setup.config.to_str().unwrap()],
        &[("JARVIS_MODELS_DIR", other.path().to_str().unwrap())],
    )
    .await;
    run.assert_ok();
    assert!(
        run.stdout
            .contains(&format!("models in {}", other.path().display()))
    );
    assert!(
        run.stdout.lines().all(|l| !l.ends_with("  installed")),
        "nothing is installed in the other directory: {}",
        run.stdout
    );

    let run = setup.models(&["list"]).await;
    run.assert_ok();
    let line = |name: &str| {
        run.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no line for {name} in\n{}", run.stdout))
            .to_owned()
    };
    assert!(
        run.stdout
            .starts_with(&format!("models in {}", setup.dir.display()))
    );
    let test_model = line("test-model");
    assert!(
        test_model.contains("(extra)") && test_model.contains("whisper"),
        "{test_model}"
    );
    assert!(test_model.ends_with("  installed"), "{test_model}");
    assert!(
        line("half").contains("partial download (2.0 KiB"),
        "{}",
        line("half")
    );
    assert!(
        line("never").ends_with("not installed"),
        "{}",
        line("never")
    );
    let tiny = line("whisper-tiny.en");
    assert!(
        tiny.contains("74.1 MiB") && tiny.ends_with("not installed"),
        "{tiny}"
    );
    assert!(line("piper-en_US-joe-medium").contains("piper"));
    assert!(line("wake-hey_jarvis_v0.1").contains("wake"));
    assert!(line("whisper-vad-silero-v6.2.0").contains("vad"));
}

#[tokio::test]
async fn unknown_names_and_misused_flags_are_explained() {
    let server = FileServer::start().await;
    let setup = Setup::new(&server, "", &[]);
    let run = setup.models(&["pull", "whisper-tiny.e"]).await;
    run.assert_failed();
    assert!(
        run.stderr
            .contains("unknown model \"whisper-tiny.e\"; did you mean whisper-tiny.en"),
        "{}",
        run.stderr
    );
    let run = setup
        .models(&["pull", "piper-en_US-joe-medium", "--sha256", TINY_EN_SHA256])
        .await;
    run.assert_failed();
    assert!(
        run.stderr.contains("checks a single file"),
        "{}",
        run.stderr
    );
    let run = setup
        .models(&["pull", "whisper-base", "--sha256", "abc"])
        .await;
    assert_eq!(
        run.code,
        Some(2),
        "clap rejects a malformed checksum: {}",
        run.stderr
    );
    assert!(run.stderr.contains("64 hex digits"), "{}", run.stderr);
    assert!(server.log().is_empty());
}

#[tokio::test]
async fn connection_failures_and_blocked_directories_are_explained() {
    // A port with nothing listening: bind one, then free it.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let server = FileServer::start().await;
    server.put("/files/x.bin", vec![7; 10]);
    let setup = Setup::new(
        &server,
        "",
        &[
            extra(
                "unreachable",
                FINAL,
                &format!("http://{closed}/x.bin"),
                None,
            ),
            extra("reachable", FINAL, &server.url("/files/x.bin"), None),
        ],
    );
    let run = setup.models(&["pull", "unreachable"]).await;
    run.assert_failed();
    assert!(
        run.stderr.contains("cannot connect to 127.0.0.1")
            && run.stderr.contains("refused")
            && run.stderr.contains("check the network"),
        "{}",
        run.stderr
    );
    assert_eq!(files_under(&setup.dir), Vec::<PathBuf>::new());

    // A file where the models directory should be.
    let blocker = setup.config.parent().unwrap().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let run = setup
        .models(&[
            "pull",
            "reachable",
            "--models-dir",
            blocker.to_str().unwrap(),
        ])
        .await;
    run.assert_failed();
    assert!(
        run.stderr.contains(&format!(
            "cannot create directory {}",
            blocker.join("whisper").display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("os error").count(),
        1,
        "said once: {}",
        run.stderr
    );
}

#[tokio::test]
async fn a_bad_base_url_is_a_config_error_naming_the_key() {
    let server = FileServer::start().await;
    let setup = Setup::new(&server, "piper_base_url = \"ftp://mirror/piper\"", &[]);
    let run = setup.models(&["list"]).await;
    run.assert_failed();
    assert!(
        run.stderr.contains("models.piper_base_url") && run.stderr.contains("http"),
        "{}",
        run.stderr
    );
}

/// `models pull --defaults` on a machine without models: everything the default configuration
/// loads (whisper tiny.en, its VAD, the Piper voice, the wake word models) comes from the
/// configured base URLs, verified against the catalog's checksums; one file that fails does not
/// stop the others, and a second run downloads only what is still missing.
#[tokio::test]
async fn pull_defaults_fetches_what_the_default_configuration_needs() {
    let shared = common::models_dir();
    let server = FileServer::start().await;
    // The shared copies of these two are not the upstream files (the shared README says how
    // they were made), so the catalog's checksums refuse them: they stand for a bad download.
    let not_upstream = ["whisper/ggml-tiny.en.bin", "wakeword/embedding_model.onnx"];
    let served = [
        (
            "/hf/whisper.cpp/ggml-tiny.en.bin",
            "whisper/ggml-tiny.en.bin",
        ),
        (
            "/hf/vad/ggml-silero-v6.2.0.bin",
            "whisper/ggml-silero-v6.2.0.bin",
        ),
        (
            "/piper/en/en_US/joe/medium/en_US-joe-medium.onnx",
            "piper/en_US-joe-medium.onnx",
        ),
        (
            "/piper/en/en_US/joe/medium/en_US-joe-medium.onnx.json",
            "piper/en_US-joe-medium.onnx.json",
        ),
        ("/oww/hey_jarvis_v0.1.onnx", "wakeword/hey_jarvis_v0.1.onnx"),
        ("/oww/melspectrogram.onnx", "wakeword/melspectrogram.onnx"),
        ("/oww/embedding_model.onnx", "wakeword/embedding_model.onnx"),
        ("/oww/silero_vad.onnx", "wakeword/silero_vad.onnx"),
    ];
    for (url, file) in served {
        server.put(url, std::fs::read(shared.join(file)).unwrap());
    }
    let setup = Setup::new(
        &server,
        &format!(
            "whisper_vad_base_url = {:?}\npiper_base_url = {:?}\nwake_base_url = {:?}\n",
            server.url("/hf/vad/"),
            server.url("/piper/"),
            server.url("/oww/")
        ),
        &[],
    );
    let run = setup.models(&["pull", "--defaults"]).await;
    run.assert_failed();
    assert!(
        run.stdout.contains(
            "to download: whisper-tiny.en, whisper-vad-silero-v6.2.0, piper-en_US-joe-medium, \
             wake-hey_jarvis_v0.1, wake-melspectrogram, wake-embedding_model, wake-silero_vad"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains(
            "whisper-tiny.en, wake-embedding_model could not be installed (see above); run the \
             same command again to resume"
        ),
        "{}",
        run.stderr
    );
    for (_, file) in served {
        if not_upstream.contains(&file) {
            assert!(!setup.path(file).exists(), "{file}");
        } else {
            assert_eq!(
                std::fs::read(setup.path(file)).unwrap(),
                std::fs::read(shared.join(file)).unwrap(),
                "{file}"
            );
        }
    }
    let requests = server.log().len();
    let again = setup.models(&["pull", "--defaults"]).await;
    again.assert_failed();
    assert!(
        again.stdout.contains(
            "installed already: whisper-vad-silero-v6.2.0, piper-en_US-joe-medium, \
             wake-hey_jarvis_v0.1, wake-melspectrogram, wake-silero_vad\nto download: \
             whisper-tiny.en, wake-embedding_model"
        ),
        "{}",
        again.stdout
    );
    let fetched: Vec<String> = server.log()[requests..]
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(
        fetched,
        [
            "/hf/whisper.cpp/ggml-tiny.en.bin",
            "/oww/embedding_model.onnx"
        ],
        "only what is missing"
    );
    // A name and --defaults together are refused by the command line.
    let both = setup
        .models(&["pull", "whisper-tiny.en", "--defaults"])
        .await;
    assert_eq!(both.code, Some(2), "{}", both.stderr);
    assert!(
        both.stderr.contains("cannot be used with '--defaults'"),
        "{}",
        both.stderr
    );
}

/// `kill -9` in the middle of a download: the `.part` holds a clean prefix of the file, and the
/// next pull says it found it, resumes it and verifies the whole file.
#[tokio::test]
async fn a_pull_killed_mid_download_is_resumed_and_verified() {
    let server = FileServer::start().await;
    let len = 3_000_000;
    let bytes = model_bytes(7, len);
    server.put("/files/test.bin", bytes.clone());
    let setup = Setup::new(
        &server,
        "",
        &[extra(
            "test-model",
            "whisper/ggml-test.bin",
            &server.url("/files/test.bin"),
            Some(Sha256Digest::of(&bytes)),
        )],
    );
    // Long enough for the kill to come first.
    let config = std::fs::read_to_string(&setup.config).unwrap();
    let config = config.replace("read_timeout_secs = 1\n", "read_timeout_secs = 60\n");
    std::fs::write(&setup.config, config).unwrap();
    // The server sends 2 MB and then nothing: the pull sits in the middle of its download.
    server.set(Behaviour::StallAfter(2_000_000));
    let mut child = Command::new(jarvis_bin())
        .args(["models", "--config", setup.config.to_str().unwrap()])
        .args(["pull", "test-model"])
        .env_remove("JARVIS_CONFIG")
        .env_remove("JARVIS_MODELS_DIR")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while std::fs::metadata(setup.path(PART)).map_or(0, |m| m.len()) < 1_000_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pull never wrote"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(child.try_wait().unwrap().is_none(), "still downloading");
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    assert!(!setup.path(FINAL).exists());
    let part = std::fs::read(setup.path(PART)).unwrap();
    assert!(!part.is_empty() && part.len() < len);
    assert_eq!(part, &bytes[..part.len()], "the .part is a clean prefix");

    server.set(Behaviour::Normal);
    let run = setup.models(&["pull", "test-model"]).await;
    run.assert_ok();
    assert!(
        run.stdout.contains("found a partial download") && run.stdout.contains("resuming it"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("resumed at"), "{}", run.stdout);
    assert_eq!(std::fs::read(setup.path(FINAL)).unwrap(), bytes);
    assert!(!setup.path(PART).exists());
    let log = server.log();
    assert_eq!(
        log.last().unwrap().range,
        Some(format!("bytes={}-", part.len()))
    );
}

/// A pull killed between the last byte and the rename leaves the whole file in the `.part`:
/// the next pull checks its sha256 and installs it without downloading anything.
#[tokio::test]
async fn a_complete_part_is_verified_and_installed_without_a_download() {
    let (server, setup, bytes) = one_model().await;
    std::fs::create_dir_all(setup.path("whisper")).unwrap();
    std::fs::write(setup.path(PART), &bytes).unwrap();
    let run = setup.models(&["pull", "test-model"]).await;
    run.assert_ok();
    assert!(
        run.stdout.contains("was complete") && run.stdout.contains("verified, installed"),
        "{}",
        run.stdout
    );
    assert_eq!(std::fs::read(setup.path(FINAL)).unwrap(), bytes);
    assert!(!setup.path(PART).exists());
    assert_eq!(server.log(), Vec::new(), "nothing downloaded");
}
