//! The homelab brain: local intents, the safety policy, actions on Proxmox and the audit log.
//!
//! [`Brain::command`] takes what someone said (voice, HTTP) and answers; [`Brain::act`] takes
//! an action request (an MQTT button, or a recognized command) through the policy to Proxmox.

pub mod audit;
mod backups;
pub mod config;
mod disks;
pub mod engine;
mod followup;
pub mod grammar;
pub mod intents;
pub mod listen;
pub mod llm;
pub mod memory;
pub mod names;
pub mod numbers;
mod operations;
pub mod policy;
mod recall;
pub mod speech;
mod speech_grammar;
pub mod types;
pub mod when;

pub use engine::{Brain, BrainError, BrainHealth, Command, Response, Source};
pub use memory::Memory;
pub use types::{
    Action, ActionKind, ActionReport, ActionRequest, Activity, Channel, Decision, Waiting,
};
