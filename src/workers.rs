//! Threads that serve a job queue, stopped and joined when their owner is dropped.
//!
//! A thread still inside whisper.cpp or ONNX Runtime when the process exits can crash it: `exit`
//! runs the C++ libraries' static destructors while the thread computes (a SIGTERM during a
//! decode ended in SIGSEGV). So an engine keeps its threads in a [`Workers`], declared after the
//! queue's sender: when the engine is dropped the sender goes first (the threads' `recv` ends
//! once the queue is empty), then [`Workers`] waits for them. Call [`Workers::stop`] first (in
//! the engine's own `Drop`) so that jobs still queued are skipped rather than computed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use tracing::warn;

/// The threads of one engine; joined on drop.
#[derive(Debug, Default)]
pub struct Workers {
    handles: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
}

impl Workers {
    /// No threads yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a thread named `name` running `body`.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn spawn(
        &mut self,
        name: String,
        body: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = std::thread::Builder::new().name(name).spawn(body)?;
        self.handles.push(handle);
        Ok(())
    }

    /// A flag the threads read: set once the owner is going away (skip queued jobs then).
    pub fn stopping(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stopping)
    }

    /// Tells the threads that their owner is going away.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
        let me = std::thread::current().id();
        for handle in self.handles.drain(..) {
            // An engine dropped by its own thread (never today) must not wait for itself.
            if handle.thread().id() == me {
                continue;
            }
            let name = handle.thread().name().unwrap_or("worker").to_owned();
            if handle.join().is_err() {
                warn!(thread = %name, "a worker thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn dropping_waits_for_the_threads_and_skips_queued_jobs() {
        struct Owner {
            jobs: Option<mpsc::SyncSender<u32>>,
            workers: Workers,
        }
        let (jobs, receiver) = mpsc::sync_channel::<u32>(8);
        let done = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut workers = Workers::new();
        let stopping = workers.stopping();
        let seen = Arc::clone(&done);
        workers
            .spawn("test-worker".into(), move || {
                while let Ok(job) = receiver.recv() {
                    if stopping.load(Ordering::Relaxed) {
                        continue;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    seen.lock().unwrap().push(job);
                }
            })
            .unwrap();
        let mut owner = Owner {
            jobs: Some(jobs),
            workers,
        };
        for job in 0..4 {
            owner.jobs.as_ref().unwrap().send(job).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        owner.workers.stop();
        owner.jobs = None;
        drop(owner);
        // The job under way finished; the queued ones were skipped; the thread is gone.
        assert_eq!(*done.lock().unwrap(), vec![0]);
    }
}
