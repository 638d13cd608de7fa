//! Downloading one file safely: into `<final>.part`, resumable, verified, then renamed.
//!
//! The final name only ever holds a complete file whose sha256 was checked (when a checksum is
//! known): bytes go to `<final>.part` in the same directory, which is fsynced and renamed over the
//! final name in one step. An interrupted transfer leaves the `.part` behind, and the next pull
//! asks for the rest with `Range: bytes=<len>-`; a server that answers `200` (ignoring the range)
//! or `416` gets a fresh start. A checksum mismatch deletes the `.part`, since resuming it could
//! only reproduce the same bad bytes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufWriter};
use url::Url;

use super::digest::{Sha256Digest, hash_file};
use super::progress::Progress;

/// Why a download failed. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The HTTP client could not be set up (no TLS roots, ...).
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// The server answered with an error status.
    #[error("{url} answered {status}: {}", http_hint(*.status))]
    Http {
        /// The URL asked for.
        url: String,
        /// What the server said.
        status: StatusCode,
    },
    /// No connection: DNS failure, refused, unreachable, TLS failure.
    #[error(
        "cannot connect to {host} for {url}: {detail}; check the network and DNS, or point the \
         base URL in [models] at a reachable mirror"
    )]
    Connect {
        /// The host name.
        host: String,
        /// The URL asked for.
        url: String,
        /// The underlying causes.
        detail: String,
    },
    /// Connecting took longer than `models.connect_timeout_secs`.
    #[error(
        "timed out connecting to {url}: {detail}; check the network, or raise \
         models.connect_timeout_secs"
    )]
    ConnectTimeout {
        /// The URL asked for.
        url: String,
        /// The underlying causes.
        detail: String,
    },
    /// The request failed for another reason (bad redirect, protocol error).
    #[error("request for {url} failed: {detail}")]
    Request {
        /// The URL asked for.
        url: String,
        /// The underlying causes.
        detail: String,
    },
    /// The connection broke during the body.
    #[error(
        "download of {url} broke off after {received} bytes: {detail}; run the same command \
         again to resume"
    )]
    Transfer {
        /// The URL.
        url: String,
        /// Bytes of the file now in the `.part` file.
        received: u64,
        /// The underlying causes.
        detail: String,
    },
    /// No data arrived for `models.read_timeout_secs`.
    #[error(
        "no data from {url} for {secs} s (after {received} bytes); run the same command again to \
         resume, or raise models.read_timeout_secs on a slow link"
    )]
    Stalled {
        /// The URL.
        url: String,
        /// The read timeout.
        secs: u64,
        /// Bytes of the file now in the `.part` file.
        received: u64,
    },
    /// The server sent `206 Partial Content` to a request without a range.
    #[error("{url} sent a partial response to a request for the whole file")]
    UnexpectedPartial {
        /// The URL.
        url: String,
    },
    /// A file-system operation failed.
    // `error` rather than `source`: the message already says it, and anyhow's `{:#}` would
    // repeat a source.
    #[error("cannot {action} {}: {error}{}", path.display(), io_hint(error))]
    Io {
        /// What was being done (`write`, `create directory`, ...).
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The downloaded bytes are not the expected file.
    #[error(
        "checksum mismatch for {url}: expected sha256 {expected}, got {actual}; the download was \
         deleted. Try again; if the publisher replaced the file on purpose, pass its new sha256 \
         with --sha256"
    )]
    ChecksumMismatch {
        /// Where the bytes came from.
        url: String,
        /// The sha256 asked for.
        expected: Sha256Digest,
        /// The sha256 of what arrived.
        actual: Sha256Digest,
    },
}

fn http_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 | 410 => {
            "the file is not there; check the model name, and the base URL in [models] if you \
             changed it"
        }
        401 | 403 => "access denied; the file may have moved or become private",
        429 => "too many requests; wait a while and try again",
        500..=599 => "the server failed; try again later (a partial download is kept and resumed)",
        _ => "unexpected answer; check the URL",
    }
}

fn io_hint(err: &std::io::Error) -> &'static str {
    match err.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            "; free some disk space or choose another models directory (--models-dir)"
        }
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            "; run as a user that may write there, or choose another models directory \
             (--models-dir)"
        }
        std::io::ErrorKind::NotADirectory | std::io::ErrorKind::AlreadyExists => {
            "; a file is in the way of the models directory"
        }
        _ => "",
    }
}

impl DownloadError {
    fn io(action: &'static str, path: &Path, error: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            error,
        }
    }

    fn from_request(url: &Url, err: &reqwest::Error) -> Self {
        let detail = causes(err);
        if err.is_connect() && err.is_timeout() {
            Self::ConnectTimeout {
                url: url.to_string(),
                detail,
            }
        } else if err.is_connect() {
            Self::Connect {
                host: url.host_str().unwrap_or("?").to_owned(),
                url: url.to_string(),
                detail,
            }
        } else {
            Self::Request {
                url: url.to_string(),
                detail,
            }
        }
    }
}

/// The causes of an error, innermost last, without reqwest's own "error sending request for
/// url (...)" (the message already names the URL).
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        // hyper-util's "client error (Connect)" only repeats what its own cause says.
        if !text.starts_with("client error (") && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

/// What a finished download produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// The sha256 of the installed file.
    pub sha256: Sha256Digest,
    /// Its size.
    pub bytes: u64,
    /// How many bytes came from an earlier `.part` (0 when it started from scratch).
    pub resumed_from: u64,
}

/// The `.part` file next to `dest`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_owned();
    name.push(".part");
    dest.with_file_name(name)
}

/// Downloads files over HTTP(S).
#[derive(Debug, Clone)]
pub struct Downloader {
    client: reqwest::Client,
    read_timeout: Duration,
}

impl Downloader {
    /// A downloader with the given connect and read-stall timeouts.
    ///
    /// # Errors
    /// [`DownloadError::Client`] when the HTTP client cannot be built.
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Result<Self, DownloadError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("jarvis/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(connect_timeout)
            .build()
            .map_err(|err| DownloadError::Client(causes(&err)))?;
        Ok(Self {
            client,
            read_timeout,
        })
    }

    /// Downloads `url` to `dest` via `dest.part`, resuming a `.part` left by an earlier attempt.
    /// With `expected`, the file is only installed when its sha256 matches.
    ///
    /// # Errors
    /// See [`DownloadError`]. On any error nothing is written under `dest`; the `.part` is kept
    /// for resuming, except after a checksum mismatch.
    pub async fn fetch(
        &self,
        url: &Url,
        dest: &Path,
        expected: Option<Sha256Digest>,
        progress: &mut Progress,
    ) -> Result<Fetched, DownloadError> {
        let result = self.fetch_inner(url, dest, expected, progress).await;
        progress.finish();
        result
    }

    async fn fetch_inner(
        &self,
        url: &Url,
        dest: &Path,
        expected: Option<Sha256Digest>,
        progress: &mut Progress,
    ) -> Result<Fetched, DownloadError> {
        let part = part_path(dest);
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| DownloadError::io("create directory", dir, e))?;
        }
        let mut try_resume = true;
        let (response, hasher, offset, total) = loop {
            let (hasher, offset) = if try_resume {
                existing_part(&part).await?
            } else {
                (Sha256::new(), 0)
            };
            let mut request = self.client.get(url.clone());
            if offset > 0 {
                request = request.header(RANGE, format!("bytes={offset}-"));
            }
            let response = request
                .send()
                .await
                .map_err(|e| DownloadError::from_request(url, &e))?;
            let status = response.status();
            if status == StatusCode::PARTIAL_CONTENT {
                if offset == 0 {
                    return Err(DownloadError::UnexpectedPartial {
                        url: url.to_string(),
                    });
                }
                match parse_content_range(response.headers().get(CONTENT_RANGE)) {
                    Some((start, total)) if start == offset => {
                        let total = total.or(response.content_length().map(|n| offset + n));
                        break (response, hasher, offset, total);
                    }
                    // A range other than the one asked for: trust nothing, start over.
                    _ => {}
                }
            } else if status == StatusCode::RANGE_NOT_SATISFIABLE && offset > 0 {
                // The `.part` is as long as the file or longer (it changed upstream): start over.
            } else if status.is_success() {
                // `200` to a range request means the server ignores ranges: start over.
                let total = response.content_length();
                break (response, Sha256::new(), 0, total);
            } else {
                return Err(DownloadError::Http {
                    url: url.to_string(),
                    status,
                });
            }
            drop(response);
            remove_if_present(&part).await?;
            try_resume = false;
        };

        let file = if offset > 0 {
            tokio::fs::OpenOptions::new().append(true).open(&part).await
        } else {
            tokio::fs::File::create(&part).await
        }
        .map_err(|e| DownloadError::io("write", &part, e))?;
        let mut writer = BufWriter::with_capacity(256 * 1024, file);
        progress.begin(offset, total);
        let outcome = self
            .receive(
                response,
                &mut writer,
                (hasher, offset),
                progress,
                url,
                &part,
            )
            .await;
        // Whatever arrived stays in the `.part` for the next attempt to resume from.
        let flushed = writer.flush().await;
        let (hasher, received) = outcome?;
        flushed.map_err(|e| DownloadError::io("write", &part, e))?;
        if let Some(total) = total {
            if received < total {
                return Err(DownloadError::Transfer {
                    url: url.to_string(),
                    received,
                    detail: format!("the server closed the connection before {total} bytes"),
                });
            }
        }
        writer
            .into_inner()
            .sync_all()
            .await
            .map_err(|e| DownloadError::io("write", &part, e))?;

        let actual = Sha256Digest::from_hasher(hasher);
        if let Some(expected) = expected {
            if expected != actual {
                remove_if_present(&part).await?;
                return Err(DownloadError::ChecksumMismatch {
                    url: url.to_string(),
                    expected,
                    actual,
                });
            }
        }
        tokio::fs::rename(&part, dest)
            .await
            .map_err(|e| DownloadError::io("rename into place", dest, e))?;
        sync_parent(dest).await?;
        Ok(Fetched {
            sha256: actual,
            bytes: received,
            resumed_from: offset,
        })
    }

    /// Streams the body into `writer`, hashing as it goes. On error, what was written so far is
    /// in `writer` (the caller flushes it into the `.part`).
    async fn receive(
        &self,
        mut response: reqwest::Response,
        writer: &mut BufWriter<tokio::fs::File>,
        (mut hasher, mut received): (Sha256, u64),
        progress: &mut Progress,
        url: &Url,
        part: &Path,
    ) -> Result<(Sha256, u64), DownloadError> {
        loop {
            let chunk = match tokio::time::timeout(self.read_timeout, response.chunk()).await {
                Err(_) => {
                    return Err(DownloadError::Stalled {
                        url: url.to_string(),
                        secs: self.read_timeout.as_secs(),
                        received,
                    });
                }
                Ok(Err(err)) => {
                    return Err(DownloadError::Transfer {
                        url: url.to_string(),
                        received,
                        detail: causes(&err),
                    });
                }
                Ok(Ok(None)) => return Ok((hasher, received)),
                Ok(Ok(Some(chunk))) => chunk,
            };
            writer
                .write_all(&chunk)
                .await
                .map_err(|e| DownloadError::io("write", part, e))?;
            hasher.update(&chunk);
            received += chunk.len() as u64;
            progress.advance(chunk.len() as u64);
        }
    }
}

/// The hasher fed with an existing `.part`, and its length; a fresh hasher when there is none.
async fn existing_part(part: &Path) -> Result<(Sha256, u64), DownloadError> {
    match tokio::fs::metadata(part).await {
        Ok(meta) if meta.is_file() && meta.len() > 0 => {
            let path = part.to_owned();
            tokio::task::spawn_blocking(move || hash_file(&path))
                .await
                .map_err(|e| DownloadError::io("read", part, std::io::Error::other(e)))?
                .map_err(|e| DownloadError::io("read", part, e))
        }
        Ok(_) => Ok((Sha256::new(), 0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Sha256::new(), 0)),
        Err(e) => Err(DownloadError::io("read", part, e)),
    }
}

/// Deletes `path`; a file that is already gone is fine.
///
/// # Errors
/// When it exists and cannot be deleted.
pub async fn remove_if_present(path: &Path) -> Result<(), DownloadError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DownloadError::io("delete", path, e)),
    }
}

/// Moves a complete, verified `.part` into place and makes the rename durable.
///
/// # Errors
/// [`DownloadError::Io`].
pub(crate) async fn install_part(part: &Path, dest: &Path) -> Result<(), DownloadError> {
    tokio::fs::File::open(part)
        .await
        .map_err(|e| DownloadError::io("read", part, e))?
        .sync_all()
        .await
        .map_err(|e| DownloadError::io("write", part, e))?;
    tokio::fs::rename(part, dest)
        .await
        .map_err(|e| DownloadError::io("rename into place", dest, e))?;
    sync_parent(dest).await
}

/// Makes the rename durable: fsync the directory that holds `path`.
async fn sync_parent(path: &Path) -> Result<(), DownloadError> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let dir = dir.to_owned();
    let result = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || std::fs::File::open(&dir)?.sync_all()
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    result.map_err(|e| DownloadError::io("sync directory", &dir, e))
}

/// `Content-Range: bytes START-END/TOTAL` -> (START, TOTAL when not `*`).
fn parse_content_range(value: Option<&reqwest::header::HeaderValue>) -> Option<(u64, Option<u64>)> {
    let text = value?.to_str().ok()?.trim();
    let rest = text.strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        n => Some(n.parse().ok()?),
    };
    Some((start, total))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn range(text: &str) -> Option<(u64, Option<u64>)> {
        parse_content_range(Some(&HeaderValue::from_str(text).unwrap()))
    }

    #[test]
    fn content_range_is_parsed() {
        assert_eq!(range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(range("bytes */200"), None);
        assert_eq!(range("bytes 9-5/200"), None);
        assert_eq!(range("items 0-1/2"), None);
        assert_eq!(parse_content_range(None), None);
    }

    #[test]
    fn the_part_file_sits_next_to_the_final_one() {
        assert_eq!(
            part_path(Path::new("/m/whisper/ggml-tiny.en.bin")),
            Path::new("/m/whisper/ggml-tiny.en.bin.part")
        );
    }

    #[test]
    fn messages_say_what_to_do() {
        let url = Url::parse("http://127.0.0.1:1/x.bin").unwrap();
        let err = DownloadError::Http {
            url: url.to_string(),
            status: StatusCode::NOT_FOUND,
        };
        assert_eq!(
            err.to_string(),
            "http://127.0.0.1:1/x.bin answered 404 Not Found: the file is not there; check the \
             model name, and the base URL in [models] if you changed it"
        );
        let err = DownloadError::io(
            "write",
            Path::new("/m/x.part"),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        let msg = err.to_string();
        assert!(msg.starts_with("cannot write /m/x.part: "), "{msg}");
        assert!(msg.contains("free some disk space"), "{msg}");
    }
}
