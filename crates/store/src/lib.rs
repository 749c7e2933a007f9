//! The device's model store: content-addressed blobs on local disk, the
//! one place where a [`Digest`] or a [`ModelName`] becomes a path. No
//! network, not async.
//!
//! ```text
//! <root>/blobs/sha256-<hex>     finished, verified blobs (never written in place)
//! <root>/partial/sha256-<hex>   resumable downloads; their size is the byte count
//! <root>/tmp/                   files being written; emptied by `Store::open`
//! <root>/active/<model>.json    {"active": digest, "previous": digest|null}
//! <root>/manifests/<model>.json the last accepted signed manifest, as received
//! <root>/installed/<model>/sha256-<hex>.json  the manifest that blob was installed by
//! <root>/telemetry.sqlite       the telemetry spool (see `spool`)
//! ```
//!
//! Every write goes to a new file, is fsynced, renamed into place, and the
//! directory fsynced, so a crash leaves either the old state or the new
//! one, never a half-written blob or pointer. One process owns a store.
//!
//! ```
//! # let root = std::env::temp_dir().join(format!("outpost-store-doc-{}", std::process::id()));
//! use outpost_protocol::{Digest, ModelName};
//! use outpost_store::{Store, StoreConfig};
//!
//! let store = Store::open(&root, StoreConfig::default())?;
//! let data = b"GGUF...";
//! let digest = Digest::sha256(data);
//! store.put(Some(&digest), &data[..])?;
//! let model = ModelName::parse("smollm2-135m")?;
//! let pointer = store.activate(&model, &digest)?;
//! assert_eq!(pointer.active, digest);
//! # std::fs::remove_dir_all(&root)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod blob;
mod crash;
mod error;
mod fsutil;
mod gc;
mod manifests;
mod memory;
mod partial;
mod pointer;
pub mod spool;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use outpost_protocol::{Digest, ModelName};
use sha2::{Digest as _, Sha256};

pub use blob::BlobWriter;
pub use crash::{crash_point, crash_value, CRASH_VAR};
pub use error::{Result, StoreError};
pub use gc::GcReport;
pub use manifests::StoredManifest;
pub use memory::{open_sealed, open_sealed_background, Inherit, MemoryModel};
pub use partial::Partial;
pub use pointer::Pointer;

use error::IoContext;

/// How a store is set up.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// Most bytes that blobs, partial downloads and temp files may take
    /// together; `None` (the default) means no limit beyond the disk's.
    pub budget_bytes: Option<u64>,
}

/// Bytes on disk, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub blobs: u64,
    pub partial: u64,
    pub temp: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.blobs + self.partial + self.temp
    }
}

/// A store rooted at one directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    config: StoreConfig,
    /// Held by anything that reads or changes what is referenced (pointer
    /// switches, manifest acceptance, commits) and by GC for its whole run,
    /// so GC never sees a half-made reference.
    refs: Mutex<()>,
}

const BLOBS: &str = "blobs";
const PARTIAL: &str = "partial";
const TMP: &str = "tmp";
const ACTIVE: &str = "active";
const MANIFESTS: &str = "manifests";
const INSTALLED: &str = "installed";

impl Store {
    /// Opens (creating if needed) the store at `root`, and removes the
    /// temp files a crashed writer left behind.
    pub fn open(root: impl AsRef<Path>, config: StoreConfig) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        for dir in [BLOBS, PARTIAL, TMP, ACTIVE, MANIFESTS, INSTALLED] {
            let d = root.join(dir);
            fs::create_dir_all(&d).ctx("create directory", &d)?;
        }
        let store = Store {
            root,
            config,
            refs: Mutex::new(()),
        };
        store.clean_temp()?;
        Ok(store)
    }

    /// Opens an existing store to read it (pointers, blobs, install
    /// records) while the process that owns it (the agent) may be writing:
    /// creates nothing and leaves `tmp/` alone. For `outpost serve`.
    pub fn open_reader(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        let active = root.join(ACTIVE);
        if !active.is_dir() {
            return Err(StoreError::Damaged {
                path: active,
                problem: "not found: this is not a model store, or nothing was installed yet"
                    .into(),
            });
        }
        Ok(Store {
            root,
            config: StoreConfig::default(),
            refs: Mutex::new(()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Where a finished blob lives. The digest is valid by construction,
    /// so its file name cannot leave `blobs/`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(BLOBS).join(digest.file_name())
    }

    pub(crate) fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(PARTIAL).join(digest.file_name())
    }

    pub(crate) fn pointer_path(&self, model: &ModelName) -> PathBuf {
        self.root.join(ACTIVE).join(format!("{model}.json"))
    }

    pub(crate) fn manifest_path(&self, model: &ModelName) -> PathBuf {
        self.root.join(MANIFESTS).join(format!("{model}.json"))
    }

    pub(crate) fn installed_dir(&self, model: &ModelName) -> PathBuf {
        self.root.join(INSTALLED).join(model.as_str())
    }

    pub(crate) fn installed_path(&self, model: &ModelName, digest: &Digest) -> PathBuf {
        self.installed_dir(model)
            .join(format!("{}.json", digest.file_name()))
    }

    /// The telemetry spool's database file.
    pub fn spool_path(&self) -> PathBuf {
        self.root.join("telemetry.sqlite")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP)
    }

    pub(crate) fn lock_refs(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data, so a panic elsewhere cannot leave
        // anything inconsistent behind it.
        self.refs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a finished blob with this digest is present (not verified).
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Size of a finished blob.
    pub fn blob_len(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::Missing {
                digest: *digest,
                path,
            }),
            Err(e) => Err(e).ctx("stat", path),
        }
    }

    /// Every finished blob and its size, sorted by digest. Files in
    /// `blobs/` whose names are not digests are not the store's and are
    /// skipped.
    pub fn blobs(&self) -> Result<Vec<(Digest, u64)>> {
        self.list(&self.root.join(BLOBS))
    }

    /// Every partial download and the bytes it has so far.
    pub fn partials(&self) -> Result<Vec<(Digest, u64)>> {
        self.list(&self.root.join(PARTIAL))
    }

    fn list(&self, dir: &Path) -> Result<Vec<(Digest, u64)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).ctx("list", dir)? {
            let entry = entry.ctx("list", dir)?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(digest) = Digest::from_file_name(&name) else {
                continue;
            };
            match entry.metadata() {
                Ok(m) if m.is_file() => out.push((digest, m.len())),
                _ => {}
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-hashes a stored blob; `Corrupt` if its bytes changed on disk.
    /// Returns its size.
    pub fn verify(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    digest: *digest,
                    path,
                })
            }
            Err(e) => return Err(e).ctx("open", path),
        };
        let (actual, len) = hash_reader(file).ctx("read", &path)?;
        if actual != *digest {
            return Err(StoreError::Corrupt {
                digest: *digest,
                actual,
            });
        }
        Ok(len)
    }

    /// Bytes used now, by kind.
    pub fn usage(&self) -> Result<Usage> {
        Ok(Usage {
            blobs: fsutil::dir_bytes(&self.root.join(BLOBS))?,
            partial: fsutil::dir_bytes(&self.root.join(PARTIAL))?,
            temp: fsutil::dir_bytes(&self.tmp_dir())?,
        })
    }

    /// Refuses to grow usage from `used` by `needed` past the budget.
    pub(crate) fn check_budget(
        &self,
        used: u64,
        needed: u64,
        digest: Option<&Digest>,
    ) -> Result<()> {
        let Some(budget) = self.config.budget_bytes else {
            return Ok(());
        };
        let would_use = used.saturating_add(needed);
        if would_use > budget {
            return Err(StoreError::OverBudget {
                for_what: digest.map(|d| format!(" for {d}")).unwrap_or_default(),
                needed,
                used,
                would_use,
                budget,
            });
        }
        Ok(())
    }

    /// Removes everything in `tmp/`: only unfinished writes live there.
    fn clean_temp(&self) -> Result<()> {
        let dir = self.tmp_dir();
        for entry in fs::read_dir(&dir).ctx("list", &dir)? {
            let path = entry.ctx("list", &dir)?.path();
            if path.is_file() {
                fs::remove_file(&path).ctx("remove stale temp file", &path)?;
            }
        }
        Ok(())
    }
}

/// SHA-256 and length of the file at `path`, streamed.
pub fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    hash_reader(fs::File::open(path)?)
}

/// SHA-256 and length of everything `r` yields.
pub(crate) fn hash_reader(mut r: impl Read) -> io::Result<(Digest, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((Digest::from_sha256_bytes(h.finalize().into()), len))
}

#[cfg(test)]
pub(crate) mod testdir {
    //! A fresh directory per test, removed when dropped.
    use std::path::{Path, PathBuf};

    pub struct TestDir(PathBuf);

    impl TestDir {
        pub fn new(name: &str) -> TestDir {
            let p = std::env::temp_dir().join(format!(
                "outpost-store-{name}-{}",
                crate::fsutil::temp_name()
            ));
            std::fs::create_dir_all(&p).expect("test dir");
            TestDir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
