//! Sealed model artifacts (#23): what lets a fleet ship a model that only
//! authorised devices can read.
//!
//! - [`stream`]: a blob encrypted under a per-release [`ContentKey`] in
//!   chunks of 1 MiB with XChaCha20-Poly1305 in the STREAM construction
//!   (Hoang, Reyhanitabar, Rogaway, Vizár 2015: a 32-bit chunk counter and
//!   a last-chunk flag in each nonce, through RustCrypto's `aead-stream`).
//!   Every chunk is authenticated on its own, so ranged downloads, resume
//!   and per-chunk verification keep working, and reordering, dropping or
//!   truncating chunks is detected. The header (format, chunk size,
//!   plaintext length, nonce prefix) is bound to every chunk as associated
//!   data.
//! - [`wrap`]: the content key wrapped to one device's X25519 public key
//!   with HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256),
//!   HKDF-SHA256, ChaCha20-Poly1305, through the `hpke` crate), bound to a
//!   grant: which release, which device, until when, and the device's own
//!   request nonce (so a recorded answer cannot be replayed).
//!
//! No cryptography is written here: only the framing around audited
//! crates. Keys live in [`zeroize`]-on-drop buffers. No files, no network.

pub mod stream;
pub mod wrap;

use zeroize::Zeroizing;

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("not a sealed artifact: {0}")]
    Format(String),
    #[error("chunk {index} failed authentication: the sealed file was altered, truncated or belongs to another key")]
    Tampered { index: u64 },
    #[error("the key grant could not be opened: {0}")]
    Grant(String),
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = SealError> = std::result::Result<T, E>;

/// A release's 256-bit content key, zeroed when dropped.
#[derive(Clone)]
pub struct ContentKey(Zeroizing<[u8; 32]>);

impl ContentKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<ContentKey> {
        let mut k = Zeroizing::new([0u8; 32]);
        random(&mut *k)?;
        Ok(ContentKey(k))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> ContentKey {
        ContentKey(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentKey(..)")
    }
}

pub(crate) fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::getrandom(buf).map_err(|e| SealError::Random(e.to_string()))
}
