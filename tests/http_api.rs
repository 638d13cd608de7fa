//! `GET /health`, `POST /v1/command` and `POST /v1/event` on the running server, against the
//! fake Proxmox API.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::fake_proxmox::FakeProxmox;
use jarvis::app::App;
use jarvis::config::Secret;
use jarvis::events::{Query, Source};
use jarvis::frigate::Availability;
use serde_json::{Value, json};

const KEY: &str = "s3cret-key-for-tests";

async fn start(fake: &FakeProxmox, edit: impl FnOnce(&mut jarvis::config::Config)) -> App {
    let mut config = common::test_config();
    config.proxmox = fake.config();
    config.proxmox.task_poll_ms = 20;
    config.http.api_key = Secret::new(KEY);
    edit(&mut config);
    common::spawn_app(config).await
}

fn url(app: &App, path: &str) -> String {
    format!("http://{}{path}", app.http_addr.unwrap())
}

async fn post(app: &App, key: Option<&str>, body: impl Into<reqwest::Body>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url(app, "/v1/command"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_command_returns_intent_slots_reply_and_actions() {
    let fake = FakeProxmox::homelab().await;
    let app = start(&fake, |_| {}).await;
    let response = post(
        &app,
        Some(KEY),
        json!({"text": "Start VM one oh four"}).to_string(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["intent"], "StartGuest");
    assert_eq!(body["slots"]["guest"], "vm one oh four");
    assert_eq!(body["reply"], "nextcloud has started.");
    assert_eq!(body["handled"], true);
    assert_eq!(body["source"], "local");
    assert_eq!(body["pending_confirmation"], false);
    assert_eq!(body["actions"][0]["decision"], "allowed");
    assert_eq!(body["actions"][0]["task"]["result"], "ok");
    assert!(
        body["actions"][0]["task"]["upid"]
            .as_str()
            .unwrap()
            .starts_with("UPID:agent1:")
    );

    // A destructive action asks first; the returned conversation id confirms it.
    let body: Value = post(
        &app,
        Some(KEY),
        json!({"text": "reboot pihole"}).to_string(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["pending_confirmation"], true);
    assert_eq!(body["actions"][0]["decision"], "needs_confirmation");
    let conversation = body["conversation_id"].as_str().unwrap().to_owned();
    let other: Value = post(&app, Some(KEY), json!({"text": "confirm"}).to_string())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        other["reply"],
        "There's nothing waiting for a confirmation."
    );
    let body: Value = post(
        &app,
        Some(KEY),
        json!({"text": "confirm", "conversation_id": conversation}).to_string(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["reply"], "pihole is rebooting.");
    assert_eq!(fake.count("POST /nodes/pve/lxc/102/status/reboot"), 1);
}

#[tokio::test]
async fn the_key_is_required_and_health_is_not_behind_it() {
    let fake = FakeProxmox::homelab().await;
    let app = start(&fake, |_| {}).await;
    for key in [None, Some("wrong"), Some("")] {
        let response = post(&app, key, json!({"text": "ping"}).to_string()).await;
        assert_eq!(response.status(), 401, "{key:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized");
        assert!(body["error"].as_str().unwrap().contains("http.api_key"));
    }
    let health: Value = reqwest::get(url(&app, "/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["brain"]["proxmox_configured"], true);
    assert_eq!(health["brain"]["audit_writable"], true);
    let intent = health["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "intent handling")
        .unwrap();
    assert_eq!(intent["ready"], true);
    assert!(health["proxmox"].is_object());
    assert!(!health.to_string().contains(KEY));
}

#[tokio::test]
async fn bad_bodies_get_clear_errors_and_the_server_keeps_serving() {
    let fake = FakeProxmox::homelab().await;
    let app = start(&fake, |_| {}).await;
    let huge = json!({"text": "x".repeat(1024 * 1024)}).to_string();
    let response = post(&app, Some(KEY), huge).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "too-large");

    for bad in [
        "{not json",
        "[]",
        r#"{"txt": "ping"}"#,
        r#"{"text": 5}"#,
        "",
    ] {
        let response = post(&app, Some(KEY), bad.to_owned()).await;
        assert!(
            response.status() == 400 || response.status() == 422,
            "{bad:?}: {}",
            response.status()
        );
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("text"),
            "{bad:?}: {body}"
        );
    }
    let response = post(&app, Some(KEY), json!({"text": "   "}).to_string()).await;
    assert_eq!(response.status(), 400);

    let body: Value = post(&app, Some(KEY), json!({"text": "ping"}).to_string())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["reply"], "I'm here.");
}

#[tokio::test]
async fn a_flood_from_one_client_gets_429_with_retry_after() {
    let fake = FakeProxmox::homelab().await;
    let app = start(&fake, |c| c.http.rate_limit_per_minute = 5).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..12 {
        let response = post(&app, Some(KEY), json!({"text": "ping"}).to_string()).await;
        if response.status() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 7);
    let retry_after = retry_after.expect("Retry-After on 429");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // /health is not rate limited.
    assert_eq!(
        reqwest::get(url(&app, "/health")).await.unwrap().status(),
        200
    );
}

async fn post_event(
    app: &App,
    key: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url(app, "/v1/event"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    request.send().await.unwrap()
}

async fn health(app: &App) -> Value {
    reqwest::get(url(app, "/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn ha_events() -> Query {
    Query {
        source: Some(Source::Ha),
        ..Query::default()
    }
}

#[tokio::test]
async fn an_event_is_stored_under_its_key_and_the_same_id_updates_it() {
    let fake = FakeProxmox::homelab().await;
    let app = start(&fake, |_| {}).await;
    let start = jiff::Timestamp::now().as_second() - 120;
    let response = post_event(
        &app,
        Some(KEY),
        json!({
            "kind": "door", "entity": "binary_sensor.front_door", "area": "Hall",
            "text": "Front door opened", "time": start, "id": "door-1",
            "attributes": {"state": "on"}
        })
        .to_string(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"key": "ha:door-1", "stored": true}));

    // Stored before the answer: the store has it now.
    let events = app.services.events.query(ha_events()).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.key, "ha:door-1");
    assert_eq!(event.kind, "door");
    assert_eq!(event.entity.as_deref(), Some("binary_sensor.front_door"));
    assert_eq!(event.area.as_deref(), Some("Hall"));
    assert_eq!(event.text.as_deref(), Some("Front door opened"));
    assert_eq!(event.start_ms, start * 1000);
    assert_eq!(event.end_ms, None);

    // The same id again, with the end as RFC 3339: the same event, completed.
    let end = jiff::Timestamp::from_second(start + 60)
        .unwrap()
        .to_string();
    let body: Value = post_event(
        &app,
        Some(KEY),
        json!({"kind": "door", "id": "door-1", "end_time": end, "attributes": {"closed_by": "wind"}})
            .to_string(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["key"], "ha:door-1");
    let events = app.services.events.query(ha_events()).await.unwrap();
    assert_eq!(events.len(), 1, "the same id is the same event");
    assert_eq!(events[0].end_ms, Some((start + 60) * 1000));
    assert_eq!(events[0].text.as_deref(), Some("Front door opened"));
    assert_eq!(
        events[0].attributes,
        Some(json!({"state": "on", "closed_by": "wind"}))
    );

    // Without an id: a key of its own each time, at the time of the push.
    let before = jiff::Timestamp::now().as_millisecond();
    let body: Value = post_event(&app, Some(KEY), json!({"kind": "arrival"}).to_string())
        .await
        .json()
        .await
        .unwrap();
    let key = body["key"].as_str().unwrap();
    assert!(key.starts_with("ha:auto-"), "{key}");
    let arrival = app
        .services
        .events
        .query(Query {
            kind: Some("arrival".into()),
            ..ha_events()
        })
        .await
        .unwrap();
    assert_eq!(arrival[0].key, key);
    assert!(arrival[0].start_ms >= before);

    // The same key as /v1/command.
    for key in [None, Some("wrong")] {
        let response = post_event(&app, key, json!({"kind": "door"}).to_string()).await;
        assert_eq!(response.status(), 401, "{key:?}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("http.api_key"));
    }
    assert_eq!(app.services.events.count(ha_events()).await.unwrap(), 2);

    // /health counts them (its figures trail the writer by up to a second).
    let deadline = tokio::time::Instant::now() + common::LIMIT;
    loop {
        let health = health(&app).await;
        if health["events"]["events"] == 2 {
            assert_eq!(health["events"]["available"], true);
            assert_eq!(health["events"]["problem"], Value::Null);
            assert!(health["events"]["bytes"].as_u64().unwrap() > 0);
            assert!(health["events"]["oldest"].as_str().unwrap().ends_with('Z'));
            assert_eq!(health["events"]["pending"], 0);
            assert_eq!(health["events"]["dropped"], 0);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{health}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn event_bodies_that_are_not_events_get_400_and_a_1_mb_body_413() {
    let fake = FakeProxmox::homelab().await;
    let app = start(&fake, |_| {}).await;
    let huge = json!({"kind": "door", "text": "x".repeat(1024 * 1024)}).to_string();
    let response = post_event(&app, Some(KEY), huge).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "too-large");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("http.max_body_bytes")
    );

    for (bad, needle) in [
        ("{not json", "kind"),
        ("", "kind"),
        ("[]", "kind"),
        (r#"{"text": "no kind"}"#, "missing field `kind`"),
        (
            r#"{"kind": "door", "colour": "red"}"#,
            "unknown field `colour`",
        ),
        (r#"{"kind": 5}"#, "kind"),
        (r#"{"kind": "door", "attributes": [1, 2]}"#, "attributes"),
        (r#"{"kind": "door", "time": "next tuesday"}"#, "RFC 3339"),
        (r#"{"kind": "door", "time": true}"#, "time"),
        (r#"{"kind": "door", "id": ""}"#, "id"),
        (r#"{"kind": "door", "source": "jarvis"}"#, "jarvis"),
        (r#"{"kind": ""}"#, "kind"),
    ] {
        let response = post_event(&app, Some(KEY), bad.to_owned()).await;
        assert_eq!(response.status(), 400, "{bad:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "bad-request", "{bad:?}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(needle), "{bad:?}: {error}");
    }
    // JSON only: a form post from a web page is refused before it is read.
    let response = reqwest::Client::new()
        .post(url(&app, "/v1/event"))
        .header("x-api-key", KEY)
        .header("content-type", "text/plain")
        .body(json!({"kind": "door"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(app.services.events.count(ha_events()).await.unwrap(), 0);

    // And the next good one is stored.
    let response = post_event(&app, Some(KEY), json!({"kind": "door"}).to_string()).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn times_in_the_future_or_past_the_retention_get_422_with_the_reason() {
    let fake = FakeProxmox::homelab().await;
    let app = start(&fake, |c| c.events.retention_days = 7).await;
    let now = jiff::Timestamp::now().as_second();
    for (body, needle) in [
        (json!({"kind": "door", "time": now + 3600}), "future"),
        (
            json!({"kind": "door", "time": now - 8 * 86_400}),
            "retention",
        ),
        (
            json!({"kind": "door", "time": now - 60, "end_time": now - 120}),
            "ends before it starts",
        ),
    ] {
        let response = post_event(&app, Some(KEY), body.to_string()).await;
        assert_eq!(response.status(), 422, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["code"], "rejected");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(needle), "{body}: {error}");
    }
    // A clock a minute ahead is fine; six days ago too.
    for time in [now + 60, now - 6 * 86_400] {
        let response = post_event(
            &app,
            Some(KEY),
            json!({"kind": "door", "time": time}).to_string(),
        )
        .await;
        assert_eq!(response.status(), 200, "{time}");
    }
    assert_eq!(app.services.events.count(ha_events()).await.unwrap(), 2);
}

#[tokio::test]
async fn an_unavailable_store_gets_503_with_the_reason_and_commands_still_work() {
    let fake = FakeProxmox::homelab().await;
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let path = not_a_dir.join("events.db");
    let app = start(&fake, |c| c.events.path = path.clone()).await;
    let response = post_event(&app, Some(KEY), json!({"kind": "door"}).to_string()).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "store-unavailable");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(&*not_a_dir.to_string_lossy()) && error.contains("events.path"),
        "{error}"
    );
    let health = health(&app).await;
    assert_eq!(health["events"]["available"], false, "{health}");
    assert!(
        health["events"]["problem"]
            .as_str()
            .unwrap()
            .contains("events.path"),
        "{health}"
    );
    let reply: Value = post(&app, Some(KEY), json!({"text": "ping"}).to_string())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reply["reply"], "I'm here.");

    // Turned off: the same, with the setting that turns it on.
    let app = start(&fake, |c| c.events.enabled = false).await;
    let response = post_event(&app, Some(KEY), json!({"kind": "door"}).to_string()).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("events.enabled"),
        "{body}"
    );
}

#[tokio::test]
async fn events_have_their_own_rate_limit_behind_the_same_setting() {
    let fake = FakeProxmox::homelab().await;
    let app = start(&fake, |c| c.http.rate_limit_per_minute = 3).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..6 {
        let response = post_event(
            &app,
            Some(KEY),
            json!({"kind": "door", "id": i}).to_string(),
        )
        .await;
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.unwrap();
            assert!(
                body["error"].as_str().unwrap().contains("too many events"),
                "{body}"
            );
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    assert!(retry_after.is_some());
    // Rate limiting comes before the key: a flood of wrong keys is limited as well.
    let response = post_event(&app, Some("wrong"), json!({"kind": "door"}).to_string()).await;
    assert_eq!(response.status(), 429);
    // Commands have their own budget.
    let response = post(&app, Some(KEY), json!({"text": "ping"}).to_string()).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn health_shows_frigate_as_the_subscriber_reports_it() {
    let fake = FakeProxmox::homelab().await;
    let app = start(&fake, |c| c.frigate.enabled = true).await;
    let health = health(&app).await;
    let mut frigate = health["frigate"].clone();
    // The subscriber's counters: no broker here, so not connected, and the error says where.
    let subscriber = frigate
        .as_object_mut()
        .and_then(|f| f.remove("subscriber"))
        .expect("the subscriber's counters");
    assert_eq!(subscriber["connected"], false, "{subscriber}");
    assert_eq!(subscriber["messages"], 0, "{subscriber}");
    assert_eq!(
        frigate,
        json!({"enabled": true, "availability": "unknown", "since": null, "version": null,
               "cameras": []})
    );
    let since = jiff::Timestamp::now().as_millisecond();
    app.services.frigate_status.send_modify(|status| {
        status.availability = Availability::Online;
        status.since_ms = Some(since);
        status.version = Some("0.16.2".into());
        status.cameras = ["driveway".to_owned(), "front_door".to_owned()].into();
    });
    let health = self::health(&app).await;
    let frigate = &health["frigate"];
    assert_eq!(frigate["availability"], "online");
    assert_eq!(frigate["version"], "0.16.2");
    assert_eq!(frigate["cameras"], json!(["driveway", "front_door"]));
    assert_eq!(
        frigate["since"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond(),
        since
    );

    let app = start(&fake, |_| {}).await;
    assert_eq!(self::health(&app).await["frigate"]["enabled"], false);
}

#[tokio::test]
async fn a_follow_up_answers_which_one_over_http_and_over_wyoming() {
    let fake = FakeProxmox::homelab().await;
    fake.add_guest(common::fake_proxmox::FakeGuest::qemu(110, "backup-server-1", "pve").running());
    fake.add_guest(
        common::fake_proxmox::FakeGuest::qemu(111, "backup-server-2", "agent1").running(),
    );
    let app = start(&fake, |_| {}).await;
    let ask = |text: &'static str, conversation: Option<String>| {
        let app = &app;
        async move {
            let mut body = json!({ "text": text });
            if let Some(c) = conversation {
                body["conversation_id"] = json!(c);
            }
            post(app, Some(KEY), body.to_string())
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let body = ask("What's the status of the backup server?", None).await;
    assert_eq!(
        body["reply"],
        "Which one do you mean: backup-server-1 or backup-server-2?"
    );
    let conversation = body["conversation_id"].as_str().unwrap().to_owned();
    let body = ask("the second one", Some(conversation.clone())).await;
    assert!(
        body["reply"]
            .as_str()
            .unwrap()
            .starts_with("backup-server-2, VM 111 on agent1, is running"),
        "{body}"
    );
    let body = ask("and pihole?", Some(conversation)).await;
    assert!(
        body["reply"]
            .as_str()
            .unwrap()
            .starts_with("pihole, container 102 on pve, is running"),
        "{body}"
    );

    // Over Wyoming, HA's conversation_id (in the transcript's context) keys the conversation.
    let say = |text: &'static str, conversation: &'static str| {
        let app = &app;
        async move {
            let mut client = common::client(app.wyoming_addr).await;
            client
                .send(wyoming::asr::Transcript {
                    text: text.into(),
                    context: json!({ "conversation_id": conversation })
                        .as_object()
                        .cloned(),
                    ..Default::default()
                })
                .await
                .unwrap();
            match common::recv(&mut client).await {
                Some(wyoming::Event::Handled(h)) => h.text.unwrap_or_default(),
                other => panic!("expected handled, got {other:?}"),
            }
        }
    };
    let reply = say("Is the backup server running?", "01JD-ha").await;
    assert_eq!(
        reply,
        "Which one do you mean: backup-server-1 or backup-server-2?"
    );
    let reply = say("The first one.", "01JD-other").await;
    assert!(reply.starts_with("I didn't ask you to choose"), "{reply}");
    let reply = say("The first one.", "01JD-ha").await;
    assert_eq!(reply, "Yes, backup-server-1 is running on pve.");
}
