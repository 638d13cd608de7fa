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
//! The endpointer reports a [`Vad::Dip`] where speech may be ending: Silero's probability falls, or
//! the window has no voice in it at all (its energy 30 dB below the loudest speech so far; Silero's
//! probability lags the voice's end by a window or two, the energy does not). The STT flow starts a
//! speculative decode there. It reports a [`Vad::Pause`] at the first silent window after speech (a
//! new speculative decode starts there unless the one at the dip holds every window with voice;
//! a voice that decays into silence ends within its first faded window),
//! [`Vad::Quiet`] once the silence (counted from Silero's dip, or from the voice's end when every
//! window since has no sound of speech) is long enough for a homelab command the brain resolves,
//! [`Vad::Lull`] once it is long enough for any whole sentence, and [`Vad::End`] once it is long
//! enough for any command.
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
/// A window this far (in amplitude; 30 dB) below the loudest speech window so far may be where
/// the voice has stopped (a [`Vad::Dip`]): Silero's probability lags the voice's end by a
/// window or two, the energy does not. It may also be a soft sound that ends a word (the "s" of
/// "Americans" in `jfk.wav` is ~30 dB down), so such windows count as speech until Silero says
/// otherwise. Background noise louder than this (a noisy room) never dips, so there only
/// Silero tells.
pub const FADING_BELOW_LOUDEST: f32 = 0.0316;
/// A window this far (45 dB) below the loudest speech window so far has no sound of speech
/// in it: speech ended before a run of such windows, whatever Silero's probability.
pub const SILENT_BELOW_LOUDEST: f32 = 0.0056;

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
    /// The first silent window after speech; speech so far ends at this sample (where the
    /// voice stopped, when every window since had none: Silero's windows lag it; within the
    /// first window it faded through, when it decayed into that silence).
    Pause(usize),
    /// Speech again after a pause.
    Resume,
    /// The speech probability fell below [`DIP_PROBABILITY`], or the window has no voice in it
    /// ([`FADING_BELOW_LOUDEST`]): speech may be ending. Audio up to this sample may already
    /// hold all of it.
    Dip(usize),
    /// The probability rose again after a dip, in a window with voice, without a pause: speech
    /// goes on.
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
    /// The window where Silero's probability fell below [`DIP_PROBABILITY`] in the current
    /// dip: the short silence counts from there.
    silero_dip: Option<usize>,
    /// The first of the silent windows ([`SILENT_BELOW_LOUDEST`]) that the last window ends,
    /// after speech.
    silent_from: Option<usize>,
    /// The first of the windows without voice ([`FADING_BELOW_LOUDEST`]) that the last window
    /// ends, after speech.
    fading_from: Option<usize>,
    /// Every window since [`Self::fading_from`] that is not silent was no louder than the one
    /// before it: the voice is decaying, not making a soft sound.
    decaying: bool,
    /// The root mean square of the last window since [`Self::fading_from`].
    faded_last: f32,
    /// The root mean square of the loudest speech window so far.
    loudest: f32,
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
        let context = pool.take()?;
        Ok(Self::with_context(pool, Some(context), config))
    }

    fn with_context(
        pool: Arc<VadPool>,
        context: Option<WhisperVadContext>,
        config: EndpointConfig,
    ) -> Self {
        Self {
            context,
            pool,
            config,
            next: 0,
            speech_windows: 0,
            speech_end: None,
            silent_run: 0,
            silero_dip: None,
            silent_from: None,
            fading_from: None,
            decaying: false,
            faded_last: 0.0,
            loudest: 0.0,
            quiet_sent: false,
            lull_sent: false,
            end_sent: false,
            paused: false,
            dipped: false,
        }
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
        let probabilities = context.probabilities().to_vec();
        let loudness = new_windows.chunks(WINDOW).map(rms);
        Ok(self.windows(probabilities.into_iter().zip(loudness)))
    }

    /// What the next windows, each Silero's speech probability and its root mean square, amount
    /// to.
    fn windows(&mut self, windows: impl Iterator<Item = (f32, f32)>) -> Vec<Vad> {
        let mut events = Vec::new();
        for (prob, rms) in windows {
            self.window(prob, rms, &mut events);
            self.next += 1;
        }
        self.judge_silence(&mut events);
        net_effect(events)
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
        // short silence counts from its dip that began the pause when there was one, or from
        // the first window without sound of speech (45 dB down) when that came earlier: Silero's
        // probability lags the voice's end, the energy does not.
        let voiceless_for = self.silent_from.map_or(0, |from| self.next - from);
        let quiet_for = self
            .silero_dip
            .map_or(self.silent_run, |dip| self.next - dip)
            .max(self.silent_run)
            .max(voiceless_for);
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

    /// Window `self.next`, with Silero's speech probability and its root mean square.
    fn window(&mut self, prob: f32, rms: f32, events: &mut Vec<Vad>) {
        let index = self.next;
        tracing::trace!(index, prob, rms, "vad window");
        let speech = prob >= self.config.threshold;
        let min_speech = EndpointConfig::windows(self.config.min_speech_ms);
        // Before any speech `loudest` is 0, and no window is below it.
        let fading = rms < self.loudest * FADING_BELOW_LOUDEST;
        let silent = rms < self.loudest * SILENT_BELOW_LOUDEST;
        if !fading {
            self.fading_from = None;
        } else {
            if self.fading_from.is_none() {
                self.fading_from = Some(index);
                self.decaying = true;
            } else if !silent && rms > self.faded_last {
                self.decaying = false;
            }
            self.faded_last = rms;
        }
        if silent {
            self.silent_from.get_or_insert(index);
        } else {
            self.silent_from = None;
        }
        // Silero's probability falls a window or two before it crosses the threshold at the end
        // of speech, and the voice's energy a window or two before that; a dip is the earliest
        // moment a speculative decode can start.
        if self.speech_windows >= min_speech && !self.paused {
            let low = prob < DIP_PROBABILITY || fading;
            if !self.dipped && low {
                self.dipped = true;
                events.push(Vad::Dip((index + 1) * WINDOW));
            } else if self.dipped && !low {
                self.dipped = false;
                events.push(Vad::Rise);
            }
            if !self.dipped || prob >= DIP_PROBABILITY {
                self.silero_dip = None;
            } else {
                self.silero_dip.get_or_insert(index);
            }
        }
        if speech {
            if !fading {
                self.loudest = self.loudest.max(rms);
            }
            self.speech_windows += 1;
            if self.speech_windows == 1 {
                events.push(Vad::Start(index * WINDOW));
            }
            self.speech_end = Some(index + 1);
            self.silent_run = 0;
            if self.paused {
                self.paused = false;
                self.dipped = false;
                self.silero_dip = None;
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
            // The silent windows Silero still heard speech in hold none. When the voice
            // decayed into that silence, each window quieter than the one before, the windows
            // after the first faded one are that decay: speech ends within the first one, where
            // the dip cut it. A soft sound that holds or swells before the silence is speech.
            let voice_end = self.silent_from.map_or(speech_end, |silent| {
                let decay = self
                    .fading_from
                    .filter(|_| self.decaying)
                    .map_or(silent, |fading| fading + 1);
                silent.min(decay).min(speech_end)
            });
            events.push(Vad::Pause(voice_end * WINDOW));
        }
    }
}

/// The root mean square of a window's samples.
fn rms(window: &[f32]) -> f32 {
    if window.is_empty() {
        return 0.0;
    }
    (window.iter().map(|s| s * s).sum::<f32>() / window.len() as f32).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event and the windows fed when it was reported, or none.
    type Reported = Option<(usize, Vad)>;

    /// Loudness of speech in the tests, and of a window without voice (46 dB below it).
    const VOICE: f32 = 0.1;
    const SILENT: f32 = 0.0005;

    /// An endpointer without a Silero context, fed each window's speech probability and
    /// loudness by the test, two windows a chunk (1024 samples, as `wyoming-bench` sends them).
    struct Feed {
        endpointer: Endpointer,
        chunk: Vec<(f32, f32)>,
        /// Every event, with the windows fed when it was reported.
        events: Vec<(usize, Vad)>,
    }

    impl Feed {
        /// 20 windows (640 ms) of speech.
        fn after_speech() -> Self {
            let pool = Arc::new(VadPool {
                path: PathBuf::new(),
                idle: Mutex::new(Vec::new()),
            });
            let config = EndpointConfig::from(&crate::config::VadConfig::default());
            let mut feed = Self {
                endpointer: Endpointer::with_context(pool, None, config),
                chunk: Vec::new(),
                events: Vec::new(),
            };
            for _ in 0..20 {
                feed.window(0.999, VOICE);
            }
            feed.events.clear();
            feed
        }

        fn window(&mut self, prob: f32, rms: f32) -> &mut Self {
            self.chunk.push((prob, rms));
            if self.chunk.len() == 2 {
                let events = self.endpointer.windows(self.chunk.drain(..));
                let at = self.endpointer.next;
                self.events.extend(events.into_iter().map(|e| (at, e)));
            }
            self
        }

        fn silence(&mut self, windows: usize, rms: f32) -> &mut Self {
            for _ in 0..windows {
                self.window(0.05, rms);
            }
            self
        }

        /// The first event like `like`, and when it came.
        fn first(&self, like: fn(&Vad) -> bool) -> Reported {
            self.events.iter().copied().find(|(_, e)| like(e))
        }

        /// The first dip and the first pause, each with the windows fed when it came.
        fn dip_and_pause(&self) -> (Reported, Reported) {
            (
                self.first(|e| matches!(e, Vad::Dip(_))),
                self.first(|e| matches!(e, Vad::Pause(_))),
            )
        }

        /// The end of speech as Piper's voices end it: Silero's probability stays high for two
        /// windows after the voice, then falls; every window after the voice at `rms`.
        fn ends_with_silero_late(&mut self, rms: f32) -> &mut Self {
            self.window(0.999, rms).window(0.99, rms);
            self.window(0.3, rms).silence(20, rms)
        }
    }

    #[test]
    fn the_dip_comes_where_the_voice_stops_though_silero_still_hears_speech() {
        // Silero's probability stays high for two windows after the voice stops (Piper's
        // voices end so), then falls.
        let mut feed = Feed::after_speech();
        feed.ends_with_silero_late(SILENT);
        // The dip: the chunk that holds the voice's end, so a speculative decode starts there.
        // Speech ended where the voice did, so that decode holds all of it.
        assert_eq!(
            feed.dip_and_pause(),
            (
                Some((22, Vad::Dip(21 * WINDOW))),
                Some((24, Vad::Pause(20 * WINDOW)))
            )
        );
        // The short silence counts from the voice's end (window 20), not from Silero's dip
        // (window 22): 150 ms later is in the chunk that ends at window 26.
        assert_eq!(feed.first(|e| *e == Vad::Quiet), Some((26, Vad::Quiet)));
        assert!(
            feed.first(|e| *e == Vad::Rise).is_none(),
            "{:?}",
            feed.events
        );
    }

    #[test]
    fn in_noise_only_silero_tells_where_speech_ends() {
        // Noise 20 dB below the voice never dips, and is never silent.
        let noise = VOICE / 10.0;
        let mut feed = Feed::after_speech();
        feed.ends_with_silero_late(noise);
        assert_eq!(
            feed.dip_and_pause(),
            (
                Some((24, Vad::Dip(23 * WINDOW))),
                Some((24, Vad::Pause(22 * WINDOW)))
            )
        );
        // The short silence counts from Silero's dip (window 22).
        assert_eq!(feed.first(|e| *e == Vad::Quiet), Some((28, Vad::Quiet)));
    }

    #[test]
    fn a_silent_window_inside_speech_is_a_dip_that_rises_again() {
        // A stop consonant's closure: one window without voice, then the voice again.
        let mut feed = Feed::after_speech();
        feed.window(0.999, VOICE).window(0.999, SILENT);
        feed.window(0.999, VOICE).window(0.999, VOICE);
        assert_eq!(
            feed.events,
            vec![(22, Vad::Dip(22 * WINDOW)), (24, Vad::Rise)]
        );
        // Within one chunk, the dip and the rise cancel out: no decode is started for it.
        let mut feed = Feed::after_speech();
        feed.window(0.999, SILENT).window(0.999, VOICE);
        assert!(feed.events.is_empty(), "{:?}", feed.events);
    }

    #[test]
    fn sound_after_the_voice_seemed_to_stop_is_speech_silero_judges() {
        // A silent window, then a sound Silero is unsure of (no rise), then silence: speech
        // ends after that sound, as Silero says, not at the silent window.
        let mut feed = Feed::after_speech();
        feed.window(0.999, SILENT).window(0.9, VOICE / 5.0);
        feed.window(0.2, SILENT).silence(20, SILENT);
        assert_eq!(
            feed.dip_and_pause(),
            (
                Some((22, Vad::Dip(21 * WINDOW))),
                Some((24, Vad::Pause(22 * WINDOW)))
            )
        );
    }

    #[test]
    fn a_voice_fading_into_silence_ends_where_it_began_to_fade() {
        // Piper's and espeak-ng's voices decay through a window or three 30-45 dB below their
        // loudest before the silence, and Silero still hears speech there. The dip comes at
        // the first of those windows; the rest are the voice's decay, so the decode started
        // at the dip holds all the speech, and the pause says so.
        let mut feed = Feed::after_speech();
        feed.window(0.999, VOICE * 0.02).window(0.99, VOICE * 0.012);
        feed.window(0.98, VOICE * 0.008).window(0.3, SILENT);
        feed.silence(20, SILENT);
        assert_eq!(
            feed.dip_and_pause(),
            (
                Some((22, Vad::Dip(21 * WINDOW))),
                Some((24, Vad::Pause(21 * WINDOW)))
            )
        );
        // A soft sound that swells before the silence (a fricative, not a decay): speech goes
        // on to the silence.
        let mut feed = Feed::after_speech();
        feed.window(0.999, VOICE * 0.02).window(0.99, VOICE * 0.025);
        feed.window(0.98, VOICE * 0.015).window(0.3, SILENT);
        feed.silence(20, SILENT);
        assert_eq!(
            feed.first(|e| matches!(e, Vad::Pause(_))),
            Some((24, Vad::Pause(23 * WINDOW)))
        );
        // Voice again after the first faded window: speech goes on to the silence.
        let mut feed = Feed::after_speech();
        feed.window(0.999, VOICE * 0.02).window(0.999, VOICE / 5.0);
        feed.window(0.98, VOICE * 0.008).window(0.3, SILENT);
        feed.silence(20, SILENT);
        assert_eq!(
            feed.first(|e| matches!(e, Vad::Pause(_))),
            Some((24, Vad::Pause(23 * WINDOW)))
        );
    }

    #[test]
    fn a_soft_sound_at_the_end_of_a_word_stays_in_the_speech() {
        // The "s" of "Americans" in jfk.wav, over the recording's hiss: ~32 dB below the voice.
        // It may be where the voice stops, so a speculative decode starts there; but speech
        // ends where Silero says, so a decode that lacks the rest of the "s" is not the
        // transcript (it came out as "And so my fellow American.").
        let soft = VOICE * 0.025;
        let mut feed = Feed::after_speech();
        feed.window(0.999, soft).window(0.999, soft);
        feed.window(0.8, soft).window(0.2, soft);
        for _ in 0..20 {
            feed.window(0.05, soft);
        }
        assert_eq!(
            feed.dip_and_pause(),
            (
                Some((22, Vad::Dip(21 * WINDOW))),
                Some((24, Vad::Pause(23 * WINDOW)))
            )
        );
    }
}
