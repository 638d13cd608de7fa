//! MQTT discovery at scale, against a real Mosquitto broker. Prints figures; asserts nothing
//! about time. Run with `cargo bench --bench mqtt` (or `scripts/bench.sh mqtt`).
//!
//! A synthetic cluster of 10 nodes, 1000 guests (100 per node, a third of them containers,
//! four in five running) and 20 storages is served from memory, so the figures are the
//! publisher's own: the Proxmox client's HTTP request and JSON parsing are not included.
//!
//! 1. Full discovery: from the first poll to the broker delivering the last device config to
//!    a subscriber (every config, availability and state is sent in that poll); then the same
//!    for answering HA's birth message (`publish_all`).
//! 2. Steady state: CPU time of the publisher's thread per poll (the event-loop task runs on
//!    the same thread, a current-thread runtime) and messages per poll, with nothing changed.
//! 3. Churn: the same with every running guest's CPU changed in every poll (the worst steady
//!    case: one state message per running guest).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs,
    unreachable_pub
)]

#[allow(dead_code)]
#[path = "../tests/common/mosquitto.rs"]
mod mosquitto;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jarvis::mqtt::source::{ClusterSource, NoBrain, SourceError};
use jarvis::mqtt::{MqttConfig, Publisher, connection};
use jarvis::proxmox::{
    Guest, GuestKind, GuestState, Inventory, Node, NodeState, NodeStatus, Storage,
};
use tokio_util::sync::CancellationToken;

/// Upper bound of any wait (used by the broker harness).
const LIMIT: Duration = Duration::from_secs(60);
const NODES: usize = 10;
const GUESTS_PER_NODE: usize = 100;
const CYCLES: u32 = 200;

/// The cluster, in memory; the benchmark changes it between polls.
struct Synthetic {
    inventory: Mutex<Arc<Inventory>>,
}

impl ClusterSource for Synthetic {
    async fn inventory(&self) -> Result<Arc<Inventory>, SourceError> {
        Ok(Arc::clone(&self.inventory.lock().unwrap()))
    }

    async fn cluster_name(&self) -> Result<Option<String>, SourceError> {
        Ok(Some("bench".into()))
    }

    async fn node_status(&self, _node: &str) -> Result<NodeStatus, SourceError> {
        Ok(NodeStatus {
            loadavg: Some([0.42, 0.51, 0.47]),
            pveversion: Some("pve-manager/9.1.2/0123abcd".into()),
            ..NodeStatus::default()
        })
    }

    async fn pending_updates(&self, _node: &str) -> Result<u32, SourceError> {
        Ok(3)
    }
}

fn inventory() -> Inventory {
    let mut inventory = Inventory::default();
    for n in 0..NODES {
        let node = format!("pve{n}");
        inventory.nodes.push(Node {
            name: node.clone(),
            status: NodeState::Online,
            cpu: Some(0.04),
            maxcpu: Some(32),
            mem: Some(40 << 30),
            maxmem: Some(128 << 30),
            disk: Some(12 << 30),
            maxdisk: Some(100 << 30),
            uptime: Some(864_213),
        });
        for g in 0..GUESTS_PER_NODE {
            let vmid = u32::try_from(100 + n * GUESTS_PER_NODE + g).unwrap();
            let running = g % 5 != 0;
            inventory.guests.push(Guest {
                vmid,
                kind: if g % 3 == 0 {
                    GuestKind::Lxc
                } else {
                    GuestKind::Qemu
                },
                node: node.clone(),
                name: format!("guest-{vmid}"),
                status: if running {
                    GuestState::Running
                } else {
                    GuestState::Stopped
                },
                template: false,
                cpu: running.then_some(0.023),
                maxcpu: Some(4),
                mem: Some(if running { 3 << 30 } else { 0 }),
                maxmem: Some(8 << 30),
                disk: Some(0),
                maxdisk: Some(32 << 30),
                netin: Some(if running { 123_456_789 } else { 0 }),
                netout: Some(if running { 98_765_432 } else { 0 }),
                diskread: Some(0),
                diskwrite: Some(0),
                uptime: Some(if running { 86_400 } else { 0 }),
                tags: vec![],
                lock: None,
                pool: None,
            });
        }
        for (storage, plugin) in [("local", "dir"), ("local-lvm", "lvmthin")] {
            inventory.storages.push(Storage {
                storage: storage.into(),
                node: node.clone(),
                plugintype: Some(plugin.into()),
                available: true,
                shared: false,
                content: vec!["images".into()],
                used: Some(50 << 30),
                total: Some(200 << 30),
            });
        }
    }
    inventory
}

/// Nanoseconds this thread has run on a CPU (`/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    // The broker and the subscriber run on their own runtime (other threads), so the
    // publisher's thread time is the publisher's alone.
    let side = tokio::runtime::Runtime::new().unwrap();
    let (broker, ha) = side.block_on(async {
        let broker = mosquitto::Mosquitto::start().await;
        let ha = mosquitto::Observer::connect(broker.port, &["homeassistant/device/#"]).await;
        (broker, ha)
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(broker.port, &ha));
    drop(ha);
    drop(broker);
}

async fn run(port: u16, ha: &mosquitto::Observer) {
    let devices = NODES + NODES * GUESTS_PER_NODE + 2 * NODES;
    let cluster = Arc::new(Synthetic {
        inventory: Mutex::new(Arc::new(inventory())),
    });
    let settings = MqttConfig {
        enabled: true,
        host: "127.0.0.1".into(),
        port,
        ..MqttConfig::default()
    }
    .settings();
    let token = CancellationToken::new();
    let (link, _event_loop) =
        connection::connect(&settings, "jarvis/status", token.clone()).unwrap();
    let mut publisher = Publisher::new(
        settings,
        Arc::clone(&cluster),
        Arc::new(NoBrain::default()),
        link,
        token.clone(),
    );
    publisher.wait_connected().await;
    let configs = |log: &[mosquitto::Seen], from: usize| {
        log[from..]
            .iter()
            .filter(|s| s.topic.ends_with("/config") && !s.topic.contains("server"))
            .count()
    };
    println!(
        "mqtt discovery: {NODES} nodes, {} guests, {} storages ({devices} devices), mosquitto on loopback",
        NODES * GUESTS_PER_NODE,
        2 * NODES
    );

    // 1. Full discovery in the first poll.
    let mark = ha.mark();
    let sent = publisher.stats().sent;
    let started = Instant::now();
    let cpu = thread_cpu_ns();
    publisher.poll_once().await;
    let queued = started.elapsed();
    let cpu = thread_cpu_ns() - cpu;
    ha.wait_for("every config", |_, log| {
        (configs(log, mark) >= devices).then_some(())
    })
    .await;
    let delivered = started.elapsed();
    let messages = publisher.stats().sent - sent;
    let bytes: usize = ha.since(mark).iter().map(|s| s.payload.len()).sum();
    println!(
        "first poll (full discovery): {messages} messages, configs {:.1} MB; all handed to rumqttc in {:.0} ms \
         (publisher thread CPU {:.0} ms), last config delivered by the broker after {:.0} ms",
        bytes as f64 / 1e6,
        queued.as_secs_f64() * 1e3,
        cpu as f64 / 1e6,
        delivered.as_secs_f64() * 1e3,
    );

    // The same on HA's birth message.
    let mark = ha.mark();
    let sent = publisher.stats().sent;
    let started = Instant::now();
    publisher.publish_all().await;
    ha.wait_for("every config again", |_, log| {
        (configs(log, mark) >= devices).then_some(())
    })
    .await;
    println!(
        "answer to HA's birth (publish_all): {} messages, last config delivered after {:.0} ms",
        publisher.stats().sent - sent,
        started.elapsed().as_secs_f64() * 1e3
    );

    // 2. Steady state: nothing changes.
    let mark = ha.mark();
    let sent = publisher.stats().sent;
    let cpu = thread_cpu_ns();
    let started = Instant::now();
    for _ in 0..CYCLES {
        publisher.poll_once().await;
    }
    let wall = started.elapsed() / CYCLES;
    let cpu = (thread_cpu_ns() - cpu) / u64::from(CYCLES);
    println!(
        "steady state, nothing changed: {:.2} ms CPU per poll ({:.2} ms wall), {:.1} messages per poll \
         ({} seen by the subscriber over {CYCLES} polls)",
        cpu as f64 / 1e6,
        wall.as_secs_f64() * 1e3,
        (publisher.stats().sent - sent) as f64 / f64::from(CYCLES),
        ha.since(mark).len()
    );

    // 3. Churn: every running guest's CPU changes in every poll.
    let mut variants = Vec::new();
    for i in 0..4u32 {
        let mut inv = inventory();
        for guest in inv.guests.iter_mut().filter(|g| g.cpu.is_some()) {
            guest.cpu = Some(0.01 * f64::from(i + 1));
        }
        variants.push(Arc::new(inv));
    }
    let sent = publisher.stats().sent;
    let cpu = thread_cpu_ns();
    for cycle in 0..CYCLES {
        *cluster.inventory.lock().unwrap() = Arc::clone(&variants[cycle as usize % 4]);
        publisher.poll_once().await;
    }
    let cpu = (thread_cpu_ns() - cpu) / u64::from(CYCLES);
    println!(
        "churn, every running guest's CPU changed: {:.2} ms CPU per poll, {:.0} messages per poll",
        cpu as f64 / 1e6,
        (publisher.stats().sent - sent) as f64 / f64::from(CYCLES)
    );
    token.cancel();
}
