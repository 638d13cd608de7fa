//! The brain's memory: the event store, Frigate's status and the time zone questions about
//! them are asked in. Jarvis's own commands and actions are written here as they happen.

use std::sync::atomic::{AtomicU64, Ordering};

use jiff::tz::TimeZone;

use super::types::Activity;
use crate::events::model::{KIND_ACTION, KIND_COMMAND};
use crate::events::{Event, EventStore, Source};
use crate::frigate::FrigateLink;

/// What the brain remembers with.
#[derive(Debug)]
pub struct Memory {
    /// The event store.
    pub store: EventStore,
    /// Frigate's status.
    pub frigate: FrigateLink,
    /// Whether Frigate is configured at all (questions about it say so when not).
    pub frigate_enabled: bool,
    /// The time zone "today" and spoken times are in.
    pub tz: TimeZone,
    /// A fixed "now" (tests); `None`: the system clock.
    fixed_now_ms: Option<i64>,
    next: AtomicU64,
}

impl Memory {
    /// A memory over `store`.
    pub fn new(
        store: EventStore,
        frigate: FrigateLink,
        frigate_enabled: bool,
        tz: TimeZone,
    ) -> Self {
        Self {
            store,
            frigate,
            frigate_enabled,
            tz,
            fixed_now_ms: None,
            next: AtomicU64::new(0),
        }
    }

    /// The memory with the clock stopped at `now_ms` (questions under a fixed clock).
    #[must_use]
    pub fn at_fixed_time(mut self, now_ms: i64) -> Self {
        self.fixed_now_ms = Some(now_ms);
        self
    }

    /// Now, in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.fixed_now_ms
            .unwrap_or_else(|| jiff::Timestamp::now().as_millisecond())
    }

    /// Writes one of Jarvis's own commands or actions to the store (queued; a store that
    /// cannot take it is logged by the store, never by each command).
    pub(crate) async fn remember(&self, activity: &Activity) {
        let now = jiff::Timestamp::now().as_millisecond();
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let key = format!("jarvis:{now}-{n}");
        let event = match activity {
            Activity::Command {
                channel,
                text,
                intent,
                reply,
            } => Event {
                text: Some(text.clone()),
                description: Some(reply.clone()),
                attributes: Some(serde_json::json!({
                    "channel": channel.as_str(),
                    "intent": intent,
                })),
                end_ms: Some(now),
                ..Event::new(key, Source::Jarvis, KIND_COMMAND, now)
            },
            Activity::Action { channel, report } => Event {
                text: Some(format!(
                    "{} {}",
                    report.action,
                    report
                        .guest
                        .clone()
                        .or_else(|| report.node.clone())
                        .or_else(|| report.vmid.map(|v| v.to_string()))
                        .unwrap_or_default()
                )),
                description: Some(report.reply.clone()),
                attributes: serde_json::to_value(report).ok().map(|mut value| {
                    if let Some(map) = value.as_object_mut() {
                        map.insert("channel".into(), channel.as_str().into());
                    }
                    value
                }),
                end_ms: Some(now),
                ..Event::new(key, Source::Jarvis, KIND_ACTION, now)
            },
        };
        if let Err(err) = self.store.record(event).await {
            tracing::debug!(%err, "activity not remembered");
        }
    }
}
