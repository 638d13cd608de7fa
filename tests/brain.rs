//! The homelab brain against the fake Proxmox API: local intents answered from live data,
//! actions under the safety policy with confirmations, and the audit log.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::fake_proxmox::{FakeGuest, FakeProxmox, TOKEN_SECRET};
use jarvis::brain::{Brain, Channel, Command, Decision, Response, Source};
use jarvis::config::Config;
use jarvis::proxmox::TaskResult;

struct Setup {
    fake: FakeProxmox,
    brain: Brain,
    audit: tempfile::TempDir,
}

fn config(audit: &tempfile::TempDir) -> Config {
    let mut config = common::test_config();
    config.audit.path = audit.path().join("audit.jsonl");
    config
}

async fn setup_with(edit: impl FnOnce(&mut Config)) -> Setup {
    let fake = FakeProxmox::homelab().await;
    let audit = tempfile::tempdir().unwrap();
    let mut config = config(&audit);
    edit(&mut config);
    let brain = Brain::new(&config, Some(fake.client())).unwrap();
    Setup { fake, brain, audit }
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

impl Setup {
    async fn say(&self, text: &str, conversation: &str) -> Response {
        self.brain
            .command(Command {
                text: text.into(),
                channel: Channel::Voice,
                client: "10.0.0.5".into(),
                conversation: Some(conversation.into()),
                approval: None,
            })
            .await
    }

    fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.audit.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn questions_are_answered_from_live_data() {
    let s = setup().await;
    // tiny.en hears "pve" as "PBE".
    let r = s.say("What's the status of node PBE?", "c").await;
    assert_eq!(r.intent.as_deref(), Some("Status"));
    assert!(r.reply.starts_with("pve is online"), "{}", r.reply);
    assert!(r.reply.contains("12 pending updates"), "{}", r.reply);
    let r = s.say("How much memory is haos using?", "c").await;
    assert!(r.reply.starts_with("haos is using"), "{}", r.reply);
    assert!(r.reply.contains("of memory"), "{}", r.reply);
    let r = s.say("How is the cluster doing?", "c").await;
    assert_eq!(r.intent.as_deref(), Some("ClusterOverview"));
    assert!(r.reply.contains("All 2 nodes are online"), "{}", r.reply);
    assert!(
        r.reply.contains("3 guests running and 2 stopped"),
        "{}",
        r.reply
    );
    let r = s.say("Which containers are running?", "c").await;
    assert_eq!(r.reply, "1 container running: pihole.");
    let r = s.say("What's running on agent one?", "c").await;
    assert_eq!(r.reply, "There are no running guests on agent1.");
    let r = s.say("Does agent one have updates?", "c").await;
    assert_eq!(r.reply, "agent1 has 3 pending updates.");
    let r = s.say("Is pi hole running?", "c").await;
    assert_eq!(r.reply, "Yes, pihole is running on pve.");
    let r = s.say("How full is the storage?", "c").await;
    assert_eq!(r.intent.as_deref(), Some("StorageUsage"));
    assert!(r.reply.contains("full with"), "{}", r.reply);
    let r = s.say("Ping", "c").await;
    assert_eq!(r.reply, "I'm here.");
    let r = s.say("What can you do?", "c").await;
    assert!(r.reply.contains("start, shut down, stop or reboot"));
    // One inventory fetch serves every question (15 s cache).
    assert_eq!(s.fake.count("GET /cluster/resources"), 1);
}

#[tokio::test]
async fn a_safe_action_runs_and_reports_the_task_outcome() {
    let s = setup().await;
    let r = s.say("Start VM one oh four", "c").await;
    assert_eq!(r.intent.as_deref(), Some("StartGuest"));
    assert_eq!(
        r.slots.get("guest").map(String::as_str),
        Some("vm one oh four")
    );
    assert_eq!(r.reply, "nextcloud has started.");
    let action = &r.actions[0];
    assert_eq!(action.decision, Decision::Allowed);
    let task = action.task.as_ref().unwrap();
    assert_eq!(task.result, TaskResult::Ok);
    assert!(task.upid.starts_with("UPID:agent1:"), "{}", task.upid);
    assert_eq!(s.fake.count("POST /nodes/agent1/qemu/104/status/start"), 1);
    assert_eq!(s.fake.guest_status(104).as_deref(), Some("running"));
    // Starting it again changes nothing and sends nothing.
    let r = s.say("Start nextcloud", "c").await;
    assert_eq!(r.reply, "nextcloud is already running.");
    assert_eq!(s.fake.count("POST /nodes/agent1/qemu/104/status/start"), 1);
}

#[tokio::test]
async fn destructive_actions_wait_for_a_confirmation_in_the_same_conversation() {
    let s = setup_with(|c| c.policy.confirm_timeout_secs = 1).await;
    let r = s.say("Reboot the media server", "kitchen").await;
    assert_eq!(r.actions[0].decision, Decision::NeedsConfirmation);
    assert!(r.pending_confirmation);
    assert!(
        r.reply.starts_with("Reboot media-server on pve?"),
        "{}",
        r.reply
    );
    assert_eq!(s.fake.count("POST /nodes/pve/qemu/101/status/reboot"), 0);
    // Another conversation cannot confirm it.
    let r = s.say("Confirm", "office").await;
    assert_eq!(r.reply, "There's nothing waiting for a confirmation.");
    assert_eq!(s.fake.count("POST /nodes/pve/qemu/101/status/reboot"), 0);
    // The same one can.
    let r = s.say("Yes, do it", "kitchen").await;
    assert_eq!(r.reply, "media-server is rebooting.");
    assert_eq!(r.actions[0].decision, Decision::Allowed);
    assert!(!r.pending_confirmation);
    assert_eq!(s.fake.count("POST /nodes/pve/qemu/101/status/reboot"), 1);

    // Too late: nothing happens.
    let r = s.say("Shut down pihole", "kitchen").await;
    assert!(r.pending_confirmation);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = s.say("confirm", "kitchen").await;
    assert!(
        r.reply.starts_with("That confirmation came too late"),
        "{}",
        r.reply
    );
    assert_eq!(s.fake.count("POST /nodes/pve/lxc/102/status/shutdown"), 0);

    // Cancelled: nothing happens, and a later confirm finds nothing.
    s.say("Stop the media server", "kitchen").await;
    let r = s.say("Never mind", "kitchen").await;
    assert_eq!(r.reply, "Okay, I won't stop media-server.");
    let r = s.say("confirm", "kitchen").await;
    assert_eq!(r.reply, "There's nothing waiting for a confirmation.");
    assert_eq!(s.fake.count("POST /nodes/pve/qemu/101/status/stop"), 0);
}

#[tokio::test]
async fn the_policy_refuses_read_only_protected_forbidden_and_unpermitted_actions() {
    let s = setup_with(|c| c.policy.read_only = true).await;
    let r = s.say("Start nextcloud", "c").await;
    assert_eq!(r.actions[0].decision, Decision::Refused);
    assert!(r.reply.contains("read-only mode"), "{}", r.reply);

    let s = setup_with(|c| c.policy.protected_guests = vec!["haos".into()]).await;
    let r = s.say("Reboot haos", "c").await;
    assert_eq!(r.actions[0].decision, Decision::Refused);
    assert!(r.reply.contains("haos is protected"), "{}", r.reply);
    let r = s.say("Delete VM 101", "c").await;
    assert_eq!(r.intent.as_deref(), Some("Forbidden"));
    assert!(r.reply.starts_with("I never delete"), "{}", r.reply);
    let r = s.say("Run a shell command on pve", "c").await;
    assert!(
        r.reply.starts_with("I never run shell commands"),
        "{}",
        r.reply
    );

    let s = setup_with(|c| {
        c.policy.channels.voice = jarvis::brain::policy::Tier::Read;
    })
    .await;
    let r = s.say("Start nextcloud", "c").await;
    assert!(r.reply.contains("from voice"), "{}", r.reply);
    // No write reached Proxmox in any of these.
    assert!(s.fake.requests().iter().all(|r| r.method == "GET"));
}

#[tokio::test]
async fn unknown_ambiguous_and_out_of_range_names_are_answered_not_guessed() {
    let s = setup().await;
    s.fake
        .add_guest(FakeGuest::qemu(110, "backup-server-1", "pve"));
    s.fake
        .add_guest(FakeGuest::qemu(111, "backup-server-2", "pve"));
    let r = s.say("Start the toaster", "c").await;
    assert!(r.reply.starts_with("I don't know"), "{}", r.reply);
    let r = s.say("Start next clown", "c").await;
    assert!(r.reply.contains("Did you mean nextcloud?"), "{}", r.reply);
    let r = s.say("Start the backup server", "c").await;
    assert!(r.reply.starts_with("Which one do you mean"), "{}", r.reply);
    assert!(r.reply.contains("backup-server-1") && r.reply.contains("backup-server-2"));
    let r = s.say("Start VM five", "c").await;
    assert!(r.reply.contains("isn't a valid VM ID"), "{}", r.reply);
    let r = s.say("Start VM nine nine nine", "c").await;
    assert_eq!(r.reply, "There's no guest with ID 999.");
    // A node is rebooted as a node (tests/node_actions.rs); pve runs haos, Home Assistant.
    let r = s.say("Reboot node pve", "c").await;
    assert!(r.reply.starts_with("pve runs haos"), "{}", r.reply);
    // Nothing in the cluster sounds like it: not meant for Jarvis, so not handled (HA then
    // reports it; with an LLM configured, the LLM gets it).
    let r = s.say("Turn on the kitchen lights", "c").await;
    assert!(!r.handled, "{}", r.reply);
    assert_eq!(r.source, Source::None);
    let r = s.say("Make me a sandwich", "c").await;
    assert!(!r.handled);
    assert_eq!(r.source, Source::None);
    assert!(s.fake.requests().iter().all(|r| r.method == "GET"));
}

#[tokio::test]
async fn a_failed_task_is_reported_with_proxmox_reason_and_audited() {
    let s = setup().await;
    s.fake.fail_next_task("VM is locked (backup)");
    let r = s.say("Start nextcloud", "c").await;
    assert_eq!(
        r.reply,
        "Proxmox couldn't start nextcloud: VM is locked (backup)."
    );
    let task = r.actions[0].task.as_ref().unwrap();
    assert_eq!(
        task.result,
        TaskResult::Failed {
            message: "VM is locked (backup)".into()
        }
    );
    let lines = s.audit_lines();
    let action = lines.iter().find(|l| l["kind"] == "action").unwrap();
    assert_eq!(action["vmid"], 104);
    assert_eq!(action["action"], "start");
    assert_eq!(action["decision"], "allowed");
    assert_eq!(action["outcome"], "failed: VM is locked (backup)");
    assert!(action["task"].as_str().unwrap().starts_with("UPID:"));
    let command = lines.iter().find(|l| l["kind"] == "command").unwrap();
    assert_eq!(command["text"], "Start nextcloud");
    assert_eq!(command["intent"], "StartGuest");
    assert_eq!(command["channel"], "voice");
    assert_eq!(command["conversation"], "c");
    // The action line is written before the command's (it finished first), and both are on
    // disk before the reply came back.
    assert_eq!(lines.len(), 2);
    let raw = std::fs::read_to_string(s.audit.path().join("audit.jsonl")).unwrap();
    assert!(!raw.contains(TOKEN_SECRET));
}

#[tokio::test]
async fn proxmox_errors_become_short_spoken_answers() {
    let s = setup().await;
    s.fake.set_token_secret("another-secret");
    let r = s.say("How is the cluster doing?", "c").await;
    assert!(r.handled);
    assert!(!r.reply.is_empty() && !r.reply.contains("another-secret"));
    assert!(!r.reply.contains(TOKEN_SECRET));
    assert!(!r.reply.contains("pve is online"));

    // Proxmox not configured at all.
    let audit = tempfile::tempdir().unwrap();
    let brain = Brain::new(&config(&audit), None).unwrap();
    let r = brain
        .command(Command {
            text: "status of node pve".into(),
            channel: Channel::Http,
            client: "x".into(),
            conversation: None,
            approval: None,
        })
        .await;
    assert!(
        r.reply.starts_with("Proxmox isn't set up yet"),
        "{}",
        r.reply
    );
    assert!(r.conversation_id.starts_with("jarvis-"));
}

#[tokio::test]
async fn an_unwritable_audit_log_blocks_actions_but_not_questions() {
    let fake = FakeProxmox::homelab().await;
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"").unwrap();
    let mut config = common::test_config();
    config.audit.path = blocker.join("audit.jsonl");
    let brain = Brain::new(&config, Some(fake.client())).unwrap();
    let say = |text: &str| Command {
        text: text.into(),
        channel: Channel::Voice,
        client: "x".into(),
        conversation: Some("c".into()),
        approval: None,
    };
    let r = brain.command(say("Is pihole running?")).await;
    assert_eq!(r.reply, "Yes, pihole is running on pve.");
    let r = brain.command(say("Start nextcloud")).await;
    assert_eq!(r.actions[0].decision, Decision::Refused);
    assert!(r.reply.contains("audit log"), "{}", r.reply);
    assert_eq!(fake.count("POST /nodes/agent1/qemu/104/status/start"), 0);
}

#[tokio::test]
async fn the_http_approval_keyword_confirms_at_once() {
    let s = setup_with(|c| c.policy.approval_keyword = jarvis::config::Secret::new("open-sesame"))
        .await;
    let command = |approval: Option<&str>| Command {
        text: "reboot pihole".into(),
        channel: Channel::Http,
        client: "10.0.0.9".into(),
        conversation: None,
        approval: approval.map(str::to_owned),
    };
    let r = s.brain.command(command(Some("wrong"))).await;
    assert_eq!(r.actions[0].decision, Decision::NeedsConfirmation);
    let r = s.brain.command(command(Some("open-sesame"))).await;
    assert_eq!(r.actions[0].decision, Decision::Allowed);
    assert_eq!(r.reply, "pihole is rebooting.");
    assert_eq!(s.fake.count("POST /nodes/pve/lxc/102/status/reboot"), 1);
    let raw = std::fs::read_to_string(s.audit.path().join("audit.jsonl")).unwrap();
    assert!(!raw.contains("open-sesame"), "the keyword is a secret");
}

#[tokio::test]
async fn actions_are_broadcast_for_the_mqtt_event_entity() {
    let s = setup().await;
    let mut activity = s.brain.subscribe();
    s.say("Start nextcloud", "c").await;
    let first = activity.recv().await.unwrap();
    let second = activity.recv().await.unwrap();
    let first = serde_json::to_value(&first).unwrap();
    let second = serde_json::to_value(&second).unwrap();
    assert_eq!(first["event_type"], "action");
    assert_eq!(first["decision"], "allowed");
    assert_eq!(second["event_type"], "command");
    assert_eq!(second["reply"], "nextcloud has started.");
}

#[tokio::test]
async fn the_cluster_names_become_speech_recognition_vocabulary() {
    let s = setup().await;
    assert!(s.brain.vocabulary().is_empty(), "nothing fetched yet");
    s.say("How is the cluster doing?", "c").await;
    let names = s.brain.vocabulary();
    for name in [
        "pve",
        "agent1",
        "haos",
        "media-server",
        "pihole",
        "local-lvm",
        "nas",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n == "debian-template"),
        "templates are not said"
    );
    // Whisper's prompt takes the first names that fit: the nodes and storages, whole kinds of a
    // few names each, come before the guests, of which a large cluster has a thousand.
    let at = |name: &str| names.iter().position(|n| n == name).unwrap();
    assert!(at("agent1") < at("haos") && at("local-lvm") < at("haos") && at("nas") < at("haos"));
    // The same names guide decoding, in the brain's sentences: the grammar is built in the
    // background, so the look-up that finds the names new starts the build and answers with none.
    assert!(s.brain.speech_grammar().is_none(), "nothing built before");
    let grammar = grammar_when_built(&s.brain, |_| true).await;
    assert!(grammar.accepts("What is the status of node pve?"));
    assert!(grammar.accepts("Start media server."));
    assert!(
        !grammar.accepts("Start debian-template."),
        "templates are not said"
    );
}

/// The brain's speech grammar once one is there that `wanted` accepts (within 10 s).
async fn grammar_when_built(
    brain: &Brain,
    wanted: impl Fn(&jarvis::stt::grammar::SpeechGrammar) -> bool,
) -> std::sync::Arc<jarvis::stt::grammar::SpeechGrammar> {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(grammar) = brain.speech_grammar().filter(|g| wanted(g)) {
            return grammar;
        }
        assert!(
            std::time::Instant::now() < until,
            "no such grammar within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn new_names_rebuild_the_grammar_in_the_background_while_the_old_one_answers() {
    let s = setup().await;
    s.say("How is the cluster doing?", "c").await;
    let before = grammar_when_built(&s.brain, |_| true).await;
    assert!(!before.accepts("Start gitea."));
    // Built once: the same snapshot and the same names give the same grammar.
    let again = s.brain.speech_grammar().unwrap();
    assert!(std::sync::Arc::ptr_eq(&before, &again));

    s.fake.add_guest(FakeGuest::lxc(150, "gitea", "pve"));
    s.brain
        .proxmox()
        .unwrap()
        .refresh_inventory()
        .await
        .unwrap();
    // The look-up that sees the new name answers at once with the grammar it has.
    let meanwhile = s.brain.speech_grammar().unwrap();
    assert!(std::sync::Arc::ptr_eq(&before, &meanwhile));
    let after = grammar_when_built(&s.brain, |g| g.accepts("Start gitea.")).await;
    assert!(after.accepts("What is the status of node pve?"));
    assert!(s.brain.speech_grammar().unwrap().accepts("Start gitea."));
}

#[tokio::test]
async fn the_grammar_upkeep_builds_for_each_new_inventory() {
    let s = setup().await;
    let brain = std::sync::Arc::new(s.brain);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let upkeep = brain
        .spawn_grammar_upkeep(shutdown.clone())
        .expect("Proxmox is configured");
    // Built for each new snapshot without a speech request asking for it.
    let built = |wanted: &'static str| {
        let brain = std::sync::Arc::clone(&brain);
        async move {
            let until = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                if brain
                    .last_speech_grammar()
                    .is_some_and(|g| g.accepts(wanted))
                {
                    return;
                }
                assert!(
                    std::time::Instant::now() < until,
                    "{wanted:?}: not within 10 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    assert!(brain.last_speech_grammar().is_none());
    brain.proxmox().unwrap().inventory().await.unwrap();
    built("Start media server.").await;
    s.fake.add_guest(FakeGuest::lxc(150, "gitea", "pve"));
    brain.proxmox().unwrap().refresh_inventory().await.unwrap();
    built("Start gitea.").await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), upkeep)
        .await
        .expect("the upkeep ends on shutdown")
        .unwrap();
}

#[tokio::test]
async fn the_endpointer_and_the_transcript_hear_the_cluster_names() {
    use jarvis::stt::{Completeness, Understanding};

    let s = setup().await;
    // Before any inventory: only the words decide, and the transcript is left alone.
    assert_eq!(
        s.brain.completeness("what is the status of"),
        Completeness::Incomplete
    );
    assert_eq!(
        s.brain.completeness("what is the status of node pve"),
        Completeness::Sentence,
        "no command is sure before the names are known"
    );
    assert_eq!(
        s.brain.write_names("What is the status of node P V E?"),
        "What is the status of node P V E?"
    );
    s.say("How is the cluster doing?", "c").await;
    for (said, kind) in [
        ("what is the status of", Completeness::Incomplete),
        ("what is the status of node pve", Completeness::Command),
        ("what is the status of media", Completeness::Incomplete),
        ("Turn on the kitchen lights.", Completeness::Sentence),
    ] {
        assert_eq!(s.brain.completeness(said), kind, "{said}");
    }
    assert_eq!(
        s.brain.write_names("What is the status of node P V E?"),
        "What is the status of node pve?"
    );
    assert_eq!(
        s.brain.write_names("What is the status of node pbe?"),
        "What is the status of node pve?"
    );
    assert_eq!(
        s.brain.write_names("Reboot the media server on agent one."),
        "Reboot the media-server on agent1."
    );
}

#[tokio::test]
async fn which_one_is_answered_by_position_number_or_name_in_the_same_conversation() {
    let s = setup_with(|c| c.policy.confirm_timeout_secs = 5).await;
    s.fake
        .add_guest(FakeGuest::qemu(110, "backup-server-1", "pve").running());
    s.fake
        .add_guest(FakeGuest::qemu(111, "backup-server-2", "agent1").running());
    for (answer, want) in [
        (
            "The second one.",
            "backup-server-2, VM 111 on agent1, is running",
        ),
        (
            "the first one",
            "backup-server-1, VM 110 on pve, is running",
        ),
        (
            "Number two.",
            "backup-server-2, VM 111 on agent1, is running",
        ),
        (
            "Backup server 1.",
            "backup-server-1, VM 110 on pve, is running",
        ),
        ("111", "backup-server-2, VM 111 on agent1, is running"),
    ] {
        let r = s.say("What's the status of the backup server?", "c").await;
        assert_eq!(
            r.reply, "Which one do you mean: backup-server-1 or backup-server-2?",
            "{answer}"
        );
        let r = s.say(answer, "c").await;
        assert_eq!(r.intent.as_deref(), Some("Status"), "{answer}: {}", r.reply);
        assert!(r.reply.starts_with(want), "{answer}: {}", r.reply);
        // Answered: a second "the second one" has nothing to choose from.
        let r = s.say("the second one", "c").await;
        assert_eq!(
            r.reply, "I didn't ask you to choose anything. Ask me again in full.",
            "{answer}"
        );
    }

    // Another conversation did not hear the question.
    s.say("What's the status of the backup server?", "c").await;
    let r = s.say("the second one", "office").await;
    assert_eq!(
        r.reply,
        "I didn't ask you to choose anything. Ask me again in full."
    );
    // An option that wasn't offered is said to be one.
    let r = s.say("the fifth one", "c").await;
    assert!(r.reply.starts_with("I only named 2 options"), "{}", r.reply);
    // A new question passes over the old one.
    let r = s.say("How is the cluster doing?", "c").await;
    assert_eq!(r.intent.as_deref(), Some("ClusterOverview"));
    let r = s.say("the second one", "c").await;
    assert!(r.reply.starts_with("I didn't ask you"), "{}", r.reply);

    // An action: the choice still goes through the policy and its confirmation.
    let r = s.say("Reboot the backup server", "c").await;
    assert!(r.reply.starts_with("Which one do you mean"), "{}", r.reply);
    let r = s.say("the last one", "c").await;
    assert_eq!(r.actions[0].decision, Decision::NeedsConfirmation);
    assert!(r.reply.starts_with("Reboot backup-server-2"), "{}", r.reply);
    assert_eq!(s.fake.count("POST /nodes/agent1/qemu/111/status/reboot"), 0);
    let r = s.say("yes", "c").await;
    assert_eq!(r.actions[0].decision, Decision::Allowed, "{}", r.reply);
    assert_eq!(s.fake.count("POST /nodes/agent1/qemu/111/status/reboot"), 1);
    let audited: Vec<_> = s
        .audit_lines()
        .into_iter()
        .filter(|l| l["kind"] == "action" && l["vmid"] == 111)
        .collect();
    assert_eq!(audited.len(), 2, "asked, then confirmed: {audited:?}");

    // Backups: the same question, answered for the one chosen.
    let r = s
        .say("When was the backup server last backed up?", "c")
        .await;
    assert!(r.reply.starts_with("Which one do you mean"), "{}", r.reply);
    let r = s.say("the first one", "c").await;
    assert_eq!(r.intent.as_deref(), Some("LastBackup"), "{}", r.reply);
    assert!(r.reply.contains("backup-server-1"), "{}", r.reply);
}

#[tokio::test]
async fn and_nextcloud_asks_the_last_question_about_something_else() {
    let s = setup().await;
    let r = s.say("How much memory is haos using?", "c").await;
    assert!(r.reply.starts_with("haos is using"), "{}", r.reply);
    let r = s.say("And media server?", "c").await;
    assert_eq!(r.intent.as_deref(), Some("Status"));
    assert_eq!(r.slots.get("aspect").map(String::as_str), Some("memory"));
    assert!(r.reply.starts_with("media-server is using"), "{}", r.reply);
    let r = s.say("What about node agent one?", "c").await;
    assert!(r.reply.starts_with("agent1 is using"), "{}", r.reply);
    // "And" before a whole command: that command.
    let r = s.say("And how is the cluster doing?", "c").await;
    assert_eq!(r.intent.as_deref(), Some("ClusterOverview"));
    // Which guests run on a node, then another node.
    let r = s.say("What's running on agent1?", "c").await;
    assert_eq!(r.intent.as_deref(), Some("ListGuests"));
    let r = s.say("And on pve?", "c").await;
    assert_eq!(r.intent.as_deref(), Some("ListGuests"), "{}", r.reply);
    assert!(r.reply.contains("haos"), "{}", r.reply);
    // Out of the blue: how it is.
    let r = s.say("And nextcloud?", "fresh").await;
    assert_eq!(r.intent.as_deref(), Some("Status"));
    assert!(
        r.reply
            .starts_with("nextcloud, VM 104 on agent1, is stopped"),
        "{}",
        r.reply
    );
}

#[tokio::test]
async fn yes_takes_up_a_suggestion_or_an_offer() {
    let s = setup().await;
    let r = s.say("What's the status of next clown?", "c").await;
    assert!(r.reply.ends_with("Did you mean nextcloud?"), "{}", r.reply);
    let r = s.say("Yes", "c").await;
    assert_eq!(r.intent.as_deref(), Some("Status"));
    assert!(
        r.reply
            .starts_with("nextcloud, VM 104 on agent1, is stopped"),
        "{}",
        r.reply
    );

    let r = s.say("What's the status of next clown?", "c").await;
    assert!(r.reply.ends_with("Did you mean nextcloud?"), "{}", r.reply);
    let r = s.say("No", "c").await;
    assert_eq!(r.reply, "Okay.");
    let r = s.say("Yes", "c").await;
    assert_eq!(r.reply, "There's nothing waiting for a confirmation.");

    // Nothing to reboot, but an offer to start it: "yes, do it" starts it.
    let r = s.say("Reboot nextcloud", "c").await;
    assert_eq!(
        r.reply,
        "nextcloud isn't running, so there's nothing to reboot. Shall I start it?"
    );
    assert_eq!(s.fake.count("POST /nodes/agent1/qemu/104/status/start"), 0);
    let r = s.say("Yes, do it.", "c").await;
    assert_eq!(r.intent.as_deref(), Some("StartGuest"), "{}", r.reply);
    assert_eq!(r.actions[0].decision, Decision::Allowed, "{}", r.reply);
    assert_eq!(s.fake.count("POST /nodes/agent1/qemu/104/status/start"), 1);
    assert_eq!(s.fake.guest_status(104).as_deref(), Some("running"));
}

#[tokio::test]
async fn a_follow_up_after_the_conversation_expired_says_so() {
    let s = setup_with(|c| c.policy.followup_timeout_secs = 1).await;
    s.fake
        .add_guest(FakeGuest::qemu(110, "backup-server-1", "pve"));
    s.fake
        .add_guest(FakeGuest::qemu(111, "backup-server-2", "pve"));
    let r = s.say("What's the status of the backup server?", "c").await;
    assert!(r.reply.starts_with("Which one"), "{}", r.reply);
    s.say("How is pve?", "d").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for (text, conversation) in [("The second one.", "c"), ("And agent1?", "d")] {
        let r = s.say(text, conversation).await;
        assert_eq!(
            r.reply,
            "That conversation has expired, so I've lost track of what we were talking about. \
             Ask me again in full.",
            "{text}"
        );
    }
    // A whole question still works.
    let r = s.say("How is agent1?", "d").await;
    assert!(r.reply.starts_with("agent1 is online"), "{}", r.reply);
}

#[tokio::test]
async fn a_hanging_proxmox_is_answered_within_the_answer_timeout_not_timeout_times_nodes() {
    use jarvis::proxmox::Proxmox;

    let fake = FakeProxmox::homelab().await;
    let audit = tempfile::tempdir().unwrap();
    let mut config = config(&audit);
    config.proxmox.answer_timeout_ms = 500;
    // Two nodes (the same fake twice), each allowed 10 s: 20 s before the client gives up.
    let url = fake.config().urls[0].to_string();
    let timings = jarvis::proxmox::Timings {
        timeout: Duration::from_secs(10),
        ..common::fake_proxmox::fast_timings()
    };
    let proxmox =
        Proxmox::with_timings(&common::fake_proxmox::config_for(&[&url, &url]), timings).unwrap();
    let brain = Brain::new(&config, Some(proxmox)).unwrap();
    fake.delay("GET /cluster/resources", Duration::from_secs(60));
    let say = |text: &'static str| {
        brain.command(Command {
            text: text.into(),
            channel: Channel::Http,
            client: "test".into(),
            conversation: Some("c".into()),
            approval: None,
        })
    };
    for text in [
        "How is the cluster doing?",
        "Is nextcloud running?",
        "Start nextcloud",
    ] {
        let started = std::time::Instant::now();
        let r = say(text).await;
        assert!(
            r.reply.starts_with("Proxmox isn't answering right now"),
            "{text}: {}",
            r.reply
        );
        // Far below the 20 s the client would take: the deadline, not the timeouts.
        assert!(started.elapsed() < Duration::from_secs(5), "{text}");
    }
    assert_eq!(fake.count("POST "), 0, "nothing was started blind");
    // Once Proxmox answers again, so does Jarvis.
    fake.heal();
    let r = say("Is nextcloud running?").await;
    assert_eq!(r.reply, "No, nextcloud is stopped.");
}
