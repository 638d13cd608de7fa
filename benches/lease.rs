//! Brain lease takeover time against a real Mosquitto. Prints figures; asserts nothing about
//! time. Run with `cargo bench --bench lease` (or `scripts/bench.sh lease`).
//!
//! Two brains (the lease and the publisher it guards, `jarvis::mqtt::standby`, with the default
//! 10 s lease) run in this process, each on its own thread and current-thread runtime, so one
//! can die in the ways a real one does:
//! 1. killed: its runtime is dropped, its sockets close without DISCONNECT and the broker
//!    publishes its last will (the lease's release);
//! 2. frozen: its thread stops driving the runtime with its sockets open (a hung VM, a
//!    SIGSTOP), so only the broker's keep-alive (a third of the lease, times 1.5) or the lease
//!    running out on the standby's clock frees it;
//! 3. stopped cleanly: it says `offline`, releases the lease and disconnects.
//!
//! Takeover time: from the moment of death to the standby holding the lease (its claim read
//! back and settled, so it may act).
//!
//! Then the same on a clustered broker, three Aedes nodes over Redis (tests/broker; skipped
//! with a note when it is not installed): the holder on node 1 killed (its will, from node 1,
//! reaches the standby on node 2); and node 1 itself killed under the holder, which reconnects
//! to node 3 (`mqtt.hosts`) and re-asserts the lease: the time until it holds it again.
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

#[allow(dead_code)]
#[path = "../tests/common/aedes.rs"]
mod aedes;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jarvis::mqtt::MqttConfig;
use jarvis::mqtt::lease::{DEFAULT_LEASE_SECS, LeaseView, Role};
use jarvis::mqtt::source::{ClusterSource, NoBrain, SourceError};
use jarvis::proxmox::{Inventory, NodeStatus};
use tokio_util::sync::CancellationToken;

/// Upper bound of any wait (used by the broker harness).
const LIMIT: Duration = Duration::from_secs(60);
const RUNS: usize = 5;

/// A cluster that cannot be read: the publisher still runs, says so and keeps its connection.
struct NoCluster;

impl ClusterSource for NoCluster {
    async fn inventory(&self) -> Result<Arc<Inventory>, SourceError> {
        Err(SourceError("no cluster in the benchmark".into()))
    }

    async fn cluster_name(&self) -> Result<Option<String>, SourceError> {
        Ok(Some("bench".into()))
    }

    async fn node_status(&self, _node: &str) -> Result<NodeStatus, SourceError> {
        Err(SourceError("no cluster in the benchmark".into()))
    }

    async fn pending_updates(&self, _node: &str) -> Result<u32, SourceError> {
        Err(SourceError("no cluster in the benchmark".into()))
    }
}

#[derive(Debug, Clone, Copy)]
enum Death {
    Kill,
    Freeze,
    Stop,
}

/// One brain on its own thread.
struct Brain {
    view: LeaseView,
    control: mpsc::Sender<Death>,
    thread: std::thread::JoinHandle<()>,
}

impl Brain {
    fn start(instance: &str, port: u16, base: &str) -> Self {
        Self::start_on(instance, port, &[], base)
    }

    /// A brain on the broker node `port`, with the other nodes `others`.
    fn start_on(instance: &str, port: u16, others: &[u16], base: &str) -> Self {
        let hosts: Vec<String> = others.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let (view_tx, view_rx) = mpsc::channel();
        let (control, orders) = mpsc::channel::<Death>();
        let instance = instance.to_owned();
        let base = base.to_owned();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let token = CancellationToken::new();
            let config = MqttConfig {
                enabled: true,
                host: "127.0.0.1".into(),
                port,
                client_id: format!("bench-{instance}"),
                base_topic: base,
                hosts,
                ..MqttConfig::default()
            };
            let handle = runtime.block_on(async {
                jarvis::mqtt::standby::spawn(
                    config.settings(),
                    &instance,
                    Duration::from_secs(DEFAULT_LEASE_SECS),
                    Arc::new(NoCluster),
                    Arc::new(NoBrain::default()),
                    jarvis::mqtt::Feeds::default(),
                    token.clone(),
                )
                .unwrap()
            });
            view_tx.send(handle.lease.clone().unwrap()).unwrap();
            // Serve until told how to die.
            let order = runtime
                .block_on(async { tokio::task::spawn_blocking(move || orders.recv()).await })
                .unwrap();
            match order {
                Ok(Death::Kill) | Err(_) => drop(runtime),
                Ok(Death::Freeze) => {
                    // Nothing drives the runtime now; its sockets stay open.
                    std::thread::sleep(Duration::from_secs(3 * DEFAULT_LEASE_SECS));
                    drop(runtime);
                }
                Ok(Death::Stop) => {
                    token.cancel();
                    runtime.block_on(handle.join());
                }
            }
        });
        let view = view_rx.recv().unwrap();
        Self {
            view,
            control,
            thread,
        }
    }

    async fn wait_for(&self, what: &str, check: impl Fn(Role, Option<&str>) -> bool) {
        let mut watch = self.view.watch();
        tokio::time::timeout(
            LIMIT,
            watch.wait_for(|s| check(s.role, s.holder.as_deref())),
        )
        .await
        .unwrap_or_else(|_| panic!("{what}"))
        .unwrap();
    }
}

/// One takeover: a active, b standby, a dies; the time until b holds the lease.
async fn takeover(port: u16, run: usize, death: Death) -> Duration {
    let base = format!("bench{run}{death:?}").to_lowercase();
    let a = Brain::start("brain-a", port, &base);
    a.wait_for("a active", |role, _| role == Role::Active).await;
    let b = Brain::start("brain-b", port, &base);
    b.wait_for("b standby", |role, holder| {
        role == Role::Standby && holder == Some("brain-a")
    })
    .await;
    // Steady state: the standby has been connected for a while (its first 300 ms wait for the
    // broker's replay of the lease before it would claim anything).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let died = Instant::now();
    a.control.send(death).unwrap();
    b.wait_for("b active", |role, _| role == Role::Active).await;
    let took = died.elapsed();
    b.control.send(Death::Kill).unwrap();
    // A frozen brain's thread wakes up and is dropped later.
    if !matches!(death, Death::Freeze) {
        let _ = a.thread.join();
    }
    let _ = b.thread.join();
    took
}

/// On the Aedes cluster: a on node 1, b on node 2, then a killed (`Death::Kill`), or node 1
/// killed under a (`None`): the time until b, or a again, holds the lease. Returns it and
/// whether b ever became active (it must not when node 1 dies).
async fn cluster_takeover(run: usize, death: Option<Death>) -> (Duration, bool) {
    let mut cluster = aedes::AedesCluster::start(3).await;
    let [n1, n2, n3] = [cluster.port(0), cluster.port(1), cluster.port(2)];
    let base = format!("cluster{run}");
    let a = Brain::start_on("brain-a", n1, &[n3], &base);
    a.wait_for("a active", |role, _| role == Role::Active).await;
    let b = Brain::start_on("brain-b", n2, &[n3], &base);
    b.wait_for("b standby", |role, holder| {
        role == Role::Standby && holder == Some("brain-a")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Watches b for the whole run: did it ever act?
    let mut b_roles = b.view.watch();
    let done = CancellationToken::new();
    let b_acted = tokio::spawn({
        let done = done.clone();
        async move {
            loop {
                if b_roles.borrow_and_update().role == Role::Active {
                    return true;
                }
                tokio::select! {
                    () = done.cancelled() => return false,
                    changed = b_roles.changed() => if changed.is_err() { return false },
                }
            }
        }
    });
    let died = Instant::now();
    let took = match death {
        Some(death) => {
            a.control.send(death).unwrap();
            b.wait_for("b active", |role, _| role == Role::Active).await;
            died.elapsed()
        }
        None => {
            cluster.kill(0).await;
            a.wait_for("a lapsed", |role, _| role != Role::Active).await;
            a.wait_for("a active again", |role, _| role == Role::Active)
                .await;
            let took = died.elapsed();
            // Until node 1's late wills are out: b must stay the standby through them.
            cluster.wait_wills_published(0).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            took
        }
    };
    done.cancel();
    let b_was_active = b_acted.await.unwrap_or(false);
    b.control.send(Death::Kill).unwrap();
    let _ = a.control.send(Death::Kill);
    let _ = a.thread.join();
    let _ = b.thread.join();
    (took, b_was_active)
}

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: &Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    format!(
        "min {}, median {}, max {} ({} runs)",
        ms(&times[0]),
        ms(&times[times.len() / 2]),
        ms(&times[times.len() - 1]),
        times.len()
    )
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let broker = mosquitto::Mosquitto::start().await;
        println!(
            "lease {DEFAULT_LEASE_SECS} s, MQTT keep-alive {} s",
            DEFAULT_LEASE_SECS / 3
        );
        for (death, label) in [
            (Death::Kill, "killed (last will)"),
            (Death::Stop, "clean shutdown (release)"),
            (
                Death::Freeze,
                "frozen (keep-alive, or the lease running out)",
            ),
        ] {
            let mut times = Vec::new();
            for run in 0..RUNS {
                times.push(takeover(broker.port, run, death).await);
            }
            println!("takeover, {label}: {}", summary(times));
        }
        drop(broker);
        if !std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/broker/node_modules/aedes")
            .is_dir()
        {
            println!("clustered broker: skipped (run scripts/bootstrap.sh --test for Aedes)");
            return;
        }
        let mut times = Vec::new();
        for run in 0..RUNS {
            times.push(cluster_takeover(run, Some(Death::Kill)).await.0);
        }
        println!(
            "aedes cluster (3 nodes over Redis), holder on node 1 killed, standby on node 2: {}",
            summary(times)
        );
        let mut times = Vec::new();
        let mut flaps = 0;
        for run in 0..RUNS {
            let (took, flapped) = cluster_takeover(RUNS + run, None).await;
            times.push(took);
            flaps += usize::from(flapped);
        }
        println!(
            "aedes cluster, node 1 killed under the holder: holder again via node 3 in {}; \
             standby took over in {flaps} of {RUNS} runs",
            summary(times)
        );
    });
}
