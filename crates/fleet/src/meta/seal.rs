//! Sealing a release at publish (`outpost fleet publish --encrypt`, #23).
//!
//! Every variant file of a [`ReleaseDir`] is sealed under one fresh content
//! key per release (`outpost_seal::stream`: XChaCha20-Poly1305 in STREAM
//! chunks). The variant's `digest` and `length` then describe the sealed
//! blob, the one devices download and verify; its `encryption` keeps the
//! plaintext's digest and length, which the device checks after opening.
//! The plaintext is only read here, on the publisher's machine.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use outpost_protocol::manifest::{Encryption, SealScheme};
use outpost_protocol::Digest;
use outpost_seal::{stream, ContentKey};
use sha2::{Digest as _, Sha256};

use super::{MetaError, ReleaseDir};

/// Seals each file of `rd` into `into` (as `<plaintext hex>.sealed`) and
/// rewrites `rd` to name the sealed blobs. `read` wraps each opened file
/// (a progress bar, say: it gets the path and length). Returns the
/// release's content key; the caller hands it to the fleet and drops it.
pub fn seal_release(
    rd: &mut ReleaseDir,
    into: &Path,
    chunk_size: u32,
    read: &dyn Fn(&Path, File, u64) -> Box<dyn Read>,
) -> Result<ContentKey, MetaError> {
    if let Some(v) = rd.meta.variants.iter().find(|v| v.encryption.is_some()) {
        return Err(super::invalid(
            format!("variants.{}.encryption", v.quantization),
            "already set: publish --encrypt seals plain GGUF files",
        ));
    }
    let key = ContentKey::generate().map_err(|e| MetaError::File {
        path: into.to_path_buf(),
        problem: format!("no content key: {e}"),
    })?;
    let mut sealed_files = Vec::with_capacity(rd.files.len());
    for (plain_digest, path) in &rd.files {
        let fail = |problem: String| MetaError::File {
            path: path.clone(),
            problem,
        };
        let file = File::open(path).map_err(|e| fail(format!("cannot open it: {e}")))?;
        let len = file
            .metadata()
            .map_err(|e| fail(format!("cannot read its size: {e}")))?
            .len();
        let out: PathBuf = into.join(format!("{}.sealed", plain_digest.hex()));
        let sink = File::create(&out).map_err(|e| MetaError::File {
            path: out.clone(),
            problem: format!("cannot create it: {e}"),
        })?;
        let mut hashed = Hashing {
            inner: BufWriter::with_capacity(1 << 20, sink),
            hash: Sha256::new(),
            len: 0,
        };
        let header = stream::seal(
            &key,
            len,
            chunk_size,
            &mut read(path, file, len),
            &mut hashed,
        )
        .map_err(|e| fail(format!("sealing it failed: {e}")))?;
        hashed.inner.flush().map_err(|e| MetaError::File {
            path: out.clone(),
            problem: format!("cannot write it: {e}"),
        })?;
        let sealed = Digest::from_sha256_bytes(hashed.hash.finalize().into());
        debug_assert_eq!(hashed.len, header.sealed_len());
        for v in rd
            .meta
            .variants
            .iter_mut()
            .filter(|v| v.digest == Some(*plain_digest))
        {
            v.digest = Some(sealed);
            v.length = Some(hashed.len);
            v.encryption = Some(Encryption {
                scheme: SealScheme::XChaCha20Poly1305StreamV1,
                chunk_size,
                plaintext_digest: *plain_digest,
                plaintext_length: len,
            });
        }
        sealed_files.push((sealed, out));
    }
    rd.files = sealed_files;
    Ok(key)
}

/// Writes through and hashes what it wrote.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tests::sample;

    #[test]
    fn sealed_release_names_the_sealed_blob_and_keeps_the_plaintext_digest() {
        let dir = std::env::temp_dir().join(format!("outpost-seal-meta-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let data = b"GGUF and some weights".repeat(1000);
        let src = dir.join("m.gguf");
        std::fs::write(&src, &data).expect("write");
        let meta = sample("m", "v1", &data);
        let plain = meta.variants[0].digest.expect("digest");
        let mut rd = ReleaseDir {
            meta,
            files: vec![(plain, src)],
        };
        let key = seal_release(&mut rd, &dir, 4096, &|_, f, _| Box::new(f)).expect("seal");
        let v = &rd.meta.variants[0];
        let enc = v.encryption.as_ref().expect("encryption");
        assert_eq!(enc.plaintext_digest, plain);
        assert_eq!(enc.plaintext_length, data.len() as u64);
        let (sealed_digest, sealed_path) = &rd.files[0];
        let blob = std::fs::read(sealed_path).expect("sealed");
        assert_eq!(v.digest, Some(*sealed_digest));
        assert_eq!(Digest::sha256(&blob), *sealed_digest);
        assert_eq!(v.length, Some(blob.len() as u64));
        assert!(
            !blob.windows(4).any(|w| w == b"GGUF"),
            "plaintext magic in the sealed blob"
        );
        let mut back = Vec::new();
        stream::open(&key, &mut &blob[..], &mut back).expect("open");
        assert_eq!(back, data);
        // The manifest a device gets carries it, and it validates.
        rd.meta.validate().expect("sealed meta validates");
        let m = rd
            .meta
            .manifest_for(
                "default",
                1,
                "k",
                outpost_protocol::Timestamp::from_unix_seconds(9),
            )
            .expect("manifest");
        assert_eq!(m.encryption.as_ref(), Some(enc));
        // Sealing twice is refused by name.
        let err = seal_release(&mut rd.clone(), &dir, 4096, &|_, f, _| Box::new(f));
        assert!(err.is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
