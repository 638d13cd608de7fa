//! The command line: `jarvis serve` and `jarvis check-config`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides};

/// Jarvis: voice and automation for a Proxmox homelab, native to Home Assistant.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Wyoming (and the HTTP API) until SIGINT or SIGTERM.
    Serve {
        /// Configuration file (TOML); without one, the defaults are used.
        #[arg(long, short, env = "JARVIS_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Overrides for the file.
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Check a configuration file and exit: 0 if it is valid, 1 with the offending key if not.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
}

/// Loads the configuration for `serve`: the file (or defaults), then the overrides.
///
/// # Errors
/// When the file or an override is invalid.
pub fn load_config(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
    let config = match file {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    }
    .with_overrides(overrides);
    config.validate(file.unwrap_or(Path::new("<command line>")))?;
    Ok(config)
}

/// `jarvis check-config FILE`.
///
/// # Errors
/// When the file is invalid (the message names the key), or stdout is closed.
pub fn check_config(file: &Path) -> anyhow::Result<()> {
    let config = Config::load(file)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: ok (wyoming on {}, http {}, models in {})",
        file.display(),
        config.wyoming.addr,
        if config.http.enabled {
            config.http.addr.to_string()
        } else {
            "disabled".to_owned()
        },
        config.models.dir.display()
    )
    .context("cannot write to stdout")
}
