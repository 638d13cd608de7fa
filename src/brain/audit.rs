//! The audit log: one JSON line per command and per action, appended and flushed before the
//! reply goes out, rotated by size. Entries hold what was said and done, never a secret: the
//! types below have no field a token or key could reach.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tracing::warn;

use super::types::{ActionKind, Channel, Decision};
use crate::config::AuditConfig;
use crate::proxmox::TaskResult;

/// One line of the log.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// RFC 3339 time, UTC, milliseconds.
    pub time: String,
    /// `command` or `action`.
    pub kind: &'static str,
    /// Where it came from.
    pub channel: Channel,
    /// The client (peer address, MQTT client id).
    pub client: String,
    /// The conversation id, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// What was said or sent (commands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The intent recognized (commands), `llm` for the fallback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// The policy decision (actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// The action (actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionKind>,
    /// The guest's VMID (actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// The guest's name (actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<String>,
    /// The node acted on (node actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The snapshot taken or rolled back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The node a guest is moved to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The Proxmox task (actions carried out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// How the task ended, or why nothing was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Time taken, in milliseconds.
    pub duration_ms: u64,
}

impl Entry {
    /// A new entry stamped now.
    pub fn new(kind: &'static str, channel: Channel, client: &str) -> Self {
        Self {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            kind,
            channel,
            client: client.to_owned(),
            conversation: None,
            text: None,
            intent: None,
            decision: None,
            action: None,
            vmid: None,
            guest: None,
            node: None,
            snapshot: None,
            target: None,
            task: None,
            outcome: None,
            reply: None,
            duration_ms: 0,
        }
    }
}

/// The words for a task result in the log.
pub fn outcome(result: &TaskResult) -> String {
    match result {
        TaskResult::Ok => "ok".into(),
        TaskResult::Warnings { count } => format!("ok with {count} warnings"),
        TaskResult::Failed { message } => format!("failed: {message}"),
        TaskResult::TimedOut => "timed out".into(),
    }
}

#[derive(Debug)]
struct Writer {
    file: File,
    written: u64,
}

/// The log file. Cloning shares it.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    writer: Arc<Mutex<Option<Writer>>>,
}

impl AuditLog {
    /// Opens (creating the directory) the log for appending. A log that cannot be opened is
    /// kept closed: [`AuditLog::is_writable`] says so, and each write tries again.
    pub fn open(config: &AuditConfig) -> Self {
        let log = Self {
            path: config.path.clone(),
            max_bytes: config.max_mb.saturating_mul(1024 * 1024),
            keep: config.keep,
            writer: Arc::new(Mutex::new(None)),
        };
        if let Err(err) = log.ensure_open() {
            warn!(
                path = %config.path.display(),
                cause = %err,
                "audit log cannot be written, so actions are refused until it can: set audit.path \
                 (or JARVIS_AUDIT_PATH) to a writable file"
            );
        }
        log
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the log is open for writing.
    pub fn is_writable(&self) -> bool {
        self.ensure_open().is_ok()
    }

    fn ensure_open(&self) -> io::Result<()> {
        let mut guard = self
            .writer
            .lock()
            .map_err(|_| io::Error::other("audit log lock poisoned"))?;
        if guard.is_none() {
            *guard = Some(open_file(&self.path)?);
        }
        Ok(())
    }

    /// Appends one entry and flushes it to the operating system.
    ///
    /// The write runs on the calling task: one append to the page cache, without `fsync`, takes
    /// tens of microseconds, less than handing it to the blocking pool and back, which on a busy
    /// machine waits for the scheduler twice (each command's reply waited for it: issue #18).
    /// Only the first write and a rotation open or rename files.
    ///
    /// # Errors
    /// The file cannot be written; the caller must not act without a record.
    pub fn record(&self, entry: &Entry) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        self.write_line(&line)
    }

    /// Appends one serialized line (ending in a newline) and flushes it: what
    /// [`AuditLog::record`] runs. Public for the crash tests, which kill a process in the middle
    /// of this write.
    ///
    /// # Errors
    /// The file cannot be written.
    #[doc(hidden)]
    pub fn write_line(&self, line: &[u8]) -> io::Result<()> {
        let mut guard = self
            .writer
            .lock()
            .map_err(|_| io::Error::other("audit log lock poisoned"))?;
        if guard.is_none() {
            *guard = Some(open_file(&self.path)?);
        }
        let needs_rotation = guard
            .as_ref()
            .is_some_and(|w| w.written > 0 && w.written + line.len() as u64 > self.max_bytes);
        if needs_rotation {
            *guard = None;
            self.rotate()?;
            *guard = Some(open_file(&self.path)?);
        }
        let Some(writer) = guard.as_mut() else {
            return Err(io::Error::other("audit log not open"));
        };
        let result = writer
            .file
            .write_all(line)
            .and_then(|()| writer.file.flush());
        match result {
            Ok(()) => {
                writer.written += line.len() as u64;
                Ok(())
            }
            Err(err) => {
                // Reopen on the next write (the file may have been removed or the disk freed).
                *guard = None;
                Err(err)
            }
        }
    }

    /// `audit.jsonl` → `.1` → `.2` ... up to `keep`; the oldest is removed.
    fn rotate(&self) -> io::Result<()> {
        let numbered = |n: u32| {
            let mut name = self.path.as_os_str().to_owned();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        if self.keep == 0 {
            return std::fs::remove_file(&self.path);
        }
        let _ = std::fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            let from = numbered(n);
            if from.exists() {
                std::fs::rename(&from, numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(1))
    }
}

fn open_file(path: &Path) -> io::Result<Writer> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    repair_torn_tail(path)?;
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let written = file.metadata()?.len();
    Ok(Writer { file, written })
}

/// Where [`repair_torn_tail`] keeps what it cut off: `audit.jsonl.torn`.
pub fn torn_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".torn");
    PathBuf::from(name)
}

/// A process killed in the middle of a write (`kill -9`, the OOM killer, a power cut) leaves
/// the log's last line cut short: bytes after the last newline. A tail that is a whole entry
/// (the cut fell just before its newline) gets its newline; anything else is moved to
/// [`torn_path`] (appended, so nothing is lost) and cut from the log, so every line of the log
/// is a whole entry again. Says what it did.
fn repair_torn_tail(path: &Path) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    let len = file.metadata()?.len();
    // Find the end of the last whole line, reading backwards a block at a time.
    let mut block = vec![0u8; 64 * 1024];
    let mut end = len;
    let cut = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..usize::try_from(end - start).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(at) = chunk.iter().rposition(|&b| b == b'\n') {
            break start + at as u64 + 1;
        }
        end = start;
    };
    if cut == len {
        return Ok(());
    }
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(cut))?;
    file.read_to_end(&mut tail)?;
    let whole = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&tail).is_ok();
    if whole {
        file.seek(SeekFrom::End(0))?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        warn!(
            path = %path.display(),
            bytes = tail.len(),
            "audit log: the last entry lacked its newline (a crash in the middle of a write); \
             completed it"
        );
        return Ok(());
    }
    let torn = torn_path(path);
    let mut aside = OpenOptions::new().create(true).append(true).open(&torn)?;
    aside.write_all(&tail)?;
    aside.write_all(b"\n")?;
    aside.sync_all()?;
    file.set_len(cut)?;
    file.sync_all()?;
    warn!(
        path = %path.display(),
        bytes = tail.len(),
        moved_to = %torn.display(),
        "audit log: the last line was cut short by a crash in the middle of a write; moved it \
         aside, every line of the log is whole"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_and_rotated_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.jsonl");
        let log = AuditLog::open(&AuditConfig {
            path: path.clone(),
            max_mb: 1,
            keep: 2,
        });
        assert!(log.is_writable());
        let mut entry = Entry::new("command", Channel::Http, "127.0.0.1");
        entry.text = Some("x".repeat(300_000));
        for _ in 0..7 {
            log.record(&entry).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(current.lines().next().unwrap()).unwrap();
        assert_eq!(first["kind"], "command");
        assert_eq!(first["channel"], "http");
        assert!(std::fs::metadata(&path).unwrap().len() <= 1024 * 1024);
        assert!(dir.path().join("sub/audit.jsonl.1").exists());
        assert!(dir.path().join("sub/audit.jsonl.2").exists());
        assert!(!dir.path().join("sub/audit.jsonl.3").exists());
    }

    #[test]
    fn a_torn_last_line_is_moved_aside_and_a_whole_one_completed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let config = AuditConfig {
            path: path.clone(),
            max_mb: 1,
            keep: 1,
        };
        let whole = "{\"kind\":\"command\",\"text\":\"a\"}\n";
        std::fs::write(&path, format!("{whole}{{\"kind\":\"comm")).unwrap();
        let log = AuditLog::open(&config);
        log.record(&Entry::new("command", Channel::Http, "x"))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(whole), "{text}");
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert_eq!(text.lines().count(), 2);
        let aside = std::fs::read_to_string(torn_path(&path)).unwrap();
        assert_eq!(aside, "{\"kind\":\"comm\n");

        // A whole entry without its newline is kept; a log of one torn line becomes empty.
        std::fs::write(&path, whole.trim_end()).unwrap();
        repair_torn_tail(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), whole);
        std::fs::write(&path, "{\"kind").unwrap();
        repair_torn_tail(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        // Longer than a read block, without any newline.
        std::fs::write(&path, "x".repeat(200_000)).unwrap();
        repair_torn_tail(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn an_unwritable_log_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        // A path below a regular file can never be created.
        let log = AuditLog::open(&AuditConfig {
            path: file.join("audit.jsonl"),
            max_mb: 1,
            keep: 1,
        });
        assert!(!log.is_writable());
        let entry = Entry::new("command", Channel::Voice, "x");
        assert!(log.record(&entry).is_err());
    }
}
