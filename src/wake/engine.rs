//! The wake-word workers: a few threads, each with its own ONNX sessions, shared by every stream.
//!
//! A stream's state travels with its job: the flow sends its [`Stream`] and the new whole steps
//! of audio, a worker computes them and sends the state back with what it found. So a stream has
//! at most one job in flight, sessions are never locked, and any worker can serve any stream.
//! Model inference never runs on the async runtime.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tracing::debug;

use super::detector::{Detector, Settings};
use super::pipeline::{Features, Frontend, STEP_SAMPLES, Sessions};
use crate::workers::Workers;

/// One stream's state: front end, detectors, and (for tests and benchmarks) its scores.
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    pub(crate) features: Features,
    pub(crate) detectors: Vec<Detector>,
    /// Every score, step after step, detector after detector, when asked for.
    pub(crate) scores: Option<Vec<f32>>,
}

/// What a detector found in a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    /// Wake word index.
    pub(crate) word: usize,
    /// The step it was heard in (0-based).
    pub(crate) step: u64,
}

/// A finished job.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) stream: Box<Stream>,
    /// The sample buffer, empty, for reuse.
    pub(crate) buffer: Vec<f32>,
    pub(crate) hits: Vec<Hit>,
    pub(crate) error: Option<String>,
}

/// A job the queue did not take: the stream and samples come back, with why.
pub(crate) struct Refused {
    pub(crate) stream: Box<Stream>,
    pub(crate) samples: Vec<f32>,
    pub(crate) why: &'static str,
}

struct Job {
    stream: Box<Stream>,
    samples: Vec<f32>,
    reply: oneshot::Sender<Done>,
}

/// Counters of the workers' work.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// 80 ms steps computed, all streams together.
    pub steps: AtomicU64,
    /// Detections, all streams together.
    pub detections: AtomicU64,
    /// Jobs run.
    pub jobs: AtomicU64,
}

/// The worker pool.
#[derive(Debug)]
pub(crate) struct Engine {
    jobs: SyncSender<Job>,
    frontend: Arc<Frontend>,
    stats: Arc<EngineStats>,
    /// After `jobs`: the threads are joined once the queue is closed (none is inside ONNX
    /// Runtime when the process exits).
    threads: Workers,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.threads.stop();
    }
}

impl Engine {
    /// Starts one worker per set of sessions. `queue` bounds the jobs waiting (a stream has at
    /// most one job in flight, so the number of streams served at once is enough).
    ///
    /// # Errors
    /// A worker thread that does not start.
    pub(crate) fn start(
        frontend: Arc<Frontend>,
        workers: Vec<Sessions>,
        settings: Settings,
        queue: usize,
    ) -> Result<Self, String> {
        let (jobs, receiver) = std::sync::mpsc::sync_channel::<Job>(queue.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        let stats = Arc::new(EngineStats::default());
        let mut threads = Workers::new();
        for (index, sessions) in workers.into_iter().enumerate() {
            let worker = Worker {
                frontend: Arc::clone(&frontend),
                sessions,
                settings,
                stats: Arc::clone(&stats),
            };
            let receiver = Arc::clone(&receiver);
            threads
                .spawn(format!("wake-{index}"), move || {
                    // Below requests, above decodes and synthesis (src/priority.rs).
                    crate::priority::lower_current_thread_to(crate::priority::stream_nice());
                    worker.run(&receiver);
                })
                .map_err(|err| format!("cannot start a wake-word worker: {err}"))?;
        }
        Ok(Self {
            jobs,
            frontend,
            stats,
            threads,
        })
    }

    /// What the workers have done.
    pub(crate) fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The shared front-end description.
    pub(crate) fn frontend(&self) -> &Frontend {
        &self.frontend
    }

    /// A fresh stream listening for `words`.
    pub(crate) fn stream(&self, words: &[usize], record_scores: bool) -> Box<Stream> {
        Box::new(Stream {
            features: self.frontend.features(),
            detectors: words.iter().map(|&word| Detector::new(word)).collect(),
            scores: record_scores.then(Vec::new),
        })
    }

    /// Queues `samples` (whole steps) of `stream`.
    ///
    /// # Errors
    /// The queue is full or the workers are gone; the stream and buffer come back with it.
    pub(crate) fn submit(
        &self,
        stream: Box<Stream>,
        samples: Vec<f32>,
    ) -> Result<oneshot::Receiver<Done>, Refused> {
        let (reply, receiver) = oneshot::channel();
        let refused = |job: Job, why| Refused {
            stream: job.stream,
            samples: job.samples,
            why,
        };
        match self.jobs.try_send(Job {
            stream,
            samples,
            reply,
        }) {
            Ok(()) => Ok(receiver),
            Err(TrySendError::Full(job)) => Err(refused(job, "wake-word queue full")),
            Err(TrySendError::Disconnected(job)) => Err(refused(job, "wake-word workers stopped")),
        }
    }
}

struct Worker {
    frontend: Arc<Frontend>,
    sessions: Sessions,
    settings: Settings,
    stats: Arc<EngineStats>,
}

impl Worker {
    fn run(mut self, receiver: &Mutex<Receiver<Job>>) {
        loop {
            // Hold the lock only to take a job, never while computing.
            let job = match receiver.lock() {
                Ok(receiver) => receiver.recv(),
                Err(_) => return,
            };
            let Ok(job) = job else {
                debug!("wake-word worker stopping");
                return;
            };
            let Job {
                mut stream,
                mut samples,
                reply,
            } = job;
            let (hits, error) = self.compute(&mut stream, &samples);
            self.stats.jobs.fetch_add(1, Ordering::Relaxed);
            samples.clear();
            // The flow may be gone (client left): nothing to do then.
            let _ = reply.send(Done {
                stream,
                buffer: samples,
                hits,
                error,
            });
        }
    }

    fn compute(&mut self, stream: &mut Stream, samples: &[f32]) -> (Vec<Hit>, Option<String>) {
        let mut hits = Vec::new();
        for step_samples in samples.chunks_exact(STEP_SAMPLES) {
            if let Err(err) = stream
                .features
                .step(&self.frontend, &mut self.sessions, step_samples)
            {
                return (hits, Some(err));
            }
            self.stats.steps.fetch_add(1, Ordering::Relaxed);
            let step = stream.features.steps - 1;
            for detector in &mut stream.detectors {
                let raw =
                    match stream
                        .features
                        .score(&self.frontend, &mut self.sessions, detector.word)
                    {
                        Ok(raw) => raw,
                        Err(err) => return (hits, Some(err)),
                    };
                let (score, detected) = detector.update(step, raw, &self.settings);
                if let Some(scores) = &mut stream.scores {
                    scores.push(score);
                }
                if detected {
                    self.stats.detections.fetch_add(1, Ordering::Relaxed);
                    hits.push(Hit {
                        word: detector.word,
                        step,
                    });
                }
            }
        }
        (hits, None)
    }
}
