//! `jarvis serve` over Wyoming: routing, `describe`/`ping` at any time, and every kind of bad
//! input, each checked against a healthy connection that must stay unaffected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wyoming::Event;
use wyoming::asr::Transcribe;
use wyoming::audio::{AudioChunk, AudioFormat, AudioStart, AudioStop};
use wyoming::info::Describe;
use wyoming::intent::Recognize;
use wyoming::tts::{Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop};
use wyoming::wake::Detect;

#[tokio::test]
async fn describe_is_answered_with_only_what_is_ready_and_never_a_satellite() {
    let app = spawn_app(test_config()).await;
    let mut client = client(app.wyoming_addr).await;
    // Several times on one connection, as HA's 30 s poll does.
    for _ in 0..3 {
        let info = client.describe().await.unwrap();
        assert!(info.satellite.is_none());
        assert!(info.asr.is_empty() && info.tts.is_empty() && info.wake.is_empty());
        // The conversation agent is always there; the intent program only on request (HA
        // would prefer it over the handle program).
        assert_eq!(info.handle.len(), 1);
        assert_eq!(info.handle[0].models[0].languages, ["en"]);
        assert!(info.intent.is_empty());
    }
    app.shutdown.cancel();
}

#[tokio::test]
async fn the_intent_program_is_advertised_only_when_asked() {
    let mut config = test_config();
    config.wyoming.advertise_intent = true;
    let app = spawn_app(config).await;
    let mut client = client(app.wyoming_addr).await;
    let info = client.describe().await.unwrap();
    assert_eq!(info.handle.len(), 1);
    assert_eq!(info.intent.len(), 1);
    // recognize is answered either way.
    client
        .send(Recognize {
            text: "status of node pve".into(),
            context: None,
        })
        .await
        .unwrap();
    match recv(&mut client).await {
        Some(Event::Intent(intent)) => assert_eq!(intent.name, "Status"),
        other => panic!("{other:?}"),
    }
    app.shutdown.cancel();
}

#[tokio::test]
async fn ping_is_answered_with_the_same_text() {
    let app = spawn_app(test_config()).await;
    let mut client = client(app.wyoming_addr).await;
    assert_still_served(&mut client).await;
    app.shutdown.cancel();
}

#[tokio::test]
async fn every_request_for_a_service_that_is_not_ready_gets_a_clear_error() {
    let app = spawn_app(test_config()).await;
    let fmt = AudioFormat::HA_MIC;
    let audio_flow = || -> Vec<Event> {
        vec![
            AudioStart::new(fmt, None).into(),
            AudioChunk::new(fmt, vec![0u8; 320], None).into(),
            AudioChunk::new(fmt, vec![0u8; 320], None).into(),
            AudioStop::default().into(),
        ]
    };
    let text_flow = || -> Vec<Event> {
        vec![
            SynthesizeChunk {
                text: "Hello. ".into(),
            }
            .into(),
            Synthesize {
                text: "Hello. ".into(),
                ..Default::default()
            }
            .into(),
            SynthesizeStop {}.into(),
        ]
    };
    let requests: Vec<(Event, Vec<Event>, &str)> = vec![
        (Transcribe::default().into(), audio_flow(), "speech-to-text"),
        (
            AudioStart::new(fmt, None).into(),
            audio_flow()[1..].to_vec(),
            "speech-to-text",
        ),
        (Detect::default().into(), audio_flow(), "wake word"),
        (
            Synthesize {
                text: "hi".into(),
                ..Default::default()
            }
            .into(),
            vec![],
            "text-to-speech",
        ),
        (
            SynthesizeStart::default().into(),
            text_flow(),
            "text-to-speech",
        ),
    ];
    for (request, flow, service) in requests {
        let mut client = client(app.wyoming_addr).await;
        client.send(request.clone()).await.unwrap();
        let text = expect_error(&mut client, "service-unavailable").await;
        assert!(text.contains(service), "{}: {text}", request.kind());
        // The rest of the flow is read and dropped without more errors (HA 2024.3 writes all
        // audio before it reads, and a closed socket would break its writes)...
        for event in flow {
            client.send(event).await.unwrap();
        }
        // ...and the connection stays usable: the next answer is the pong.
        assert_still_served(&mut client).await;
        // A new request on the same connection is routed again.
        client.send(request.clone()).await.unwrap();
        expect_error(&mut client, "service-unavailable").await;
    }
    app.shutdown.cancel();
}

#[tokio::test]
async fn audio_before_any_request_is_an_error_and_unknown_events_are_ignored() {
    let app = spawn_app(test_config()).await;
    let mut client = client(app.wyoming_addr).await;
    client
        .send(AudioChunk::new(AudioFormat::HA_MIC, vec![0u8; 320], None))
        .await
        .unwrap();
    let text = expect_error(&mut client, "unexpected-event").await;
    assert!(text.contains("audio-start"), "{text}");
    // An unknown event type gets no answer and no error; the next ping is answered first.
    client
        .send(Event::Unknown(wyoming::Frame::new("x-from-the-future")))
        .await
        .unwrap();
    client.send(Describe {}).await.unwrap();
    assert!(matches!(recv(&mut client).await, Some(Event::Info(_))));
    app.shutdown.cancel();
}

#[tokio::test]
async fn an_event_with_invalid_data_gets_an_error_and_the_connection_goes_on() {
    let app = spawn_app(test_config()).await;
    let mut stream = TcpStream::connect(app.wyoming_addr).await.unwrap();
    stream
        .write_all(b"{\"type\":\"audio-start\",\"data\":{\"rate\":\"fast\"}}\n{\"type\":\"ping\",\"data\":{\"text\":\"ok\"}}\n")
        .await
        .unwrap();
    let mut client = wyoming::Client::from_stream(stream, Default::default());
    let text = expect_error(&mut client, "invalid-event").await;
    assert!(text.contains("audio-start"), "{text}");
    assert!(matches!(recv(&mut client).await, Some(Event::Pong(_))));
    app.shutdown.cancel();
}

/// Sends `bad` on its own connection; expects an `error` with `code` and then the close, while a
/// healthy connection opened before keeps being served.
async fn bad_input_is_contained(config: jarvis::config::Config, bad: &[u8], code: &str) {
    let app = spawn_app(config).await;
    let mut healthy = client(app.wyoming_addr).await;
    assert_still_served(&mut healthy).await;

    let raw = raw_exchange(app.wyoming_addr, bad).await;
    let errors = errors_in(&raw);
    assert_eq!(errors.len(), 1, "exactly one error event: {errors:?}");
    assert_eq!(errors[0].0, code, "{errors:?}");

    assert_still_served(&mut healthy).await;
    let mut fresh = client(app.wyoming_addr).await;
    assert_still_served(&mut fresh).await;
    app.shutdown.cancel();
}

#[tokio::test]
async fn a_header_line_over_the_limit_is_refused() {
    let mut bad = vec![b'{'; 70_000];
    bad.push(b'\n');
    bad_input_is_contained(test_config(), &bad, "header-too-long").await;
}

#[tokio::test]
async fn a_header_line_over_the_limit_without_a_newline_is_refused() {
    // The peer never ends the line; the server must not buffer it forever.
    bad_input_is_contained(test_config(), &vec![b'x'; 200_000], "header-too-long").await;
}

#[tokio::test]
async fn a_non_json_header_is_refused() {
    bad_input_is_contained(
        test_config(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "bad-header",
    )
    .await;
}

#[tokio::test]
async fn a_negative_length_is_refused() {
    bad_input_is_contained(
        test_config(),
        b"{\"type\":\"audio-chunk\",\"data_length\":-3}\n",
        "bad-length",
    )
    .await;
    bad_input_is_contained(
        test_config(),
        b"{\"type\":\"audio-chunk\",\"payload_length\":-1}\n",
        "bad-length",
    )
    .await;
}

#[tokio::test]
async fn a_huge_length_is_refused_without_allocating_it() {
    bad_input_is_contained(
        test_config(),
        b"{\"type\":\"info\",\"data_length\":1000000000000}\n",
        "data-too-large",
    )
    .await;
    bad_input_is_contained(
        test_config(),
        b"{\"type\":\"audio-chunk\",\"payload_length\":9000000000000000000}\n",
        "payload-too-large",
    )
    .await;
}

fn short_idle() -> jarvis::config::Config {
    let mut config = test_config();
    config.wyoming.idle_timeout_secs = 1;
    config
}

/// Like `raw_exchange`, but the client keeps its side open (a stalled peer, not a closed one).
async fn stall(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut out))
        .await
        .expect("server gives up on a stalled peer")
        .unwrap();
    out
}

/// Runs `stalled` while a healthy connection keeps talking to the server; the healthy one must be
/// answered all along, and the stalled one must get an `idle-timeout` error and be closed.
async fn stall_is_contained(stalled: &'static [u8]) {
    let app = spawn_app(short_idle()).await;
    let mut healthy = client(app.wyoming_addr).await;
    let stalled = tokio::spawn(stall(app.wyoming_addr, stalled));
    while !stalled.is_finished() {
        assert_still_served(&mut healthy).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let raw = stalled.await.unwrap();
    let errors = errors_in(&raw);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "idle-timeout");
    assert_still_served(&mut healthy).await;
    app.shutdown.cancel();
}

#[tokio::test]
async fn a_length_larger_than_what_is_sent_times_out_and_is_closed() {
    stall_is_contained(
        b"{\"type\":\"audio-chunk\",\"data\":{\"rate\":16000,\"width\":2,\"channels\":1},\"payload_length\":320}\n0123456789",
    )
    .await;
}

#[tokio::test]
async fn half_a_frame_then_a_stall_times_out_and_is_closed() {
    stall_is_contained(b"{\"type\":\"transcr").await;
}

#[tokio::test]
async fn a_client_that_disconnects_mid_payload_affects_nobody_else() {
    let app = spawn_app(test_config()).await;
    let mut healthy = client(app.wyoming_addr).await;
    for _ in 0..20 {
        let mut stream = TcpStream::connect(app.wyoming_addr).await.unwrap();
        stream
            .write_all(b"{\"type\":\"audio-chunk\",\"data\":{\"rate\":16000,\"width\":2,\"channels\":1},\"payload_length\":64000}\n")
            .await
            .unwrap();
        stream.write_all(&[0u8; 1000]).await.unwrap();
        drop(stream);
    }
    assert_still_served(&mut healthy).await;
    app.shutdown.cancel();
}

#[tokio::test]
async fn a_thousand_connections_at_once_are_served_or_refused_and_nobody_hangs() {
    let mut config = test_config();
    config.wyoming.max_connections = 100;
    let app = spawn_app(config).await;
    let mut healthy = client(app.wyoming_addr).await;

    let addr = app.wyoming_addr;
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            tokio::spawn(async move {
                let Ok(mut client) = wyoming::Client::connect(addr).await else {
                    return "connect failed";
                };
                // A refused connection may already be closed when we write; that still counts.
                let _ = client.send(Describe {}).await;
                match tokio::time::timeout(LIMIT, client.recv()).await {
                    Ok(Ok(Some(Event::Info(_)))) => "served",
                    Ok(Ok(Some(Event::Error(err)))) if err.code.as_deref() == Some("busy") => {
                        "busy"
                    }
                    Ok(other) => panic!("unexpected answer {other:?}"),
                    Err(_) => panic!("a connection hung"),
                }
            })
        })
        .collect();
    let mut served = 0;
    let mut busy = 0;
    for task in tasks {
        match task.await.unwrap() {
            "served" => served += 1,
            "busy" => busy += 1,
            other => panic!("{other}"),
        }
    }
    assert_eq!(served + busy, 1000);
    assert!(
        served >= 99,
        "at least the permitted connections are served ({served})"
    );
    // The connection opened before the flood is still served, and so is a new one.
    assert_still_served(&mut healthy).await;
    let mut after = client(app.wyoming_addr).await;
    assert_still_served(&mut after).await;
    app.shutdown.cancel();
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_finishes_well_within_the_grace_period() {
    let mut config = test_config();
    config.wyoming.shutdown_grace_secs = 10;
    let app = spawn_app(config).await;
    let mut open = client(app.wyoming_addr).await;
    assert_still_served(&mut open).await;
    // A request racing the shutdown gets its whole reply or none, never half of one
    // (`recv` fails the test on a truncated event).
    open.send(Describe {}).await.unwrap();
    let started = std::time::Instant::now();
    app.shutdown.cancel();
    let mut last = recv(&mut open).await;
    if matches!(last, Some(Event::Info(_))) {
        last = recv(&mut open).await;
    }
    assert!(last.is_none(), "server closes the connection, got {last:?}");
    tokio::time::timeout(LIMIT, app.finished)
        .await
        .expect("app stops")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // The port is closed.
    assert!(TcpStream::connect(app.wyoming_addr).await.is_err());
}
