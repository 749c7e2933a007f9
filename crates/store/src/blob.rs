//! Putting a blob: stream into a temp file while hashing, fsync, check the
//! digest, rename into `blobs/`. Until the rename nothing is visible; a
//! writer dropped (or a process killed) before it leaves only a temp file.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use outpost_protocol::Digest;
use sha2::{Digest as _, Sha256};

use crate::error::{IoContext, Result, StoreError};
use crate::{fsutil, Store};

/// An unfinished blob. `write` as data comes, then `commit`. Dropping it
/// without committing deletes the temp file.
#[derive(Debug)]
pub struct BlobWriter<'a> {
    store: &'a Store,
    file: Option<File>,
    tmp: PathBuf,
    hasher: Sha256,
    written: u64,
    expected: Option<Digest>,
    length: Option<u64>,
    used_before: u64,
}

impl Store {
    /// Starts a blob. With `expected`, `commit` refuses other content; with
    /// `length`, the budget is checked now and more or fewer bytes are
    /// refused.
    pub fn writer(&self, expected: Option<&Digest>, length: Option<u64>) -> Result<BlobWriter<'_>> {
        let used_before = self.usage()?.total();
        if let Some(len) = length {
            self.check_budget(used_before, len, expected)?;
        }
        let (file, tmp) = fsutil::create_temp(&self.tmp_dir())?;
        Ok(BlobWriter {
            store: self,
            file: Some(file),
            tmp,
            hasher: Sha256::new(),
            written: 0,
            expected: expected.copied(),
            length,
            used_before,
        })
    }

    /// Streams `data` into the store and returns its digest; with
    /// `expected`, content that hashes otherwise is refused and not kept.
    pub fn put(&self, expected: Option<&Digest>, mut data: impl Read) -> Result<Digest> {
        let mut w = self.writer(expected, None)?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).ctx("read the data being stored into", w.tmp.clone()),
            };
            w.write(&buf[..n])?;
        }
        w.commit()
    }
}

impl BlobWriter<'_> {
    fn name(&self) -> String {
        self.expected
            .map(|d| d.to_string())
            .unwrap_or_else(|| "the blob being written".into())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends `bytes`; refuses (writing nothing) past `length` or the
    /// budget.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let after = self.written + bytes.len() as u64;
        if let Some(len) = self.length {
            if after > len {
                return Err(StoreError::LengthMismatch {
                    blob: self.name(),
                    expected: len,
                    actual: after,
                    what: "refusing the extra bytes",
                });
            }
        }
        if self.length.is_none() {
            self.store.check_budget(
                self.used_before + self.written,
                bytes.len() as u64,
                self.expected.as_ref(),
            )?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(StoreError::Io {
                action: "write to finished temp file",
                path: self.tmp.clone(),
                source: io::ErrorKind::BrokenPipe.into(),
            });
        };
        file.write_all(bytes).ctx("write", &self.tmp)?;
        self.hasher.update(bytes);
        self.written = after;
        Ok(())
    }

    /// fsync, check digest and length, rename into `blobs/`, fsync the
    /// directory. On any refusal the temp file is deleted.
    pub fn commit(mut self) -> Result<Digest> {
        let file = self.file.take();
        let actual = Digest::from_sha256_bytes(std::mem::take(&mut self.hasher).finalize().into());
        if let Some(file) = file {
            file.sync_all().ctx("fsync", &self.tmp)?;
        }
        if let Some(expected) = self.expected {
            if actual != expected {
                return Err(StoreError::HashMismatch {
                    expected,
                    actual,
                    bytes: self.written,
                });
            }
        }
        if let Some(len) = self.length {
            if self.written != len {
                return Err(StoreError::LengthMismatch {
                    blob: self.name(),
                    expected: len,
                    actual: self.written,
                    what: "the data was deleted and not stored",
                });
            }
        }
        let _refs = self.store.lock_refs();
        fsutil::commit_rename(&self.tmp, &self.store.blob_path(&actual))?;
        // Renamed: nothing for Drop to clean up.
        self.tmp = PathBuf::new();
        Ok(actual)
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        self.file = None;
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use crate::StoreConfig;
    use proptest::prelude::*;

    fn tmp_files(store: &Store) -> usize {
        fs::read_dir(store.tmp_dir()).expect("tmp").count()
    }

    #[test]
    fn put_stores_under_the_content_digest() {
        let dir = TestDir::new("put");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let d = store.put(None, &b"hello"[..]).expect("put");
        assert_eq!(d, Digest::sha256(b"hello"));
        assert!(store.contains(&d));
        assert_eq!(fs::read(store.blob_path(&d)).expect("read"), b"hello");
        assert_eq!(store.blobs().expect("list"), vec![(d, 5)]);
        assert_eq!(store.verify(&d).expect("verify"), 5);
        assert_eq!(tmp_files(&store), 0);
        // Putting it again is harmless.
        assert_eq!(store.put(Some(&d), &b"hello"[..]).expect("again"), d);
    }

    #[test]
    fn hash_mismatch_is_rejected_and_leaves_nothing() {
        let dir = TestDir::new("mismatch");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let expected = Digest::sha256(b"the real model");
        let e = store
            .put(Some(&expected), &b"something else"[..])
            .expect_err("mismatch");
        match &e {
            StoreError::HashMismatch {
                expected: x,
                actual,
                bytes,
            } => {
                assert_eq!(x, &expected);
                assert_eq!(actual, &Digest::sha256(b"something else"));
                assert_eq!(*bytes, 14);
            }
            other => panic!("expected HashMismatch, got {other:?}"),
        }
        assert!(e.to_string().contains("download it again"), "{e}");
        assert!(!store.contains(&expected));
        assert!(store.blobs().expect("list").is_empty());
        assert_eq!(tmp_files(&store), 0);
    }

    #[test]
    fn a_writer_dropped_before_commit_leaves_no_blob_and_no_temp() {
        let dir = TestDir::new("drop");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let mut w = store.writer(None, None).expect("writer");
        w.write(b"half a model").expect("write");
        assert_eq!(tmp_files(&store), 1);
        drop(w);
        assert!(store.blobs().expect("list").is_empty());
        assert_eq!(tmp_files(&store), 0);
    }

    #[test]
    fn a_crash_between_write_and_rename_leaves_no_visible_blob() {
        let dir = TestDir::new("crash");
        let data = b"a model that was being written when the power went";
        let digest = Digest::sha256(data);
        {
            let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
            let mut w = store
                .writer(Some(&digest), Some(data.len() as u64))
                .expect("writer");
            w.write(data).expect("write");
            // A crash: no commit, no Drop.
            std::mem::forget(w);
            assert!(!store.contains(&digest));
            assert!(store.blobs().expect("list").is_empty());
            assert_eq!(tmp_files(&store), 1, "the temp file is what is left");
        }
        // The next start removes the leftover; the blob never appeared.
        let store = Store::open(dir.path(), StoreConfig::default()).expect("reopen");
        assert_eq!(tmp_files(&store), 0);
        assert!(!store.contains(&digest));
        assert_eq!(store.usage().expect("usage").total(), 0);
    }

    #[test]
    fn length_is_enforced_both_ways() {
        let dir = TestDir::new("length");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let d = Digest::sha256(b"abcd");
        let mut w = store.writer(Some(&d), Some(4)).expect("writer");
        w.write(b"abc").expect("write");
        assert!(matches!(
            w.write(b"de"),
            Err(StoreError::LengthMismatch {
                expected: 4,
                actual: 5,
                ..
            })
        ));
        w.write(b"d").expect("the last byte");
        assert_eq!(w.commit().expect("commit"), d);

        let mut w = store.writer(None, Some(3)).expect("writer");
        let e = w.write(b"four").expect_err("longer than declared");
        assert!(
            e.to_string()
                .contains("the blob being written must be 3 bytes"),
            "{e}"
        );
        drop(w);

        let mut w = store.writer(None, Some(10)).expect("writer");
        w.write(b"short").expect("write");
        assert!(matches!(
            w.commit(),
            Err(StoreError::LengthMismatch {
                expected: 10,
                actual: 5,
                ..
            })
        ));
        assert_eq!(tmp_files(&store), 0);
    }

    #[test]
    fn the_budget_refuses_a_put_and_names_the_sizes() {
        let dir = TestDir::new("budget");
        let store = Store::open(
            dir.path(),
            StoreConfig {
                budget_bytes: Some(100),
            },
        )
        .expect("open");
        store.put(None, &[1u8; 60][..]).expect("fits");
        let d = Digest::sha256(&[2u8; 50]);
        let e = store.writer(Some(&d), Some(50)).expect_err("over budget");
        let msg = e.to_string();
        assert!(
            matches!(
                e,
                StoreError::OverBudget {
                    needed: 50,
                    used: 60,
                    would_use: 110,
                    budget: 100,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(
            msg.contains("110 bytes of the 100-byte disk budget (60 already used)"),
            "{msg}"
        );
        assert!(msg.contains(&d.to_string()), "{msg}");
        // Streaming with no known length stops when it crosses the budget.
        let e = store.put(None, &[3u8; 41][..]).expect_err("over budget");
        assert!(
            matches!(e, StoreError::OverBudget { budget: 100, .. }),
            "{e}"
        );
        assert_eq!(store.blobs().expect("list").len(), 1);
        assert_eq!(tmp_files(&store), 0);
        store.put(None, &[3u8; 40][..]).expect("exactly fits");
    }

    #[test]
    fn verify_finds_bytes_changed_on_disk() {
        let dir = TestDir::new("verify");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let d = store.put(None, &b"original"[..]).expect("put");
        fs::write(store.blob_path(&d), b"origina1").expect("corrupt it");
        assert!(matches!(store.verify(&d), Err(StoreError::Corrupt { .. })));
        // A good download replaces the damaged file.
        store.put(Some(&d), &b"original"[..]).expect("repair");
        assert_eq!(store.verify(&d).expect("verify"), 8);
        let absent = Digest::sha256(b"absent");
        assert!(matches!(
            store.verify(&absent),
            Err(StoreError::Missing { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn any_chunking_stores_the_same_blob(
            data in proptest::collection::vec(any::<u8>(), 0..5000),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let dir = TestDir::new("chunks");
            let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
            let digest = Digest::sha256(&data);
            let mut w = store.writer(Some(&digest), Some(data.len() as u64)).expect("writer");
            let mut at: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            at.push(0);
            at.push(data.len());
            at.sort();
            for pair in at.windows(2) {
                w.write(&data[pair[0]..pair[1]]).expect("write");
            }
            prop_assert_eq!(w.commit().expect("commit"), digest);
            prop_assert_eq!(fs::read(store.blob_path(&digest)).expect("read"), data);
        }
    }
}
