//! A real clustered MQTT broker for the lease tests: N Aedes nodes (`tests/broker/aedes_node.js`,
//! each its own `node` process on a free 127.0.0.1 port) sharing messages, retained messages,
//! sessions and last wills through one `redis-server` on a free port, as Aedes documents its
//! cluster set-up. Installed by `scripts/bootstrap.sh --test` (apt `redis-server` and `nodejs`,
//! `npm ci` in tests/broker). A node is ready when it prints `ready`; a killed node takes its
//! clients' last wills with it, and the surviving nodes publish them 3 to 4 heartbeats later
//! (Aedes's rule for a broker whose heartbeat stopped). Everything is killed on drop.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::LIMIT;

/// Heartbeat of the nodes: a dead node's wills come out 3 to 4 of these after it died.
pub const HEARTBEAT: Duration = Duration::from_millis(1000);

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn broker_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broker")
}

fn which(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Drains a child's output so it never blocks on a full pipe, after `ready` was seen.
async fn wait_ready(child: &mut Child, marker: &str, what: &str) {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let ready = tokio::time::timeout(LIMIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let found = line.contains(marker);
            seen.push(line);
            if found {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(ready, Ok(true)), "{what} did not start: {seen:?}");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
}

/// A running Aedes cluster.
pub struct AedesCluster {
    /// The nodes' MQTT ports, in order; `None` for a node stopped by [`AedesCluster::kill`].
    nodes: Vec<Option<(u16, Child)>>,
    redis: Child,
    redis_port: u16,
}

impl AedesCluster {
    /// Redis and `n` nodes, every one accepting MQTT connections.
    pub async fn start(n: usize) -> Self {
        let node_modules = broker_dir().join("node_modules/aedes");
        assert!(
            node_modules.is_dir(),
            "{} missing: run scripts/bootstrap.sh --test (npm ci --prefix tests/broker)",
            node_modules.display()
        );
        let redis_server = which("redis-server")
            .expect("redis-server not found: run scripts/bootstrap.sh --test (apt redis-server)");
        let redis_port = free_port();
        let mut redis = Command::new(redis_server)
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server");
        wait_ready(&mut redis, "Ready to accept connections", "redis-server").await;
        let mut cluster = Self {
            nodes: Vec::new(),
            redis,
            redis_port,
        };
        for i in 0..n {
            let node = cluster.launch(i).await;
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    async fn launch(&self, index: usize) -> (u16, Child) {
        let node = which("node").expect("node not found: run scripts/bootstrap.sh --test");
        let port = free_port();
        let mut child = Command::new(node)
            .arg(broker_dir().join("aedes_node.js"))
            .arg(port.to_string())
            .arg(self.redis_port.to_string())
            .arg(format!("node{}", index + 1))
            .arg(HEARTBEAT.as_millis().to_string())
            .current_dir(broker_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start an aedes node");
        wait_ready(&mut child, "ready", &format!("aedes node {}", index + 1)).await;
        (port, child)
    }

    /// Node `index`'s MQTT port (also after it was killed: the port it had).
    pub fn port(&self, index: usize) -> u16 {
        self.nodes[index]
            .as_ref()
            .map(|(port, _)| *port)
            .expect("node running")
    }

    /// The client ids whose last wills node `index` left in Redis (a killed node's, until
    /// another node publishes them).
    pub async fn wills_of(&self, index: usize) -> Vec<String> {
        let redis_cli = which("redis-cli").expect("redis-cli not found (apt redis-tools)");
        let out = Command::new(redis_cli)
            .args([
                "-p",
                &self.redis_port.to_string(),
                "LRANGE",
                "will",
                "0",
                "-1",
            ])
            .stderr(Stdio::null())
            .output()
            .await
            .expect("run redis-cli");
        let prefix = format!("will:node{}:", index + 1);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|key| key.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }

    /// Waits until node `index`'s wills are gone from Redis: another node published them.
    pub async fn wait_wills_published(&self, index: usize) {
        tokio::time::timeout(LIMIT, async {
            while !self.wills_of(index).await.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("node {}'s wills were never published", index + 1));
    }

    /// Kills node `index` as a crash would (SIGKILL): its clients see their connections drop,
    /// and their wills stay in Redis until another node publishes them.
    pub async fn kill(&mut self, index: usize) {
        if let Some((_, mut child)) = self.nodes[index].take() {
            child.kill().await.unwrap();
        }
    }
}

impl Drop for AedesCluster {
    fn drop(&mut self) {
        for (_, child) in self.nodes.iter_mut().flatten() {
            let _ = child.start_kill();
        }
        let _ = self.redis.start_kill();
    }
}
