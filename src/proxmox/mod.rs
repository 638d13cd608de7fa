//! Proxmox VE: the data model shared by the brain and the MQTT publisher, and (to come) the REST
//! client with its cache.

pub mod model;

pub use model::{
    ClusterMember, ClusterStatus, Guest, GuestAction, GuestKind, GuestRef, GuestState, Inventory,
    Node, NodeState, NodeStatus, Storage, TaskOutcome, TaskResult,
};
