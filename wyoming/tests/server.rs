//! `wyoming::serve`: connection limit, graceful shutdown with in-flight replies, bounded grace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use wyoming::asr::Transcript;
use wyoming::{Client, Connection, Event, ServerConfig, serve};

const LIMIT: Duration = Duration::from_secs(20);

/// A handler that, for each event, tells the test it started, waits `delay`, then answers.
fn slow_echo(
    delay: Duration,
    started: mpsc::UnboundedSender<()>,
) -> impl Fn(Connection) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
+ Send
+ Sync
+ 'static {
    move |mut conn: Connection| {
        let started = started.clone();
        Box::pin(async move {
            loop {
                let event = tokio::select! {
                    biased;
                    () = conn.shutdown.cancelled() => break,
                    event = conn.reader.read_event() => event,
                };
                let Ok(Some(_)) = event else { break };
                let _ = started.send(());
                // The reply in flight is not raced against shutdown: it always finishes.
                tokio::time::sleep(delay).await;
                let reply = Transcript {
                    text: "done".into(),
                    ..Default::default()
                };
                if conn.writer.write_event(reply).await.is_err() {
                    break;
                }
            }
        })
    }
}

async fn start(
    config: ServerConfig,
    delay: Duration,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<wyoming::ServeReport>,
    mpsc::UnboundedReceiver<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let (tx, rx) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(listener, config, token.clone(), slow_echo(delay, tx)));
    (addr, token, server, rx)
}

#[tokio::test]
async fn shutdown_lets_a_reply_in_flight_finish() {
    let config = ServerConfig {
        shutdown_grace: Duration::from_secs(10),
        ..Default::default()
    };
    let (addr, token, server, mut started) = start(config, Duration::from_millis(300)).await;
    let mut client = Client::connect(addr).await.unwrap();
    client.send(wyoming::info::Describe {}).await.unwrap();
    timeout(LIMIT, started.recv()).await.unwrap().unwrap();
    token.cancel();
    // The reply that was being prepared when shutdown began still arrives, whole.
    let reply = timeout(LIMIT, client.recv()).await.unwrap().unwrap();
    assert!(matches!(reply, Some(Event::Transcript(t)) if t.text == "done"));
    assert!(
        timeout(LIMIT, client.recv())
            .await
            .unwrap()
            .unwrap()
            .is_none()
    );
    let report = timeout(LIMIT, server).await.unwrap().unwrap();
    assert_eq!((report.accepted, report.unfinished), (1, 0));
    // New connections are refused once shutdown has begun.
    assert!(Client::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_gives_up_after_the_grace_period() {
    let config = ServerConfig {
        shutdown_grace: Duration::from_millis(200),
        ..Default::default()
    };
    let (addr, token, server, mut started) = start(config, Duration::from_secs(3600)).await;
    let mut client = Client::connect(addr).await.unwrap();
    client.send(wyoming::info::Describe {}).await.unwrap();
    timeout(LIMIT, started.recv()).await.unwrap().unwrap();
    let began = std::time::Instant::now();
    token.cancel();
    let report = timeout(LIMIT, server).await.unwrap().unwrap();
    assert_eq!(report.unfinished, 1);
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn connections_over_the_limit_get_busy_and_the_rest_are_served() {
    let config = ServerConfig {
        max_connections: 2,
        ..Default::default()
    };
    let (addr, token, server, mut started) = start(config, Duration::from_millis(1)).await;
    let mut first = Client::connect(addr).await.unwrap();
    let mut second = Client::connect(addr).await.unwrap();
    for client in [&mut first, &mut second] {
        client.send(wyoming::info::Describe {}).await.unwrap();
        timeout(LIMIT, started.recv()).await.unwrap().unwrap();
        assert!(matches!(
            timeout(LIMIT, client.recv()).await.unwrap().unwrap(),
            Some(Event::Transcript(_))
        ));
    }
    let mut third = Client::connect(addr).await.unwrap();
    match timeout(LIMIT, third.recv()).await.unwrap().unwrap() {
        Some(Event::Error(err)) => assert_eq!(err.code.as_deref(), Some("busy")),
        other => panic!("expected busy, got {other:?}"),
    }
    assert!(
        timeout(LIMIT, third.recv())
            .await
            .unwrap()
            .unwrap()
            .is_none()
    );
    // Once a permit is free again, a new connection is served.
    drop(first);
    let served = timeout(LIMIT, async {
        loop {
            let mut client = Client::connect(addr).await.unwrap();
            client.send(wyoming::info::Describe {}).await.unwrap();
            if let Ok(Some(Event::Transcript(_))) = client.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(served.is_ok());
    token.cancel();
    let report = timeout(LIMIT, server).await.unwrap().unwrap();
    assert!(report.rejected >= 1);
}
