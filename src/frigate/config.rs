//! `[frigate]`: where Frigate publishes and serves.

use serde::Deserialize;

/// `[frigate]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrigateConfig {
    /// Follow Frigate.
    pub enabled: bool,
    /// Frigate's `mqtt.topic_prefix`.
    pub topic_prefix: String,
}

impl Default for FrigateConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            topic_prefix: "frigate".to_owned(),
        }
    }
}
