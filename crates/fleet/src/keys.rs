//! Secrets in the data folder and the manifest signer.
//!
//! ```text
//! DIR/signing.key      {"key_id", "secret_key"}: the Ed25519 key manifests are signed with (0600)
//! DIR/signing.pub.json {"key_id", "public_key"}: what devices pin (a PinnedKey)
//! DIR/admin.token      the admin API's bearer token, unless one is configured (0600)
//! DIR/app.key          the first app key, for devices to register with (0600)
//! ```
//!
//! Each is created on first start and read on every later one; a file that
//! exists but cannot be parsed stops the fleet (it is never replaced).
//! Tokens and keys are 256-bit random values from the OS.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use outpost_protocol::signing::{self, PinnedKey, SignedManifest};
use outpost_protocol::{Digest, Manifest};
use serde::{Deserialize, Serialize};

use crate::error::FleetError;

pub const SIGNING_KEY_FILE: &str = "signing.key";
pub const PUBLIC_KEY_FILE: &str = "signing.pub.json";
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
pub const APP_KEY_FILE: &str = "app.key";

/// 32 random bytes from the OS.
pub fn random32() -> Result<[u8; 32], FleetError> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b)
        .map_err(|e| FleetError::Internal(format!("the OS random source failed: {e}")))?;
    Ok(b)
}

/// A new bearer secret: `prefix` + 64 hex digits (256 bits).
pub fn new_token(prefix: &str) -> Result<String, FleetError> {
    let b = random32()?;
    Ok(format!("{prefix}{}", Digest::from_sha256_bytes(b).hex()))
}

/// A device's X25519 public key from its standard-base64 form, checked to
/// be a usable key; the error says what was wrong.
pub fn public_key_from_base64(text: &str) -> Result<[u8; 32], String> {
    let key = key32_from_base64(text).map_err(|e| format!("{text:?}: {e}"))?;
    outpost_seal::wrap::DevicePublic::from_bytes(key).map_err(|e| e.to_string())?;
    Ok(key)
}

/// A 32-byte key (a device public key, a content key) in standard base64.
pub fn key32_to_base64(key: &[u8; 32]) -> String {
    B64.encode(key)
}

/// 32 bytes from standard base64; the error says what was wrong.
pub fn key32_from_base64(text: &str) -> Result<[u8; 32], String> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| format!("it is not standard base64 ({e})"))?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("a key is 32 bytes, this is {}", bytes.len()))
}

/// SHA-256 of a secret, the only form in which the fleet stores one.
pub fn secret_hash(secret: &str) -> Digest {
    Digest::sha256(secret.as_bytes())
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    key_id: String,
    secret_key: String,
}

/// Signs manifests with the fleet's key.
#[derive(Debug, Clone)]
pub struct Signer {
    key_id: String,
    key: SigningKey,
}

impl Signer {
    pub fn new(key_id: String, key: SigningKey) -> Signer {
        Signer { key_id, key }
    }

    /// Loads `DIR/signing.key`, creating it (and the public key file) on
    /// first start. The key id is `fleet-` + 12 hex digits of the public
    /// key's sha256.
    pub fn load_or_create(dir: &Path) -> Result<Signer, FleetError> {
        let path = dir.join(SIGNING_KEY_FILE);
        let signer = if path.exists() {
            let text = fs::read(&path).map_err(|e| FleetError::io("read", &path, e))?;
            let kf: KeyFile = serde_json::from_slice(&text).map_err(|e| {
                FleetError::Config(format!("{} is not a fleet key file: {e}", path.display()))
            })?;
            let bytes: [u8; 32] = B64
                .decode(&kf.secret_key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    FleetError::Config(format!(
                        "{}: secret_key must be 32 bytes in base64",
                        path.display()
                    ))
                })?;
            Signer::new(kf.key_id, SigningKey::from_bytes(&bytes))
        } else {
            let key = SigningKey::from_bytes(&random32()?);
            let key_id = format!(
                "fleet-{}",
                &Digest::sha256(key.verifying_key().as_bytes()).hex()[..12]
            );
            let kf = KeyFile {
                key_id: key_id.clone(),
                secret_key: B64.encode(key.to_bytes()),
            };
            write_secret(&path, &serde_json::to_vec_pretty(&kf).unwrap_or_default())?;
            Signer::new(key_id, key)
        };
        let pub_path = dir.join(PUBLIC_KEY_FILE);
        let pinned = serde_json::to_vec_pretty(&signer.pinned_key()).unwrap_or_default();
        if fs::read(&pub_path).ok().as_deref() != Some(&pinned[..]) {
            fs::write(&pub_path, &pinned).map_err(|e| FleetError::io("write", &pub_path, e))?;
        }
        Ok(signer)
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// What a device pins to trust this fleet.
    pub fn pinned_key(&self) -> PinnedKey {
        PinnedKey {
            key_id: self.key_id.clone(),
            public_key: B64.encode(self.key.verifying_key().as_bytes()),
        }
    }

    /// Signs the manifest's JSON bytes exactly as serialized here.
    pub fn sign(&self, manifest: &Manifest) -> SignedManifest {
        let payload = serde_json::to_vec(manifest).unwrap_or_default();
        signing::sign(&payload, &self.key_id, &self.key)
    }
}

/// Writes a new secret file readable only by its owner, fsynced.
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), FleetError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| FleetError::io("create", path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| FleetError::io("write", path, e))
}

/// Reads a one-line secret file, creating it with a new token first.
pub fn load_or_create_token(path: &PathBuf, prefix: &str) -> Result<String, FleetError> {
    if !path.exists() {
        let t = new_token(prefix)?;
        write_secret(path, format!("{t}\n").as_bytes())?;
        return Ok(t);
    }
    let text = fs::read_to_string(path).map_err(|e| FleetError::io("read", path, e))?;
    let t = text.trim().to_string();
    if t.len() < 16 {
        return Err(FleetError::Config(format!(
            "{} holds no token (fewer than 16 characters); remove it to have a new one made",
            path.display()
        )));
    }
    Ok(t)
}
