//! `POST /v1/event`: Home Assistant pushes what happened (a door opened, someone arrived) into
//! Jarvis's event memory, so "what happened since 8 am?" covers the house, not only cameras.
//!
//! The body is checked here into an [`Event`] (source, kind, entity, area, text, times, id,
//! attributes; unknown fields are refused), stored through the event store and committed
//! before the answer: `200 {"key": "ha:<id>", "stored": true}`. With an `id` the push is
//! idempotent: the same id updates the same event (an `end_time` sent later completes it).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::debug;

use crate::events::{Event, Source, StoreError};

use super::ApiState;
use super::error::{ApiError, json_body};

/// How long the answer waits for the event to be committed; after that it is `202`: queued,
/// written when the disk lets it.
const COMMIT_WAIT: Duration = Duration::from_secs(5);
/// Longest `kind`.
const MAX_KIND_CHARS: usize = 64;
/// Longest `id`, `entity` and `area`.
const MAX_NAME_CHARS: usize = 255;
/// Longest `text`.
const MAX_TEXT_CHARS: usize = 4000;
/// The example in error messages.
const EXAMPLE: &str =
    r#"{"kind": "door", "entity": "binary_sensor.front_door", "text": "Front door opened"}"#;

/// Body of `POST /v1/event`. Times and the id are read as JSON values and checked here, so a
/// wrong one gets a message about that field rather than serde's untagged-enum complaint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventBody {
    /// `ha` (default) or `frigate`.
    #[serde(default)]
    source: Option<String>,
    /// What happened: `door`, `arrival`, `alarm`, ...
    kind: String,
    /// The Home Assistant entity id.
    #[serde(default)]
    entity: Option<String>,
    /// The Home Assistant area.
    #[serde(default)]
    area: Option<String>,
    /// What to remember, in words.
    #[serde(default)]
    text: Option<String>,
    /// When it happened: RFC 3339 with an offset, or Unix seconds. Default: `end_time` when
    /// only that is given, else now.
    #[serde(default)]
    time: Value,
    /// When it ended (same forms).
    #[serde(default)]
    end_time: Value,
    /// Makes the push idempotent: the event's key is `ha:<id>`.
    #[serde(default)]
    id: Value,
    /// Anything else, as a JSON object.
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
}

/// The answer.
#[derive(Debug, Serialize)]
struct Stored {
    key: String,
    /// Committed to disk (`false`: queued, see [`COMMIT_WAIT`]).
    stored: bool,
}

pub(super) async fn event(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<EventBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    state.events.admit(peer, &headers)?;
    let body = json_body(body, state.max_body_bytes, EXAMPLE)?;
    let now = jiff::Timestamp::now().as_millisecond();
    let event = to_event(body, now).map_err(|why| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("{why}; send JSON like {EXAMPLE}"),
        )
    })?;
    let key = event.key.clone();
    let store = &state.services.events;
    store.record(event).await.map_err(store_error)?;
    match tokio::time::timeout(COMMIT_WAIT, store.flush()).await {
        Ok(Ok(())) => {
            debug!(%key, "event stored");
            Ok(Json(Stored { key, stored: true }).into_response())
        }
        Ok(Err(err)) => Err(store_error(err)),
        Err(_) => Ok((StatusCode::ACCEPTED, Json(Stored { key, stored: false })).into_response()),
    }
}

fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::Rejected(why) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", why)
        }
        StoreError::Unavailable(why) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable", why)
        }
        StoreError::Closed => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "the event memory is shutting down",
        ),
        other @ StoreError::Query { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            other.to_string(),
        ),
    }
}

/// The event `body` describes, at `now` when it gives no time; the reason for people when it
/// is not one.
fn to_event(body: EventBody, now: i64) -> Result<Event, String> {
    let source = match body.source.as_deref().map(str::trim) {
        None | Some("" | "ha") => Source::Ha,
        Some("frigate") => Source::Frigate,
        Some("jarvis") => {
            return Err("source \"jarvis\" is kept for Jarvis's own commands and actions".into());
        }
        Some(other) => {
            return Err(format!(
                "source {:?} is not known; use \"ha\" (the default) or \"frigate\"",
                other.chars().take(40).collect::<String>()
            ));
        }
    };
    let kind = body.kind.trim().to_lowercase();
    if kind.is_empty() || kind.chars().count() > MAX_KIND_CHARS {
        return Err(format!(
            "kind must be 1 to {MAX_KIND_CHARS} characters, such as \"door\" or \"arrival\""
        ));
    }
    let key = match &body.id {
        Value::Null => format!("ha:auto-{now}-{}", next_id()),
        Value::String(id)
            if !id.trim().is_empty() && id.trim().chars().count() <= MAX_NAME_CHARS =>
        {
            format!("ha:{}", id.trim())
        }
        Value::Number(n) if n.is_u64() || n.is_i64() => format!("ha:{n}"),
        _ => {
            return Err(format!(
                "id must be a string of 1 to {MAX_NAME_CHARS} characters or an integer"
            ));
        }
    };
    let end_ms = time_ms("end_time", &body.end_time)?;
    // An update that only brings the end (`{"id": ..., "end_time": ...}`) must not move the
    // start to now, after its end: the store keeps the earlier start of the two.
    let start_ms = time_ms("time", &body.time)?.or(end_ms).unwrap_or(now);
    let entity = name("entity", body.entity, MAX_NAME_CHARS)?;
    let area = name("area", body.area, MAX_NAME_CHARS)?;
    let text = name("text", body.text, MAX_TEXT_CHARS)?;
    Ok(Event {
        entity,
        area,
        text,
        end_ms,
        attributes: body.attributes.map(Value::Object),
        ..Event::new(key, source, kind, start_ms)
    })
}

/// A body as the handler reads it (axum's JSON extractor, then [`to_event`]), for the fuzz
/// targets: the event it would store, or the status it would answer.
pub(crate) fn fuzz_body(bytes: &[u8], now: i64) -> Result<Event, StatusCode> {
    let body = json_body(Json::<EventBody>::from_bytes(bytes), bytes.len(), EXAMPLE)
        .map_err(|err| err.into_response().status())?;
    to_event(body, now).map_err(|_| StatusCode::BAD_REQUEST)
}

/// Ids for events pushed without one; unique in this process, and the time in the key keeps
/// them apart across restarts.
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A trimmed text field; empty is absent.
fn name(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let value = value.trim();
    if value.chars().count() > max {
        return Err(format!("{field} is longer than {max} characters"));
    }
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

/// A time field as milliseconds since the epoch: RFC 3339 with an offset (what HA's
/// `now().isoformat()` gives), or Unix seconds as a number or a string (`as_timestamp(now())`).
fn time_ms(field: &str, value: &Value) -> Result<Option<i64>, String> {
    let bad = || {
        format!(
            "{field} must be RFC 3339 with an offset (\"2026-12-04T07:30:00+01:00\") or Unix \
             seconds (1796365800)"
        )
    };
    let secs = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64().ok_or_else(bad)?,
        Value::String(text) => {
            let text = text.trim();
            match text.parse::<f64>() {
                Ok(secs) => secs,
                Err(_) => {
                    return text
                        .parse::<jiff::Timestamp>()
                        .map(|t| Some(t.as_millisecond()))
                        .map_err(|err| format!("{} ({err})", bad()));
                }
            }
        }
        _ => return Err(bad()),
    };
    // Within jiff's range (years -9999 to 9999), so the conversion below cannot overflow.
    if !secs.is_finite() || secs.abs() > 253_402_300_799.0 {
        return Err(bad());
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "finite and within ±2.6e14 ms, checked above"
    )]
    let ms = (secs * 1000.0).round() as i64;
    Ok(Some(ms))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn body(json: Value) -> EventBody {
        serde_json::from_value(json).unwrap()
    }

    const NOW: i64 = 1_796_365_800_000;

    #[test]
    fn a_minimal_push_is_an_ha_event_now_with_a_generated_key() {
        let event = to_event(body(serde_json::json!({"kind": " Door "})), NOW).unwrap();
        assert_eq!(event.source, Source::Ha);
        assert_eq!(event.kind, "door");
        assert_eq!(event.start_ms, NOW);
        assert!(
            event.key.starts_with(&format!("ha:auto-{NOW}-")),
            "{}",
            event.key
        );
        let again = to_event(body(serde_json::json!({"kind": "door"})), NOW).unwrap();
        assert_ne!(event.key, again.key);
        // Only an end: that is the start too (an update keeps its stored, earlier start).
        let end = to_event(
            body(serde_json::json!({"kind": "door", "id": "d", "end_time": 1_000})),
            NOW,
        )
        .unwrap();
        assert_eq!((end.start_ms, end.end_ms), (1_000_000, Some(1_000_000)));
    }

    #[test]
    fn every_field_is_kept() {
        let event = to_event(
            body(serde_json::json!({
                "source": "ha", "kind": "arrival", "entity": "person.alice", "area": "Hall",
                "text": "Alice came home", "time": "2026-12-04T07:30:00+01:00",
                "end_time": 1_796_365_900.5, "id": "abc-1", "attributes": {"zone": "home"}
            })),
            NOW,
        )
        .unwrap();
        assert_eq!(event.key, "ha:abc-1");
        assert_eq!(event.entity.as_deref(), Some("person.alice"));
        assert_eq!(event.area.as_deref(), Some("Hall"));
        assert_eq!(event.text.as_deref(), Some("Alice came home"));
        assert_eq!(event.start_ms, 1_796_365_800_000);
        assert_eq!(event.end_ms, Some(1_796_365_900_500));
        assert_eq!(event.attributes, Some(serde_json::json!({"zone": "home"})));
    }

    #[test]
    fn times_come_as_rfc3339_or_unix_seconds() {
        for (value, ms) in [
            (serde_json::json!("2026-12-04T06:30:00Z"), 1_796_365_800_000),
            (
                serde_json::json!("2026-12-04T06:30:00.250Z"),
                1_796_365_800_250,
            ),
            (serde_json::json!(1_796_365_800), 1_796_365_800_000),
            (serde_json::json!(1_796_365_800.25), 1_796_365_800_250),
            (serde_json::json!("1796365800"), 1_796_365_800_000),
        ] {
            assert_eq!(time_ms("time", &value), Ok(Some(ms)), "{value}");
        }
        assert_eq!(time_ms("time", &Value::Null), Ok(None));
        for bad in [
            serde_json::json!("2026-12-04 06:30"),
            serde_json::json!("yesterday"),
            serde_json::json!(true),
            serde_json::json!([1]),
            serde_json::json!(1e300),
        ] {
            let err = time_ms("end_time", &bad).unwrap_err();
            assert!(
                err.contains("end_time") && err.contains("RFC 3339"),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_fields_are_named() {
        for (json, needle) in [
            (serde_json::json!({"kind": ""}), "kind"),
            (serde_json::json!({"kind": "x".repeat(65)}), "kind"),
            (
                serde_json::json!({"kind": "door", "source": "jarvis"}),
                "jarvis",
            ),
            (
                serde_json::json!({"kind": "door", "source": "zigbee"}),
                "source",
            ),
            (serde_json::json!({"kind": "door", "id": ""}), "id"),
            (serde_json::json!({"kind": "door", "id": 1.5}), "id"),
            (serde_json::json!({"kind": "door", "id": {"a": 1}}), "id"),
            (
                serde_json::json!({"kind": "door", "text": "x".repeat(4001)}),
                "text",
            ),
            (serde_json::json!({"kind": "door", "time": "soon"}), "time"),
        ] {
            let err = to_event(body(json.clone()), NOW).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
        assert_eq!(
            to_event(body(serde_json::json!({"kind": "door", "id": 42})), NOW)
                .unwrap()
                .key,
            "ha:42"
        );
    }
}
