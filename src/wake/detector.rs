//! When a stream of scores becomes a detection: threshold, trigger level, refractory period.
//!
//! openWakeWord gives one score per 80 ms step. As the reference library does, the first five
//! scores of a stream count as 0 (the feature buffers still hold start-up padding then). A step
//! counts when its score is at least `threshold`; `trigger_level` counting steps in a row make a
//! detection. After one, the wake word is muted for `refractory` of *audio* time (the reference
//! server counts wall-clock time, so audio sent faster than real time behaves differently there),
//! and the run starts again from zero.

/// Steps of 80 ms per second.
pub(crate) const STEPS_PER_SECOND: f32 = 12.5;

/// Scores at the start of a stream that are ignored, as in openWakeWord's `Model.predict`.
const WARM_UP_STEPS: u32 = 5;

/// Detection settings, shared by every wake word.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    /// Lowest score of a step that counts.
    pub(crate) threshold: f32,
    /// Counting steps in a row needed for a detection.
    pub(crate) trigger_level: u32,
    /// Steps a wake word stays muted after a detection.
    pub(crate) refractory_steps: u64,
}

impl Settings {
    /// Settings from the configuration's units.
    pub(crate) fn new(threshold: f32, trigger_level: u32, refractory_secs: f32) -> Self {
        Self {
            threshold,
            trigger_level: trigger_level.max(1),
            refractory_steps: (refractory_secs.max(0.0) * STEPS_PER_SECOND).ceil() as u64,
        }
    }
}

/// The state of one wake word on one stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Detector {
    /// Index of the wake word in the service's list.
    pub(crate) word: usize,
    scored: u32,
    run: u32,
    muted_until: u64,
    /// Detections so far on this stream.
    pub(crate) detections: u32,
    /// Highest score seen (after warm-up).
    pub(crate) peak: f32,
}

impl Detector {
    /// A detector for wake word `word` at the start of a stream.
    pub(crate) fn new(word: usize) -> Self {
        Self {
            word,
            scored: 0,
            run: 0,
            muted_until: 0,
            detections: 0,
            peak: 0.0,
        }
    }

    /// Takes the raw score of step `step` (0-based); returns the score as counted and whether
    /// this step is a detection.
    pub(crate) fn update(&mut self, step: u64, raw: f32, settings: &Settings) -> (f32, bool) {
        let score = if self.scored < WARM_UP_STEPS {
            0.0
        } else {
            raw
        };
        self.scored = self.scored.saturating_add(1);
        self.peak = self.peak.max(score);
        if step < self.muted_until {
            self.run = 0;
            return (score, false);
        }
        if score >= settings.threshold {
            self.run += 1;
        } else {
            self.run = 0;
        }
        if self.run < settings.trigger_level {
            return (score, false);
        }
        self.run = 0;
        self.detections += 1;
        self.muted_until = step + 1 + settings.refractory_steps;
        (score, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(scores: &[f32], settings: Settings) -> Vec<u64> {
        let mut detector = Detector::new(0);
        (0u64..)
            .zip(scores)
            .filter_map(|(step, &s)| detector.update(step, s, &settings).1.then_some(step))
            .collect()
    }

    #[test]
    fn the_first_five_scores_never_count() {
        let settings = Settings::new(0.5, 1, 0.0);
        assert_eq!(run(&[0.9; 5], settings), Vec::<u64>::new());
        assert_eq!(run(&[0.9; 6], settings), vec![5]);
    }

    #[test]
    fn a_trigger_level_needs_consecutive_steps() {
        let settings = Settings::new(0.5, 2, 0.0);
        let scores = [0.0, 0.0, 0.0, 0.0, 0.0, 0.9, 0.1, 0.9, 0.5, 0.0];
        assert_eq!(run(&scores, settings), vec![8]);
    }

    #[test]
    fn the_refractory_period_mutes_then_listens_again() {
        // 2 s = 25 steps muted after a detection at step 10.
        let settings = Settings::new(0.5, 1, 2.0);
        assert_eq!(settings.refractory_steps, 25);
        let mut scores = vec![0.0; 60];
        for step in [10, 11, 20, 35, 36, 50] {
            scores[step] = 0.99;
        }
        // Muted for steps 11..=35; 36 detects again and mutes 37..=61, so 50 does not count.
        assert_eq!(run(&scores, settings), vec![10, 36]);
        let settings = Settings::new(0.5, 1, 0.5);
        assert_eq!(run(&scores, settings), vec![10, 20, 35, 50]);
    }
}
