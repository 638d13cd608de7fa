//! Node power, snapshots and migration end to end: `POST /v1/command` (and Wyoming) against the
//! fake Proxmox API, with the policy, the confirmation flow, the audit log and the bad inputs
//! of issue #15.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::fake_proxmox::FakeProxmox;
use common::fake_proxmox::actions::FakeSnapshot;
use jarvis::app::App;
use jarvis::brain::{Action, ActionRequest, Brain, Channel, Decision};
use jarvis::config::{Config, Secret};
use serde_json::{Value, json};

const KEY: &str = "node-actions-key";

struct Setup {
    fake: FakeProxmox,
    app: App,
    audit: tempfile::TempDir,
}

async fn setup_with(edit: impl FnOnce(&mut Config)) -> Setup {
    let fake = FakeProxmox::homelab().await;
    let audit = tempfile::tempdir().unwrap();
    let mut config = common::test_config();
    config.proxmox = fake.config();
    config.proxmox.task_poll_ms = 20;
    // The tests change the cluster behind Jarvis's back (a node goes offline) and expect the
    // next command to see it: no inventory cache (Jarvis refreshes it itself after an action,
    // so a change made after that would otherwise wait for the 15 s cache).
    config.proxmox.resources_ttl_secs = 0;
    config.http.api_key = Secret::new(KEY);
    config.audit.path = audit.path().join("audit.jsonl");
    edit(&mut config);
    let app = common::spawn_app(config).await;
    Setup { fake, app, audit }
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

impl Setup {
    async fn say(&self, text: &str, conversation: &str) -> Value {
        let url = format!("http://{}/v1/command", self.app.http_addr.unwrap());
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            reqwest::Client::new()
                .post(url)
                .header("x-api-key", KEY)
                .json(&json!({"text": text, "conversation_id": conversation}))
                .send(),
        )
        .await
        .expect("answer in time")
        .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    fn audit_actions(&self) -> Vec<Value> {
        std::fs::read_to_string(self.audit.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["kind"] == "action")
            .collect()
    }

    fn posts(&self) -> usize {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count()
    }
}

fn reply(body: &Value) -> &str {
    body["reply"].as_str().unwrap()
}

#[tokio::test]
async fn snapshots_are_listed_taken_and_rolled_back_with_a_confirmation() {
    let s = setup().await;
    s.fake.add_snapshot(
        104,
        FakeSnapshot::new("weekly", "weekly snapshot", 3 * 86_400),
    );
    // A safe write: no question, the task is followed to its end.
    let body = s.say("Snapshot nextcloud before the upgrade", "snap").await;
    assert_eq!(body["intent"], "TakeSnapshot");
    assert_eq!(
        reply(&body),
        "I took a snapshot of nextcloud called before_the_upgrade."
    );
    assert_eq!(body["actions"][0]["decision"], "allowed");
    assert_eq!(body["actions"][0]["action"], "snapshot");
    assert_eq!(body["actions"][0]["task"]["result"], "ok");
    let form = s.fake.last_form("/nodes/agent1/qemu/104/snapshot").unwrap();
    assert_eq!(form["snapname"], "before_the_upgrade");
    assert_eq!(form["description"], "before the upgrade");
    assert!(
        s.fake
            .snapshots(104)
            .iter()
            .any(|snap| snap.name == "before_the_upgrade")
    );

    let body = s.say("List the snapshots of nextcloud", "snap").await;
    assert_eq!(body["intent"], "ListSnapshots");
    assert!(
        reply(&body).starts_with("nextcloud has 2 snapshots: before_the_upgrade from"),
        "{body}"
    );
    assert!(reply(&body).contains("weekly from 3 days ago"), "{body}");

    // Destructive: the question says what is lost, and nothing is sent until "confirm".
    let body = s
        .say("Roll back nextcloud to the last snapshot", "snap")
        .await;
    assert_eq!(body["intent"], "RollbackSnapshot");
    assert_eq!(body["pending_confirmation"], true);
    assert!(
        reply(&body).starts_with("Roll nextcloud back to before_the_upgrade from"),
        "{body}"
    );
    assert!(
        reply(&body).contains("Everything since then is lost"),
        "{body}"
    );
    assert_eq!(s.fake.count("POST /nodes/agent1/qemu/104/snapshot/"), 0);
    let body = s.say("confirm", "snap").await;
    assert_eq!(reply(&body), "nextcloud is back at before_the_upgrade.");
    assert_eq!(body["actions"][0]["task"]["result"], "ok");
    assert_eq!(
        s.fake
            .count("POST /nodes/agent1/qemu/104/snapshot/before_the_upgrade/rollback"),
        1
    );
    // By name, as said.
    let body = s.say("Revert nextcloud to weekly", "other").await;
    assert!(
        reply(&body).starts_with("Roll nextcloud back to weekly from 3 days ago?"),
        "{body}"
    );

    let audit = s.audit_actions();
    let taken = audit.iter().find(|a| a["action"] == "snapshot").unwrap();
    assert_eq!(taken["snapshot"], "before_the_upgrade");
    assert_eq!(taken["decision"], "allowed");
    assert_eq!(taken["outcome"], "ok");
    let rolled: Vec<&Value> = audit.iter().filter(|a| a["action"] == "rollback").collect();
    assert_eq!(rolled[0]["decision"], "needs_confirmation");
    assert_eq!(rolled[1]["decision"], "allowed");
    assert_eq!(rolled[1]["vmid"], 104);
}

#[tokio::test]
async fn bad_snapshot_names_and_missing_snapshots_send_nothing() {
    let s = setup().await;
    // Unicode.
    let body = s.say("Snapshot nextcloud called über", "c").await;
    assert_eq!(body["actions"][0]["decision"], "refused");
    assert!(reply(&body).contains("letters, digits"), "{body}");
    // Over Proxmox's 40 characters.
    let long = "word ".repeat(12);
    let body = s
        .say(&format!("Snapshot nextcloud called {long}"), "c")
        .await;
    assert!(reply(&body).contains("at most 40 characters"), "{body}");
    // A snapshot that does not exist.
    let body = s.say("Roll back nextcloud to the last snapshot", "c").await;
    assert_eq!(reply(&body), "nextcloud has no snapshots to roll back to.");
    s.fake
        .add_snapshot(104, FakeSnapshot::new("weekly", "", 600));
    let body = s.say("Roll back nextcloud to yesterday", "c").await;
    assert_eq!(
        reply(&body),
        "nextcloud has no snapshot called yesterday. Its snapshots are weekly."
    );
    assert_eq!(body["actions"][0]["decision"], "refused");
    assert_eq!(s.posts(), 0, "nothing was sent to Proxmox");
    // Each refusal is in the audit log.
    let audit = s.audit_actions();
    assert_eq!(
        audit.iter().filter(|a| a["decision"] == "refused").count(),
        4
    );

    // A name with spaces (as an LLM tool call or another caller could give it).
    let fake = FakeProxmox::homelab().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config();
    config.audit.path = dir.path().join("audit.jsonl");
    let brain = Brain::new(&config, Some(fake.client())).unwrap();
    let report = brain
        .act(ActionRequest {
            channel: Channel::Http,
            client: "test".into(),
            conversation: Some("c".into()),
            action: Action::Snapshot {
                vmid: 104,
                name: "before upgrade".into(),
                description: String::new(),
            },
            approved: false,
        })
        .await;
    assert_eq!(report.decision, Decision::Refused);
    assert!(report.reply.contains("not ' '"), "{}", report.reply);
    assert!(fake.requests().iter().all(|r| r.method == "GET"));
}

#[tokio::test]
async fn migration_names_the_target_and_the_downtime_and_follows_the_task() {
    let s = setup().await;
    let body = s.say("Move pihole to agent one", "m").await;
    assert_eq!(body["intent"], "MigrateGuest");
    assert_eq!(
        reply(&body),
        "Move pihole to agent1? It's a running container, so it restarts: a short downtime. \
         Say confirm within 30 seconds."
    );
    assert_eq!(s.posts(), 0);
    let body = s.say("yes", "m").await;
    assert_eq!(reply(&body), "pihole is now on agent1.", "{body}");
    assert_eq!(body["actions"][0]["target"], "agent1");
    assert_eq!(body["actions"][0]["task"]["result"], "ok");
    let form = s.fake.last_form("/nodes/pve/lxc/102/migrate").unwrap();
    assert_eq!(form["target"], "agent1");
    assert_eq!(form["restart"], "1");
    assert_eq!(s.fake.guest_node(102).as_deref(), Some("agent1"));

    // A running VM moves live.
    let body = s.say("Migrate the media server to agent1", "m").await;
    assert!(reply(&body).contains("moves live"), "{body}");
    s.say("confirm", "m").await;
    assert_eq!(
        s.fake.last_form("/nodes/pve/qemu/101/migrate").unwrap()["online"],
        "1"
    );

    // The same node, an offline node, an unknown node: refused, nothing sent.
    let posts = s.posts();
    s.fake.set_node_online("pve", false);
    let body = s.say("Move nextcloud to agent1", "m").await;
    assert_eq!(reply(&body), "nextcloud is already on agent1.");
    let body = s.say("Move frigate to pve", "m").await;
    assert!(reply(&body).contains("offline"), "{body}");
    let body = s.say("Move frigate to the toaster", "m").await;
    assert!(reply(&body).starts_with("I don't know a node"), "{body}");
    assert_eq!(s.posts(), posts);
}

#[tokio::test]
async fn node_power_states_the_blast_radius_and_spares_protected_guests() {
    let s = setup().await;
    // agent1 runs nothing yet: the question says so.
    s.fake.set_guest_status(104, "running");
    let body = s.say("Reboot node agent1", "n").await;
    assert_eq!(body["intent"], "RebootNode");
    assert_eq!(
        reply(&body),
        "Reboot agent1? Its 1 running guest goes down with it: nextcloud. Say confirm within 30 \
         seconds."
    );
    let body = s.say("confirm", "n").await;
    assert_eq!(reply(&body), "agent1 is rebooting.");
    assert_eq!(
        s.fake.last_form("/nodes/agent1/status").unwrap()["command"],
        "reboot"
    );

    // pve runs haos: Home Assistant, protected by default, so pve is not rebooted.
    let body = s.say("Reboot pve", "n").await;
    assert_eq!(body["actions"][0]["decision"], "refused");
    assert!(
        reply(&body).starts_with("pve runs haos, which is protected, so I won't reboot pve"),
        "{body}"
    );
    // Stop-all leaves it running.
    let body = s.say("Stop all guests on pve", "n").await;
    assert_eq!(body["intent"], "StopAllGuests");
    assert_eq!(
        reply(&body),
        "Stop all guests on pve? That stops 2 guests: media-server and pihole. haos is \
         protected, so I'll leave it running. Say confirm within 30 seconds."
    );
    let body = s.say("confirm", "n").await;
    assert_eq!(
        reply(&body),
        "Stopped 2 guests on pve: media-server and pihole."
    );
    assert_eq!(
        s.fake.last_form("/nodes/pve/stopall").unwrap()["vms"],
        "101,102"
    );
    assert_eq!(s.fake.guest_status(100).as_deref(), Some("running"));
    assert_eq!(s.fake.guest_status(101).as_deref(), Some("stopped"));
    // Start-all starts the stopped ones, not only those marked "start at boot".
    let body = s.say("Start everything on pve", "n").await;
    assert!(
        reply(&body).starts_with("Start the 2 stopped guests on pve: media-server and pihole?"),
        "{body}"
    );
    s.say("confirm", "n").await;
    let form = s.fake.last_form("/nodes/pve/startall").unwrap();
    assert_eq!(form["vms"], "101,102");
    assert_eq!(form["force"], "1");
    assert_eq!(s.fake.guest_status(102).as_deref(), Some("running"));

    // An offline node: a clear refusal, nothing sent.
    s.fake.set_node_online("agent1", false);
    let posts = s.posts();
    let body = s.say("Shut down node agent1", "other").await;
    assert_eq!(body["actions"][0]["decision"], "refused");
    assert_eq!(
        reply(&body),
        "agent1 is offline, so I can't shut down agent1."
    );
    assert_eq!(s.posts(), posts);
    let audit = s.audit_actions();
    let reboot = audit
        .iter()
        .find(|a| a["action"] == "node_reboot" && a["decision"] == "allowed")
        .unwrap();
    assert_eq!(reboot["node"], "agent1");
}

#[tokio::test]
async fn the_policy_covers_the_new_actions() {
    // Read-only: every write refused, snapshots included.
    let s = setup_with(|c| c.policy.read_only = true).await;
    for text in [
        "Snapshot nextcloud",
        "Move nextcloud to pve",
        "Reboot node agent1",
        "Stop all guests on agent1",
    ] {
        let body = s.say(text, "r").await;
        assert_eq!(body["actions"][0]["decision"], "refused", "{text}");
        assert!(reply(&body).contains("read-only mode"), "{body}");
    }
    assert_eq!(s.posts(), 0);

    // A channel limited to safe writes: a snapshot yes, a migration no.
    let s = setup_with(|c| {
        c.policy.channels.http = jarvis::brain::policy::Tier::SafeWrite;
        c.policy.protected_nodes = vec!["agent1".into()];
    })
    .await;
    let body = s.say("Snapshot nextcloud", "p").await;
    assert_eq!(body["actions"][0]["decision"], "allowed", "{body}");
    let body = s.say("Move nextcloud to pve", "p").await;
    assert!(reply(&body).contains("from the HTTP API"), "{body}");

    // Protected guests are neither rolled back nor moved; a protected node is not rebooted.
    let s = setup_with(|c| {
        c.policy.protected_guests = vec!["nextcloud".into()];
        c.policy.protected_nodes = vec!["agent1".into()];
    })
    .await;
    s.fake
        .add_snapshot(104, FakeSnapshot::new("weekly", "", 60));
    let body = s.say("Roll back nextcloud to weekly", "p").await;
    assert!(
        reply(&body).contains("nextcloud is protected, so I never roll it back"),
        "{body}"
    );
    let body = s.say("Move nextcloud to pve", "p").await;
    assert!(reply(&body).contains("never move it"), "{body}");
    let body = s.say("Reboot node agent1", "p").await;
    assert!(reply(&body).contains("policy.protected_nodes"), "{body}");
    assert_eq!(s.posts(), 0);
}

#[tokio::test]
async fn a_guest_at_home_assistants_address_protects_its_node() {
    let s = setup_with(|c| {
        c.policy.home_assistant_hosts = vec!["192.168.1.50".parse().unwrap()];
    })
    .await;
    s.fake.set_guest_status(103, "running");
    s.fake.set_guest_addresses(103, &["192.168.1.50"]);
    let body = s.say("Shut down node agent1", "h").await;
    assert!(
        reply(&body).starts_with("agent1 runs frigate, which is protected"),
        "{body}"
    );
    assert_eq!(s.posts(), 0);
}

#[tokio::test]
async fn a_migration_over_wyoming_is_confirmed_in_the_same_conversation() {
    let s = setup().await;
    let mut client = common::client(s.app.wyoming_addr).await;
    let context: serde_json::Map<String, Value> =
        serde_json::from_value(json!({"conversation_id": "wy-1"})).unwrap();
    for (text, expected) in [
        (
            "Move nextcloud to pve",
            "Move nextcloud to pve? It's a stopped VM",
        ),
        ("Confirm", "nextcloud is now on pve."),
    ] {
        client
            .send(wyoming::asr::Transcript {
                text: text.into(),
                context: Some(context.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        match common::recv(&mut client).await {
            Some(wyoming::Event::Handled(h)) => {
                let said = h.text.unwrap_or_default();
                assert!(said.starts_with(expected), "{said}");
            }
            other => panic!("expected handled, got {other:?}"),
        }
    }
    assert_eq!(s.fake.guest_node(104).as_deref(), Some("pve"));
    s.app.shutdown.cancel();
}
