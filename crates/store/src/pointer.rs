//! The active-model pointer: `active/<model>.json` names the blob a model
//! runs and the one it ran before. It is replaced whole (temp file, fsync,
//! rename), so a reader or a crash sees the old pointer or the new one.

use std::fs;
use std::io;

use outpost_protocol::{Digest, ModelName};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result, StoreError};
use crate::{fsutil, Store};

/// What a model runs now, and what it ran before (kept for rollback and
/// never garbage-collected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pointer {
    pub active: Digest,
    pub previous: Option<Digest>,
}

impl Store {
    /// The pointer of `model`, or `None` if it was never activated. A
    /// damaged pointer file is an error, never "none".
    pub fn active(&self, model: &ModelName) -> Result<Option<Pointer>> {
        let path = self.pointer_path(model);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx("read", path),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Damaged {
                path,
                problem: e.to_string(),
            })
    }

    /// Every model with a pointer.
    pub fn models(&self) -> Result<Vec<(ModelName, Pointer)>> {
        let mut out = Vec::new();
        for model in self.models_in("active")? {
            if let Some(p) = self.active(&model)? {
                out.push((model, p));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Makes `digest` the active blob of `model`; the old active one becomes
    /// `previous`. The blob must be present. Activating the active blob
    /// changes nothing.
    pub fn activate(&self, model: &ModelName, digest: &Digest) -> Result<Pointer> {
        let _refs = self.lock_refs();
        self.require_blob(digest)?;
        let old = self.active(model)?;
        let new = match old {
            Some(p) if p.active == *digest => return Ok(p),
            Some(p) => Pointer {
                active: *digest,
                previous: Some(p.active),
            },
            None => Pointer {
                active: *digest,
                previous: None,
            },
        };
        self.write_pointer(model, &new)?;
        Ok(new)
    }

    /// Swaps active and previous (a local rollback, e.g. after a failed
    /// canary). The previous blob must still be present.
    pub fn rollback(&self, model: &ModelName) -> Result<Pointer> {
        let _refs = self.lock_refs();
        let Some(Pointer {
            active,
            previous: Some(previous),
        }) = self.active(model)?
        else {
            return Err(StoreError::NoPrevious {
                model: model.clone(),
            });
        };
        self.require_blob(&previous)?;
        let new = Pointer {
            active: previous,
            previous: Some(active),
        };
        self.write_pointer(model, &new)?;
        Ok(new)
    }

    fn require_blob(&self, digest: &Digest) -> Result<()> {
        if !self.contains(digest) {
            return Err(StoreError::Missing {
                digest: *digest,
                path: self.blob_path(digest),
            });
        }
        Ok(())
    }

    fn write_pointer(&self, model: &ModelName, p: &Pointer) -> Result<()> {
        let path = self.pointer_path(model);
        let bytes = serde_json::to_vec(p).map_err(|e| StoreError::Damaged {
            path: path.clone(),
            problem: e.to_string(),
        })?;
        fsutil::write_atomic_at(
            &self.tmp_dir(),
            &path,
            &bytes,
            Some("activate-before-rename"),
        )
    }
}

impl Store {
    /// The models with a `<model>.json` file in folder `sub` of the store
    /// (other names are ignored).
    pub(crate) fn models_in(&self, sub: &str) -> Result<Vec<ModelName>> {
        let dir = self.root().join(sub);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).ctx("list", &dir)? {
            let name = entry.ctx("list", &dir)?.file_name();
            if let Some(model) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| ModelName::parse(n).ok())
            {
                out.push(model);
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
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn model(name: &str) -> ModelName {
        ModelName::parse(name).expect("name")
    }

    #[test]
    fn activation_keeps_the_previous_version() {
        let dir = TestDir::new("activate");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let m = model("smollm2-135m");
        assert_eq!(store.active(&m).expect("read"), None);
        let a = store.put(None, &b"v1"[..]).expect("put");
        let b = store.put(None, &b"v2"[..]).expect("put");
        let c = store.put(None, &b"v3"[..]).expect("put");
        assert_eq!(
            store.activate(&m, &a).expect("a"),
            Pointer {
                active: a,
                previous: None
            }
        );
        store.activate(&m, &b).expect("b");
        assert_eq!(
            store.activate(&m, &b).expect("b again"),
            Pointer {
                active: b,
                previous: Some(a)
            },
            "re-activating the active blob changes nothing"
        );
        store.activate(&m, &c).expect("c");
        assert_eq!(
            store.active(&m).expect("read"),
            Some(Pointer {
                active: c,
                previous: Some(b)
            })
        );
        assert_eq!(
            store.rollback(&m).expect("rollback"),
            Pointer {
                active: b,
                previous: Some(c)
            }
        );
        assert_eq!(
            store.models().expect("models"),
            vec![(
                m,
                store.active(&model("smollm2-135m")).expect("r").expect("p")
            )]
        );
    }

    #[test]
    fn activation_needs_the_blob_and_rollback_needs_a_previous() {
        let dir = TestDir::new("needs");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let m = model("m");
        let absent = Digest::sha256(b"absent");
        let e = store.activate(&m, &absent).expect_err("missing");
        assert!(matches!(e, StoreError::Missing { .. }), "{e}");
        assert!(matches!(
            store.rollback(&m),
            Err(StoreError::NoPrevious { .. })
        ));
        let a = store.put(None, &b"a"[..]).expect("put");
        store.activate(&m, &a).expect("a");
        let e = store.rollback(&m).expect_err("no previous");
        assert!(e.to_string().contains("no previous version"), "{e}");
    }

    #[test]
    fn a_damaged_pointer_is_an_error_not_an_absence() {
        let dir = TestDir::new("damaged");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let m = model("m");
        fs::write(store.pointer_path(&m), b"{\"active\":").expect("write");
        assert!(matches!(store.active(&m), Err(StoreError::Damaged { .. })));
    }

    #[test]
    fn a_crash_while_switching_leaves_the_old_pointer_whole() {
        let dir = TestDir::new("switchcrash");
        let m = model("m");
        let (a, b);
        {
            let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
            a = store.put(None, &b"a"[..]).expect("put");
            b = store.put(None, &b"b"[..]).expect("put");
            store.activate(&m, &a).expect("a");
            // The switch to b died after writing half its temp file.
            let (mut f, _) = fsutil::create_temp(&store.tmp_dir()).expect("temp");
            let full = serde_json::to_vec(&Pointer {
                active: b,
                previous: Some(a),
            })
            .expect("json");
            f.write_all(&full[..full.len() / 2]).expect("write");
        }
        let store = Store::open(dir.path(), StoreConfig::default()).expect("reopen");
        assert_eq!(
            store.active(&m).expect("read"),
            Some(Pointer {
                active: a,
                previous: None
            })
        );
        assert_eq!(fs::read_dir(store.tmp_dir()).expect("tmp").count(), 0);
    }

    #[test]
    fn readers_never_see_a_torn_pointer() {
        let dir = TestDir::new("torn");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let m = model("m");
        let blobs: Vec<Digest> = (0..4u8)
            .map(|i| store.put(None, &[i][..]).expect("put"))
            .collect();
        store.activate(&m, &blobs[0]).expect("first");
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut reads = 0u32;
                while !done.load(Ordering::Relaxed) || reads < 100 {
                    // Every read parses and names two of our blobs.
                    let p = store.active(&m).expect("a whole pointer").expect("present");
                    assert!(blobs.contains(&p.active));
                    assert!(p
                        .previous
                        .is_none_or(|d| blobs.contains(&d) && d != p.active));
                    reads += 1;
                }
                reads
            });
            for i in 1..400 {
                store.activate(&m, &blobs[i % 4]).expect("switch");
            }
            done.store(true, Ordering::Relaxed);
            assert!(reader.join().expect("reader") >= 100);
        });
    }
}
