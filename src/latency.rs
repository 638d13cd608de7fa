//! Latencies of the last hour, per series (speech-to-text, first TTS audio, intents), kept in
//! process for the panel's plots.
//!
//! Design: one bounded ring per series behind a std `Mutex` held only to push or copy (never
//! across an `.await`); a record is an `Instant` and milliseconds. Older than an hour or past
//! [`MAX_SAMPLES`] per series, the oldest go first, so memory stays fixed whatever the load.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How far back the plots look.
pub const WINDOW: Duration = Duration::from_secs(3600);
/// Samples kept per series at most (about one a second for an hour).
pub const MAX_SAMPLES: usize = 4096;
/// Upper bounds of the histogram buckets, in milliseconds; the last bucket is everything above.
pub const BUCKETS_MS: [u32; 9] = [25, 50, 100, 200, 400, 800, 1600, 3200, 6400];

/// What is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Series {
    /// End of speech (or the end of the audio) to the transcript.
    SpeechToText,
    /// A synthesis request to its first audio.
    FirstAudio,
    /// A command to the brain's reply.
    Intent,
}

impl Series {
    /// Every series, in the order the panel shows them.
    pub const ALL: [Self; 3] = [Self::SpeechToText, Self::FirstAudio, Self::Intent];

    fn index(self) -> usize {
        match self {
            Self::SpeechToText => 0,
            Self::FirstAudio => 1,
            Self::Intent => 2,
        }
    }
}

static RINGS: [Mutex<VecDeque<(Instant, u32)>>; 3] = [
    Mutex::new(VecDeque::new()),
    Mutex::new(VecDeque::new()),
    Mutex::new(VecDeque::new()),
];

/// Records one latency of `series`.
pub fn record(series: Series, took: Duration) {
    let ms = u32::try_from(took.as_millis()).unwrap_or(u32::MAX);
    let now = Instant::now();
    let Some(ring) = RINGS.get(series.index()) else {
        return;
    };
    let Ok(mut ring) = ring.lock() else {
        return;
    };
    while ring
        .front()
        .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW)
        || ring.len() >= MAX_SAMPLES
    {
        ring.pop_front();
    }
    ring.push_back((now, ms));
}

/// One series over the last hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Which.
    pub series: Series,
    /// Samples in the window.
    pub count: usize,
    /// Median, ms.
    pub p50_ms: Option<u32>,
    /// 95th percentile, ms.
    pub p95_ms: Option<u32>,
    /// Largest, ms.
    pub max_ms: Option<u32>,
    /// Counts per bucket of [`BUCKETS_MS`], plus one for everything above the last bound.
    pub buckets: Vec<usize>,
}

/// Every series over the last hour.
pub fn summaries() -> Vec<Summary> {
    Series::ALL.iter().map(|&s| summary(s)).collect()
}

fn summary(series: Series) -> Summary {
    let now = Instant::now();
    let mut values: Vec<u32> = RINGS
        .get(series.index())
        .and_then(|ring| ring.lock().ok())
        .map(|ring| {
            ring.iter()
                .filter(|(at, _)| now.duration_since(*at) <= WINDOW)
                .map(|&(_, ms)| ms)
                .collect()
        })
        .unwrap_or_default();
    values.sort_unstable();
    let mut buckets = vec![0; BUCKETS_MS.len() + 1];
    for &ms in &values {
        let i = BUCKETS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(BUCKETS_MS.len());
        if let Some(b) = buckets.get_mut(i) {
            *b += 1;
        }
    }
    let at = |q: f64| {
        let last = values.len().checked_sub(1)?;
        values.get(((last as f64) * q).round() as usize).copied()
    };
    Summary {
        series,
        count: values.len(),
        p50_ms: at(0.5),
        p95_ms: at(0.95),
        max_ms: values.last().copied(),
        buckets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_is_bounded_and_summarized() {
        for ms in 0..(MAX_SAMPLES as u64 + 10) {
            record(Series::Intent, Duration::from_millis(ms % 100));
        }
        let s = summary(Series::Intent);
        assert_eq!(s.count, MAX_SAMPLES);
        assert_eq!(s.buckets.iter().sum::<usize>(), MAX_SAMPLES);
        assert_eq!(s.max_ms, Some(99));
        assert!(s.p50_ms.is_some_and(|p| (40..=60).contains(&p)));
    }
}
