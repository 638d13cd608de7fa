//! Backups and tasks: what vzdump did and left behind, read from the API and cached like the
//! other reads.
//!
//! One [`Backups`] snapshot is built from
//! - `GET /nodes/{node}/tasks?typefilter=vzdump&since=..&source=all` on every online node: the
//!   vzdump tasks of the last [`TASK_HISTORY_DAYS`] days;
//! - `GET /nodes/{node}/storage/{storage}/content?content=backup` for every storage that holds
//!   backups (a shared one once): the archives, with `vmid`, `ctime`, `size`, `format`, notes,
//!   protection and PBS verification;
//! - `GET /nodes/{node}/tasks/{upid}/log` of the newest job on each node and of the jobs that
//!   did not end `OK`: which guests a job backed up, warned about or failed (a job over several
//!   guests has no `id` of its own);
//! - `GET /cluster/tasks`: the cluster's recent tasks of every type, for "did anything fail?".
//!
//! Design: the snapshot keeps per guest what the answers need (the newest archive, the newest
//! attempt), computed once per fetch, so a question over 1000 guests only walks a map. Whether a
//! backup is too old is decided when asked, against the clock then. A storage or task list the
//! token may not read (403) leaves the rest counted and is kept as a problem, whose
//! [`ProxmoxError::Forbidden`] hint names the missing privilege.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cache::Slot;
use super::error::ProxmoxError;
use super::model::{Inventory, NodeState, TaskResult};
use super::wire::{self, exit_status, flag, number, string};
use super::{Proxmox, wire::is_safe_name};
use crate::config::ProxmoxConfig;

/// Days of vzdump task history read from each node.
pub const TASK_HISTORY_DAYS: i64 = 31;
/// Task logs read per fetch at most (newest first): enough for the newest job on every node
/// and the failed ones of a month.
const MAX_LOGS: usize = 24;
/// Lines of one task log read at most (a job over 1000 guests writes ~20 000).
const LOG_LINES: usize = 50_000;
/// Tasks listed per node at most.
const TASK_LIMIT: usize = 10_000;
/// Two vzdump tasks starting this close together (on different nodes) belong to one job run.
const JOB_WINDOW_SECS: i64 = 30 * 60;

/// What a UPID is percent-encoded with in a path (as the client does for task status).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// How a backup (or a job) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupResult {
    /// Done.
    Ok,
    /// Done, with warnings.
    Warnings,
    /// Not done.
    Failed,
}

impl BackupResult {
    /// `ok`, `warnings`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warnings => "warnings",
            Self::Failed => "failed",
        }
    }

    fn of(result: &TaskResult) -> Self {
        match result {
            TaskResult::Ok => Self::Ok,
            TaskResult::Warnings { .. } => Self::Warnings,
            TaskResult::Failed { .. } | TaskResult::TimedOut => Self::Failed,
        }
    }
}

/// One task of a task list (`/cluster/tasks`, `/nodes/{node}/tasks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskEntry {
    /// Its UPID.
    pub upid: String,
    /// The node it ran on.
    pub node: String,
    /// Its type: `vzdump`, `qmstart`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// What it was about (a VMID, a storage); `None` for a job over several guests.
    pub id: Option<String>,
    /// Who started it.
    pub user: Option<String>,
    /// Start, seconds since the epoch.
    pub start: i64,
    /// End, seconds since the epoch; `None` while it runs.
    pub end: Option<i64>,
    /// Its exit status (`OK`, `WARNINGS: 2`, or the error); `None` while it runs.
    pub status: Option<String>,
}

impl TaskEntry {
    /// How it ended, or `None` while it runs.
    pub fn result(&self) -> Option<TaskResult> {
        self.status.as_deref().map(|s| exit_status(Some(s)))
    }

    /// It ended and did not succeed.
    pub fn failed(&self) -> bool {
        self.result().is_some_and(|r| !r.succeeded())
    }

    /// The VMID it was about, if it was about one guest.
    pub fn vmid(&self) -> Option<u32> {
        self.id.as_deref().and_then(|id| id.parse().ok())
    }

    /// When it ended, or started when it still runs.
    pub fn at(&self) -> i64 {
        self.end.unwrap_or(self.start)
    }
}

/// One backup archive on a storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupFile {
    /// `nas:backup/vzdump-qemu-104-2026_12_01-02_00_05.vma.zst`.
    pub volid: String,
    /// The storage it is on.
    pub storage: String,
    /// The guest it is of.
    pub vmid: u32,
    /// When it was made, seconds since the epoch.
    pub ctime: i64,
    /// Bytes.
    pub size: Option<u64>,
    /// `vma.zst`, `tar.zst`, `pbs-vm`, ...
    pub format: Option<String>,
    /// The notes shown in the GUI.
    pub notes: Option<String>,
    /// Protected from pruning.
    pub protected: bool,
    /// Proxmox Backup Server's verification state (`ok`, `failed`), when verified.
    pub verification: Option<String>,
}

/// One backup attempt of one guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// When it ended (or the archive was made), seconds since the epoch.
    pub time: i64,
    /// How it went.
    pub result: BackupResult,
    /// Why it failed, or the warning.
    pub message: Option<String>,
    /// The vzdump task.
    pub upid: Option<String>,
}

/// What is known about one guest's backups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GuestBackups {
    /// The newest archive on a readable storage.
    pub last_ok: Option<BackupFile>,
    /// The newest attempt: a task's outcome or, without one, the newest archive.
    pub last_attempt: Option<Attempt>,
    /// Archives found.
    pub archives: usize,
}

/// One vzdump task of a job run, with what its log says about each guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupJob {
    /// The task.
    #[serde(flatten)]
    pub task: TaskEntry,
    /// How it ended; `None` while it runs.
    pub result: Option<BackupResult>,
    /// Guests backed up (from its log; empty when the log was not read).
    pub guests_ok: Vec<u32>,
    /// Guests backed up with warnings.
    pub guests_warned: Vec<u32>,
    /// Guests whose backup failed, with the reason.
    pub guests_failed: Vec<(u32, String)>,
    /// Whether its log was read (otherwise the guest lists are empty).
    pub log_read: bool,
}

/// A snapshot of the cluster's backups and recent tasks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Backups {
    /// When it was fetched, seconds since the epoch.
    pub fetched_at: i64,
    /// Per guest, by VMID.
    pub guests: BTreeMap<u32, GuestBackups>,
    /// vzdump tasks of the last [`TASK_HISTORY_DAYS`] days, newest first.
    pub jobs: Vec<BackupJob>,
    /// `/cluster/tasks` and the vzdump tasks, newest first, each once.
    pub tasks: Vec<TaskEntry>,
    /// What could not be read (a storage the token may not read, a node that did not answer).
    #[serde(serialize_with = "errors_as_text")]
    pub problems: Vec<ProxmoxError>,
}

fn errors_as_text<S: serde::Serializer>(errors: &[ProxmoxError], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(errors.iter().map(ToString::to_string))
}

impl Backups {
    /// A guest's backups (empty when none is known).
    pub fn guest(&self, vmid: u32) -> GuestBackups {
        self.guests.get(&vmid).cloned().unwrap_or_default()
    }

    /// The newest job run: the newest vzdump task and those that started within half an hour
    /// before it on other nodes (a scheduled job runs one task per node), newest first.
    pub fn last_run(&self) -> Vec<&BackupJob> {
        let Some(newest) = self.jobs.first() else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        self.jobs
            .iter()
            .filter(|j| newest.task.start - j.task.start <= JOB_WINDOW_SECS)
            .filter(|j| seen.insert(j.task.node.as_str()))
            .collect()
    }

    /// The job runs that started in `[since, until)`, newest first.
    pub fn runs_between(&self, since: i64, until: i64) -> Vec<&BackupJob> {
        self.jobs
            .iter()
            .filter(|j| j.task.start >= since && j.task.start < until)
            .collect()
    }

    /// Tasks that ended in failure at or after `since`, newest first.
    pub fn failed_since(&self, since: i64) -> Vec<&TaskEntry> {
        self.tasks
            .iter()
            .filter(|t| t.failed() && t.at() >= since)
            .collect()
    }

    /// Whether a guest's newest backup is older than `max_age_days` (or there is none) at `now`.
    pub fn is_stale(&self, vmid: u32, now: i64, max_age_days: u32) -> bool {
        let since = now - i64::from(max_age_days) * 86_400;
        self.guests
            .get(&vmid)
            .and_then(|g| g.last_ok.as_ref())
            .is_none_or(|f| f.ctime < since)
    }

    /// The 403s among the problems: what the token may not read.
    pub fn forbidden(&self) -> impl Iterator<Item = &ProxmoxError> {
        self.problems
            .iter()
            .filter(|p| matches!(p, ProxmoxError::Forbidden { .. }))
    }
}

/// The cache of [`Backups`] with its settings.
#[derive(Debug)]
pub(crate) struct BackupCache {
    slot: Slot<Backups>,
    ttl: Duration,
    max_age_days: u32,
}

impl BackupCache {
    pub(crate) fn new(config: &ProxmoxConfig) -> Self {
        Self {
            slot: Slot::default(),
            ttl: Duration::from_secs(config.backups_ttl_secs),
            max_age_days: config.backup_max_age_days,
        }
    }
}

impl Proxmox {
    /// The cluster's backups and recent tasks, at most `proxmox.backups_ttl_secs` old.
    /// Concurrent callers share one fetch.
    ///
    /// # Errors
    /// The inventory could not be read, or no task list and no storage could be read at all;
    /// what failed in part is in [`Backups::problems`].
    pub async fn backups(&self) -> Result<Arc<Backups>, ProxmoxError> {
        let cache = self.backup_cache();
        cache
            .slot
            .get(Some(cache.ttl), || self.fetch_backups())
            .await
    }

    /// `proxmox.backup_max_age_days`: a guest without a backup this recent counts as not backed
    /// up.
    pub fn backup_max_age_days(&self) -> u32 {
        self.backup_cache().max_age_days
    }

    async fn fetch_backups(&self) -> Result<Backups, ProxmoxError> {
        let inventory = self.inventory().await?;
        let now = jiff::Timestamp::now().as_second();
        let since = now - TASK_HISTORY_DAYS * 86_400;
        let nodes: Vec<&str> = inventory
            .nodes
            .iter()
            .filter(|n| n.status == NodeState::Online && is_safe_name(&n.name))
            .map(|n| n.name.as_str())
            .collect();
        let task_lists = futures_util::future::join_all(nodes.iter().map(|node| async move {
            let path = format!(
                "/nodes/{node}/tasks?typefilter=vzdump&since={since}&source=all&limit={TASK_LIMIT}"
            );
            self.read::<Vec<Value>>(&path).await
        }));
        let storages = backup_storages(&inventory);
        let contents = futures_util::future::join_all(storages.iter().map(|(node, storage)| {
            let path = format!("/nodes/{node}/storage/{storage}/content?content=backup");
            async move { (storage.as_str(), self.read::<Vec<Value>>(&path).await) }
        }));
        let cluster_tasks = self.read::<Vec<Value>>("/cluster/tasks");
        let (task_lists, contents, cluster_tasks) =
            tokio::join!(task_lists, contents, cluster_tasks);

        let mut problems = Vec::new();
        let mut answered = 0;
        let mut vzdump = Vec::new();
        for list in task_lists {
            match list {
                Ok(entries) => {
                    answered += 1;
                    vzdump.extend(entries.into_iter().filter_map(task_entry));
                }
                Err(err) => problems.push(err),
            }
        }
        let mut files = Vec::new();
        for (storage, content) in contents {
            match content {
                Ok(entries) => {
                    answered += 1;
                    files.extend(entries.into_iter().filter_map(|e| backup_file(storage, e)));
                }
                Err(err) => problems.push(err),
            }
        }
        let mut tasks = Vec::new();
        match cluster_tasks {
            Ok(entries) => {
                answered += 1;
                tasks.extend(entries.into_iter().filter_map(task_entry));
            }
            Err(err) => problems.push(err),
        }
        if answered == 0 && !problems.is_empty() {
            return Err(problems.swap_remove(0));
        }
        vzdump.retain(|t| t.kind == "vzdump" && t.start >= since);
        vzdump.sort_by(|a, b| b.start.cmp(&a.start).then(a.upid.cmp(&b.upid)));
        vzdump.dedup_by(|a, b| a.upid == b.upid);

        // Logs: the newest task of every node, and the jobs over several guests that did not
        // end OK (a single guest's task names its guest already).
        let mut wanted: Vec<&TaskEntry> = Vec::new();
        let mut newest_seen = HashSet::new();
        for task in &vzdump {
            let newest = newest_seen.insert(task.node.as_str());
            let unexplained = task.vmid().is_none()
                && task.result().is_some_and(|r| !matches!(r, TaskResult::Ok));
            if (newest || unexplained) && wanted.len() < MAX_LOGS {
                wanted.push(task);
            }
        }
        let logs = futures_util::future::join_all(wanted.iter().map(|task| async move {
            let upid = utf8_percent_encode(&task.upid, PATH_SEGMENT);
            let path = format!(
                "/nodes/{}/tasks/{upid}/log?start=0&limit={LOG_LINES}",
                task.node
            );
            (task.upid.clone(), self.read::<Vec<Value>>(&path).await)
        }))
        .await;
        let mut parsed = std::collections::HashMap::new();
        for (upid, log) in logs {
            match log {
                Ok(lines) => {
                    let text: Vec<String> = lines.into_iter().filter_map(log_line).collect();
                    parsed.insert(upid, parse_log(&text));
                }
                Err(err) => problems.push(err),
            }
        }
        let jobs: Vec<BackupJob> = vzdump
            .iter()
            .map(|task| job(task, parsed.remove(&task.upid)))
            .collect();

        let mut all_tasks = tasks;
        all_tasks.extend(vzdump);
        all_tasks.sort_by(|a, b| b.start.cmp(&a.start).then(a.upid.cmp(&b.upid)));
        all_tasks.dedup_by(|a, b| a.upid == b.upid);

        Ok(Backups {
            fetched_at: now,
            guests: per_guest(files, &jobs),
            jobs,
            tasks: all_tasks,
            problems,
        })
    }
}

/// The storages holding backups, as `(node, storage)`: every available one on an online node,
/// a shared one once.
fn backup_storages(inventory: &Inventory) -> Vec<(String, String)> {
    let online: HashSet<&str> = inventory
        .nodes
        .iter()
        .filter(|n| n.status == NodeState::Online)
        .map(|n| n.name.as_str())
        .collect();
    let mut shared_seen = HashSet::new();
    inventory
        .storages
        .iter()
        .filter(|s| s.available && s.content.iter().any(|c| c == "backup"))
        .filter(|s| online.contains(s.node.as_str()))
        .filter(|s| is_safe_name(&s.node) && is_safe_name(&s.storage))
        .filter(|s| !s.shared || shared_seen.insert(s.storage.clone()))
        .map(|s| (s.node.clone(), s.storage.clone()))
        .collect()
}

/// One entry of a task list.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawTask {
    #[serde(deserialize_with = "string")]
    upid: Option<String>,
    #[serde(deserialize_with = "string")]
    node: Option<String>,
    #[serde(rename = "type", deserialize_with = "string")]
    kind: Option<String>,
    #[serde(deserialize_with = "string")]
    id: Option<String>,
    #[serde(deserialize_with = "string")]
    user: Option<String>,
    #[serde(deserialize_with = "number")]
    starttime: Option<u64>,
    #[serde(deserialize_with = "number")]
    endtime: Option<u64>,
    #[serde(deserialize_with = "string")]
    status: Option<String>,
}

fn task_entry(value: Value) -> Option<TaskEntry> {
    let raw: RawTask = serde_json::from_value(value).ok()?;
    let upid = raw.upid.filter(|u| !u.is_empty())?;
    let field = |i: usize| upid.split(':').nth(i).map(str::to_owned);
    let node = raw
        .node
        .or_else(|| wire::upid_node(&upid).map(str::to_owned))?;
    let kind = raw.kind.or_else(|| field(5)).unwrap_or_default();
    let start = raw
        .starttime
        .or_else(|| field(4).and_then(|h| u64::from_str_radix(&h, 16).ok()))
        .and_then(|s| i64::try_from(s).ok())?;
    // A running task has no status; `unknown` is what an interrupted one (node crash) says.
    let status = raw.status.filter(|s| !s.is_empty() && s != "running");
    Some(TaskEntry {
        node,
        kind,
        id: raw.id.or_else(|| field(6)).filter(|i| !i.is_empty()),
        user: raw.user.or_else(|| field(7)).filter(|u| !u.is_empty()),
        start,
        end: raw.endtime.and_then(|e| i64::try_from(e).ok()),
        status,
        upid,
    })
}

/// One entry of a storage's `content?content=backup`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawContent {
    #[serde(deserialize_with = "string")]
    volid: Option<String>,
    #[serde(deserialize_with = "string")]
    content: Option<String>,
    #[serde(deserialize_with = "number")]
    vmid: Option<u64>,
    #[serde(deserialize_with = "number")]
    ctime: Option<u64>,
    #[serde(deserialize_with = "number")]
    size: Option<u64>,
    #[serde(deserialize_with = "string")]
    format: Option<String>,
    #[serde(deserialize_with = "string")]
    notes: Option<String>,
    #[serde(deserialize_with = "flag")]
    protected: Option<bool>,
    verification: Option<Value>,
}

fn backup_file(storage: &str, value: Value) -> Option<BackupFile> {
    let raw: RawContent = serde_json::from_value(value).ok()?;
    if raw.content.as_deref().is_some_and(|c| c != "backup") {
        return None;
    }
    let volid = raw.volid?;
    let vmid = raw
        .vmid
        .and_then(|v| u32::try_from(v).ok())
        .or_else(|| vmid_of_volume(&volid))?;
    Some(BackupFile {
        storage: storage.to_owned(),
        vmid,
        ctime: raw.ctime.and_then(|c| i64::try_from(c).ok())?,
        size: raw.size,
        format: raw.format,
        notes: raw.notes.filter(|n| !n.trim().is_empty()),
        protected: raw.protected.unwrap_or(false),
        verification: raw
            .verification
            .as_ref()
            .and_then(|v| v.get("state"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        volid,
    })
}

/// `vzdump-qemu-104-2026_12_01-02_00_05.vma.zst` → 104.
fn vmid_of_volume(volid: &str) -> Option<u32> {
    let name = volid.rsplit('/').next()?;
    let rest = name.strip_prefix("vzdump-")?;
    let (_, rest) = rest.split_once('-')?;
    rest.split('-').next()?.parse().ok()
}

fn log_line(value: Value) -> Option<String> {
    match value {
        Value::Object(mut line) => match line.remove("t") {
            Some(Value::String(text)) => Some(text),
            _ => None,
        },
        Value::String(text) => Some(text),
        _ => None,
    }
}

/// What a vzdump log says about each guest.
#[derive(Debug, Default, PartialEq, Eq)]
struct LogGuests {
    ok: Vec<u32>,
    warned: Vec<u32>,
    failed: Vec<(u32, String)>,
}

/// Reads vzdump's log: `INFO: Starting Backup of VM 104 (qemu)`, `WARN: ...` while it runs,
/// `INFO: Finished Backup of VM 104 (00:01:02)` or `ERROR: Backup of VM 104 failed - <why>`.
fn parse_log(lines: &[String]) -> LogGuests {
    let mut out = LogGuests::default();
    let mut current: Option<(u32, bool)> = None;
    let vmid_after = |text: &str, marker: &str| -> Option<u32> {
        let rest = &text[text.find(marker)? + marker.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    for line in lines {
        let line = line.trim();
        if let Some(vmid) = vmid_after(line, "Starting Backup of VM ") {
            current = Some((vmid, false));
        } else if let Some(vmid) = vmid_after(line, "Finished Backup of VM ") {
            let warned = current.is_some_and(|(v, w)| v == vmid && w);
            if warned {
                out.warned.push(vmid);
            } else {
                out.ok.push(vmid);
            }
            current = None;
        } else if line.starts_with("ERROR:") {
            if let Some(vmid) = vmid_after(line, "Backup of VM ") {
                let why = line
                    .split_once(" failed - ")
                    .map_or("the backup failed", |(_, why)| why)
                    .trim()
                    .to_owned();
                out.failed.push((vmid, why));
                current = None;
            }
        } else if line.starts_with("WARN") {
            if let Some((_, warned)) = &mut current {
                *warned = true;
            }
        }
    }
    out
}

fn job(task: &TaskEntry, log: Option<LogGuests>) -> BackupJob {
    let result = task.result().map(|r| BackupResult::of(&r));
    let log_read = log.is_some();
    let mut log = log.unwrap_or_default();
    // A task over one guest says how it went itself.
    if !log_read {
        if let (Some(vmid), Some(result)) = (task.vmid(), task.result()) {
            match result {
                TaskResult::Ok => log.ok.push(vmid),
                TaskResult::Warnings { .. } => log.warned.push(vmid),
                TaskResult::Failed { message } => log.failed.push((vmid, message)),
                TaskResult::TimedOut => {}
            }
        }
    }
    BackupJob {
        task: task.clone(),
        result,
        guests_ok: log.ok,
        guests_warned: log.warned,
        guests_failed: log.failed,
        log_read,
    }
}

/// Per guest: the newest archive, and the newest attempt from the jobs (newest first) or the
/// archives.
fn per_guest(files: Vec<BackupFile>, jobs: &[BackupJob]) -> BTreeMap<u32, GuestBackups> {
    let mut guests: BTreeMap<u32, GuestBackups> = BTreeMap::new();
    for file in files {
        let entry = guests.entry(file.vmid).or_default();
        entry.archives += 1;
        if entry.last_ok.as_ref().is_none_or(|f| file.ctime > f.ctime) {
            entry.last_ok = Some(file);
        }
    }
    // Jobs are newest first: the first mention of a guest is its newest attempt.
    for job in jobs {
        let time = job.task.at();
        let upid = Some(job.task.upid.clone());
        let attempts = job
            .guests_ok
            .iter()
            .map(|v| (*v, BackupResult::Ok, None))
            .chain(
                job.guests_warned
                    .iter()
                    .map(|v| (*v, BackupResult::Warnings, job.task.status.clone())),
            )
            .chain(
                job.guests_failed
                    .iter()
                    .map(|(v, why)| (*v, BackupResult::Failed, Some(why.clone()))),
            );
        for (vmid, result, message) in attempts {
            let entry = guests.entry(vmid).or_default();
            if entry.last_attempt.is_none() {
                entry.last_attempt = Some(Attempt {
                    time,
                    result,
                    message,
                    upid: upid.clone(),
                });
            }
        }
    }
    for entry in guests.values_mut() {
        // An archive newer than any attempt the logs told of (a job whose log was not read).
        if let Some(file) = &entry.last_ok {
            if entry
                .last_attempt
                .as_ref()
                .is_none_or(|a| a.time < file.ctime)
            {
                entry.last_attempt = Some(Attempt {
                    time: file.ctime,
                    result: BackupResult::Ok,
                    message: None,
                    upid: None,
                });
            }
        }
    }
    guests
}

/// Every reader here over a list from the API (tasks, storage content, a task log), for the
/// fuzz targets (`fuzz/`).
#[doc(hidden)]
pub(crate) fn fuzz_entries(entries: &[Value]) {
    let tasks: Vec<TaskEntry> = entries.iter().cloned().filter_map(task_entry).collect();
    let files: Vec<BackupFile> = entries
        .iter()
        .cloned()
        .filter_map(|e| backup_file("local", e))
        .collect();
    let lines: Vec<String> = entries.iter().cloned().filter_map(log_line).collect();
    let jobs: Vec<BackupJob> = tasks
        .iter()
        .map(|task| job(task, Some(parse_log(&lines))))
        .chain(tasks.iter().map(|task| job(task, None)))
        .collect();
    let backups = Backups {
        fetched_at: 0,
        guests: per_guest(files, &jobs),
        jobs,
        tasks,
        problems: Vec::new(),
    };
    let _ = (backups.last_run(), backups.failed_since(0));
    for task in &backups.tasks {
        let _ = (task.failed(), task.vmid(), task.at());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documented_task_and_content_entries_parse() {
        let task = task_entry(json!({
            "upid": "UPID:pve:0000C530:0001F2A4:6763A5D0:vzdump::root@pam:",
            "node": "pve", "pid": 50480, "pstart": 127652, "starttime": 1734583760,
            "type": "vzdump", "id": "", "user": "root@pam", "endtime": 1734583900,
            "status": "job errors"
        }))
        .unwrap();
        assert_eq!(task.node, "pve");
        assert_eq!(task.kind, "vzdump");
        assert_eq!(task.id, None);
        assert_eq!(task.end, Some(1_734_583_900));
        assert!(task.failed());
        let running = task_entry(json!({
            "upid": "UPID:pve:0000C531:0001F2A4:6763A5D1:qmstart:101:root@pam:",
            "starttime": "1734583761"
        }))
        .unwrap();
        assert_eq!(running.node, "pve");
        assert_eq!(running.kind, "qmstart");
        assert_eq!(running.vmid(), Some(101));
        assert_eq!(running.result(), None);
        assert!(task_entry(json!({"node": "pve"})).is_none());

        let file = backup_file(
            "nas",
            json!({
                "volid": "nas:backup/vzdump-qemu-104-2026_12_01-02_00_05.vma.zst",
                "content": "backup", "ctime": 1764554405, "format": "vma.zst",
                "size": 2147483648u64, "subtype": "qemu", "vmid": 104, "notes": "nextcloud",
                "protected": 1, "verification": {"state": "ok", "upid": "UPID:..."}
            }),
        )
        .unwrap();
        assert_eq!(file.vmid, 104);
        assert_eq!(file.size, Some(2_147_483_648));
        assert!(file.protected);
        assert_eq!(file.verification.as_deref(), Some("ok"));
        let file = backup_file(
            "local",
            json!({"volid": "local:backup/vzdump-lxc-200-2026_12_01-02_00_05.tar.zst",
                   "ctime": 5}),
        )
        .unwrap();
        assert_eq!(file.vmid, 200, "from the file name");
    }

    #[test]
    fn the_log_names_each_guest() {
        let log: Vec<String> = [
            "INFO: starting new backup job: vzdump 100 101 104 --storage nas",
            "INFO: Starting Backup of VM 100 (qemu)",
            "INFO: Finished Backup of VM 100 (00:00:12)",
            "INFO: Starting Backup of VM 101 (qemu)",
            "WARN: unable to connect to the guest agent",
            "INFO: Finished Backup of VM 101 (00:01:02)",
            "INFO: Starting Backup of VM 104 (qemu)",
            "ERROR: Backup of VM 104 failed - VM 104 is locked (snapshot)",
            "INFO: Failed at 2026-12-01 02:03:00",
            "INFO: Backup job finished with errors",
            "TASK ERROR: job errors",
        ]
        .map(String::from)
        .to_vec();
        let guests = parse_log(&log);
        assert_eq!(guests.ok, [100]);
        assert_eq!(guests.warned, [101]);
        assert_eq!(
            guests.failed,
            [(104, "VM 104 is locked (snapshot)".to_owned())]
        );
    }
}
