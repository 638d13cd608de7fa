//! The LLM fallback against an in-process fake OpenAI-compatible `/v1/chat/completions` server:
//! tool calls go through the brain's policy, history is bounded, and a dead server gets a clear
//! spoken fallback.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use common::fake_proxmox::actions::FakeSnapshot;
use common::fake_proxmox::{FakeProxmox, dead_url};
use jarvis::brain::{Brain, Channel, Command, Decision, Source};
use serde_json::{Value, json};

#[derive(Default)]
struct FakeLlm {
    /// Replies to give, in order (the `message` of `choices[0]`).
    script: VecDeque<Value>,
    /// Every request body received.
    requests: Vec<Value>,
    /// Authorization headers received.
    auth: Vec<String>,
    /// Sleep before answering.
    delay: Duration,
}

type Shared = Arc<Mutex<FakeLlm>>;

async fn completions(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let (message, delay) = {
        let mut s = state.lock().unwrap();
        s.requests.push(body);
        s.auth.push(
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
        );
        let message = s
            .script
            .pop_front()
            .unwrap_or_else(|| json!({"role": "assistant", "content": "I have nothing to add."}));
        (message, s.delay)
    };
    tokio::time::sleep(delay).await;
    Json(json!({"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "message": message, "finish_reason": "stop"}]}))
}

async fn fake_llm(script: Vec<Value>) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(FakeLlm {
        script: script.into(),
        ..FakeLlm::default()
    }));
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), shared)
}

fn tool_call(id: &str, name: &str, args: Value) -> Value {
    json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}]})
}

fn brain(url: &str, fake: &FakeProxmox, audit: &tempfile::TempDir) -> Brain {
    let mut config = common::test_config();
    config.audit.path = audit.path().join("audit.jsonl");
    config.llm.enabled = true;
    config.llm.url = Some(url.parse().unwrap());
    config.llm.model = "test-model".into();
    config.llm.api_key = jarvis::config::Secret::new("llm-secret-key");
    config.llm.timeout_secs = 2;
    Brain::new(&config, Some(fake.client())).unwrap()
}

fn say(text: &str, conversation: &str) -> Command {
    Command {
        text: text.into(),
        channel: Channel::Voice,
        client: "10.0.0.5".into(),
        conversation: Some(conversation.into()),
        approval: None,
    }
}

#[tokio::test]
async fn unmatched_text_goes_to_the_llm_and_its_tool_calls_obey_the_policy() {
    let fake = FakeProxmox::homelab().await;
    let (url, llm) = fake_llm(vec![
        tool_call(
            "call_1",
            "guest_action",
            json!({"guest": "media server", "action": "reboot"}),
        ),
        json!({"role": "assistant", "content": "Reboot media-server on pve? Say confirm."}),
        tool_call(
            "call_2",
            "status",
            json!({"target": "pihole", "aspect": "running"}),
        ),
        json!({"role": "assistant", "content": "Yes, pihole is running."}),
    ])
    .await;
    let audit = tempfile::tempdir().unwrap();
    let brain = brain(&url, &fake, &audit);

    let r = brain
        .command(say(
            "Could you give the media box a kick, it's stuck",
            "conv",
        ))
        .await;
    assert_eq!(r.source, Source::Llm);
    assert!(r.handled);
    assert_eq!(r.reply, "Reboot media-server on pve? Say confirm.");
    // The tool call went through the policy: a destructive action waits for "confirm".
    assert_eq!(r.actions[0].decision, Decision::NeedsConfirmation);
    assert!(r.pending_confirmation);
    assert_eq!(fake.count("POST /nodes/pve/qemu/101/status/reboot"), 0);
    // ... and the user's spoken "confirm" (a local intent) carries it out.
    let r = brain.command(say("confirm", "conv")).await;
    assert_eq!(r.reply, "media-server is rebooting.");
    assert_eq!(fake.count("POST /nodes/pve/qemu/101/status/reboot"), 1);

    let r = brain
        .command(say("tell me about the dns thing", "conv"))
        .await;
    assert_eq!(r.reply, "Yes, pihole is running.");

    let llm = llm.lock().unwrap();
    let first = &llm.requests[0];
    assert_eq!(first["model"], "test-model");
    let tools: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"guest_action") && tools.contains(&"cluster_overview"));
    // The tool result was sent back with the call's id.
    let second = llm.requests[1]["messages"].as_array().unwrap();
    let tool = second.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool["tool_call_id"], "call_1");
    assert!(
        tool["content"]
            .as_str()
            .unwrap()
            .starts_with("Reboot media-server on pve?")
    );
    // The third exchange carries the conversation's history.
    let third = llm.requests[2]["messages"].as_array().unwrap();
    assert!(
        third
            .iter()
            .any(|m| m["content"] == "Could you give the media box a kick, it's stuck")
    );
    assert_eq!(llm.auth[0], "Bearer llm-secret-key");
    let raw = std::fs::read_to_string(audit.path().join("audit.jsonl")).unwrap();
    assert!(raw.contains(r#""intent":"llm""#));
    assert!(!raw.contains("llm-secret-key"));
}

#[tokio::test]
async fn forbidden_and_unknown_tools_are_refused() {
    let fake = FakeProxmox::homelab().await;
    let (url, llm) = fake_llm(vec![
        tool_call("a", "delete_vm", json!({"guest": "haos"})),
        tool_call(
            "b",
            "guest_action",
            json!({"guest": "haos", "action": "destroy"}),
        ),
        json!({"role": "assistant", "content": "I can't do that."}),
    ])
    .await;
    let audit = tempfile::tempdir().unwrap();
    let brain = brain(&url, &fake, &audit);
    let r = brain.command(say("get rid of haos for good", "c")).await;
    assert_eq!(r.reply, "I can't do that.");
    assert!(r.actions.is_empty());
    assert!(fake.requests().iter().all(|r| r.method == "GET"));
    let llm = llm.lock().unwrap();
    let messages = llm.requests.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .clone();
    let results: Vec<&str> = messages
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert!(
        results
            .iter()
            .all(|r| r.starts_with("Unknown tool or bad arguments")),
        "{results:?}"
    );
}

#[tokio::test]
async fn history_is_bounded_per_conversation() {
    let fake = FakeProxmox::homelab().await;
    let (url, llm) = fake_llm(Vec::new()).await;
    let audit = tempfile::tempdir().unwrap();
    let brain = brain(&url, &fake, &audit);
    for i in 0..30 {
        brain
            .command(say(&format!("tell me a story number {i}"), "long"))
            .await;
    }
    brain.command(say("something else entirely", "other")).await;
    let llm = llm.lock().unwrap();
    let last_long = &llm.requests[29]["messages"];
    // System prompt + at most 20 kept messages + the new user message.
    assert!(
        last_long.as_array().unwrap().len() <= 22,
        "{}",
        last_long.as_array().unwrap().len()
    );
    let other = llm.requests[30]["messages"].as_array().unwrap();
    assert_eq!(other.len(), 2, "a new conversation starts empty");
}

#[tokio::test]
async fn a_dead_or_slow_llm_gets_a_spoken_fallback() {
    let fake = FakeProxmox::homelab().await;
    let audit = tempfile::tempdir().unwrap();
    let brain = brain(&format!("{}/v1", dead_url()), &fake, &audit);
    let r = brain.command(say("what's the meaning of life", "c")).await;
    assert!(!r.handled);
    assert_eq!(r.source, Source::Llm);
    assert!(
        r.reply.contains("language model isn't answering"),
        "{}",
        r.reply
    );

    let (url, llm) = fake_llm(Vec::new()).await;
    llm.lock().unwrap().delay = Duration::from_secs(5);
    let brain = self::brain(&url, &fake, &audit);
    let started = std::time::Instant::now();
    let r = brain.command(say("what's the meaning of life", "c")).await;
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(
        r.reply.contains("language model isn't answering"),
        "{}",
        r.reply
    );
    // Local intents never wait for the LLM.
    let r = brain.command(say("Is pihole running?", "c")).await;
    assert_eq!(r.reply, "Yes, pihole is running on pve.");
}

#[tokio::test]
async fn new_abilities_are_tools_that_run_as_local_intents() {
    let fake = FakeProxmox::homelab().await;
    fake.add_snapshot(104, FakeSnapshot::new("weekly", "weekly snapshot", 86_400));
    let (url, llm) = fake_llm(vec![
        tool_call(
            "call_snap",
            "take_snapshot",
            json!({"guest": "nextcloud", "note": "before the upgrade"}),
        ),
        tool_call("call_list", "list_snapshots", json!({"guest": "104"})),
        json!({"role": "assistant", "content": "Done, nextcloud has two snapshots now."}),
    ])
    .await;
    let audit = tempfile::tempdir().unwrap();
    let brain = brain(&url, &fake, &audit);

    let r = brain
        .command(say(
            "could you make sure I can get nextcloud back if the upgrade goes wrong",
            "snap",
        ))
        .await;
    assert_eq!(r.source, Source::Llm);
    assert_eq!(r.reply, "Done, nextcloud has two snapshots now.");
    // A safe write: carried out at once, through the policy and the audit log.
    assert_eq!(r.actions.len(), 1, "{:?}", r.actions);
    assert_eq!(r.actions[0].decision, Decision::Allowed);
    assert_eq!(r.actions[0].snapshot.as_deref(), Some("before_the_upgrade"));
    assert_eq!(fake.count("POST /nodes/agent1/qemu/104/snapshot"), 1);
    assert!(
        fake.snapshots(104)
            .iter()
            .any(|s| s.name == "before_the_upgrade" && s.description == "before the upgrade")
    );
    // Each tool result is the local intent's reply, sent back with its call's id.
    let llm = llm.lock().unwrap();
    let messages = llm.requests.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .clone();
    let result = |id: &str| {
        messages
            .iter()
            .find(|m| m["role"] == "tool" && m["tool_call_id"] == id)
            .and_then(|m| m["content"].as_str())
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        result("call_snap"),
        "I took a snapshot of nextcloud called before_the_upgrade."
    );
    assert!(
        result("call_list").starts_with("nextcloud has 2 snapshots: before_the_upgrade from"),
        "{}",
        result("call_list")
    );
    let tools: Vec<&str> = llm.requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    for tool in [
        "last_backup",
        "stale_backups",
        "backup_job",
        "failed_tasks",
        "disk_health",
        "list_snapshots",
        "take_snapshot",
        "rollback_snapshot",
        "migrate_guest",
        "node_action",
    ] {
        assert!(tools.contains(&tool), "{tool} is offered");
    }
    let raw = std::fs::read_to_string(audit.path().join("audit.jsonl")).unwrap();
    assert!(raw.contains(r#""snapshot":"before_the_upgrade""#), "{raw}");
}

#[tokio::test]
async fn a_destructive_node_tool_call_ends_in_a_confirmation_question() {
    let fake = FakeProxmox::homelab().await;
    let (url, llm) = fake_llm(vec![
        tool_call(
            "call_stop",
            "node_action",
            json!({"node": "pve", "action": "stop_all"}),
        ),
        json!({"role": "assistant", "content": "Stop media-server and pihole on pve? Say confirm."}),
    ])
    .await;
    let audit = tempfile::tempdir().unwrap();
    let brain = brain(&url, &fake, &audit);

    let r = brain
        .command(say("power everything down on the big box", "stop"))
        .await;
    assert_eq!(r.source, Source::Llm);
    assert_eq!(r.actions.len(), 1, "{:?}", r.actions);
    assert_eq!(r.actions[0].decision, Decision::NeedsConfirmation);
    assert!(r.pending_confirmation);
    assert_eq!(fake.count("POST /"), 0, "{:?}", fake.requests());
    // The question the LLM got back states the blast radius and keeps the protected guest out.
    let question = {
        let llm = llm.lock().unwrap();
        llm.requests[1]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "tool")
            .and_then(|m| m["content"].as_str())
            .unwrap()
            .to_owned()
    };
    assert!(
        question.starts_with("Stop all guests on pve? That stops 2 guests:"),
        "{question}"
    );
    assert!(question.contains("haos is protected"), "{question}");
    assert!(question.contains("Say confirm"), "{question}");
    let raw = std::fs::read_to_string(audit.path().join("audit.jsonl")).unwrap();
    assert!(raw.contains("waiting for confirmation"), "{raw}");

    // Cancelling (a local intent) leaves everything as it was.
    let r = brain.command(say("cancel", "stop")).await;
    assert!(!r.pending_confirmation);
    assert_eq!(fake.count("POST /"), 0, "{:?}", fake.requests());
}
