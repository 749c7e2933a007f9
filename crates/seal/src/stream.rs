//! The sealed-blob format: a 40-byte header, then the plaintext in chunks,
//! each encrypted and authenticated on its own (XChaCha20-Poly1305 in the
//! STREAM construction, `aead-stream`'s `StreamBE32`: nonce = 19-byte
//! random prefix ‖ 32-bit big-endian chunk index ‖ last-chunk flag).
//!
//! Header (little-endian): `OPSEAL\0\x01` magic and version, chunk size
//! (u32), plaintext length (u64), nonce prefix (19 bytes), one zero byte.
//! The whole header is every chunk's associated data, so a chunk cannot be
//! moved to another file, another position or another length. Chunk `i`
//! starts at `HEADER_LEN + i * (chunk_size + TAG_LEN)`: a ranged download
//! can be checked chunk by chunk, and [`Opener::open_chunk`] decrypts any
//! one of them. An empty plaintext is one empty, flagged-last chunk.

use std::io::{Read, Write};

use aead_stream::{NewStream, StreamBE32, StreamPrimitive};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use zeroize::Zeroizing;

use crate::{random, ContentKey, Result, SealError};

/// Bytes before the first chunk.
pub const HEADER_LEN: usize = 40;
/// Bytes each chunk grows by (the Poly1305 tag).
pub const TAG_LEN: usize = 16;
/// The chunk size `seal` is given by default (1 MiB).
pub const DEFAULT_CHUNK: u32 = 1 << 20;
/// Accepted chunk sizes.
pub const CHUNK_RANGE: std::ops::RangeInclusive<u32> = (4 << 10)..=(16 << 20);

const MAGIC: &[u8; 8] = b"OPSEAL\0\x01";
const PREFIX_LEN: usize = 19;

/// Length of the sealed blob of `plaintext_len` bytes in chunks of
/// `chunk_size`; `None` for a chunk size outside [`CHUNK_RANGE`] or more
/// than 2^32 chunks.
pub fn sealed_len(chunk_size: u32, plaintext_len: u64) -> Option<u64> {
    let h = Header {
        chunk_size,
        plaintext_len,
        nonce_prefix: [0; PREFIX_LEN],
    };
    h.check().ok().map(|()| h.sealed_len())
}

/// What the header of a sealed blob says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub chunk_size: u32,
    pub plaintext_len: u64,
    nonce_prefix: [u8; PREFIX_LEN],
}

impl Header {
    /// A header for `plaintext_len` bytes in chunks of `chunk_size`, with a
    /// fresh random nonce prefix.
    pub fn new(chunk_size: u32, plaintext_len: u64) -> Result<Header> {
        let mut nonce_prefix = [0u8; PREFIX_LEN];
        random(&mut nonce_prefix)?;
        let h = Header {
            chunk_size,
            plaintext_len,
            nonce_prefix,
        };
        h.check()?;
        Ok(h)
    }

    fn check(&self) -> Result<()> {
        if !CHUNK_RANGE.contains(&self.chunk_size) {
            return Err(SealError::Format(format!(
                "chunk size {} is outside {}..={} bytes",
                self.chunk_size,
                CHUNK_RANGE.start(),
                CHUNK_RANGE.end()
            )));
        }
        if self.chunks() > u64::from(u32::MAX) {
            return Err(SealError::Format(format!(
                "{} bytes need more than 2^32 chunks of {}",
                self.plaintext_len, self.chunk_size
            )));
        }
        Ok(())
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&self.chunk_size.to_le_bytes());
        b[12..20].copy_from_slice(&self.plaintext_len.to_le_bytes());
        b[20..39].copy_from_slice(&self.nonce_prefix);
        b
    }

    /// Reads a header from the first [`HEADER_LEN`] bytes of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Header> {
        let Some(b) = bytes.get(..HEADER_LEN) else {
            return Err(SealError::Format(format!(
                "{} bytes is shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            )));
        };
        if &b[..8] != MAGIC {
            return Err(SealError::Format(
                "no OPSEAL magic (a plain file, or another format version)".into(),
            ));
        }
        if b[39] != 0 {
            return Err(SealError::Format("reserved header byte is not zero".into()));
        }
        let h = Header {
            chunk_size: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
            plaintext_len: u64::from_le_bytes(b[12..20].try_into().expect("8 bytes")),
            nonce_prefix: b[20..39].try_into().expect("19 bytes"),
        };
        h.check()?;
        Ok(h)
    }

    /// Number of chunks (at least one).
    pub fn chunks(&self) -> u64 {
        self.plaintext_len
            .div_ceil(u64::from(self.chunk_size))
            .max(1)
    }

    /// Plaintext bytes in chunk `index`.
    pub fn plain_len(&self, index: u64) -> usize {
        let c = u64::from(self.chunk_size);
        if index + 1 < self.chunks() {
            c as usize
        } else {
            (self.plaintext_len - (self.chunks() - 1) * c) as usize
        }
    }

    /// Where chunk `index` starts in the sealed blob.
    pub fn sealed_offset(&self, index: u64) -> u64 {
        HEADER_LEN as u64 + index * (u64::from(self.chunk_size) + TAG_LEN as u64)
    }

    /// Length of the whole sealed blob.
    pub fn sealed_len(&self) -> u64 {
        HEADER_LEN as u64 + self.plaintext_len + self.chunks() * TAG_LEN as u64
    }
}

/// The STREAM cipher of one sealed blob: its header and the content key.
pub struct Cipher {
    header: Header,
    aad: [u8; HEADER_LEN],
    stream: StreamBE32<XChaCha20Poly1305>,
}

impl Cipher {
    pub fn new(key: &ContentKey, header: Header) -> Cipher {
        let aead = XChaCha20Poly1305::new(key.as_bytes().into());
        let prefix = header.nonce_prefix.into();
        let stream = StreamBE32::from_aead(aead, &prefix);
        Cipher {
            aad: header.encode(),
            header,
            stream,
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Encrypts chunk `index` in place (plaintext in, plaintext + tag out).
    pub fn seal_chunk(&self, index: u64, buf: &mut Vec<u8>) -> Result<()> {
        self.check_len(index, buf.len(), 0)?;
        let last = index + 1 == self.header.chunks();
        self.stream
            .encrypt_in_place(index as u32, last, &self.aad, buf)
            .map_err(|_| SealError::Format(format!("chunk {index} could not be sealed")))
    }

    /// Decrypts and authenticates chunk `index` in place (sealed chunk in,
    /// plaintext out). A chunk from elsewhere, altered or cut is refused.
    pub fn open_chunk(&self, index: u64, buf: &mut Vec<u8>) -> Result<()> {
        self.check_len(index, buf.len(), TAG_LEN)?;
        let last = index + 1 == self.header.chunks();
        self.stream
            .decrypt_in_place(index as u32, last, &self.aad, buf)
            .map_err(|_| SealError::Tampered { index })
    }

    fn check_len(&self, index: u64, len: usize, tag: usize) -> Result<()> {
        if index >= self.header.chunks() {
            return Err(SealError::Format(format!(
                "chunk {index} is past the last ({})",
                self.header.chunks() - 1
            )));
        }
        let want = self.header.plain_len(index) + tag;
        if len != want {
            return Err(SealError::Format(format!(
                "chunk {index} is {len} bytes, expected {want}"
            )));
        }
        Ok(())
    }
}

/// Seals the `plaintext_len` bytes of `input` into `out` (header, then
/// chunks). `input` must hold exactly that many bytes.
pub fn seal(
    key: &ContentKey,
    plaintext_len: u64,
    chunk_size: u32,
    input: &mut impl Read,
    out: &mut impl Write,
) -> Result<Header> {
    let cipher = Cipher::new(key, Header::new(chunk_size, plaintext_len)?);
    out.write_all(&cipher.aad)?;
    let mut buf = Zeroizing::new(Vec::with_capacity(chunk_size as usize + TAG_LEN));
    for index in 0..cipher.header.chunks() {
        buf.clear();
        buf.resize(cipher.header.plain_len(index), 0);
        input.read_exact(&mut buf).map_err(|e| {
            SealError::Format(format!(
                "the input ended before its stated {plaintext_len} bytes ({e})"
            ))
        })?;
        cipher.seal_chunk(index, &mut buf)?;
        out.write_all(&buf)?;
    }
    if input.read(&mut [0u8; 1])? != 0 {
        return Err(SealError::Format(format!(
            "the input is longer than its stated {plaintext_len} bytes"
        )));
    }
    Ok(cipher.header)
}

/// Opens a whole sealed blob from `input` into `out`, chunk by chunk: each
/// chunk is authenticated before any of its bytes are written, and a blob
/// that is cut short or runs on is refused.
pub fn open(key: &ContentKey, input: &mut impl Read, out: &mut impl Write) -> Result<Header> {
    let mut head = [0u8; HEADER_LEN];
    input
        .read_exact(&mut head)
        .map_err(|_| SealError::Format("shorter than the header".into()))?;
    let cipher = Cipher::new(key, Header::decode(&head)?);
    let mut buf = Zeroizing::new(Vec::with_capacity(
        cipher.header.chunk_size as usize + TAG_LEN,
    ));
    for index in 0..cipher.header.chunks() {
        buf.clear();
        buf.resize(cipher.header.plain_len(index) + TAG_LEN, 0);
        input
            .read_exact(&mut buf)
            .map_err(|_| SealError::Tampered { index })?;
        cipher.open_chunk(index, &mut buf)?;
        out.write_all(&buf)?;
    }
    if input.read(&mut [0u8; 1])? != 0 {
        return Err(SealError::Format(
            "bytes after the last chunk: not the blob its header describes".into(),
        ));
    }
    Ok(cipher.header)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: u32 = 4096;

    fn sealed(data: &[u8], key: &ContentKey) -> Vec<u8> {
        let mut out = Vec::new();
        let h = seal(key, data.len() as u64, SMALL, &mut &data[..], &mut out).expect("seal");
        assert_eq!(out.len() as u64, h.sealed_len());
        out
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_at_every_chunk_boundary() {
        let key = ContentKey::generate().expect("key");
        let c = SMALL as usize;
        for n in [0, 1, c - 1, c, c + 1, 3 * c, 3 * c + 17] {
            let plain = data(n);
            let blob = sealed(&plain, &key);
            // No 64-byte run of the plaintext survives in the sealed blob.
            let runs: std::collections::HashSet<&[u8]> = plain.windows(64).collect();
            assert!(!blob.windows(64).any(|w| runs.contains(w)), "{n} bytes");
            let mut back = Vec::new();
            let h = open(&key, &mut &blob[..], &mut back).expect("open");
            assert_eq!(back, plain, "{n} bytes");
            assert_eq!(h.chunks(), (n as u64).div_ceil(c as u64).max(1));
        }
    }

    #[test]
    fn any_chunk_opens_on_its_own() {
        let key = ContentKey::generate().expect("key");
        let plain = data(5 * SMALL as usize + 100);
        let blob = sealed(&plain, &key);
        let cipher = Cipher::new(&key, Header::decode(&blob).expect("header"));
        for i in (0..cipher.header().chunks()).rev() {
            let h = cipher.header();
            let at = h.sealed_offset(i) as usize;
            let mut chunk = blob[at..at + h.plain_len(i) + TAG_LEN].to_vec();
            cipher.open_chunk(i, &mut chunk).expect("chunk");
            let p = i as usize * SMALL as usize;
            assert_eq!(chunk, plain[p..p + h.plain_len(i)]);
        }
    }

    #[test]
    fn tampering_is_refused_with_the_chunk_named() {
        let key = ContentKey::generate().expect("key");
        let plain = data(3 * SMALL as usize + 5);
        let blob = sealed(&plain, &key);
        let open_it = |b: &[u8]| open(&key, &mut &b[..], &mut Vec::new());

        let mut flipped = blob.clone();
        let at = Header::decode(&blob).expect("header").sealed_offset(2) as usize + 7;
        flipped[at] ^= 1;
        assert!(matches!(
            open_it(&flipped),
            Err(SealError::Tampered { index: 2 })
        ));

        // Chunks swapped: each is authenticated at its own position.
        let h = Header::decode(&blob).expect("header");
        let (a, b) = (h.sealed_offset(0) as usize, h.sealed_offset(1) as usize);
        let w = SMALL as usize + TAG_LEN;
        let mut swapped = blob.clone();
        swapped[a..a + w].copy_from_slice(&blob[b..b + w]);
        swapped[b..b + w].copy_from_slice(&blob[a..a + w]);
        assert!(matches!(
            open_it(&swapped),
            Err(SealError::Tampered { index: 0 })
        ));

        // Truncated to whole chunks, with the header's length lowered to
        // match: the new last chunk lacks its last-chunk flag.
        let mut cut = blob[..h.sealed_offset(2) as usize].to_vec();
        cut[12..20].copy_from_slice(&(2 * u64::from(SMALL)).to_le_bytes());
        assert!(matches!(open_it(&cut), Err(SealError::Tampered { .. })));

        // Cut short, run on, wrong key, other magic.
        assert!(open_it(&blob[..blob.len() - 1]).is_err());
        let mut longer = blob.clone();
        longer.push(0);
        assert!(matches!(open_it(&longer), Err(SealError::Format(_))));
        let other = ContentKey::generate().expect("key");
        assert!(matches!(
            open(&other, &mut &blob[..], &mut Vec::new()),
            Err(SealError::Tampered { index: 0 })
        ));
        let err =
            open_it(b"GGUF\x03\0\0\0 and the rest of a plain model file....").expect_err("refused");
        assert!(err.to_string().contains("OPSEAL magic"), "{err}");
    }

    #[test]
    fn the_input_must_hold_exactly_the_stated_length() {
        let key = ContentKey::generate().expect("key");
        let plain = data(100);
        let short = seal(&key, 101, SMALL, &mut &plain[..], &mut Vec::new()).expect_err("refused");
        assert!(short.to_string().contains("ended before"), "{short}");
        let long = seal(&key, 99, SMALL, &mut &plain[..], &mut Vec::new()).expect_err("refused");
        assert!(long.to_string().contains("longer than"), "{long}");
        let bad = seal(&key, 1, 100, &mut &plain[..1], &mut Vec::new()).expect_err("refused");
        assert!(bad.to_string().contains("chunk size 100"), "{bad}");
    }

    #[test]
    fn two_seals_of_one_plaintext_differ() {
        let key = ContentKey::generate().expect("key");
        let plain = data(1000);
        assert_ne!(
            sealed(&plain, &key),
            sealed(&plain, &key),
            "fresh nonce prefix"
        );
    }
}
