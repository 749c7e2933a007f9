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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use outpost_protocol::Digest;
use outpost_seal::{stream, ContentKey, SealError};
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};

/// A model's plaintext, in memory only.
#[derive(Debug)]
pub struct MemoryModel {
    file: Arc<File>,
    len: u64,
    /// The plaintext's SHA-256, when it was checked.
    digest: Option<Digest>,
    /// The background opening (`None` never happens today; kept optional
    /// so a model can be made from an already complete memfd).
    job: Option<Arc<Job>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Drop for MemoryModel {
    fn drop(&mut self) {
        if let Some(job) = &self.job {
            job.cancelled.store(true, Ordering::Relaxed);
        }
    }
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

    /// Blocks until the first `bytes` bytes of the plaintext are in memory
    /// (all of it, and the memfd sealed, for `bytes >= len`), or returns why
    /// they never will be (a tampered chunk, a read or write failure).
    pub fn wait_for(&self, bytes: u64) -> Result<()> {
        let Some(job) = &self.job else {
            return Ok(());
        };
        let chunk = u64::from(job.cipher.header().chunk_size);
        let all = bytes >= self.len;
        let need = bytes.min(self.len).div_ceil(chunk);
        let mut buf = Zeroizing::new(Vec::new());
        loop {
            let s = job.arrival.lock();
            if let Some(f) = &s.failed {
                return Err(match f {
                    Failure::Tampered(index) => StoreError::Sealed {
                        path: job.path.clone(),
                        source: SealError::Tampered { index: *index },
                    },
                    Failure::Io(m) => StoreError::Io {
                        action: "open into memory",
                        path: job.path.clone(),
                        source: io::Error::other(m.clone()),
                    },
                });
            }
            if if all { s.complete } else { s.prefix >= need } {
                return Ok(());
            }
            drop(s);
            // Rather than sleep, open the next chunk nobody took; when none
            // is left, sleep until the others' chunks are in.
            if !job.step(&mut buf) {
                let s = job.arrival.lock();
                let waiting =
                    s.failed.is_none() && !(if all { s.complete } else { s.prefix >= need });
                if waiting {
                    drop(
                        job.arrival
                            .changed
                            .wait_timeout(s, std::time::Duration::from_millis(50))
                            .unwrap_or_else(|p| p.into_inner()),
                    );
                }
            }
        }
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
    let flags = if on {
        FdFlags::CLOEXEC
    } else {
        FdFlags::empty()
    };
    fcntl_setfd(file, flags).map_err(io::Error::from)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_cloexec(_: &File, _: bool) -> io::Result<()> {
    Ok(())
}

/// Opens the sealed blob at `path` with `key` into memory and waits until
/// every chunk is in (see [`open_sealed_background`]). With `plaintext`
/// (an install: once per blob), the opened bytes must also hash to it; a
/// load of an installed blob can skip that, since every chunk is
/// authenticated under the release's key and the header binds the length.
pub fn open_sealed(
    path: &Path,
    key: &ContentKey,
    plaintext: Option<&Digest>,
) -> Result<MemoryModel> {
    let mut m = open_sealed_background(path, key)?;
    m.wait_for(m.len)?;
    if let Some(want) = plaintext {
        let (actual, _) = crate::hash_reader(&*m.file).map_err(|source| StoreError::Io {
            action: "hash the in-memory copy of",
            path: path.to_path_buf(),
            source,
        })?;
        if *want != actual {
            return Err(StoreError::PlaintextMismatch {
                path: path.to_path_buf(),
                expected: *want,
                actual,
            });
        }
        m.digest = Some(actual);
    }
    Ok(m)
}

/// Opens the sealed blob at `path` with `key` into memory on up to 4
/// background threads, in chunk order, and returns at once: the header and
/// size are checked, the memfd has its full length. Each chunk is
/// authenticated before its bytes are written; [`MemoryModel::wait_for`]
/// blocks until a prefix is in (or says why it never will be), so a loader
/// can parse the GGUF header while the weights are still being opened. The
/// memfd is sealed against change once the last chunk is in.
pub fn open_sealed_background(path: &Path, key: &ContentKey) -> Result<MemoryModel> {
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
    let mem = memfd(path)?;
    mem.set_len(header.plaintext_len)
        .map_err(io("size the in-memory copy of"))?;
    let chunks = header.chunks();
    // One core is left to the caller (llama.cpp parsing the metadata),
    // which joins in whenever it waits for bytes (`wait_for`).
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .min(4)
        .min(chunks as usize)
        .max(1);
    let len = header.plaintext_len;
    let job = Arc::new(Job {
        cipher: stream::Cipher::new(key, header),
        sealed,
        mem: Arc::new(mem),
        path: path.to_path_buf(),
        next: AtomicU64::new(0),
        cancelled: AtomicBool::new(false),
        arrival: Arrival::new(chunks),
    });
    for _ in 0..threads {
        let job = job.clone();
        std::thread::Builder::new()
            .name("outpost-unseal".into())
            .spawn(move || job.work())
            .map_err(io("start a thread to open"))?;
    }
    Ok(MemoryModel {
        file: job.mem.clone(),
        len,
        digest: None,
        job: Some(job),
    })
}

/// The background opening of one sealed blob.
struct Job {
    cipher: stream::Cipher,
    sealed: File,
    mem: Arc<File>,
    path: PathBuf,
    /// The next chunk a worker takes (in order, so prefixes fill first).
    next: AtomicU64,
    /// Set when the model is dropped before it was fully opened.
    cancelled: AtomicBool,
    arrival: Arrival,
}

impl Job {
    /// A background thread: takes chunks until none is left.
    fn work(&self) {
        let mut buf = Zeroizing::new(Vec::new());
        while !self.cancelled.load(Ordering::Relaxed) && self.step(&mut buf) {}
    }

    /// Opens the next chunk nobody took yet; false when none is left or
    /// the opening failed. Whoever completes the last one seals the memfd.
    fn step(&self, buf: &mut Vec<u8>) -> bool {
        let h = self.cipher.header();
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if i >= h.chunks() {
            return false;
        }
        buf.resize(h.plain_len(i) + stream::TAG_LEN, 0);
        let r = self
            .sealed
            .read_exact_at(buf, h.sealed_offset(i))
            .map_err(|e| Failure::Io(format!("reading chunk {i}: {e}")))
            .and_then(|()| {
                self.cipher
                    .open_chunk(i, buf)
                    .map_err(|_| Failure::Tampered(i))
            })
            .and_then(|()| {
                self.mem
                    .write_all_at(buf, i * u64::from(h.chunk_size))
                    .map_err(|e| Failure::Io(format!("writing chunk {i} to memory: {e}")))
            });
        if let Err(f) = r {
            self.arrival.fail(f);
            return false;
        }
        if self.arrival.done(i) {
            self.finish();
        }
        true
    }

    /// Every chunk is in: seal the memfd against any change.
    fn finish(&self) {
        match seal_against_change(&self.mem, &self.path) {
            Ok(()) => self.arrival.complete(),
            Err(e) => self.arrival.fail(Failure::Io(e.to_string())),
        }
    }
}

/// Why a background opening stopped.
#[derive(Debug, Clone)]
enum Failure {
    Tampered(u64),
    Io(String),
}

/// Which chunks are in: the contiguous prefix, under a lock the waiters
/// sleep on.
struct Arrival {
    state: Mutex<ArrivalState>,
    changed: Condvar,
}

struct ArrivalState {
    done: Vec<bool>,
    /// Chunks `0..prefix` are in.
    prefix: u64,
    /// Every chunk is in and the memfd is sealed.
    complete: bool,
    failed: Option<Failure>,
}

impl Arrival {
    fn new(chunks: u64) -> Arrival {
        Arrival {
            state: Mutex::new(ArrivalState {
                done: vec![false; chunks as usize],
                prefix: 0,
                complete: chunks == 0,
                failed: None,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ArrivalState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Chunk `i` is in; true when that completed the last gap.
    fn done(&self, i: u64) -> bool {
        let mut s = self.lock();
        s.done[i as usize] = true;
        let before = s.prefix;
        while s.done.get(s.prefix as usize) == Some(&true) {
            s.prefix += 1;
        }
        if s.prefix != before {
            self.changed.notify_all();
        }
        before != s.prefix && s.prefix as usize == s.done.len()
    }

    fn fail(&self, f: Failure) {
        self.lock().failed.get_or_insert(f);
        self.changed.notify_all();
    }

    fn complete(&self) {
        self.lock().complete = true;
        self.changed.notify_all();
    }
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

    #[test]
    fn a_background_opening_gives_prefixes_in_order_and_names_a_bad_chunk() {
        let dir = TestDir::new("memory-background");
        let key = ContentKey::generate().expect("key");
        let plain: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let path = sealed_file(dir.path(), &plain, &key);
        let m = open_sealed_background(&path, &key).expect("open");
        m.wait_for(10_000).expect("prefix");
        let mut head = vec![0u8; 10_000];
        File::open(m.path())
            .expect("by path")
            .read_exact(&mut head)
            .expect("read");
        assert_eq!(head, plain[..10_000]);
        m.wait_for(u64::MAX).expect("all");
        assert_eq!(std::fs::read(m.path()).expect("read"), plain);
        let mut f = File::options().write(true).open(m.path()).expect("reopen");
        assert!(f.write_all(b"x").is_err(), "sealed once complete");

        // Chunk 150 of 196 altered: the prefix before it arrives, the
        // whole never does, and the error names the chunk.
        let mut bytes = std::fs::read(&path).expect("read");
        let at = stream::HEADER_LEN + 150 * (4096 + stream::TAG_LEN) + 7;
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        let m = open_sealed_background(&path, &key).expect("open");
        m.wait_for(4096 * 100)
            .expect("the prefix before the bad chunk");
        let e = m.wait_for(u64::MAX).expect_err("tampered");
        assert!(e.to_string().contains("chunk 150"), "{e}");
        // Dropped while opening: the workers stop, nothing hangs.
        drop(open_sealed_background(&path, &key).expect("open"));
    }
}
