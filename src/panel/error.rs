//! The panel's error answer: `status` with `{"error": ..., "code": ...}`, as the HTTP API's.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A refused panel request.
#[derive(Debug)]
pub(super) struct PanelError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) text: String,
}

impl PanelError {
    pub(super) fn new(status: StatusCode, code: &'static str, text: impl Into<String>) -> Self {
        Self {
            status,
            code,
            text: text.into(),
        }
    }

    /// A failure of Jarvis itself; the detail is logged, the client told little.
    pub(super) fn internal(detail: &str) -> Self {
        tracing::warn!(cause = detail, "panel request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Jarvis could not do that; see its log",
        )
    }

    /// 503: too many live streams.
    pub(super) fn busy() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many panel streams are open (panel.max_streams); close a tab",
        )
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    code: &'static str,
}

impl IntoResponse for PanelError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(Body {
                error: &self.text,
                code: self.code,
            }),
        )
            .into_response()
    }
}
