//! Accepted manifests: `manifests/<model>.json` holds the last signed
//! manifest envelope a model accepted, byte for byte. Its version is the
//! floor for the next one, so it survives restarts; a damaged file is an
//! error, never "nothing accepted yet" (that would reopen rollbacks).

use std::fs;
use std::io;

use outpost_protocol::signing::{self, Accepted, Keyring, SignedManifest, Verified};
use outpost_protocol::{Digest, Manifest, ModelName, Timestamp};

use crate::error::{IoContext, Result, StoreError};
use crate::{fsutil, Store};

/// The last accepted manifest of a model, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredManifest {
    /// The envelope exactly as it was received and verified.
    pub envelope: Vec<u8>,
    pub manifest: Manifest,
    pub accepted: Accepted,
}

impl Store {
    /// Verifies a signed manifest against `keyring`, `now` and this
    /// model's last accepted version (see `signing::verify`), and if it is
    /// new, stores it as the model's accepted manifest. Stores nothing on
    /// any error.
    pub fn accept_manifest(
        &self,
        envelope: &[u8],
        keyring: &Keyring,
        now: Timestamp,
    ) -> Result<Verified> {
        let _refs = self.lock_refs();
        let mut lookup_failed = None;
        let verified = signing::verify(envelope, keyring, now, |model| {
            match self.accepted_manifest(model) {
                Ok(stored) => stored.map(|s| s.accepted),
                Err(e) => {
                    lookup_failed = Some(e);
                    None
                }
            }
        });
        // A floor we could not read is not "no floor".
        if let Some(e) = lookup_failed {
            return Err(e);
        }
        let verified = verified?;
        if !verified.already_accepted {
            let path = self.manifest_path(&verified.manifest.model);
            fsutil::write_atomic(&self.tmp_dir(), &path, envelope)?;
        }
        Ok(verified)
    }

    /// The last manifest `model` accepted, if any. Not re-verified: it was
    /// verified before it was written, and the keys may have rotated since.
    pub fn accepted_manifest(&self, model: &ModelName) -> Result<Option<StoredManifest>> {
        self.read_manifest(&self.manifest_path(model), model)
    }

    /// Records `envelope` (an accepted manifest) as the one blob `digest`
    /// of `model` was installed by, so its release stays known after
    /// newer manifests are accepted or a rollback makes it active again.
    pub fn record_installed(
        &self,
        model: &ModelName,
        digest: &Digest,
        envelope: &[u8],
    ) -> Result<()> {
        let path = self.installed_path(model, digest);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).ctx("create directory", dir)?;
        }
        fsutil::write_atomic(&self.tmp_dir(), &path, envelope)
    }

    /// The manifest blob `digest` of `model` was installed by, if recorded.
    pub fn installed_manifest(
        &self,
        model: &ModelName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>> {
        self.read_manifest(&self.installed_path(model, digest), model)
    }

    fn read_manifest(
        &self,
        path: &std::path::Path,
        model: &ModelName,
    ) -> Result<Option<StoredManifest>> {
        let envelope = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx("read", path),
        };
        let damaged = |problem: String| StoreError::Damaged {
            path: path.to_path_buf(),
            problem,
        };
        let payload = SignedManifest::from_json(&envelope)
            .and_then(|env| env.payload_bytes())
            .map_err(|e| damaged(e.to_string()))?;
        let manifest = Manifest::from_json(&payload).map_err(|e| damaged(e.to_string()))?;
        if manifest.model != *model {
            return Err(damaged(format!(
                "it holds the manifest of {}",
                manifest.model
            )));
        }
        let accepted = Accepted {
            manifest_version: manifest.manifest_version,
            payload_digest: Digest::sha256(&payload),
        };
        Ok(Some(StoredManifest {
            envelope,
            manifest,
            accepted,
        }))
    }

    /// The blobs named by accepted manifests (GC keeps them: a download in
    /// progress or waiting for activation).
    pub(crate) fn manifest_digests(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for model in self.models_in("manifests")? {
            if let Some(m) = self.accepted_manifest(&model)? {
                out.push(m.manifest.variant.digest);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use crate::StoreConfig;
    use ed25519_dalek::SigningKey;
    use outpost_protocol::VerifyError;

    const NOW: Timestamp = Timestamp::from_unix_seconds(1_800_000_000);

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    fn ring() -> Keyring {
        let mut r = Keyring::new();
        r.insert("k1", key().verifying_key());
        r
    }

    pub(crate) fn manifest_json(model: &str, version: u64, digest: &Digest) -> Vec<u8> {
        format!(
            r#"{{"manifest_version":{version},"key_id":"k1","expires_at":"2030-01-01T00:00:00Z","model":"{model}","model_version":"1","device_class":"test","variant":{{"digest":"{digest}","length":4,"quantization":"Q8_0"}},"runtime":{{"n_ctx":512,"kv_cache_type":"f16","threads":1}},"requires":{{"min_app_version":"0.1.0","min_engine_version":"0.1.0","ggml_types":["q8_0"]}},"canaries":[{{"prompt":"Hi","position":2,"top":[[1,-0.5]]}}],"encryption":null}}"#
        )
        .into_bytes()
    }

    fn envelope(model: &str, version: u64) -> Vec<u8> {
        let digest = Digest::sha256(format!("{model}{version}").as_bytes());
        signing::sign(&manifest_json(model, version, &digest), "k1", &key()).to_json()
    }

    #[test]
    fn the_accepted_version_is_a_floor_that_survives_restarts() {
        let dir = TestDir::new("accept");
        {
            let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
            let v = store
                .accept_manifest(&envelope("m", 5), &ring(), NOW)
                .expect("v5");
            assert!(!v.already_accepted);
            let again = store
                .accept_manifest(&envelope("m", 5), &ring(), NOW)
                .expect("v5 again");
            assert!(again.already_accepted);
        }
        let store = Store::open(dir.path(), StoreConfig::default()).expect("reopen");
        let m = ModelName::parse("m").expect("name");
        let stored = store.accepted_manifest(&m).expect("read").expect("stored");
        assert_eq!(stored.envelope, envelope("m", 5), "stored byte for byte");
        assert_eq!(stored.accepted.manifest_version, 5);
        let e = store
            .accept_manifest(&envelope("m", 4), &ring(), NOW)
            .expect_err("older");
        assert!(
            matches!(
                e,
                StoreError::Manifest(VerifyError::OlderVersion {
                    version: 4,
                    last_accepted: 5,
                    ..
                })
            ),
            "{e}"
        );
        // Another model has its own floor.
        store
            .accept_manifest(&envelope("other", 1), &ring(), NOW)
            .expect("other");
        store
            .accept_manifest(&envelope("m", 6), &ring(), NOW)
            .expect("v6");
        assert_eq!(
            store
                .accepted_manifest(&m)
                .expect("read")
                .expect("stored")
                .accepted
                .manifest_version,
            6
        );
    }

    #[test]
    fn a_refused_manifest_changes_nothing() {
        let dir = TestDir::new("refuse");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        store
            .accept_manifest(&envelope("m", 5), &ring(), NOW)
            .expect("v5");
        let late = Timestamp::parse("2031-01-01T00:00:00Z").expect("t");
        let e = store
            .accept_manifest(&envelope("m", 6), &ring(), late)
            .expect_err("expired");
        assert!(
            matches!(e, StoreError::Manifest(VerifyError::Expired { .. })),
            "{e}"
        );
        let m = ModelName::parse("m").expect("name");
        let stored = store.accepted_manifest(&m).expect("read").expect("stored");
        assert_eq!(stored.accepted.manifest_version, 5);
    }

    #[test]
    fn a_damaged_floor_refuses_instead_of_forgetting() {
        let dir = TestDir::new("floor");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        store
            .accept_manifest(&envelope("m", 5), &ring(), NOW)
            .expect("v5");
        let m = ModelName::parse("m").expect("name");
        fs::write(store.manifest_path(&m), b"garbage").expect("damage");
        let e = store
            .accept_manifest(&envelope("m", 1), &ring(), NOW)
            .expect_err("damaged floor");
        assert!(matches!(e, StoreError::Damaged { .. }), "{e}");
    }
}
