//! `GET /v1/backups` (every guest's last backup, and whether it is older than
//! `proxmox.backup_max_age_days`) and `GET /v1/tasks/failed?hours=24` (the tasks that failed),
//! behind the same key and rate limit as `/v1/command`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::proxmox::{Attempt, BackupFile, BackupJob, Proxmox, ProxmoxError, TaskEntry};

use super::ApiState;
use super::error::ApiError;

/// Longest window `/v1/tasks/failed` takes, in hours.
const MAX_HOURS: u32 = 24 * 31;

#[derive(Serialize)]
struct BackupsBody<'a> {
    max_age_days: u32,
    fetched_at: i64,
    stale: usize,
    guests: Vec<GuestBody<'a>>,
    last_job: Vec<&'a BackupJob>,
    problems: Vec<String>,
}

#[derive(Serialize)]
struct GuestBody<'a> {
    vmid: u32,
    name: &'a str,
    node: &'a str,
    kind: &'static str,
    /// The newest archive.
    last_backup: Option<&'a BackupFile>,
    /// The newest attempt (a failed one is newer than the newest archive).
    last_attempt: Option<&'a Attempt>,
    /// No archive within `max_age_days`.
    stale: bool,
}

#[derive(Serialize)]
struct FailedBody<'a> {
    hours: u32,
    since: i64,
    tasks: Vec<&'a TaskEntry>,
    problems: Vec<String>,
}

fn proxmox(state: &ApiState) -> Result<Proxmox, ApiError> {
    state.services.brain.proxmox().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "proxmox-not-configured",
            "Proxmox is not configured (proxmox.enabled, proxmox.urls)",
        )
    })
}

fn upstream(err: &ProxmoxError) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "proxmox", err.to_string())
}

pub(super) async fn backups(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.commands.admit(peer, &headers)?;
    let proxmox = proxmox(&state)?;
    let inventory = proxmox.inventory().await.map_err(|e| upstream(&e))?;
    let backups = proxmox.backups().await.map_err(|e| upstream(&e))?;
    let max_age_days = proxmox.backup_max_age_days();
    let now = jiff::Timestamp::now().as_second();
    let guests: Vec<GuestBody<'_>> = inventory
        .guests
        .iter()
        .filter(|g| !g.template)
        .map(|g| {
            let known = backups.guests.get(&g.vmid);
            GuestBody {
                vmid: g.vmid,
                name: &g.name,
                node: &g.node,
                kind: g.kind.api_name(),
                last_backup: known.and_then(|b| b.last_ok.as_ref()),
                last_attempt: known.and_then(|b| b.last_attempt.as_ref()),
                stale: backups.is_stale(g.vmid, now, max_age_days),
            }
        })
        .collect();
    let body = BackupsBody {
        max_age_days,
        fetched_at: backups.fetched_at,
        stale: guests.iter().filter(|g| g.stale).count(),
        guests,
        last_job: backups.last_run(),
        problems: backups.problems.iter().map(ToString::to_string).collect(),
    };
    Ok(Json(body).into_response())
}

pub(super) async fn failed_tasks(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    state.commands.admit(peer, &headers)?;
    let asked = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("hours="));
    let hours = match asked.map(str::parse::<u32>) {
        None => 24,
        Some(Ok(h)) if (1..=MAX_HOURS).contains(&h) => h,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad-hours",
                format!("hours must be a whole number from 1 to {MAX_HOURS}, e.g. ?hours=24"),
            ));
        }
    };
    let proxmox = proxmox(&state)?;
    let backups = proxmox.backups().await.map_err(|e| upstream(&e))?;
    let since = jiff::Timestamp::now().as_second() - i64::from(hours) * 3600;
    let body = FailedBody {
        hours,
        since,
        tasks: backups.failed_since(since),
        problems: backups.problems.iter().map(ToString::to_string).collect(),
    };
    Ok(Json(body).into_response())
}
