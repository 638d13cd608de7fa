//! SHA-256 digests: the checksum a model file is verified against, parsed from and shown as
//! 64 lowercase hex digits (the form `sha256sum` prints and model publishers list).

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Sha256Digest([u8; 32]);

/// Why a string is not a SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a sha256 checksum: expected 64 hex digits")]
pub struct ParseDigestError {
    /// What was given.
    pub input: String,
}

impl Sha256Digest {
    /// The digest of a finished hasher.
    pub fn from_hasher(hasher: Sha256) -> Self {
        Self(hasher.finalize().into())
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Parses a digest at compile time; for the built-in catalog, where a typo must not build.
    ///
    /// # Panics
    /// When `hex` is not 64 hex digits (in a `const` context this fails the build instead).
    pub const fn from_hex_const(hex: &str) -> Self {
        let bytes = hex.as_bytes();
        assert!(bytes.len() == 64, "a sha256 has 64 hex digits");
        let mut out = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            out[i] = (hex_value(bytes[2 * i]) << 4) | hex_value(bytes[2 * i + 1]);
            i += 1;
        }
        Self(out)
    }
}

const fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("not a hex digit"),
    }
}

impl FromStr for Sha256Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = || ParseDigestError {
            input: s.to_owned(),
        };
        let trimmed = s.trim();
        if trimmed.len() != 64 || !trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(error());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(trimmed.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| error())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| error())?;
        }
        Ok(Self(out))
    }
}

impl TryFrom<String> for Sha256Digest {
    type Error = ParseDigestError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

/// Feeds the whole file at `path` into a fresh hasher and returns it with the byte count, so a
/// download can go on hashing what it appends. Blocking: call it from `spawn_blocking`.
///
/// # Errors
/// When the file cannot be read.
pub fn hash_file(path: &Path) -> std::io::Result<(Sha256, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((hasher, total));
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // sha256("hello world"), as printed by `printf 'hello world' | sha256sum`.
    const HELLO: &str = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

    #[test]
    fn parses_and_prints_lowercase_hex() {
        let digest: Sha256Digest = HELLO.to_uppercase().parse().unwrap();
        assert_eq!(digest.to_string(), HELLO);
        assert_eq!(digest, Sha256Digest::of(b"hello world"));
        assert_eq!(digest, Sha256Digest::from_hex_const(HELLO));
    }

    #[test]
    fn rejects_wrong_length_and_non_hex() {
        assert!("abc".parse::<Sha256Digest>().is_err());
        assert!(HELLO[..63].parse::<Sha256Digest>().is_err());
        let not_hex = format!("{}g", &HELLO[..63]);
        let err = not_hex.parse::<Sha256Digest>().unwrap_err();
        assert!(err.to_string().contains("64 hex digits"), "{err}");
    }

    #[test]
    fn hashing_a_file_matches_hashing_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let (hasher, len) = hash_file(&path).unwrap();
        assert_eq!(len, bytes.len() as u64);
        assert_eq!(Sha256Digest::from_hasher(hasher), Sha256Digest::of(&bytes));
    }
}
