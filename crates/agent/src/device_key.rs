//! The device's X25519 key pair for sealed models (#23): made when the
//! device registers, its public half sent to the fleet (which wraps release
//! content keys to it), its private half kept by a [`DeviceKeyStore`].
//!
//! Two stores are built ([`KeyStoreKind`] picks one; `outpost agent
//! --device-key-store`): [`FileKeyStore`], a mode-0600 file beside the
//! device identity, written whole (temp file, fsync, rename), and, on
//! Linux, [`KernelKeyring`]: the key lives in the kernel's user keyring
//! (`keyctl`), readable only by processes of the same user and never on
//! disk, but gone at reboot (the device then registers again). The seams
//! for the platforms' own key stores are further implementations of the
//! trait, not built here: Android Keystore (X25519 agreement inside the TEE
//! on Android 12+, so the private key never reaches the app's memory) and
//! the Apple Secure Enclave (P-256 only: those devices would register a
//! DHKEM(P-256) key).

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

/// Which [`DeviceKeyStore`] a device uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyStoreKind {
    /// [`FileKeyStore`] (the default: survives reboots).
    #[default]
    File,
    /// [`KernelKeyring`] (Linux and Android only).
    KernelKeyring,
}

impl std::str::FromStr for KeyStoreKind {
    type Err = String;

    fn from_str(text: &str) -> Result<KeyStoreKind, String> {
        KeyStoreKind::parse(text).map_err(|e| e.to_string())
    }
}

impl KeyStoreKind {
    /// `file` or `kernel-keyring`.
    pub fn parse(text: &str) -> Result<KeyStoreKind, AgentError> {
        match text {
            "file" => Ok(KeyStoreKind::File),
            "kernel-keyring" => Ok(KeyStoreKind::KernelKeyring),
            other => Err(AgentError::Config {
                what: "the device key store".into(),
                problem: format!("{other:?} is not one: choose `file` or `kernel-keyring`"),
            }),
        }
    }

    /// The store of this kind for the device store at `store_root`.
    pub fn open(self, store_root: &Path) -> Box<dyn DeviceKeyStore + Send + Sync> {
        match self {
            KeyStoreKind::File => Box::new(FileKeyStore::new(store_root)),
            KeyStoreKind::KernelKeyring => Box::new(KernelKeyring::new(store_root)),
        }
    }
}

/// The key in the kernel's user keyring (`@u`), as a `user` key named
/// `outpost-device-key:<store folder>`.
#[derive(Debug, Clone)]
pub struct KernelKeyring {
    description: String,
}

impl KernelKeyring {
    pub fn new(store_root: &Path) -> KernelKeyring {
        let root = store_root
            .canonicalize()
            .unwrap_or_else(|_| store_root.to_path_buf());
        KernelKeyring {
            description: format!("outpost-device-key:{}", root.display()),
        }
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// Removes the key from the keyring (the device then registers again).
    /// `false` when there was none.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn forget(&self) -> Result<bool, AgentError> {
        use linux_keyutils::{KeyError, KeyRing, KeyRingIdentifier};
        let ring = KeyRing::from_special_id(KeyRingIdentifier::User, false)
            .map_err(|e| self.fail("opening the user keyring", format!("{e:?}")))?;
        match ring.search(&self.description) {
            Ok(k) => k
                .invalidate()
                .map(|()| true)
                .map_err(|e| self.fail("removing the key", format!("{e:?}"))),
            Err(KeyError::KeyDoesNotExist | KeyError::KeyRevoked | KeyError::KeyExpired) => {
                Ok(false)
            }
            Err(e) => Err(self.fail("searching", format!("{e:?}"))),
        }
    }

    fn fail(&self, action: &str, e: impl std::fmt::Display) -> AgentError {
        AgentError::Config {
            what: format!("the device key in the kernel keyring ({})", self.description),
            problem: format!("{action} failed: {e}; use --device-key-store file where keyctl is not allowed (some containers forbid it)"),
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl DeviceKeyStore for KernelKeyring {
    fn load(&self) -> Result<Option<DeviceSecret>, AgentError> {
        use linux_keyutils::{KeyError, KeyRing, KeyRingIdentifier};
        let ring = KeyRing::from_special_id(KeyRingIdentifier::User, true)
            .map_err(|e| self.fail("opening the user keyring", format!("{e:?}")))?;
        let key = match ring.search(&self.description) {
            Ok(k) => k,
            // A removed key can still be found, dead, until the kernel's
            // garbage collector runs: it is gone all the same.
            Err(KeyError::KeyDoesNotExist | KeyError::KeyRevoked | KeyError::KeyExpired) => {
                return Ok(None)
            }
            Err(e) => return Err(self.fail("searching", format!("{e:?}"))),
        };
        let mut bytes = Zeroizing::new([0u8; 32]);
        let n = key
            .read(&mut *bytes)
            .map_err(|e| self.fail("reading", format!("{e:?}")))?;
        if n != 32 {
            return Err(self.fail("reading", format!("the key holds {n} bytes, not 32")));
        }
        DeviceSecret::from_bytes(*bytes)
            .map(Some)
            .map_err(|e| self.fail("reading", e))
    }

    fn save(&self, secret: &DeviceSecret) -> Result<(), AgentError> {
        use linux_keyutils::{KeyRing, KeyRingIdentifier};
        let ring = KeyRing::from_special_id(KeyRingIdentifier::User, true)
            .map_err(|e| self.fail("opening the user keyring", format!("{e:?}")))?;
        ring.add_key(&self.description, secret.as_bytes())
            .map(drop)
            .map_err(|e| self.fail("adding the key", format!("{e:?}")))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl DeviceKeyStore for KernelKeyring {
    fn load(&self) -> Result<Option<DeviceSecret>, AgentError> {
        Err(self.fail("opening", "this platform has no Linux kernel keyring"))
    }

    fn save(&self, _: &DeviceSecret) -> Result<(), AgentError> {
        Err(self.fail("opening", "this platform has no Linux kernel keyring"))
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

    #[test]
    fn the_kernel_keyring_keeps_a_key_off_disk() {
        let dir = std::env::temp_dir().join(format!("outpost-keyring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ring = KernelKeyring::new(&dir);
        assert!(ring.load().expect("search").is_none(), "none before");
        let public = ensure(&ring).expect("made");
        assert_eq!(
            ensure(&ring).expect("kept"),
            public,
            "read back, not made twice"
        );
        assert_eq!(
            std::fs::read_dir(&dir).expect("dir").count(),
            0,
            "nothing written to the store folder"
        );
        // Another store folder is another key.
        let other = dir.join("other");
        std::fs::create_dir_all(&other).expect("dir");
        assert!(KernelKeyring::new(&other).load().expect("search").is_none());
        // Removed, so the test leaves no key behind.
        assert!(ring.forget().expect("forget"));
        assert!(ring.load().expect("search").is_none());
        // A new key under the same name while the old one may still be
        // found dead (a device that registers again).
        let again = ensure(&ring).expect("made again");
        assert_ne!(again, public, "a new key");
        assert_eq!(ensure(&ring).expect("kept"), again);
        assert!(ring.forget().expect("forget"));
        assert!(!ring.forget().expect("forget again"));
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
