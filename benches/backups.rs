//! Backup questions over a big cluster. Prints figures; asserts nothing about time. Run with
//! `cargo bench --bench backups` (or `scripts/bench.sh backups`).
//!
//! 10 nodes, 1000 guests, 30 nights of vzdump jobs (one task per node over its 100 guests, one
//! guest failing on one node each night), an archive per guest and night on a shared storage
//! (30 000 archives): the first (cold) read, then each backup and task question through the
//! brain with a warm cache (recognize, resolve, answer, audit line written): p50/p99/max.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs,
    dead_code,
    unreachable_pub
)]

#[path = "../tests/common/fake_proxmox.rs"]
mod fake_proxmox;

use std::time::{Duration, Instant};

use fake_proxmox::{
    FakeBackup, FakeCluster, FakeGuest, FakeNode, FakeProxmox, FakeStorage, FakeTask, unix_now,
};
use jarvis::brain::{Brain, Channel, Command};

const NODES: usize = 10;
const GUESTS: usize = 1000;
const NIGHTS: i64 = 30;

fn cluster() -> FakeCluster {
    let mut cluster = FakeCluster::homelab();
    cluster.nodes = (0..NODES)
        .map(|n| FakeNode::new(&format!("pve{n}"), &format!("10.0.0.{}", n + 1)))
        .collect();
    cluster.guests = (0..GUESTS)
        .map(|i| {
            FakeGuest::qemu(
                100 + i as u32,
                &format!("guest-{i}"),
                &format!("pve{}", i % NODES),
            )
            .running()
        })
        .collect();
    cluster.storages = (0..NODES)
        .flat_map(|n| {
            let node = format!("pve{n}");
            let mut nas = FakeStorage::new("nas", &node, "nfs", "images,backup");
            nas.shared = true;
            [
                FakeStorage::new("local-lvm", &node, "lvmthin", "images"),
                FakeStorage::new("local", &node, "dir", "iso,vztmpl,backup"),
                nas,
            ]
        })
        .collect();
    cluster
}

fn history(fake: &FakeProxmox, now: i64) {
    let tonight = now - now.rem_euclid(86_400) + 2 * 3600;
    let tonight = if tonight > now {
        tonight - 86_400
    } else {
        tonight
    };
    fake.with_backups(|b| {
        for night in 0..NIGHTS {
            let start = tonight - night * 86_400;
            for n in 0..NODES {
                let guests: Vec<u32> = (0..GUESTS)
                    .filter(|i| i % NODES == n)
                    .map(|i| 100 + i as u32)
                    .collect();
                // One guest fails on one node each night.
                let failing =
                    (night as usize % NODES == n).then(|| guests[night as usize % guests.len()]);
                let ok: Vec<u32> = guests
                    .iter()
                    .copied()
                    .filter(|v| Some(*v) != failing)
                    .collect();
                let failed: Vec<(u32, &str)> = failing
                    .map(|v| vec![(v, "VM is locked (snapshot)")])
                    .unwrap_or_default();
                b.tasks.push(FakeTask::vzdump(
                    &format!("pve{n}"),
                    start,
                    &ok,
                    &[],
                    &failed,
                ));
                for vmid in ok {
                    b.files
                        .push(FakeBackup::new("nas", "pve0", vmid, start + 60, 4 << 30));
                }
            }
        }
        for i in 0..20u32 {
            b.tasks.push(FakeTask::new(
                &format!("pve{}", i as usize % NODES),
                "qmstart",
                &(100 + i).to_string(),
                now - i64::from(i) * 3600,
                if i % 4 == 0 {
                    "VM is locked (backup)"
                } else {
                    "OK"
                },
            ));
        }
    });
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{name:<58} n={:<5} p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
        times.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
}

async fn run() {
    let fake = FakeProxmox::start(cluster()).await;
    history(&fake, unix_now());
    let audit = tempfile::tempdir().unwrap();
    let mut config = jarvis::config::Config::default();
    config.audit.path = audit.path().join("audit.jsonl");
    config.proxmox = fake.config();
    let brain = Brain::new(&config, Some(fake.client())).unwrap();
    let command = |text: String| Command {
        text,
        channel: Channel::Http,
        client: "bench".into(),
        conversation: Some("bench".into()),
        approval: None,
    };
    let t = Instant::now();
    let r = brain
        .command(command("Which guests have no backup this week?".into()))
        .await;
    println!(
        "cold: first backup question (inventory, 10 task lists, 30 000 archives, logs) {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("  reply: {:?}", r.reply);
    type Question = (&'static str, Box<dyn Fn(usize) -> String>);
    let questions: [Question; 5] = [
        (
            "which guests have no backup this week",
            Box::new(|_| "Which guests have no backup this week?".into()),
        ),
        (
            "when was <guest> last backed up",
            Box::new(|i| format!("When was guest {} last backed up?", i * 37 % GUESTS)),
        ),
        (
            "did last night's backups succeed",
            Box::new(|_| "Did last night's backups succeed?".into()),
        ),
        (
            "did the last backup job succeed",
            Box::new(|_| "Did the last backup job succeed?".into()),
        ),
        (
            "did anything fail",
            Box::new(|_| "Did anything fail?".into()),
        ),
    ];
    let mut all = Vec::new();
    for (name, text) in &questions {
        let mut times = Vec::new();
        let mut reply = String::new();
        for i in 0..200 {
            let t = Instant::now();
            let r = brain.command(command(text(i))).await;
            times.push(t.elapsed());
            assert!(r.handled, "{}", r.reply);
            reply = r.reply;
        }
        all.extend(times.iter().copied());
        report(&format!("warm: {name}"), times);
        println!("  last reply: {:?}", truncate(&reply, 140));
    }
    report("warm: every backup question (1000 guests, 30 days)", all);
    println!(
        "  requests to the fake after warm-up: {} /cluster/tasks (one per {} s TTL)",
        fake.count("GET /cluster/tasks"),
        config.proxmox.backups_ttl_secs
    );
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}...", s.chars().take(max).collect::<String>())
    }
}

fn main() {
    println!(
        "backup questions, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}
