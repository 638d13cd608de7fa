//! `[events]`: where the event memory lives and how long it remembers.

use std::path::PathBuf;

use serde::Deserialize;

/// `[events]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Remember events and answer questions about them.
    pub enabled: bool,
    /// The SQLite database (its write-ahead log sits beside it as `<file>-wal`).
    pub path: PathBuf,
    /// Events older than this many days are forgotten.
    pub retention_days: u32,
    /// Time zone for "today", "since 8 am" and spoken times: an IANA name such as
    /// `Europe/Berlin`. Empty: the system's (`TZ`, then `/etc/localtime`).
    pub timezone: String,
    /// Events held in memory while the disk cannot take them (full, read-only); beyond this the
    /// oldest are given up and counted.
    pub max_pending: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: PathBuf::from("/var/lib/jarvis/events.db"),
            retention_days: 30,
            timezone: String::new(),
            max_pending: 100_000,
        }
    }
}

impl EventsConfig {
    /// The configured time zone.
    ///
    /// # Errors
    /// A name that is not in the time zone database.
    pub fn time_zone(&self) -> Result<jiff::tz::TimeZone, String> {
        if self.timezone.is_empty() {
            return Ok(jiff::tz::TimeZone::system());
        }
        jiff::tz::TimeZone::get(&self.timezone).map_err(|err| {
            format!(
                "events.timezone {:?} is not a known time zone ({err}); use an IANA name such as \
                 \"Europe/Berlin\" or \"America/New_York\", or leave it empty for the system's",
                self.timezone
            )
        })
    }
}
