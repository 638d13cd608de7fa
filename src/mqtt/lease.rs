//! The brain lease: which of two (or more) Jarvis brains for one cluster is the active one. The
//! lease is one retained message on `<mqtt.base_topic>/brain/lease`; this file holds its
//! settings (`[mqtt.lease]`), its wire format and the state machine that decides, synchronous
//! and broker-free (the task in `standby` feeds it what the broker says and sends what it
//! returns).
//!
//! Rules (every brain subscribes to the topic; a message is a `claim`, a `renew` or a
//! `release`):
//! - The holder renews every `lease_secs / 3`. It counts as active only until `lease_secs`
//!   after sending the last renewal it has read back from the broker: cut off from the broker,
//!   it stops acting before any standby may start.
//! - A standby claims when the lease is free: released live (a holder's clean shutdown at once;
//!   its last will, which the broker publishes when its connection drops, after
//!   [`WILL_GRACE`] without a re-assertion), or silent for
//!   `lease_secs` measured on the standby's own clock from the last renewal it received (a
//!   clustered broker that loses the will, a frozen holder, a network split). It claims with
//!   the highest epoch seen plus one, and becomes active only after reading its own claim back
//!   and waiting as long again (at least [`MIN_SETTLE`]) with no better claim seen.
//! - Better means a higher epoch; at an equal epoch a renewal beats a claim (a fresh brain that
//!   saw nothing does not unseat a holder), and between two of a kind the lower instance id
//!   wins. So every brain that sees the same messages, in any order, agrees.
//! - A brain that sees a better claim stops at once; a holder that sees a worse one, or any
//!   release, re-asserts its claim, so the retained message always names the holder.
//! - A replayed (retained) release does not free a lease whose holder is still within its time:
//!   after a broker restart the holder re-asserts when it reconnects, and the standby waits.
//! - Every message names the sender's run (a random number per process) and MQTT connection
//!   (numbered per process); so does the last will of that connection. A will for a connection
//!   the holder has since left does not free the lease: on a clustered broker, a node that dies
//!   takes its clients' wills with it and another node publishes them seconds later, when the
//!   holder is long back on another node.
//! - Two live processes with the same instance (a configuration mistake) are told apart by
//!   their runs: the higher run yields, and each logs an error naming `mqtt.lease.instance`.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::ConfigError;

/// Default lease: a dead holder is replaced within about this long (well within the 30 s the
/// issue asks), while a holder renews every 3.3 s, far from a busy broker's latency.
pub const DEFAULT_LEASE_SECS: u64 = 10;
/// Shortest lease accepted: the MQTT keep-alive is a third of it, and cannot go below 1 s.
pub const MIN_LEASE_SECS: u64 = 3;
/// Longest lease accepted: a takeover must stay within 30 s.
pub const MAX_LEASE_SECS: u64 = 25;
/// Least time a claimant waits after sending its claim before it acts: a competing claim sent
/// before ours was seen arrives within a round trip, and this leaves room for a slow one.
pub const MIN_SETTLE: Duration = Duration::from_millis(300);
/// How long a standby waits after the last will of the holder's connection before it claims
/// (after a clean shutdown it claims at once): a holder that is still alive (its connection dropped and came back at
/// once, or through another node of a clustered broker, where its re-assertion may arrive
/// after the will) keeps the lease by re-asserting it meanwhile.
pub const WILL_GRACE: Duration = Duration::from_secs(1);
/// The message number of a last will (every message sent live has one from 1 up): tells a
/// will from a clean shutdown's release.
const WILL_SEQ: u64 = 0;
/// Longest instance id.
const MAX_INSTANCE_CHARS: usize = 64;
/// Our own messages remembered to recognise their echo.
const SENT_MEMORY: usize = 32;

/// `[mqtt.lease]`: two brains for one cluster, one active and one standby.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeaseConfig {
    /// Take part in the lease (off: this brain acts alone, as before).
    pub enabled: bool,
    /// This brain's id in the lease; `wyoming.zeroconf.name` (default `jarvis-<hostname>`)
    /// when unset. Must differ between the brains.
    pub instance: Option<String>,
    /// Seconds a silent holder keeps the lease.
    pub lease_secs: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            instance: None,
            lease_secs: DEFAULT_LEASE_SECS,
        }
    }
}

impl LeaseConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and the fix.
    pub fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = crate::config::invalid_at(origin);
        if !(MIN_LEASE_SECS..=MAX_LEASE_SECS).contains(&self.lease_secs) {
            return invalid(
                "mqtt.lease.lease_secs",
                format!(
                    "must be {MIN_LEASE_SECS} to {MAX_LEASE_SECS} (a standby takes over after \
                     about this long)"
                ),
            );
        }
        if let Some(instance) = &self.instance {
            if let Err(why) = check_instance(instance) {
                return invalid("mqtt.lease.instance", format!("{instance:?} {why}"));
            }
        }
        Ok(())
    }

    /// This brain's id: `instance`, else `fallback` (the zeroconf name) cut to what an id may
    /// hold.
    pub fn instance_or(&self, fallback: &str) -> String {
        if let Some(instance) = &self.instance {
            return instance.clone();
        }
        let cleaned: String = fallback
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .take(MAX_INSTANCE_CHARS)
            .collect();
        if cleaned.is_empty() {
            "jarvis".into()
        } else {
            cleaned
        }
    }
}

fn check_instance(instance: &str) -> Result<(), &'static str> {
    if instance.is_empty() || instance.chars().count() > MAX_INSTANCE_CHARS {
        return Err("must be 1 to 64 characters");
    }
    if !instance
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("may hold only letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// What a brain is, as `/health` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// No lease: the only brain.
    Single,
    /// Holds the lease: acts and publishes the entities.
    Active,
    /// Another brain holds the lease, or nobody does yet: answers questions, does not act.
    Standby,
}

/// The lease as one brain sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseStatus {
    /// Active, standby or single.
    pub role: Role,
    /// The instance holding the lease, when known.
    pub holder: Option<String>,
    /// The holder's epoch (one more at every takeover).
    pub epoch: Option<u64>,
    /// Since when the holder holds it (as first seen here), RFC 3339.
    pub since: Option<String>,
    /// Until when this brain may act (active only).
    #[serde(skip)]
    pub active_until: Option<Instant>,
}

impl LeaseStatus {
    /// A brain without a lease.
    pub fn single() -> Self {
        Self {
            role: Role::Single,
            holder: None,
            epoch: None,
            since: None,
            active_until: None,
        }
    }
}

/// What the brain and `/health` read of the lease. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LeaseView {
    /// This brain's id.
    pub instance: String,
    status: watch::Receiver<LeaseStatus>,
}

impl LeaseView {
    /// A view on `status`.
    pub fn new(instance: String, status: watch::Receiver<LeaseStatus>) -> Self {
        Self { instance, status }
    }

    /// The lease now.
    pub fn status(&self) -> LeaseStatus {
        self.status.borrow().clone()
    }

    /// Changes of the lease.
    pub fn watch(&self) -> watch::Receiver<LeaseStatus> {
        self.status.clone()
    }

    /// `None` when this brain may act now; otherwise the reply to give, naming the active
    /// brain. Checked when an action is asked for and again just before it is sent to Proxmox.
    pub fn refusal(&self) -> Option<String> {
        let status = self.status.borrow();
        let valid = status
            .active_until
            .is_some_and(|until| Instant::now() < until);
        if status.role == Role::Active && valid {
            return None;
        }
        Some(match &status.holder {
            Some(holder) if holder != &self.instance => format!(
                "I'm the standby brain ({}); {holder} is the active one and carries out \
                 actions, so I did nothing. Ask it, or ask me again if it stops: I take over \
                 within seconds.",
                self.instance
            ),
            _ => format!(
                "I'm the standby brain ({}) and no brain holds the lease right now (is the MQTT \
                 broker reachable?), so I did nothing. Try again in a few seconds.",
                self.instance
            ),
        })
    }
}

/// What one message on the lease topic says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A new epoch, not yet settled.
    Claim,
    /// The holder keeping its epoch.
    Renew,
    /// Nobody holds the lease (a clean shutdown, or a holder's last will).
    Release,
}

/// The retained message on the lease topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wire {
    /// The holder's instance; empty in a release.
    #[serde(default)]
    pub holder: String,
    /// The holder's epoch.
    #[serde(default)]
    pub epoch: u64,
    /// Claim, renew or release.
    pub kind: Kind,
    /// The sender's message number (recognises its echo).
    #[serde(default)]
    pub seq: u64,
    /// Sent at, ms since the epoch (for people: brains use their own clocks).
    #[serde(default)]
    pub renewed_at: i64,
    /// Free after, ms since the epoch, when the holder stays silent (for people).
    #[serde(default)]
    pub expires_at: i64,
    /// The holder's lease, ms.
    #[serde(default)]
    pub lease_ms: u64,
    /// Who released it (a release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    /// The sender's run: a random number per process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
    /// The sender's MQTT connection (in its run); a will carries the one it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn: Option<u64>,
}

/// Why a message on the lease topic was ignored.
#[derive(Debug, thiserror::Error)]
#[error("not a lease message: {0}")]
pub struct BadMessage(String);

/// Another brain's claim, as believed here.
#[derive(Debug, Clone)]
struct Other {
    holder: String,
    epoch: u64,
    renewing: bool,
    expires: Instant,
    since_ms: i64,
    /// The run and connection of its latest message, when it said.
    run: Option<u64>,
    conn: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Standby,
    /// Claimed `epoch` (a new one, or, `renew`, the one held before the connection dropped).
    Claiming {
        epoch: u64,
        renew: bool,
        sent: Instant,
        echoed: Option<Instant>,
    },
    /// Held `epoch` until the connection dropped: the will released it, so this brain does not
    /// act, but it re-asserts it when back within `until`.
    Lapsed {
        epoch: u64,
        until: Instant,
    },
    Active {
        epoch: u64,
        until: Instant,
        last_sent: Instant,
        since_ms: i64,
    },
}

/// The state machine. See the module docs.
#[derive(Debug)]
pub struct Lease {
    me: String,
    lease: Duration,
    state: State,
    top_epoch: u64,
    other: Option<Other>,
    connected: bool,
    ready_at: Option<Instant>,
    sent: VecDeque<(u64, Instant)>,
    next_seq: u64,
    /// This process's run.
    run: u64,
    /// The MQTT connection in use (its number in this run).
    conn: u64,
    /// The run of another live process with this brain's instance, seen since last asked.
    twin: Option<u64>,
}

/// Whether `release` is the will of a connection or run other than the holder's latest (both
/// known: a release from an older Jarvis, without them, is taken at its word).
fn stale(release: &Wire, holder: &Other) -> bool {
    match (release.run, release.conn, holder.run, holder.conn) {
        (Some(run), Some(conn), Some(holder_run), Some(holder_conn)) => {
            (run, conn) != (holder_run, holder_conn)
        }
        _ => false,
    }
}

/// How one claim ranks against another: (epoch, renewing, instance, run). The run only
/// separates two processes given the same instance by mistake.
fn beats(a: (u64, bool, &str, u64), b: (u64, bool, &str, u64)) -> bool {
    if a.0 != b.0 {
        return a.0 > b.0;
    }
    if a.1 != b.1 {
        return a.1;
    }
    if a.2 != b.2 {
        return a.2 < b.2;
    }
    a.3 < b.3
}

impl Lease {
    /// A standby brain `me` with a lease of `lease`.
    pub fn new(me: &str, lease: Duration) -> Self {
        Self {
            me: me.to_owned(),
            lease,
            state: State::Standby,
            top_epoch: 0,
            other: None,
            connected: false,
            ready_at: None,
            sent: VecDeque::new(),
            next_seq: 1,
            run: getrandom::u64().unwrap_or_else(|_| {
                // No system randomness: the clock's nanoseconds still differ between processes.
                u64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(1)
            }),
            conn: 0,
            twin: None,
        }
    }

    /// This process's run (in every message and will it sends).
    pub fn run(&self) -> u64 {
        self.run
    }

    /// The run of another live brain with this instance, once per sighting: two brains were
    /// given the same `mqtt.lease.instance`.
    pub fn take_twin(&mut self) -> Option<u64> {
        self.twin.take()
    }

    /// This brain's id.
    pub fn instance(&self) -> &str {
        &self.me
    }

    /// The payload of the last will of this brain's connection `conn` of run `run`: a release
    /// by it.
    pub fn will(me: &str, run: u64, conn: u64) -> String {
        serde_json::to_string(&Wire {
            holder: String::new(),
            epoch: 0,
            kind: Kind::Release,
            seq: WILL_SEQ,
            renewed_at: 0,
            expires_at: 0,
            lease_ms: 0,
            released_by: Some(me.to_owned()),
            run: Some(run),
            conn: Some(conn),
        })
        .unwrap_or_default()
    }

    /// How often [`Lease::tick`] should run.
    pub fn tick_every(&self) -> Duration {
        // A settled claim becomes active at the next tick: keep it close (a tick costs µs).
        (self.lease / 100).clamp(Duration::from_millis(20), Duration::from_millis(50))
    }

    /// Whether this brain holds the lease now.
    pub fn is_active(&self, now: Instant) -> bool {
        matches!(self.state, State::Active { until, .. } if now < until)
    }

    /// The lease as `/health` and the brain see it.
    pub fn status(&self, now: Instant) -> LeaseStatus {
        let since = |ms: i64| {
            jiff::Timestamp::from_millisecond(ms)
                .ok()
                .map(|t| t.to_string())
        };
        match &self.state {
            State::Active {
                epoch,
                until,
                since_ms,
                ..
            } if now < *until => LeaseStatus {
                role: Role::Active,
                holder: Some(self.me.clone()),
                epoch: Some(*epoch),
                since: since(*since_ms),
                active_until: Some(*until),
            },
            _ => LeaseStatus {
                role: Role::Standby,
                holder: self.other.as_ref().map(|o| o.holder.clone()),
                epoch: self.other.as_ref().map(|o| o.epoch),
                since: self.other.as_ref().and_then(|o| since(o.since_ms)),
                active_until: None,
            },
        }
    }

    /// Connection `conn` is up (and the topic subscribed): the holder re-asserts its claim.
    pub fn connected(&mut self, conn: u64, now: Instant, wall_ms: i64) -> Vec<String> {
        self.expire(now);
        self.connected = true;
        self.conn = conn;
        // The broker replays the retained lease right after the subscription: wait for it
        // before deciding that nobody holds the lease.
        self.ready_at = Some(now + MIN_SETTLE);
        // A reconnect seen without the drop before it (the two came together): the will has
        // released the lease meanwhile, so re-assert it like after a drop.
        if let State::Active { epoch, until, .. } = self.state {
            self.state = State::Lapsed { epoch, until };
        }
        match self.state {
            State::Active { .. } => Vec::new(),
            // Back within the lease (a broker restart): re-assert it before anyone may claim.
            State::Lapsed { epoch, .. } => {
                let message = self.send(Kind::Renew, epoch, now, wall_ms);
                self.state = State::Claiming {
                    epoch,
                    renew: true,
                    sent: now,
                    echoed: None,
                };
                vec![message]
            }
            // The claim may not have reached the broker: start again.
            State::Claiming { .. } => {
                self.state = State::Standby;
                Vec::new()
            }
            State::Standby => Vec::new(),
        }
    }

    /// The connection dropped. Its last will has released the lease, and a standby may claim
    /// it at once: an active brain stops acting now (and re-asserts the lease when back).
    pub fn disconnected(&mut self) {
        self.connected = false;
        self.ready_at = None;
        match self.state {
            State::Claiming { .. } => self.state = State::Standby,
            State::Active { epoch, until, .. } => self.state = State::Lapsed { epoch, until },
            State::Standby | State::Lapsed { .. } => {}
        }
    }

    /// A message on the lease topic (`retained`: replayed at subscription).
    ///
    /// # Errors
    /// A payload that is not a lease message (ignored; the caller logs it).
    pub fn message(
        &mut self,
        payload: &[u8],
        retained: bool,
        now: Instant,
        wall_ms: i64,
    ) -> Result<Vec<String>, BadMessage> {
        let wire: Wire = serde_json::from_slice(payload).map_err(|e| BadMessage(e.to_string()))?;
        self.expire(now);
        if wire.kind == Kind::Release || wire.holder.is_empty() {
            return Ok(self.on_release(&wire, retained, now, wall_ms));
        }
        if wire.holder.len() > MAX_INSTANCE_CHARS {
            return Err(BadMessage("holder id too long".into()));
        }
        self.top_epoch = self.top_epoch.max(wire.epoch);
        if wire.holder == self.me {
            let ours = wire.run.is_none_or(|run| run == self.run);
            if let Some(at) = self
                .sent
                .iter()
                .position(|(seq, _)| ours && *seq == wire.seq)
            {
                let (_, sent_at) = self.sent[at];
                return Ok(self.on_echo(&wire, sent_at, now));
            }
            // Not one of ours: an earlier process of this instance (replayed), or, live, another
            // process given the same instance. Treated as another brain.
            if !retained && !ours {
                self.twin = wire.run;
            }
        }
        Ok(self.on_other(&wire, retained, now, wall_ms))
    }

    /// Time passes: renew, settle a claim, claim a free lease, or notice a lost one.
    pub fn tick(&mut self, now: Instant, wall_ms: i64) -> Vec<String> {
        self.expire(now);
        match self.state.clone() {
            State::Active {
                epoch, last_sent, ..
            } => {
                if self.connected && now.duration_since(last_sent) >= self.lease / 3 {
                    return vec![self.send(Kind::Renew, epoch, now, wall_ms)];
                }
                Vec::new()
            }
            State::Claiming {
                epoch,
                sent,
                echoed,
                ..
            } => {
                if let Some(echoed) = echoed {
                    let settle = (2 * echoed.duration_since(sent)).max(MIN_SETTLE);
                    if now.duration_since(sent) >= settle {
                        self.state = State::Active {
                            epoch,
                            until: sent + self.lease,
                            last_sent: sent,
                            since_ms: wall_ms,
                        };
                        self.other = None;
                    }
                } else if now.duration_since(sent) >= self.lease / 2 {
                    // The claim never came back: try again later.
                    self.state = State::Standby;
                }
                Vec::new()
            }
            State::Lapsed { .. } => Vec::new(),
            State::Standby => self.try_claim(now, wall_ms),
        }
    }

    /// Something unreadable now sits on the lease topic: the holder puts its claim back.
    pub fn reassert(&mut self, now: Instant, wall_ms: i64) -> Vec<String> {
        self.expire(now);
        match self.state {
            State::Active { epoch, .. } if self.connected => {
                vec![self.send(Kind::Renew, epoch, now, wall_ms)]
            }
            _ => Vec::new(),
        }
    }

    /// A clean shutdown: the release to send when this brain holds the lease.
    pub fn release(&mut self, wall_ms: i64) -> Option<String> {
        let State::Active { epoch, .. } = self.state else {
            return None;
        };
        self.state = State::Standby;
        let wire = Wire {
            holder: String::new(),
            epoch,
            kind: Kind::Release,
            seq: self.take_seq(),
            renewed_at: wall_ms,
            expires_at: wall_ms,
            lease_ms: 0,
            released_by: Some(self.me.clone()),
            run: Some(self.run),
            conn: Some(self.conn),
        };
        serde_json::to_string(&wire).ok()
    }

    /// An active brain whose lease ran out without a renewal read back steps down.
    fn expire(&mut self, now: Instant) {
        if let State::Active { until, .. } | State::Lapsed { until, .. } = self.state {
            if now >= until {
                self.state = State::Standby;
            }
        }
    }

    fn on_echo(&mut self, wire: &Wire, sent_at: Instant, now: Instant) -> Vec<String> {
        match &mut self.state {
            State::Active { epoch, until, .. } if *epoch == wire.epoch => {
                *until = (*until).max(sent_at + self.lease);
                Vec::new()
            }
            State::Claiming {
                epoch,
                sent,
                echoed,
                ..
            } if *epoch == wire.epoch && *sent == sent_at => {
                *echoed = Some(now);
                Vec::new()
            }
            State::Standby if wire.kind == Kind::Claim => {
                // A claim of ours that the broker took after we gave it up (resent after a
                // reconnect): the others will honour it if it is the best, so honour it too.
                let best = self.other.as_ref().is_none_or(|o| {
                    now >= o.expires
                        || beats(
                            (wire.epoch, false, &self.me, self.run),
                            (o.epoch, o.renewing, &o.holder, o.run.unwrap_or(0)),
                        )
                });
                if best && wire.epoch >= self.top_epoch {
                    self.state = State::Claiming {
                        epoch: wire.epoch,
                        renew: false,
                        sent: sent_at,
                        echoed: Some(now),
                    };
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn on_other(&mut self, wire: &Wire, retained: bool, now: Instant, wall_ms: i64) -> Vec<String> {
        let renewing = wire.kind == Kind::Renew;
        let theirs = (
            wire.epoch,
            renewing,
            wire.holder.as_str(),
            wire.run.unwrap_or(0),
        );
        let run = self.run;
        match self.state.clone() {
            State::Active { epoch, .. } => {
                if beats(theirs, (epoch, true, &self.me, run)) {
                    self.state = State::Standby;
                    self.believe(wire, retained, now, wall_ms);
                    Vec::new()
                } else {
                    // A worse claim (a brain that missed ours): the retained one must be ours.
                    vec![self.send(Kind::Renew, epoch, now, wall_ms)]
                }
            }
            State::Claiming { epoch, renew, .. } => {
                if beats(theirs, (epoch, renew, &self.me, run)) {
                    self.state = State::Standby;
                    self.believe(wire, retained, now, wall_ms);
                }
                Vec::new()
            }
            State::Lapsed { epoch, .. } => {
                if beats(theirs, (epoch, true, &self.me, run)) {
                    self.state = State::Standby;
                    self.believe(wire, retained, now, wall_ms);
                }
                Vec::new()
            }
            State::Standby => {
                self.believe(wire, retained, now, wall_ms);
                Vec::new()
            }
        }
    }

    /// Takes `wire` as the holder, when it is at least as good as the one believed.
    fn believe(&mut self, wire: &Wire, retained: bool, now: Instant, wall_ms: i64) {
        let renewing = wire.kind == Kind::Renew;
        let lease = Duration::from_millis(wire.lease_ms).clamp(
            Duration::from_secs(MIN_LEASE_SECS),
            Duration::from_secs(MAX_LEASE_SECS),
        );
        let expires = now + lease;
        match &mut self.other {
            Some(other)
                if other.holder == wire.holder
                    && other.epoch == wire.epoch
                    && (other.run == wire.run || retained) =>
            {
                // A replay says nothing about the holder being alive now, but it may name a
                // connection the holder opened while this brain was away: a will for an older
                // one must not free the lease.
                if !retained {
                    other.expires = expires;
                    other.renewing |= renewing;
                    other.conn = wire.conn;
                } else if other.run == wire.run {
                    other.conn = other.conn.max(wire.conn);
                }
            }
            Some(other)
                if now < other.expires
                    && !beats(
                        (wire.epoch, renewing, &wire.holder, wire.run.unwrap_or(0)),
                        (
                            other.epoch,
                            other.renewing,
                            &other.holder,
                            other.run.unwrap_or(0),
                        ),
                    ) => {}
            _ => {
                self.other = Some(Other {
                    holder: wire.holder.clone(),
                    epoch: wire.epoch,
                    renewing,
                    expires,
                    since_ms: wall_ms,
                    run: wire.run,
                    conn: wire.conn,
                });
            }
        }
    }

    fn on_release(
        &mut self,
        wire: &Wire,
        retained: bool,
        now: Instant,
        wall_ms: i64,
    ) -> Vec<String> {
        match self.state {
            // Someone's will or stale release now sits at the broker: put ours back.
            State::Active { epoch, .. } => vec![self.send(Kind::Renew, epoch, now, wall_ms)],
            State::Claiming { .. } | State::Lapsed { .. } => Vec::new(),
            State::Standby => {
                let by = wire.released_by.as_deref().unwrap_or_default();
                let free = match &mut self.other {
                    None => true,
                    // Another brain's will: the holder we know is not concerned.
                    Some(other) if other.holder != by => now >= other.expires,
                    // Replayed after a reconnect: the holder may still re-assert.
                    Some(other) if retained => now >= other.expires,
                    // The will of a connection (or process) the holder has left since: a dead
                    // broker node's wills published late by another.
                    Some(other) if stale(wire, other) => now >= other.expires,
                    // The holder's clean shutdown.
                    Some(_) if wire.seq != WILL_SEQ => true,
                    // The will of the holder's latest known connection: free after a grace, in
                    // which a holder still alive (back at once, or through another broker node
                    // whose messages may arrive after the will) re-asserts it.
                    Some(other) => {
                        other.expires = other.expires.min(now + WILL_GRACE);
                        now >= other.expires
                    }
                };
                if free {
                    self.other = None;
                    return self.try_claim(now, wall_ms);
                }
                Vec::new()
            }
        }
    }

    fn try_claim(&mut self, now: Instant, wall_ms: i64) -> Vec<String> {
        let ready = self.connected && self.ready_at.is_some_and(|at| now >= at);
        let free = self.other.as_ref().is_none_or(|o| now >= o.expires);
        if !ready || !free || self.state != State::Standby {
            return Vec::new();
        }
        // A stranger's epoch of u64::MAX must not overflow (it wins anyway: anyone who may
        // write the topic can take the lease; protect it with the broker's ACLs).
        let epoch = self.top_epoch.saturating_add(1);
        let message = self.send(Kind::Claim, epoch, now, wall_ms);
        self.state = State::Claiming {
            epoch,
            renew: false,
            sent: now,
            echoed: None,
        };
        vec![message]
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// A claim or renewal of `epoch`, remembered to recognise its echo.
    fn send(&mut self, kind: Kind, epoch: u64, now: Instant, wall_ms: i64) -> String {
        let seq = self.take_seq();
        if self.sent.len() == SENT_MEMORY {
            self.sent.pop_front();
        }
        self.sent.push_back((seq, now));
        if let State::Active { last_sent, .. } = &mut self.state {
            *last_sent = now;
        }
        self.top_epoch = self.top_epoch.max(epoch);
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let wire = Wire {
            holder: self.me.clone(),
            epoch,
            kind,
            seq,
            renewed_at: wall_ms,
            expires_at: wall_ms.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX)),
            lease_ms,
            released_by: None,
            run: Some(self.run),
            conn: Some(self.conn),
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(10);

    /// Brains sharing one broker that delivers every message to everyone, in order.
    struct Net {
        brains: Vec<Lease>,
        retained: Option<String>,
        now: Instant,
    }

    impl Net {
        fn new(ids: &[&str]) -> Self {
            Self {
                brains: ids.iter().map(|id| Lease::new(id, LEASE)).collect(),
                retained: None,
                now: Instant::now(),
            }
        }

        /// Brain `a` holds the lease, `b` stands by and has read its renewals.
        fn a_holds_b_stands_by() -> Self {
            let mut net = Self::new(&["a", "b"]);
            net.connect(0);
            net.advance(Duration::from_secs(1));
            net.connect(1);
            net.advance(Duration::from_secs(2));
            net
        }

        fn connect(&mut self, i: usize) {
            let out = self.brains[i].connected(1, self.now, 0);
            if let Some(retained) = self.retained.clone() {
                let out = self.brains[i]
                    .message(retained.as_bytes(), true, self.now, 0)
                    .unwrap();
                self.deliver(out);
            }
            self.deliver(out);
        }

        fn deliver(&mut self, mut queue: Vec<String>) {
            while !queue.is_empty() {
                let message = queue.remove(0);
                self.retained = Some(message.clone());
                for brain in &mut self.brains {
                    if brain.connected {
                        queue.extend(
                            brain
                                .message(message.as_bytes(), false, self.now, 0)
                                .unwrap(),
                        );
                    }
                }
            }
        }

        fn advance(&mut self, by: Duration) {
            let step = Duration::from_millis(50);
            let end = self.now + by;
            while self.now < end {
                self.now += step;
                for i in 0..self.brains.len() {
                    let out = self.brains[i].tick(self.now, 0);
                    self.deliver(out);
                }
            }
        }

        fn active(&self) -> Vec<&str> {
            self.brains
                .iter()
                .filter(|b| b.is_active(self.now))
                .map(|b| b.me.as_str())
                .collect()
        }
    }

    #[test]
    fn the_first_brain_takes_the_lease_and_the_second_stays_standby() {
        let mut net = Net::new(&["b", "a"]);
        net.connect(0);
        net.advance(Duration::from_secs(1));
        assert_eq!(net.active(), ["b"]);
        net.connect(1);
        net.advance(Duration::from_secs(60));
        assert_eq!(net.active(), ["b"], "a lower id does not unseat a holder");
        let status = net.brains[1].status(net.now);
        assert_eq!(status.role, Role::Standby);
        assert_eq!(status.holder.as_deref(), Some("b"));
        assert_eq!(status.epoch, Some(1));
    }

    #[test]
    fn two_brains_starting_together_agree_on_one() {
        let mut net = Net::new(&["b", "a"]);
        net.connect(0);
        net.connect(1);
        // Both claim before either claim reaches the broker.
        net.now += MIN_SETTLE;
        let mut claims = net.brains[0].tick(net.now, 0);
        claims.extend(net.brains[1].tick(net.now, 0));
        assert_eq!(claims.len(), 2);
        net.deliver(claims);
        net.advance(Duration::from_secs(30));
        assert_eq!(net.active(), ["a"]);
    }

    #[test]
    fn a_will_hands_over_after_the_grace_and_silence_after_the_lease() {
        let mut net = Net::a_holds_b_stands_by();
        // The holder's last will.
        net.brains[0].disconnected();
        let will = Lease::will("a", net.brains[0].run, 1);
        net.deliver(vec![will]);
        net.advance(WILL_GRACE - Duration::from_millis(100));
        assert!(net.active().is_empty(), "nobody acts within the grace");
        net.advance(Duration::from_secs(1));
        assert_eq!(net.active(), ["b"]);
        assert_eq!(net.brains[1].status(net.now).epoch, Some(2));

        // The holder freezes: nothing for a lease, then the standby claims.
        net.brains[1].connected = false;
        net.connect(0);
        net.advance(LEASE + Duration::from_secs(1));
        assert!(!net.brains[1].is_active(net.now), "b stopped on its own");
        assert_eq!(net.active(), ["a"]);
    }

    #[test]
    fn a_replayed_release_waits_for_the_holder_to_come_back() {
        let mut lease = Lease::new("b", LEASE);
        let t0 = Instant::now();
        lease.connected(1, t0, 0);
        let claim = r#"{"holder":"a","epoch":4,"kind":"renew","seq":9,"lease_ms":10000}"#;
        lease.message(claim.as_bytes(), false, t0, 0).unwrap();
        // A broker restart: the will was kept and is replayed.
        lease.disconnected();
        let t1 = t0 + Duration::from_secs(2);
        lease.connected(2, t1, 0);
        let out = lease
            .message(Lease::will("a", 7, 1).as_bytes(), true, t1, 0)
            .unwrap();
        assert!(out.is_empty());
        assert!(lease.tick(t1 + Duration::from_secs(5), 0).is_empty());
        // The holder never comes back: claimed once its lease ran out.
        let out = lease.tick(t0 + LEASE + Duration::from_millis(1), 0);
        let wire: Wire = serde_json::from_str(&out[0]).unwrap();
        assert_eq!((wire.kind, wire.epoch), (Kind::Claim, 5));
    }

    #[test]
    fn a_holder_cut_off_stops_before_the_standby_starts() {
        let mut lease = Lease::new("a", LEASE);
        let t0 = Instant::now();
        lease.connected(1, t0, 0);
        let claim = lease.tick(t0 + MIN_SETTLE, 0);
        let sent = t0 + MIN_SETTLE;
        lease.message(claim[0].as_bytes(), false, sent, 0).unwrap();
        lease.tick(sent + MIN_SETTLE, 0);
        assert!(lease.is_active(sent + MIN_SETTLE));
        // Silent: active until the lease runs out by its own clock.
        assert!(lease.is_active(sent + LEASE - Duration::from_millis(1)));
        assert!(!lease.is_active(sent + LEASE));
        assert_eq!(lease.status(sent + LEASE).role, Role::Standby);
        // Disconnected (its will fired): stops at once, re-asserts the same epoch when back.
        let t1 = sent + Duration::from_secs(1);
        lease.tick(t1, 0);
        assert!(lease.is_active(t1));
        lease.disconnected();
        assert!(!lease.is_active(t1));
        let out = lease.connected(2, t1 + Duration::from_secs(1), 0);
        let wire: Wire = serde_json::from_str(&out[0]).unwrap();
        assert_eq!((wire.kind, wire.epoch), (Kind::Renew, 1));
    }

    #[test]
    fn a_late_will_of_a_connection_left_behind_does_not_free_the_lease() {
        // A clustered broker: the holder's node dies; the holder is back on another node at
        // once (connection 2) and re-asserts; the dead node's will for connection 1 is
        // published by a surviving node seconds later.
        let mut net = Net::a_holds_b_stands_by();
        assert_eq!(net.active(), ["a"]);
        let run = net.brains[0].run;
        net.brains[0].disconnected();
        assert!(
            net.active().is_empty(),
            "nobody acts while the holder is away"
        );
        let out = net.brains[0].connected(2, net.now, 0);
        net.deliver(out);
        net.advance(Duration::from_secs(1));
        assert_eq!(net.active(), ["a"]);
        let mark = net.retained.clone();
        net.deliver(vec![Lease::will("a", run, 1)]);
        net.advance(Duration::from_secs(30));
        assert_eq!(net.active(), ["a"], "the late will changed nothing");
        assert_eq!(net.brains[1].status(net.now).epoch, Some(1));
        assert_ne!(net.retained, mark);
        // The will of the connection in use still frees it, after the grace.
        net.brains[0].disconnected();
        net.deliver(vec![Lease::will("a", run, 2)]);
        net.advance(WILL_GRACE + Duration::from_secs(1));
        assert_eq!(net.active(), ["b"]);
    }

    #[test]
    fn a_holder_back_within_the_grace_keeps_the_lease() {
        // The standby sees the will of the holder's connection before the holder's
        // re-assertion through another broker node (a clustered broker: no order between
        // nodes).
        let mut net = Net::a_holds_b_stands_by();
        let run = net.brains[0].run;
        net.brains[0].disconnected();
        net.deliver(vec![Lease::will("a", run, 1)]);
        net.advance(WILL_GRACE / 2);
        let out = net.brains[0].connected(2, net.now, 0);
        net.deliver(out);
        net.advance(Duration::from_secs(30));
        assert_eq!(net.active(), ["a"]);
        assert_eq!(net.brains[1].status(net.now).epoch, Some(1));
    }

    #[test]
    fn a_replayed_renewal_from_a_new_connection_outdates_the_old_will() {
        // The standby was away while the holder moved to connection 2; it reads the holder's
        // renewal as the retained message when back, then the old connection's late will.
        let mut lease = Lease::new("b", LEASE);
        let t0 = Instant::now();
        lease.connected(1, t0, 0);
        let renew = |conn: u64| {
            format!(
                r#"{{"holder":"a","epoch":1,"kind":"renew","seq":{conn},"lease_ms":10000,"run":7,"conn":{conn}}}"#
            )
        };
        lease.message(renew(1).as_bytes(), false, t0, 0).unwrap();
        lease.disconnected();
        let t1 = t0 + Duration::from_secs(2);
        lease.connected(2, t1, 0);
        lease.message(renew(2).as_bytes(), true, t1, 0).unwrap();
        let out = lease
            .message(Lease::will("a", 7, 1).as_bytes(), false, t1, 0)
            .unwrap();
        assert!(out.is_empty());
        assert!(lease.tick(t1 + WILL_GRACE * 2, 0).is_empty(), "still a's");
        assert_eq!(lease.status(t1).holder.as_deref(), Some("a"));
    }

    #[test]
    fn a_clean_shutdown_hands_over_at_once() {
        let mut net = Net::a_holds_b_stands_by();
        let release = net.brains[0].release(0).unwrap();
        net.brains[0].disconnected();
        net.deliver(vec![release]);
        net.advance(MIN_SETTLE * 3);
        assert_eq!(net.active(), ["b"]);
    }

    #[test]
    fn two_brains_with_one_instance_are_noticed_and_do_not_fight() {
        let mut net = Net::new(&["a", "a"]);
        net.connect(0);
        net.advance(Duration::from_secs(1));
        net.connect(1);
        net.advance(Duration::from_secs(30));
        assert_eq!(net.active(), ["a"], "exactly one of the two is active");
        assert!(net.brains[0].is_active(net.now));
        let twin = net.brains[1].take_twin();
        assert_eq!(twin, Some(net.brains[0].run), "the standby saw its twin");
        // Both claim together: the runs break the tie, and the loser stops.
        let mut net = Net::new(&["a", "a"]);
        net.connect(0);
        net.connect(1);
        net.now += MIN_SETTLE;
        let mut claims = net.brains[0].tick(net.now, 0);
        claims.extend(net.brains[1].tick(net.now, 0));
        net.deliver(claims);
        net.advance(Duration::from_secs(30));
        assert_eq!(net.active().len(), 1);
        assert!(net.brains.iter_mut().any(|b| b.take_twin().is_some()));
    }

    #[test]
    fn garbage_is_refused_and_changes_nothing() {
        let mut lease = Lease::new("a", LEASE);
        let t0 = Instant::now();
        assert!(lease.message(b"not json", false, t0, 0).is_err());
        assert!(lease.message(b"{}", false, t0, 0).is_err());
        let long = format!(
            r#"{{"holder":"{}","epoch":1,"kind":"claim"}}"#,
            "x".repeat(100)
        );
        assert!(lease.message(long.as_bytes(), false, t0, 0).is_err());
        assert_eq!(lease.status(t0).holder, None);
    }

    #[test]
    fn a_broker_restart_leaves_the_lease_with_its_holder() {
        let mut net = Net::new(&["b", "a"]);
        net.connect(0);
        net.advance(Duration::from_secs(1));
        net.connect(1);
        net.advance(Duration::from_secs(5));
        assert_eq!(net.active(), ["b"]);
        // The broker goes away and forgets the retained lease.
        for brain in &mut net.brains {
            brain.disconnected();
        }
        net.retained = None;
        assert_eq!(
            net.active(),
            Vec::<&str>::new(),
            "nobody acts without the broker"
        );
        net.advance(Duration::from_secs(2));
        // The standby is back first, then the holder.
        net.connect(1);
        net.advance(Duration::from_secs(1));
        net.connect(0);
        net.advance(Duration::from_secs(30));
        assert_eq!(net.active(), ["b"]);
        assert_eq!(net.brains[0].status(net.now).epoch, Some(1));
        assert_eq!(net.brains[1].status(net.now).holder.as_deref(), Some("b"));
    }

    #[test]
    fn a_huge_epoch_from_a_stranger_does_not_overflow() {
        let mut lease = Lease::new("a", LEASE);
        let t0 = Instant::now();
        lease.connected(1, t0, 0);
        let stranger = format!(
            r#"{{"holder":"x","epoch":{},"kind":"claim","lease_ms":3000}}"#,
            u64::MAX
        );
        lease.message(stranger.as_bytes(), false, t0, 0).unwrap();
        let out = lease.tick(t0 + Duration::from_secs(4), 0);
        let wire: Wire = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(wire.epoch, u64::MAX);
    }

    #[test]
    fn the_lease_needs_mqtt() {
        let config = super::super::MqttConfig {
            lease: LeaseConfig {
                enabled: true,
                ..LeaseConfig::default()
            },
            ..super::super::MqttConfig::default()
        };
        let err = config.validate(Path::new("t.toml")).unwrap_err();
        assert!(err.to_string().contains("mqtt.lease.enabled"), "{err}");
    }

    #[test]
    fn config_checks_the_lease_and_the_instance() {
        let origin = Path::new("t.toml");
        assert!(LeaseConfig::default().validate(origin).is_ok());
        let short = LeaseConfig {
            lease_secs: 1,
            ..LeaseConfig::default()
        };
        assert!(
            short
                .validate(origin)
                .unwrap_err()
                .to_string()
                .contains("lease_secs")
        );
        let bad = LeaseConfig {
            instance: Some("a b".into()),
            ..LeaseConfig::default()
        };
        assert!(
            bad.validate(origin)
                .unwrap_err()
                .to_string()
                .contains("instance")
        );
        assert_eq!(
            LeaseConfig::default().instance_or("jarvis-vm 300"),
            "jarvis-vm-300"
        );
    }
}
