//! Frigate NVR: its MQTT topics and HTTP API, feeding the event memory.
//!
//! - [`config`]: the `[frigate]` section.
//! - [`status`]: what the rest of Jarvis sees ([`FrigateLink`]).

pub mod config;
pub mod status;

pub use config::FrigateConfig;
pub use status::{Availability, FrigateLink, FrigateStatus};
