//! The openWakeWord pipeline, step by step, as the reference library computes it.
//!
//! Every 80 ms (1280 samples at 16 kHz, int16 magnitudes as `f32`, not scaled to ±1):
//! 1. `melspectrogram.onnx` runs on the last 1280 + 480 samples (only 1280 on the first step)
//!    and gives 8 mel frames (5 on the first step), transformed by `x / 10 + 2`;
//! 2. `embedding_model.onnx` turns the last 76 mel frames into one 96-value embedding, here
//!    incrementally (see [`super::streaming`]): only the 8 new frames go in, with the stream's
//!    cached rows;
//! 3. each wake word's classifier scores the last 16 embeddings.
//!
//! The start-up state is the reference's too: the mel history is 76 frames of ones and the
//! embedding history is that of 10 s of digital silence. The front end (steps 1 and 2) runs
//! once per step for every wake word of the stream.
//!
//! Design: [`Features`] holds one stream's state (about 52 kB, fixed size, whatever the length
//! of the stream); [`Sessions`] holds one worker's ONNX sessions, shared by every stream that
//! worker serves; [`Frontend`] holds what is the same for everyone.

use ort::session::{Session, SessionInputValue, SessionOutputs};
use ort::value::TensorRef;

use super::streaming::StreamingModel;

/// Samples per step (80 ms at 16 kHz).
pub(crate) const STEP_SAMPLES: usize = 1280;
/// Samples before a step that the mel spectrogram also sees (3 frames of 10 ms).
const MEL_CONTEXT: usize = 480;
/// Mel frames per step.
const MEL_FRAMES_PER_STEP: usize = 8;
/// Samples of digital silence behind the start-up embeddings (openWakeWord: 10 s).
const SILENCE_SAMPLES: usize = 160_000;

/// How embeddings are computed.
#[derive(Debug, Clone)]
pub(crate) enum Embedder {
    /// The incremental graph: 8 new frames and the cached rows.
    Streaming(StreamingModel),
    /// The model as published, on the whole 76-frame window (the fallback).
    Full,
}

/// What every stream shares: model geometry and start-up state.
#[derive(Debug)]
pub(crate) struct Frontend {
    pub(crate) embedder: Embedder,
    /// Mel frames in the embedding window (76).
    pub(crate) window: usize,
    /// Mel bins (32).
    pub(crate) bins: usize,
    /// Values per embedding (96).
    pub(crate) dim: usize,
    /// Embeddings each classifier reads, by wake word.
    pub(crate) classifier_frames: Vec<usize>,
    /// Cache rows of a fresh stream (the state after a history of ones).
    initial_caches: Vec<f32>,
    /// Embedding history of a fresh stream.
    initial_embeddings: Vec<f32>,
}

/// One worker's sessions.
#[derive(Debug)]
pub(crate) struct Sessions {
    pub(crate) mel: Session,
    pub(crate) embedding: Session,
    /// One per wake word, in the service's order.
    pub(crate) classifiers: Vec<Session>,
}

/// One stream's front-end state.
#[derive(Debug, Clone)]
pub(crate) struct Features {
    /// The last `STEP_SAMPLES + MEL_CONTEXT` samples.
    audio: Vec<f32>,
    /// The last mel frames the embedder reads (8 when streaming, 76 otherwise), oldest first.
    mel: Vec<f32>,
    /// The incremental embedder's cached rows, cache after cache.
    caches: Vec<f32>,
    /// The last `history` embeddings, oldest first.
    embeddings: Vec<f32>,
    /// Steps computed.
    pub(crate) steps: u64,
}

fn ort_error(what: &str) -> impl Fn(ort::Error) -> String + '_ {
    move |err| format!("{what}: {err}")
}

impl Frontend {
    /// Works out the start-up state with the worker-0 `sessions` and, when streaming, checks
    /// the incremental embedder against the full model (`full`); a mismatch falls back to
    /// `full`, which then replaces `sessions.embedding`.
    ///
    /// # Errors
    /// A model that does not run.
    pub(crate) fn new(
        sessions: &mut Sessions,
        embedder: Embedder,
        mut full: Option<Session>,
        window: usize,
        bins: usize,
        classifier_frames: Vec<usize>,
    ) -> Result<(Self, Option<Session>), String> {
        let history = classifier_frames.iter().copied().max().unwrap_or(1).max(1);
        // Start-up embeddings: openWakeWord embeds 10 s of silence, windows every 8 frames.
        let silence = vec![0.0f32; SILENCE_SAMPLES];
        let mel = run_mel(&mut sessions.mel, &silence)?;
        let frames = mel.len() / bins;
        let starts: Vec<usize> = (0..frames)
            .step_by(MEL_FRAMES_PER_STEP)
            .filter(|start| start + window <= frames)
            .collect();
        let last = &starts[starts.len().saturating_sub(history)..];
        let mut batch = Vec::with_capacity(last.len() * window * bins);
        for &start in last {
            batch.extend_from_slice(&mel[start * bins..(start + window) * bins]);
        }
        let full_session = match full.as_mut() {
            Some(session) => session,
            None if matches!(embedder, Embedder::Full) => &mut sessions.embedding,
            None => return Err("the full embedding model is needed".into()),
        };
        let embeddings = run_embedding_full(full_session, &batch, last.len(), window, bins)?;
        let dim = embeddings.len() / last.len().max(1);
        if dim == 0 || last.len() < history {
            return Err("the embedding model gave no output for the start-up silence".into());
        }
        let mut frontend = Self {
            embedder: embedder.clone(),
            window,
            bins,
            dim,
            classifier_frames,
            initial_caches: Vec::new(),
            initial_embeddings: embeddings,
        };
        let checked = match (&embedder, full.as_mut()) {
            (Embedder::Streaming(model), Some(full_session)) => {
                frontend.prime_and_check(&mut sessions.embedding, full_session, model)
            }
            _ => Ok(()),
        };
        if let Err(problem) = checked {
            tracing::warn!(
                %problem,
                "incremental embedding does not match the model; using the full model \
                 (about 5 times the CPU per stream)"
            );
            frontend.embedder = Embedder::Full;
            frontend.initial_caches.clear();
            if let Some(session) = full.take() {
                sessions.embedding = session;
            }
        }
        Ok((frontend, full))
    }

    /// Feeds the incremental embedder a history of ones until its caches hold the state the
    /// reference's start-up mel buffer implies, then checks a few steps of varied input against
    /// the full model.
    fn prime_and_check(
        &mut self,
        streaming: &mut Session,
        full: &mut Session,
        model: &StreamingModel,
    ) -> Result<(), String> {
        let ones = vec![1.0f32; MEL_FRAMES_PER_STEP * self.bins];
        let mut caches: Vec<f32> = model
            .caches
            .iter()
            .flat_map(|c| vec![0.0; c.len()])
            .collect();
        // Every cached row depends on at most `window` frames: after that many ones the caches
        // no longer depend on their (zero) start.
        for _ in 0..=self.window.div_ceil(MEL_FRAMES_PER_STEP) {
            run_embedding_step(streaming, model, &ones, &mut caches)?;
        }
        self.initial_caches = caches.clone();
        // Varied frames, deterministic: the window is ones followed by them.
        let mut history = vec![1.0f32; self.window * self.bins];
        let mut seed = 0x2545_f491_u32;
        for _ in 0..4 {
            let frames: Vec<f32> = (0..MEL_FRAMES_PER_STEP * self.bins)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    (seed % 4000) as f32 / 1000.0 - 1.0
                })
                .collect();
            history.drain(..frames.len());
            history.extend_from_slice(&frames);
            let step = run_embedding_step(streaming, model, &frames, &mut caches)?;
            let reference = run_embedding_full(full, &history, 1, self.window, self.bins)?;
            let diff = step
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            if step.len() != reference.len() || diff > 1e-3 {
                return Err(format!("largest difference {diff}"));
            }
        }
        Ok(())
    }

    /// Whether embeddings are computed incrementally.
    pub(crate) fn is_streaming(&self) -> bool {
        matches!(self.embedder, Embedder::Streaming(_))
    }

    /// A fresh stream.
    pub(crate) fn features(&self) -> Features {
        let mel_frames = match self.embedder {
            Embedder::Streaming(_) => MEL_FRAMES_PER_STEP,
            Embedder::Full => self.window,
        };
        Features {
            audio: Vec::with_capacity(STEP_SAMPLES + MEL_CONTEXT),
            mel: vec![1.0; mel_frames * self.bins],
            caches: self.initial_caches.clone(),
            embeddings: self.initial_embeddings.clone(),
            steps: 0,
        }
    }
}

impl Features {
    /// Bytes of state this stream holds (what does not grow with the stream's length).
    pub(crate) fn memory_bytes(&self) -> usize {
        (self.audio.capacity() + self.mel.len() + self.caches.len() + self.embeddings.len())
            * std::mem::size_of::<f32>()
    }

    /// Computes one step from 1280 new samples.
    ///
    /// # Errors
    /// ONNX Runtime failures.
    pub(crate) fn step(
        &mut self,
        frontend: &Frontend,
        sessions: &mut Sessions,
        samples: &[f32],
    ) -> Result<(), String> {
        self.audio.extend_from_slice(samples);
        let excess = self.audio.len().saturating_sub(STEP_SAMPLES + MEL_CONTEXT);
        self.audio.drain(..excess);
        let mut mel = run_mel(&mut sessions.mel, &self.audio)?;
        // Only the newest frames if the spectrogram gave more than the history holds.
        let keep = mel.len().min(self.mel.len());
        mel.drain(..mel.len() - keep);
        self.mel.drain(..keep);
        self.mel.extend_from_slice(&mel);
        let embedding = match &frontend.embedder {
            Embedder::Streaming(model) => {
                let start = self.mel.len() - MEL_FRAMES_PER_STEP * frontend.bins;
                run_embedding_step(
                    &mut sessions.embedding,
                    model,
                    &self.mel[start..],
                    &mut self.caches,
                )?
            }
            Embedder::Full => run_embedding_full(
                &mut sessions.embedding,
                &self.mel,
                1,
                frontend.window,
                frontend.bins,
            )?,
        };
        if embedding.len() != frontend.dim {
            return Err(format!(
                "embedding of {} values, expected {}",
                embedding.len(),
                frontend.dim
            ));
        }
        self.embeddings.drain(..frontend.dim);
        self.embeddings.extend_from_slice(&embedding);
        self.steps += 1;
        Ok(())
    }

    /// The score of classifier `word` on the current embeddings.
    ///
    /// # Errors
    /// ONNX Runtime failures.
    pub(crate) fn score(
        &self,
        frontend: &Frontend,
        sessions: &mut Sessions,
        word: usize,
    ) -> Result<f32, String> {
        let frames = frontend.classifier_frames.get(word).copied().unwrap_or(0);
        let session = sessions
            .classifiers
            .get_mut(word)
            .ok_or("no such wake word")?;
        let start = self.embeddings.len().saturating_sub(frames * frontend.dim);
        let input =
            TensorRef::from_array_view(([1usize, frames, frontend.dim], &self.embeddings[start..]))
                .map_err(ort_error("classifier input"))?;
        let outputs = session
            .run(ort::inputs![input])
            .map_err(ort_error("classifier"))?;
        let scores = tensor(&outputs, 0, "classifier output")?;
        scores
            .first()
            .copied()
            .ok_or_else(|| "classifier gave no score".into())
    }
}

/// Output `index` as `f32` values.
fn tensor<'a>(
    outputs: &'a SessionOutputs<'_>,
    index: usize,
    what: &str,
) -> Result<&'a [f32], String> {
    if index >= outputs.len() {
        return Err(format!(
            "{what}: the model has only {} outputs",
            outputs.len()
        ));
    }
    let (_, values) = outputs[index]
        .try_extract_tensor::<f32>()
        .map_err(ort_error(what))?;
    Ok(values)
}

/// Mel frames of `samples`, transformed as openWakeWord does, frame after frame.
fn run_mel(session: &mut Session, samples: &[f32]) -> Result<Vec<f32>, String> {
    let input = TensorRef::from_array_view(([1usize, samples.len()], samples))
        .map_err(ort_error("mel input"))?;
    let outputs = session
        .run(ort::inputs![input])
        .map_err(ort_error("melspectrogram"))?;
    let mel = tensor(&outputs, 0, "mel output")?;
    Ok(mel.iter().map(|x| x / 10.0 + 2.0).collect())
}

/// Embeddings of `count` whole windows with the published model.
fn run_embedding_full(
    session: &mut Session,
    windows: &[f32],
    count: usize,
    window: usize,
    bins: usize,
) -> Result<Vec<f32>, String> {
    let input = TensorRef::from_array_view(([count, window, bins, 1], windows))
        .map_err(ort_error("embedding input"))?;
    let outputs = session
        .run(ort::inputs![input])
        .map_err(ort_error("embedding"))?;
    Ok(tensor(&outputs, 0, "embedding output")?.to_vec())
}

/// One incremental step: the new frames in, the embedding out, `caches` updated in place.
fn run_embedding_step(
    session: &mut Session,
    model: &StreamingModel,
    frames: &[f32],
    caches: &mut [f32],
) -> Result<Vec<f32>, String> {
    let mut inputs: Vec<SessionInputValue<'_>> = Vec::with_capacity(model.caches.len() + 1);
    inputs.push(
        TensorRef::from_array_view(([1usize, MEL_FRAMES_PER_STEP, model.bins, 1], frames))
            .map_err(ort_error("embedding input"))?
            .into(),
    );
    let mut offset = 0;
    for cache in &model.caches {
        let rows = caches
            .get(offset..offset + cache.len())
            .ok_or("cache state of the wrong size")?;
        inputs.push(
            TensorRef::from_array_view((cache.shape, rows))
                .map_err(ort_error("cache input"))?
                .into(),
        );
        offset += cache.len();
    }
    let outputs = session
        .run(&inputs[..])
        .map_err(ort_error("incremental embedding"))?;
    let embedding = tensor(&outputs, 0, "embedding output")?.to_vec();
    let mut offset = 0;
    for (index, cache) in model.caches.iter().enumerate() {
        let rows = tensor(&outputs, index + 1, "cache output")?;
        let target = caches
            .get_mut(offset..offset + cache.len())
            .ok_or("cache state of the wrong size")?;
        if rows.len() != target.len() {
            return Err(format!(
                "cache {index}: {} values, expected {}",
                rows.len(),
                target.len()
            ));
        }
        target.copy_from_slice(rows);
        offset += cache.len();
    }
    Ok(embedding)
}
