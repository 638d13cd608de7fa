//! Backup entities: on each guest's device "Last backup" (a timestamp) and "Last backup
//! result"; on Jarvis's device "Guests without recent backup" and "Failed tasks (24 h)", each
//! a count with the list as attributes. Their states are retained on their own topics
//! (`<base>/guest/<vmid>/backup`, `<base>/server/backups`) and change only when the backups
//! do, so they never expire.

use serde::Serialize;

use crate::proxmox::{Backups, Inventory, TaskEntry};

use super::discovery::Builder;
use super::state::iso8601;

/// The states of "Last backup result".
const RESULTS: &[&str] = &["ok", "warnings", "failed", "none"];
/// Guests and tasks listed in the attributes at most (HA keeps attributes small).
const MAX_LISTED: usize = 100;
/// The window of "Failed tasks (24 h)".
const FAILED_WINDOW_SECS: i64 = 24 * 3600;

/// A guest's "Last backup" and "Last backup result", reading `topic`.
pub(super) fn guest_sensors<'a>(b: &mut Builder<'a>, topic: &'a str) {
    let mut time = b.base("sensor", "last_backup", "Last backup");
    time.stat_t = Some(topic);
    time.val_tpl = Some("{{ value_json.time }}");
    time.dev_cla = Some("timestamp");
    time.ic = Some("mdi:backup-restore");
    time.json_attr_t = Some(topic);
    time.json_attr_tpl = Some(
        "{{ {'storage': value_json.storage, 'size': value_json.size, 'volid': value_json.volid, 'stale': value_json.stale} | tojson }}",
    );
    b.push("last_backup", time);
    let mut result = b.base("sensor", "last_backup_result", "Last backup result");
    result.stat_t = Some(topic);
    result.val_tpl = Some("{{ value_json.result }}");
    result.dev_cla = Some("enum");
    result.ops = Some(RESULTS);
    result.ic = Some("mdi:archive-check");
    result.json_attr_t = Some(topic);
    result.json_attr_tpl =
        Some("{{ {'when': value_json.attempt_time, 'message': value_json.message} | tojson }}");
    b.push("last_backup_result", result);
}

/// Jarvis's "Guests without recent backup" and "Failed tasks (24 h)", reading `topic`.
pub(super) fn server_sensors<'a>(b: &mut Builder<'a>, topic: &'a str) {
    let mut stale = b.base("sensor", "backups_stale", "Guests without recent backup");
    stale.stat_t = Some(topic);
    stale.val_tpl = Some("{{ value_json.stale }}");
    stale.stat_cla = Some("measurement");
    stale.ic = Some("mdi:backup-restore");
    stale.json_attr_t = Some(topic);
    stale.json_attr_tpl = Some(
        "{{ {'guests': value_json.stale_guests, 'max_age_days': value_json.max_age_days} | tojson }}",
    );
    b.push("backups_stale", stale);
    let mut failed = b.base("sensor", "failed_tasks", "Failed tasks (24 h)");
    failed.stat_t = Some(topic);
    failed.val_tpl = Some("{{ value_json.failed }}");
    failed.stat_cla = Some("measurement");
    failed.ic = Some("mdi:alert-circle-outline");
    failed.json_attr_t = Some(topic);
    failed.json_attr_tpl = Some("{{ {'tasks': value_json.failed_tasks} | tojson }}");
    b.push("failed_tasks", failed);
}

#[derive(Serialize)]
struct GuestPayload<'a> {
    time: Option<String>,
    result: &'static str,
    storage: Option<&'a str>,
    size: Option<u64>,
    volid: Option<&'a str>,
    attempt_time: Option<String>,
    message: Option<&'a str>,
    stale: bool,
}

/// A guest's backup state JSON.
pub(super) fn guest_payload(backups: &Backups, vmid: u32, now: i64, max_age_days: u32) -> String {
    let known = backups.guests.get(&vmid);
    let file = known.and_then(|g| g.last_ok.as_ref());
    let attempt = known.and_then(|g| g.last_attempt.as_ref());
    let payload = GuestPayload {
        time: file.map(|f| iso8601(f.ctime)),
        result: attempt.map_or("none", |a| a.result.as_str()),
        storage: file.map(|f| f.storage.as_str()),
        size: file.and_then(|f| f.size),
        volid: file.map(|f| f.volid.as_str()),
        attempt_time: attempt.map(|a| iso8601(a.time)),
        message: attempt.and_then(|a| a.message.as_deref()),
        stale: backups.is_stale(vmid, now, max_age_days),
    };
    serde_json::to_string(&payload).unwrap_or_default()
}

#[derive(Serialize)]
struct ServerPayload<'a> {
    stale: usize,
    stale_guests: Vec<&'a str>,
    max_age_days: u32,
    failed: usize,
    failed_tasks: Vec<FailedTask<'a>>,
}

#[derive(Serialize)]
struct FailedTask<'a> {
    node: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    id: Option<&'a str>,
    user: Option<&'a str>,
    start: String,
    end: Option<String>,
    status: Option<&'a str>,
}

/// Jarvis's backups state JSON: guests (not templates) without a recent backup, and the tasks
/// that failed in the last 24 hours, newest first.
pub(super) fn server_payload(
    backups: &Backups,
    inventory: &Inventory,
    now: i64,
    max_age_days: u32,
) -> String {
    let mut stale: Vec<&str> = inventory
        .guests
        .iter()
        .filter(|g| !g.template && backups.is_stale(g.vmid, now, max_age_days))
        .map(|g| g.name.as_str())
        .collect();
    stale.sort_unstable();
    let failed = backups.failed_since(now - FAILED_WINDOW_SECS);
    let payload = ServerPayload {
        stale: stale.len(),
        stale_guests: stale.into_iter().take(MAX_LISTED).collect(),
        max_age_days,
        failed: failed.len(),
        failed_tasks: failed
            .into_iter()
            .take(MAX_LISTED)
            .map(|t: &TaskEntry| FailedTask {
                node: &t.node,
                kind: &t.kind,
                id: t.id.as_deref(),
                user: t.user.as_deref(),
                start: iso8601(t.start),
                end: t.end.map(iso8601),
                status: t.status.as_deref(),
            })
            .collect(),
    };
    serde_json::to_string(&payload).unwrap_or_default()
}
