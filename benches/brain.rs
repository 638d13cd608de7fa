//! The homelab brain's speed. Prints figures; asserts nothing about time. Run with
//! `cargo bench --bench brain` (or `scripts/bench.sh brain`).
//!
//! 1. Intent recognition (sentence templates + fuzzy name resolution) over an inventory of 10
//!    nodes and 1000 guests: p50/p99/max per utterance.
//! 2. A whole command through the brain with a warm Proxmox cache (recognize, resolve, answer,
//!    audit line written and flushed).
//! 3. A status question over Wyoming (`transcript` → `handled`) end to end, warm cache, against
//!    the in-process fake Proxmox API.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs,
    dead_code,
    unreachable_pub
)]

#[allow(dead_code)]
mod common;
#[path = "../tests/common/fake_proxmox.rs"]
mod fake_proxmox;

use std::time::{Duration, Instant};

use fake_proxmox::{FakeCluster, FakeGuest, FakeNode, FakeProxmox, FakeStorage};
use jarvis::brain::intents::{Intent, Recognizer};
use jarvis::brain::names::{Directory, Kinds};
use jarvis::brain::{Brain, Channel, Command};
use jarvis::proxmox::{Guest, GuestKind, GuestState, Inventory, Node, NodeState, Storage};
use serde_json::json;
use wyoming::Client;
use wyoming::asr::Transcript;

const NODES: usize = 10;
const GUESTS: usize = 1000;
const WORDS: [&str; 20] = [
    "media",
    "server",
    "backup",
    "web",
    "db",
    "proxy",
    "dns",
    "mail",
    "git",
    "ci",
    "cache",
    "vault",
    "grafana",
    "prometheus",
    "home",
    "files",
    "photo",
    "print",
    "game",
    "build",
];

fn guest_name(i: usize) -> String {
    format!(
        "{}-{}-{}",
        WORDS[i % WORDS.len()],
        WORDS[(i / WORDS.len()) % WORDS.len()],
        i
    )
}

fn inventory() -> Inventory {
    let nodes = (0..NODES)
        .map(|n| Node {
            name: format!("pve{n}"),
            status: NodeState::Online,
            cpu: Some(0.1),
            maxcpu: Some(16),
            mem: Some(20 << 30),
            maxmem: Some(64 << 30),
            disk: Some(10 << 30),
            maxdisk: Some(100 << 30),
            uptime: Some(86_400),
        })
        .collect();
    let guests = (0..GUESTS)
        .map(|i| Guest {
            vmid: 100 + i as u32,
            kind: if i % 3 == 0 {
                GuestKind::Lxc
            } else {
                GuestKind::Qemu
            },
            node: format!("pve{}", i % NODES),
            name: guest_name(i),
            status: if i % 4 == 0 {
                GuestState::Stopped
            } else {
                GuestState::Running
            },
            template: false,
            cpu: Some(0.02),
            maxcpu: Some(2),
            mem: Some(1 << 30),
            maxmem: Some(4 << 30),
            disk: None,
            maxdisk: Some(32 << 30),
            netin: Some(0),
            netout: Some(0),
            diskread: Some(0),
            diskwrite: Some(0),
            uptime: Some(3600),
            tags: Vec::new(),
            lock: None,
            pool: None,
        })
        .collect();
    let storages = (0..NODES)
        .map(|n| Storage {
            storage: "local-lvm".into(),
            node: format!("pve{n}"),
            plugintype: Some("lvmthin".into()),
            available: true,
            shared: false,
            content: vec!["images".into()],
            used: Some(50 << 30),
            total: Some(200 << 30),
        })
        .collect();
    Inventory {
        nodes,
        guests,
        storages,
    }
}

fn utterances() -> Vec<String> {
    let mut u = vec![
        "What's the status of node pve three?".to_owned(),
        "How much memory is pve seven using?".into(),
        "How is the cluster doing?".into(),
        "Which VMs are running on pve two?".into(),
        "Start VM one oh one.".into(),
        "Start VM nine hundred ninety nine.".into(),
        "How full is local-lvm?".into(),
        "What can you do?".into(),
        "Turn on the kitchen lights.".into(),
        "Make me a sandwich.".into(),
        "Are my disks healthy?".into(),
        "How are the disks on pve four?".into(),
        "What's the wear on pve two's SSDs?".into(),
        "How is rpool?".into(),
    ];
    for i in [5usize, 250, 512, 999] {
        let name = guest_name(i).replace('-', " ");
        u.push(format!("Reboot the {name}."));
        u.push(format!("Is {name} running?"));
        // Node power, snapshots and migration (issue #15).
        u.push(format!("Snapshot the {name} before the upgrade."));
        u.push(format!("Roll back the {name} to the last snapshot."));
        u.push(format!("Move the {name} to pve three."));
    }
    u.push("Reboot node pve four.".into());
    u.push("Stop all guests on pve two.".into());
    u
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{name:<58} n={:<6} p50 {:>8.1} µs  p99 {:>8.1} µs  max {:>8.1} µs",
        times.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        times[times.len() - 1].as_secs_f64() * 1e6,
    );
}

fn recognition() {
    let recognizer = Recognizer::new().unwrap();
    let inventory = inventory();
    let started = Instant::now();
    let directory = Directory::new(&inventory);
    println!(
        "name index for {NODES} nodes + {GUESTS} guests built in {:.2} ms; {} template expansions",
        started.elapsed().as_secs_f64() * 1e3,
        recognizer.expansions()
    );
    let utterances = utterances();
    let mut times = Vec::new();
    for _ in 0..200 {
        for text in &utterances {
            let t = Instant::now();
            if let Some(r) = recognizer.recognize(text) {
                let words = match &r.intent {
                    Intent::Status { target, .. } => Some((target, Kinds::ANY)),
                    Intent::Action { guest, .. }
                    | Intent::TakeSnapshot { guest, .. }
                    | Intent::Rollback { guest, .. }
                    | Intent::Migrate { guest, .. } => Some((guest, Kinds::ANY)),
                    Intent::NodePower { node, .. } => Some((node, Kinds::NODES)),
                    Intent::ListGuests { node: Some(n), .. } => Some((n, Kinds::NODES)),
                    Intent::Storage { target: Some(t) } => Some((t, Kinds::ANY)),
                    _ => None,
                };
                if let Some((words, kinds)) = words {
                    std::hint::black_box(directory.resolve(words, kinds));
                }
            }
            times.push(t.elapsed());
        }
    }
    report("intent recognition + name resolution (1000 guests)", times);
}

fn big_cluster() -> FakeCluster {
    let mut cluster = FakeCluster::homelab();
    cluster.nodes = (0..NODES)
        .map(|n| FakeNode::new(&format!("pve{n}"), &format!("10.0.0.{}", n + 1)))
        .collect();
    cluster.guests = (0..GUESTS)
        .map(|i| {
            let node = format!("pve{}", i % NODES);
            let g = if i % 3 == 0 {
                FakeGuest::lxc(100 + i as u32, &guest_name(i), &node)
            } else {
                FakeGuest::qemu(100 + i as u32, &guest_name(i), &node)
            };
            if i % 4 == 0 { g } else { g.running() }
        })
        .collect();
    cluster.storages = (0..NODES)
        .map(|n| FakeStorage::new("local-lvm", &format!("pve{n}"), "lvmthin", "images"))
        .collect();
    cluster
}

async fn through_the_brain_and_wyoming() {
    let fake = FakeProxmox::start(big_cluster()).await;
    let audit = tempfile::tempdir().unwrap();
    let mut config = jarvis::config::Config::default();
    config.audit.path = audit.path().join("audit.jsonl");
    config.wyoming.addr = "127.0.0.1:0".parse().unwrap();
    config.wyoming.zeroconf.enabled = false;
    config.http.enabled = false;
    config.stt.enabled = false;
    config.tts.enabled = false;
    config.wake.enabled = false;
    config.proxmox = fake.config();

    let brain = Brain::new(&config, Some(fake.client())).unwrap();
    let command = |text: &str| Command {
        text: text.into(),
        channel: Channel::Http,
        client: "bench".into(),
        conversation: Some("bench".into()),
        approval: None,
    };
    let _ = brain.command(command("Is pve3 online?")).await; // warm the cache
    let mut times = Vec::new();
    for i in 0..500 {
        let name = guest_name(i * 7 % GUESTS).replace('-', " ");
        let t = Instant::now();
        let r = brain.command(command(&format!("Is {name} running?"))).await;
        times.push(t.elapsed());
        assert!(r.handled, "{}", r.reply);
    }
    report("brain command, warm cache, audit flushed", times);

    // What speech-to-text asks at every pause (completeness) and of every transcript
    // (write_names), and the speech grammar built once per inventory snapshot.
    {
        use jarvis::stt::Understanding;
        let before = common::status_kb("VmRSS:");
        // The first look-up starts the build in the background and answers at once; the
        // grammar is there when a look-up finds it.
        let t = Instant::now();
        let first = brain.speech_grammar();
        let answered = t.elapsed();
        assert!(first.is_none(), "nothing built before");
        let mut built = None;
        while built.is_none() && t.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(1)).await;
            built = brain.speech_grammar();
        }
        let took = t.elapsed();
        match built {
            Some(grammar) => println!(
                "  speech grammar, {} rules, built in the background in {:.1} ms (the look-up \
                 that started it answered in {:.0} us), {:.1} MB more resident",
                grammar.len(),
                took.as_secs_f64() * 1e3,
                answered.as_secs_f64() * 1e6,
                (common::status_kb("VmRSS:").saturating_sub(before)) as f64 / 1024.0
            ),
            None => println!(
                "  no speech grammar: more than {} names",
                jarvis::brain::engine::MAX_GRAMMAR_NAMES
            ),
        }
        for text in [
            "what is the status of",
            "what is the status of node pve3",
            "What is the status of node pbe3?",
            "turn on the kitchen lights",
        ] {
            let times: Vec<Duration> = (0..300)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(brain.completeness(std::hint::black_box(text)));
                    t.elapsed()
                })
                .collect();
            report(&format!("completeness({text:?})"), times);
            let times: Vec<Duration> = (0..300)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(brain.write_names(std::hint::black_box(text)));
                    t.elapsed()
                })
                .collect();
            report(&format!("write_names({text:?})"), times);
        }
    }

    let app = jarvis::app::spawn(config).await.unwrap();
    let mut times = Vec::new();
    let mut reply = String::new();
    for i in 0..300 {
        let text = if i % 2 == 0 {
            "What's the status of node pve three?".to_owned()
        } else {
            format!("Is {} running?", guest_name(i).replace('-', " "))
        };
        let t = Instant::now();
        let mut client = Client::connect(app.wyoming_addr).await.unwrap();
        client
            .send(Transcript {
                text,
                language: Some("en".into()),
                context: json!({"conversation_id": "bench"}).as_object().cloned(),
            })
            .await
            .unwrap();
        let event = client.recv().await.unwrap().unwrap();
        times.push(t.elapsed());
        if let wyoming::Event::Handled(h) = event {
            reply = h.text.unwrap_or_default();
        }
    }
    report("status question over Wyoming, connect → handled", times);
    println!("  last reply: {reply:?}");
    app.shutdown.cancel();
    let _ = app.finished.await;
}

fn main() {
    println!(
        "homelab brain, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    recognition();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(through_the_brain_and_wyoming());
}
