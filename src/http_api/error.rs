//! The API's error body, `{"error": ..., "code": ...}`, and the answer to a body that could not
//! be read as the route's JSON: the same for every route, with the route's own example.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error body.
#[derive(Debug, Serialize)]
struct ApiError {
    error: String,
    code: &'static str,
}

/// An error answer: `status` with `{"error": text, "code": code}`.
pub(super) fn error(status: StatusCode, code: &'static str, text: impl Into<String>) -> Response {
    (
        status,
        Json(ApiError {
            error: text.into(),
            code,
        }),
    )
        .into_response()
}

/// The route's JSON body, or the answer to one that is too large (413), not JSON or not the
/// route's shape (400, with serde's words for what is wrong and `example`), or sent without
/// `content-type: application/json` (415: a browser can only send that cross-site after a CORS
/// preflight, which Jarvis never answers).
pub(super) fn json_body<T>(
    body: Result<Json<T>, JsonRejection>,
    max_body_bytes: usize,
    example: &str,
) -> Result<T, Response> {
    match body {
        Ok(Json(body)) => Ok(body),
        Err(rejection) => {
            let status = rejection.status();
            Err(if status == StatusCode::PAYLOAD_TOO_LARGE {
                error(
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
                error(
                    status,
                    "bad-request",
                    format!("{}; send JSON like {example}", rejection.body_text()),
                )
            })
        }
    }
}
