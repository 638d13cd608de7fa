//! An in-process fake of the Proxmox VE API (`/api2/json`) on `127.0.0.1:0`, shaped from the
//! payloads in §4 of the integration notes, for every test that needs a cluster.
//!
//! It holds a mutable cluster (nodes, guests, storages) behind a mutex and serves
//! `/cluster/resources`, `/cluster/status`, `/nodes/{n}/status`, `/nodes/{n}/apt/update`,
//! `POST /nodes/{n}/{qemu|lxc}/{id}/status/{action}` (a task that ends after a configurable
//! delay, changing the guest's state when it succeeds) and `/nodes/{n}/tasks/{upid}/status`.
//! It checks `Authorization: PVEAPIToken=...` (401 otherwise), can be told to fail paths with
//! any status, to be slow, or to drop connections, and records every request. Over HTTPS it
//! serves a generated self-signed or CA-signed certificate and tells its fingerprint.
//!
//! ```ignore
//! let fake = FakeProxmox::homelab().await;
//! let proxmox = fake.client();
//! let inventory = proxmox.inventory().await.unwrap();
//! assert_eq!(inventory.guest(100).unwrap().name, "haos");
//! assert_eq!(fake.count("GET /cluster/resources"), 1);
//! ```
//!
//! Errors are sent the way pveproxy sends them: the text in the HTTP reason phrase
//! (`HTTP/1.1 403 Permission check failed (...)`) and a body of `{"data":null}`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use jarvis::config::{ProxmoxConfig, Secret};
use jarvis::proxmox::{GuestKind, Proxmox, Timings};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The token the fake accepts (the one §4.1 creates).
pub const TOKEN_ID: &str = "jarvis@pve!ha";
/// Its secret.
pub const TOKEN_SECRET: &str = "0f3c9a5e-7d2b-4c1e-9f8a-6b5d4c3b2a10";

/// A cluster node.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeNode {
    pub name: String,
    pub online: bool,
    pub ip: String,
    pub cpu: f64,
    pub maxcpu: u32,
    pub mem: u64,
    pub maxmem: u64,
    pub disk: u64,
    pub maxdisk: u64,
    pub uptime: u64,
    /// Packages `apt/update` lists.
    pub updates: usize,
    /// Physical disks and ZFS pools (see the disks section at the end).
    pub disks: FakeDisks,
}

impl FakeNode {
    pub fn new(name: &str, ip: &str) -> Self {
        Self {
            name: name.into(),
            online: true,
            ip: ip.into(),
            cpu: 0.0412,
            maxcpu: 16,
            mem: 21_474_836_480,
            maxmem: 67_108_864_000,
            disk: 12_884_901_888,
            maxdisk: 100_861_726_720,
            uptime: 864_213,
            updates: 0,
            disks: FakeDisks::healthy(),
        }
    }
}

/// A VM or container.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeGuest {
    pub vmid: u32,
    pub kind: GuestKind,
    pub node: String,
    /// `None`: the API sends no `name`.
    pub name: Option<String>,
    /// `running`, `stopped`, ...
    pub status: String,
    pub template: bool,
    pub tags: Vec<String>,
    /// e.g. `backup`: actions on it fail with `VM is locked (backup)`.
    pub lock: Option<String>,
    pub pool: Option<String>,
    pub maxcpu: u32,
    pub maxmem: u64,
    pub maxdisk: u64,
}

impl FakeGuest {
    fn new(kind: GuestKind, vmid: u32, name: &str, node: &str) -> Self {
        Self {
            vmid,
            kind,
            node: node.into(),
            name: Some(name.into()),
            status: "stopped".into(),
            template: false,
            tags: Vec::new(),
            lock: None,
            pool: None,
            maxcpu: 2,
            maxmem: 4_294_967_296,
            maxdisk: 34_359_738_368,
        }
    }

    /// A stopped VM.
    pub fn qemu(vmid: u32, name: &str, node: &str) -> Self {
        Self::new(GuestKind::Qemu, vmid, name, node)
    }

    /// A stopped container.
    pub fn lxc(vmid: u32, name: &str, node: &str) -> Self {
        Self::new(GuestKind::Lxc, vmid, name, node)
    }

    pub fn running(mut self) -> Self {
        self.status = "running".into();
        self
    }

    pub fn template(mut self) -> Self {
        self.template = true;
        self
    }

    pub fn tags(mut self, tags: &[&str]) -> Self {
        self.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    pub fn locked(mut self, lock: &str) -> Self {
        self.lock = Some(lock.into());
        self
    }

    fn is_running(&self) -> bool {
        self.status == "running"
    }

    fn id(&self) -> String {
        format!("{}/{}", self.kind.api_name(), self.vmid)
    }
}

/// A storage as one node reports it (a shared storage appears once per node).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeStorage {
    pub storage: String,
    pub node: String,
    pub plugintype: String,
    pub shared: bool,
    pub content: String,
    pub used: u64,
    pub total: u64,
    pub available: bool,
}

impl FakeStorage {
    pub fn new(storage: &str, node: &str, plugintype: &str, content: &str) -> Self {
        Self {
            storage: storage.into(),
            node: node.into(),
            plugintype: plugintype.into(),
            shared: false,
            content: content.into(),
            used: 53_687_091_200,
            total: 214_748_364_800,
            available: true,
        }
    }
}

/// What the fake cluster holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FakeCluster {
    /// `None`: a standalone node (no `cluster` entry in `/cluster/status`).
    pub name: Option<String>,
    pub nodes: Vec<FakeNode>,
    pub guests: Vec<FakeGuest>,
    pub storages: Vec<FakeStorage>,
}

impl FakeCluster {
    /// Nodes `pve` and `agent1`; guests 100 `haos` (VM, running), 101 `media-server` (VM,
    /// running), 102 `pihole` (container, running), 103 `frigate` (container, stopped, on
    /// agent1), 104 `nextcloud` (VM, stopped, on agent1), 9000 `debian-template` (VM template);
    /// storages `local` and `local-lvm` on each node, and `nas` shared.
    pub fn homelab() -> Self {
        let mut storages = Vec::new();
        for node in ["pve", "agent1"] {
            storages.push(FakeStorage::new("local", node, "dir", "iso,vztmpl,backup"));
            storages.push(FakeStorage::new(
                "local-lvm",
                node,
                "lvmthin",
                "images,rootdir",
            ));
            let mut nas = FakeStorage::new("nas", node, "nfs", "images,backup");
            nas.shared = true;
            storages.push(nas);
        }
        let mut agent1 = FakeNode::new("agent1", "192.168.1.12");
        agent1.maxcpu = 4;
        agent1.updates = 3;
        let mut pve = FakeNode::new("pve", "192.168.1.11");
        pve.updates = 12;
        Self {
            name: Some("homelab".into()),
            nodes: vec![pve, agent1],
            guests: vec![
                FakeGuest::qemu(100, "haos", "pve")
                    .running()
                    .tags(&["ha", "prod"]),
                FakeGuest::qemu(101, "media-server", "pve").running(),
                FakeGuest::lxc(102, "pihole", "pve")
                    .running()
                    .tags(&["dns"]),
                FakeGuest::lxc(103, "frigate", "agent1"),
                FakeGuest::qemu(104, "nextcloud", "agent1"),
                FakeGuest::qemu(9000, "debian-template", "pve").template(),
            ],
            storages,
        }
    }

    pub fn guest_mut(&mut self, vmid: u32) -> Option<&mut FakeGuest> {
        self.guests.iter_mut().find(|g| g.vmid == vmid)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut FakeNode> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }
}

/// One request the fake answered (or dropped for a knob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The API path without `/api2/json`, percent-decoded: `/cluster/resources`.
    pub path: String,
    /// Whether the right token came with it.
    pub authorized: bool,
    /// The status sent (0 when the client went away first).
    pub status: u16,
}

impl Recorded {
    /// `GET /cluster/resources`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A forced answer for matching requests.
#[derive(Debug, Clone)]
struct Failure {
    pattern: String,
    status: u16,
    message: String,
    /// `None`: for ever.
    remaining: Option<usize>,
}

#[derive(Debug, Clone)]
struct Delay {
    pattern: String,
    delay: Duration,
}

#[derive(Debug)]
struct Task {
    node: String,
    created: Instant,
    /// `None`: never ends.
    finish_after: Option<Duration>,
    exit: String,
    /// What a successful end does.
    effect: Option<(u32, &'static str)>,
    applied: bool,
    /// Node power, snapshots and migration (see `actions`).
    more: Option<actions::Effect>,
}

#[derive(Debug)]
struct Knobs {
    /// The `Authorization` value accepted.
    authorization: String,
    failures: Vec<Failure>,
    delays: Vec<Delay>,
    drop_connections: usize,
    task_delay: Duration,
    task_failures: VecDeque<String>,
    tasks_never_end: bool,
}

struct Shared {
    cluster: Mutex<FakeCluster>,
    knobs: Mutex<Knobs>,
    log: Mutex<Vec<Recorded>>,
    tasks: Mutex<HashMap<String, Task>>,
    backups: Mutex<FakeBackups>,
    connections: AtomicUsize,
    task_counter: AtomicUsize,
    /// Node power, snapshots and migration (see `actions`).
    actions: Mutex<actions::State>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How the fake serves TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeTls {
    /// A self-signed certificate, like a fresh Proxmox node's `pve-ssl.pem` without its CA.
    SelfSigned,
    /// A leaf signed by a generated CA (like `pve-root-ca.pem`), for `proxmox.ca_file`.
    CaSigned,
}

/// A running fake; stops serving when dropped.
pub struct FakeProxmox {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:port` or `https://127.0.0.1:port`.
    pub url: String,
    shared: Arc<Shared>,
    fingerprint: Option<String>,
    ca_pem: Option<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeProxmox {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl std::fmt::Debug for FakeProxmox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProxmox")
            .field("url", &self.url)
            .finish()
    }
}

/// The durations tests use: long enough for a loaded CI machine, short enough to keep failure
/// tests fast. TTLs are long, so the cache tests decide when to refresh.
pub fn fast_timings() -> Timings {
    Timings {
        timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(2),
        retry_backoff: Duration::from_millis(10),
        resources_ttl: Duration::from_secs(60),
        node_status_ttl: Duration::from_secs(60),
        updates_ttl: Duration::from_secs(60),
        task_poll: Duration::from_millis(20),
        task_timeout: Duration::from_secs(5),
    }
}

/// A URL on which nothing listens (a port bound, then released).
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// `[proxmox]` for these URLs with the fake's token: enabled, no retries.
pub fn config_for(urls: &[&str]) -> ProxmoxConfig {
    ProxmoxConfig {
        enabled: true,
        urls: urls.iter().map(|u| u.parse().unwrap()).collect(),
        token_id: TOKEN_ID.into(),
        token_secret: Some(Secret::new(TOKEN_SECRET)),
        read_retries: 0,
        ..ProxmoxConfig::default()
    }
}

impl FakeProxmox {
    /// The homelab preset over plain HTTP.
    pub async fn homelab() -> Self {
        Self::start(FakeCluster::homelab()).await
    }

    /// Serves `cluster` over plain HTTP.
    pub async fn start(cluster: FakeCluster) -> Self {
        Self::launch(cluster, None).await
    }

    /// Serves `cluster` over HTTPS.
    pub async fn start_https(cluster: FakeCluster, tls: FakeTls) -> Self {
        Self::launch(cluster, Some(tls)).await
    }

    async fn launch(cluster: FakeCluster, tls: Option<FakeTls>) -> Self {
        let shared = Arc::new(Shared {
            cluster: Mutex::new(cluster),
            knobs: Mutex::new(Knobs {
                authorization: format!("PVEAPIToken={TOKEN_ID}={TOKEN_SECRET}"),
                failures: Vec::new(),
                delays: Vec::new(),
                drop_connections: 0,
                task_delay: Duration::from_millis(50),
                task_failures: VecDeque::new(),
                tasks_never_end: false,
            }),
            log: Mutex::new(Vec::new()),
            tasks: Mutex::new(HashMap::new()),
            backups: Mutex::new(FakeBackups::default()),
            connections: AtomicUsize::new(0),
            task_counter: AtomicUsize::new(0),
            actions: Mutex::new(actions::State::default()),
        });
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let (acceptor, fingerprint, ca_pem) = match tls {
            None => (None, None, None),
            Some(mode) => {
                let (config, fingerprint, ca_pem) = server_tls(mode);
                (
                    Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
                    Some(fingerprint),
                    ca_pem,
                )
            }
        };
        let (tx, rx) = mpsc::channel(64);
        let accept = tokio::spawn(accept_loop(tcp, acceptor, Arc::clone(&shared), tx));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let listener = ChannelListener { rx, addr };
        let serve = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        Self {
            addr,
            url: format!("{scheme}://{addr}"),
            shared,
            fingerprint,
            ca_pem,
            tasks: vec![accept, serve],
        }
    }

    /// `[proxmox]` pointing at this fake only (see [`config_for`]).
    pub fn config(&self) -> ProxmoxConfig {
        config_for(&[&self.url])
    }

    /// A client for this fake with [`fast_timings`].
    pub fn client(&self) -> Proxmox {
        Proxmox::with_timings(&self.config(), fast_timings()).unwrap()
    }

    /// SHA-256 of the served certificate (`AA:BB:...`), over HTTPS.
    pub fn fingerprint(&self) -> Option<String> {
        self.fingerprint.clone()
    }

    /// The CA that signed the certificate, for [`FakeTls::CaSigned`].
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Writes the CA certificate to `dir/pve-root-ca.pem` and returns the path.
    pub fn write_ca_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("pve-root-ca.pem");
        std::fs::write(&path, self.ca_pem.as_deref().expect("a CA-signed fake")).unwrap();
        path
    }

    // --- the cluster --------------------------------------------------------------------

    /// Reads or changes the cluster.
    pub fn with_cluster<R>(&self, f: impl FnOnce(&mut FakeCluster) -> R) -> R {
        f(&mut lock(&self.shared.cluster))
    }

    pub fn add_guest(&self, guest: FakeGuest) {
        self.with_cluster(|c| {
            c.guests.retain(|g| g.vmid != guest.vmid);
            c.guests.push(guest);
        });
    }

    pub fn remove_guest(&self, vmid: u32) {
        self.with_cluster(|c| c.guests.retain(|g| g.vmid != vmid));
    }

    /// Moves a guest to another node (as a finished migration would).
    pub fn migrate_guest(&self, vmid: u32, node: &str) {
        self.with_cluster(|c| {
            if let Some(g) = c.guest_mut(vmid) {
                g.node = node.into();
            }
        });
    }

    pub fn set_guest_status(&self, vmid: u32, status: &str) {
        self.with_cluster(|c| {
            if let Some(g) = c.guest_mut(vmid) {
                g.status = status.into();
            }
        });
    }

    pub fn set_guest_lock(&self, vmid: u32, lock: Option<&str>) {
        self.with_cluster(|c| {
            if let Some(g) = c.guest_mut(vmid) {
                g.lock = lock.map(str::to_owned);
            }
        });
    }

    /// The guest's status as the fake sees it now.
    pub fn guest_status(&self, vmid: u32) -> Option<String> {
        settle_tasks(&self.shared);
        self.with_cluster(|c| c.guest_mut(vmid).map(|g| g.status.clone()))
    }

    /// An offline node: no statistics in `/cluster/resources`, 595 for its own paths.
    pub fn set_node_online(&self, node: &str, online: bool) {
        self.with_cluster(|c| {
            if let Some(n) = c.node_mut(node) {
                n.online = online;
            }
        });
    }

    pub fn set_updates(&self, node: &str, count: usize) {
        self.with_cluster(|c| {
            if let Some(n) = c.node_mut(node) {
                n.updates = count;
            }
        });
    }

    // --- knobs ----------------------------------------------------------------------------

    /// Accept only this token secret from now on (as after the token was regenerated).
    pub fn set_token_secret(&self, secret: &str) {
        lock(&self.shared.knobs).authorization = format!("PVEAPIToken={TOKEN_ID}={secret}");
    }

    /// Answers requests matching `pattern` with `status` and `message` for ever. A pattern is
    /// a path prefix (`/cluster`, any method) or a method and prefix (`POST /nodes`).
    pub fn fail(&self, pattern: &str, status: u16, message: &str) {
        self.push_failure(pattern, status, message, None);
    }

    /// As [`FakeProxmox::fail`], for the next `times` matching requests only.
    pub fn fail_times(&self, pattern: &str, status: u16, message: &str, times: usize) {
        self.push_failure(pattern, status, message, Some(times));
    }

    /// 403 for matching requests, with pveproxy's text naming `privilege`.
    pub fn forbid(&self, pattern: &str, acl_path: &str, privilege: &str) {
        self.fail(
            pattern,
            403,
            &format!("Permission check failed ({acl_path}, {privilege})"),
        );
    }

    fn push_failure(&self, pattern: &str, status: u16, message: &str, remaining: Option<usize>) {
        lock(&self.shared.knobs).failures.push(Failure {
            pattern: pattern.into(),
            status,
            message: message.into(),
            remaining,
        });
    }

    /// Answers matching requests (see [`FakeProxmox::fail`] for patterns) only after `delay`.
    pub fn delay(&self, pattern: &str, delay: Duration) {
        lock(&self.shared.knobs).delays.push(Delay {
            pattern: pattern.into(),
            delay,
        });
    }

    /// Removes every failure and delay.
    pub fn heal(&self) {
        let mut knobs = lock(&self.shared.knobs);
        knobs.failures.clear();
        knobs.delays.clear();
        knobs.drop_connections = 0;
    }

    /// Closes the next `n` connections as soon as they are accepted, before any byte.
    pub fn drop_next_connections(&self, n: usize) {
        lock(&self.shared.knobs).drop_connections = n;
    }

    /// How long a task runs before it ends (default 50 ms).
    pub fn set_task_delay(&self, delay: Duration) {
        lock(&self.shared.knobs).task_delay = delay;
    }

    /// The next task ends with this exit status instead of `OK` (e.g. `VM is locked (backup)`).
    pub fn fail_next_task(&self, exitstatus: &str) {
        lock(&self.shared.knobs)
            .task_failures
            .push_back(exitstatus.into());
    }

    /// New tasks never end.
    pub fn tasks_never_end(&self, never: bool) {
        lock(&self.shared.knobs).tasks_never_end = never;
    }

    // --- records --------------------------------------------------------------------------

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.log).clone()
    }

    /// How many requests matched `pattern` (see [`FakeProxmox::fail`]).
    pub fn count(&self, pattern: &str) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| matches(pattern, &r.method, &r.path))
            .count()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// TCP connections accepted (dropped ones included).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

fn matches(pattern: &str, method: &str, path: &str) -> bool {
    match pattern.split_once(' ') {
        Some((m, prefix)) => m.eq_ignore_ascii_case(method) && path.starts_with(prefix),
        None => path.starts_with(pattern),
    }
}

// --- serving ----------------------------------------------------------------------------------

/// A connection axum can serve: plain TCP or TLS (shared with the fake Frigate API).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Hands axum the connections the accept loop prepared (plain or after the TLS handshake).
pub(crate) struct ChannelListener {
    pub(crate) rx: mpsc::Receiver<Box<dyn Io>>,
    pub(crate) addr: SocketAddr,
}

impl axum::serve::Listener for ChannelListener {
    type Io = Box<dyn Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(io) => (io, self.addr),
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Box<dyn Io>>,
) {
    loop {
        let Ok((stream, _)) = tcp.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        {
            let mut knobs = lock(&shared.knobs);
            if knobs.drop_connections > 0 {
                knobs.drop_connections -= 1;
                drop(stream);
                continue;
            }
        }
        match &acceptor {
            None => {
                let _ = tx.send(Box::new(stream)).await;
            }
            Some(acceptor) => {
                // Handshakes run on their own, so a client that stalls one blocks nobody.
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let handshake = acceptor.accept(stream);
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(10), handshake).await
                    {
                        let _ = tx.send(Box::new(tls)).await;
                    }
                });
            }
        }
    }
}

/// A rustls server configuration for `mode`, the leaf's fingerprint, and the CA's PEM.
fn server_tls(mode: FakeTls) -> (rustls::ServerConfig, String, Option<String>) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(names).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pve.fake");
    let (leaf, ca_pem) = match mode {
        FakeTls::SelfSigned => (leaf_params.self_signed(&leaf_key).unwrap(), None),
        FakeTls::CaSigned => {
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            ca_params.distinguished_name.push(
                rcgen::DnType::CommonName,
                "Fake Proxmox Virtual Environment CA",
            );
            let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
            let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
            (leaf, Some(ca.pem()))
        }
    };
    let fingerprint = jarvis::proxmox::fingerprint(leaf.der());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    (config, fingerprint, ca_pem)
}

/// Applies the effects of tasks that have ended.
fn settle_tasks(shared: &Shared) {
    let mut tasks = lock(&shared.tasks);
    let mut cluster = lock(&shared.cluster);
    for task in tasks.values_mut() {
        let done = task
            .finish_after
            .is_some_and(|d| task.created.elapsed() >= d);
        if done && !task.applied {
            task.applied = true;
            if task.exit == "OK" {
                if let Some(effect) = task.more.take() {
                    actions::apply(effect, &mut cluster, &mut lock(&shared.actions));
                }
            }
            if task.exit == "OK" {
                if let Some((vmid, status)) = task.effect {
                    if let Some(guest) = cluster.guest_mut(vmid) {
                        guest.status = status.into();
                    }
                }
            }
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = uri.path();
    let path = percent_encoding::percent_decode_str(raw.strip_prefix("/api2/json").unwrap_or(raw))
        .decode_utf8_lossy()
        .into_owned();
    let authorized = {
        let knobs = lock(&shared.knobs);
        headers
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == knobs.authorization.as_bytes())
    };
    let index = {
        let mut log = lock(&shared.log);
        log.push(Recorded {
            method: method.to_string(),
            path: path.clone(),
            authorized,
            status: 0,
        });
        log.len() - 1
    };
    let delay = {
        let knobs = lock(&shared.knobs);
        knobs
            .delays
            .iter()
            .filter(|d| matches(&d.pattern, method.as_str(), &path))
            .map(|d| d.delay)
            .max()
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let response = if !raw.starts_with("/api2/json/") {
        error(404, "Not Found")
    } else if !authorized {
        error(401, "authentication failure")
    } else if let Some(failure) = forced_failure(&shared, method.as_str(), &path) {
        failure
    } else {
        settle_tasks(&shared);
        actions::route(&shared, &method, &path, &body)
            .or_else(|| backups_route(&shared, &method, &path, uri.query()))
            .unwrap_or_else(|| route(&shared, &method, &path))
    };
    if let Some(entry) = lock(&shared.log).get_mut(index) {
        entry.status = response.status().as_u16();
    }
    response
}

fn forced_failure(shared: &Shared, method: &str, path: &str) -> Option<Response> {
    let mut knobs = lock(&shared.knobs);
    let failure = knobs
        .failures
        .iter_mut()
        .find(|f| f.remaining != Some(0) && matches(&f.pattern, method, path))?;
    if let Some(remaining) = &mut failure.remaining {
        *remaining -= 1;
    }
    Some(error(failure.status, &failure.message))
}

fn data(value: Value) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json;charset=UTF-8")
        .body(Body::from(json!({ "data": value }).to_string()))
        .unwrap()
}

/// pveproxy's error shape: the text as the reason phrase, `{"data":null}` as the body.
fn error(status: u16, message: &str) -> Response {
    let mut response = Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json;charset=UTF-8")
        .body(Body::from(r#"{"data":null}"#))
        .unwrap();
    let reason: String = message.chars().filter(|c| !c.is_control()).collect();
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason) {
        response.extensions_mut().insert(reason);
    }
    response
}

fn route(shared: &Shared, method: &Method, path: &str) -> Response {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = method == Method::GET;
    let post = method == Method::POST;
    match segments.as_slice() {
        ["cluster", "resources"] if get => data(resources(&lock(&shared.cluster))),
        ["cluster", "status"] if get => data(cluster_status(&lock(&shared.cluster))),
        ["nodes", node, rest @ ..] => {
            let cluster = lock(&shared.cluster);
            let Some(found) = cluster.nodes.iter().find(|n| n.name == *node) else {
                return error(595, &format!("no such node '{node}'"));
            };
            if !found.online {
                return error(595, &format!("Connection refused ({node} is offline)"));
            }
            let found = found.clone();
            drop(cluster);
            match rest {
                ["status"] if get => data(node_status(&found)),
                ["apt", "update"] if get => data(updates(found.updates)),
                ["disks", "list"] if get => data(found.disks.list()),
                ["disks", "zfs"] if get => data(found.disks.zfs()),
                [kind @ ("qemu" | "lxc"), vmid, "status", action] if post => {
                    guest_action(shared, node, kind, vmid, action)
                }
                ["tasks", upid, "status"] if get => task_status(shared, node, upid),
                _ => error(501, &format!("Method '{method} {path}' not implemented")),
            }
        }
        _ => error(501, &format!("Method '{method} {path}' not implemented")),
    }
}

fn resources(cluster: &FakeCluster) -> Value {
    let mut entries = Vec::new();
    for node in &cluster.nodes {
        let mut entry = json!({
            "id": format!("node/{}", node.name), "type": "node", "node": node.name,
            "status": if node.online { "online" } else { "offline" }, "level": "",
            "cgroup-mode": 2,
        });
        if node.online {
            let stats = json!({
                "uptime": node.uptime, "cpu": node.cpu, "maxcpu": node.maxcpu, "mem": node.mem,
                "maxmem": node.maxmem, "disk": node.disk, "maxdisk": node.maxdisk,
            });
            merge(&mut entry, stats);
        }
        entries.push(entry);
    }
    for g in &cluster.guests {
        let running = g.is_running();
        let mut entry = json!({
            "id": g.id(), "type": g.kind.api_name(), "vmid": g.vmid, "node": g.node,
            "status": g.status, "template": u8::from(g.template),
            "uptime": if running { 86_400 } else { 0 },
            "cpu": if running { 0.023 } else { 0.0 }, "maxcpu": g.maxcpu,
            "mem": if running { g.maxmem / 3 } else { 0 }, "maxmem": g.maxmem,
            "disk": 0, "maxdisk": g.maxdisk,
            "netin": if running { 123_456_789 } else { 0 },
            "netout": if running { 98_765_432 } else { 0 },
            "diskread": if running { 2_147_483_648_u64 } else { 0 },
            "diskwrite": if running { 1_073_741_824 } else { 0 },
        });
        if let Some(name) = &g.name {
            merge(&mut entry, json!({ "name": name }));
        }
        if !g.tags.is_empty() {
            merge(&mut entry, json!({ "tags": g.tags.join(";") }));
        }
        if let Some(lock) = &g.lock {
            merge(&mut entry, json!({ "lock": lock }));
        }
        if let Some(pool) = &g.pool {
            merge(&mut entry, json!({ "pool": pool }));
        }
        entries.push(entry);
    }
    for s in &cluster.storages {
        entries.push(json!({
            "id": format!("storage/{}/{}", s.node, s.storage), "type": "storage",
            "storage": s.storage, "node": s.node, "plugintype": s.plugintype,
            "status": if s.available { "available" } else { "unknown" },
            "shared": u8::from(s.shared), "content": s.content,
            "disk": s.used, "maxdisk": s.total,
        }));
    }
    // Types Jarvis ignores are in the real answer too.
    entries.push(json!({ "id": "pool/home", "type": "pool", "pool": "home" }));
    if let Some(node) = cluster.nodes.first() {
        entries.push(json!({
            "id": format!("sdn/{}/localnetwork", node.name), "type": "sdn",
            "sdn": "localnetwork", "node": node.name, "status": "ok",
        }));
    }
    Value::Array(entries)
}

fn merge(entry: &mut Value, more: Value) {
    if let (Value::Object(entry), Value::Object(more)) = (entry, more) {
        entry.extend(more);
    }
}

fn cluster_status(cluster: &FakeCluster) -> Value {
    let mut entries = Vec::new();
    if let Some(name) = &cluster.name {
        let online = cluster.nodes.iter().filter(|n| n.online).count();
        entries.push(json!({
            "type": "cluster", "id": "cluster", "name": name, "nodes": cluster.nodes.len(),
            "quorate": u8::from(online * 2 > cluster.nodes.len()), "version": 7,
        }));
    }
    for (i, node) in cluster.nodes.iter().enumerate() {
        entries.push(json!({
            "type": "node", "id": format!("node/{}", node.name), "name": node.name,
            "nodeid": i + 1, "ip": node.ip, "online": u8::from(node.online),
            "local": u8::from(i == 0), "level": "",
        }));
    }
    Value::Array(entries)
}

fn node_status(node: &FakeNode) -> Value {
    json!({
        "uptime": node.uptime, "idle": 0, "cpu": node.cpu, "wait": 0.0011,
        "loadavg": ["0.42", "0.51", "0.47"],
        "memory": {"total": node.maxmem, "used": node.mem,
                   "free": node.maxmem - node.mem, "available": node.maxmem - node.mem},
        "swap": {"total": 8_589_934_592_u64, "used": 0, "free": 8_589_934_592_u64},
        "ksm": {"shared": 0},
        "rootfs": {"total": node.maxdisk, "used": node.disk,
                   "avail": node.maxdisk - node.disk, "free": node.maxdisk - node.disk},
        "cpuinfo": {"model": "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", "cpus": node.maxcpu,
                    "cores": node.maxcpu / 2, "sockets": 1, "mhz": "3200.000"},
        "kversion": "Linux 6.8.12-4-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-4",
        "current-kernel": {"sysname": "Linux", "release": "6.8.12-4-pve",
                           "version": "#1 SMP", "machine": "x86_64"},
        "boot-info": {"mode": "efi", "secureboot": 0},
        "pveversion": "pve-manager/9.1.2/0123abcd",
    })
}

fn updates(count: usize) -> Value {
    Value::Array(
        (0..count)
            .map(|i| {
                json!({
                    "Package": format!("package-{i}"), "Title": "an update",
                    "OldVersion": "1.0", "Version": "1.1", "Origin": "Proxmox",
                    "Priority": "optional", "Section": "admin", "Arch": "amd64",
                })
            })
            .collect(),
    )
}

fn guest_action(shared: &Shared, node: &str, kind: &str, vmid: &str, action: &str) -> Response {
    let Ok(vmid) = vmid.parse::<u32>() else {
        return error(400, "Parameter verification failed.");
    };
    let cluster = lock(&shared.cluster);
    let Some(guest) = cluster
        .guests
        .iter()
        .find(|g| g.vmid == vmid && g.node == node && g.kind.api_name() == kind)
        .cloned()
    else {
        let dir = if kind == "qemu" { "qemu-server" } else { "lxc" };
        return error(
            500,
            &format!("Configuration file 'nodes/{node}/{dir}/{vmid}.conf' does not exist"),
        );
    };
    if guest.template && action == "start" {
        return error(500, "you can't start a vm if it's a template");
    }
    let (task_type, effect, precondition) = match (kind, action) {
        ("qemu", "start") => ("qmstart", "running", !guest.is_running()),
        ("qemu", "shutdown") => ("qmshutdown", "stopped", guest.is_running()),
        ("qemu", "stop") => ("qmstop", "stopped", true),
        ("qemu", "reboot") => ("qmreboot", "running", guest.is_running()),
        ("lxc", "start") => ("vzstart", "running", !guest.is_running()),
        ("lxc", "shutdown") => ("vzshutdown", "stopped", guest.is_running()),
        ("lxc", "stop") => ("vzstop", "stopped", true),
        ("lxc", "reboot") => ("vzreboot", "running", guest.is_running()),
        _ => return error(501, &format!("Method 'POST {action}' not implemented")),
    };
    drop(cluster);

    let mut knobs = lock(&shared.knobs);
    let exit = if let Some(lock) = &guest.lock {
        format!("VM is locked ({lock})")
    } else if let Some(failure) = knobs.task_failures.pop_front() {
        failure
    } else if !precondition {
        if action == "start" {
            format!("VM {vmid} already running")
        } else {
            format!("VM {vmid} not running")
        }
    } else {
        "OK".into()
    };
    let finish_after = (!knobs.tasks_never_end).then_some(knobs.task_delay);
    drop(knobs);

    let n = shared.task_counter.fetch_add(1, Ordering::SeqCst);
    let start = 0x66F0_A1B2 + n;
    let upid = format!(
        "UPID:{node}:{:08X}:{:08X}:{start:08X}:{task_type}:{vmid}:{TOKEN_ID}:",
        0x000A_1B2C + n,
        0x03F2_E1D0 + n
    );
    lock(&shared.tasks).insert(
        upid.clone(),
        Task {
            node: node.into(),
            created: Instant::now(),
            finish_after,
            exit,
            effect: Some((vmid, effect)),
            applied: false,
            more: None,
        },
    );
    data(Value::String(upid))
}

fn task_status(shared: &Shared, node: &str, upid: &str) -> Response {
    let tasks = lock(&shared.tasks);
    let Some(task) = tasks.get(upid).filter(|t| t.node == node) else {
        return error(500, &format!("no such task '{upid}'"));
    };
    let field = |i: usize| upid.split(':').nth(i).unwrap_or_default().to_owned();
    let done = task
        .finish_after
        .is_some_and(|d| task.created.elapsed() >= d);
    let mut body = json!({
        "upid": upid, "node": node, "pid": u64::from_str_radix(&field(2), 16).unwrap_or(0),
        "pstart": u64::from_str_radix(&field(3), 16).unwrap_or(0),
        "starttime": u64::from_str_radix(&field(4), 16).unwrap_or(0),
        "type": field(5), "id": field(6), "user": TOKEN_ID,
        "status": if done { "stopped" } else { "running" },
    });
    if done {
        merge(&mut body, json!({ "exitstatus": task.exit }));
    }
    data(body)
}

// ---- Node power, snapshots, migration (tests/common/fake_proxmox_actions.rs) ----
#[path = "fake_proxmox_actions.rs"]
pub mod actions;

// --- disks and ZFS ------------------------------------------------------------------------
// `GET /nodes/{node}/disks/list` and `/disks/zfs`, in the shapes of the PVE API schema
// (`wearout` is the percentage of life left, or `N/A`; `health` is SMART's `PASSED`/`OK`/
// `FAILED`/`UNKNOWN`; pool `health` is zpool's `ONLINE`/`DEGRADED`/...). Each node starts with
// two healthy SSDs in an `ONLINE` `rpool` and an HDD for LVM; tests break them as they need.

/// One physical disk.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeDisk {
    pub devpath: String,
    /// `hdd`, `ssd`, `nvme`.
    pub kind: String,
    pub model: String,
    pub health: String,
    /// Life left in percent; `None` sends `N/A`.
    pub wearout: Option<u8>,
    pub used: String,
}

/// One ZFS pool.
#[derive(Debug, Clone, PartialEq)]
pub struct FakePool {
    pub name: String,
    pub health: String,
}

/// A node's disks and pools.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeDisks {
    pub disks: Vec<FakeDisk>,
    pub pools: Vec<FakePool>,
}

impl FakeDisks {
    pub fn healthy() -> Self {
        let disk =
            |devpath: &str, kind: &str, model: &str, wearout: Option<u8>, used: &str| FakeDisk {
                devpath: devpath.into(),
                kind: kind.into(),
                model: model.into(),
                health: "PASSED".into(),
                wearout,
                used: used.into(),
            };
        Self {
            disks: vec![
                disk(
                    "/dev/nvme0n1",
                    "nvme",
                    "Samsung SSD 980 PRO 1TB",
                    Some(96),
                    "ZFS",
                ),
                disk(
                    "/dev/sda",
                    "ssd",
                    "Samsung SSD 870 EVO 1TB",
                    Some(88),
                    "ZFS",
                ),
                disk("/dev/sdb", "hdd", "WDC WD40EFRX-68N32N0", None, "LVM"),
            ],
            pools: vec![FakePool {
                name: "rpool".into(),
                health: "ONLINE".into(),
            }],
        }
    }

    fn list(&self) -> Value {
        let disks = self.disks.iter().enumerate().map(|(i, d)| {
            json!({
                "devpath": d.devpath, "type": d.kind, "model": d.model,
                "serial": format!("S{i:05}X"), "vendor": "ATA", "size": 1_000_204_886_016_u64,
                "health": d.health,
                "wearout": d.wearout.map_or_else(|| json!("N/A"), |w| json!(w)),
                "used": d.used, "gpt": 1, "mounted": 0, "osdid": -1, "osdid-list": null,
                "rpm": if d.kind == "hdd" { json!(5400) } else { json!(0) },
                "wwn": format!("0x5002538e{i:08x}"), "by_id_link": format!("/dev/disk/by-id/ata-{i}"),
            })
        });
        Value::Array(disks.collect())
    }

    fn zfs(&self) -> Value {
        let pools = self.pools.iter().map(|p| {
            json!({
                "name": p.name, "health": p.health, "size": 996_432_412_672_u64,
                "alloc": 412_316_860_416_u64, "free": 584_115_552_256_u64, "frag": 7,
                "dedup": 1.0,
            })
        });
        Value::Array(pools.collect())
    }
}

impl FakeProxmox {
    /// Changes one disk of `node` (found by `devpath`).
    pub fn edit_disk(&self, node: &str, devpath: &str, edit: impl FnOnce(&mut FakeDisk)) {
        self.with_cluster(|c| {
            let disk = c
                .node_mut(node)
                .and_then(|n| n.disks.disks.iter_mut().find(|d| d.devpath == devpath));
            if let Some(disk) = disk {
                edit(disk);
            }
        });
    }

    /// Sets a disk's SMART health (`FAILED`...).
    pub fn set_disk_health(&self, node: &str, devpath: &str, health: &str) {
        self.edit_disk(node, devpath, |d| d.health = health.into());
    }

    /// Sets a pool's health (`DEGRADED`...), adding the pool when the node has none by that name.
    pub fn set_pool_health(&self, node: &str, pool: &str, health: &str) {
        self.with_cluster(|c| {
            if let Some(n) = c.node_mut(node) {
                match n.disks.pools.iter_mut().find(|p| p.name == pool) {
                    Some(p) => p.health = health.into(),
                    None => n.disks.pools.push(FakePool {
                        name: pool.into(),
                        health: health.into(),
                    }),
                }
            }
        });
    }
}

// === Backups and tasks (issue #15) ================================================================
//
// vzdump tasks (with their logs), other tasks, and backup archives on storages, served as
// `GET /cluster/tasks`, `GET /nodes/{n}/tasks` (`typefilter`, `since`, `errors`, `limit`),
// `GET /nodes/{n}/tasks/{upid}/log` and `GET /nodes/{n}/storage/{s}/content?content=backup`,
// in the shapes of the PVE API viewer. `forbid_storage` makes a storage's content answer 403.

/// A finished (or running) task in the fake's task lists.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeTask {
    pub upid: String,
    pub node: String,
    pub kind: String,
    /// `""` for a vzdump job over several guests.
    pub id: String,
    pub user: String,
    pub start: i64,
    /// `None`: still running.
    pub end: Option<i64>,
    /// Exit status (`OK`, `WARNINGS: 1`, `job errors`, ...); `None` while running.
    pub status: Option<String>,
    pub log: Vec<String>,
}

static FAKE_PIDS: AtomicUsize = AtomicUsize::new(0x0010_0000);

impl FakeTask {
    /// Any task, ended `duration` seconds after `start` with `status`.
    pub fn new(node: &str, kind: &str, id: &str, start: i64, status: &str) -> Self {
        let pid = FAKE_PIDS.fetch_add(1, Ordering::SeqCst);
        let upid = format!(
            "UPID:{node}:{pid:08X}:{:08X}:{start:08X}:{kind}:{id}:root@pam:",
            pid * 3
        );
        Self {
            upid,
            node: node.into(),
            kind: kind.into(),
            id: id.into(),
            user: "root@pam".into(),
            start,
            end: Some(start + 60),
            status: Some(status.into()),
            log: vec![if status == "OK" {
                "TASK OK".to_owned()
            } else {
                format!("TASK ERROR: {status}")
            }],
        }
    }

    /// A vzdump job on `node` over several guests, with vzdump's log; the status follows from
    /// the guests (`OK`, `WARNINGS: n` or `job errors`).
    pub fn vzdump(
        node: &str,
        start: i64,
        ok: &[u32],
        warned: &[u32],
        failed: &[(u32, &str)],
    ) -> Self {
        let mut guests: Vec<u32> = ok.iter().chain(warned).copied().collect();
        guests.extend(failed.iter().map(|(v, _)| *v));
        guests.sort_unstable();
        let list: Vec<String> = guests.iter().map(u32::to_string).collect();
        let mut log = vec![format!(
            "INFO: starting new backup job: vzdump {} --mode snapshot --storage nas",
            list.join(" ")
        )];
        for vmid in &guests {
            log.push(format!("INFO: Starting Backup of VM {vmid} (qemu)"));
            if let Some((_, why)) = failed.iter().find(|(v, _)| v == vmid) {
                log.push(format!("ERROR: Backup of VM {vmid} failed - {why}"));
                continue;
            }
            if warned.contains(vmid) {
                log.push("WARN: unable to connect to the guest agent".into());
            }
            log.push(format!(
                "INFO: creating vzdump archive 'vzdump-qemu-{vmid}.vma.zst'"
            ));
            log.push(format!("INFO: Finished Backup of VM {vmid} (00:00:42)"));
        }
        let status = if !failed.is_empty() {
            log.push("INFO: Backup job finished with errors".into());
            log.push("TASK ERROR: job errors".into());
            "job errors".to_owned()
        } else if !warned.is_empty() {
            log.push("INFO: Backup job finished successfully".into());
            log.push(format!("TASK WARNINGS: {}", warned.len()));
            format!("WARNINGS: {}", warned.len())
        } else {
            log.push("INFO: Backup job finished successfully".into());
            log.push("TASK OK".into());
            "OK".to_owned()
        };
        let mut task = Self::new(node, "vzdump", "", start, &status);
        task.end = Some(start + 600);
        task.log = log;
        task
    }

    /// Still running.
    pub fn running(mut self) -> Self {
        self.end = None;
        self.status = None;
        self
    }

    fn json(&self) -> Value {
        let field = |i: usize| self.upid.split(':').nth(i).unwrap_or_default().to_owned();
        let mut entry = json!({
            "upid": self.upid, "node": self.node,
            "pid": u64::from_str_radix(&field(2), 16).unwrap_or(0),
            "pstart": u64::from_str_radix(&field(3), 16).unwrap_or(0),
            "starttime": self.start, "type": self.kind, "id": self.id, "user": self.user,
        });
        if let (Some(end), Some(status)) = (self.end, &self.status) {
            merge(
                &mut entry,
                json!({ "endtime": end, "status": status, "saved": "1" }),
            );
        }
        entry
    }
}

/// A backup archive on a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeBackup {
    pub storage: String,
    /// The node whose local storage holds it (ignored for shared storages).
    pub node: String,
    pub vmid: u32,
    pub ctime: i64,
    pub size: u64,
    pub notes: Option<String>,
    pub protected: bool,
    /// PBS verification state.
    pub verification: Option<String>,
}

impl FakeBackup {
    pub fn new(storage: &str, node: &str, vmid: u32, ctime: i64, size: u64) -> Self {
        Self {
            storage: storage.into(),
            node: node.into(),
            vmid,
            ctime,
            size,
            notes: None,
            protected: false,
            verification: None,
        }
    }

    fn json(&self, kind: &str) -> Value {
        let (subtype, ext) = if kind == "lxc" {
            ("lxc", "tar.zst")
        } else {
            ("qemu", "vma.zst")
        };
        let stamp = jiff::Timestamp::from_second(self.ctime)
            .map(|t| t.strftime("%Y_%m_%d-%H_%M_%S").to_string())
            .unwrap_or_default();
        let mut entry = json!({
            "volid": format!("{}:backup/vzdump-{subtype}-{}-{stamp}.{ext}", self.storage, self.vmid),
            "content": "backup", "ctime": self.ctime, "format": ext, "size": self.size,
            "subtype": subtype, "vmid": self.vmid, "protected": u8::from(self.protected),
        });
        if let Some(notes) = &self.notes {
            merge(&mut entry, json!({ "notes": notes }));
        }
        if let Some(state) = &self.verification {
            merge(
                &mut entry,
                json!({ "verification": {"state": state, "upid": "UPID:pbs"} }),
            );
        }
        entry
    }
}

/// The fake's task history and archives.
#[derive(Debug, Default)]
pub struct FakeBackups {
    pub tasks: Vec<FakeTask>,
    pub files: Vec<FakeBackup>,
}

/// Now, in seconds since the epoch.
pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl FakeProxmox {
    pub fn add_task(&self, task: FakeTask) {
        lock(&self.shared.backups).tasks.push(task);
    }

    pub fn add_backup(&self, backup: FakeBackup) {
        lock(&self.shared.backups).files.push(backup);
    }

    /// Reads or changes the task history and archives.
    pub fn with_backups<R>(&self, f: impl FnOnce(&mut FakeBackups) -> R) -> R {
        f(&mut lock(&self.shared.backups))
    }

    /// 403 `Permission check failed (/storage/<id>, Datastore.Audit)` for the storage's
    /// content on every node.
    pub fn forbid_storage(&self, storage: &str) {
        let nodes: Vec<String> =
            self.with_cluster(|c| c.nodes.iter().map(|n| n.name.clone()).collect());
        for node in nodes {
            self.forbid(
                &format!("GET /nodes/{node}/storage/{storage}/content"),
                &format!("/storage/{storage}"),
                "Datastore.Audit|Datastore.AllocateSpace",
            );
        }
    }

    /// The homelab's backups as of `now`: last night's job (started `now` - 10 h) backed up
    /// haos (100) on pve and media-server (101, with a warning), and failed for nextcloud (104,
    /// `VM 104 is locked (snapshot)`) on agent1; nextcloud's last archive is 3 days old, pihole's
    /// (102) 12 days, frigate (103) has none. Starting nextcloud failed 2 h ago; a failed
    /// migration 30 h ago is older than a day.
    pub fn homelab_backups(&self, now: i64) {
        let night = now - 10 * 3600;
        self.add_task(FakeTask::vzdump("pve", night, &[100], &[101], &[]));
        self.add_task(FakeTask::vzdump(
            "agent1",
            night,
            &[],
            &[],
            &[(104, "VM 104 is locked (snapshot)")],
        ));
        self.add_task(FakeTask::vzdump(
            "pve",
            night - 86_400,
            &[100, 101],
            &[],
            &[],
        ));
        self.add_task(FakeTask::vzdump(
            "agent1",
            night - 86_400,
            &[],
            &[],
            &[(104, "VM 104 is locked (snapshot)")],
        ));
        self.add_task(FakeTask::vzdump(
            "agent1",
            now - 3 * 86_400,
            &[104],
            &[],
            &[],
        ));
        self.add_task(FakeTask::new(
            "agent1",
            "qmstart",
            "104",
            now - 2 * 3600,
            "VM 104 is locked (snapshot)",
        ));
        self.add_task(FakeTask::new("pve", "qmstart", "100", now - 3600, "OK"));
        self.add_task(FakeTask::new(
            "pve",
            "qmigrate",
            "101",
            now - 30 * 3600,
            "migration aborted",
        ));
        self.add_backup(FakeBackup::new("nas", "pve", 100, night + 30, 2 << 30));
        self.add_backup(FakeBackup::new(
            "nas",
            "pve",
            100,
            night - 86_400 + 30,
            2 << 30,
        ));
        self.add_backup(FakeBackup::new("nas", "pve", 101, night + 90, 8 << 30));
        self.add_backup(FakeBackup::new(
            "nas",
            "agent1",
            104,
            now - 3 * 86_400 + 30,
            3 << 30,
        ));
        self.add_backup(FakeBackup::new(
            "local",
            "pve",
            102,
            now - 12 * 86_400,
            512 << 20,
        ));
    }
}

fn query_param<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The backup and task paths; `None` for every other path.
fn backups_route(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Option<Response> {
    if method != Method::GET {
        return None;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let backups = || lock(&shared.backups);
    match segments.as_slice() {
        ["cluster", "tasks"] => {
            let mut tasks: Vec<FakeTask> = backups().tasks.clone();
            tasks.sort_by_key(|t| std::cmp::Reverse(t.start));
            Some(data(Value::Array(
                tasks.iter().map(FakeTask::json).collect(),
            )))
        }
        ["nodes", node, rest @ ..]
            if matches!(
                rest,
                ["tasks"] | ["tasks", _, "log"] | ["storage", _, "content"]
            ) =>
        {
            let cluster = lock(&shared.cluster);
            let Some(found) = cluster.nodes.iter().find(|n| n.name == *node) else {
                return Some(error(595, &format!("no such node '{node}'")));
            };
            if !found.online {
                return Some(error(
                    595,
                    &format!("Connection refused ({node} is offline)"),
                ));
            }
            match rest {
                ["tasks"] => {
                    let typefilter = query_param(query, "typefilter");
                    let since: i64 = query_param(query, "since")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let errors = query_param(query, "errors") == Some("1");
                    let limit: usize = query_param(query, "limit")
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(50);
                    let mut tasks: Vec<FakeTask> = backups()
                        .tasks
                        .iter()
                        .filter(|t| t.node == *node && t.start >= since)
                        .filter(|t| typefilter.is_none_or(|k| t.kind == k))
                        .filter(|t| !errors || t.status.as_deref().is_some_and(|s| s != "OK"))
                        .cloned()
                        .collect();
                    tasks.sort_by_key(|t| std::cmp::Reverse(t.start));
                    tasks.truncate(limit);
                    Some(data(Value::Array(
                        tasks.iter().map(FakeTask::json).collect(),
                    )))
                }
                ["tasks", upid, "log"] => {
                    let limit: usize = query_param(query, "limit")
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(50);
                    let store = backups();
                    let Some(task) = store
                        .tasks
                        .iter()
                        .find(|t| t.upid == *upid && t.node == *node)
                    else {
                        return Some(error(500, &format!("no such task '{upid}'")));
                    };
                    let lines: Vec<Value> = task
                        .log
                        .iter()
                        .take(limit)
                        .enumerate()
                        .map(|(i, t)| json!({"n": i + 1, "t": t}))
                        .collect();
                    Some(data(Value::Array(lines)))
                }
                ["storage", storage, "content"] => {
                    let Some(config) = cluster
                        .storages
                        .iter()
                        .find(|s| s.storage == *storage && s.node == *node)
                    else {
                        return Some(error(500, &format!("storage '{storage}' does not exist")));
                    };
                    let shared_storage = config.shared;
                    if query_param(query, "content").is_some_and(|c| c != "backup") {
                        return Some(data(Value::Array(Vec::new())));
                    }
                    let kinds: HashMap<u32, &'static str> = cluster
                        .guests
                        .iter()
                        .map(|g| (g.vmid, g.kind.api_name()))
                        .collect();
                    let files: Vec<Value> = backups()
                        .files
                        .iter()
                        .filter(|f| f.storage == *storage && (shared_storage || f.node == *node))
                        .map(|f| f.json(kinds.get(&f.vmid).copied().unwrap_or("qemu")))
                        .collect();
                    Some(data(Value::Array(files)))
                }
                _ => None,
            }
        }
        _ => None,
    }
}
