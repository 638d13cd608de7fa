//! A disk cache of synthesized sentences, so repeated replies ("Done.", "Say confirm.") start
//! playing at once.
//!
//! - Keyed by sha256 of everything that shapes the audio: voice, speaker, scales and the text.
//! - One file per sentence: a header (magic, sample rate, sample count, sha256 of the samples)
//!   and the 16-bit samples. A file that does not check out is deleted and synthesized again.
//! - Written to a temporary file and renamed, so readers never see half a file and concurrent
//!   writers of the same sentence cannot corrupt it.
//! - Bounded in bytes; the least recently used entries go first. Recency is the file's
//!   modification time, refreshed on every hit, so it survives restarts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use tracing::{debug, warn};

const MAGIC: &[u8; 4] = b"JTC1";
const HEADER: usize = 4 + 4 + 4 + 32;
const SUFFIX: &str = "pcm";
/// Changes when the same key would give other audio (Jarvis's own phoneme ids since 0.1: BOS,
/// PAD first, as piper-phonemize).
const KEY_VERSION: &[u8] = b"2\0";

/// What shapes a sentence's audio.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheKey<'a> {
    /// Voice name.
    pub voice: &'a str,
    /// Speaker id.
    pub speaker: Option<i64>,
    /// Synthesis scales used (length, noise, noise_w).
    pub scales: [f32; 3],
    /// The sentence.
    pub text: &'a str,
}

impl CacheKey<'_> {
    fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(KEY_VERSION);
        hasher.update(self.voice.as_bytes());
        hasher.update([0]);
        hasher.update(format!("{:?}|{:?}", self.speaker, self.scales).as_bytes());
        hasher.update([0]);
        hasher.update(self.text.as_bytes());
        hex(&hasher.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug)]
struct Entry {
    size: u64,
    used: SystemTime,
}

/// The cache. Cheap to share; every method is safe to call from many threads.
#[derive(Debug)]
pub struct AudioCache {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<HashMap<String, Entry>>,
}

impl AudioCache {
    /// Opens (creating) the cache directory and indexes what is there.
    ///
    /// # Errors
    /// When the directory cannot be created or read.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut index = HashMap::new();
        let (mut partial, mut damaged) = (0usize, 0usize);
        for entry in std::fs::read_dir(dir)?.filter_map(Result::ok) {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.contains(".tmp") {
                // Left by a process killed in the middle of a write.
                if std::fs::remove_file(&path).is_ok() {
                    partial += 1;
                }
                continue;
            }
            let Some(key) = name.strip_suffix(&format!(".{SUFFIX}")) else {
                continue;
            };
            if !whole_length(&path) {
                // Cut short (a power cut after the rename, a full disk): never served.
                if std::fs::remove_file(&path).is_ok() {
                    damaged += 1;
                }
                continue;
            }
            if let Ok(meta) = entry.metadata() {
                index.insert(
                    key.to_owned(),
                    Entry {
                        size: meta.len(),
                        used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    },
                );
            }
        }
        if partial + damaged > 0 {
            warn!(
                dir = %dir.display(),
                partial,
                damaged,
                "tts cache: removed {partial} partial entries left by an interrupted write and \
                 {damaged} entries cut short; they are synthesized again when next said"
            );
        }
        let cache = Self {
            dir: dir.to_owned(),
            max_bytes,
            index: Mutex::new(index),
        };
        cache.evict();
        Ok(cache)
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.{SUFFIX}"))
    }

    /// Bytes held.
    pub fn size(&self) -> u64 {
        self.index
            .lock()
            .map(|index| index.values().map(|e| e.size).sum())
            .unwrap_or(0)
    }

    /// The cached samples and rate of a sentence, if present and intact.
    pub fn get(&self, key: &CacheKey<'_>) -> Option<(u32, Vec<i16>)> {
        let digest = key.digest();
        let path = self.path(&digest);
        let bytes = std::fs::read(&path).ok()?;
        match decode(&bytes) {
            Some(audio) => {
                let now = SystemTime::now();
                if let Ok(file) = std::fs::File::options().write(true).open(&path) {
                    let _ = file.set_modified(now);
                }
                if let Ok(mut index) = self.index.lock() {
                    if let Some(entry) = index.get_mut(&digest) {
                        entry.used = now;
                    }
                }
                Some(audio)
            }
            None => {
                warn!(file = %path.display(), "corrupt cache entry; synthesizing again");
                let _ = std::fs::remove_file(&path);
                if let Ok(mut index) = self.index.lock() {
                    index.remove(&digest);
                }
                None
            }
        }
    }

    /// Stores a sentence's samples, then evicts beyond the size limit.
    pub fn put(&self, key: &CacheKey<'_>, rate: u32, samples: &[i16]) {
        self.put_encoded(key, &encode(rate, samples));
    }

    /// Stores an entry already [`encode`]d: the file write of [`AudioCache::put`]. Public for
    /// the crash tests, which kill a process in the middle of this write.
    #[doc(hidden)]
    pub fn put_encoded(&self, key: &CacheKey<'_>, bytes: &[u8]) {
        let digest = key.digest();
        let size = bytes.len() as u64;
        if size > self.max_bytes {
            return;
        }
        let tmp = self.dir.join(format!(
            "{digest}.tmp-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let written =
            std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, self.path(&digest)));
        if let Err(err) = written {
            let _ = std::fs::remove_file(&tmp);
            debug!(cause = %err, "cannot write a cache entry");
            return;
        }
        if let Ok(mut index) = self.index.lock() {
            index.insert(
                digest,
                Entry {
                    size,
                    used: SystemTime::now(),
                },
            );
        }
        self.evict();
    }

    /// Removes the least recently used entries until the cache fits its limit.
    fn evict(&self) {
        let Ok(mut index) = self.index.lock() else {
            return;
        };
        let mut total: u64 = index.values().map(|e| e.size).sum();
        if total <= self.max_bytes {
            return;
        }
        let mut by_age: Vec<(String, SystemTime, u64)> = index
            .iter()
            .map(|(k, e)| (k.clone(), e.used, e.size))
            .collect();
        by_age.sort_by_key(|(_, used, _)| *used);
        for (key, _, size) in by_age {
            if total <= self.max_bytes {
                break;
            }
            let _ = std::fs::remove_file(self.path(&key));
            index.remove(&key);
            total -= size;
        }
    }
}

/// Whether an entry file is as long as its header says (read without the samples; their
/// checksum is checked when the entry is used).
fn whole_length(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 12];
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    if file.read_exact(&mut header).is_err() || &header[..4] != MAGIC {
        return false;
    }
    let count = u64::from(u32::from_le_bytes([
        header[8], header[9], header[10], header[11],
    ]));
    meta.len() == HEADER as u64 + 2 * count
}

/// An entry's bytes: the header, then the samples.
#[doc(hidden)]
pub fn encode(rate: u32, samples: &[i16]) -> Vec<u8> {
    let pcm: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut out = Vec::with_capacity(HEADER + pcm.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(
        &u32::try_from(samples.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&Sha256::digest(&pcm));
    out.extend_from_slice(&pcm);
    out
}

fn decode(bytes: &[u8]) -> Option<(u32, Vec<i16>)> {
    let header = bytes.get(..HEADER)?;
    let pcm = bytes.get(HEADER..)?;
    if &header[..4] != MAGIC {
        return None;
    }
    let rate = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let count = u32::from_le_bytes(header[8..12].try_into().ok()?) as usize;
    if pcm.len() != count * 2 || Sha256::digest(pcm).as_slice() != &header[12..44] {
        return None;
    }
    Some((
        rate,
        pcm.chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> CacheKey<'_> {
        CacheKey {
            voice: "v",
            speaker: None,
            scales: [1.0, 0.667, 0.8],
            text,
        }
    }

    #[test]
    fn entries_round_trip_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AudioCache::open(dir.path(), 1 << 20).unwrap();
        assert!(cache.get(&key("hi")).is_none());
        cache.put(&key("hi"), 22050, &[1, -2, 3]);
        assert_eq!(cache.get(&key("hi")), Some((22050, vec![1, -2, 3])));
        drop(cache);
        let cache = AudioCache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(cache.get(&key("hi")), Some((22050, vec![1, -2, 3])));
        // A different speaker or scale is a different entry.
        let other = CacheKey {
            speaker: Some(1),
            ..key("hi")
        };
        assert!(cache.get(&other).is_none());
    }

    #[test]
    fn a_corrupt_entry_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AudioCache::open(dir.path(), 1 << 20).unwrap();
        cache.put(&key("hi"), 22050, &[1, 2, 3, 4]);
        let file = cache.path(&key("hi").digest());
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&file, bytes).unwrap();
        assert!(cache.get(&key("hi")).is_none());
        assert!(!file.exists());
        std::fs::write(&file, b"JTC1").unwrap();
        assert!(
            cache.get(&key("hi")).is_none(),
            "a truncated file is corrupt too"
        );
    }

    #[test]
    fn partial_and_cut_short_entries_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AudioCache::open(dir.path(), 1 << 20).unwrap();
        cache.put(&key("kept"), 22050, &[1, 2, 3, 4]);
        cache.put(&key("cut"), 22050, &[1, 2, 3, 4]);
        drop(cache);
        let cut = dir.path().join(format!("{}.{SUFFIX}", key("cut").digest()));
        let bytes = std::fs::read(&cut).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
        let tmp = dir.path().join("abc.tmp-1-ThreadId(2)");
        std::fs::write(&tmp, b"JTC1").unwrap();
        let cache = AudioCache::open(dir.path(), 1 << 20).unwrap();
        assert!(!tmp.exists());
        assert!(!cut.exists());
        assert_eq!(cache.get(&key("kept")), Some((22050, vec![1, 2, 3, 4])));
        assert_eq!(cache.size(), (HEADER + 8) as u64);
    }

    #[test]
    fn the_least_recently_used_entries_are_evicted_beyond_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let entry = (HEADER + 2000) as u64;
        let cache = AudioCache::open(dir.path(), entry * 3).unwrap();
        for text in ["a", "b", "c"] {
            cache.put(&key(text), 16000, &[0; 1000]);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            cache.get(&key("a")).is_some(),
            "touch a: b is now the oldest"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put(&key("d"), 16000, &[0; 1000]);
        assert!(cache.size() <= entry * 3);
        assert!(cache.get(&key("b")).is_none());
        for text in ["a", "c", "d"] {
            assert!(cache.get(&key(text)).is_some(), "{text}");
        }
    }
}
