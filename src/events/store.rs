//! The event store: one SQLite database in write-ahead-log mode, written by one thread.
//!
//! - **Writes** are queued ([`EventStore::record`]) and committed by the writer thread in
//!   batches: whatever is waiting goes into one transaction, so a burst of Frigate updates costs
//!   one commit, and a quiet stream commits each event at once. With `synchronous = NORMAL` in WAL
//!   mode a commit survives the process being killed; only what was still queued (a few
//!   milliseconds' worth) is lost.
//! - **Reads** use their own connection, so questions never wait for a write.
//! - **Errors** never stop Jarvis. A file that cannot be opened (read-only, corrupt) makes the
//!   store unavailable with a message naming the file and the fix; a full disk keeps events in
//!   memory (up to `events.max_pending`) and retries.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params, params_from_iter};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::config::EventsConfig;
use super::model::{Event, Query, Source, StoreStats, Tally, Vocabulary};

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The event was not stored: its time is in the future or past the retention.
    #[error("event not stored: {0}")]
    Rejected(String),
    /// The store cannot be used; the reason names the file and the fix.
    #[error("the event memory is unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("event store {path}: {message}")]
    Query {
        /// The database file.
        path: String,
        /// SQLite's message.
        message: String,
    },
    /// The writer thread has stopped (Jarvis is shutting down).
    #[error("the event store is shut down")]
    Closed,
}

/// The versioned schema. Entry `n` takes a database from `user_version` n to n + 1; a released
/// entry is never edited, only followed by a new one.
const MIGRATIONS: &[&str] = &[
    // 1: events and a key-value table (backfill cursors, Frigate's availability).
    "CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        camera TEXT COLLATE NOCASE,
        label TEXT COLLATE NOCASE,
        sub_label TEXT COLLATE NOCASE,
        zones TEXT NOT NULL DEFAULT '',
        score REAL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER,
        has_snapshot INTEGER NOT NULL DEFAULT 0,
        has_clip INTEGER NOT NULL DEFAULT 0,
        description TEXT,
        entity TEXT,
        area TEXT,
        text TEXT,
        attributes TEXT,
        updated_ms INTEGER NOT NULL
    );
    CREATE INDEX events_start ON events(start_ms);
    CREATE INDEX events_end ON events(end_ms);
    CREATE INDEX events_camera ON events(camera, start_ms);
    CREATE INDEX events_sub_label ON events(sub_label, start_ms) WHERE sub_label IS NOT NULL;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 2: an index for every question the brain and the entities ask (see `main_index` and
    // `LONG_MS`; found with `cargo bench --bench events` over a million events): by source,
    // by label and by camera and label (with source and kind, so counting persons reads no
    // row), unfinished (the same: stationary objects and events whose end never came pile up
    // there), long, with a face or a description (per camera), and without the index on
    // `end_ms`, which nothing uses any more.
    "DROP INDEX events_end;
    CREATE INDEX events_source ON events(source, start_ms);
    CREATE INDEX events_label ON events(label, start_ms, source, kind);
    CREATE INDEX events_camera_label ON events(camera, label, start_ms, source, kind);
    CREATE INDEX events_open ON events(start_ms, source, kind, camera, label)
        WHERE end_ms IS NULL;
    CREATE INDEX events_long ON events(end_ms) WHERE end_ms - start_ms > 900000;
    CREATE INDEX events_faces ON events(start_ms) WHERE sub_label IS NOT NULL;
    CREATE INDEX events_camera_faces ON events(camera, start_ms) WHERE sub_label IS NOT NULL;
    CREATE INDEX events_camera_described ON events(camera, start_ms)
        WHERE description IS NOT NULL;",
];

const COLUMNS: &str = "key, source, kind, camera, label, sub_label, zones, score, start_ms, \
                       end_ms, has_snapshot, has_clip, description, entity, area, text, attributes";

/// An update merges into what is stored: names and descriptions are kept unless the update has
/// one, zones accumulate, the score is the best seen, the end once known stays.
const UPSERT: &str = "INSERT INTO events (key, source, kind, camera, label, sub_label, zones, \
    score, start_ms, end_ms, has_snapshot, has_clip, description, entity, area, text, attributes, \
    updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
    ?17, ?18)
    ON CONFLICT(key) DO UPDATE SET
        camera = COALESCE(excluded.camera, camera),
        label = COALESCE(excluded.label, label),
        sub_label = COALESCE(excluded.sub_label, sub_label),
        zones = zones_union(zones, excluded.zones),
        score = max(COALESCE(score, excluded.score), COALESCE(excluded.score, score)),
        start_ms = min(start_ms, excluded.start_ms),
        end_ms = COALESCE(excluded.end_ms, end_ms),
        has_snapshot = max(has_snapshot, excluded.has_snapshot),
        has_clip = max(has_clip, excluded.has_clip),
        description = COALESCE(excluded.description, description),
        entity = COALESCE(excluded.entity, entity),
        area = COALESCE(excluded.area, area),
        text = COALESCE(excluded.text, text),
        attributes = CASE WHEN attributes IS NULL THEN excluded.attributes
                          WHEN excluded.attributes IS NULL THEN attributes
                          ELSE json_patch(attributes, excluded.attributes) END,
        updated_ms = excluded.updated_ms";

/// How far ahead of this machine's clock an event may start (clocks drift a little).
pub const MAX_FUTURE_MS: i64 = 5 * 60_000;
/// Most events in one transaction.
const MAX_BATCH: usize = 5_000;
/// How often the writer forgets old events.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Rows deleted per transaction when pruning, so writes are never held up for long.
const PRUNE_CHUNK: usize = 10_000;
/// How often the writer refreshes the statistics.
const STATS_EVERY: Duration = Duration::from_secs(10);
/// How soon after the last refresh a commit refreshes them again.
const STATS_AFTER_COMMIT: Duration = Duration::from_secs(1);
/// How long the writer waits before retrying a batch the disk refused.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Queued operations before `record` waits (backpressure on the Frigate subscriber).
const QUEUE: usize = 65_536;

enum Op {
    Record(Box<Event>),
    Meta(String, String),
    Flush(oneshot::Sender<Result<(), StoreError>>),
    /// Runs SQL on the writer's connection at once (tests: a size cap that stands in for a full
    /// disk).
    #[cfg(test)]
    Exec(String, oneshot::Sender<()>),
}

/// The event memory. Cheap to clone; every clone is the same store.
#[derive(Debug, Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

/// Design: the writer thread holds only [`Shared`], never [`Inner`]: the thread stops when the
/// last sender (in `Inner`) is gone, so it must not keep `Inner` alive itself. Dropping the
/// last `EventStore` closes the reader, then waits for the writer to commit what is queued and
/// close its connection last, which checkpoints the log and removes the `-wal` file.
#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    /// Turned off by the configuration (not a problem to report).
    disabled: bool,
    /// Events older than this many milliseconds are refused (and pruned); 0 keeps everything.
    retention_ms: i64,
    tx: Option<mpsc::Sender<Op>>,
    reader: Option<Mutex<Connection>>,
    vocabulary: Mutex<Arc<Vocabulary>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// What the writer thread and the store's handles both see.
#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// Set when the store cannot be used at all; the reason for people.
    unavailable: Mutex<Option<String>>,
    /// Set while writes fail (disk full); cleared by the next good commit.
    write_error: Mutex<Option<String>>,
    stats: Mutex<StoreStats>,
}

impl Shared {
    fn new(path: &Path, unavailable: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            path: path.to_owned(),
            unavailable: Mutex::new(unavailable),
            write_error: Mutex::new(None),
            stats: Mutex::new(StoreStats::default()),
        })
    }
}

impl std::ops::Deref for Inner {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx = None;
        self.reader = None;
        if let Some(writer) = self.writer.take() {
            // Bounded: with its queue closed the writer tries one last commit and stops.
            if writer.join().is_err() {
                warn!(path = %self.shared.path.display(), "the event store's writer panicked");
            }
        }
    }
}

impl EventStore {
    /// Opens (or creates) the store the configuration names and starts its writer thread. Never
    /// fails: a store that cannot be opened is returned unavailable, with the reason logged and
    /// kept for `/health` and for spoken answers.
    pub fn open(config: &EventsConfig) -> Self {
        if !config.enabled {
            let mut store = Self::unavailable(
                &config.path,
                "the event memory is disabled (events.enabled = false)".to_owned(),
            );
            if let Some(inner) = Arc::get_mut(&mut store.inner) {
                inner.disabled = true;
            }
            return store;
        }
        match Self::try_open(config) {
            Ok(store) => store,
            Err(reason) => {
                warn!(path = %config.path.display(), "{reason}");
                Self::unavailable(&config.path, reason)
            }
        }
    }

    /// A store that answers every request with `reason`.
    pub fn unavailable(path: &Path, reason: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared: Shared::new(path, Some(reason)),
                disabled: false,
                retention_ms: 0,
                tx: None,
                reader: None,
                vocabulary: Mutex::new(Arc::default()),
                writer: None,
            }),
        }
    }

    fn try_open(config: &EventsConfig) -> Result<Self, String> {
        let path = &config.path;
        let shown = path.display();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|err| {
                format!(
                    "cannot create the folder for the event store {shown}: {err}; create {} and \
                     make it writable by the user running Jarvis, or set events.path",
                    dir.display()
                )
            })?;
        }
        let writer = open_writer(path).map_err(|err| explain(path, &err))?;
        // SQLite opens a file it may not write read-only, without an error; every commit would
        // then fail until a restart, so say so now.
        if writer
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(|err| explain(path, &err))?
        {
            return Err(format!(
                "event store {shown} is read-only for the user running Jarvis: make the file, \
                 its -wal and -shm files and its folder writable by that user (chown), or set \
                 events.path to a writable place, then restart Jarvis"
            ));
        }
        migrate(&writer, path)?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|err| explain(path, &err))?;
        let vocabulary = load_vocabulary(&reader).map_err(|err| explain(path, &err))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Shared::new(path, None);
        let retention = Duration::from_secs(u64::from(config.retention_days) * 86_400);
        let thread = Writer {
            conn: writer,
            inner: Arc::clone(&shared),
            retention,
            max_pending: config.max_pending.max(1),
        };
        let writer = std::thread::Builder::new()
            .name("event-store".into())
            .spawn(move || thread.run(rx))
            .map_err(|err| format!("cannot start the event store's writer thread: {err}"))?;
        info!(path = %shown, retention_days = config.retention_days, "event store open");
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                disabled: false,
                retention_ms: i64::from(config.retention_days) * 86_400_000,
                tx: Some(tx),
                reader: Some(Mutex::new(reader)),
                vocabulary: Mutex::new(Arc::new(vocabulary)),
                writer: Some(writer),
            }),
        })
    }

    /// Whether the configuration turned the memory off (`events.enabled = false`).
    pub fn is_disabled(&self) -> bool {
        self.inner.disabled
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Why the store cannot be used now: not opened, or writes failing. `None` when healthy.
    pub fn problem(&self) -> Option<String> {
        lock(&self.inner.unavailable)
            .clone()
            .or_else(|| lock(&self.inner.write_error).clone())
    }

    /// Whether questions can be answered (reads work even while the disk is full).
    pub fn is_available(&self) -> bool {
        lock(&self.inner.unavailable).is_none()
    }

    /// Size and age, refreshed every few seconds by the writer.
    pub fn stats(&self) -> StoreStats {
        lock(&self.inner.stats).clone()
    }

    /// Every camera, zone, label and sub-label stored so far.
    pub fn vocabulary(&self) -> Arc<Vocabulary> {
        Arc::clone(&lock(&self.inner.vocabulary))
    }

    /// Queues an event to be stored (merged into a stored one with the same key). Waits only
    /// when the queue is full.
    ///
    /// # Errors
    /// The store is unavailable or shut down.
    pub async fn record(&self, event: Event) -> Result<(), StoreError> {
        let tx = self.sender()?;
        self.check_time(&event)?;
        note_names(&self.inner.vocabulary, &event);
        tx.send(Op::Record(Box::new(event)))
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Sets a key in the store's key-value table (queued like events).
    ///
    /// # Errors
    /// The store is unavailable or shut down.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.sender()?
            .send(Op::Meta(key.to_owned(), value.to_owned()))
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Waits until everything queued before this call is committed.
    ///
    /// # Errors
    /// The store is unavailable or shut down, or the commit failed (the events stay queued).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.sender()?
            .send(Op::Flush(done))
            .await
            .map_err(|_| StoreError::Closed)?;
        wait.await.map_err(|_| StoreError::Closed)?
    }

    /// A key from the key-value table.
    ///
    /// # Errors
    /// The store is unavailable, or the read failed.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
        })
        .await
    }

    /// The events matching `query`, newest first, at most `query.limit` (100 when 0).
    ///
    /// # Errors
    /// The store is unavailable, or the read failed.
    pub async fn query(&self, query: Query) -> Result<Vec<Event>, StoreError> {
        self.read(move |conn| select(conn, &query)).await
    }

    /// How many events match `query` (its limit is ignored).
    ///
    /// # Errors
    /// The store is unavailable, or the read failed.
    pub async fn count(&self, query: Query) -> Result<u64, StoreError> {
        self.read(move |conn| count(conn, &query)).await
    }

    /// The events matching `query` counted by camera and label, most first, with the
    /// sub-labels among them (its limit is ignored): what a summary says, whatever the number
    /// of events.
    ///
    /// # Errors
    /// The store is unavailable, or the read failed.
    pub async fn tally(&self, query: Query) -> Result<Vec<Tally>, StoreError> {
        self.read(move |conn| tally(conn, &query)).await
    }

    /// How the store answers `query`: SQLite's `EXPLAIN QUERY PLAN`, one line per step, for
    /// the benchmark and for diagnosing a slow question. Every line should `SEARCH` with an
    /// index; a `SCAN events` reads the whole table.
    ///
    /// # Errors
    /// The store is unavailable, or the read failed.
    pub async fn explain(&self, query: Query, counting: bool) -> Result<Vec<String>, StoreError> {
        self.read(move |conn| explain_plan(conn, &query, counting))
            .await
    }

    /// Refuses times more than [`MAX_FUTURE_MS`] ahead of this machine's clock, and events that
    /// ended before the retention window (they would be pruned at once).
    fn check_time(&self, event: &Event) -> Result<(), StoreError> {
        let now = now_ms();
        if event.start_ms > now + MAX_FUTURE_MS {
            return Err(StoreError::Rejected(format!(
                "event {} starts {} s in the future; check the sender's clock",
                event.key,
                (event.start_ms - now) / 1000
            )));
        }
        if event.end_ms.is_some_and(|end| end < event.start_ms) {
            return Err(StoreError::Rejected(format!(
                "event {} ends before it starts",
                event.key
            )));
        }
        let retention = self.inner.retention_ms;
        if retention > 0 && event.end_ms.unwrap_or(event.start_ms) < now - retention {
            return Err(StoreError::Rejected(format!(
                "event {} is older than the retention (events.retention_days)",
                event.key
            )));
        }
        Ok(())
    }

    /// Runs `sql` on the writer's connection, outside any batch.
    #[cfg(test)]
    async fn exec(&self, sql: String) {
        let (done, wait) = oneshot::channel();
        if let Ok(tx) = self.sender() {
            let _ = tx.send(Op::Exec(sql, done)).await;
            let _ = wait.await;
        }
    }

    fn sender(&self) -> Result<&mpsc::Sender<Op>, StoreError> {
        if let Some(reason) = lock(&self.inner.unavailable).clone() {
            return Err(StoreError::Unavailable(reason));
        }
        self.inner.tx.as_ref().ok_or(StoreError::Closed)
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        if let Some(reason) = lock(&self.inner.unavailable).clone() {
            return Err(StoreError::Unavailable(reason));
        }
        let inner = Arc::clone(&self.inner);
        let joined = tokio::task::spawn_blocking(move || {
            let Some(reader) = &inner.reader else {
                return Err(StoreError::Closed);
            };
            let conn = lock(reader);
            f(&conn).map_err(|err| {
                let message = explain(&inner.path, &err);
                if is_fatal(&err) {
                    warn!("{message}");
                    *lock(&inner.unavailable) = Some(message.clone());
                }
                StoreError::Query {
                    path: inner.path.display().to_string(),
                    message,
                }
            })
        })
        .await;
        joined.map_err(|_| StoreError::Closed)?
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    // A clean close checkpoints the write-ahead log and removes it: one left behind means the
    // last writer was killed (or the machine lost power); SQLite replays its committed
    // transactions and drops a torn one when the database is opened.
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let left = std::fs::metadata(&wal).map_or(0, |m| m.len());
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    if left > 0 {
        let check: String = conn.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
        warn!(
            path = %path.display(),
            wal_bytes = left,
            check = %check,
            "event store: not closed cleanly last time (killed or a power cut); its write-ahead \
             log was replayed (committed events kept, a torn commit dropped)"
        );
    }
    // journal_mode answers with the mode it ended in: a read-only file stays in its old mode.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        debug!(mode, "journal mode is not WAL");
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    conn.create_scalar_function(
        "zones_union",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let old: String = ctx.get::<Option<String>>(0)?.unwrap_or_default();
            let new: String = ctx.get::<Option<String>>(1)?.unwrap_or_default();
            Ok(merge_zones(&old, &new))
        },
    )?;
    Ok(conn)
}

/// Brings the schema up to date, in one transaction per step.
fn migrate(conn: &Connection, path: &Path) -> Result<(), String> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|err| explain(path, &err))?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if version > known {
        return Err(format!(
            "event store {} has schema version {version}, made by a newer Jarvis (this one knows \
             {known}): upgrade Jarvis, or set events.path to a new file",
            path.display()
        ));
    }
    for (step, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let next = step + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {next}; COMMIT;"
        ))
        .map_err(|err| {
            let _ = conn.execute_batch("ROLLBACK");
            explain(path, &err)
        })?;
        info!(path = %path.display(), version = next, "event store schema migrated");
    }
    Ok(())
}

/// A SQLite error as one line naming the file and what to do.
fn explain(path: &Path, err: &rusqlite::Error) -> String {
    let shown = path.display();
    match err.sqlite_error_code() {
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => format!(
            "event store {shown} cannot be written ({err}): make the file, its -wal and -shm \
             files and its folder writable by the user running Jarvis (chown), or set events.path"
        ),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => format!(
            "event store {shown} is damaged ({err}): stop Jarvis, move it aside \
             (mv {shown} {shown}.damaged) and start again; Jarvis starts a new, empty memory"
        ),
        Some(ErrorCode::DiskFull) => format!(
            "event store {shown}: the disk is full ({err}); free space there or lower \
             events.retention_days; events are kept in memory meanwhile"
        ),
        _ => format!("event store {shown}: {err}"),
    }
}

/// Errors after which the file cannot be used until someone acts.
fn is_fatal(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Zones are stored lower-case as `,a,b,`, so a zone matches with `instr`.
fn zones_text(zones: &[String]) -> String {
    if zones.is_empty() {
        return String::new();
    }
    let mut out = String::from(",");
    for zone in zones {
        let zone = zone.trim().to_lowercase().replace(',', " ");
        if !zone.is_empty() && !out.contains(&format!(",{zone},")) {
            out.push_str(&zone);
            out.push(',');
        }
    }
    if out == "," { String::new() } else { out }
}

fn merge_zones(old: &str, new: &str) -> String {
    let mut out = old.to_owned();
    for zone in new.split(',').filter(|z| !z.is_empty()) {
        if out.is_empty() {
            out.push(',');
        }
        if !out.contains(&format!(",{zone},")) {
            out.push_str(zone);
            out.push(',');
        }
    }
    out
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn load_vocabulary(conn: &Connection) -> rusqlite::Result<Vocabulary> {
    let distinct = |sql: &str| -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        rows.collect()
    };
    let mut zones = BTreeSet::new();
    for text in distinct("SELECT DISTINCT zones FROM events WHERE zones != ''")? {
        zones.extend(text.split(',').filter(|z| !z.is_empty()).map(str::to_owned));
    }
    Ok(Vocabulary {
        cameras: distinct("SELECT DISTINCT camera FROM events WHERE camera IS NOT NULL")?,
        zones: zones.into_iter().collect(),
        labels: distinct("SELECT DISTINCT label FROM events WHERE label IS NOT NULL")?,
        sub_labels: distinct("SELECT DISTINCT sub_label FROM events WHERE sub_label IS NOT NULL")?,
    })
}

fn note_names(vocabulary: &Mutex<Arc<Vocabulary>>, event: &Event) {
    fn missing(list: &[String], name: Option<&str>) -> bool {
        name.is_some_and(|n| !n.is_empty() && !list.iter().any(|l| l.eq_ignore_ascii_case(n)))
    }
    let current = lock(vocabulary);
    let new_zone = |v: &Vocabulary| {
        event
            .zones
            .iter()
            .any(|z| !v.zones.iter().any(|l| l.eq_ignore_ascii_case(z)))
    };
    if !missing(&current.cameras, event.camera.as_deref())
        && !missing(&current.labels, event.label.as_deref())
        && !missing(&current.sub_labels, event.sub_label.as_deref())
        && !new_zone(&current)
    {
        return;
    }
    let mut next = Vocabulary::clone(&current);
    drop(current);
    let add = |list: &mut Vec<String>, name: Option<&str>| {
        if missing(list, name) {
            list.extend(name.map(str::to_owned));
        }
    };
    add(&mut next.cameras, event.camera.as_deref());
    add(&mut next.labels, event.label.as_deref());
    add(&mut next.sub_labels, event.sub_label.as_deref());
    for zone in &event.zones {
        let zone = zone.to_lowercase();
        add(&mut next.zones, Some(&zone));
    }
    *lock(vocabulary) = Arc::new(next);
}

/// Events that lasted longer than this are found through their own index (`events_long`) when
/// a window starts after they began; shorter ones are found by looking this far back from the
/// window's start on the query's main index.
///
/// Design: "events going on at some time since S" is `start ≥ S` or `start < S ≤ end` (or no
/// end). The second half has no good index in one piece (an index on `end_ms` walks every
/// event that ended since S, a day's worth for "today"), so it is split by duration: events
/// that started less than `LONG_MS` before S are read with the first half (one range on the
/// main index, `start ≥ S − LONG_MS`); longer finished ones come from `events_long`, which holds
/// only events over `LONG_MS` (stationary cars, a door left open), by `end_ms ≥ S`; unfinished
/// ones from `events_open`. The literal must match the index's `WHERE` in `MIGRATIONS`.
const LONG_MS: i64 = 900_000;
const LONG_TERM: &str = "end_ms - start_ms > 900000";

/// The index a query walks: the most selective one its filters allow. Every part of a query
/// names its index (`INDEXED BY`), so the plan never depends on SQLite's guesses (there are no
/// statistics tables) and a shape no index serves fails loudly in the tests instead of
/// scanning. The partial indexes' conditions are implied by the filters that pick them.
fn main_index(query: &Query) -> &'static str {
    match query {
        Query {
            sub_label: Some(_), ..
        } => "events_sub_label",
        Query {
            has_sub_label: true,
            camera: Some(_),
            ..
        } => "events_camera_faces",
        Query {
            has_sub_label: true,
            ..
        } => "events_faces",
        Query {
            has_description: true,
            camera: Some(_),
            ..
        } => "events_camera_described",
        Query {
            camera: Some(_),
            label: Some(_),
            ..
        } => "events_camera_label",
        Query {
            camera: Some(_), ..
        } => "events_camera",
        Query {
            in_progress: true, ..
        } => "events_open",
        Query { label: Some(_), .. } => "events_label",
        Query {
            source: Some(_), ..
        } => "events_source",
        _ => "events_start",
    }
}

/// The query's conditions (without the time window) and their parameters.
fn conditions(query: &Query) -> (Vec<&'static str>, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut conds = Vec::new();
    let mut values = Vec::new();
    let mut text = |cond: &'static str, value: &Option<String>| {
        if let Some(v) = value {
            conds.push(cond);
            values.push(Value::Text(v.clone()));
        }
    };
    text("source = ?", &query.source.map(|s| s.as_str().to_owned()));
    text("kind = ?", &query.kind);
    text("camera = ?", &query.camera);
    text("label = ?", &query.label);
    text("sub_label = ?", &query.sub_label);
    text(
        "instr(zones, ',' || ? || ',') > 0",
        &query.zone.as_ref().map(|z| z.to_lowercase()),
    );
    if query.has_sub_label {
        conds.push("sub_label IS NOT NULL");
    }
    if query.has_description {
        conds.push("description IS NOT NULL");
    }
    if query.in_progress {
        conds.push("end_ms IS NULL");
    }
    if let Some(until) = query.until_ms {
        conds.push("start_ms < ?");
        values.push(Value::Integer(until));
    }
    (conds, values)
}

/// One part of a query: `SELECT {what} FROM events INDEXED BY {index} WHERE ...`.
struct Part {
    index: &'static str,
    extra: Vec<&'static str>,
    values: Vec<rusqlite::types::Value>,
}

/// The query as one to three parts (see [`LONG_MS`]), each with its SQL conditions and
/// parameters in text order.
fn parts(query: &Query) -> Vec<(String, Vec<rusqlite::types::Value>)> {
    use rusqlite::types::Value;
    let (conds, values) = conditions(query);
    let build = |part: Part| {
        let mut all: Vec<&str> = conds.clone();
        all.extend(part.extra);
        let mut params = values.clone();
        params.extend(part.values);
        let filter = if all.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", all.join(" AND "))
        };
        (
            format!("FROM events INDEXED BY {}{filter}", part.index),
            params,
        )
    };
    let main = main_index(query);
    match query.since_ms {
        None => vec![build(Part {
            index: main,
            extra: Vec::new(),
            values: Vec::new(),
        })],
        Some(since) if query.started_since => vec![build(Part {
            index: main,
            extra: vec!["start_ms >= ?"],
            values: vec![Value::Integer(since)],
        })],
        Some(since) => {
            let back = since.saturating_sub(LONG_MS);
            vec![
                build(Part {
                    index: main,
                    extra: vec![
                        "start_ms >= ?",
                        "(start_ms >= ? OR end_ms IS NULL OR end_ms >= ?)",
                    ],
                    values: vec![
                        Value::Integer(back),
                        Value::Integer(since),
                        Value::Integer(since),
                    ],
                }),
                build(Part {
                    index: "events_long",
                    extra: vec![LONG_TERM, "end_ms >= ?", "start_ms < ?"],
                    values: vec![Value::Integer(since), Value::Integer(back)],
                }),
                build(Part {
                    index: "events_open",
                    extra: vec!["end_ms IS NULL", "start_ms < ?"],
                    values: vec![Value::Integer(back)],
                }),
            ]
        }
    }
}

/// The SQL of a list (newest first, at most `limit`): each part is cut to `limit` on its own
/// index order, so a wide window never sorts more than a few times `limit` rows.
fn select_sql(query: &Query) -> (String, Vec<rusqlite::types::Value>) {
    let limit = if query.limit == 0 { 100 } else { query.limit };
    let parts = parts(query);
    let mut values = Vec::new();
    let mut arms = Vec::with_capacity(parts.len());
    for (from, params) in parts {
        arms.push(format!(
            "SELECT * FROM (SELECT {COLUMNS} {from} ORDER BY start_ms DESC LIMIT {limit})"
        ));
        values.extend(params);
    }
    let sql = if arms.len() == 1 {
        arms.remove(0)
    } else {
        format!(
            "SELECT {COLUMNS} FROM ({}) ORDER BY start_ms DESC LIMIT {limit}",
            arms.join(" UNION ALL ")
        )
    };
    (sql, values)
}

/// The SQL of a count: one `count(*)` per part, added.
fn count_sql(query: &Query) -> (String, Vec<rusqlite::types::Value>) {
    let mut values = Vec::new();
    let mut arms = Vec::new();
    for (from, params) in parts(query) {
        arms.push(format!("(SELECT count(*) {from})"));
        values.extend(params);
    }
    (format!("SELECT {}", arms.join(" + ")), values)
}

fn select(conn: &Connection, query: &Query) -> rusqlite::Result<Vec<Event>> {
    let (sql, values) = select_sql(query);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), row_to_event)?;
    rows.collect()
}

fn count(conn: &Connection, query: &Query) -> rusqlite::Result<u64> {
    let (sql, values) = count_sql(query);
    let mut stmt = conn.prepare_cached(&sql)?;
    let n: i64 = stmt.query_row(params_from_iter(values), |row| row.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The SQL of a tally: the parts' camera, label and sub-label, grouped by camera and label.
fn tally_sql(query: &Query) -> (String, Vec<rusqlite::types::Value>) {
    let mut values = Vec::new();
    let mut arms = Vec::new();
    for (from, params) in parts(query) {
        arms.push(format!("SELECT camera, label, sub_label {from}"));
        values.extend(params);
    }
    (
        format!(
            "SELECT camera, label, count(*), group_concat(DISTINCT sub_label) FROM ({}) \
             GROUP BY lower(camera), lower(label) \
             ORDER BY count(*) DESC, lower(label), lower(camera)",
            arms.join(" UNION ALL ")
        ),
        values,
    )
}

fn tally(conn: &Connection, query: &Query) -> rusqlite::Result<Vec<Tally>> {
    let (sql, values) = tally_sql(query);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), |row| {
        let names: Option<String> = row.get(3)?;
        Ok(Tally {
            camera: row.get(0)?,
            label: row.get(1)?,
            count: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
            sub_labels: names
                .map(|n| n.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
        })
    })?;
    rows.collect()
}

/// `EXPLAIN QUERY PLAN` of a query's list (or count) SQL, one line per step.
fn explain_plan(conn: &Connection, query: &Query, counting: bool) -> rusqlite::Result<Vec<String>> {
    let (sql, values) = if counting {
        count_sql(query)
    } else {
        select_sql(query)
    };
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let rows = stmt.query_map(params_from_iter(values), |row| row.get::<_, String>(3))?;
    rows.collect()
}

fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let source: String = row.get(1)?;
    let zones: String = row.get(6)?;
    let attributes: Option<String> = row.get(16)?;
    Ok(Event {
        key: row.get(0)?,
        source: Source::from_name(&source).unwrap_or(Source::Ha),
        kind: row.get(2)?,
        camera: row.get(3)?,
        label: row.get(4)?,
        sub_label: row.get(5)?,
        zones: zones
            .split(',')
            .filter(|z| !z.is_empty())
            .map(str::to_owned)
            .collect(),
        score: row.get(7)?,
        start_ms: row.get(8)?,
        end_ms: row.get(9)?,
        has_snapshot: row.get(10)?,
        has_clip: row.get(11)?,
        description: row.get(12)?,
        entity: row.get(13)?,
        area: row.get(14)?,
        text: row.get(15)?,
        attributes: attributes.and_then(|a| serde_json::from_str(&a).ok()),
    })
}

/// The thread that owns the writing connection.
struct Writer {
    conn: Connection,
    inner: Arc<Shared>,
    retention: Duration,
    max_pending: usize,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                let reason = format!("cannot start the event store's writer: {err}");
                warn!("{reason}");
                *lock(&self.inner.unavailable) = Some(reason);
                return;
            }
        };
        let mut pending: VecDeque<Op> = VecDeque::new();
        let mut last_prune: Option<Instant> = None;
        let mut last_stats: Option<Instant> = None;
        // Commits since the last refresh of the statistics.
        let mut stats_stale = false;
        let mut failing = false;
        let mut last_failure: Option<Instant> = None;
        loop {
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                self.prune();
                last_prune = Some(Instant::now());
            }
            let stats_age = last_stats.map(|t| t.elapsed());
            if stats_age
                .is_none_or(|age| age >= STATS_EVERY || (stats_stale && age >= STATS_AFTER_COMMIT))
            {
                self.refresh_stats(pending.len());
                last_stats = Some(Instant::now());
                stats_stale = false;
            }
            // Wait for work: until the statistics are due when idle, briefly when a failed
            // batch waits for a retry.
            let age = last_stats.map_or(Duration::ZERO, |t| t.elapsed());
            let wait = if failing {
                RETRY_AFTER
            } else if stats_stale {
                STATS_AFTER_COMMIT.saturating_sub(age)
            } else {
                STATS_EVERY
            };
            let first = if pending.is_empty() || failing {
                match runtime.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
                    Ok(Some(op)) => Some(op),
                    Ok(None) => {
                        // Every sender is gone: write what is left, then stop.
                        if !pending.is_empty() {
                            let _ = self.commit(&mut pending);
                        }
                        self.refresh_stats(pending.len());
                        self.close();
                        return;
                    }
                    Err(_) => None,
                }
            } else {
                None
            };
            if let Some(op) = first {
                self.take(op, &mut pending);
            }
            while pending.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => self.take(op, &mut pending),
                    Err(_) => break,
                }
            }
            if pending.is_empty() {
                continue;
            }
            // While the disk refuses writes, retry every RETRY_AFTER, or at once for a flush.
            let flush_waits = pending.iter().any(|op| matches!(op, Op::Flush(_)));
            if failing && !flush_waits && last_failure.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
                self.shed(&mut pending);
                continue;
            }
            failing = match self.commit(&mut pending) {
                Ok(()) => {
                    // Keep `/health` and the entities close behind while events arrive, at
                    // the cost of one count per second at most.
                    if last_stats.is_none_or(|t| t.elapsed() >= STATS_AFTER_COMMIT) {
                        self.refresh_stats(pending.len());
                        last_stats = Some(Instant::now());
                    } else {
                        stats_stale = true;
                    }
                    false
                }
                Err(_) => {
                    self.shed(&mut pending);
                    last_failure = Some(Instant::now());
                    true
                }
            };
            lock(&self.inner.stats).pending = pending.len() as u64;
        }
    }

    /// Folds the write-ahead log into the database and closes the connection, so that the next
    /// start finds no log to replay. Closing alone does this only when SQLite gets the
    /// database's exclusive lock at that instant, without waiting: with the machine busy it left
    /// the whole log behind in 5 of about 220 runs of `tests/events.rs` (and the next start
    /// would have warned of an unclean shutdown); with this checkpoint first, in none of 200.
    /// The checkpoint waits (the busy timeout) and truncates the log, so even a log the close
    /// cannot delete is empty.
    fn close(self) {
        let checkpoint = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            });
        match checkpoint {
            // Not busy, and every frame of the log copied into the database.
            Ok((0, log, done)) if done >= log => {}
            Ok((busy, log, done)) => warn!(
                path = %self.inner.path.display(),
                busy,
                log_frames = log,
                copied = done,
                "event store: another process kept the write-ahead log busy at shutdown; the \
                 next start replays it (nothing is lost)"
            ),
            Err(err) => warn!(
                "{}; the shutdown checkpoint failed, the next start replays the write-ahead log \
                 (nothing is lost)",
                explain(&self.inner.path, &err)
            ),
        }
        match self.conn.close() {
            Ok(()) => debug!("event store writer stopped"),
            Err((_, err)) => warn!(
                "{}; closing the database failed",
                explain(&self.inner.path, &err)
            ),
        }
    }

    /// Queues `op` for the next commit (or, in tests, runs it).
    #[allow(clippy::unused_self)]
    fn take(&self, op: Op, pending: &mut VecDeque<Op>) {
        match op {
            #[cfg(test)]
            Op::Exec(sql, done) => {
                if let Err(err) = self.conn.execute_batch(&sql) {
                    warn!(%err, "test SQL failed");
                }
                let _ = done.send(());
            }
            op => pending.push_back(op),
        }
    }

    /// Writes `pending` in one transaction; on success it is emptied (and flushes answered).
    fn commit(&mut self, pending: &mut VecDeque<Op>) -> Result<(), String> {
        let now = now_ms();
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            {
                let mut upsert = tx.prepare_cached(UPSERT)?;
                let mut meta = tx.prepare_cached(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                )?;
                for op in pending.iter() {
                    match op {
                        Op::Record(e) => {
                            upsert.execute(params![
                                e.key,
                                e.source.as_str(),
                                e.kind,
                                e.camera,
                                e.label,
                                e.sub_label,
                                zones_text(&e.zones),
                                e.score,
                                e.start_ms,
                                e.end_ms,
                                e.has_snapshot,
                                e.has_clip,
                                e.description,
                                e.entity,
                                e.area,
                                e.text,
                                e.attributes.as_ref().map(ToString::to_string),
                                now,
                            ])?;
                        }
                        Op::Meta(key, value) => {
                            meta.execute(params![key, value])?;
                        }
                        Op::Flush(_) => {}
                        #[cfg(test)]
                        Op::Exec(..) => {}
                    }
                }
            }
            tx.commit()
        })();
        match result {
            Ok(()) => {
                if lock(&self.inner.write_error).take().is_some() {
                    info!(path = %self.inner.path.display(), "event store writes work again");
                }
                for op in pending.drain(..) {
                    if let Op::Flush(done) = op {
                        let _ = done.send(Ok(()));
                    }
                }
                Ok(())
            }
            Err(err) => {
                let message = explain(&self.inner.path, &err);
                if is_fatal(&err) {
                    *lock(&self.inner.unavailable) = Some(message.clone());
                }
                // Recorded before any flush hears of it, so a caller that saw the error finds
                // it in `problem()` too (and `/health` shows it).
                if lock(&self.inner.write_error)
                    .replace(message.clone())
                    .is_none()
                {
                    warn!("{message}");
                }
                // Flushes learn of the failure now; their events stay queued.
                for op in std::mem::take(pending) {
                    match op {
                        Op::Flush(done) => {
                            let _ = done.send(Err(StoreError::Unavailable(message.clone())));
                        }
                        other => pending.push_back(other),
                    }
                }
                Err(message)
            }
        }
    }

    /// Keeps at most `max_pending` queued operations, giving up the oldest.
    fn shed(&self, pending: &mut VecDeque<Op>) {
        let mut dropped = 0u64;
        while pending.len() > self.max_pending {
            pending.pop_front();
            dropped += 1;
        }
        if dropped > 0 {
            let mut stats = lock(&self.inner.stats);
            stats.dropped += dropped;
            warn!(
                dropped,
                total = stats.dropped,
                "event store: the disk still refuses writes; the oldest waiting events were \
                 given up (events.max_pending)"
            );
        }
    }

    fn prune(&mut self) {
        if self.retention.is_zero() {
            return;
        }
        let cutoff = now_ms() - i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let mut total = 0usize;
        loop {
            let deleted = self.conn.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE start_ms < ?1 \
                 AND (end_ms IS NOT NULL OR start_ms < ?2) LIMIT ?3)",
                params![
                    cutoff,
                    cutoff - i64::try_from(self.retention.as_millis()).unwrap_or(0),
                    PRUNE_CHUNK as i64
                ],
            );
            match deleted {
                Ok(n) => {
                    total += n;
                    if n < PRUNE_CHUNK {
                        break;
                    }
                }
                Err(err) => {
                    warn!("{}", explain(&self.inner.path, &err));
                    break;
                }
            }
        }
        if total > 0 {
            info!(
                deleted = total,
                "event store: forgot events past the retention"
            );
        }
    }

    fn refresh_stats(&self, pending: usize) {
        // Two statements: `min` alone is one index lookup, beside `count` it scans the table.
        let counted = self
            .conn
            .query_row("SELECT count(*) FROM events", [], |row| {
                row.get::<_, i64>(0)
            })
            .and_then(|n| {
                self.conn
                    .query_row("SELECT min(start_ms) FROM events", [], |row| {
                        row.get::<_, Option<i64>>(0)
                    })
                    .map(|oldest| (n, oldest))
            });
        let size = |suffix: &str| {
            let mut name = self.inner.path.clone().into_os_string();
            name.push(suffix);
            std::fs::metadata(PathBuf::from(name)).map_or(0, |m| m.len())
        };
        let bytes = size("") + size("-wal");
        let mut stats = lock(&self.inner.stats);
        if let Ok((events, oldest)) = counted {
            stats.events = u64::try_from(events).unwrap_or(0);
            stats.oldest_ms = oldest;
        }
        stats.bytes = bytes;
        stats.pending = pending as u64;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::events::model::KIND_OBJECT;

    fn config(dir: &Path) -> EventsConfig {
        EventsConfig {
            path: dir.join("events.db"),
            ..EventsConfig::default()
        }
    }

    fn person(id: &str, camera: &str, start_ms: i64) -> Event {
        Event {
            camera: Some(camera.to_owned()),
            label: Some("person".to_owned()),
            score: Some(0.7),
            ..Event::new(
                format!("frigate:{id}"),
                Source::Frigate,
                KIND_OBJECT,
                start_ms,
            )
        }
    }

    #[tokio::test]
    async fn updates_merge_into_their_event_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let now = now_ms();
        let store = EventStore::open(&config(dir.path()));
        assert_eq!(store.problem(), None);
        store
            .record(person("a", "front_door", now - 60_000))
            .await
            .unwrap();
        store
            .record(Event {
                zones: vec!["Porch".into()],
                score: Some(0.9),
                sub_label: Some("Alice".into()),
                ..person("a", "front_door", now - 60_000)
            })
            .await
            .unwrap();
        // An update without the sub-label or zone keeps them; the end arrives.
        store
            .record(Event {
                zones: vec!["steps".into()],
                score: Some(0.5),
                end_ms: Some(now - 30_000),
                has_snapshot: true,
                ..person("a", "front_door", now - 60_000)
            })
            .await
            .unwrap();
        store.flush().await.unwrap();
        drop(store);

        let store = EventStore::open(&config(dir.path()));
        let events = store.query(Query::objects()).await.unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(e.sub_label.as_deref(), Some("Alice"));
        assert_eq!(e.zones, ["porch", "steps"]);
        assert_eq!(e.score, Some(0.9));
        assert_eq!(e.end_ms, Some(now - 30_000));
        assert!(e.has_snapshot);
        let vocabulary = store.vocabulary();
        assert_eq!(vocabulary.cameras, ["front_door"]);
        assert_eq!(vocabulary.zones, ["porch", "steps"]);
        assert_eq!(vocabulary.sub_labels, ["Alice"]);
    }

    #[tokio::test]
    async fn windows_count_events_that_overlap_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(&config(dir.path()));
        let now = now_ms();
        let hour = 3_600_000;
        // Started two hours ago, still going: overlaps the last hour.
        store
            .record(person("long", "driveway", now - 2 * hour))
            .await
            .unwrap();
        // Ended before the last hour.
        store
            .record(Event {
                end_ms: Some(now - 90 * 60_000),
                ..person("old", "driveway", now - 100 * 60_000)
            })
            .await
            .unwrap();
        // In the last hour, on another camera and with a zone.
        store
            .record(Event {
                zones: vec!["porch".into()],
                ..person("new", "front_door", now - 10 * 60_000)
            })
            .await
            .unwrap();
        store.flush().await.unwrap();

        let last_hour = Query {
            since_ms: Some(now - hour),
            ..Query::objects()
        };
        assert_eq!(store.count(last_hour.clone()).await.unwrap(), 2);
        let keys: Vec<_> = store
            .query(last_hour.clone())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["frigate:new", "frigate:long"], "newest first");
        let driveway = Query {
            camera: Some("DRIVEWAY".into()),
            ..last_hour.clone()
        };
        assert_eq!(
            store.count(driveway).await.unwrap(),
            1,
            "camera names ignore case"
        );
        let porch = Query {
            zone: Some("Porch".into()),
            ..last_hour.clone()
        };
        assert_eq!(store.count(porch).await.unwrap(), 1);
        let all_day = Query {
            since_ms: Some(now - 24 * hour),
            until_ms: Some(now - hour),
            ..Query::objects()
        };
        assert_eq!(store.count(all_day).await.unwrap(), 2, "long and old");
        let open = Query {
            in_progress: true,
            ..Query::objects()
        };
        assert_eq!(store.count(open).await.unwrap(), 2, "long and new");
    }

    #[tokio::test]
    async fn times_in_the_future_or_past_the_retention_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(&config(dir.path()));
        let now = now_ms();
        let future = store.record(person("f", "x", now + 3_600_000)).await;
        assert!(
            matches!(future, Err(StoreError::Rejected(ref m)) if m.contains("future")),
            "{future:?}"
        );
        let old = store.record(person("o", "x", now - 40 * 86_400_000)).await;
        assert!(
            matches!(old, Err(StoreError::Rejected(ref m)) if m.contains("retention")),
            "{old:?}"
        );
        store.flush().await.unwrap();
        assert_eq!(store.count(Query::default()).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_damaged_file_makes_the_store_unavailable_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        std::fs::write(&config.path, vec![0x5a; 8192]).unwrap();
        let store = EventStore::open(&config);
        let problem = store.problem().expect("unavailable");
        assert!(
            problem.contains("events.db") && problem.contains("move it aside"),
            "{problem}"
        );
        let err = store.count(Query::default()).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(store.record(person("a", "x", now_ms())).await.is_err());
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        Connection::open(&config.path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let problem = EventStore::open(&config).problem().expect("unavailable");
        assert!(problem.contains("newer Jarvis"), "{problem}");
    }

    #[tokio::test]
    async fn a_full_disk_keeps_events_in_memory_and_writes_them_once_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(&config(dir.path()));
        store.flush().await.unwrap();
        // SQLite's own size cap stands in for a full disk: it fails writes with SQLITE_FULL.
        let pages: i64 = Connection::open(dir.path().join("events.db"))
            .unwrap()
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        store
            .exec(format!("PRAGMA max_page_count = {}", pages + 1))
            .await;
        let now = now_ms();
        for i in 0..500 {
            let event = Event {
                description: Some("a long description ".repeat(20)),
                ..person(&i.to_string(), "driveway", now - 1000)
            };
            store.record(event).await.unwrap();
        }
        let err = store.flush().await.unwrap_err();
        assert!(err.to_string().contains("disk is full"), "{err}");
        let problem = store.problem().expect("a write error");
        assert!(
            problem.contains("events.db") && problem.contains("free space"),
            "{problem}"
        );
        // Reads still work while writes fail.
        assert!(store.is_available());
        assert!(store.count(Query::default()).await.unwrap() < 500);

        store
            .exec("PRAGMA max_page_count = 1000000".to_owned())
            .await;
        // The retry comes within RETRY_AFTER.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if store.flush().await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "writes never resumed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            store.count(Query::default()).await.unwrap(),
            500,
            "nothing lost"
        );
        assert_eq!(store.problem(), None);
        assert_eq!(store.stats().dropped, 0);
    }

    #[tokio::test]
    async fn every_part_of_a_window_is_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(&config(dir.path()));
        let now = now_ms();
        let min = 60_000;
        let since = now - 60 * min;
        let ended = |id: &str, start: i64, end: i64| Event {
            end_ms: Some(end),
            ..person(id, "driveway", start)
        };
        for event in [
            // Straddles the window's start: short (found from the main index), long and
            // finished (events_long), long and unfinished (events_open).
            ended("short", since - 5 * min, since + min),
            ended("long", since - 5 * 60 * min, since + 10 * min),
            person("open", "driveway", since - 3 * 60 * min),
            // Inside the window, one still going on.
            ended("inside", since + 10 * min, since + 11 * min),
            person("now", "driveway", now - min),
            // Ended before the window: a short one just before, a long one long before.
            ended("just_before", since - 10 * min, since - min),
            ended("long_before", since - 9 * 60 * min, since - 2 * 60 * min),
            // A long one exactly at the border of LONG_MS.
            ended("border", since - LONG_MS, since + 1),
        ] {
            store.record(event).await.unwrap();
        }
        store.flush().await.unwrap();
        let window = Query {
            since_ms: Some(since),
            limit: 50,
            ..Query::objects()
        };
        let mut keys: Vec<_> = store
            .query(window.clone())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(
            keys,
            [
                "frigate:now",
                "frigate:inside",
                "frigate:short",
                "frigate:border",
                "frigate:open",
                "frigate:long"
            ],
            "newest first, each once"
        );
        assert_eq!(store.count(window.clone()).await.unwrap(), 6);
        // The same through every main index.
        for narrowed in [
            Query {
                camera: Some("driveway".into()),
                ..window.clone()
            },
            Query {
                source: Some(Source::Frigate),
                kind: None,
                ..window.clone()
            },
            Query {
                label: Some("person".into()),
                source: None,
                kind: None,
                ..window.clone()
            },
        ] {
            assert_eq!(
                store.count(narrowed.clone()).await.unwrap(),
                6,
                "{narrowed:?}"
            );
            assert_eq!(store.query(narrowed).await.unwrap().len(), 6);
        }
        let open = Query {
            in_progress: true,
            ..window.clone()
        };
        keys = store
            .query(open.clone())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["frigate:now", "frigate:open"]);
        assert_eq!(store.count(open).await.unwrap(), 2);
        // A limit cuts the merged list, not each part.
        let two = Query { limit: 2, ..window };
        assert_eq!(store.query(two).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn faces_and_descriptions_are_found_per_camera() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(&config(dir.path()));
        let now = now_ms();
        store
            .record(Event {
                sub_label: Some("Alice".into()),
                ..person("a", "front_door", now - 50_000)
            })
            .await
            .unwrap();
        store
            .record(Event {
                description: Some("a courier with a parcel".into()),
                ..person("b", "front_door", now - 40_000)
            })
            .await
            .unwrap();
        store
            .record(person("c", "front_door", now - 30_000))
            .await
            .unwrap();
        store
            .record(Event {
                sub_label: Some("Bob".into()),
                ..person("d", "driveway", now - 20_000)
            })
            .await
            .unwrap();
        store.flush().await.unwrap();
        let latest = |query: Query| {
            let store = store.clone();
            async move {
                store
                    .query(Query { limit: 1, ..query })
                    .await
                    .unwrap()
                    .pop()
                    .map(|e| e.key)
            }
        };
        let front = Query {
            camera: Some("front_door".into()),
            ..Query::objects()
        };
        let face = Query {
            has_sub_label: true,
            ..front.clone()
        };
        assert_eq!(latest(face).await.as_deref(), Some("frigate:a"));
        let described = Query {
            has_description: true,
            ..front.clone()
        };
        assert_eq!(latest(described).await.as_deref(), Some("frigate:b"));
        let anywhere = Query {
            has_sub_label: true,
            ..Query::objects()
        };
        assert_eq!(latest(anywhere).await.as_deref(), Some("frigate:d"));
        let alice = Query {
            sub_label: Some("alice".into()),
            ..Query::objects()
        };
        assert_eq!(latest(alice).await.as_deref(), Some("frigate:a"));
        assert_eq!(latest(front).await.as_deref(), Some("frigate:c"));
    }

    #[tokio::test]
    async fn every_query_shape_searches_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(&config(dir.path()));
        let now = now_ms();
        let mut shapes = Vec::new();
        for since in [None, Some(now - 3_600_000)] {
            for base in [Query::default(), Query::objects()] {
                let with = |edit: fn(&mut Query)| {
                    let mut q = Query {
                        since_ms: since,
                        ..base.clone()
                    };
                    edit(&mut q);
                    q
                };
                shapes.extend([
                    with(|q| q.camera = Some("front_door".into())),
                    with(|q| {
                        q.camera = Some("front_door".into());
                        q.label = Some("person".into());
                    }),
                    with(|q| {
                        q.zone = Some("porch".into());
                        q.label = Some("person".into());
                        q.source = Some(Source::Frigate);
                    }),
                    with(|q| q.sub_label = Some("Alice".into())),
                    with(|q| q.has_sub_label = true),
                    with(|q| {
                        q.has_sub_label = true;
                        q.camera = Some("driveway".into());
                    }),
                    with(|q| {
                        q.has_description = true;
                        q.camera = Some("driveway".into());
                    }),
                    with(|q| q.in_progress = true),
                    with(|q| q.source = Some(Source::Ha)),
                    with(|q| {
                        q.source = Some(Source::Jarvis);
                        q.kind = Some("command".into());
                        q.until_ms = Some(1);
                    }),
                ]);
                if since.is_some() {
                    shapes.push(with(|q| q.label = Some("dog".into())));
                }
            }
        }
        // Walking all of a partial index (every face, every unfinished event) is fine: it
        // holds a few percent of the events at most.
        let partial = ["events_faces", "events_open"];
        for query in shapes {
            for counting in [false, true] {
                let plan = store.explain(query.clone(), counting).await.unwrap();
                let scans = plan.iter().filter(|l| {
                    l.starts_with("SCAN events") && !partial.iter().any(|p| l.ends_with(p))
                });
                assert_eq!(
                    scans.count(),
                    0,
                    "{query:?} (count: {counting}) scans: {plan:?}"
                );
                assert!(
                    plan.iter().any(|l| l.contains("USING")),
                    "{query:?}: {plan:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_version_1_file_is_migrated_with_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let now = now_ms();
        {
            let conn = Connection::open(&config.path).unwrap();
            conn.execute_batch(&format!("{}; PRAGMA user_version = 1;", MIGRATIONS[0]))
                .unwrap();
            conn.execute(
                "INSERT INTO events (key, source, kind, camera, label, start_ms, updated_ms) \
                 VALUES ('frigate:old', 'frigate', 'object', 'porch', 'person', ?1, ?1)",
                [now - 1000],
            )
            .unwrap();
        }
        let store = EventStore::open(&config);
        assert_eq!(store.problem(), None);
        let found = store
            .count(Query {
                camera: Some("porch".into()),
                since_ms: Some(now - 60_000),
                ..Query::objects()
            })
            .await
            .unwrap();
        assert_eq!(found, 1);
        drop(store);
        let version: i64 = Connection::open(&config.path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, i64::try_from(MIGRATIONS.len()).unwrap());
    }

    #[tokio::test]
    async fn meta_keys_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(&config(dir.path()));
        assert_eq!(store.meta("cursor").await.unwrap(), None);
        store.set_meta("cursor", "1").await.unwrap();
        store.set_meta("cursor", "2").await.unwrap();
        store.flush().await.unwrap();
        assert_eq!(store.meta("cursor").await.unwrap().as_deref(), Some("2"));
    }
}
