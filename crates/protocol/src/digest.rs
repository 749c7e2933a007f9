//! `Digest`: the validated name of a content-addressed blob.
//!
//! One accepted text form: `sha256:` followed by exactly 64 lowercase hex
//! digits (the OCI / Ollama spelling). Nothing else parses: no uppercase
//! hex, no other algorithm, no `sha256-` file-name spelling on the wire, no
//! whitespace. A `Digest` can only be built by parsing that form or by
//! hashing bytes, so holding one proves it is safe to turn into a file name
//! (`sha256-<hex>`, see [`Digest::file_name`]); only the store does that.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// The only algorithm accepted, as written before the colon.
pub const ALGORITHM: &str = "sha256";
/// Hex digits in a SHA-256 digest.
pub const HEX_LEN: usize = 64;

/// A SHA-256 content digest, valid by construction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// Why a string is not a digest. Each variant names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("empty digest: expected \"sha256:\" followed by 64 lowercase hex digits")]
    Empty,
    #[error(
        "digest {0:?} has no algorithm prefix: write it as \"sha256:\" followed by 64 lowercase hex digits"
    )]
    MissingAlgorithm(String),
    #[error("digest algorithm {0:?} is not supported: only \"sha256\" is accepted")]
    UnsupportedAlgorithm(String),
    #[error(
        "digest {0:?} contains a path separator, \"..\" or a control character: a digest is never a path"
    )]
    PathLike(String),
    #[error("digest hex part has {len} characters, a sha256 digest has exactly 64")]
    WrongLength { len: usize },
    #[error(
        "digest hex part has uppercase {ch:?} at position {at}: write sha256 digests in lowercase"
    )]
    Uppercase { ch: char, at: usize },
    #[error("digest hex part has {ch:?} at position {at}, which is not a hex digit (0-9, a-f)")]
    NotHex { ch: char, at: usize },
}

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`. The checks run in this order, so
    /// the error names the most telling problem: prefix, path-like content,
    /// length, case, hex.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        if s.is_empty() {
            return Err(DigestError::Empty);
        }
        if is_path_like(s) {
            return Err(DigestError::PathLike(clip(s)));
        }
        let Some((algo, hex)) = s.split_once(':') else {
            return Err(DigestError::MissingAlgorithm(clip(s)));
        };
        if algo != ALGORITHM {
            return Err(DigestError::UnsupportedAlgorithm(clip(algo)));
        }
        Self::parse_hex(hex)
    }

    /// Parses the store's file-name spelling `sha256-<hex>` with the same
    /// rules. Only for names read back from the store's own directories.
    pub fn from_file_name(name: &str) -> Result<Digest, DigestError> {
        if name.is_empty() {
            return Err(DigestError::Empty);
        }
        if is_path_like(name) {
            return Err(DigestError::PathLike(clip(name)));
        }
        match name.split_once('-') {
            Some((ALGORITHM, hex)) => Self::parse_hex(hex),
            Some((algo, _)) => Err(DigestError::UnsupportedAlgorithm(clip(algo))),
            None => Err(DigestError::MissingAlgorithm(clip(name))),
        }
    }

    fn parse_hex(hex: &str) -> Result<Digest, DigestError> {
        // Uppercase first (the likeliest mistake, and it names the
        // character), then length, then any other non-hex character.
        if let Some((at, ch)) = hex
            .chars()
            .enumerate()
            .find(|(_, c)| matches!(c, 'A'..='F'))
        {
            return Err(DigestError::Uppercase { ch, at });
        }
        let len = hex.chars().count();
        if len != HEX_LEN {
            return Err(DigestError::WrongLength { len });
        }
        if let Some((at, ch)) = hex
            .chars()
            .enumerate()
            .find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
        {
            return Err(DigestError::NotHex { ch, at });
        }
        let mut out = [0u8; 32];
        let bytes = hex.as_bytes();
        for (i, o) in out.iter_mut().enumerate() {
            *o = (nibble(bytes[2 * i]) << 4) | nibble(bytes[2 * i + 1]);
        }
        Ok(Digest(out))
    }

    /// The digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// From a finished SHA-256 hash (the store hashes while streaming).
    pub fn from_sha256_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(HEX_LEN);
        for b in self.0 {
            s.push(HEX_DIGITS[usize::from(b >> 4)] as char);
            s.push(HEX_DIGITS[usize::from(b & 0xf)] as char);
        }
        s
    }

    /// `sha256-<hex>`: a file name with no separator, no dot, no colon.
    pub fn file_name(&self) -> String {
        format!("{ALGORITHM}-{}", self.hex())
    }

    /// The first 12 hex digits, for logs.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    }
}

fn is_path_like(s: &str) -> bool {
    s.contains(['/', '\\']) || s.contains("..") || s.chars().any(char::is_control)
}

/// Error messages quote at most 80 characters of what was sent.
fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ALGORITHM}:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY_SHA: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn known_digest_round_trips() {
        let d = Digest::sha256(b"");
        assert_eq!(d.to_string(), EMPTY_SHA);
        assert_eq!(Digest::parse(EMPTY_SHA), Ok(d));
        assert_eq!(
            d.file_name(),
            "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::from_file_name(&d.file_name()), Ok(d));
        assert_eq!(
            serde_json::to_string(&d).expect("json"),
            format!("\"{EMPTY_SHA}\"")
        );
        let back: Digest = serde_json::from_str(&format!("\"{EMPTY_SHA}\"")).expect("json");
        assert_eq!(back, d);
    }

    #[test]
    fn each_problem_has_its_own_error() {
        let hex = &EMPTY_SHA[7..];
        assert_eq!(Digest::parse(""), Err(DigestError::Empty));
        assert!(matches!(
            Digest::parse(hex),
            Err(DigestError::MissingAlgorithm(_))
        ));
        assert_eq!(
            Digest::parse(&format!("sha512:{hex}")),
            Err(DigestError::UnsupportedAlgorithm("sha512".into()))
        );
        assert_eq!(
            Digest::parse(&format!("SHA256:{hex}")),
            Err(DigestError::UnsupportedAlgorithm("SHA256".into()))
        );
        assert_eq!(
            Digest::parse(&format!("sha256:{}", &hex[..63])),
            Err(DigestError::WrongLength { len: 63 })
        );
        assert_eq!(
            Digest::parse(&format!("sha256:{hex}0")),
            Err(DigestError::WrongLength { len: 65 })
        );
        assert_eq!(
            Digest::parse(&format!("sha256:{}", hex.to_uppercase())),
            Err(DigestError::Uppercase { ch: 'E', at: 0 })
        );
        let mut bad = hex.to_string();
        bad.replace_range(10..11, "g");
        assert_eq!(
            Digest::parse(&format!("sha256:{bad}")),
            Err(DigestError::NotHex { ch: 'g', at: 10 })
        );
        // The file-name spelling is not a wire form.
        assert!(matches!(
            Digest::parse(&format!("sha256-{hex}")),
            Err(DigestError::MissingAlgorithm(_))
        ));
        // Whitespace is never trimmed.
        assert!(Digest::parse(&format!(" {EMPTY_SHA}")).is_err());
        assert!(Digest::parse(&format!("{EMPTY_SHA}\n")).is_err());
    }

    #[test]
    fn path_traversal_is_refused_before_anything_else() {
        for s in [
            "sha256:../../etc/passwd",
            "../blobs/sha256-00",
            "sha256:abc/def",
            "sha256:abc\\def",
            "sha256:..",
            "/etc/passwd",
            "sha256:\0",
        ] {
            assert!(
                matches!(Digest::parse(s), Err(DigestError::PathLike(_))),
                "{s:?}: {:?}",
                Digest::parse(s)
            );
            assert!(matches!(
                Digest::from_file_name(s),
                Err(DigestError::PathLike(_))
            ));
        }
    }

    #[test]
    fn messages_say_what_and_how() {
        let e = Digest::parse("sha256:ABC").expect_err("uppercase");
        assert!(e.to_string().contains("lowercase"), "{e}");
        let e = Digest::parse("md5:00").expect_err("algo");
        assert!(e.to_string().contains("\"md5\""), "{e}");
    }

    proptest! {
        #[test]
        fn every_digest_round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            let d = Digest::from_sha256_bytes(bytes);
            prop_assert_eq!(Digest::parse(&d.to_string()), Ok(d));
            prop_assert_eq!(Digest::from_file_name(&d.file_name()), Ok(d));
            prop_assert!(!d.file_name().contains(['/', '\\', '.', ':']));
        }

        #[test]
        fn parse_never_panics_and_accepts_only_the_canonical_form(s in "\\PC{0,80}") {
            if let Ok(d) = Digest::parse(&s) {
                prop_assert_eq!(d.to_string(), s);
            }
        }

        #[test]
        fn anything_with_a_separator_is_refused(
            a in "[a-f0-9]{0,40}", b in "[a-f0-9]{0,40}", sep in prop::sample::select(vec!["/", "\\", ".."]),
        ) {
            let s = format!("sha256:{a}{sep}{b}");
            prop_assert!(matches!(Digest::parse(&s), Err(DigestError::PathLike(_))));
        }

        #[test]
        fn wrong_lengths_are_named(n in 0usize..200) {
            prop_assume!(n != HEX_LEN);
            let s = format!("sha256:{}", "a".repeat(n));
            prop_assert_eq!(Digest::parse(&s), Err(DigestError::WrongLength { len: n }));
        }

        #[test]
        fn any_uppercase_hex_is_named(bytes in proptest::array::uniform32(any::<u8>()), at in 0usize..64) {
            let mut hex = Digest::from_sha256_bytes(bytes).hex().into_bytes();
            hex[at] = b'A' + (hex[at] % 6);
            let s = format!("sha256:{}", String::from_utf8(hex).expect("ascii"));
            prop_assert!(matches!(Digest::parse(&s), Err(DigestError::Uppercase { .. })), "{}", s);
        }
    }
}
