//! Conformance with the reference implementation: the `wyoming` 1.10.2 Python package as a real
//! peer in both directions. The test set-up (`scripts/test.sh`) installs it into `.venv`; set
//! `WYOMING_PYTHON` to use another interpreter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use wyoming::{Client, Connection, ServerConfig, serve};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peer/python_peer.py");
const LIMIT: Duration = Duration::from_secs(60);

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("WYOMING_PYTHON") {
        return python.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "the reference Python peer is missing: run scripts/test.sh (it creates .venv with \
         wyoming==1.10.2) or set WYOMING_PYTHON"
    );
    venv
}

#[tokio::test]
async fn rust_client_round_trips_every_event_through_the_python_server() {
    let mut child = Command::new(python())
        .arg(PEER)
        .arg("echo-server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start python");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    timeout(LIMIT, stdout.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    let port: u16 = line.trim().parse().expect("python prints its port");

    let client = Client::connect(("127.0.0.1", port)).await.unwrap();
    let events = common::all_events();
    // Writes and echoes overlap, as on a real link.
    let (mut reader, mut writer) = client.into_split();
    let sender = async {
        for event in &events {
            writer.write_event(event.clone()).await.unwrap();
        }
    };
    let receiver = async {
        let mut received = Vec::new();
        for _ in 0..events.len() {
            received.push(
                reader
                    .read_event()
                    .await
                    .unwrap()
                    .expect("python closed early"),
            );
        }
        received
    };
    let ((), received) = timeout(LIMIT, async { tokio::join!(sender, receiver) })
        .await
        .unwrap();
    for (sent, got) in events.iter().zip(&received) {
        assert_eq!(got, sent, "python changed a `{}` event", sent.kind());
    }
    drop(child.stdin.take());
    let _ = timeout(LIMIT, child.wait()).await;
}

#[tokio::test]
async fn python_client_round_trips_every_event_through_the_rust_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        ServerConfig::default(),
        shutdown.clone(),
        |mut conn: Connection| async move {
            // Typed echo: Frame -> Event -> Frame, so a field the Rust types drop shows up.
            while let Ok(Some(event)) = conn.reader.read_event().await {
                if conn.writer.write_event(event).await.is_err() {
                    break;
                }
            }
        },
    ));

    let output = timeout(
        LIMIT,
        Command::new(python())
            .arg(PEER)
            .arg("client")
            .arg(port.to_string())
            .output(),
    )
    .await
    .unwrap()
    .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.starts_with("ok "),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    shutdown.cancel();
    let report = timeout(LIMIT, server).await.unwrap().unwrap();
    assert_eq!(report.accepted, 1);
    assert_eq!(report.unfinished, 0);
}
