//! Logging: readable text on stderr by default, one JSON object per line on request.

use tracing_subscriber::EnvFilter;

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
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
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
