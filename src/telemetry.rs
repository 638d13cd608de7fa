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

/// The user's filter, with whisper.cpp's chatty model-loading lines (every one at INFO) demoted
/// to warnings unless the filter says otherwise.
fn filter_directives(level: &str) -> String {
    if level.contains("whisper_rs") {
        level.to_owned()
    } else {
        format!("{level},whisper_rs=warn")
    }
}
