//! The event store under abuse: a writer killed with SIGKILL in the middle of its work, and a
//! database file Jarvis may not write.
//!
//! Both need a second process: the writer is this test binary started again with
//! [`CHILD_ENV`] (it then runs only [`crash_child`]); the read-only file is only read-only for
//! a user other than root, so as root the test runs itself again as `nobody`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jarvis::config::Secret;
use jarvis::events::model::KIND_OBJECT;
use jarvis::events::{Event, EventStore, EventsConfig, Query, Source};
use rusqlite::Connection;
use serde_json::{Value, json};

/// Set in the child writer: the database it writes.
const CHILD_ENV: &str = "JARVIS_TEST_CRASH_CHILD_DB";
/// Set in the child writer: the first sequence number it writes.
const CHILD_START_ENV: &str = "JARVIS_TEST_CRASH_CHILD_START";
/// Set when the read-only test runs as `nobody`: the read-only database.
const READ_ONLY_ENV: &str = "JARVIS_TEST_READ_ONLY_DB";
/// The user the read-only test runs as when started as root.
const NOBODY: u32 = 65_534;

fn config(path: &Path) -> EventsConfig {
    EventsConfig {
        path: path.to_owned(),
        ..EventsConfig::default()
    }
}

/// Event `seq` of the writer: a person with a long description, so commits take a while and
/// the kill often lands inside one.
fn numbered(seq: u64) -> Event {
    Event {
        camera: Some(format!("camera_{}", seq % 8)),
        label: Some("person".into()),
        zones: vec!["porch".into()],
        description: Some(format!("event {seq}: {}", "someone walks by ".repeat(30))),
        ..Event::new(
            format!("frigate:{seq:012}"),
            Source::Frigate,
            KIND_OBJECT,
            jiff::Timestamp::now().as_millisecond(),
        )
    }
}

/// The child writer (does nothing unless started by the crash test): writes events in bursts
/// of 20 and says on stdout what it has queued (`queued <seq>`) and what `flush` acknowledged
/// (`acked <seq>`), until it is killed.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut seq: u64 = std::env::var(CHILD_START_ENV).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = EventStore::open(&config(Path::new(&path)));
        assert_eq!(store.problem(), None);
        let mut out = std::io::stdout();
        for burst in 1u64.. {
            for _ in 0..20 {
                store.record(numbered(seq)).await.unwrap();
                seq += 1;
            }
            writeln!(out, "queued {}", seq - 1).unwrap();
            if burst % 5 == 0 {
                store.flush().await.unwrap();
                writeln!(out, "acked {}", seq - 1).unwrap();
            }
            out.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
}

/// What the child said, with when the parent read it.
enum Said {
    Queued(u64, Instant),
    Acked(u64),
}

/// The sequence numbers stored, after `PRAGMA integrity_check` said ok.
fn stored(path: &Path) -> BTreeSet<u64> {
    let conn = Connection::open(path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mut stmt = conn.prepare("SELECT key FROM events").unwrap();
    let keys = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|key| key.unwrap()["frigate:".len()..].parse::<u64>().unwrap());
    keys.collect()
}

#[test]
fn a_killed_writer_keeps_every_acknowledged_event_and_loses_at_most_the_last_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let mut next = 0u64;
    // Three kills, each at a different moment, each into a store recovering from the last.
    for round in 0..3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, &path)
            .env(CHILD_START_ENV, next.to_string())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("child.log")).unwrap())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let said = match line.split_once(' ') {
                    Some(("queued", n)) => Said::Queued(n.parse().unwrap(), Instant::now()),
                    Some(("acked", n)) => Said::Acked(n.parse().unwrap()),
                    _ => continue,
                };
                if tx.send(said).is_err() {
                    break;
                }
            }
        });
        // Let it write for a while (a different while each round), then kill it.
        let run_for = Duration::from_millis(1200 + 350 * round);
        let deadline = Instant::now() + common::LIMIT;
        let mut said = Vec::new();
        let mut started = None;
        let mut acks = 0;
        while started.is_none_or(|t: Instant| t.elapsed() < run_for || acks < 3) {
            assert!(
                Instant::now() < deadline,
                "round {round}: the writer does not write: {}",
                std::fs::read_to_string(dir.path().join("child.log")).unwrap_or_default()
            );
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(10)) {
                started.get_or_insert_with(Instant::now);
                acks += usize::from(matches!(line, Said::Acked(_)));
                said.push(line);
            }
        }
        child.kill().unwrap();
        let killed = Instant::now();
        child.wait().unwrap();
        reader.join().unwrap();
        said.extend(rx.try_iter());

        let acked = said
            .iter()
            .filter_map(|s| match s {
                Said::Acked(n) => Some(*n),
                Said::Queued(..) => None,
            })
            .max()
            .unwrap();
        let second_before = said
            .iter()
            .filter_map(|s| match s {
                Said::Queued(n, at) if killed.duration_since(*at) >= Duration::from_secs(1) => {
                    Some(*n)
                }
                _ => None,
            })
            .max()
            .unwrap();
        let stored = stored(&path);
        let last = *stored.last().unwrap();
        assert!(
            last >= acked,
            "round {round}: acknowledged up to {acked}, stored up to {last}"
        );
        assert!(
            last >= second_before,
            "round {round}: queued up to {second_before} a second before the kill, stored up \
             to {last}"
        );
        assert_eq!(
            stored.len() as u64,
            last + 1,
            "round {round}: commits are whole and in order, no gaps"
        );
        next = last + 1;
    }

    // And Jarvis opens it as if nothing happened.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = EventStore::open(&config(&path));
        assert_eq!(store.problem(), None);
        assert_eq!(store.count(Query::objects()).await.unwrap(), next);
        store.record(numbered(next)).await.unwrap();
        store.flush().await.unwrap();
    });
}

/// A database with one event, made read-only for anyone but root. With `folder_too`, its
/// folder is read-only as well (SQLite cannot make its `-wal` and `-shm` files there).
fn read_only_database(dir: &Path, folder_too: bool) -> PathBuf {
    let folder = dir.join(if folder_too { "ro-folder" } else { "rw-folder" });
    std::fs::create_dir(&folder).unwrap();
    let path = folder.join("events.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = EventStore::open(&config(&path));
        store.record(numbered(1)).await.unwrap();
        store.flush().await.unwrap();
    });
    drop(runtime);
    // Dropping the last handle closed the store: its writer checkpointed the log and removed
    // it before the drop returned.
    let wal = folder.join("events.db-wal");
    assert!(
        !wal.exists(),
        "a clean close leaves no write-ahead log, found {} bytes",
        std::fs::metadata(&wal).map_or(0, |m| m.len())
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let mode = if folder_too { 0o555 } else { 0o777 };
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_read_only_database_is_named_with_the_fix_and_jarvis_keeps_serving() {
    if let Some(path) = std::env::var_os(READ_ONLY_ENV) {
        // Started by the branch below, as nobody.
        read_only_checks(Path::new(&path));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for folder_too in [false, true] {
        let path = read_only_database(dir.path(), folder_too);
        let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        if !root {
            read_only_checks(&path);
            continue;
        }
        // Root may write anything: run the checks again as nobody.
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_read_only_database_is_named_with_the_fix_and_jarvis_keeps_serving",
                "--nocapture",
            ])
            .env(READ_ONLY_ENV, &path)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "as nobody (folder read-only too: {folder_too}):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("1 passed"), "{stdout}");
    }
    // Writable again, so the temporary folder can go.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let folder = entry.unwrap().path();
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Jarvis on a read-only store: the store says which file and what to do, `/health` shows it,
/// `/v1/event` answers 503 with it, and commands over HTTP and Wyoming still work.
fn read_only_checks(path: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let shown = path.display().to_string();
        let store = EventStore::open(&config(path));
        let problem = store.problem().expect("a read-only store is a problem");
        assert!(
            problem.contains(&shown) && problem.contains("writable") && problem.contains("chown"),
            "{problem}"
        );
        assert!(!store.is_available());

        let mut config = common::test_config();
        config.events.path = path.to_owned();
        config.http.api_key = Secret::new("key");
        let app = common::spawn_app(config).await;
        let http = format!("http://{}", app.http_addr.unwrap());
        let health: Value = reqwest::get(format!("{http}/health"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["events"]["available"], false, "{health}");
        assert_eq!(health["events"]["path"], shown);
        assert_eq!(health["events"]["problem"], problem.as_str());

        let client = reqwest::Client::new();
        let response = client
            .post(format!("{http}/v1/event"))
            .header("x-api-key", "key")
            .json(&json!({"kind": "door"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains(&shown), "{body}");

        let reply: Value = client
            .post(format!("{http}/v1/command"))
            .header("x-api-key", "key")
            .json(&json!({"text": "ping"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // No Proxmox in this configuration: the reply says so after the greeting.
        assert!(
            reply["reply"].as_str().unwrap().starts_with("I'm here."),
            "{reply}"
        );

        let mut wyoming = common::client(app.wyoming_addr).await;
        wyoming
            .send(wyoming::asr::Transcript {
                text: "ping".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        match common::recv(&mut wyoming).await {
            Some(wyoming::Event::Handled(handled)) => {
                let text = handled.text.unwrap_or_default();
                assert!(text.starts_with("I'm here."), "{text}");
            }
            other => panic!("expected handled, got {other:?}"),
        }
        app.shutdown.cancel();
        tokio::time::timeout(common::LIMIT, app.finished)
            .await
            .expect("stops in time")
            .unwrap()
            .unwrap();
    });
}
