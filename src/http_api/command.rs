//! `POST /v1/command {"text": ...}`: a command as it would be said, answered by the brain.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::brain::engine::MAX_TEXT_CHARS;
use crate::brain::{Channel, Command};

use super::ApiState;
use super::error::{ApiError, json_body};

/// Body of `POST /v1/command`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandBody {
    /// What to do or ask, as you would say it.
    text: String,
    /// Continue a conversation (to confirm a destructive action).
    #[serde(default)]
    conversation_id: Option<String>,
    /// The approval keyword (`policy.approval_keyword`): confirms destructive actions at once.
    #[serde(default)]
    approval: Option<String>,
}

pub(super) async fn command(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<CommandBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    state.commands.admit(peer, &headers)?;
    let body = json_body(
        body,
        state.max_body_bytes,
        r#"{"text": "status of node pve"}"#,
    )?;
    let text = checked_text(&body)?;
    let response = state
        .services
        .brain
        .command(Command {
            text: text.to_owned(),
            channel: Channel::Http,
            client: peer.ip().to_string(),
            conversation: body.conversation_id.filter(|c| !c.is_empty()),
            approval: body.approval,
        })
        .await;
    Ok(Json(response).into_response())
}

/// The command's text, trimmed; empty or too long is refused.
fn checked_text(body: &CommandBody) -> Result<&str, ApiError> {
    let text = body.text.trim();
    if text.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty-text",
            "text is empty; send what you would say, e.g. {\"text\": \"status of node pve\"}",
        ));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-long",
            format!("text is longer than {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(text)
}

/// A body as the handler reads it (axum's JSON extractor, then the checks), for the fuzz
/// targets: the text it would run, or the status it would answer.
pub(crate) fn fuzz_body(bytes: &[u8]) -> Result<String, StatusCode> {
    let body = json_body(Json::<CommandBody>::from_bytes(bytes), bytes.len(), "{}")
        .map_err(|err| err.into_response().status())?;
    checked_text(&body)
        .map(str::to_owned)
        .map_err(|err| err.into_response().status())
}
