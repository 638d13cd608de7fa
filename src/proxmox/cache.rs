//! The shared cache of Proxmox answers: one [`Slot`] per resource (the cluster inventory, the
//! cluster status) and one per node for node details and update counts.
//!
//! Design: a slot holds the last good value with the time it was fetched, plus the outcome of
//! the most recent fetch. A caller whose value is too old takes the slot's fetch lock (a tokio
//! mutex, so waiting is async and cancel safe). Whoever gets the lock first fetches; callers that
//! queued behind it find a fetch that completed after they asked and take its result, success
//! or error, instead of sending the same request again. So concurrent callers share one
//! request, and an unreachable cluster costs one timeout, not one per caller.
//!
//! [`Slot::invalidate`] (after an action) bumps a generation: the next call fetches, and a fetch
//! that was already in flight is neither trusted as fresh nor shared.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::error::ProxmoxError;

/// One cached resource.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    state: Mutex<State<T>>,
    fetch: tokio::sync::Mutex<()>,
    updates: watch::Sender<Option<Arc<T>>>,
}

#[derive(Debug)]
struct State<T> {
    /// The last value fetched successfully, and when.
    good: Option<(Arc<T>, Instant)>,
    /// The outcome of the latest fetch, when it completed, and the generation it started in.
    last: Option<(Result<Arc<T>, ProxmoxError>, Instant, u64)>,
    /// Bumped by [`Slot::invalidate`].
    generation: u64,
    /// `good` is known to be out of date.
    stale: bool,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                good: None,
                last: None,
                generation: 0,
                stale: false,
            }),
            fetch: tokio::sync::Mutex::new(()),
            updates: watch::Sender::new(None),
        }
    }
}

impl<T> Slot<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        // The state is replaced in single assignments, so a panic elsewhere cannot leave it
        // half-written: keep using it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached value if it is younger than `ttl` and not invalidated. No I/O.
    pub(crate) fn fresh(&self, ttl: Duration) -> Option<Arc<T>> {
        let state = self.state();
        match &state.good {
            Some((value, at)) if !state.stale && at.elapsed() < ttl => Some(Arc::clone(value)),
            _ => None,
        }
    }

    /// The last good value and when it was fetched, however old. No I/O.
    pub(crate) fn snapshot(&self) -> Option<(Arc<T>, Instant)> {
        self.state()
            .good
            .as_ref()
            .map(|(value, at)| (Arc::clone(value), *at))
    }

    /// Marks the value out of date: the next [`Slot::get`] fetches.
    pub(crate) fn invalidate(&self) {
        let mut state = self.state();
        state.generation += 1;
        state.stale = true;
    }

    /// Every new good value, for subscribers that publish changes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Arc<T>>> {
        self.updates.subscribe()
    }

    /// The cached value if younger than `ttl` (`None`: always fetch), else the result of a
    /// fetch, shared with every caller that asked while it ran.
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled fetch stores nothing and releases the lock; the next waiter
    /// fetches instead.
    pub(crate) async fn get<F, Fut>(
        &self,
        ttl: Option<Duration>,
        fetch: F,
    ) -> Result<Arc<T>, ProxmoxError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ProxmoxError>>,
    {
        let asked = Instant::now();
        if let Some(value) = ttl.and_then(|ttl| self.fresh(ttl)) {
            return Ok(value);
        }
        let _fetching = self.fetch.lock().await;
        let generation = {
            let state = self.state();
            if let Some((result, completed, started_in)) = &state.last {
                if *completed >= asked && *started_in == state.generation {
                    return result.clone();
                }
            }
            state.generation
        };
        let result = fetch().await.map(Arc::new);
        let completed = Instant::now();
        let mut state = self.state();
        if let Ok(value) = &result {
            state.good = Some((Arc::clone(value), completed));
            // A fetch that started before an invalidation may predate the change it announced.
            state.stale = state.generation != generation;
            self.updates.send_replace(Some(Arc::clone(value)));
        }
        state.last = Some((result.clone(), completed, generation));
        result
    }
}

/// Slots by key (a node name). Names come from callers, so the map is bounded.
#[derive(Debug)]
pub(crate) struct Slots<T> {
    slots: Mutex<HashMap<String, Arc<Slot<T>>>>,
}

/// More keys than any cluster has nodes; beyond it idle slots are dropped.
const MAX_KEYS: usize = 256;

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Slots<T> {
    /// The slot for `key`, created empty on first use.
    pub(crate) fn slot(&self, key: &str) -> Arc<Slot<T>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get(key) {
            return Arc::clone(slot);
        }
        if slots.len() >= MAX_KEYS {
            // Only slots nobody is using right now; their values are simply fetched again.
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        let slot = Arc::new(Slot::default());
        slots.insert(key.to_owned(), Arc::clone(&slot));
        slot
    }

    /// Invalidates every slot.
    pub(crate) fn invalidate_all(&self) {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        for slot in slots.values() {
            slot.invalidate();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const TTL: Option<Duration> = Some(Duration::from_secs(60));

    #[tokio::test]
    async fn a_fresh_value_is_served_without_fetching() {
        let slot = Slot::<u32>::default();
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(7)
        };
        assert_eq!(*slot.get(TTL, fetch).await.unwrap(), 7);
        assert_eq!(*slot.get(TTL, fetch).await.unwrap(), 7);
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // No TTL: always fetch.
        slot.get(None, fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        slot.invalidate();
        assert!(slot.fresh(Duration::from_secs(60)).is_none());
        assert!(
            slot.snapshot().is_some(),
            "the last good value stays readable"
        );
        slot.get(TTL, fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_its_error() {
        let slot = Slot::<u32>::default();
        let fetches = AtomicUsize::new(0);
        let (release, released) = tokio::sync::watch::channel(false);
        let fetch = || {
            let mut released = released.clone();
            let fetches = &fetches;
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                let _ = released.wait_for(|r| *r).await;
                Err::<u32, _>(ProxmoxError::Config("down".into()))
            }
        };
        let callers = futures_util::future::join_all((0..5).map(|_| slot.get(TTL, fetch)));
        let release_soon = async {
            tokio::task::yield_now().await;
            let _ = release.send(true);
        };
        let (results, ()) = tokio::join!(callers, release_soon);
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(Result::is_err));
        assert!(slot.snapshot().is_none());
    }

    #[test]
    fn keyed_slots_stay_bounded() {
        let slots = Slots::<u32>::default();
        for i in 0..1000 {
            slots.slot(&format!("node{i}"));
        }
        assert!(slots.slots.lock().unwrap().len() <= MAX_KEYS);
    }
}
