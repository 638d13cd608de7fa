//! The homelab brain: local intents, the safety policy, actions on Proxmox and the audit log.

pub mod config;
pub mod grammar;
pub mod intents;
pub mod names;
pub mod numbers;
pub mod policy;
pub mod types;

pub use types::{ActionReport, ActionRequest, Activity, Channel, Decision};
