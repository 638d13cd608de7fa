//! The `jarvis` binary: parse the command line, load the configuration, start logging, run.

use std::process::ExitCode;

use clap::Parser;
use jarvis::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, overrides } => serve(config.as_deref(), &overrides),
        Command::CheckConfig { file } => cli::check_config(&file),
        Command::Say {
            text,
            output,
            voice,
            speaker,
            config,
            overrides,
        } => cli::load_config(config.as_deref(), &overrides).and_then(|config| {
            jarvis::telemetry::init(&config.log)?;
            runtime()?.block_on(cli::say(config, &text, &output, voice, speaker))
        }),
        Command::Transcribe {
            file,
            config,
            model,
            language,
            overrides,
        } => cli::load_config(config.as_deref(), &overrides).and_then(|config| {
            jarvis::telemetry::init(&config.log)?;
            runtime()?.block_on(cli::transcribe(config, &file, model, language))
        }),
        Command::Models { args, command } => cli::models(&args, command),
        Command::Addon { command } => return jarvis::addon::main(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Logging may not be up yet (a bad config is reported before it starts).
            eprintln!("jarvis: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(
    file: Option<&std::path::Path>,
    overrides: &jarvis::config::Overrides,
) -> anyhow::Result<()> {
    let config = cli::load_config(file, overrides)?;
    jarvis::telemetry::init(&config.log)?;
    runtime()?.block_on(jarvis::app::run(config))
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
