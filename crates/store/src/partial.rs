//! Resumable downloads: `partial/sha256-<hex>` grows by appends; its size
//! is the byte count to resume from. Finalizing checks length and hash and
//! renames it into `blobs/`; a hash mismatch deletes it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use outpost_protocol::Digest;
use sha2::{Digest as _, Sha256};

use crate::error::{IoContext, Result, StoreError};
use crate::{fsutil, Store};

/// An open partial download of one blob of known digest and length.
#[derive(Debug)]
pub struct Partial<'a> {
    store: &'a Store,
    digest: Digest,
    length: u64,
    path: PathBuf,
    file: File,
    hasher: Sha256,
    present: u64,
}

impl Store {
    /// Opens the partial download of `digest` (`length` bytes in all),
    /// creating it empty or resuming it: the bytes already present are
    /// re-hashed so that `finalize` can check the whole. A partial longer
    /// than `length` is deleted and refused. The remaining bytes must fit
    /// the disk budget. Keep at most one `Partial` per digest open.
    pub fn open_partial(&self, digest: &Digest, length: u64) -> Result<Partial<'_>> {
        let path = self.partial_path(digest);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .ctx("open partial download", &path)?;
        let (hasher, present) = rehash(&file).ctx("read partial download", &path)?;
        if present > length {
            drop(file);
            fs::remove_file(&path).ctx("remove over-long partial download", &path)?;
            return Err(StoreError::LengthMismatch {
                blob: digest.to_string(),
                expected: length,
                actual: present,
                what: "the partial download was longer, so it was deleted: start it again",
            });
        }
        let used_before = self.usage()?.total();
        self.check_budget(used_before, length - present, Some(digest))?;
        Ok(Partial {
            store: self,
            digest: *digest,
            length,
            path,
            file,
            hasher,
            present,
        })
    }

    /// Deletes the partial download of `digest`, if any.
    pub fn discard_partial(&self, digest: &Digest) -> Result<()> {
        let path = self.partial_path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).ctx("remove partial download", path)
            }
            _ => Ok(()),
        }
    }
}

fn rehash(mut file: &File) -> io::Result<(Sha256, u64)> {
    let mut h = Sha256::new();
    let n = io::copy(&mut file, &mut HashSink(&mut h))?;
    Ok((h, n))
}

struct HashSink<'a>(&'a mut Sha256);

impl Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Partial<'_> {
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Bytes present: where the download resumes (e.g. an HTTP Range start).
    pub fn present(&self) -> u64 {
        self.present
    }

    /// Bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.length - self.present
    }

    /// Appends the next bytes; refuses (writing nothing) more than the
    /// declared length.
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let after = self.present + bytes.len() as u64;
        if after > self.length {
            return Err(StoreError::LengthMismatch {
                blob: self.digest.to_string(),
                expected: self.length,
                actual: after,
                what: "refusing the extra bytes (the source sends more than the manifest says)",
            });
        }
        self.file.write_all(bytes).ctx("append to", &self.path)?;
        self.hasher.update(bytes);
        self.present = after;
        Ok(())
    }

    /// Makes the bytes appended so far durable (call it now and then; what
    /// was not synced may be lost in a crash and is downloaded again).
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync_data().ctx("fsync", &self.path)
    }

    /// Checks the length and the hash and moves the blob into place. Too
    /// few bytes: the partial stays, to be resumed. Wrong hash: the partial
    /// is deleted.
    pub fn finalize(self) -> Result<Digest> {
        if self.present != self.length {
            return Err(StoreError::LengthMismatch {
                blob: self.digest.to_string(),
                expected: self.length,
                actual: self.present,
                what: "the partial download is kept: resume it",
            });
        }
        let actual = Digest::from_sha256_bytes(self.hasher.finalize().into());
        if actual != self.digest {
            drop(self.file);
            fs::remove_file(&self.path).ctx("remove corrupt partial download", &self.path)?;
            return Err(StoreError::HashMismatch {
                expected: self.digest,
                actual,
                bytes: self.present,
            });
        }
        self.file.sync_all().ctx("fsync", &self.path)?;
        drop(self.file);
        let _refs = self.store.lock_refs();
        crate::crash::crash_point("install-before-rename");
        fsutil::commit_rename(&self.path, &self.store.blob_path(&self.digest))?;
        crate::crash::crash_point("install-after-rename");
        if let Some(dir) = self.path.parent() {
            fsutil::fsync_dir(dir)?;
        }
        Ok(self.digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use crate::StoreConfig;
    use proptest::prelude::*;

    fn data() -> Vec<u8> {
        (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn a_download_resumes_where_it_stopped() {
        let dir = TestDir::new("resume");
        let data = data();
        let digest = Digest::sha256(&data);
        let len = data.len() as u64;
        {
            let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
            let mut p = store.open_partial(&digest, len).expect("partial");
            assert_eq!(p.present(), 0);
            p.append(&data[..3000]).expect("append");
            p.sync().expect("sync");
            // The connection drops; the process even restarts.
        }
        let store = Store::open(dir.path(), StoreConfig::default()).expect("reopen");
        assert_eq!(store.partials().expect("partials"), vec![(digest, 3000)]);
        assert!(!store.contains(&digest), "a partial is not a blob");
        let mut p = store.open_partial(&digest, len).expect("resume");
        assert_eq!(p.present(), 3000);
        assert_eq!(p.remaining(), 7000);
        p.append(&data[3000..]).expect("append");
        assert_eq!(p.finalize().expect("finalize"), digest);
        assert!(store.contains(&digest));
        assert!(store.partials().expect("partials").is_empty());
        assert_eq!(store.verify(&digest).expect("verify"), len);
    }

    #[test]
    fn finalize_with_missing_bytes_keeps_the_partial() {
        let dir = TestDir::new("short");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let data = data();
        let digest = Digest::sha256(&data);
        let mut p = store
            .open_partial(&digest, data.len() as u64)
            .expect("partial");
        p.append(&data[..10]).expect("append");
        let e = p.finalize().expect_err("short");
        assert!(e.to_string().contains("resume"), "{e}");
        assert_eq!(store.partials().expect("partials"), vec![(digest, 10)]);
    }

    #[test]
    fn a_hash_mismatch_deletes_the_partial() {
        let dir = TestDir::new("badhash");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let mut data = data();
        let digest = Digest::sha256(&data);
        data[5000] ^= 1;
        let mut p = store
            .open_partial(&digest, data.len() as u64)
            .expect("partial");
        p.append(&data).expect("append");
        let e = p.finalize().expect_err("mismatch");
        assert!(matches!(e, StoreError::HashMismatch { expected, .. } if expected == digest));
        assert!(store.partials().expect("partials").is_empty());
        assert!(!store.contains(&digest));
    }

    #[test]
    fn more_bytes_than_declared_are_refused() {
        let dir = TestDir::new("long");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let digest = Digest::sha256(b"abc");
        let mut p = store.open_partial(&digest, 3).expect("partial");
        p.append(b"ab").expect("append");
        assert!(matches!(
            p.append(b"cd"),
            Err(StoreError::LengthMismatch {
                expected: 3,
                actual: 4,
                ..
            })
        ));
        assert_eq!(p.present(), 2, "nothing of the refused chunk was written");
        drop(p);
        // Reopened with a smaller declared length, it is too long: deleted.
        let e = store.open_partial(&digest, 1).expect_err("too long");
        assert!(matches!(e, StoreError::LengthMismatch { .. }), "{e}");
        assert!(store.partials().expect("partials").is_empty());
    }

    #[test]
    fn the_budget_counts_what_is_still_to_come() {
        let dir = TestDir::new("pbudget");
        let store = Store::open(
            dir.path(),
            StoreConfig {
                budget_bytes: Some(1000),
            },
        )
        .expect("open");
        store.put(None, &[0u8; 600][..]).expect("put");
        let big = Digest::sha256(b"big");
        let e = store.open_partial(&big, 500).expect_err("over");
        assert!(
            matches!(
                e,
                StoreError::OverBudget {
                    needed: 500,
                    used: 600,
                    ..
                }
            ),
            "{e}"
        );
        let mut p = store.open_partial(&big, 400).expect("fits");
        p.append(&[1u8; 100]).expect("append");
        drop(p);
        // Resuming needs only the remaining 300 bytes (usage now 700).
        assert!(store.open_partial(&big, 400).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn any_interruption_pattern_ends_in_the_same_blob(
            stops in proptest::collection::vec(0usize..10_000, 0..5),
        ) {
            let dir = TestDir::new("pprop");
            let data = data();
            let digest = Digest::sha256(&data);
            let mut stops = stops;
            stops.sort();
            stops.push(data.len());
            let mut from = 0;
            for stop in stops {
                let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
                let mut p = store.open_partial(&digest, data.len() as u64).expect("partial");
                prop_assert_eq!(p.present(), from as u64);
                p.append(&data[from..stop.max(from)]).expect("append");
                from = stop.max(from);
                if from == data.len() {
                    prop_assert_eq!(p.finalize().expect("finalize"), digest);
                }
            }
            let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
            prop_assert_eq!(store.verify(&digest).expect("verify"), data.len() as u64);
        }
    }
}
