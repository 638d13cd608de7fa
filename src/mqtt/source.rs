//! The things the publisher depends on: where the cluster's data comes from ([`ClusterSource`],
//! the Proxmox client and its cache, shared with the brain), who carries out a button press
//! ([`ActionSink`], the brain: policy, per-channel permissions, audit, task tracking), and,
//! optionally, the event memory and Frigate behind the Frigate entities ([`EventFeed`]). The
//! publisher holds no policy of its own.
//!
//! Tests and the benchmark implement the traits in memory and give the feed a real store;
//! `app` passes the real client, brain and memory.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::brain::{ActionReport, ActionRequest, Activity, Brain, Decision, Memory};
use crate::events::EventStore;
use crate::frigate::FrigateLink;
use crate::proxmox::{Backups, Inventory, NodeDisks, NodeStatus, Proxmox, ProxmoxError};

/// The event memory and Frigate as the publisher reads them: the store's size for Jarvis's
/// device, and the store's answers, Frigate's status and its arrivals for the Frigate
/// entities.
#[derive(Debug, Clone)]
pub struct EventFeed {
    /// The event store.
    pub store: EventStore,
    /// Frigate's status and arrivals.
    pub frigate: FrigateLink,
    /// `frigate.enabled`: without it there are no Frigate entities (and an earlier run's are
    /// removed).
    pub frigate_enabled: bool,
    /// The time zone of "people today".
    pub tz: jiff::tz::TimeZone,
}

impl EventFeed {
    /// The brain's memory as a feed.
    pub fn from_memory(memory: &Memory) -> Self {
        Self {
            store: memory.store.clone(),
            frigate: memory.frigate.clone(),
            frigate_enabled: memory.frigate_enabled,
            tz: memory.tz.clone(),
        }
    }
}

/// Why the cluster could not be read: shown to people (logs, Jarvis's health attributes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// The cluster as the publisher reads it.
pub trait ClusterSource: Send + Sync + 'static {
    /// Nodes, guests and storages as of now (one `/cluster/resources` per poll).
    fn inventory(&self) -> impl Future<Output = Result<Arc<Inventory>, SourceError>> + Send;

    /// The cluster's name; `Ok(None)` for a node that is in no cluster.
    fn cluster_name(&self) -> impl Future<Output = Result<Option<String>, SourceError>> + Send;

    /// A node's detail (load, version), cached by the source.
    fn node_status(
        &self,
        node: &str,
    ) -> impl Future<Output = Result<NodeStatus, SourceError>> + Send;

    /// How many package updates a node has pending, cached by the source.
    fn pending_updates(&self, node: &str) -> impl Future<Output = Result<u32, SourceError>> + Send;

    /// A node's disks and ZFS pools, cached by the source (none by default).
    fn node_disks(
        &self,
        _node: &str,
    ) -> impl Future<Output = Result<Arc<NodeDisks>, SourceError>> + Send {
        async { Err(SourceError("disks are not read from this source".into())) }
    }

    /// The backups and recent tasks, cached by the source, with the age in days beyond which
    /// a guest counts as not backed up; `None` for a source without them (no backup entities
    /// are published then).
    fn backups(
        &self,
    ) -> impl Future<Output = Result<Option<(Arc<Backups>, u32)>, SourceError>> + Send {
        async { Ok(None) }
    }
}

/// Who acts on a button press: the same path as a voice command.
pub trait ActionSink: Send + Sync + 'static {
    /// Decides and carries out an action (`Brain::act`).
    fn act(&self, request: ActionRequest) -> impl Future<Output = ActionReport> + Send;

    /// Every command and action, from any channel (`Brain::subscribe`).
    fn subscribe(&self) -> broadcast::Receiver<Activity>;

    /// What keeps it from working fully, for people (Jarvis's Health entity); empty when fine.
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
}

impl From<ProxmoxError> for SourceError {
    fn from(err: ProxmoxError) -> Self {
        Self(err.to_string())
    }
}

/// The Proxmox client. Each poll fetches `/cluster/resources` into the client's shared cache,
/// so the brain answers from what the entities show (and rarely needs a request of its own);
/// node details and update counts come from the cache within their TTLs.
impl ClusterSource for Proxmox {
    async fn inventory(&self) -> Result<Arc<Inventory>, SourceError> {
        Ok(self.refresh_inventory().await?)
    }

    async fn cluster_name(&self) -> Result<Option<String>, SourceError> {
        Ok(self.cluster_status().await?.name.clone())
    }

    async fn node_status(&self, node: &str) -> Result<NodeStatus, SourceError> {
        Ok(NodeStatus::clone(&*Proxmox::node_status(self, node).await?))
    }

    async fn pending_updates(&self, node: &str) -> Result<u32, SourceError> {
        let count = Proxmox::pending_updates(self, node).await?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn node_disks(&self, node: &str) -> Result<Arc<NodeDisks>, SourceError> {
        Ok(Proxmox::node_disks(self, node).await?)
    }

    async fn backups(&self) -> Result<Option<(Arc<Backups>, u32)>, SourceError> {
        let backups = Proxmox::backups(self).await?;
        Ok(Some((backups, self.backup_max_age_days())))
    }
}

/// The brain's Proxmox client (an error when Proxmox is not configured, so Jarvis's own device
/// says so).
impl ClusterSource for Brain {
    async fn inventory(&self) -> Result<Arc<Inventory>, SourceError> {
        ClusterSource::inventory(self.proxmox().ok_or_else(not_configured)?).await
    }

    async fn cluster_name(&self) -> Result<Option<String>, SourceError> {
        ClusterSource::cluster_name(self.proxmox().ok_or_else(not_configured)?).await
    }

    async fn node_status(&self, node: &str) -> Result<NodeStatus, SourceError> {
        ClusterSource::node_status(self.proxmox().ok_or_else(not_configured)?, node).await
    }

    async fn pending_updates(&self, node: &str) -> Result<u32, SourceError> {
        ClusterSource::pending_updates(self.proxmox().ok_or_else(not_configured)?, node).await
    }

    async fn node_disks(&self, node: &str) -> Result<Arc<NodeDisks>, SourceError> {
        ClusterSource::node_disks(self.proxmox().ok_or_else(not_configured)?, node).await
    }

    async fn backups(&self) -> Result<Option<(Arc<Backups>, u32)>, SourceError> {
        ClusterSource::backups(self.proxmox().ok_or_else(not_configured)?).await
    }
}

fn not_configured() -> SourceError {
    SourceError("Proxmox is not configured (set proxmox.enabled and proxmox.urls)".into())
}

/// The brain: a button press takes the same path as a voice command.
impl ActionSink for Brain {
    async fn act(&self, request: ActionRequest) -> ActionReport {
        Brain::act(self, request).await
    }

    fn subscribe(&self) -> broadcast::Receiver<Activity> {
        Brain::subscribe(self)
    }

    fn problems(&self) -> Vec<String> {
        let health = self.health();
        let mut problems = Vec::new();
        if !health.audit_writable {
            problems.push(
                "the audit log cannot be written, so actions are refused (audit.path)".into(),
            );
        }
        if !health.proxmox_configured {
            problems.push("Proxmox is not configured (proxmox.enabled, proxmox.urls)".into());
        }
        problems
    }
}

/// The action sink of a Jarvis without a brain: every press is refused with the reason, and
/// there is no activity. Swapped for the brain in `app` once it exists.
#[derive(Debug)]
pub struct NoBrain {
    activity: broadcast::Sender<Activity>,
}

impl Default for NoBrain {
    fn default() -> Self {
        Self {
            activity: broadcast::channel(1).0,
        }
    }
}

impl ActionSink for NoBrain {
    async fn act(&self, request: ActionRequest) -> ActionReport {
        ActionReport::new(
            &request.action,
            Decision::Refused,
            "actions are not available: this Jarvis has no brain configured".into(),
        )
    }

    fn subscribe(&self) -> broadcast::Receiver<Activity> {
        self.activity.subscribe()
    }

    fn problems(&self) -> Vec<String> {
        vec!["no brain: button presses are refused".into()]
    }
}
