//! [`serve`]: a TCP accept loop for Wyoming servers, with a connection limit and graceful shutdown.
//!
//! Each accepted connection runs the caller's handler in its own task. Over the limit, a
//! connection gets an `error` event (code `busy`) and is closed at once, so one flood of
//! connections cannot starve the ones already being served. On shutdown the listener closes
//! first, every handler sees its [`Connection::shutdown`] token cancelled, and `serve` waits a
//! bounded grace period for them to finish their replies.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::codec::Limits;
use crate::misc::Error as ErrorEvent;
use crate::stream::{EventReader, EventWriter};

/// How often a refusal at the connection limit is logged, at most.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Default connection limit: far above what one Home Assistant opens (a handful at a time).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default idle timeout: HA keeps wake-word connections open while it streams, never idle this long.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time in-flight replies get to finish after shutdown starts.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a rejected connection may take to receive its `busy` error.
const REJECT_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Settings for [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// Read limits for every connection.
    pub limits: Limits,
    /// Connections served at once; more are answered `busy` and closed.
    pub max_connections: usize,
    /// A connection with no complete event for this long is closed. `None` waits forever.
    pub idle_timeout: Option<Duration>,
    /// How long `serve` waits for handlers to finish after shutdown starts.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// One accepted connection, handed to the handler.
#[derive(Debug)]
pub struct Connection {
    /// Incoming events (with the configured limits and idle timeout).
    pub reader: EventReader<OwnedReadHalf>,
    /// Outgoing events.
    pub writer: EventWriter<OwnedWriteHalf>,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Cancelled when the server shuts down: finish the reply in flight, then return.
    pub shutdown: CancellationToken,
}

/// What [`serve`] did, returned once it has stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Connections handed to the handler.
    pub accepted: u64,
    /// Connections refused because of the limit.
    pub rejected: u64,
    /// Handlers still running when the grace period ran out.
    pub unfinished: usize,
}

/// Accepts connections until `shutdown` is cancelled, then drains them. See the module docs.
///
/// # Errors
/// Never fails once listening: accept errors (e.g. out of file descriptors) are logged and retried
/// with a back-off.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: CancellationToken,
    handler: F,
) -> ServeReport
where
    F: Fn(Connection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let tracker = TaskTracker::new();
    let mut report = ServeReport::default();
    let mut backoff = Duration::from_millis(10);
    // Refusals are logged at most once per REFUSAL_LOG_EVERY, with the count since the last line
    // (a storm of connections must not become a storm of log lines).
    let mut refusal_logged: Option<tokio::time::Instant> = None;
    let mut refused_unlogged: u64 = 0;

    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(10);
                pair
            }
            Err(err) => {
                // EMFILE and friends: wait for connections to close instead of spinning.
                warn!(cause = %err, retry_in = ?backoff, "accept failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            report.rejected += 1;
            refused_unlogged += 1;
            if refusal_logged.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) {
                refusal_logged = Some(tokio::time::Instant::now());
                warn!(
                    %peer,
                    limit = config.max_connections,
                    refused = std::mem::take(&mut refused_unlogged),
                    "connection limit reached; refusing (logged once per 10 s; refused counts since the last line)"
                );
            }
            tracker.spawn(reject(stream));
            continue;
        };
        report.accepted += 1;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let connection = Connection {
            reader: EventReader::new(read, config.limits).with_idle_timeout(config.idle_timeout),
            writer: EventWriter::new(write),
            peer,
            shutdown: shutdown.child_token(),
        };
        let task = handler(connection);
        tracker.spawn(async move {
            task.await;
            drop(permit);
        });
    }

    drop(listener);
    tracker.close();
    debug!(
        open = tracker.len(),
        "listener closed; draining connections"
    );
    if tokio::time::timeout(config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        report.unfinished = tracker.len();
        warn!(
            unfinished = report.unfinished,
            grace = ?config.shutdown_grace,
            "connections still open after the shutdown grace period; dropping them"
        );
    }
    report
}

/// Tells an over-limit peer why it is being closed, without waiting on it for long.
async fn reject(stream: TcpStream) {
    let mut writer = EventWriter::new(stream);
    let busy = ErrorEvent::new(
        "busy",
        "server is at its connection limit; try again shortly",
    );
    let _ = tokio::time::timeout(REJECT_WRITE_TIMEOUT, async {
        let _ = writer.write_event(busy).await;
        let _ = writer.shutdown().await;
    })
    .await;
}
