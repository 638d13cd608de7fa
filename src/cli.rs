//! The command line: `jarvis serve`, `jarvis check-config`, `jarvis models` and `jarvis addon`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides};
use crate::models::{self, PullRequest, digest::Sha256Digest};

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
    /// Transcribe a WAV file with the speech-to-text engine, as a Wyoming client would, and print
    /// the text.
    Transcribe {
        /// The WAV file (any rate, 8/16/32-bit PCM, any channel count).
        file: PathBuf,
        /// Configuration file (TOML); without one, the defaults are used.
        #[arg(long, short, env = "JARVIS_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Model name (default: stt.model).
        #[arg(long)]
        model: Option<String>,
        /// Language code (default: stt.language).
        #[arg(long)]
        language: Option<String>,
        /// Overrides for the file.
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Speak a text with the text-to-speech engine, as a Wyoming client would, into a WAV file.
    Say {
        /// The text.
        text: String,
        /// Where to write the WAV file.
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
        /// Voice name (default: tts.voice).
        #[arg(long)]
        voice: Option<String>,
        /// Speaker of a multi-speaker voice.
        #[arg(long)]
        speaker: Option<String>,
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
    /// List and download model files (whisper, Piper voices, wake word).
    Models {
        /// Where the configuration and models are.
        #[command(flatten)]
        args: ModelsArgs,
        /// What to do.
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Steps of the Home Assistant add-on's start script (addon/jarvis/run.sh).
    Addon {
        /// What to do.
        #[command(subcommand)]
        command: crate::addon::AddonCommand,
    },
}

/// Options shared by the `jarvis models` subcommands (given before or after the subcommand).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ModelsArgs {
    /// Configuration file (TOML): `[models]` base URLs and `[[models.extra]]` entries.
    #[arg(long, short, global = true, env = "JARVIS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Models directory [default: /var/lib/jarvis/models]
    #[arg(long, global = true, env = "JARVIS_MODELS_DIR", value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
}

/// `jarvis models ...`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Show every known model, its size, and whether it is installed.
    List,
    /// Download a model into the models directory, verifying its sha256.
    Pull {
        /// The model, as `jarvis models list` names it (e.g. `whisper-base.en`).
        #[arg(required_unless_present = "defaults", conflicts_with = "defaults")]
        name: Option<String>,
        /// Every model the configuration needs (speech-to-text with its VAD, the voice, the
        /// wake word models) that is not installed yet; resumes interrupted downloads.
        #[arg(long)]
        defaults: bool,
        /// Expected sha256 (64 hex digits); checked instead of the catalog's.
        #[arg(long, value_name = "HEX")]
        sha256: Option<Sha256Digest>,
        /// Download again even when installed, discarding any partial download.
        #[arg(long)]
        force: bool,
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

/// `jarvis transcribe FILE`: the WAV goes through the same STT flow as a Wyoming request
/// (`transcribe`, `audio-start`, 10 ms chunks, `audio-stop`), with endpointing off so the whole
/// file is transcribed.
///
/// # Errors
/// Unreadable WAV files, model problems and decode failures.
pub async fn transcribe(
    mut config: Config,
    file: &Path,
    model: Option<String>,
    language: Option<String>,
) -> anyhow::Result<()> {
    use std::sync::Arc;
    use wyoming::Event;
    use wyoming::audio::{AudioChunk, AudioFormat, AudioStart};

    let mut reader = hound::WavReader::open(file)
        .with_context(|| format!("cannot read {} as a WAV file", file.display()))?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int {
        anyhow::bail!(
            "{}: only integer PCM WAV files are supported",
            file.display()
        );
    }
    // Samples are widened to 32 bits, whatever the file has, so one format covers them all.
    let format = AudioFormat {
        rate: spec.sample_rate,
        width: 4,
        channels: u32::from(spec.channels),
    };
    let shift = 32u32.saturating_sub(u32::from(spec.bits_per_sample));
    let mut pcm = Vec::new();
    for sample in reader.samples::<i32>() {
        let sample =
            sample.with_context(|| format!("cannot read the samples of {}", file.display()))?;
        pcm.extend_from_slice(&(sample << shift).to_le_bytes());
    }

    config.stt.enabled = true;
    config.stt.vad.enabled = false;
    let service = tokio::task::spawn_blocking(move || crate::stt::SttService::load(&config))
        .await
        .context("model loading panicked")??;
    let transcribe = wyoming::asr::Transcribe {
        name: model,
        language,
        ..Default::default()
    };
    let mut flow = crate::stt::flow::SttFlow::new(Arc::new(service), Some(&transcribe), &[], None);
    let mut events = flow.on_audio_start(&AudioStart::new(format, None));
    let chunk_bytes =
        (format.rate as usize / 100).max(1) * (format.width * format.channels) as usize;
    for chunk in pcm.chunks(chunk_bytes) {
        events.extend(flow.on_chunk(&AudioChunk::new(format, chunk.to_vec(), None)));
    }
    events.extend(flow.on_stop());
    loop {
        for event in events.drain(..) {
            match event {
                Event::Transcript(transcript) => {
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{}", transcript.text).context("cannot write to stdout")?;
                    return Ok(());
                }
                Event::Error(err) => anyhow::bail!("{}", err.text),
                _ => {}
            }
        }
        events = flow.next_output().await;
    }
}

/// `jarvis models list|pull`: loads the configuration like `serve` does, then runs the command.
///
/// # Errors
/// When the configuration is invalid or the command fails (the message says what to do).
pub fn models(args: &ModelsArgs, command: ModelsCommand) -> anyhow::Result<()> {
    let overrides = Overrides {
        models_dir: args.models_dir.clone(),
        ..Overrides::default()
    };
    let config = load_config(args.config.as_deref(), &overrides)?;
    let mut out = std::io::stdout();
    match command {
        ModelsCommand::List => models::list(&config.models, &mut out)?,
        ModelsCommand::Pull {
            name,
            defaults: _,
            sha256,
            force,
        } => {
            // clap guarantees a name or --defaults.
            let names = match name {
                Some(name) => vec![name],
                None => {
                    // Files already there are left alone (they may be the user's own copies);
                    // only what is missing or half-downloaded is fetched.
                    let (present, missing) = models::needed(&config)?;
                    if !present.is_empty() {
                        writeln!(out, "installed already: {}", present.join(", "))?;
                    }
                    writeln!(
                        out,
                        "to download: {}",
                        if missing.is_empty() {
                            "nothing".to_owned()
                        } else {
                            missing.join(", ")
                        }
                    )?;
                    missing
                }
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            // With several models, one failure does not stop the others; all are reported.
            let mut failed = Vec::new();
            let several = names.len() > 1;
            for name in names {
                let request = PullRequest {
                    name: name.clone(),
                    sha256,
                    force,
                };
                match runtime.block_on(models::pull(&config.models, &request, &mut out)) {
                    Ok(()) => {}
                    Err(err) if several => {
                        eprintln!("jarvis: {name}: {err}");
                        failed.push(name);
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            if !failed.is_empty() {
                anyhow::bail!(
                    "{} could not be installed (see above); run the same command again to \
                     resume",
                    failed.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// `jarvis say TEXT -o FILE`: the text goes through the same TTS flow as a Wyoming `synthesize`
/// and the audio chunks are written to a WAV file.
///
/// # Errors
/// Voice or runtime problems, synthesis failures and unwritable files.
pub async fn say(
    mut config: Config,
    text: &str,
    output: &Path,
    voice: Option<String>,
    speaker: Option<String>,
) -> anyhow::Result<()> {
    use std::sync::Arc;
    use wyoming::Event;

    config.tts.enabled = true;
    let service = tokio::task::spawn_blocking(move || crate::tts::TtsService::load(&config))
        .await
        .context("voice loading panicked")??;
    let request = wyoming::tts::Synthesize {
        text: text.to_owned(),
        voice: (voice.is_some() || speaker.is_some()).then_some(wyoming::tts::SynthesizeVoice {
            name: voice,
            language: None,
            speaker,
        }),
        ..Default::default()
    };
    let (mut flow, mut events) = crate::tts::flow::TtsFlow::single(Arc::new(service), &request);
    let mut writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>> = None;
    loop {
        for event in events.drain(..) {
            match event {
                Event::AudioStart(start) => {
                    let spec = hound::WavSpec {
                        channels: 1,
                        sample_rate: start.rate,
                        bits_per_sample: 16,
                        sample_format: hound::SampleFormat::Int,
                    };
                    writer = Some(
                        hound::WavWriter::create(output, spec)
                            .with_context(|| format!("cannot write {}", output.display()))?,
                    );
                }
                Event::AudioChunk(chunk) => {
                    if let Some(writer) = writer.as_mut() {
                        for sample in chunk.audio.chunks_exact(2) {
                            writer.write_sample(i16::from_le_bytes([sample[0], sample[1]]))?;
                        }
                    }
                }
                Event::AudioStop(_) => {
                    if let Some(writer) = writer.take() {
                        writer.finalize()?;
                    }
                    return Ok(());
                }
                Event::Error(err) => anyhow::bail!("{}", err.text),
                _ => {}
            }
        }
        if flow.is_done() {
            return Ok(());
        }
        events = flow.next_output().await;
    }
}
