//! The Proxmox VE REST client: API-token auth, node failover, read retries, the shared cache,
//! and guest actions followed to their task's end.
//!
//! Every request goes to the node that answered last, then to the others in configured order
//! (any node answers for the whole cluster, §4.1). A node counts as down when no connection or
//! TLS session can be made, or, for reads, when it does not answer in time. Reads are retried
//! with exponential backoff when the failure may pass (every node down, a 5xx); a timeout is
//! not retried, as it already cost the full timeout. Actions are sent once, and only move to
//! another node when the connection failed before the request left.
//!
//! The token secret lives only in the `Authorization` header value, which is marked sensitive;
//! `Debug`, errors and logs never see it.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::cache::{Slot, Slots};
use super::error::{ProxmoxError, privilege_hint};
use super::model::{
    ClusterStatus, GuestAction, GuestRef, Inventory, NodeStatus, TaskOutcome, TaskResult,
};
use super::{tls, wire};
use crate::config::ProxmoxConfig;

/// Largest answer accepted: a big cluster's `/cluster/resources` is a few MB.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// First pause between read retries; doubled each time.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// What a UPID is percent-encoded with in a path (everything but `A-Za-z0-9-_.~`, like
/// JavaScript's `encodeURIComponent` plus `!`, `'`, `(`, `)`, `*`).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Every duration the client uses. [`Timings::from_config`] reads them from `[proxmox]`; tests
/// shorten them to milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// A whole request, connection included.
    pub timeout: Duration,
    /// Establishing a connection (TCP and TLS) to one node.
    pub connect_timeout: Duration,
    /// First pause between read retries (doubled each time).
    pub retry_backoff: Duration,
    /// `/cluster/resources`.
    pub resources_ttl: Duration,
    /// `/cluster/status` and `/nodes/{node}/status`.
    pub node_status_ttl: Duration,
    /// `/nodes/{node}/apt/update`.
    pub updates_ttl: Duration,
    /// Between two task polls.
    pub task_poll: Duration,
    /// Longest wait for a task.
    pub task_timeout: Duration,
}

impl Timings {
    /// The durations in `[proxmox]`.
    pub fn from_config(config: &ProxmoxConfig) -> Self {
        Self {
            timeout: Duration::from_secs(config.timeout_secs),
            connect_timeout: Duration::from_secs(config.connect_timeout_secs),
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            resources_ttl: Duration::from_secs(config.resources_ttl_secs),
            node_status_ttl: Duration::from_secs(config.node_status_ttl_secs),
            updates_ttl: Duration::from_secs(config.updates_ttl_secs),
            task_poll: Duration::from_millis(config.task_poll_ms),
            task_timeout: Duration::from_secs(config.task_timeout_secs),
        }
    }
}

/// How the connection to Proxmox is doing, for `/health` and the MQTT status entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxmoxHealth {
    /// The latest request got an HTTP answer from a node (possibly an error such as 403).
    pub reachable: bool,
    /// Why the latest request failed; `None` once one succeeds again.
    pub last_error: Option<String>,
    /// Seconds since the last successful request.
    pub last_success_secs_ago: Option<u64>,
    /// The node URL requests go to first (the last one that answered).
    pub node_url: Option<String>,
}

#[derive(Debug, Default)]
struct HealthState {
    requested: bool,
    reachable: bool,
    last_error: Option<String>,
    last_success: Option<Instant>,
}

/// A Proxmox VE cluster. Cheap to clone: clones share the connection pool, cache and health.
#[derive(Clone)]
pub struct Proxmox {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Base URLs without a trailing slash, e.g. `https://192.168.1.11:8006`.
    bases: Vec<String>,
    token_id: String,
    /// `PVEAPIToken=<id>=<secret>`, marked sensitive.
    auth: HeaderValue,
    read_retries: u32,
    timings: Timings,
    /// Index into `bases` of the node tried first.
    preferred: AtomicUsize,
    inventory: Slot<Inventory>,
    cluster: Slot<ClusterStatus>,
    nodes: Slots<NodeStatus>,
    updates: Slots<usize>,
    /// Disks and ZFS pools per node (see [`super::disks`]).
    disks: Slots<super::disks::NodeDisks>,
    backups: super::backups::BackupCache,
    health: Mutex<HealthState>,
}

impl fmt::Debug for Proxmox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxmox")
            .field("urls", &self.inner.bases)
            .field("token_id", &self.inner.token_id)
            .field("token_secret", &"<redacted>")
            .field("timings", &self.inner.timings)
            .finish_non_exhaustive()
    }
}

/// GET is retried and may move to another node after a timeout; POST is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Action,
}

/// Why one node did not answer.
enum NodeFailure {
    /// No connection (refused, no route, connect timeout, connection lost before an answer).
    Down(String),
    /// Connected, but no answer within the timeout.
    Timeout,
    /// The certificate was refused.
    Tls(ProxmoxError),
}

impl Proxmox {
    /// A client for the configured cluster. Reads the secret file and CA file, but does no
    /// network I/O: the first request connects.
    ///
    /// # Errors
    /// [`ProxmoxError::Config`] when there is no node URL or no token secret, or a file cannot
    /// be read.
    pub fn new(config: &ProxmoxConfig) -> Result<Self, ProxmoxError> {
        Self::with_timings(config, Timings::from_config(config))
    }

    /// [`Proxmox::new`] with explicit durations (tests use milliseconds).
    ///
    /// # Errors
    /// As [`Proxmox::new`].
    pub fn with_timings(config: &ProxmoxConfig, timings: Timings) -> Result<Self, ProxmoxError> {
        if config.urls.is_empty() {
            return Err(ProxmoxError::Config(
                "proxmox.urls is empty; add a node such as \"https://192.168.1.11:8006\"".into(),
            ));
        }
        let secret = match (&config.token_secret, &config.token_secret_file) {
            (Some(secret), _) => secret.expose().trim().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|err| {
                    ProxmoxError::Config(format!(
                        "cannot read proxmox.token_secret_file {}: {err}",
                        path.display()
                    ))
                })?
                .trim()
                .to_owned(),
            (None, None) => String::new(),
        };
        if secret.is_empty() {
            return Err(ProxmoxError::Config(
                "no API token secret: set proxmox.token_secret_file (a file holding only the \
                 secret), JARVIS_PROXMOX_TOKEN_SECRET, or proxmox.token_secret"
                    .into(),
            ));
        }
        let mut auth =
            HeaderValue::from_str(&format!("PVEAPIToken={}={secret}", config.token_id.trim()))
                .map_err(|_| {
                    ProxmoxError::Config(
                "proxmox.token_id or the token secret holds characters that cannot be sent in a \
                 header (a line break or control character?)"
                    .into(),
            )
                })?;
        auth.set_sensitive(true);

        let bases: Vec<String> = config.urls.iter().map(base_url).collect();
        for url in &config.urls {
            let loopback = url.host().is_some_and(|host| match host {
                url::Host::Domain(d) => d == "localhost",
                url::Host::Ipv4(ip) => ip.is_loopback(),
                url::Host::Ipv6(ip) => ip.is_loopback(),
            });
            if url.scheme() == "http" && !loopback {
                warn!(
                    url = %url,
                    "proxmox URL uses plain http: the API token crosses the network unencrypted; \
                     use https://<node>:8006"
                );
            }
        }

        let builder = reqwest::Client::builder()
            .user_agent(concat!("jarvis/", env!("CARGO_PKG_VERSION")))
            .timeout(timings.timeout)
            .connect_timeout(timings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            // The token must go straight to the node, never to a proxy from the environment.
            .no_proxy();
        let http = tls::configure(builder, config)?
            .build()
            .map_err(|err| ProxmoxError::Config(format!("cannot set up HTTPS: {err}")))?;

        Ok(Self {
            inner: Arc::new(Inner {
                http,
                bases,
                token_id: config.token_id.trim().to_owned(),
                auth,
                read_retries: config.read_retries,
                timings,
                preferred: AtomicUsize::new(0),
                inventory: Slot::default(),
                cluster: Slot::default(),
                nodes: Slots::default(),
                updates: Slots::default(),
                disks: Slots::default(),
                backups: super::backups::BackupCache::new(config),
                health: Mutex::new(HealthState::default()),
            }),
        })
    }

    /// Nodes, guests and storages (`/cluster/resources`), at most `resources_ttl` old.
    /// Concurrent callers share one request.
    ///
    /// # Errors
    /// See [`ProxmoxError`]; the last good snapshot stays available from
    /// [`Proxmox::cached_inventory`].
    pub async fn inventory(&self) -> Result<Arc<Inventory>, ProxmoxError> {
        let ttl = self.inner.timings.resources_ttl;
        self.inner
            .inventory
            .get(Some(ttl), || self.fetch_inventory())
            .await
    }

    /// A new `/cluster/resources` snapshot, whatever the cache holds (the MQTT poll, after an
    /// action). Callers at the same moment still share one request.
    ///
    /// # Errors
    /// See [`ProxmoxError`].
    pub async fn refresh_inventory(&self) -> Result<Arc<Inventory>, ProxmoxError> {
        self.inner
            .inventory
            .get(None, || self.fetch_inventory())
            .await
    }

    async fn fetch_inventory(&self) -> Result<Inventory, ProxmoxError> {
        let entries: Vec<Value> = self.get("/cluster/resources").await?;
        Ok(wire::inventory(entries))
    }

    /// The last good inventory and when it was fetched, however old. No I/O.
    pub fn cached_inventory(&self) -> Option<(Arc<Inventory>, Instant)> {
        self.inner.inventory.snapshot()
    }

    /// Every new inventory as it is fetched, by anyone (the MQTT publisher follows this).
    pub fn subscribe_inventory(&self) -> watch::Receiver<Option<Arc<Inventory>>> {
        self.inner.inventory.subscribe()
    }

    /// Quorum and membership (`/cluster/status`), at most `node_status_ttl` old.
    ///
    /// # Errors
    /// See [`ProxmoxError`].
    pub async fn cluster_status(&self) -> Result<Arc<ClusterStatus>, ProxmoxError> {
        let ttl = self.inner.timings.node_status_ttl;
        self.inner
            .cluster
            .get(Some(ttl), || async {
                let entries: Vec<Value> = self.get("/cluster/status").await?;
                Ok(wire::cluster_status(entries))
            })
            .await
    }

    /// A node's details (`/nodes/{node}/status`), at most `node_status_ttl` old.
    ///
    /// # Errors
    /// See [`ProxmoxError`]; a name that cannot be a node is a 400 [`ProxmoxError::Server`].
    pub async fn node_status(&self, node: &str) -> Result<Arc<NodeStatus>, ProxmoxError> {
        check_name(node)?;
        let ttl = self.inner.timings.node_status_ttl;
        let slot = self.inner.nodes.slot(node);
        slot.get(Some(ttl), || async {
            let raw: wire::RawNodeStatus = self.get(&format!("/nodes/{node}/status")).await?;
            Ok(NodeStatus::from(raw))
        })
        .await
    }

    /// How many package updates a node has pending (`GET /nodes/{node}/apt/update`, the list
    /// from the node's last `apt update`), at most `updates_ttl` old.
    ///
    /// # Errors
    /// See [`ProxmoxError`].
    pub async fn pending_updates(&self, node: &str) -> Result<usize, ProxmoxError> {
        check_name(node)?;
        let ttl = self.inner.timings.updates_ttl;
        let slot = self.inner.updates.slot(node);
        let count = slot
            .get(Some(ttl), || async {
                let list: Vec<Value> = self.get(&format!("/nodes/{node}/apt/update")).await?;
                Ok(list.len())
            })
            .await?;
        Ok(*count)
    }

    /// Starts, shuts down, stops or reboots a guest and returns the task's UPID; follow it with
    /// [`Proxmox::wait_task`]. Sent once, never retried (it is not idempotent in effect: a
    /// second `reboot` reboots twice). The cached inventory is invalidated.
    ///
    /// # Errors
    /// See [`ProxmoxError`]. A 500 carries Proxmox's reason, e.g. `VM 101 is locked (backup)`.
    pub async fn guest_action(
        &self,
        guest: &GuestRef,
        action: GuestAction,
    ) -> Result<String, ProxmoxError> {
        check_name(&guest.node)?;
        let path = format!(
            "/nodes/{}/{}/{}/status/{}",
            guest.node,
            guest.kind.api_name(),
            guest.vmid,
            action.api_name()
        );
        let result = self.request::<Value>(Kind::Action, &path).await;
        // Whatever happened, the guest may have changed.
        self.invalidate();
        let upid = match result? {
            Value::String(upid) if !upid.is_empty() => upid,
            other => {
                return Err(ProxmoxError::Decode {
                    path,
                    message: format!("expected a task id (UPID), got {other}"),
                });
            }
        };
        info!(
            vmid = guest.vmid,
            node = %guest.node,
            action = %action,
            upid = %upid,
            "proxmox guest action submitted"
        );
        Ok(upid)
    }

    /// Polls a task until it stops or `task_timeout` passes. Poll errors (a node restarting,
    /// a timeout) are retried until then, so the outcome is what Proxmox reports, or
    /// [`TaskResult::TimedOut`]. The cached inventory is invalidated when it returns.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping it only stops the polling.
    pub async fn wait_task(&self, upid: &str) -> TaskOutcome {
        let started = Instant::now();
        let outcome = |node: &str, result: TaskResult| TaskOutcome {
            upid: upid.to_owned(),
            node: node.to_owned(),
            result,
            duration: started.elapsed(),
        };
        let Some(node) = wire::upid_node(upid) else {
            return outcome(
                "",
                TaskResult::Failed {
                    message: format!(
                        "Proxmox returned {upid:?}, which is not a task id Jarvis can follow; \
                         look for the task in the node's task log"
                    ),
                },
            );
        };
        let path = format!(
            "/nodes/{node}/tasks/{}/status",
            utf8_percent_encode(upid, PATH_SEGMENT)
        );
        let deadline = tokio::time::Instant::now() + self.inner.timings.task_timeout;
        let mut failures = 0u32;
        let result = loop {
            let poll = self.request::<wire::TaskStatus>(Kind::Read, &path);
            match tokio::time::timeout_at(deadline, poll).await {
                Ok(Ok(status)) => {
                    if let Some(result) = status.result() {
                        break result;
                    }
                }
                Ok(Err(err)) => {
                    failures += 1;
                    if failures == 1 {
                        warn!(upid, cause = %err, "cannot check a proxmox task; retrying until it times out");
                    } else {
                        debug!(upid, cause = %err, failures, "task poll failed again");
                    }
                }
                Err(_) => break TaskResult::TimedOut,
            }
            if tokio::time::Instant::now() + self.inner.timings.task_poll >= deadline {
                tokio::time::sleep_until(deadline).await;
                break TaskResult::TimedOut;
            }
            tokio::time::sleep(self.inner.timings.task_poll).await;
        };
        self.invalidate();
        self.refresh_in_background();
        let outcome = outcome(node, result);
        info!(
            upid,
            result = ?outcome.result,
            ms = u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
            "proxmox task ended"
        );
        outcome
    }

    /// Fetches the inventory again in the background after an action: the entities in Home
    /// Assistant show the new state at once (the MQTT publisher follows every fetch), and the
    /// next command finds it fresh instead of fetching it itself (in the soak, 1000 guests: the
    /// command after each action took 10-20 ms instead of 1). A command that asks meanwhile
    /// shares this fetch; one that fetched first makes this one a cache hit.
    fn refresh_in_background(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let proxmox = self.clone();
        runtime.spawn(async move {
            if let Err(err) = proxmox.inventory().await {
                debug!(cause = %err, "cannot fetch the inventory after an action");
            }
        });
    }

    /// Marks the cached inventory and node details out of date (after an action).
    pub fn invalidate(&self) {
        self.inner.inventory.invalidate();
        self.inner.nodes.invalidate_all();
    }

    /// How the connection is doing. No I/O.
    pub fn health(&self) -> ProxmoxHealth {
        let state = self
            .inner
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let preferred = self.inner.preferred.load(Ordering::Relaxed);
        ProxmoxHealth {
            reachable: state.requested && state.reachable,
            last_error: state.last_error.clone(),
            last_success_secs_ago: state.last_success.map(|at| at.elapsed().as_secs()),
            node_url: self.inner.bases.get(preferred).cloned(),
        }
    }

    /// The node URLs, in configured order.
    pub fn urls(&self) -> &[String] {
        &self.inner.bases
    }

    /// A node's disks cache slot, and the TTL of slow reads (`updates_ttl`).
    pub(super) fn disks_slot(&self, node: &str) -> (Arc<Slot<super::disks::NodeDisks>>, Duration) {
        (self.inner.disks.slot(node), self.inner.timings.updates_ttl)
    }

    pub(super) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ProxmoxError> {
        self.request(Kind::Read, path).await
    }

    /// A read for the sibling modules (backups, operations): failover, retries, health.
    pub(super) async fn read<T: DeserializeOwned>(&self, path: &str) -> Result<T, ProxmoxError> {
        self.get(path).await
    }

    /// The backups cache (see `super::backups`).
    pub(super) fn backup_cache(&self) -> &super::backups::BackupCache {
        &self.inner.backups
    }

    /// One API call: failover across nodes, retries for reads, health bookkeeping.
    async fn request<T: DeserializeOwned>(
        &self,
        kind: Kind,
        path: &str,
    ) -> Result<T, ProxmoxError> {
        self.request_with(kind, path, &[]).await
    }

    /// A POST with form parameters (node power, snapshots, migration): sent once, like every
    /// action. See [`super::operations`].
    pub(super) async fn post_form<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&'static str, String)],
    ) -> Result<T, ProxmoxError> {
        self.request_with(Kind::Action, path, form).await
    }

    async fn request_with<T: DeserializeOwned>(
        &self,
        kind: Kind,
        path: &str,
        form: &[(&'static str, String)],
    ) -> Result<T, ProxmoxError> {
        let retries = match kind {
            Kind::Read => self.inner.read_retries,
            Kind::Action => 0,
        };
        let mut backoff = self.inner.timings.retry_backoff;
        let mut attempt = 0;
        let result = loop {
            let result = self.request_once(kind, path, form).await;
            match &result {
                // A timeout already cost `timeout` on every node that hung; repeating it
                // would keep a voice reply waiting for nothing.
                Err(err)
                    if attempt < retries
                        && err.is_transient()
                        && !matches!(err, ProxmoxError::Timeout { .. }) =>
                {
                    attempt += 1;
                    debug!(path, attempt, cause = %err, "proxmox read failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                _ => break result,
            }
        };
        self.record(&result);
        let body = result?;
        serde_json::from_slice::<wire::Envelope<T>>(&body)
            .map(|envelope| envelope.data)
            .map_err(|err| ProxmoxError::Decode {
                path: path.to_owned(),
                message: err.to_string(),
            })
    }

    fn record<T>(&self, result: &Result<T, ProxmoxError>) {
        let mut state = self
            .inner
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.requested = true;
        match result {
            Ok(_) => {
                state.reachable = true;
                state.last_error = None;
                state.last_success = Some(Instant::now());
            }
            Err(err) => {
                state.reachable = matches!(
                    err,
                    ProxmoxError::Unauthorized { .. }
                        | ProxmoxError::Forbidden { .. }
                        | ProxmoxError::Server { .. }
                        | ProxmoxError::Decode { .. }
                );
                state.last_error = Some(err.to_string());
            }
        }
    }

    /// Sends the request to the preferred node, then the others, until one answers; returns
    /// the body of a 2xx answer.
    async fn request_once(
        &self,
        kind: Kind,
        path: &str,
        form: &[(&'static str, String)],
    ) -> Result<Bytes, ProxmoxError> {
        let bases = &self.inner.bases;
        let first = self.inner.preferred.load(Ordering::Relaxed);
        let mut tried = Vec::new();
        let mut causes = Vec::new();
        let mut tls_failure = None;
        let mut timed_out = None;
        for offset in 0..bases.len() {
            let index = (first + offset) % bases.len();
            let Some(base) = bases.get(index) else {
                continue;
            };
            tried.push(base.clone());
            match self.send(kind, base, path, form).await {
                Ok((status, reason, body)) => {
                    if index != first {
                        info!(url = %base, "proxmox: using this node from now on");
                        self.inner.preferred.store(index, Ordering::Relaxed);
                    }
                    return self.check_status(status, reason, body, path);
                }
                Err((failure, connect)) => {
                    let may_move_on = kind == Kind::Read || connect;
                    match failure {
                        NodeFailure::Down(cause) => {
                            debug!(url = %base, cause = %cause, "proxmox node unreachable");
                            causes.push(format!("{base}: {cause}"));
                        }
                        NodeFailure::Timeout => {
                            debug!(url = %base, path, "proxmox node timed out");
                            causes.push(format!("{base}: no answer in time"));
                            timed_out = Some(base.clone());
                        }
                        NodeFailure::Tls(err) => {
                            warn!(cause = %err, "proxmox TLS failure");
                            causes.push(format!("{base}: certificate refused"));
                            tls_failure.get_or_insert(err);
                        }
                    }
                    if !may_move_on {
                        break;
                    }
                }
            }
        }
        // The most useful report first: a certificate problem has a fix in the config; a
        // timeout with every node answering otherwise means slowness, not an outage.
        if let Some(err) = tls_failure {
            return Err(err);
        }
        if let Some(url) = timed_out {
            if causes.len() == 1 || causes.iter().all(|c| c.ends_with("no answer in time")) {
                return Err(ProxmoxError::Timeout {
                    path: path.to_owned(),
                    url,
                    after: self.inner.timings.timeout,
                });
            }
        }
        Err(ProxmoxError::Unreachable {
            tried,
            cause: causes.join("; "),
        })
    }

    /// One request to one node. On failure, also says whether it failed while connecting
    /// (so the request was never sent).
    async fn send(
        &self,
        kind: Kind,
        base: &str,
        path: &str,
        form: &[(&'static str, String)],
    ) -> Result<(u16, Option<String>, Bytes), (NodeFailure, bool)> {
        let url = format!("{base}/api2/json{path}");
        let request = match kind {
            Kind::Read => self.inner.http.get(&url),
            Kind::Action if form.is_empty() => self.inner.http.post(&url),
            Kind::Action => self.inner.http.post(&url).form(form),
        };
        let response = request
            .header(AUTHORIZATION, self.inner.auth.clone())
            .send()
            .await
            .map_err(|err| (classify(&err, base), err.is_connect()))?;
        let status = response.status().as_u16();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        let body = read_body(response)
            .await
            .map_err(|err| (classify(&err, base), false))?;
        Ok((status, reason, body))
    }

    fn check_status(
        &self,
        status: u16,
        reason: Option<String>,
        body: Bytes,
        path: &str,
    ) -> Result<Bytes, ProxmoxError> {
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let message = error_message(status, reason.as_deref(), &body);
        Err(match status {
            401 => ProxmoxError::Unauthorized {
                token_id: self.inner.token_id.clone(),
            },
            403 => ProxmoxError::Forbidden {
                path: path.to_owned(),
                message,
                token_id: self.inner.token_id.clone(),
                hint: privilege_hint(path),
            },
            _ => ProxmoxError::Server {
                status,
                message,
                path: path.to_owned(),
            },
        })
    }
}

/// `https://host:8006/` or `https://host:8006/api2/json` → `https://host:8006`.
fn base_url(url: &url::Url) -> String {
    let text = url.as_str().trim_end_matches('/');
    let text = text.strip_suffix("/api2/json").unwrap_or(text);
    text.trim_end_matches('/').to_owned()
}

fn check_name(node: &str) -> Result<(), ProxmoxError> {
    if wire::is_safe_name(node) {
        Ok(())
    } else {
        Err(ProxmoxError::Server {
            status: 400,
            message: format!("{node:?} is not a valid node name"),
            path: "/nodes".into(),
        })
    }
}

async fn read_body(mut response: reqwest::Response) -> Result<Bytes, reqwest::Error> {
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            // Keep what fits: the JSON will not parse, which reports the problem.
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn classify(err: &reqwest::Error, base: &str) -> NodeFailure {
    if let Some(tls) = tls::tls_error(err, base) {
        return NodeFailure::Tls(tls);
    }
    if err.is_timeout() {
        if err.is_connect() {
            return NodeFailure::Down("no connection in time".into());
        }
        return NodeFailure::Timeout;
    }
    NodeFailure::Down(root_cause(err))
}

/// The innermost error's text ("Connection refused (os error 111)"), without reqwest's
/// wrapping.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = tls::next_error(current) {
        current = next;
    }
    current.to_string()
}

/// Proxmox's error text: the body's `message` and `errors`, else the reason phrase (where
/// pveproxy puts it), else the status's name.
fn error_message(status: u16, reason: Option<&str>, body: &[u8]) -> String {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let mut parts = Vec::new();
    if let Some(message) = json
        .as_ref()
        .and_then(|j| j.get("message"))
        .and_then(Value::as_str)
    {
        parts.push(message.trim().to_owned());
    }
    if let Some(errors) = json
        .as_ref()
        .and_then(|j| j.get("errors"))
        .and_then(Value::as_object)
    {
        for (param, text) in errors {
            let text = text
                .as_str()
                .map_or_else(|| text.to_string(), str::to_owned);
            parts.push(format!("{param}: {}", text.trim()));
        }
    }
    if parts.is_empty() {
        if let Some(reason) = reason.map(str::trim).filter(|r| !r.is_empty()) {
            parts.push(reason.to_owned());
        }
    }
    if parts.is_empty() {
        let name = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error");
        parts.push(name.to_owned());
    }
    let text = parts.join("; ");
    if text.chars().count() > 500 {
        let cut: String = text.chars().take(497).collect();
        format!("{cut}...")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalised() {
        let base = |s: &str| base_url(&url::Url::parse(s).unwrap());
        assert_eq!(base("https://10.0.0.1:8006"), "https://10.0.0.1:8006");
        assert_eq!(base("https://10.0.0.1:8006/"), "https://10.0.0.1:8006");
        assert_eq!(base("https://pve:8006/api2/json/"), "https://pve:8006");
        assert_eq!(base("https://proxy/pve/"), "https://proxy/pve");
    }

    #[test]
    fn error_messages_come_from_body_then_reason() {
        assert_eq!(
            error_message(
                500,
                Some("ignored"),
                br#"{"data":null,"message":"VM 101 is locked (backup)\n"}"#
            ),
            "VM 101 is locked (backup)"
        );
        assert_eq!(
            error_message(
                400,
                None,
                br#"{"errors":{"vmid":"invalid format"},"data":null}"#
            ),
            "vmid: invalid format"
        );
        assert_eq!(
            error_message(
                403,
                Some("Permission check failed (/vms/101, VM.PowerMgmt)"),
                b"{\"data\":null}"
            ),
            "Permission check failed (/vms/101, VM.PowerMgmt)"
        );
        assert_eq!(error_message(502, None, b"<html>"), "Bad Gateway");
    }

    #[test]
    fn upids_are_encoded_as_one_path_segment() {
        let upid = "UPID:pve1:000A1B2C:03F2E1D0:66F0A1B2:qmstart:101:jarvis@pve!ha:";
        let encoded = utf8_percent_encode(upid, PATH_SEGMENT).to_string();
        assert_eq!(
            encoded,
            "UPID%3Apve1%3A000A1B2C%3A03F2E1D0%3A66F0A1B2%3Aqmstart%3A101%3Ajarvis%40pve%21ha%3A"
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let config = ProxmoxConfig {
            enabled: true,
            urls: vec![url::Url::parse("https://10.0.0.1:8006").unwrap()],
            token_secret: Some(crate::config::Secret::new("s3cr3t-uuid")),
            ..ProxmoxConfig::default()
        };
        let client = Proxmox::new(&config).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("jarvis@pve!ha"), "{debug}");
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }
}
