//! Proxmox VE: the data model shared by the brain and the MQTT publisher, and the REST client
//! with its shared cache (§4 of the integration notes).
//!
//! [`Proxmox`] is the one client per cluster: the brain asks it for the inventory and sends
//! guest actions through it; the MQTT publisher polls [`Proxmox::refresh_inventory`] and reads
//! the same cache.

pub mod backups;
mod cache;
pub mod client;
pub mod disks;
pub mod error;
pub mod model;
pub mod operations;
pub mod tls;
mod wire;

#[doc(hidden)]
pub(crate) use wire::fuzz_answer;

pub use backups::{Attempt, BackupFile, BackupJob, BackupResult, Backups, GuestBackups, TaskEntry};
pub use client::{Proxmox, ProxmoxHealth, Timings};
pub use disks::{Disk, NodeDisks, ZfsPool};
pub use error::ProxmoxError;
pub use model::{
    ClusterMember, ClusterStatus, Guest, GuestAction, GuestKind, GuestRef, GuestState, Inventory,
    Node, NodeState, NodeStatus, Storage, TaskOutcome, TaskResult,
};
pub use operations::{MigrationMode, NodeAction, Snapshot};
pub use tls::fingerprint;
