//! Jarvis as a Home Assistant add-on: the steps of the add-on's start script
//! (`addon/jarvis/run.sh`) that need more than a shell.
//!
//! - `jarvis addon configure`: `/data/options.json` and the MQTT broker Supervisor hands out
//!   become `/data/jarvis.toml`; the user's own models and voices are linked in. A bad option
//!   is one line naming it, and exit status [`EXIT_BAD_OPTIONS`].
//! - `jarvis addon announce`: waits until Jarvis answers `describe`, then tells Home Assistant
//!   through Supervisor discovery where the Wyoming server is.
//! - `jarvis addon stop`: asks Supervisor to stop the add-on (after a bad option), so that its
//!   watchdog does not start it again and again.
//!
//! Supervisor is reached at `JARVIS_SUPERVISOR_URL` (default `http://supervisor`) with
//! `SUPERVISOR_TOKEN`, which the tests point at a fake.

pub mod links;
pub mod options;
pub mod supervisor;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use url::Url;

use self::options::{AddonOptions, AddonPaths, OptionError, WYOMING_PORT};
use self::supervisor::{Supervisor, SupervisorError};

/// Exit status of `jarvis addon configure` when an option is wrong (as opposed to 1 for a
/// failure of the machine, such as a full disk).
pub const EXIT_BAD_OPTIONS: u8 = 3;

/// Waits between discovery attempts while Supervisor does not answer.
const DISCOVERY_RETRIES: &[Duration] = &[
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];

/// Where Supervisor is.
#[derive(Debug, Clone, clap::Args)]
pub struct SupervisorArgs {
    /// Supervisor API base URL.
    #[arg(
        long,
        env = "JARVIS_SUPERVISOR_URL",
        default_value = supervisor::DEFAULT_URL,
        value_name = "URL"
    )]
    pub supervisor_url: Url,
    /// Token Supervisor gives the add-on.
    #[arg(
        long,
        env = "SUPERVISOR_TOKEN",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true,
        value_name = "TOKEN"
    )]
    pub supervisor_token: String,
    /// Seconds one Supervisor call may take.
    #[arg(
        long,
        env = "JARVIS_SUPERVISOR_TIMEOUT_SECS",
        default_value_t = supervisor::DEFAULT_TIMEOUT.as_secs(),
        value_name = "SECS"
    )]
    pub supervisor_timeout_secs: u64,
}

impl SupervisorArgs {
    fn client(&self) -> anyhow::Result<Supervisor> {
        Supervisor::new(
            self.supervisor_url.clone(),
            self.supervisor_token.clone(),
            Duration::from_secs(self.supervisor_timeout_secs.max(1)),
        )
        .context("cannot build the HTTP client")
    }
}

/// `jarvis addon ...`.
#[derive(Debug, clap::Subcommand)]
pub enum AddonCommand {
    /// Turn the add-on options into Jarvis's configuration (with the MQTT broker from
    /// Supervisor) and link the user's own models in.
    Configure {
        /// The options Supervisor wrote.
        #[arg(long, default_value = "/data/options.json", value_name = "FILE")]
        options: PathBuf,
        /// Where to write the configuration.
        #[arg(long, default_value = "/data/jarvis.toml", value_name = "FILE")]
        out: PathBuf,
        /// The add-on's data folder (models, databases, caches).
        #[arg(
            long,
            env = "JARVIS_ADDON_DATA",
            default_value = "/data",
            value_name = "DIR"
        )]
        data_dir: PathBuf,
        /// The add-on's config folder (the user's own models and voices).
        #[arg(
            long,
            env = "JARVIS_ADDON_CONFIG",
            default_value = "/config",
            value_name = "DIR"
        )]
        config_dir: PathBuf,
        /// ONNX Runtime as shipped in the image.
        #[arg(
            long,
            env = "JARVIS_ADDON_ONNXRUNTIME",
            default_value = "/usr/lib/jarvis/libonnxruntime.so.1.24.2",
            value_name = "FILE"
        )]
        onnxruntime: PathBuf,
        /// Supervisor.
        #[command(flatten)]
        supervisor: SupervisorArgs,
    },
    /// Wait until Jarvis answers `describe`, then announce it through Supervisor discovery.
    Announce {
        /// Where Jarvis serves Wyoming (the port is announced; an unspecified address is asked
        /// on loopback).
        #[arg(
            long,
            env = "JARVIS_WYOMING_ADDR",
            default_value = "0.0.0.0:10700",
            value_name = "ADDR"
        )]
        wyoming_addr: SocketAddr,
        /// Host name Home Assistant reaches the add-on by [default: this container's]
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
        /// Seconds to wait for Jarvis to answer.
        #[arg(long, default_value_t = 600, value_name = "SECS")]
        wait_secs: u64,
        /// Supervisor.
        #[command(flatten)]
        supervisor: SupervisorArgs,
    },
    /// Ask Supervisor to stop this add-on.
    Stop {
        /// Supervisor.
        #[command(flatten)]
        supervisor: SupervisorArgs,
    },
}

/// Why `jarvis addon` failed: a bad option (the user must act) or anything else.
#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    /// An option is wrong; the message names it.
    #[error("{0}")]
    Options(#[from] OptionError),
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// `jarvis addon ...` as a process: the error on stderr, and [`EXIT_BAD_OPTIONS`] for a bad
/// option so that the start script stops cleanly instead of failing.
pub fn main(command: AddonCommand) -> std::process::ExitCode {
    match run(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err @ AddonError::Options(_)) => {
            eprintln!("jarvis: {err}");
            std::process::ExitCode::from(EXIT_BAD_OPTIONS)
        }
        Err(err) => {
            eprintln!("jarvis: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs one `jarvis addon` command.
///
/// # Errors
/// See [`AddonError`].
pub fn run(command: AddonCommand) -> Result<(), AddonError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match command {
        AddonCommand::Configure {
            options,
            out,
            data_dir,
            config_dir,
            onnxruntime,
            supervisor,
        } => {
            let paths = AddonPaths {
                data: data_dir,
                config: config_dir,
                onnxruntime,
            };
            runtime.block_on(configure(&options, &out, &paths, &supervisor))
        }
        AddonCommand::Announce {
            wyoming_addr,
            host,
            wait_secs,
            supervisor,
        } => {
            let host = host.unwrap_or_else(container_hostname);
            runtime
                .block_on(announce(
                    wyoming_addr,
                    &host,
                    Duration::from_secs(wait_secs),
                    &supervisor.client()?,
                ))
                .map_err(AddonError::Other)
        }
        AddonCommand::Stop { supervisor } => runtime
            .block_on(supervisor.client()?.stop_self())
            .context("cannot stop the add-on")
            .map_err(AddonError::Other),
    }
}

/// `jarvis addon configure`.
async fn configure(
    options_file: &Path,
    out: &Path,
    paths: &AddonPaths,
    supervisor: &SupervisorArgs,
) -> Result<(), AddonError> {
    // Options first: a bad one is reported before anything else is logged or asked.
    let options = AddonOptions::load(options_file)?;
    options.to_config(paths, None)?;
    let linked = links::link_custom_models(&paths.config, &paths.models()).with_context(|| {
        format!(
            "cannot link the models of {} into {}",
            paths.config.display(),
            paths.models().display()
        )
    });
    let broker = mqtt_broker(&options, supervisor).await;
    let (text, warnings) = options.to_config(paths, broker.as_ref())?;
    match linked {
        Ok(linked) => {
            if !linked.linked.is_empty() {
                eprintln!("jarvis: your own models: {}", linked.linked.join(", "));
            }
            if !linked.removed.is_empty() {
                eprintln!(
                    "jarvis: removed (gone from the config folder): {}",
                    linked.removed.join(", ")
                );
            }
            if !linked.shadowed.is_empty() {
                eprintln!(
                    "jarvis: not used, a downloaded model has the same name: {}",
                    linked.shadowed.join(", ")
                );
            }
        }
        Err(err) => eprintln!("jarvis: warning: {err:#}"),
    }
    for warning in warnings {
        eprintln!("jarvis: warning: {warning}");
    }
    write_private(out, &text).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// The broker from Supervisor, when the user wants MQTT or Frigate; `None` (logged) when there
/// is none or Supervisor cannot say.
async fn mqtt_broker(
    options: &AddonOptions,
    supervisor: &SupervisorArgs,
) -> Option<options::MqttService> {
    if !options.mqtt_enabled && !options.frigate_enabled {
        eprintln!("jarvis: MQTT entities are off (mqtt_enabled)");
        return None;
    }
    let client = match supervisor.client() {
        Ok(client) => client,
        Err(err) => {
            eprintln!("jarvis: warning: {err:#}; MQTT entities are off");
            return None;
        }
    };
    match client.mqtt_service().await {
        Ok(Some(broker)) => {
            eprintln!(
                "jarvis: MQTT broker {}:{}{} from Supervisor{}",
                broker.host,
                broker.port,
                if broker.ssl { " (TLS)" } else { "" },
                broker
                    .username
                    .as_deref()
                    .map(|user| format!(", user {user}"))
                    .unwrap_or_default()
            );
            Some(broker)
        }
        Ok(None) => {
            eprintln!(
                "jarvis: no MQTT broker in Home Assistant (install and start the Mosquitto broker \
                 add-on for the MQTT entities): MQTT entities are off"
            );
            None
        }
        Err(err) => {
            eprintln!("jarvis: warning: {err}; MQTT entities are off until the add-on restarts");
            None
        }
    }
}

/// Writes `text` to `path` readable by its owner only (it holds the Proxmox secret and the
/// MQTT password), replacing any older file in one step.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("toml.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// `jarvis addon announce`.
async fn announce(
    wyoming: SocketAddr,
    host: &str,
    wait: Duration,
    supervisor: &Supervisor,
) -> anyhow::Result<()> {
    let local = if wyoming.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], wyoming.port()))
    } else {
        wyoming
    };
    let deadline = Instant::now() + wait;
    loop {
        match describe(local).await {
            Ok(()) => break,
            Err(err) if Instant::now() >= deadline => {
                anyhow::bail!(
                    "Jarvis did not answer describe on {local} within {}s ({err}); Home \
                     Assistant was not told about it",
                    wait.as_secs()
                );
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    let port = if wyoming.port() == 0 {
        WYOMING_PORT
    } else {
        wyoming.port()
    };
    let uri = format!("tcp://{host}:{port}");
    let mut waits = DISCOVERY_RETRIES.iter();
    loop {
        match supervisor.announce_wyoming(&uri).await {
            Ok(uuid) => {
                eprintln!(
                    "jarvis: announced the Wyoming server {uri} to Home Assistant (discovery \
                     {uuid}); confirm it under Settings > Devices & services"
                );
                return Ok(());
            }
            Err(err) => match waits.next() {
                Some(wait) if err.is_transient() => {
                    eprintln!(
                        "jarvis: warning: {err}; trying again in {}s",
                        wait.as_secs()
                    );
                    tokio::time::sleep(*wait).await;
                }
                _ => return Err(discovery_failed(err, &uri)),
            },
        }
    }
}

fn discovery_failed(err: SupervisorError, uri: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{err}; Home Assistant was not told about Jarvis: add it by hand (Wyoming Protocol, \
         {uri}) or restart the add-on"
    )
}

/// One `describe` answered with `info` within two seconds.
async fn describe(addr: SocketAddr) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(2), async {
        let mut client = wyoming::Client::connect(addr).await?;
        client.describe().await?;
        anyhow::Ok(())
    })
    .await
    .context("no answer in 2 s")?
}

/// The container's host name, which is its name on Supervisor's network.
fn container_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
