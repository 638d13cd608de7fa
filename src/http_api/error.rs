//! The API's error answer, `status` with `{"error": ..., "code": ...}`, and the answer to a
//! body that could not be read as the route's JSON: the same for every route, with the
//! route's own example.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A refused request: its status, a stable `code` for programs and a message for people that
/// names the setting or field to fix.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    text: String,
    /// Seconds, for `Retry-After`.
    retry_after: Option<u64>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, text: impl Into<String>) -> Self {
        Self {
            status,
            code,
            text: text.into(),
            retry_after: None,
        }
    }

    /// Adds `Retry-After: secs` (at least 1).
    pub(super) fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }
}

/// The body of an error answer.
#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    code: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: &self.text,
            code: self.code,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(value) = self
            .retry_after
            .and_then(|secs| HeaderValue::from_str(&secs.to_string()).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// The route's JSON body, or the answer to one that is too large (413), not JSON or not the
/// route's shape (400, with serde's words for what is wrong and `example`), or sent without
/// `content-type: application/json` (415: a browser can only send that cross-site after a CORS
/// preflight, which Jarvis never answers).
pub(super) fn json_body<T>(
    body: Result<Json<T>, JsonRejection>,
    max_body_bytes: usize,
    example: &str,
) -> Result<T, ApiError> {
    match body {
        Ok(Json(body)) => Ok(body),
        Err(rejection) => {
            let status = rejection.status();
            Err(if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    status,
                    "too-large",
                    format!("the body is larger than {max_body_bytes} bytes (http.max_body_bytes)"),
                )
            } else {
                // A body of the wrong shape is as much a bad request as broken JSON; 422 is
                // kept for well-formed requests the server refuses (`/v1/event`'s times).
                let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
                    StatusCode::BAD_REQUEST
                } else {
                    status
                };
                ApiError::new(
                    status,
                    "bad-request",
                    format!("{}; send JSON like {example}", rejection.body_text()),
                )
            })
        }
    }
}
