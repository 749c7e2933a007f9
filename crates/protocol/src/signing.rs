//! Signed manifests: the envelope, the device's keyring, and verification.
//!
//! Ed25519 over the exact manifest bytes. The envelope carries those bytes
//! base64-encoded, so they reach the verifier unchanged and are checked
//! before anything parses them; nothing is re-serialised to verify:
//!
//! ```json
//! {"key_id":"fleet-2026a","public_key":"<base64, 32 bytes>",
//!  "signature":"<base64, 64 bytes>","payload":"<base64 of the manifest JSON>"}
//! ```
//!
//! `key_id` picks the pinned key in the device's [`Keyring`], so keys can
//! rotate (pin old and new, sign with new, drop old). `public_key` is only a
//! diagnostic: it is compared with the pinned key to tell "signed with a key
//! this device does not pin for that id" from "bytes altered"; the signature
//! is always checked against the pinned key, never the presented one.
//!
//! Verification is pure (bytes, keys, the last accepted version and "now" in;
//! a manifest or one precise error out), so it lives here beside the schema;
//! the store keeps what was accepted.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::manifest::{Manifest, ManifestError, ModelName};
use crate::time::Timestamp;

/// The wire envelope. All fields base64 (standard alphabet, padded) except
/// `key_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    pub key_id: String,
    pub public_key: String,
    pub signature: String,
    pub payload: String,
}

/// One pinned key as written in a device's config:
/// `{"key_id": "fleet-2026a", "public_key": "<base64, 32 bytes>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinnedKey {
    pub key_id: String,
    pub public_key: String,
}

/// The keys a device trusts, by `key_id`.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<String, VerifyingKey>,
}

/// What a device remembers of the last manifest it accepted for a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub manifest_version: u64,
    /// sha256 of the accepted payload bytes.
    pub payload_digest: Digest,
}

/// A manifest whose signature, version and expiry all held.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub manifest: Manifest,
    /// The exact signed bytes.
    pub payload: Vec<u8>,
    pub payload_digest: Digest,
    /// True when this is the very manifest accepted last (same version, same
    /// bytes): a harmless re-delivery with nothing new to do.
    pub already_accepted: bool,
}

/// Why a signed manifest was refused. Each cause has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signed manifest envelope is malformed: {0}; expected {{\"key_id\", \"public_key\", \"signature\", \"payload\"}}")]
    Envelope(String),
    #[error("signed manifest field `{field}` is not valid: {problem}")]
    Encoding {
        field: &'static str,
        problem: String,
    },
    #[error("manifest is signed with key_id {key_id:?}, which this device does not pin (pinned: {known:?}); add the fleet's public key for it to the device config")]
    UnknownKeyId { key_id: String, known: Vec<String> },
    #[error("manifest is signed by key {presented} under key_id {key_id:?}, but this device pins key {pinned} for that id; the fleet signed with a key the device does not trust: re-sign with the pinned key or update the device's pinned keys")]
    WrongKey {
        key_id: String,
        pinned: String,
        presented: String,
    },
    #[error("manifest signature does not verify under pinned key_id {key_id:?}: the payload or signature was altered after signing; fetch the manifest again and distrust its source if this repeats")]
    BadSignature { key_id: String },
    #[error("manifest is correctly signed but unusable: {0}")]
    Manifest(#[from] ManifestError),
    #[error("envelope key_id {envelope:?} differs from the manifest's key_id {manifest:?}; the fleet must name the signing key in both")]
    KeyIdMismatch { envelope: String, manifest: String },
    #[error("manifest for {model} has manifest_version {version}, lower than the last accepted {last_accepted}: refusing a rollback to older metadata; the fleet must issue a new, higher version")]
    OlderVersion {
        model: ModelName,
        version: u64,
        last_accepted: u64,
    },
    #[error("manifest for {model} reuses manifest_version {version} with different content; every change needs a higher manifest_version")]
    SameVersionDifferentContent { model: ModelName, version: u64 },
    #[error("manifest {version} for {model} expired at {expires_at} (now {now}); the fleet must re-sign it with a later expires_at (the installed model keeps serving)")]
    Expired {
        model: ModelName,
        version: u64,
        expires_at: Timestamp,
        now: Timestamp,
    },
}

/// `sha256:` plus the first 16 hex digits of the key's sha256, for messages.
pub fn key_fingerprint(key: &VerifyingKey) -> String {
    format!("sha256:{}", &Digest::sha256(key.as_bytes()).hex()[..16])
}

/// Signs `payload` exactly as given (the control plane's side).
pub fn sign(payload: &[u8], key_id: &str, key: &SigningKey) -> SignedManifest {
    SignedManifest {
        key_id: key_id.to_string(),
        public_key: B64.encode(key.verifying_key().as_bytes()),
        signature: B64.encode(key.sign(payload).to_bytes()),
        payload: B64.encode(payload),
    }
}

impl SignedManifest {
    /// Parses the envelope only; nothing in it is trusted yet.
    pub fn from_json(bytes: &[u8]) -> Result<SignedManifest, VerifyError> {
        serde_json::from_slice(bytes).map_err(|e| VerifyError::Envelope(e.to_string()))
    }

    /// The payload bytes, decoded but not verified.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, VerifyError> {
        B64.decode(&self.payload)
            .map_err(|e| VerifyError::Encoding {
                field: "payload",
                problem: format!("not base64: {e}"),
            })
    }

    /// The envelope as JSON bytes, ready to send.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of four strings always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn decode_key(field: &'static str, b64: &str) -> Result<VerifyingKey, VerifyError> {
    let bytes = B64.decode(b64).map_err(|e| VerifyError::Encoding {
        field,
        problem: format!("not base64: {e}"),
    })?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| VerifyError::Encoding {
            field,
            problem: format!("{} bytes, an Ed25519 public key has 32", b.len()),
        })?;
    VerifyingKey::from_bytes(&arr).map_err(|_| VerifyError::Encoding {
        field,
        problem: "not a valid Ed25519 public key".into(),
    })
}

impl Keyring {
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// From a device config's pinned keys; a bad entry names its key_id.
    pub fn from_pinned(pinned: &[PinnedKey]) -> Result<Keyring, VerifyError> {
        let mut ring = Keyring::new();
        for p in pinned {
            let key = decode_key("public_key", &p.public_key).map_err(|e| match e {
                VerifyError::Encoding { problem, .. } => VerifyError::Encoding {
                    field: "public_key",
                    problem: format!("pinned key {:?}: {problem}", p.key_id),
                },
                other => other,
            })?;
            ring.insert(&p.key_id, key);
        }
        Ok(ring)
    }

    pub fn insert(&mut self, key_id: &str, key: VerifyingKey) {
        self.keys.insert(key_id.to_string(), key);
    }

    pub fn remove(&mut self, key_id: &str) -> Option<VerifyingKey> {
        self.keys.remove(key_id)
    }

    pub fn get(&self, key_id: &str) -> Option<&VerifyingKey> {
        self.keys.get(key_id)
    }

    pub fn key_ids(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }
}

/// Verifies a signed manifest envelope, in this order: envelope shape,
/// key_id known, presented key = pinned key, signature over the exact
/// payload bytes, payload is a valid manifest, key_ids agree, version not
/// lower than `last_accepted(model)` (equal only if byte-identical), not
/// expired at `now` (expired when `now >= expires_at`).
pub fn verify(
    envelope: &[u8],
    keyring: &Keyring,
    now: Timestamp,
    last_accepted: impl FnOnce(&ModelName) -> Option<Accepted>,
) -> Result<Verified, VerifyError> {
    let env = SignedManifest::from_json(envelope)?;
    let Some(pinned) = keyring.get(&env.key_id) else {
        return Err(VerifyError::UnknownKeyId {
            key_id: env.key_id.chars().take(80).collect(),
            known: keyring.key_ids(),
        });
    };
    let presented = decode_key("public_key", &env.public_key)?;
    if presented != *pinned {
        return Err(VerifyError::WrongKey {
            key_id: env.key_id,
            pinned: key_fingerprint(pinned),
            presented: key_fingerprint(&presented),
        });
    }
    let sig = B64
        .decode(&env.signature)
        .map_err(|e| VerifyError::Encoding {
            field: "signature",
            problem: format!("not base64: {e}"),
        })?;
    let sig = Signature::from_slice(&sig).map_err(|_| VerifyError::Encoding {
        field: "signature",
        problem: format!("{} bytes, an Ed25519 signature has 64", sig.len()),
    })?;
    let payload = B64
        .decode(&env.payload)
        .map_err(|e| VerifyError::Encoding {
            field: "payload",
            problem: format!("not base64: {e}"),
        })?;
    pinned
        .verify_strict(&payload, &sig)
        .map_err(|_| VerifyError::BadSignature {
            key_id: env.key_id.clone(),
        })?;

    // Only now, with the bytes authenticated, are they parsed.
    let manifest = Manifest::from_json(&payload)?;
    if manifest.key_id != env.key_id {
        return Err(VerifyError::KeyIdMismatch {
            envelope: env.key_id,
            manifest: manifest.key_id,
        });
    }
    let payload_digest = Digest::sha256(&payload);
    let version = manifest.manifest_version;
    let mut already_accepted = false;
    if let Some(last) = last_accepted(&manifest.model) {
        if version < last.manifest_version {
            return Err(VerifyError::OlderVersion {
                model: manifest.model,
                version,
                last_accepted: last.manifest_version,
            });
        }
        if version == last.manifest_version {
            if payload_digest != last.payload_digest {
                return Err(VerifyError::SameVersionDifferentContent {
                    model: manifest.model,
                    version,
                });
            }
            already_accepted = true;
        }
    }
    if now >= manifest.expires_at {
        return Err(VerifyError::Expired {
            model: manifest.model,
            version,
            expires_at: manifest.expires_at,
            now,
        });
    }
    Ok(Verified {
        manifest,
        payload,
        payload_digest,
        already_accepted,
    })
}

#[cfg(test)]
#[path = "signing_tests.rs"]
mod tests;
