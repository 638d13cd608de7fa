//! Model files: the catalog of what can be downloaded, and the `jarvis models list` and
//! `jarvis models pull NAME` commands that show and fetch them into `models.dir`.
//!
//! [`catalog`] knows every entry and where its files come from, [`download`] fetches one file
//! safely (resumable, verified, atomic), [`progress`] draws it, [`digest`] is the sha256 type.

pub mod catalog;
pub mod digest;
pub mod download;
pub mod progress;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use catalog::{Catalog, CatalogError, Model, ModelFile};
use digest::{Sha256Digest, hash_file};
use download::{DownloadError, Downloader, part_path, remove_if_present};
use progress::{Progress, format_size};

use crate::config::ModelsConfig;

/// Why a models command failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    /// No entry has that name.
    #[error("unknown model {name:?}; {}", unknown_hint(suggestions))]
    UnknownModel {
        /// What was asked for.
        name: String,
        /// Close names, best first.
        suggestions: Vec<String>,
    },
    /// `--sha256` was given for an entry with several files.
    #[error("--sha256 checks a single file, but {name} has {files} files")]
    Sha256NeedsOneFile {
        /// The entry.
        name: String,
        /// How many files it has.
        files: usize,
    },
    /// The catalog could not be resolved.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A download failed.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// Stdout is closed.
    #[error("cannot write to stdout: {0}")]
    Output(std::io::Error),
}

fn unknown_hint(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        "`jarvis models list` shows the models there are".to_owned()
    } else {
        format!(
            "did you mean {}? (`jarvis models list` shows them all)",
            suggestions.join(", ")
        )
    }
}

/// What `jarvis models pull` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// The catalog entry.
    pub name: String,
    /// A checksum from the user, for an entry with one file; wins over the catalog's.
    pub sha256: Option<Sha256Digest>,
    /// Download even when already installed, discarding any partial download.
    pub force: bool,
}

/// Where one file of an entry stands in the models directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// The final file is there, with this size.
    Installed(u64),
    /// Only a `.part` is there, with this size.
    Partial(u64),
    /// Nothing is there.
    Missing,
}

/// The catalog entries whose files `config` loads: the speech-to-text model (when it is a
/// catalog name) and its VAD model, the Piper voice, and the wake word models in `wake.dir`;
/// each only when its service is enabled. Split into those whose files are all in the models
/// directory, and the rest (missing, or only partly downloaded).
///
/// # Errors
/// The catalog cannot be resolved.
pub fn needed(config: &crate::config::Config) -> Result<(Vec<String>, Vec<String>), ModelsError> {
    let catalog = Catalog::new(&config.models)?;
    let mut paths: Vec<String> = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    if config.stt.enabled {
        paths.push(format!("whisper/ggml-{}.bin", config.stt.model));
        if config.stt.vad.enabled && config.stt.vad.model.is_relative() {
            paths.push(config.stt.vad.model.to_string_lossy().replace('\\', "/"));
        }
    }
    if config.tts.enabled {
        paths.push(format!("piper/{}.onnx", config.tts.voice));
    }
    if config.wake.enabled && config.wake.dir.is_relative() {
        prefixes.push(format!(
            "{}/",
            config.wake.dir.to_string_lossy().trim_end_matches('/')
        ));
    }
    let (present, missing): (Vec<&Model>, Vec<&Model>) = catalog
        .models()
        .iter()
        .filter(|model| !model.extra)
        .filter(|model| {
            model.files.iter().any(|file| {
                paths.contains(&file.path) || prefixes.iter().any(|p| file.path.starts_with(p))
            })
        })
        .partition(|model| {
            model.files.iter().all(|file| {
                matches!(
                    file_state(&config.models.dir, file),
                    FileState::Installed(_)
                )
            })
        });
    let names = |models: Vec<&Model>| models.into_iter().map(|m| m.name.clone()).collect();
    Ok((names(present), names(missing)))
}

/// Looks at `dir/file.path` and its `.part` (no hashing: listing must be quick).
pub fn file_state(dir: &Path, file: &ModelFile) -> FileState {
    let path = dir.join(&file.path);
    if let Ok(meta) = std::fs::metadata(&path) {
        if meta.is_file() {
            return FileState::Installed(meta.len());
        }
    }
    match std::fs::metadata(part_path(&path)) {
        Ok(meta) if meta.is_file() => FileState::Partial(meta.len()),
        _ => FileState::Missing,
    }
}

/// The STATUS column of `jarvis models list` for one entry.
fn describe_state(dir: &Path, model: &Model) -> String {
    let states: Vec<FileState> = model.files.iter().map(|f| file_state(dir, f)).collect();
    let installed = states
        .iter()
        .filter(|s| matches!(s, FileState::Installed(_)))
        .count();
    if installed == states.len() {
        let wrong_size = model.files.iter().zip(&states).any(|(file, state)| {
            matches!((file.size, state), (Some(want), FileState::Installed(have)) if want != *have)
        });
        return if wrong_size {
            "installed (size differs from the catalog; `pull --force` replaces it)".to_owned()
        } else {
            "installed".to_owned()
        };
    }
    let partial: u64 = states
        .iter()
        .map(|s| match s {
            FileState::Partial(n) => *n,
            _ => 0,
        })
        .sum();
    if states.iter().any(|s| matches!(s, FileState::Partial(_))) {
        return match model.size() {
            Some(total) => format!(
                "partial download ({} of {}; `pull` resumes it)",
                format_size(partial),
                format_size(total)
            ),
            None => format!(
                "partial download ({}; `pull` resumes it)",
                format_size(partial)
            ),
        };
    }
    if installed > 0 {
        return format!("incomplete ({installed} of {} files)", states.len());
    }
    "not installed".to_owned()
}

/// `jarvis models list`: one line per entry with its kind, size and state.
///
/// # Errors
/// When the catalog cannot be resolved or `out` cannot be written.
pub fn list(config: &ModelsConfig, out: &mut impl Write) -> Result<(), ModelsError> {
    let catalog = Catalog::new(config)?;
    let rows: Vec<[String; 4]> = catalog
        .models()
        .iter()
        .map(|m| {
            [
                if m.extra {
                    format!("{} (extra)", m.name)
                } else {
                    m.name.clone()
                },
                m.kind.to_string(),
                m.size().map_or_else(|| "?".to_owned(), format_size),
                describe_state(&config.dir, m),
            ]
        })
        .collect();
    let name_width = rows.iter().map(|r| r[0].len()).max().unwrap_or(4).max(4);
    let size_width = rows.iter().map(|r| r[2].len()).max().unwrap_or(4).max(4);
    let write = |out: &mut dyn Write| -> std::io::Result<()> {
        writeln!(out, "models in {}", config.dir.display())?;
        writeln!(
            out,
            "{:name_width$}  {:7}  {:>size_width$}  STATUS",
            "NAME", "KIND", "SIZE"
        )?;
        for [name, kind, size, state] in &rows {
            writeln!(
                out,
                "{name:name_width$}  {kind:7}  {size:>size_width$}  {state}"
            )?;
        }
        Ok(())
    };
    write(out).map_err(ModelsError::Output)
}

/// How a present final file compares with what is expected.
enum Present {
    /// Its sha256 is the expected one.
    Verified,
    /// There is no checksum to compare with.
    Unchecked,
    /// Its sha256 is not the expected one.
    Differs(Sha256Digest),
}

async fn check_present(
    path: &Path,
    expected: Option<Sha256Digest>,
) -> Result<Option<Present>, DownloadError> {
    match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_file() => {}
        _ => return Ok(None),
    }
    let Some(expected) = expected else {
        return Ok(Some(Present::Unchecked));
    };
    let owned = path.to_owned();
    let (hasher, _) = tokio::task::spawn_blocking(move || hash_file(&owned))
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|error| DownloadError::Io {
            action: "read",
            path: path.to_owned(),
            error,
        })?;
    let actual = Sha256Digest::from_hasher(hasher);
    Ok(Some(if actual == expected {
        Present::Verified
    } else {
        Present::Differs(actual)
    }))
}

/// What an earlier, interrupted pull left in `<file>.part`.
enum Leftover {
    /// Nothing.
    None,
    /// This many bytes, to resume from.
    Resume(u64),
    /// Deleted, for this reason.
    Discarded(String),
    /// It was the whole file (the pull was killed between the last byte and the rename), and
    /// its sha256 matched: moved into place.
    Installed(Sha256Digest),
}

/// Looks at the `.part` of `dest` before a download. One longer than the file is discarded.
/// With a checksum known, one that is the whole file (the pull was killed between its last
/// byte and the rename) is installed without asking the server (which would answer `416`,
/// and the download would start over), and one as long as the file but not it is discarded.
/// Any other is resumed (and its bytes are checked with the rest, after the download).
async fn leftover_part(dest: &Path, file: &ModelFile) -> Result<Leftover, DownloadError> {
    let part = part_path(dest);
    let len = match tokio::fs::metadata(&part).await {
        Ok(meta) if meta.is_file() && meta.len() > 0 => meta.len(),
        _ => return Ok(Leftover::None),
    };
    if let Some(size) = file.size.filter(|size| len > *size) {
        remove_if_present(&part).await?;
        return Ok(Leftover::Discarded(format!(
            "{} is longer than the file's {}",
            format_size(len),
            format_size(size)
        )));
    }
    let Some(expected) = file
        .sha256
        .filter(|_| file.size.is_none_or(|size| len == size))
    else {
        return Ok(Leftover::Resume(len));
    };
    let owned = part.clone();
    let (hasher, _) = tokio::task::spawn_blocking(move || hash_file(&owned))
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|error| DownloadError::Io {
            action: "read",
            path: part.clone(),
            error,
        })?;
    let actual = Sha256Digest::from_hasher(hasher);
    if actual == expected {
        download::install_part(&part, dest).await?;
        return Ok(Leftover::Installed(actual));
    }
    if file.size == Some(len) {
        remove_if_present(&part).await?;
        return Ok(Leftover::Discarded(format!(
            "as long as the file, but its sha256 {actual} is not the expected {expected}"
        )));
    }
    Ok(Leftover::Resume(len))
}

/// `jarvis models pull NAME`: downloads every file of the entry that is not installed yet.
/// Status lines go to `out`, progress to stderr.
///
/// # Errors
/// An unknown name (with close names), a misused `--sha256`, or a failed download; nothing is
/// ever left under a final file name that failed its checksum.
pub async fn pull(
    config: &ModelsConfig,
    request: &PullRequest,
    out: &mut impl Write,
) -> Result<(), ModelsError> {
    pull_reporting(config, request, out, None).await
}

/// [`pull`], with the progress in `shared` (for the panel) instead of on stderr.
///
/// # Errors
/// As [`pull`].
pub async fn pull_reporting(
    config: &ModelsConfig,
    request: &PullRequest,
    out: &mut impl Write,
    shared: Option<std::sync::Arc<progress::Shared>>,
) -> Result<(), ModelsError> {
    let catalog = Catalog::new(config)?;
    let Some(model) = catalog.get(&request.name) else {
        return Err(ModelsError::UnknownModel {
            name: request.name.clone(),
            suggestions: catalog.suggestions(&request.name),
        });
    };
    let mut files = model.files.clone();
    if let Some(sha256) = request.sha256 {
        let [file] = files.as_mut_slice() else {
            return Err(ModelsError::Sha256NeedsOneFile {
                name: model.name.clone(),
                files: files.len(),
            });
        };
        if let Some(listed) = file.sha256.filter(|listed| *listed != sha256) {
            say(
                out,
                format_args!(
                    "note: the catalog lists sha256 {listed} for {}; checking against yours",
                    file.path
                ),
            )?;
        }
        file.sha256 = Some(sha256);
    }

    let dir = &config.dir;
    let downloader = Downloader::new(
        Duration::from_secs(config.connect_timeout_secs),
        Duration::from_secs(config.read_timeout_secs),
    )?;
    let mut downloaded = 0;
    for file in &files {
        let dest = dir.join(&file.path);
        if request.force {
            remove_if_present(&part_path(&dest)).await?;
        } else {
            match check_present(&dest, file.sha256).await? {
                Some(Present::Verified) => {
                    say(
                        out,
                        format_args!("{}: already installed (sha256 verified)", file.path),
                    )?;
                    continue;
                }
                Some(Present::Unchecked) => {
                    say(
                        out,
                        format_args!(
                            "{}: already installed (no checksum known to verify it)",
                            file.path
                        ),
                    )?;
                    continue;
                }
                Some(Present::Differs(actual)) => say(
                    out,
                    format_args!(
                        "{}: present, but its sha256 {actual} is not the expected one; \
                         downloading it again",
                        file.path
                    ),
                )?,
                None => {}
            }
        }
        if !request.force {
            match leftover_part(&dest, file).await? {
                Leftover::None => {}
                Leftover::Resume(len) => say(
                    out,
                    format_args!(
                        "{}: found a partial download ({}) left by an interrupted pull; \
                         resuming it",
                        file.path,
                        format_size(len)
                    ),
                )?,
                Leftover::Discarded(why) => say(
                    out,
                    format_args!(
                        "{}: discarded the partial download left by an interrupted pull ({why})",
                        file.path
                    ),
                )?,
                Leftover::Installed(sha256) => {
                    say(
                        out,
                        format_args!(
                            "{}: the download left by an interrupted pull was complete; sha256 \
                             {sha256} verified, installed",
                            file.path
                        ),
                    )?;
                    downloaded += 1;
                    continue;
                }
            }
        }
        say(out, format_args!("{}: downloading {}", file.path, file.url))?;
        let mut progress = match &shared {
            Some(shared) => Progress::shared(&file.path, std::sync::Arc::clone(shared)),
            None => Progress::for_stderr(&file.path),
        };
        let fetched = downloader
            .fetch(&file.url, &dest, file.sha256, &mut progress)
            .await?;
        let resumed = if fetched.resumed_from > 0 {
            format!(", resumed at {}", format_size(fetched.resumed_from))
        } else {
            String::new()
        };
        let verdict = if file.sha256.is_some() {
            "verified".to_owned()
        } else {
            "NOT verified: no checksum is known for this file; compare it with the publisher's, \
             or pull again with --force --sha256 HEX"
                .to_owned()
        };
        say(
            out,
            format_args!(
                "{}: {} ({}{resumed}), sha256 {} {verdict}",
                file.path,
                dest.display(),
                format_size(fetched.bytes),
                fetched.sha256
            ),
        )?;
        downloaded += 1;
    }
    if downloaded == 0 {
        say(
            out,
            format_args!(
                "{} is already installed in {}; use --force to download it again",
                model.name,
                dir.display()
            ),
        )
    } else {
        say(
            out,
            format_args!("installed {} in {}", model.name, dir.display()),
        )
    }
}

fn say(out: &mut impl Write, line: std::fmt::Arguments<'_>) -> Result<(), ModelsError> {
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(ModelsError::Output)
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::*;
    use crate::models::catalog::ModelKind;

    fn model(files: &[(&str, Option<u64>)]) -> Model {
        Model {
            name: "m".into(),
            kind: ModelKind::Piper,
            files: files
                .iter()
                .map(|(path, size)| ModelFile {
                    path: (*path).into(),
                    url: Url::parse("http://127.0.0.1:1/x").unwrap(),
                    size: *size,
                    sha256: None,
                })
                .collect(),
            extra: false,
        }
    }

    #[test]
    fn states_distinguish_installed_partial_incomplete_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(&[("a/one", Some(3)), ("a/two", Some(1024))]);
        assert_eq!(describe_state(dir.path(), &m), "not installed");

        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/one"), b"abc").unwrap();
        assert_eq!(describe_state(dir.path(), &m), "incomplete (1 of 2 files)");

        std::fs::write(dir.path().join("a/two.part"), [0u8; 512]).unwrap();
        assert_eq!(file_state(dir.path(), &m.files[1]), FileState::Partial(512));
        assert_eq!(
            describe_state(dir.path(), &m),
            "partial download (512 B of 1.0 KiB; `pull` resumes it)"
        );

        std::fs::write(dir.path().join("a/two"), [0u8; 1024]).unwrap();
        assert_eq!(describe_state(dir.path(), &m), "installed");

        std::fs::write(dir.path().join("a/two"), [0u8; 10]).unwrap();
        assert!(describe_state(dir.path(), &m).starts_with("installed (size differs"));
    }

    #[test]
    fn unknown_names_come_with_close_ones() {
        let err = ModelsError::UnknownModel {
            name: "whisper-tiny.e".into(),
            suggestions: vec!["whisper-tiny.en".into(), "whisper-tiny".into()],
        };
        assert_eq!(
            err.to_string(),
            "unknown model \"whisper-tiny.e\"; did you mean whisper-tiny.en, whisper-tiny? \
             (`jarvis models list` shows them all)"
        );
    }
}
