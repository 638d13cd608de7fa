//! The backfill task: what MQTT did not bring (Jarvis was down, or away from the broker, or
//! Frigate's messages were lost), fetched from Frigate's API.
//!
//! It runs at start, whenever Frigate comes back online, and after Jarvis reconnects to the
//! broker; a failed run is retried with a capped exponential backoff. Each run reads Frigate's
//! cameras and zones (`/api/config`), then pages through `/api/events` and `/api/review` newest
//! first from a cursor kept in the store's meta table, recording every item: the store merges by
//! key, so items already received over MQTT, or by an earlier run, are not duplicated.
//!
//! Design: the cursor is the start of the oldest item still going on at the end of a run (so
//! its end is fetched next time), or else of the newest item; the next run starts
//! [`OVERLAP`] before it (Frigate writes its rows a little after the fact, and stores starts
//! `pre_capture` seconds early), and never further back than `frigate.backfill_hours`.
//! Pages go back by start time (`before` just after the oldest start of the previous page, so
//! items sharing it come twice rather than never). `/api/review` applies `before` to the end
//! of an item, so a review item that started before a page boundary and ended after it can be
//! missed when a run needs more than one page of reviews (more than 200 since the cursor).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::api::{ApiError, FrigateApi};
use super::ingest::{LOG_EVERY, Recorder, Throttle};
use super::status::Availability;
use super::wire::Lenient;
use super::{FrigateSettings, Shared, now_ms};
use crate::events::StoreError;

/// Meta key of the cursor of tracked objects (seconds since the epoch, as Frigate counts).
pub(crate) const EVENTS_CURSOR: &str = "frigate.backfill.events";
/// Meta key of the cursor of review items.
pub(crate) const REVIEWS_CURSOR: &str = "frigate.backfill.reviews";
/// How far before the cursor a run starts.
const OVERLAP: f64 = 300.0;
/// Items per request.
const PAGE: usize = 200;
/// Most pages per run and kind (a busy day of a big install is a few hundred).
const MAX_PAGES: usize = 1000;

/// The backfill task's state.
#[derive(Debug)]
pub(crate) struct Backfill {
    api: FrigateApi,
    shared: Shared,
    recorder: Recorder,
    /// Seconds back of the first run; zero: only cameras and zones.
    window: f64,
    retry: (Duration, Duration),
    failures: Throttle,
}

/// What one run found.
#[derive(Debug, Default)]
struct Tally {
    stored: u64,
    skipped: u64,
}

/// Which of the two lists a pass reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Objects,
    Reviews,
}

impl Kind {
    fn cursor_key(self) -> &'static str {
        match self {
            Self::Objects => EVENTS_CURSOR,
            Self::Reviews => REVIEWS_CURSOR,
        }
    }
}

/// One item of a page, as far as paging is concerned.
struct Item {
    start: Option<f64>,
    ongoing: bool,
    event: Result<crate::events::Event, String>,
}

impl Backfill {
    pub(crate) fn new(settings: &FrigateSettings, api: FrigateApi, shared: Shared) -> Self {
        Self {
            api,
            recorder: Recorder::new(shared.clone()),
            shared,
            window: settings.backfill.as_secs_f64(),
            retry: settings.api_retry,
            failures: Throttle::new(LOG_EVERY),
        }
    }

    /// Runs until `token` is cancelled.
    pub(crate) async fn run(mut self, token: CancellationToken) {
        let (min_retry, max_retry) = self.retry;
        let mut delay = min_retry;
        loop {
            let result = tokio::select! {
                () = token.cancelled() => return,
                result = self.run_once() => result,
            };
            let wait = match result {
                Ok(tally) => {
                    delay = min_retry;
                    self.shared.stats.send_modify(|s| {
                        s.backfills += 1;
                        s.backfilled += tally.stored;
                        s.last_backfill_error = None;
                    });
                    if tally.stored > 0 || tally.skipped > 0 {
                        info!(
                            stored = tally.stored,
                            skipped = tally.skipped,
                            "frigate backfill done"
                        );
                    } else {
                        debug!("frigate backfill: nothing new");
                    }
                    None
                }
                Err(problem) => {
                    self.shared.stats.send_modify(|s| {
                        s.backfill_failures += 1;
                        s.last_backfill_error = Some(problem.to_string());
                    });
                    if let Some(suppressed) = self.failures.allow() {
                        warn!(retry_in = ?delay, suppressed, "frigate backfill failed: {problem}");
                    }
                    let wait = delay;
                    delay = (delay * 2).min(max_retry);
                    Some(wait)
                }
            };
            // Until Frigate comes back, Jarvis reconnects, or the retry is due.
            let retry = async {
                match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = token.cancelled() => return,
                () = self.shared.backfill_now.notified() => {}
                () = retry => {}
            }
        }
    }

    /// One run: cameras and zones, then both lists.
    async fn run_once(&mut self) -> Result<Tally, Problem> {
        let setup = match self.api.setup().await {
            Ok(setup) => setup,
            Err(err) => {
                self.mark_offline();
                return Err(Problem::Api(err));
            }
        };
        let version = self.api.version().await.ok().filter(|v| !v.is_empty());
        self.mark_online(setup, version);
        let mut tally = Tally::default();
        // Without a memory (events.enabled = false) there is nowhere to put the history.
        if self.window > 0.0 && self.shared.store.is_available() {
            for kind in [Kind::Objects, Kind::Reviews] {
                if let Err(problem) = self.pass(kind, &mut tally).await {
                    if matches!(problem, Problem::Api(_)) {
                        self.mark_offline();
                    }
                    return Err(problem);
                }
            }
        }
        Ok(tally)
    }

    /// Pages through one list from its cursor, newest first.
    async fn pass(&mut self, kind: Kind, tally: &mut Tally) -> Result<(), Problem> {
        let now = now_ms() as f64 / 1000.0;
        let floor = now - self.window;
        let cursor = self
            .shared
            .store
            .meta(kind.cursor_key())
            .await
            .map_err(Problem::Store)?
            .and_then(|text| text.parse::<f64>().ok())
            .filter(|c| c.is_finite());
        let after = cursor.map_or(floor, |c| (c - OVERLAP).max(floor));
        let mut before: Option<f64> = None;
        let mut newest: Option<f64> = None;
        let mut oldest_ongoing: Option<f64> = None;
        for page in 0.. {
            if page == MAX_PAGES {
                warn!(
                    kind = ?kind,
                    pages = MAX_PAGES,
                    "frigate backfill stopped early: more than {} items since the cursor",
                    MAX_PAGES * PAGE
                );
                break;
            }
            let items = self
                .fetch(kind, after, before)
                .await
                .map_err(Problem::Api)?;
            let full = items.len() >= PAGE;
            let mut oldest_here: Option<f64> = None;
            for item in items {
                if let Some(start) = item.start {
                    oldest_here = Some(oldest_here.map_or(start, |o: f64| o.min(start)));
                    newest = Some(newest.map_or(start, |n: f64| n.max(start)));
                    if item.ongoing {
                        oldest_ongoing = Some(oldest_ongoing.map_or(start, |o: f64| o.min(start)));
                    }
                }
                match item.event {
                    Ok(event) => match self.recorder.record(event).await {
                        Ok(()) => tally.stored += 1,
                        Err(StoreError::Rejected(_)) => tally.skipped += 1,
                        Err(err) => return Err(Problem::Store(err)),
                    },
                    Err(message) => {
                        tally.skipped += 1;
                        self.recorder
                            .bad("backfill", &super::wire::WireError::Invalid(message));
                    }
                }
            }
            let Some(oldest) = oldest_here.filter(|_| full) else {
                break;
            };
            // The next page ends just after the oldest start of this one: items that share it
            // come again (the store merges them) rather than being skipped.
            let next = match before {
                Some(b) if oldest + 0.001 >= b => oldest,
                _ => oldest + 0.001,
            };
            if before.is_some_and(|b| next >= b) {
                break;
            }
            before = Some(next);
        }
        if let Some(cursor) = oldest_ongoing.or(newest) {
            self.shared
                .store
                .set_meta(kind.cursor_key(), &format!("{cursor:.3}"))
                .await
                .map_err(Problem::Store)?;
        }
        Ok(())
    }

    async fn fetch(
        &mut self,
        kind: Kind,
        after: f64,
        before: Option<f64>,
    ) -> Result<Vec<Item>, ApiError> {
        let context = &self.shared.context;
        Ok(match kind {
            Kind::Objects => self
                .api
                .events(after, before, PAGE)
                .await?
                .into_iter()
                .filter_map(|Lenient(parsed)| match parsed {
                    // Frigate does not report false positives; an older one may have kept some.
                    Ok(event) if event.false_positive == Some(true) => None,
                    Ok(event) => Some(Item {
                        start: event.start_time,
                        ongoing: event.end_time.is_none(),
                        event: event.to_event(context).map_err(|e| e.to_string()),
                    }),
                    Err(message) => Some(Item {
                        start: None,
                        ongoing: false,
                        event: Err(message),
                    }),
                })
                .collect(),
            Kind::Reviews => self
                .api
                .reviews(after, before, PAGE)
                .await?
                .into_iter()
                .map(|Lenient(parsed)| match parsed {
                    Ok(review) => Item {
                        start: review.start_time,
                        ongoing: review.end_time.is_none(),
                        event: review.to_event().map_err(|e| e.to_string()),
                    },
                    Err(message) => Item {
                        start: None,
                        ongoing: false,
                        event: Err(message),
                    },
                })
                .collect(),
        })
    }

    /// The API failed: Frigate is offline, unless it said otherwise itself (it stopped, or is
    /// already known to be offline).
    fn mark_offline(&self) {
        self.shared.status.send_if_modified(|status| {
            if !matches!(
                status.availability,
                Availability::Online | Availability::Unknown
            ) {
                return false;
            }
            status.availability = Availability::Offline;
            status.since_ms = Some(now_ms());
            self.shared.offline_by_api.store(true, Ordering::Relaxed);
            true
        });
    }

    /// The API answered: its cameras and zones, and online again if only the API had said
    /// otherwise.
    fn mark_online(&self, setup: super::wire::FrigateSetup, version: Option<String>) {
        let cameras: BTreeSet<String> = setup.cameras.keys().map(|c| c.to_lowercase()).collect();
        let zones: BTreeSet<String> = setup
            .cameras
            .values()
            .flat_map(|c| c.zones.iter().map(|z| z.to_lowercase()))
            .collect();
        let offline_by_api = self.shared.offline_by_api.swap(false, Ordering::Relaxed);
        self.shared.status.send_if_modified(|status| {
            let mut changed = false;
            let back = status.availability == Availability::Unknown
                || (status.availability == Availability::Offline && offline_by_api);
            if back {
                status.availability = Availability::Online;
                status.since_ms = Some(now_ms());
                changed = true;
            }
            if !cameras.is_empty() && status.cameras != cameras {
                status.cameras.clone_from(&cameras);
                changed = true;
            }
            if status.zones != zones {
                status.zones.clone_from(&zones);
                changed = true;
            }
            if version.is_some() && status.version != version {
                status.version.clone_from(&version);
                changed = true;
            }
            changed
        });
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
enum Problem {
    #[error("{0}")]
    Api(ApiError),
    #[error("{0}")]
    Store(StoreError),
}
