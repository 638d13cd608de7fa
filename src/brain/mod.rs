//! The homelab brain: local intents, the safety policy, actions on Proxmox and the audit log.

pub mod types;

pub use types::{ActionReport, ActionRequest, Activity, Channel, Decision};
