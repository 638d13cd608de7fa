//! `kill -9` in the middle of a write, for the files Jarvis appends to or replaces while it
//! runs: the audit log and the text-to-speech cache (the event store's is in tests/events.rs,
//! model downloads' in tests/models.rs). The writer is this test binary started again with a
//! `*_CHILD_*` variable set (it then runs only that child test), killed with SIGKILL until the
//! kill lands in the middle of a write (bounded); the next open must find nothing corrupt and
//! say what it repaired.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jarvis::brain::Channel;
use jarvis::brain::audit::{AuditLog, Entry, torn_path};
use jarvis::config::AuditConfig;
use jarvis::tts::cache::{AudioCache, CacheKey, encode};

/// Set in the audit writer: the log it writes.
const AUDIT_CHILD_ENV: &str = "JARVIS_TEST_CRASH_AUDIT_LOG";
/// Set in the cache writer: the cache directory it fills.
const CACHE_CHILD_ENV: &str = "JARVIS_TEST_CRASH_TTS_CACHE";
/// How many writers to kill, at most, before one dies in the middle of a write.
const ATTEMPTS: u64 = 60;

fn audit_config(path: &Path) -> AuditConfig {
    AuditConfig {
        path: path.to_owned(),
        max_mb: 16,
        keep: 1,
    }
}

/// The audit writer (does nothing unless started by the test): appends an entry of a MB
/// again and again through the log's own write (serialized once: unoptimised, serialising
/// takes far longer than writing, and the kill would seldom land in a write), rotating at
/// 16 MB, until it is killed.
#[test]
fn audit_child() {
    let Some(path) = std::env::var_os(AUDIT_CHILD_ENV) else {
        return;
    };
    let log = AuditLog::open(&audit_config(Path::new(&path)));
    let mut entry = Entry::new("command", Channel::Http, "127.0.0.1");
    entry.text = Some("shut down the media server ".repeat(40_000));
    let mut line = serde_json::to_vec(&entry).unwrap();
    line.push(b'\n');
    println!("writing");
    std::io::stdout().flush().unwrap();
    loop {
        log.write_line(&line).unwrap();
    }
}

/// The cache writer: stores a sentence of 3 MB under one key after another (encoded once,
/// for the same reason), in a cache of 64 MB, until it is killed.
#[test]
fn cache_child() {
    let Some(dir) = std::env::var_os(CACHE_CHILD_ENV) else {
        return;
    };
    let cache = AudioCache::open(Path::new(&dir), CACHE_BYTES).unwrap();
    let bytes = encode(22_050, &samples());
    println!("writing");
    std::io::stdout().flush().unwrap();
    for i in 0u32.. {
        cache.put_encoded(&key(&format!("sentence {i}")), &bytes);
    }
}

/// The cache's size in the test.
const CACHE_BYTES: u64 = 64 << 20;

fn key(text: &str) -> CacheKey<'_> {
    CacheKey {
        voice: "en_US-joe-medium",
        speaker: None,
        scales: [1.0, 0.667, 0.8],
        text,
    }
}

fn samples() -> Vec<i16> {
    (0..1_500_000u32)
        .map(|n| (n.wrapping_mul(31) % 20_000) as i16)
        .collect()
}

/// Starts the child test `name` with `env` set, and waits until it says it is writing.
fn start_child(name: &str, env: (&str, &Path)) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(env.0, env.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|line| line.is_ok_and(|l| l.ends_with("writing"))),
        "the writer did not start"
    );
    child
}

/// Kills the writer after a while that differs from one attempt to the next.
fn kill_after_a_while(mut child: Child, attempt: u64) {
    std::thread::sleep(Duration::from_millis(20 + (attempt * 37) % 150));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// Logs captured from the `tracing` output of the current thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

#[test]
fn an_audit_log_killed_mid_write_is_whole_again_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut landed = false;
    for attempt in 0..ATTEMPTS {
        let _ = std::fs::remove_file(&path);
        kill_after_a_while(
            start_child("audit_child", (AUDIT_CHILD_ENV, &path)),
            attempt,
        );
        let bytes = std::fs::read(&path).unwrap_or_default();
        if bytes.last().is_some_and(|b| *b != b'\n') {
            landed = true;
            break;
        }
    }
    assert!(
        landed,
        "no kill of {ATTEMPTS} landed in the middle of a write"
    );
    let before = std::fs::read(&path).unwrap();
    let cut = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |at| at + 1);

    let (logs, _guard) = capture_logs();
    let log = AuditLog::open(&audit_config(&path));
    assert!(log.is_writable());
    let mut entry = Entry::new("command", Channel::Http, "127.0.0.1");
    entry.text = Some("after the crash".into());
    log.record(&entry).unwrap();

    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        after.as_bytes()[..cut],
        before[..cut],
        "whole lines are kept"
    );
    let lines: Vec<&str> = after.lines().collect();
    for line in &lines {
        let entry: serde_json::Value = serde_json::from_str(line).expect("every line is whole");
        assert_eq!(entry["kind"], "command");
    }
    assert!(lines.last().unwrap().contains("after the crash"));
    let text = logs.text();
    let aside = std::fs::read(torn_path(&path)).unwrap_or_default();
    if aside.is_empty() {
        // The kill fell just before the newline: the entry was whole and is kept.
        assert!(text.contains("completed it"), "{text}");
        assert_eq!(lines.len(), cut_lines(&before) + 2);
    } else {
        assert!(text.contains("the last line was cut short"), "{text}");
        assert_eq!(
            &aside[..aside.len() - 1],
            &before[cut..],
            "the torn bytes are kept"
        );
        assert_eq!(lines.len(), cut_lines(&before) + 1);
    }
}

fn cut_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b == b'\n').count()
}

#[test]
fn a_tts_cache_killed_mid_write_holds_only_whole_entries_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("tts-cache");
    let partial = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
                    .count()
            })
            .unwrap_or(0)
    };
    let mut landed = false;
    for attempt in 0..ATTEMPTS {
        let _ = std::fs::remove_dir_all(&cache_dir);
        kill_after_a_while(
            start_child("cache_child", (CACHE_CHILD_ENV, &cache_dir)),
            attempt,
        );
        let entries = std::fs::read_dir(&cache_dir).map_or(0, Iterator::count);
        // In the middle of a write, with whole entries written before it.
        if partial(&cache_dir) > 0 && entries > 1 {
            landed = true;
            break;
        }
    }
    assert!(
        landed,
        "no kill of {ATTEMPTS} landed in the middle of a write"
    );

    let (logs, _guard) = capture_logs();
    let cache = AudioCache::open(&cache_dir, CACHE_BYTES).unwrap();
    assert_eq!(partial(&cache_dir), 0, "the partial entry is gone");
    let text = logs.text();
    assert!(
        text.contains("tts cache: removed 1 partial entries"),
        "{text}"
    );
    // The child wrote sentence 0, 1, 2, ... and evicted the oldest: the newest are there.
    let files = std::fs::read_dir(&cache_dir).unwrap().count();
    assert!(files > 0);
    let audio = samples();
    let mut whole = 0;
    for i in 0..100_000u32 {
        let sentence = format!("sentence {i}");
        if let Some(found) = cache.get(&key(&sentence)) {
            assert_eq!(found, (22_050, audio.clone()), "{sentence}");
            whole += 1;
        }
        if whole == files {
            break;
        }
    }
    assert_eq!(whole, files, "every entry left is a whole sentence");
    assert!(!text.contains("corrupt"), "{text}");
}
