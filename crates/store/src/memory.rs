//! A sealed blob opened into memory only (#23): the plaintext goes into an
//! anonymous Linux memfd, sealed against any further change, and never
//! touches a file system. llama.cpp loads it by its `/proc/self/fd/N` path
//! like any file (and may mmap it). Dropping the [`MemoryModel`] closes
//! the memfd; the kernel frees its pages once nothing maps them.
//!
//! Every chunk is authenticated before its bytes are written (see
//! `outpost_seal::stream`), and the plaintext's SHA-256 is checked against
//! the manifest's when one is given. Elsewhere than Linux/Android the seam
//! is [`open_sealed`] itself: an iOS build would decrypt into an
//! anonymous mapping instead; that build is not made here.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use outpost_protocol::Digest;
use outpost_seal::{stream, ContentKey, SealError};
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};

/// A model's plaintext, in memory only.
#[derive(Debug)]
pub struct MemoryModel {
    file: File,
    len: u64,
    /// The plaintext's SHA-256, when it was checked.
    digest: Option<Digest>,
}

impl MemoryModel {
    /// The path llama.cpp (or anything in this process) opens it by.
    pub fn path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// Plaintext bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// SHA-256 of the plaintext, when the open checked it.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Lets child processes started while the guard lives open the model
    /// by the same [`MemoryModel::path`] (the agent's canary): the memfd's
    /// close-on-exec flag is cleared until the guard drops. The child gets
    /// the sealed, read-only memfd, never the key.
    pub fn inherit(&self) -> Result<Inherit<'_>> {
        set_cloexec(&self.file, false).map_err(|source| StoreError::Io {
            action: "let a child process open",
            path: self.path(),
            source,
        })?;
        Ok(Inherit(self))
    }
}

/// See [`MemoryModel::inherit`].
#[derive(Debug)]
pub struct Inherit<'a>(&'a MemoryModel);

impl Drop for Inherit<'_> {
    fn drop(&mut self) {
        let _ = set_cloexec(&self.0.file, true);
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_cloexec(file: &File, on: bool) -> io::Result<()> {
    use rustix::io::{fcntl_setfd, FdFlags};
    let flags = if on { FdFlags::CLOEXEC } else { FdFlags::empty() };
    fcntl_setfd(file, flags).map_err(io::Error::from)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_cloexec(_: &File, _: bool) -> io::Result<()> {
    Ok(())
}

/// Opens the sealed blob at `path` with `key` into memory. Chunks are
/// opened on up to 4 threads (each authenticated before its bytes are
/// written). With `plaintext` (an install: once per blob), the opened bytes
/// must also hash to it; a load of an installed blob can skip that, since
/// every chunk is authenticated under the release's key and the header
/// binds the length.
pub fn open_sealed(
    path: &Path,
    key: &ContentKey,
    plaintext: Option<&Digest>,
) -> Result<MemoryModel> {
    let io = |action: &'static str| {
        move |source: io::Error| StoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let bad = |source: SealError| StoreError::Sealed {
        path: path.to_path_buf(),
        source,
    };
    let sealed = File::open(path).map_err(io("open"))?;
    let mut head = [0u8; stream::HEADER_LEN];
    sealed
        .read_exact_at(&mut head, 0)
        .map_err(|_| bad(SealError::Format("shorter than the header".into())))?;
    let header = stream::Header::decode(&head).map_err(bad)?;
    let on_disk = sealed.metadata().map_err(io("read the size of"))?.len();
    if on_disk != header.sealed_len() {
        return Err(bad(SealError::Format(format!(
            "{on_disk} bytes, but its header describes a {}-byte blob",
            header.sealed_len()
        ))));
    }
    let cipher = stream::Cipher::new(key, header);
    let mem = memfd(path)?;
    let header = cipher.header();
    mem.set_len(header.plaintext_len)
        .map_err(io("size the in-memory copy of"))?;
    let chunks = header.chunks();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
        .min(chunks as usize)
        .max(1) as u64;
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (cipher, sealed, mem) = (&cipher, &sealed, &mem);
                s.spawn(move || -> Result<()> {
                    let h = cipher.header();
                    let mut buf = Zeroizing::new(Vec::new());
                    for i in (t..chunks).step_by(threads as usize) {
                        buf.resize(h.plain_len(i) + stream::TAG_LEN, 0);
                        sealed
                            .read_exact_at(&mut buf, h.sealed_offset(i))
                            .map_err(io("read"))?;
                        cipher.open_chunk(i, &mut buf).map_err(bad)?;
                        mem.write_all_at(&buf, i * u64::from(h.chunk_size))
                            .map_err(io("write the in-memory copy of"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a sealed-chunk worker panicked"))
    })?;
    let len = header.plaintext_len;
    let digest = if let Some(want) = plaintext {
        let (actual, _) = crate::hash_reader(&mem).map_err(io("hash the in-memory copy of"))?;
        if *want != actual {
            return Err(StoreError::PlaintextMismatch {
                path: path.to_path_buf(),
                expected: *want,
                actual,
            });
        }
        Some(actual)
    } else {
        None
    };
    seal_against_change(&mem, path)?;
    Ok(MemoryModel {
        file: mem,
        len,
        digest,
    })
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn memfd(path: &Path) -> Result<File> {
    use rustix::fs::{memfd_create, MemfdFlags};
    let fd = memfd_create(
        "outpost-model",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(|e| StoreError::Io {
        action: "create an in-memory file (memfd) for",
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    Ok(File::from(fd))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn seal_against_change(mem: &File, path: &Path) -> Result<()> {
    use rustix::fs::{fcntl_add_seals, SealFlags};
    fcntl_add_seals(
        mem,
        SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
    )
    .map_err(|e| StoreError::Io {
        action: "seal the in-memory copy of",
        path: path.to_path_buf(),
        source: e.into(),
    })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn memfd(path: &Path) -> Result<File> {
    Err(StoreError::Damaged {
        path: path.to_path_buf(),
        problem: "memory-only models need Linux or Android (memfd); this platform's seam is \
                  an anonymous mapping, not built here"
            .into(),
    })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn seal_against_change(_: &File, _: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use std::io::{Read, Seek, Write};

    fn sealed_file(dir: &Path, plain: &[u8], key: &ContentKey) -> PathBuf {
        let path = dir.join("model.sealed");
        let mut out = File::create(&path).expect("create");
        stream::seal(key, plain.len() as u64, 4096, &mut &plain[..], &mut out).expect("seal");
        path
    }

    #[test]
    fn opens_into_a_sealed_memfd_readable_by_path() {
        let dir = TestDir::new("memory-open");
        let key = ContentKey::generate().expect("key");
        let plain: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let path = sealed_file(dir.path(), &plain, &key);
        let m = open_sealed(&path, &key, Some(&Digest::sha256(&plain))).expect("open");
        assert_eq!(m.len(), plain.len() as u64);
        let mut back = Vec::new();
        File::open(m.path())
            .expect("by path")
            .read_to_end(&mut back)
            .expect("read");
        assert_eq!(back, plain);
        // Sealed: no one in this process can change the model under llama.cpp.
        let mut f = File::options().write(true).open(m.path()).expect("reopen");
        f.rewind().expect("rewind");
        assert!(f.write_all(b"x").is_err(), "writes are sealed off");
        assert!(f.set_len(1).is_err(), "shrinking is sealed off");
        assert!(!std::fs::read_link(m.path())
            .expect("link")
            .starts_with(dir.path()));
    }

    #[test]
    fn wrong_key_altered_blob_or_other_plaintext_is_refused() {
        let dir = TestDir::new("memory-refuse");
        let key = ContentKey::generate().expect("key");
        let plain = vec![42u8; 9000];
        let path = sealed_file(dir.path(), &plain, &key);
        let other = ContentKey::generate().expect("key");
        let e = open_sealed(&path, &other, None).expect_err("wrong key");
        assert!(
            e.to_string().contains("chunk 0 failed authentication"),
            "{e}"
        );
        let e = open_sealed(&path, &key, Some(&Digest::sha256(b"something else")))
            .expect_err("other plaintext");
        assert!(e.to_string().contains("plaintext"), "{e}");
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 3;
        bytes[last] ^= 0x80;
        std::fs::write(&path, &bytes).expect("write");
        let e = open_sealed(&path, &key, None).expect_err("altered");
        assert!(e.to_string().contains("chunk 2"), "{e}");
    }
}
