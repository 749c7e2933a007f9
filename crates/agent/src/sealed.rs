//! Sealed models on the device (#23). At install the agent asks the fleet
//! for the blob's content key with a fresh nonce, checks the answer is for
//! this blob, this device and this request, opens the HPKE wrap with the
//! device key, and opens the blob into memory only (`outpost_store::
//! open_sealed`: every chunk authenticated, the plaintext's digest checked).
//! The canary runs on that in-memory copy.
//!
//! So that `outpost serve --store` can open the model later without asking
//! the fleet, the content key is kept in `<store>/keys/<hex>.json`, wrapped
//! again (HPKE) to the device's own public key: only the device key opens
//! it, and no key is ever on disk in the clear. Keys of blobs the store no
//! longer holds are removed with them ([`prune`]).

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use outpost_protocol::fleet::{KeyGrant, KeyRequest};
use outpost_protocol::manifest::Encryption;
use outpost_protocol::{Digest, Manifest};
use outpost_seal::wrap::{unwrap, wrap, DeviceSecret, Grant, WrappedKey};
use outpost_seal::ContentKey;
use outpost_store::{open_sealed, MemoryModel, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::device_key::DeviceKeyStore;
use crate::identity::{read_json, write_json};
use crate::{Agent, AgentError};

/// Why a sealed install was refused: the short code sent to the fleet and
/// the whole story for the operator. The installed model stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: &'static str,
    pub reason: String,
}

fn refused(code: &'static str, reason: impl Into<String>) -> Refused {
    Refused {
        code,
        reason: reason.into(),
    }
}

/// Opens a grant the fleet sent in answer to this device's request for
/// `digest` with `nonce`, at unix time `now`. The wrap is bound to the
/// request as the device made it (not as the answer restates it), so an
/// answer recorded for another request, device or blob does not open.
pub fn open_grant(
    g: &KeyGrant,
    digest: &Digest,
    device_id: &str,
    nonce: &[u8; 16],
    secret: &DeviceSecret,
    now: u64,
) -> Result<ContentKey, Refused> {
    if g.digest != *digest || g.device_id != device_id {
        return Err(refused(
            "key-mismatch",
            format!(
                "the fleet answered with a key for {} on device {}, but this device ({device_id}) asked for {digest}: refusing it",
                g.digest, g.device_id
            ),
        ));
    }
    if now >= g.expires_at {
        return Err(refused(
            "key-expired",
            format!(
                "the key grant expired at unix time {} (now {now}): an old answer, or this device's clock is wrong",
                g.expires_at
            ),
        ));
    }
    let bad = |what: &str| {
        refused(
            "key-unwrap",
            format!("the key grant's {what} is not base64 of the right length"),
        )
    };
    let wrapped = wrapped_from_base64(&g.enc, &g.ciphertext).map_err(bad)?;
    let grant = Grant {
        release: g.release.clone(),
        digest: digest.to_string(),
        device_id: device_id.to_string(),
        expires_at: g.expires_at,
        request_nonce: *nonce,
    };
    unwrap(&wrapped, secret, &grant, now).map_err(|e| {
        refused(
            "key-unwrap",
            format!("{e} (is the device key the one this device registered?)"),
        )
    })
}

/// A wrapped key from its two base64 fields (a grant's or a kept key's);
/// `Err` names the field that is not base64 of the right length.
fn wrapped_from_base64(enc: &str, ciphertext: &str) -> Result<WrappedKey, &'static str> {
    let enc: [u8; 32] = B64
        .decode(enc)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("enc")?;
    let ciphertext = B64.decode(ciphertext).map_err(|_| "ciphertext")?;
    Ok(WrappedKey { enc, ciphertext })
}

/// A content key kept on the device, wrapped to the device's own key.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeptKey {
    digest: Digest,
    /// HPKE's encapsulated key and the wrapped key, standard base64.
    enc: String,
    ciphertext: String,
}

/// What a kept key is bound to (HPKE info and associated data).
fn kept_grant(digest: &Digest) -> Grant {
    Grant {
        release: "kept-on-device".into(),
        digest: digest.to_string(),
        device_id: "self".into(),
        expires_at: u64::MAX,
        request_nonce: [0; 16],
    }
}

fn kept_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("keys").join(format!("{}.json", digest.hex()))
}

/// Keeps `key` for the blob `digest`, wrapped to `secret`'s public key.
pub fn keep(
    root: &Path,
    secret: &DeviceSecret,
    digest: &Digest,
    key: &ContentKey,
) -> Result<(), AgentError> {
    let w = wrap(key, &secret.public(), &kept_grant(digest)).map_err(|e| AgentError::Config {
        what: format!("keeping the content key of {digest}"),
        problem: e.to_string(),
    })?;
    let path = kept_path(root, digest);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| AgentError::Io {
            action: "create",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    write_json(
        &path,
        &KeptKey {
            digest: *digest,
            enc: B64.encode(w.enc),
            ciphertext: B64.encode(&w.ciphertext),
        },
    )
}

/// The kept content key of the blob `digest`, opened with the device key.
pub fn kept_key(
    root: &Path,
    keys: &dyn DeviceKeyStore,
    digest: &Digest,
) -> Result<ContentKey, AgentError> {
    let path = kept_path(root, digest);
    let fail = |problem: String| AgentError::Config {
        what: format!("the kept content key {}", path.display()),
        problem,
    };
    let k: KeptKey = read_json(&path, "the kept content key", "run the agent again: it asks the fleet anew")?
        .ok_or_else(|| fail(format!("there is none for {digest}: the agent keeps one when it installs a sealed model; run it again")))?;
    let secret = keys
        .load()?
        .ok_or_else(|| fail("this device has no device key: it must register again".into()))?;
    let wrapped = wrapped_from_base64(&k.enc, &k.ciphertext)
        .map_err(|what| fail(format!("{what} is not base64 of the right length")))?;
    unwrap(&wrapped, &secret, &kept_grant(digest), 0).map_err(|e| {
        fail(format!(
            "{e}; the device key changed since it was kept: run the agent again"
        ))
    })
}

/// Opens the installed sealed blob `digest` into memory with its kept key
/// (for `outpost serve --store` and canary re-runs), in the background
/// (`MemoryModel::wait_for` waits for its bytes). The plaintext digest is
/// not re-checked here: every chunk is authenticated under the key.
pub fn open_installed(
    store: &Store,
    root: &Path,
    keys: &dyn DeviceKeyStore,
    digest: &Digest,
) -> Result<MemoryModel, AgentError> {
    let key = kept_key(root, keys, digest)?;
    Ok(outpost_store::open_sealed_background(
        &store.blob_path(digest),
        &key,
    )?)
}

/// Removes kept keys whose blob the store no longer holds.
pub fn prune(store: &Store, root: &Path) {
    let Ok(dir) = std::fs::read_dir(root.join("keys")) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if let Ok(d) = Digest::parse(&format!("sha256:{hex}")) {
            if !store.contains(&d) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Agent {
    /// Gets the content key of `m`'s downloaded sealed blob from the fleet
    /// and opens the blob into memory, checking the plaintext against
    /// `enc`. `Ok(Err(_))`: refused (the installed model stays); `Err`: the
    /// fleet is away or busy (try again later).
    pub(crate) fn unseal(
        &self,
        m: &Manifest,
        enc: &Encryption,
    ) -> Result<Result<MemoryModel, Refused>, AgentError> {
        let digest = &m.variant.digest;
        let Some(secret) = self.keys.load()? else {
            return Ok(Err(refused(
                "no-device-key",
                "this device has no device key, so no content key can be opened: register it again",
            )));
        };
        let mut nonce = [0u8; 16];
        getrandom::getrandom(&mut nonce).map_err(|e| AgentError::Config {
            what: "a content-key request".into(),
            problem: format!("no random nonce: {e}"),
        })?;
        let req = KeyRequest {
            digest: *digest,
            nonce: hex::encode(nonce),
        };
        let grant = match self.client.content_key(&req) {
            Ok(g) => g,
            Err(AgentError::Fleet {
                status, message, ..
            }) if matches!(status, 403 | 404 | 409) => {
                return Ok(Err(refused(
                    "key-refused",
                    format!("the fleet refused the content key ({status}): {message}"),
                )))
            }
            Err(e) => return Err(e),
        };
        let now = crate::clock::now().unix_seconds();
        let key = match open_grant(
            &grant,
            digest,
            &self.identity.device_id,
            &nonce,
            &secret,
            now,
        ) {
            Ok(k) => k,
            Err(r) => return Ok(Err(r)),
        };
        let mem = match open_sealed(
            &self.store.blob_path(digest),
            &key,
            Some(&enc.plaintext_digest),
        ) {
            Ok(mem) => mem,
            Err(e @ StoreError::Sealed { .. }) => {
                return Ok(Err(refused("tampered", e.to_string())))
            }
            Err(e @ StoreError::PlaintextMismatch { .. }) => {
                return Ok(Err(refused("plaintext-mismatch", e.to_string())))
            }
            Err(e) => return Err(e.into()),
        };
        keep(&self.cfg.store_root, &secret, digest, &key)?;
        Ok(Ok(mem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (DeviceSecret, ContentKey, Digest, [u8; 16], KeyGrant) {
        let secret = DeviceSecret::generate().expect("device key");
        let key = ContentKey::generate().expect("content key");
        let digest = Digest::sha256(b"sealed blob");
        let nonce = [9u8; 16];
        // What the fleet does (crates/fleet/src/content_keys.rs).
        let g = Grant {
            release: "m@1".into(),
            digest: digest.to_string(),
            device_id: "dev-1".into(),
            expires_at: 1_300,
            request_nonce: nonce,
        };
        let w = wrap(&key, &secret.public(), &g).expect("wrap");
        let answer = KeyGrant {
            release: g.release,
            digest,
            device_id: "dev-1".into(),
            expires_at: 1_300,
            nonce: hex::encode(nonce),
            enc: B64.encode(w.enc),
            ciphertext: B64.encode(&w.ciphertext),
        };
        (secret, key, digest, nonce, answer)
    }

    #[test]
    fn a_grant_opens_only_for_the_request_it_answers() {
        let (secret, key, digest, nonce, g) = setup();
        let got = open_grant(&g, &digest, "dev-1", &nonce, &secret, 1_000).expect("opens");
        assert_eq!(got.as_bytes(), key.as_bytes());

        // Replayed: the same answer to a later request (another nonce).
        let e = open_grant(&g, &digest, "dev-1", &[1; 16], &secret, 1_000).expect_err("replay");
        assert_eq!(e.code, "key-unwrap", "{}", e.reason);
        assert!(e.reason.contains("replayed"), "{}", e.reason);
        // Its nonce restated to match does not help: the wrap is bound.
        let mut forged = g.clone();
        forged.nonce = hex::encode([1u8; 16]);
        assert_eq!(
            open_grant(&forged, &digest, "dev-1", &[1; 16], &secret, 1_000)
                .expect_err("forged")
                .code,
            "key-unwrap"
        );
        // Expired.
        let e = open_grant(&g, &digest, "dev-1", &nonce, &secret, 1_300).expect_err("expired");
        assert_eq!(e.code, "key-expired");
        assert!(e.reason.contains("1300"), "{}", e.reason);
        // An expiry moved forward breaks the binding.
        let mut later = g.clone();
        later.expires_at = 9_999;
        assert_eq!(
            open_grant(&later, &digest, "dev-1", &nonce, &secret, 1_500)
                .expect_err("moved")
                .code,
            "key-unwrap"
        );
        // Wrong device key.
        let other = DeviceSecret::generate().expect("other");
        let e = open_grant(&g, &digest, "dev-1", &nonce, &other, 1_000).expect_err("wrong key");
        assert_eq!(e.code, "key-unwrap");
        assert!(e.reason.contains("device key"), "{}", e.reason);
        // An answer about another blob or device.
        let e = open_grant(&g, &Digest::sha256(b"x"), "dev-1", &nonce, &secret, 1_000)
            .expect_err("blob");
        assert_eq!(e.code, "key-mismatch");
        assert_eq!(
            open_grant(&g, &digest, "dev-2", &nonce, &secret, 1_000)
                .expect_err("device")
                .code,
            "key-mismatch"
        );
    }

    #[test]
    fn a_kept_key_opens_only_with_the_device_key() {
        let root = std::env::temp_dir().join(format!("outpost-kept-{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("dir");
        let ks = crate::device_key::FileKeyStore::new(&root);
        crate::device_key::ensure(&ks).expect("device key");
        let secret = ks.load().expect("load").expect("some");
        let (_, key, digest, _, _) = setup();
        keep(&root, &secret, &digest, &key).expect("keep");
        let text = std::fs::read(kept_path(&root, &digest)).expect("kept");
        assert!(
            !text.windows(32).any(|w| w == key.as_bytes()),
            "the key is not in the clear"
        );
        let b64 = B64.encode(key.as_bytes());
        assert!(
            !String::from_utf8_lossy(&text).contains(&b64),
            "nor in base64"
        );
        assert_eq!(
            kept_key(&root, &ks, &digest).expect("opens").as_bytes(),
            key.as_bytes()
        );
        // Another device key does not open it.
        ks.save(&DeviceSecret::generate().expect("new"))
            .expect("save");
        let e = kept_key(&root, &ks, &digest).expect_err("other device key");
        assert!(e.to_string().contains("device key changed"), "{e}");
        std::fs::remove_dir_all(&root).expect("clean");
    }
}
