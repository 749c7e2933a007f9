//! A release's content key, wrapped to one device: HPKE (RFC 9180) base
//! mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305.
//!
//! The wrap is bound to a [`Grant`]: the release, the sealed blob's digest,
//! the device, an expiry and a nonce the device chose for this request.
//! Release, digest and device go into HPKE's `info`; expiry and nonce into
//! the AEAD's associated data. The device rebuilds the grant from what it
//! asked for, so a wrap meant for another device, another release or an
//! earlier request (a replayed answer) does not open, and an expired grant
//! is refused before it is tried.

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

use crate::{random, ContentKey, Result, SealError};

type Dh = X25519HkdfSha256;

/// Domain separation for the HPKE `info`.
const INFO_LABEL: &[u8] = b"outpost content key v1";

/// A device's X25519 private key (zeroed when dropped).
pub struct DeviceSecret(Zeroizing<[u8; 32]>);

/// A device's X25519 public key, as the fleet stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevicePublic(pub [u8; 32]);

impl DeviceSecret {
    /// A fresh key pair from the operating system's random source.
    pub fn generate() -> Result<DeviceSecret> {
        let mut ikm = Zeroizing::new([0u8; 32]);
        random(&mut *ikm)?;
        let (sk, _) = Dh::derive_keypair(&*ikm);
        let mut b = Zeroizing::new([0u8; 32]);
        b.copy_from_slice(&sk.to_bytes());
        Ok(DeviceSecret(b))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Result<DeviceSecret> {
        let b = Zeroizing::new(bytes);
        private(&b)?;
        Ok(DeviceSecret(b))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn public(&self) -> DevicePublic {
        let sk = private(&self.0).expect("checked when made");
        let mut p = [0u8; 32];
        p.copy_from_slice(&Dh::sk_to_pk(&sk).to_bytes());
        DevicePublic(p)
    }
}

impl std::fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceSecret(..)")
    }
}

fn private(b: &[u8; 32]) -> Result<<Dh as Kem>::PrivateKey> {
    <Dh as Kem>::PrivateKey::from_bytes(b)
        .map_err(|e| SealError::Grant(format!("not an X25519 private key: {e}")))
}

impl DevicePublic {
    /// Checks that `bytes` is a usable X25519 public key.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<DevicePublic> {
        <Dh as Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|e| SealError::Grant(format!("not an X25519 public key: {e}")))?;
        Ok(DevicePublic(bytes))
    }
}

/// What a wrapped key is for; both sides build it the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub release: String,
    /// The sealed blob's digest (`sha256:...`).
    pub digest: String,
    pub device_id: String,
    /// Unix seconds after which the device must not use the wrap.
    pub expires_at: u64,
    /// Chosen by the device for this one request.
    pub request_nonce: [u8; 16],
}

impl Grant {
    fn info(&self) -> Vec<u8> {
        let mut v = INFO_LABEL.to_vec();
        for field in [&self.release, &self.digest, &self.device_id] {
            v.extend_from_slice(&(field.len() as u32).to_le_bytes());
            v.extend_from_slice(field.as_bytes());
        }
        v
    }

    fn aad(&self) -> [u8; 24] {
        let mut a = [0u8; 24];
        a[..8].copy_from_slice(&self.expires_at.to_le_bytes());
        a[8..].copy_from_slice(&self.request_nonce);
        a
    }
}

/// A content key sealed to one device under one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// HPKE's encapsulated key (the sender's ephemeral X25519 public key).
    pub enc: [u8; 32],
    /// The content key and its tag (48 bytes).
    pub ciphertext: Vec<u8>,
}

/// Wraps `key` to the device whose public key is `to`, bound to `grant`.
pub fn wrap(key: &ContentKey, to: &DevicePublic, grant: &Grant) -> Result<WrappedKey> {
    let pk = <Dh as Kem>::PublicKey::from_bytes(&to.0)
        .map_err(|e| SealError::Grant(format!("not an X25519 public key: {e}")))?;
    let (enc, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Dh>(
        &OpModeS::Base,
        &pk,
        &grant.info(),
        key.as_bytes(),
        &grant.aad(),
    )
    .map_err(|e| SealError::Grant(format!("wrapping failed: {e}")))?;
    let mut e = [0u8; 32];
    e.copy_from_slice(&enc.to_bytes());
    Ok(WrappedKey { enc: e, ciphertext })
}

/// Opens `wrapped` with the device's secret, for `grant` as the device
/// asked for it, at unix time `now`.
pub fn unwrap(
    wrapped: &WrappedKey,
    secret: &DeviceSecret,
    grant: &Grant,
    now: u64,
) -> Result<ContentKey> {
    if now >= grant.expires_at {
        return Err(SealError::Grant(format!(
            "the grant expired at unix time {} (now {now}): ask the fleet again",
            grant.expires_at
        )));
    }
    let enc = <Dh as Kem>::EncappedKey::from_bytes(&wrapped.enc)
        .map_err(|e| SealError::Grant(format!("bad encapsulated key: {e}")))?;
    let plain = Zeroizing::new(
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Dh>(
            &OpModeR::Base,
            &private(&secret.0)?,
            &enc,
            &grant.info(),
            &wrapped.ciphertext,
            &grant.aad(),
        )
        .map_err(|_| {
            SealError::Grant(
                "the wrapped key does not open: it is for another device, release or request (a replayed answer), or was altered".into(),
            )
        })?,
    );
    let bytes: [u8; 32] = plain
        .as_slice()
        .try_into()
        .map_err(|_| SealError::Grant(format!("a content key is 32 bytes, not {}", plain.len())))?;
    Ok(ContentKey::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            release: "1.4.0".into(),
            digest: format!("sha256:{}", "ab".repeat(32)),
            device_id: "dev-0123".into(),
            expires_at: 2_000,
            request_nonce: [7; 16],
        }
    }

    #[test]
    fn the_device_opens_what_was_wrapped_to_it() {
        let key = ContentKey::generate().expect("key");
        let dev = DeviceSecret::generate().expect("device");
        let w = wrap(&key, &dev.public(), &grant()).expect("wrap");
        let back = unwrap(&w, &dev, &grant(), 1_000).expect("unwrap");
        assert_eq!(back.as_bytes(), key.as_bytes());
        // A secret survives its byte form (the device's key file).
        let again = DeviceSecret::from_bytes(*dev.as_bytes()).expect("bytes");
        assert_eq!(again.public(), dev.public());
    }

    #[test]
    fn another_device_another_grant_a_replay_or_an_expiry_is_refused() {
        let key = ContentKey::generate().expect("key");
        let dev = DeviceSecret::generate().expect("device");
        let w = wrap(&key, &dev.public(), &grant()).expect("wrap");
        let refused = |secret: &DeviceSecret, g: Grant, now: u64| {
            unwrap(&w, secret, &g, now)
                .expect_err("must be refused")
                .to_string()
        };
        let other = DeviceSecret::generate().expect("device");
        assert!(refused(&other, grant(), 1_000).contains("another device"));
        let mut g = grant();
        g.request_nonce = [8; 16];
        assert!(refused(&dev, g, 1_000).contains("replayed"));
        let mut g = grant();
        g.release = "1.5.0".into();
        assert!(refused(&dev, g, 1_000).contains("release"));
        let mut g = grant();
        g.expires_at = 3_000; // the fleet said 2000; a forged extension
        assert!(refused(&dev, g, 2_500).contains("does not open"));
        assert!(refused(&dev, grant(), 2_000).contains("expired"));
        let mut altered = w.clone();
        altered.ciphertext[0] ^= 1;
        assert!(unwrap(&altered, &dev, &grant(), 1_000).is_err());
    }

    #[test]
    fn two_wraps_of_one_key_differ() {
        let key = ContentKey::generate().expect("key");
        let dev = DeviceSecret::generate().expect("device");
        let a = wrap(&key, &dev.public(), &grant()).expect("wrap");
        let b = wrap(&key, &dev.public(), &grant()).expect("wrap");
        assert_ne!(a, b, "fresh ephemeral key each time");
    }
}
