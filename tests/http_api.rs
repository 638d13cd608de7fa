//! `GET /health` and `POST /v1/command` on the running server, against the fake Proxmox API.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::fake_proxmox::FakeProxmox;
use jarvis::app::App;
use jarvis::config::Secret;
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
