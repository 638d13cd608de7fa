//! Logging: readable text on stderr by default, one JSON object per line on request.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. `log.level` was checked by config validation.
///
/// # Errors
/// When the filter does not parse or a subscriber is already installed.
pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::builder().parse(filter_directives(&config.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .finish()
            .with(WhisperFailureLines)
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(WhisperFailureLines)
            .try_init(),
    };
    result.map_err(|err| anyhow::anyhow!("cannot start logging: {err}"))
}

/// The user's filter, with the chatty native libraries demoted to warnings unless the filter
/// says otherwise.
fn filter_directives(level: &str) -> String {
    let mut filter = level.to_owned();
    // whisper.cpp logs every model-loading step, ONNX Runtime every arena allocation, at INFO.
    for noisy in ["whisper_rs", "ort"] {
        if !level.contains(noisy) {
            filter.push_str(&format!(",{noisy}=warn"));
        }
    }
    filter
}

/// Drops whisper.cpp's own "failed to encode" / "failed to decode" lines. whisper.cpp logs them
/// as errors when a decode stops, and Jarvis stops decodes on purpose (a client left, a
/// speculative decode went stale): logged as errors, they read like faults. A decode that
/// really fails is logged by Jarvis itself, with its cause (`stt::whisper`).
struct WhisperFailureLines;

impl<S: Subscriber> Layer<S> for WhisperFailureLines {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        !(event.metadata().target().starts_with("whisper_rs") && is_failure_line(event))
    }
}

fn is_failure_line(event: &Event<'_>) -> bool {
    struct Message(bool);
    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() == "message" {
                let text = format!("{value:?}");
                self.0 = text.contains("failed to encode") || text.contains("failed to decode");
            }
        }
    }
    let mut message = Message(false);
    event.record(&mut message);
    message.0
}
