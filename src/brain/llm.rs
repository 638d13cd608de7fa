//! The optional LLM fallback: an OpenAI-compatible `/chat/completions` endpoint (llama.cpp
//! server, Ollama, OpenAI) gets what no local intent matched. Jarvis's abilities are offered as
//! tools; each tool call runs as the equivalent local intent, so the policy, confirmations and
//! the audit log apply exactly as for a spoken command.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tracing::{debug, warn};
use url::Url;

use super::engine::{Brain, Ctx, Response, Source};
use super::intents::{Aspect, DiskAsk, Intent, tokens};
use crate::config::LlmConfig;
use crate::proxmox::{GuestAction, GuestKind, GuestState, NodeAction};

/// Conversations whose history is kept at once; the least recently used goes first.
const MAX_CONVERSATIONS: usize = 256;
/// Largest completion body read, in bytes.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

const SYSTEM_PROMPT: &str = "You are Jarvis, a voice assistant for a Proxmox VE homelab. Answer \
in one or two short spoken sentences, without markdown or lists. Use the tools for anything \
about the cluster, its nodes, VMs, containers, storage, backups, snapshots and disks; never \
invent numbers. Actions go through a safety policy: if a tool result asks the user to confirm, \
repeat that question. You cannot delete anything or run shell commands.";

/// The LLM client and the conversations' histories.
#[derive(Debug)]
pub struct Llm {
    http: reqwest::Client,
    endpoint: Url,
    model: String,
    api_key: crate::config::Secret,
    max_history: usize,
    max_tool_rounds: usize,
    histories: Mutex<HashMap<String, (Instant, VecDeque<Value>)>>,
}

impl Llm {
    /// Builds the client (no network I/O).
    ///
    /// # Errors
    /// No URL, or the HTTP client cannot be built.
    pub fn new(config: &LlmConfig) -> Result<Self, String> {
        let base = config.url.clone().ok_or("llm.url is not set")?;
        let endpoint = Url::parse(&format!(
            "{}/chat/completions",
            base.as_str().trim_end_matches('/')
        ))
        .map_err(|e| format!("llm.url: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            endpoint,
            model: config.model.clone(),
            api_key: config.api_key.clone(),
            max_history: config.max_history,
            max_tool_rounds: config.max_tool_rounds,
            histories: Mutex::new(HashMap::new()),
        })
    }

    /// Answers `text` in the conversation, calling tools through `brain`.
    pub(crate) async fn converse(&self, brain: &Brain, ctx: &Ctx, text: &str) -> Response {
        let mut history = self.history(&ctx.conversation);
        history.push_back(json!({"role": "user", "content": text}));
        let mut rounds = 0;
        let mut actions = Vec::new();
        let reply = loop {
            let mut messages = vec![json!({"role": "system", "content": SYSTEM_PROMPT})];
            messages.extend(history.iter().cloned());
            let offer_tools = rounds < self.max_tool_rounds;
            let message = match self.complete(messages, offer_tools).await {
                Ok(message) => message,
                Err(err) => {
                    warn!(cause = %err, "llm fallback failed");
                    return Response {
                        handled: false,
                        source: Source::Llm,
                        ..plain(
                            "I didn't understand that, and my language model isn't answering \
                             right now.",
                        )
                    };
                }
            };
            let calls: Vec<Value> = message
                .get("tool_calls")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            history.push_back(message.clone());
            if calls.is_empty() || !offer_tools {
                break message
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim()
                    .to_owned();
            }
            rounds += 1;
            for call in calls {
                let id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let function = call.get("function").cloned().unwrap_or(Value::Null);
                let name = function.get("name").and_then(Value::as_str).unwrap_or("");
                let arguments: Value = function
                    .get("arguments")
                    .and_then(Value::as_str)
                    .and_then(|a| serde_json::from_str(a).ok())
                    .or_else(|| function.get("arguments").filter(|a| a.is_object()).cloned())
                    .unwrap_or(Value::Null);
                debug!(tool = name, "llm tool call");
                let result = match tool_intent(name, &arguments) {
                    Some(intent) => {
                        let response = Box::pin(brain.run_intent(&intent, ctx)).await;
                        actions.extend(response.actions);
                        response.reply
                    }
                    None => format!("Unknown tool or bad arguments: {name}"),
                };
                history.push_back(json!({"role": "tool", "tool_call_id": id, "content": result}));
            }
        };
        self.keep(&ctx.conversation, history);
        let reply = if reply.is_empty() {
            "Sorry, I have no answer to that.".to_owned()
        } else {
            reply
        };
        Response {
            source: Source::Llm,
            actions,
            ..plain(reply)
        }
    }

    fn history(&self, conversation: &str) -> VecDeque<Value> {
        self.histories
            .lock()
            .ok()
            .and_then(|h| h.get(conversation).map(|(_, m)| m.clone()))
            .unwrap_or_default()
    }

    /// Stores the history, trimmed to `max_history` messages, starting at a user message so a
    /// tool result never loses its call.
    fn keep(&self, conversation: &str, mut history: VecDeque<Value>) {
        while history.len() > self.max_history {
            history.pop_front();
            while history
                .front()
                .is_some_and(|m| m.get("role").and_then(Value::as_str) != Some("user"))
            {
                history.pop_front();
            }
        }
        if let Ok(mut histories) = self.histories.lock() {
            if histories.len() >= MAX_CONVERSATIONS && !histories.contains_key(conversation) {
                if let Some(oldest) = histories
                    .iter()
                    .min_by_key(|(_, (t, _))| *t)
                    .map(|(k, _)| k.clone())
                {
                    histories.remove(&oldest);
                }
            }
            histories.insert(conversation.to_owned(), (Instant::now(), history));
        }
    }

    /// Messages kept for a conversation (tests).
    pub fn history_len(&self, conversation: &str) -> usize {
        self.history(conversation).len()
    }

    async fn complete(&self, messages: Vec<Value>, tools: bool) -> Result<Value, String> {
        let mut body = json!({"model": self.model, "messages": messages});
        if tools {
            body["tools"] = tool_specs();
            body["tool_choice"] = json!("auto");
        }
        let mut request = self.http.post(self.endpoint.clone()).json(&body);
        if !self.api_key.is_empty() {
            request = request.bearer_auth(self.api_key.expose());
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                "the LLM server did not answer in time (llm.timeout_secs)".to_owned()
            } else {
                format!("cannot reach the LLM server at {}: {e}", self.endpoint)
            }
        })?;
        let status = response.status();
        let bytes = read_limited(response).await?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
            return Err(format!("the LLM server answered {status}: {text}"));
        }
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("bad LLM response: {e}"))?;
        value
            .pointer("/choices/0/message")
            .cloned()
            .ok_or_else(|| "the LLM response has no choices[0].message".to_owned())
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err("the LLM response is larger than 1 MB".into());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn plain(reply: impl Into<String>) -> Response {
    Response {
        reply: reply.into(),
        handled: true,
        intent: None,
        slots: Default::default(),
        source: Source::Llm,
        actions: Vec::new(),
        pending_confirmation: false,
        conversation_id: String::new(),
        ask: None,
    }
}

/// The tools offered, as OpenAI function specs.
fn tool_specs() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "cluster_overview",
            "description": "Nodes online, quorum, guests running and stopped, anything unhealthy.",
            "parameters": {"type": "object", "properties": {}}}},
        {"type": "function", "function": {
            "name": "status",
            "description": "Status of one node, VM, container or storage.",
            "parameters": {"type": "object", "properties": {
                "target": {"type": "string", "description": "Name or VMID"},
                "aspect": {"type": "string", "enum": Aspect::ALL.map(Aspect::as_str)}},
                "required": ["target"]}}},
        {"type": "function", "function": {
            "name": "list_guests",
            "description": "List VMs and containers, optionally by state, kind and node.",
            "parameters": {"type": "object", "properties": {
                "state": {"type": "string", "enum": ["running", "stopped"]},
                "kind": {"type": "string", "enum": ["vm", "container"]},
                "node": {"type": "string"}}}}},
        {"type": "function", "function": {
            "name": "storage_usage",
            "description": "How full the storages are, of one storage or node, or all.",
            "parameters": {"type": "object", "properties": {
                "target": {"type": "string"}}}}},
        {"type": "function", "function": {
            "name": "guest_action",
            "description": "Start, shut down, stop or reboot a VM or container. Destructive actions ask the user to confirm.",
            "parameters": {"type": "object", "properties": {
                "guest": {"type": "string", "description": "Name or VMID"},
                "action": {"type": "string", "enum": ["start", "shutdown", "stop", "reboot"]}},
                "required": ["guest", "action"]}}},
        {"type": "function", "function": {
            "name": "last_backup",
            "description": "When a VM or container was last backed up, and whether it worked.",
            "parameters": {"type": "object", "properties": {
                "guest": {"type": "string", "description": "Name or VMID"}},
                "required": ["guest"]}}},
        {"type": "function", "function": {
            "name": "stale_backups",
            "description": "Which guests have no backup within the last days.",
            "parameters": {"type": "object", "properties": {
                "days": {"type": "integer", "minimum": 1, "maximum": 366,
                    "description": "Window in days; leave out for the configured one"}}}}},
        {"type": "function", "function": {
            "name": "backup_job",
            "description": "Whether the last backup job (or last night's) succeeded.",
            "parameters": {"type": "object", "properties": {
                "last_night": {"type": "boolean"}}}}},
        {"type": "function", "function": {
            "name": "failed_tasks",
            "description": "Proxmox tasks that failed recently.",
            "parameters": {"type": "object", "properties": {
                "hours": {"type": "integer", "minimum": 1, "maximum": 744,
                    "description": "Window in hours, 24 if left out"}}}}},
        {"type": "function", "function": {
            "name": "disk_health",
            "description": "SMART health of the physical disks, SSD wear, or ZFS pool health, of all nodes or one.",
            "parameters": {"type": "object", "properties": {
                "ask": {"type": "string", "enum": ["health", "wear", "zfs"]},
                "target": {"type": "string", "description": "A node, or for zfs a pool or node"}},
                "required": ["ask"]}}},
        {"type": "function", "function": {
            "name": "list_snapshots",
            "description": "The snapshots of a VM or container.",
            "parameters": {"type": "object", "properties": {
                "guest": {"type": "string", "description": "Name or VMID"}},
                "required": ["guest"]}}},
        {"type": "function", "function": {
            "name": "take_snapshot",
            "description": "Take a snapshot of a VM or container (nothing is lost).",
            "parameters": {"type": "object", "properties": {
                "guest": {"type": "string", "description": "Name or VMID"},
                "note": {"type": "string", "description": "Why, e.g. before the upgrade"},
                "name": {"type": "string", "description": "A snapshot name, if the user gave one"}},
                "required": ["guest"]}}},
        {"type": "function", "function": {
            "name": "rollback_snapshot",
            "description": "Roll a VM or container back to a snapshot, losing what changed since. Asks the user to confirm.",
            "parameters": {"type": "object", "properties": {
                "guest": {"type": "string", "description": "Name or VMID"},
                "snapshot": {"type": "string", "description": "Its name; leave out for the latest"}},
                "required": ["guest"]}}},
        {"type": "function", "function": {
            "name": "migrate_guest",
            "description": "Move a VM or container to another node. Asks the user to confirm.",
            "parameters": {"type": "object", "properties": {
                "guest": {"type": "string", "description": "Name or VMID"},
                "node": {"type": "string", "description": "The target node"}},
                "required": ["guest", "node"]}}},
        {"type": "function", "function": {
            "name": "node_action",
            "description": "Reboot or shut down a node, or start or stop all guests on it. Asks the user to confirm.",
            "parameters": {"type": "object", "properties": {
                "node": {"type": "string"},
                "action": {"type": "string", "enum": NodeAction::ALL.map(NodeAction::as_str)}},
                "required": ["node", "action"]}}}
    ])
}

/// The local intent a tool call stands for.
fn tool_intent(name: &str, args: &Value) -> Option<Intent> {
    let text = |key: &str| args.get(key).and_then(Value::as_str).map(tokens);
    // `Some(None)`: not given; `None`: given but not a whole number (bad arguments). Models
    // send numbers as JSON numbers or as strings.
    let number = |key: &str| -> Option<Option<String>> {
        match args.get(key) {
            None | Some(Value::Null) => Some(None),
            Some(Value::Number(n)) => n.as_u64().map(|n| Some(n.to_string())),
            Some(Value::String(s)) => {
                let s = s.trim();
                (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| Some(s.to_owned()))
            }
            Some(_) => None,
        }
    };
    Some(match name {
        "cluster_overview" => Intent::ClusterOverview,
        "status" => Intent::Status {
            target: text("target").filter(|t| !t.is_empty())?,
            aspect: args
                .get("aspect")
                .and_then(Value::as_str)
                .and_then(Aspect::from_name)
                .unwrap_or(Aspect::All),
        },
        "list_guests" => Intent::ListGuests {
            state: match args.get("state").and_then(Value::as_str) {
                Some("running") => Some(GuestState::Running),
                Some("stopped") => Some(GuestState::Stopped),
                _ => None,
            },
            kind: match args.get("kind").and_then(Value::as_str) {
                Some("vm") => Some(GuestKind::Qemu),
                Some("container") => Some(GuestKind::Lxc),
                _ => None,
            },
            node: text("node").filter(|t| !t.is_empty()),
        },
        "storage_usage" => Intent::Storage {
            target: text("target").filter(|t| !t.is_empty()),
        },
        "guest_action" => Intent::Action {
            action: GuestAction::from_name(args.get("action").and_then(Value::as_str)?)?,
            guest: text("guest").filter(|t| !t.is_empty())?,
        },
        "last_backup" => Intent::LastBackup {
            guest: text("guest").filter(|t| !t.is_empty())?,
        },
        // Numbers go through the same checks as spoken ones (out of range: bad arguments).
        "stale_backups" => Intent::StaleBackups {
            days: match number("days")? {
                Some(days) => super::backups::days(Some(std::slice::from_ref(&days)), &[])?,
                None => None,
            },
        },
        "backup_job" => Intent::BackupJob {
            last_night: args
                .get("last_night")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
        "failed_tasks" => Intent::FailedTasks {
            hours: super::backups::hours(number("hours")?.as_ref().map(std::slice::from_ref))?,
            today: false,
        },
        "disk_health" => Intent::Disks {
            ask: match args.get("ask").and_then(Value::as_str)? {
                "health" => DiskAsk::Health,
                "wear" => DiskAsk::Wear,
                "zfs" | "pools" => DiskAsk::Pools,
                _ => return None,
            },
            target: text("target").filter(|t| !t.is_empty()),
        },
        "list_snapshots" => Intent::ListSnapshots {
            guest: text("guest").filter(|t| !t.is_empty())?,
        },
        "take_snapshot" => Intent::TakeSnapshot {
            guest: text("guest").filter(|t| !t.is_empty())?,
            note: text("note").filter(|t| !t.is_empty()),
            name: text("name").filter(|t| !t.is_empty()),
        },
        "rollback_snapshot" => Intent::Rollback {
            guest: text("guest").filter(|t| !t.is_empty())?,
            snapshot: text("snapshot").filter(|t| !t.is_empty()),
        },
        "migrate_guest" => Intent::Migrate {
            guest: text("guest").filter(|t| !t.is_empty())?,
            node: text("node").filter(|t| !t.is_empty())?,
        },
        "node_action" => Intent::NodePower {
            action: NodeAction::from_name(args.get("action").and_then(Value::as_str)?)?,
            node: text("node").filter(|t| !t.is_empty())?,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Arguments that fill every required parameter of a tool.
    fn required_args(spec: &Value) -> Value {
        let mut args = serde_json::Map::new();
        let properties = &spec["parameters"]["properties"];
        for key in spec["parameters"]["required"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let key = key.as_str().unwrap();
            let value = match properties[key]["enum"].as_array() {
                Some(values) => values[0].clone(),
                None => json!("nextcloud"),
            };
            args.insert(key.to_owned(), value);
        }
        Value::Object(args)
    }

    #[test]
    fn every_tool_offered_runs_as_a_local_intent() {
        for tool in tool_specs().as_array().unwrap() {
            let spec = &tool["function"];
            let name = spec["name"].as_str().unwrap();
            assert!(
                tool_intent(name, &required_args(spec)).is_some(),
                "{name} has no intent"
            );
        }
    }

    #[test]
    fn new_abilities_map_to_their_intents_and_bad_numbers_are_refused() {
        assert_eq!(
            tool_intent("node_action", &json!({"node": "pve", "action": "stop_all"})),
            Some(Intent::NodePower {
                action: NodeAction::StopAll,
                node: vec!["pve".into()]
            })
        );
        assert_eq!(
            tool_intent("node_action", &json!({"node": "pve", "action": "destroy"})),
            None
        );
        assert_eq!(
            tool_intent("stale_backups", &json!({"days": 10})),
            Some(Intent::StaleBackups { days: Some(10) })
        );
        assert_eq!(
            tool_intent("stale_backups", &json!({"days": "7"})),
            Some(Intent::StaleBackups { days: Some(7) })
        );
        assert_eq!(
            tool_intent("stale_backups", &json!({})),
            Some(Intent::StaleBackups { days: None })
        );
        for bad in [
            json!(0),
            json!(-3),
            json!(1.5),
            json!(100_000),
            json!("ten"),
        ] {
            assert_eq!(
                tool_intent("stale_backups", &json!({ "days": bad })),
                None,
                "{bad}"
            );
            assert_eq!(
                tool_intent("failed_tasks", &json!({ "hours": bad })),
                None,
                "{bad}"
            );
        }
        assert_eq!(
            tool_intent("failed_tasks", &json!({})),
            Some(Intent::FailedTasks {
                hours: 24,
                today: false
            })
        );
        assert_eq!(
            tool_intent(
                "take_snapshot",
                &json!({"guest": "nextcloud", "note": "before the upgrade"})
            ),
            Some(Intent::TakeSnapshot {
                guest: vec!["nextcloud".into()],
                note: Some(vec!["before".into(), "the".into(), "upgrade".into()]),
                name: None
            })
        );
        assert_eq!(
            tool_intent("rollback_snapshot", &json!({"guest": "101"})),
            Some(Intent::Rollback {
                guest: vec!["101".into()],
                snapshot: None
            })
        );
        assert_eq!(
            tool_intent("disk_health", &json!({"ask": "zfs", "target": "rpool"})),
            Some(Intent::Disks {
                ask: DiskAsk::Pools,
                target: Some(vec!["rpool".into()])
            })
        );
        assert_eq!(tool_intent("migrate_guest", &json!({"guest": "x"})), None);
    }
}
