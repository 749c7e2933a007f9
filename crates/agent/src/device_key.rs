//! The device's X25519 key pair for sealed models (#23): made when the
//! device registers, its public half sent to the fleet (which wraps release
//! content keys to it), its private half kept by a [`DeviceKeyStore`].
//!
//! Today's store is [`FileKeyStore`]: a mode-0600 file beside the device
//! identity, written whole (temp file, fsync, rename). The seams for the
//! platforms' own key stores are this trait's implementations, not built
//! here: Android Keystore (X25519 agreement inside the TEE on Android 12+,
//! so the private key never reaches the app's memory), the Apple Secure
//! Enclave (P-256 only: those devices would register a DHKEM(P-256) key),
//! and the Linux kernel keyring (`keyctl`, a user-session key).

use std::path::{Path, PathBuf};

use outpost_seal::wrap::{DevicePublic, DeviceSecret};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::AgentError;
use crate::identity::{read_json, write_json};

/// Where a device keeps its private key.
pub trait DeviceKeyStore {
    /// The stored key, or `None` when none was made yet.
    fn load(&self) -> Result<Option<DeviceSecret>, AgentError>;
    /// Keeps `secret`, replacing any older one.
    fn save(&self, secret: &DeviceSecret) -> Result<(), AgentError>;
}

/// `<store>/device-key.json`, mode 0600.
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    path: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    /// The X25519 private key, 64 hex digits.
    x25519_secret: String,
}

impl FileKeyStore {
    pub fn new(store_root: &Path) -> FileKeyStore {
        FileKeyStore {
            path: store_root.join("device-key.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DeviceKeyStore for FileKeyStore {
    fn load(&self) -> Result<Option<DeviceSecret>, AgentError> {
        let way_out =
            "it must hold the device's X25519 key; if it is lost, the device must register again";
        let Some(file) = read_json::<KeyFile>(&self.path, "the device key", way_out)? else {
            return Ok(None);
        };
        let bad = |problem: String| AgentError::Config {
            what: format!("the device key {}", self.path.display()),
            problem: format!("{problem}; {way_out}"),
        };
        let hex = Zeroizing::new(file.x25519_secret);
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex.as_bytes(), &mut *bytes)
            .map_err(|_| bad("x25519_secret is not 64 hex digits".into()))?;
        DeviceSecret::from_bytes(*bytes)
            .map(Some)
            .map_err(|e| bad(e.to_string()))
    }

    fn save(&self, secret: &DeviceSecret) -> Result<(), AgentError> {
        let x25519_secret = hex::encode(secret.as_bytes());
        write_json(&self.path, &KeyFile { x25519_secret })
    }
}

/// The device's key from `store`, made and saved first when there is none.
pub fn ensure(store: &dyn DeviceKeyStore) -> Result<DevicePublic, AgentError> {
    if let Some(s) = store.load()? {
        return Ok(s.public());
    }
    let secret = DeviceSecret::generate().map_err(|e| AgentError::Config {
        what: "the device key".into(),
        problem: e.to_string(),
    })?;
    store.save(&secret)?;
    Ok(secret.public())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_kept_0600_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("outpost-device-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = FileKeyStore::new(&dir);
        let public = ensure(&store).expect("made");
        assert_eq!(ensure(&store).expect("kept"), public, "not made twice");
        let mode = std::fs::metadata(store.path())
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(store.path(), r#"{"x25519_secret":"zz"}"#).expect("write");
        let e = store.load().expect_err("damaged");
        assert!(e.to_string().contains("64 hex digits"), "{e}");
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
