//! The `jarvis` binary: parse the command line, load the configuration, start logging, run.

use std::process::ExitCode;

use clap::Parser;
use jarvis::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, overrides } => {
            let tunables = restart_with_malloc_tunables();
            serve(config.as_deref(), &overrides, tunables)
        }
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
    tunables: Option<std::io::Error>,
) -> anyhow::Result<()> {
    let config = cli::load_config(file, overrides)?;
    jarvis::telemetry::init(&config.log)?;
    if let Some(err) = tunables {
        tracing::warn!(%err, "cannot restart with glibc's malloc tunables; memory use may be higher");
    }
    runtime()?.block_on(jarvis::app::run(config))
}

/// glibc's malloc raises its mmap threshold (up to 32 MB) each time a large block is freed;
/// from then on the large buffers of ONNX Runtime (its arena's extensions, given back after
/// every run) and of whisper.cpp come from the heap, and freed, stay resident for good. With a
/// fixed threshold they are mapped on their own and go back to the system when freed
/// (`scripts/bench.sh memory`: ~20 MB less held). And glibc gives each thread that allocates
/// an arena of its own, up to 8 per core, each keeping what was freed in it; Jarvis starts a
/// thread per synthesis and per grammar build besides its pools. Two arenas serve them all
/// (issue #18: the 30-minute soak's peak 297.7 → 291.7 MB, in a run that also tried another
/// thread policy). glibc reads its tunables only when a process starts, so `serve` starts
/// itself once more with them set: the same process (`exec`), the same arguments. A
/// `GLIBC_TUNABLES` the user set is left as it is. Returns why the restart failed (`serve` then
/// runs without).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn restart_with_malloc_tunables() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    /// glibc's default starting threshold (128 KiB), kept fixed; two arenas.
    const TUNABLES: &str = "glibc.malloc.mmap_threshold=131072:glibc.malloc.arena_max=2";
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return None;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => return Some(err),
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(name) = args.next() {
        command.arg0(name);
    }
    // Returns only when the exec failed.
    Some(command.args(args).env("GLIBC_TUNABLES", TUNABLES).exec())
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn restart_with_malloc_tunables() -> Option<std::io::Error> {
    None
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
