//! Download progress on stderr: an `indicatif` bar on a terminal, and otherwise (logs, CI,
//! `systemd`) a plain line at most every few seconds or every 10 %, so a log is not flooded.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Longest gap between two plain progress lines.
const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

/// Reports one file's download.
#[derive(Debug)]
pub struct Progress {
    label: String,
    output: Output,
}

#[derive(Debug)]
enum Output {
    Bar(Option<ProgressBar>),
    Plain(Throttle),
    Silent,
    Shared(std::sync::Arc<Shared>),
}

/// Progress read by another task (the panel's progress bar): the file and its bytes.
#[derive(Debug, Default)]
pub struct Shared {
    /// The file being downloaded.
    pub file: std::sync::Mutex<String>,
    /// Bytes on disk.
    pub done: std::sync::atomic::AtomicU64,
    /// Its size, 0 when unknown.
    pub total: std::sync::atomic::AtomicU64,
}

impl Progress {
    /// A reporter for `label` (the file's path): a bar when stderr is a terminal, else lines.
    pub fn for_stderr(label: &str) -> Self {
        let output = if std::io::stderr().is_terminal() {
            Output::Bar(None)
        } else {
            Output::Plain(Throttle::default())
        };
        Self {
            label: label.to_owned(),
            output,
        }
    }

    /// A reporter that prints nothing.
    pub fn silent() -> Self {
        Self {
            label: String::new(),
            output: Output::Silent,
        }
    }

    /// A reporter that updates `shared`.
    pub fn shared(label: &str, shared: std::sync::Arc<Shared>) -> Self {
        if let Ok(mut file) = shared.file.lock() {
            label.clone_into(&mut file);
        }
        Self {
            label: label.to_owned(),
            output: Output::Shared(shared),
        }
    }

    /// The transfer starts with `done` bytes already on disk, of `total` when known.
    pub fn begin(&mut self, done: u64, total: Option<u64>) {
        let label = &self.label;
        match &mut self.output {
            Output::Shared(shared) => {
                use std::sync::atomic::Ordering::Relaxed;
                shared.done.store(done, Relaxed);
                shared.total.store(total.unwrap_or(0), Relaxed);
            }
            Output::Bar(bar) => {
                let new = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
                let template = if total.is_some() {
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
                } else {
                    "{msg} {bytes} {bytes_per_sec}"
                };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    new.set_style(style.progress_chars("=> "));
                }
                new.set_message(label.clone());
                new.set_position(done);
                *bar = Some(new);
            }
            Output::Plain(throttle) => {
                throttle.begin(done, total, Instant::now());
                if done > 0 {
                    eprintln!("{label}: resuming at {}", format_size(done));
                }
            }
            Output::Silent => {}
        }
    }

    /// `n` more bytes arrived.
    pub fn advance(&mut self, n: u64) {
        let label = &self.label;
        match &mut self.output {
            Output::Bar(Some(bar)) => bar.inc(n),
            Output::Plain(throttle) => {
                if let Some(line) = throttle.advance(n, Instant::now()) {
                    eprintln!("{label}: {line}");
                }
            }
            Output::Shared(shared) => {
                shared
                    .done
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
            Output::Bar(None) | Output::Silent => {}
        }
    }

    /// The transfer ended (well or not); removes the bar.
    pub fn finish(&mut self) {
        if let Output::Bar(bar) = &mut self.output {
            if let Some(bar) = bar.take() {
                bar.finish_and_clear();
            }
        }
    }
}

/// Decides when a plain progress line is due, and what it says.
#[derive(Debug, Default)]
struct Throttle {
    done: u64,
    total: Option<u64>,
    last_line: Option<Instant>,
    last_tenth: u64,
}

impl Throttle {
    fn begin(&mut self, done: u64, total: Option<u64>, now: Instant) {
        self.done = done;
        self.total = total;
        self.last_line = Some(now);
        self.last_tenth = self.tenth().unwrap_or(0);
    }

    fn tenth(&self) -> Option<u64> {
        self.total
            .filter(|t| *t > 0)
            .map(|t| (self.done.min(t) * 10) / t)
    }

    /// Adds `n` bytes; returns a line when one is due.
    fn advance(&mut self, n: u64, now: Instant) -> Option<String> {
        self.done += n;
        let tenth = self.tenth();
        let new_tenth = tenth.is_some_and(|t| t > self.last_tenth);
        let interval_passed = self
            .last_line
            .is_none_or(|last| now.duration_since(last) >= PLAIN_INTERVAL);
        if !new_tenth && !interval_passed {
            return None;
        }
        self.last_line = Some(now);
        if let Some(t) = tenth {
            self.last_tenth = t;
        }
        Some(match self.total {
            Some(total) if total > 0 => format!(
                "{}% ({} of {})",
                self.done.min(total) * 100 / total,
                format_size(self.done),
                format_size(total)
            ),
            _ => format_size(self.done),
        })
    }
}

/// `1536` -> `1.5 KiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Lossy on purpose: one decimal is all that is shown.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_shown_in_binary_units() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(77_704_715), "74.1 MiB");
        assert_eq!(format_size(1_624_555_275), "1.5 GiB");
    }

    #[test]
    fn plain_lines_come_every_ten_percent() {
        let start = Instant::now();
        let mut throttle = Throttle::default();
        throttle.begin(0, Some(1000), start);
        let mut lines = Vec::new();
        for _ in 0..100 {
            // Ten bytes at a time, all within the same instant: only 10 % steps report.
            if let Some(line) = throttle.advance(10, start) {
                lines.push(line);
            }
        }
        assert_eq!(lines.len(), 10, "{lines:?}");
        assert_eq!(lines[0], "10% (100 B of 1000 B)");
        assert_eq!(lines[9], "100% (1000 B of 1000 B)");
    }

    #[test]
    fn plain_lines_come_every_few_seconds_when_progress_is_slow_or_unknown() {
        let start = Instant::now();
        let mut throttle = Throttle::default();
        throttle.begin(0, None, start);
        assert_eq!(throttle.advance(10, start + Duration::from_secs(1)), None);
        assert_eq!(
            throttle.advance(10, start + PLAIN_INTERVAL).as_deref(),
            Some("20 B")
        );
        assert_eq!(throttle.advance(10, start + PLAIN_INTERVAL), None);

        let mut throttle = Throttle::default();
        throttle.begin(0, Some(1_000_000), start);
        assert_eq!(throttle.advance(1, start + Duration::from_secs(1)), None);
        assert!(throttle.advance(1, start + 2 * PLAIN_INTERVAL).is_some());
    }

    #[test]
    fn a_resumed_download_counts_from_where_it_was() {
        let start = Instant::now();
        let mut throttle = Throttle::default();
        throttle.begin(550, Some(1000), start);
        assert_eq!(throttle.advance(10, start), None);
        assert_eq!(
            throttle.advance(40, start).as_deref(),
            Some("60% (600 B of 1000 B)")
        );
    }
}
