//! Jarvis: a Rust core that lets a homelab owner run a Proxmox cluster and cameras by voice and by
//! automation, natively inside Home Assistant.
//!
//! The binary (`src/main.rs`) only parses the command line; everything lives here so integration
//! tests can drive it: [`app::spawn`] starts a server on any address and hands back its ports and
//! shutdown token.

pub mod addon;
pub mod app;
pub mod brain;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod events;
pub mod frigate;
#[doc(hidden)]
pub mod fuzzing;
pub mod http_api;
pub mod latency;
pub mod models;
pub mod mqtt;
pub mod onnx;
pub mod panel;
pub mod priority;
pub mod proxmox;
pub mod roles;
pub mod services;
pub mod stt;
pub mod telemetry;
pub mod tts;
pub mod wake;
pub mod workers;
pub mod wyoming_server;
pub mod zeroconf;
