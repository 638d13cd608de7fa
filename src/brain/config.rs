//! Configuration of the brain: `[policy]`, `[audit]` and `[llm]`.

use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

use super::policy::ChannelPermissions;
use crate::config::Secret;

/// `[policy]`: what Jarvis may do, and how it asks first.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Refuse every action; answer questions only.
    pub read_only: bool,
    /// Seconds a spoken confirmation is waited for.
    pub confirm_timeout_secs: u64,
    /// Seconds a conversation's follow-ups are understood ("the second one", "and nextcloud?",
    /// "yes" to "did you mean ...?"), counted from the last answer.
    pub followup_timeout_secs: u64,
    /// Guests (VMIDs or names) that are never shut down, stopped, rebooted, rolled back or
    /// moved.
    pub protected_guests: Vec<String>,
    /// Nodes that are never rebooted or shut down (start-all and stop-all still work; stop-all
    /// leaves protected guests running).
    pub protected_nodes: Vec<String>,
    /// Protect, besides `protected_guests`, the guests that run Home Assistant or Jarvis: a
    /// guest named like Home Assistant (`haos`, `homeassistant`, ...) or like this machine, or
    /// one whose address (guest agent, container interfaces) is this machine's or one of
    /// `home_assistant_hosts`. A node whose cluster address is one of those is protected too.
    pub detect_protected: bool,
    /// Addresses (IPs) of Home Assistant, for `detect_protected`.
    pub home_assistant_hosts: Vec<std::net::IpAddr>,
    /// The highest tier each channel may use.
    pub channels: ChannelPermissions,
    /// A word that, sent as `approval` to `POST /v1/command`, stands for the confirmation of a
    /// destructive action. Empty: the HTTP API confirms like voice, in a second request.
    pub approval_keyword: Secret,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            read_only: false,
            confirm_timeout_secs: 30,
            followup_timeout_secs: 300,
            protected_guests: Vec::new(),
            protected_nodes: Vec::new(),
            detect_protected: true,
            home_assistant_hosts: Vec::new(),
            channels: ChannelPermissions::default(),
            approval_keyword: Secret::default(),
        }
    }
}

/// `[audit]`: the JSON-lines audit log of every command and action.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The log file. While it cannot be written, Jarvis refuses actions.
    pub path: PathBuf,
    /// Size in MB at which the file is rotated.
    pub max_mb: u64,
    /// Rotated files kept (`audit.jsonl.1` ...).
    pub keep: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("/var/lib/jarvis/audit.jsonl"),
            max_mb: 10,
            keep: 5,
        }
    }
}

/// `[llm]`: an OpenAI-compatible chat-completions server for what local intents do not match.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Ask the LLM when no local intent matches.
    pub enabled: bool,
    /// Base URL up to `/v1`, e.g. `http://127.0.0.1:8080/v1` (llama.cpp), `http://ollama:11434/v1`
    /// or `https://api.openai.com/v1`.
    pub url: Option<Url>,
    /// Model name.
    pub model: String,
    /// Bearer token, if the server wants one.
    pub api_key: Secret,
    /// Seconds one completion may take.
    pub timeout_secs: u64,
    /// Messages kept per conversation (oldest dropped first).
    pub max_history: usize,
    /// Tool-call rounds per command.
    pub max_tool_rounds: usize,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            url: None,
            model: "llama3.1".into(),
            api_key: Secret::default(),
            timeout_secs: 20,
            max_history: 20,
            max_tool_rounds: 4,
        }
    }
}
