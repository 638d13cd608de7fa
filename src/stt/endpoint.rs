//! Our own endpointing: Silero VAD (whisper.cpp's port) finds where speech stops, so the
//! transcript can go out without waiting for the client's `audio-stop`.
//!
//! Silero is a streaming model: its LSTM state carries what it heard so far. Each stream's first
//! call starts from a fresh state and every later call goes on from the last one's (patched
//! whisper.cpp, `whisper_vad_jarvis_detect_speech_on`), so each chunk runs only its new
//! windows. (Upstream resets the state on every call; re-running 0.5 s of context per chunk to
//! warm it cost ~2 ms of CPU per 64 ms chunk, nine times the new windows' cost, on the thread
//! that shares the cores with the decode.)
//!
//! The endpointer reports a [`Vad::Pause`] at the first silent window after speech (the STT flow
//! starts a speculative decode there), [`Vad::Quiet`] once the silence is long enough for a
//! homelab command the brain resolves, [`Vad::Lull`] once it is long enough for any whole
//! sentence, and [`Vad::End`] once it is long enough for any command.
//! Speech after a pause reports [`Vad::Resume`], and the speculative work is thrown away.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use whisper_rs::{WhisperVadContext, WhisperVadContextParams};

use super::SttError;

/// The `jarvis models pull` name of the VAD model.
const VAD_PULL_NAME: &str = "whisper-vad-silero-v6.2.0";

/// Silero's window: 512 samples at 16 kHz (32 ms).
pub const WINDOW: usize = 512;
/// Speech probability below which a window counts as a dip (see [`Vad::Dip`]).
pub const DIP_PROBABILITY: f32 = 0.95;

/// Endpointing thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointConfig {
    /// Speech probability at or above which a window is speech.
    pub threshold: f32,
    /// Speech needed before an end can be reported, in ms.
    pub min_speech_ms: u32,
    /// Silence after speech that ends a homelab command the brain resolves, in ms.
    pub min_silence_ms: u32,
    /// Silence after speech that ends any whole sentence, in ms.
    pub sentence_silence_ms: u32,
    /// Silence after speech that ends any command, in ms.
    pub max_silence_ms: u32,
}

impl From<&crate::config::VadConfig> for EndpointConfig {
    /// The thresholds `[stt.vad]` sets.
    fn from(vad: &crate::config::VadConfig) -> Self {
        Self {
            threshold: vad.threshold,
            min_speech_ms: vad.min_speech_ms,
            min_silence_ms: vad.min_silence_ms,
            sentence_silence_ms: vad.sentence_silence_ms,
            max_silence_ms: vad.max_silence_ms,
        }
    }
}

impl EndpointConfig {
    fn windows(ms: u32) -> usize {
        (ms as usize * 16).div_ceil(WINDOW)
    }
}

/// What the endpointer saw in newly processed audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vad {
    /// Speech began (first time only), at this sample.
    Start(usize),
    /// The first silent window after speech; speech so far ends at this sample.
    Pause(usize),
    /// Speech again after a pause.
    Resume,
    /// The speech probability fell below [`DIP_PROBABILITY`]: speech may be ending. Audio up to
    /// this sample may already hold all of it.
    Dip(usize),
    /// The probability rose again after a dip, without a pause: speech goes on.
    Rise,
    /// The silence has lasted `min_silence_ms`: the end, if the words so far are a homelab
    /// command the brain resolves ([`super::Completeness::Command`]).
    Quiet,
    /// The silence has lasted `sentence_silence_ms`: the end, if the words so far are any whole
    /// sentence ([`super::Completeness::Sentence`]).
    Lull,
    /// The silence has lasted `max_silence_ms`: the command is over, whatever the words; speech
    /// ended at this sample. Speech after it reports [`Vad::Resume`] and may be judged again.
    End(usize),
}

/// What a batch of window events amounts to: a pause that ended within the batch, and a dip the
/// probability rose from within it, are dropped with everything between, so the flow does not
/// start and throw away a decode for each.
fn net_effect(events: Vec<Vad>) -> Vec<Vad> {
    let mut out: Vec<Vad> = Vec::with_capacity(events.len());
    for event in events {
        match event {
            Vad::Resume => {
                if let Some(at) = out.iter().rposition(|e| matches!(e, Vad::Pause(_))) {
                    out.truncate(at);
                    if matches!(out.last(), Some(Vad::Dip(_))) {
                        out.pop();
                    }
                    continue;
                }
            }
            Vad::Rise => {
                if let Some(at) = out.iter().rposition(|e| matches!(e, Vad::Dip(_))) {
                    out.truncate(at);
                    continue;
                }
            }
            _ => {}
        }
        out.push(event);
    }
    out
}

/// Shared Silero contexts: loading one costs a file read, so sessions borrow and return them.
#[derive(Debug)]
pub struct VadPool {
    path: PathBuf,
    idle: Mutex<Vec<WhisperVadContext>>,
}

impl VadPool {
    /// Checks the model loads, and keeps that context for the first session.
    ///
    /// # Errors
    /// [`SttError::ModelMissing`] or [`SttError::ModelLoad`] naming the file.
    pub fn load(path: &Path) -> Result<Self, SttError> {
        let context = new_context(path)?;
        Ok(Self {
            path: path.to_owned(),
            idle: Mutex::new(vec![context]),
        })
    }

    fn take(&self) -> Result<WhisperVadContext, SttError> {
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match reused {
            Some(context) => Ok(context),
            None => new_context(&self.path),
        }
    }

    fn give_back(&self, context: WhisperVadContext) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(context);
        }
    }
}

fn new_context(path: &Path) -> Result<WhisperVadContext, SttError> {
    let missing = || SttError::ModelMissing {
        name: "silero-vad".into(),
        path: path.to_owned(),
        pull: VAD_PULL_NAME.into(),
    };
    if !path.is_file() {
        return Err(missing());
    }
    // whisper-rs panics on a NUL in the path; a real path never has one.
    let path_str = path
        .to_str()
        .filter(|p| !p.contains('\0'))
        .ok_or_else(missing)?;
    let mut params = WhisperVadContextParams::new();
    params.set_n_threads(1);
    WhisperVadContext::new(path_str, params).map_err(|err| SttError::ModelLoad {
        name: "silero-vad".into(),
        path: path.to_owned(),
        cause: err.to_string(),
        pull: VAD_PULL_NAME.into(),
    })
}

/// Finds the end of speech in a growing 16 kHz stream.
pub struct Endpointer {
    pool: Arc<VadPool>,
    context: Option<WhisperVadContext>,
    config: EndpointConfig,
    /// Windows processed so far.
    next: usize,
    speech_windows: usize,
    /// Window index just after the last speech window.
    speech_end: Option<usize>,
    silent_run: usize,
    /// The window where the current dip began: the short silence counts from there.
    dip_start: Option<usize>,
    /// [`Vad::Quiet`] was reported for the current pause.
    quiet_sent: bool,
    /// [`Vad::Lull`] was reported for the current pause.
    lull_sent: bool,
    /// [`Vad::End`] was reported for the current pause.
    end_sent: bool,
    paused: bool,
    dipped: bool,
}

impl std::fmt::Debug for Endpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpointer")
            .field("next", &self.next)
            .field("speech_end", &self.speech_end)
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

impl Drop for Endpointer {
    fn drop(&mut self) {
        if let Some(context) = self.context.take() {
            self.pool.give_back(context);
        }
    }
}

impl Endpointer {
    /// An endpointer with a context from `pool`.
    ///
    /// # Errors
    /// When a new context cannot be loaded.
    pub fn new(pool: Arc<VadPool>, config: EndpointConfig) -> Result<Self, SttError> {
        Ok(Self {
            context: Some(pool.take()?),
            pool,
            config,
            next: 0,
            speech_windows: 0,
            speech_end: None,
            silent_run: 0,
            dip_start: None,
            quiet_sent: false,
            lull_sent: false,
            end_sent: false,
            paused: false,
            dipped: false,
        })
    }

    /// Runs VAD over every whole window of `samples` not seen yet, in one call, and returns
    /// what happened. [`Vad::Quiet`] and [`Vad::End`] are judged on the state after the last
    /// window, so speech anywhere in the new audio keeps the command open; a pause that began
    /// and ended within the new audio is not reported at all.
    ///
    /// # Errors
    /// When whisper.cpp's VAD fails.
    pub fn update(&mut self, samples: &[f32]) -> Result<Vec<Vad>, SttError> {
        let available = samples.len() / WINDOW;
        if available <= self.next {
            return Ok(Vec::new());
        }
        let Some(context) = self.context.as_mut() else {
            return Ok(Vec::new());
        };
        let new_windows = &samples[self.next * WINDOW..available * WINDOW];
        // The model's state goes on from the last call's: only the new windows are run.
        let run = if self.next == 0 {
            context.detect_speech(new_windows)
        } else {
            context.detect_speech_on(new_windows)
        };
        run.map_err(|err| SttError::Decode(format!("voice activity detection failed: {err}")))?;
        let new = context.probabilities().to_vec();
        let mut events = Vec::new();
        for (offset, prob) in new.into_iter().enumerate() {
            self.window(self.next + offset, prob, &mut events);
        }
        self.next = available;
        self.judge_silence(&mut events);
        Ok(net_effect(events))
    }

    /// Samples the endpointer has looked at.
    pub fn seen(&self) -> usize {
        self.next * WINDOW
    }

    /// [`Vad::Quiet`], [`Vad::Lull`] and [`Vad::End`] for the silence the last window ends,
    /// each once a pause.
    fn judge_silence(&mut self, events: &mut Vec<Vad>) {
        let Some(speech_end) = self.speech_end.filter(|_| self.paused) else {
            return;
        };
        let min_silence = EndpointConfig::windows(self.config.min_silence_ms);
        let sentence_silence =
            EndpointConfig::windows(self.config.sentence_silence_ms).max(min_silence);
        let max_silence = EndpointConfig::windows(self.config.max_silence_ms).max(sentence_silence);
        // Silero stays above the threshold for a window or two after the voice stops, so the
        // short silence counts from the dip that began the pause when there was one.
        let quiet_for = self
            .dip_start
            .map_or(self.silent_run, |dip| self.next - dip)
            .max(self.silent_run);
        if !self.quiet_sent && quiet_for >= min_silence {
            self.quiet_sent = true;
            events.push(Vad::Quiet);
        }
        if !self.lull_sent && quiet_for >= sentence_silence {
            self.lull_sent = true;
            events.push(Vad::Lull);
        }
        if !self.end_sent && self.silent_run >= max_silence {
            self.end_sent = true;
            events.push(Vad::End(speech_end * WINDOW));
        }
    }

    fn window(&mut self, index: usize, prob: f32, events: &mut Vec<Vad>) {
        tracing::trace!(index, prob, "vad window");
        let speech = prob >= self.config.threshold;
        let min_speech = EndpointConfig::windows(self.config.min_speech_ms);
        // Silero's probability falls a window or two before it crosses the threshold at the end
        // of speech; a dip is the earliest moment a speculative decode can start.
        if self.speech_windows >= min_speech && !self.paused {
            if !self.dipped && prob < DIP_PROBABILITY {
                self.dipped = true;
                self.dip_start = Some(index);
                events.push(Vad::Dip((index + 1) * WINDOW));
            } else if self.dipped && prob >= DIP_PROBABILITY {
                self.dipped = false;
                self.dip_start = None;
                events.push(Vad::Rise);
            }
        }
        if speech {
            self.speech_windows += 1;
            if self.speech_windows == 1 {
                events.push(Vad::Start(index * WINDOW));
            }
            self.speech_end = Some(index + 1);
            self.silent_run = 0;
            if self.paused {
                self.paused = false;
                self.dipped = false;
                self.dip_start = None;
                self.quiet_sent = false;
                self.lull_sent = false;
                self.end_sent = false;
                events.push(Vad::Resume);
            }
            return;
        }
        let Some(speech_end) = self.speech_end else {
            return;
        };
        if self.speech_windows < min_speech {
            return;
        }
        self.silent_run += 1;
        if !self.paused {
            self.paused = true;
            events.push(Vad::Pause(speech_end * WINDOW));
        }
    }
}
