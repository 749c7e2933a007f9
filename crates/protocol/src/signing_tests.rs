//! Tests of manifest signing: every way a manifest can be refused has its
//! own error, and only exactly signed, fresh, unexpired bytes pass.

use super::*;
use crate::manifest::tests::sample;
use proptest::prelude::*;

const NOW: Timestamp = Timestamp::from_unix_seconds(1_800_000_000); // 2027-01-15

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn ring() -> Keyring {
    let mut r = Keyring::new();
    r.insert("fleet-2026a", key(1).verifying_key());
    r
}

fn payload(edit: impl FnOnce(&mut Manifest)) -> Vec<u8> {
    let mut m = sample();
    edit(&mut m);
    serde_json::to_vec(&m).expect("json")
}

fn signed(edit: impl FnOnce(&mut Manifest)) -> Vec<u8> {
    sign(&payload(edit), "fleet-2026a", &key(1)).to_json()
}

fn none(_: &ModelName) -> Option<Accepted> {
    None
}

#[test]
fn a_good_manifest_verifies() {
    let v = verify(&signed(|_| {}), &ring(), NOW, none).expect("valid");
    assert_eq!(v.manifest, sample());
    assert_eq!(v.payload, payload(|_| {}));
    assert_eq!(v.payload_digest, Digest::sha256(&v.payload));
    assert!(!v.already_accepted);
}

#[test]
fn the_exact_bytes_are_verified_not_a_reserialisation() {
    // Whitespace and key order the serializer would never produce: the
    // signature covers them and verification succeeds on the bytes as sent.
    let odd = String::from_utf8(payload(|_| {}))
        .expect("utf8")
        .replace(",\"", ",\n  \"");
    let env = sign(odd.as_bytes(), "fleet-2026a", &key(1)).to_json();
    let v = verify(&env, &ring(), NOW, none).expect("valid");
    assert_eq!(v.payload, odd.as_bytes());
}

#[test]
fn tampered_byte_is_a_bad_signature() {
    let mut env: SignedManifest = serde_json::from_slice(&signed(|_| {})).expect("envelope");
    let mut bytes = B64.decode(&env.payload).expect("b64");
    // "manifest_version":7 → 8, a change that would parse fine.
    let at = bytes.iter().position(|&b| b == b'7').expect("a 7");
    bytes[at] = b'8';
    env.payload = B64.encode(&bytes);
    let e = verify(&env.to_json(), &ring(), NOW, none).expect_err("tampered");
    assert_eq!(
        e,
        VerifyError::BadSignature {
            key_id: "fleet-2026a".into()
        }
    );
    assert!(e.to_string().contains("altered"), "{e}");
}

#[test]
fn a_flipped_signature_bit_is_a_bad_signature() {
    let mut env: SignedManifest = serde_json::from_slice(&signed(|_| {})).expect("envelope");
    let mut sig = B64.decode(&env.signature).expect("b64");
    sig[10] ^= 1;
    env.signature = B64.encode(&sig);
    assert!(matches!(
        verify(&env.to_json(), &ring(), NOW, none),
        Err(VerifyError::BadSignature { .. })
    ));
}

#[test]
fn wrong_key_is_named_with_both_fingerprints() {
    let env = sign(&payload(|_| {}), "fleet-2026a", &key(2)).to_json();
    let e = verify(&env, &ring(), NOW, none).expect_err("wrong key");
    let VerifyError::WrongKey {
        key_id,
        pinned,
        presented,
    } = &e
    else {
        panic!("expected WrongKey, got {e:?}");
    };
    assert_eq!(key_id, "fleet-2026a");
    assert_eq!(pinned, &key_fingerprint(&key(1).verifying_key()));
    assert_eq!(presented, &key_fingerprint(&key(2).verifying_key()));
    assert!(e.to_string().contains("pins key"), "{e}");
}

#[test]
fn a_lying_public_key_field_still_fails_the_signature() {
    // Signed with key 2, but the envelope claims the pinned key 1: the
    // signature is checked against the pinned key and fails.
    let mut env = sign(&payload(|_| {}), "fleet-2026a", &key(2));
    env.public_key = B64.encode(key(1).verifying_key().as_bytes());
    assert!(matches!(
        verify(&env.to_json(), &ring(), NOW, none),
        Err(VerifyError::BadSignature { .. })
    ));
}

#[test]
fn unknown_key_id_lists_the_pinned_ones() {
    let env = sign(
        &payload(|m| m.key_id = "fleet-2027".into()),
        "fleet-2027",
        &key(1),
    )
    .to_json();
    let e = verify(&env, &ring(), NOW, none).expect_err("unknown");
    assert_eq!(
        e,
        VerifyError::UnknownKeyId {
            key_id: "fleet-2027".into(),
            known: vec!["fleet-2026a".into()]
        }
    );
    assert!(e.to_string().contains("device config"), "{e}");
}

#[test]
fn older_version_is_refused() {
    let last = Accepted {
        manifest_version: 8,
        payload_digest: Digest::sha256(b"v8"),
    };
    let e = verify(&signed(|_| {}), &ring(), NOW, |_| Some(last)).expect_err("older");
    assert_eq!(
        e,
        VerifyError::OlderVersion {
            model: sample().model,
            version: 7,
            last_accepted: 8
        }
    );
    assert!(e.to_string().contains("rollback"), "{e}");
}

#[test]
fn equal_version_passes_only_byte_identical() {
    let env = signed(|_| {});
    let first = verify(&env, &ring(), NOW, none).expect("valid");
    let last = Accepted {
        manifest_version: 7,
        payload_digest: first.payload_digest,
    };
    let again = verify(&env, &ring(), NOW, |_| Some(last)).expect("same bytes");
    assert!(again.already_accepted);
    let changed = signed(|m| m.runtime.threads = Some(2));
    let e = verify(&changed, &ring(), NOW, |_| Some(last)).expect_err("same version, new content");
    assert!(matches!(
        e,
        VerifyError::SameVersionDifferentContent { version: 7, .. }
    ));
    // A higher version is fresh.
    let newer = signed(|m| m.manifest_version = 8);
    assert!(
        !verify(&newer, &ring(), NOW, |_| Some(last))
            .expect("newer")
            .already_accepted
    );
}

#[test]
fn rollback_to_an_older_model_uses_a_higher_manifest_version() {
    let last = Accepted {
        manifest_version: 7,
        payload_digest: Digest::sha256(b"v7"),
    };
    let rollback = signed(|m| {
        m.manifest_version = 9;
        m.model_version = "2025-01".into();
        m.variant.digest = Digest::sha256(b"older gguf");
    });
    let v = verify(&rollback, &ring(), NOW, |_| Some(last)).expect("a rollback is a new version");
    assert_eq!(v.manifest.model_version, "2025-01");
}

#[test]
fn expired_is_refused_at_and_after_the_instant() {
    let env = signed(|m| m.expires_at = NOW);
    let e = verify(&env, &ring(), NOW, none).expect_err("expired");
    assert_eq!(
        e,
        VerifyError::Expired {
            model: sample().model,
            version: 7,
            expires_at: NOW,
            now: NOW
        }
    );
    assert!(e.to_string().contains("2027-01-15T08:00:00Z"), "{e}");
    let just_before = Timestamp::from_unix_seconds(NOW.unix_seconds() - 1);
    assert!(verify(&env, &ring(), just_before, none).is_ok());
}

#[test]
fn the_five_refusals_are_five_different_errors() {
    let last = |_: &ModelName| {
        Some(Accepted {
            manifest_version: 5,
            payload_digest: Digest::sha256(b"v5"),
        })
    };
    let mut tampered: SignedManifest = serde_json::from_slice(&signed(|_| {})).expect("env");
    let mut b = B64.decode(&tampered.payload).expect("b64");
    b[3] ^= 0x20;
    tampered.payload = B64.encode(&b);
    let cases = [
        tampered.to_json(),
        sign(&payload(|_| {}), "fleet-2026a", &key(2)).to_json(),
        sign(&payload(|_| {}), "other", &key(1)).to_json(),
        signed(|m| m.manifest_version = 4),
        signed(|m| m.expires_at = Timestamp::from_unix_seconds(1)),
    ];
    let kinds: Vec<_> = cases
        .iter()
        .map(|c| {
            let e = verify(c, &ring(), NOW, last).expect_err("refused");
            std::mem::discriminant(&e)
        })
        .collect();
    for i in 0..kinds.len() {
        for j in i + 1..kinds.len() {
            assert_ne!(kinds[i], kinds[j], "cases {i} and {j} share an error");
        }
    }
}

#[test]
fn key_rotation_accepts_both_pinned_keys() {
    let mut r = ring();
    r.insert("fleet-2026b", key(3).verifying_key());
    let env = sign(
        &payload(|m| m.key_id = "fleet-2026b".into()),
        "fleet-2026b",
        &key(3),
    )
    .to_json();
    assert!(verify(&env, &r, NOW, none).is_ok());
    assert!(verify(&signed(|_| {}), &r, NOW, none).is_ok());
    r.remove("fleet-2026a");
    assert!(matches!(
        verify(&signed(|_| {}), &r, NOW, none),
        Err(VerifyError::UnknownKeyId { .. })
    ));
}

#[test]
fn envelope_and_manifest_must_name_the_same_key() {
    let env = sign(
        &payload(|m| m.key_id = "fleet-2026b".into()),
        "fleet-2026a",
        &key(1),
    )
    .to_json();
    assert!(matches!(
        verify(&env, &ring(), NOW, none),
        Err(VerifyError::KeyIdMismatch { .. })
    ));
}

#[test]
fn a_signed_but_invalid_manifest_is_refused_after_the_signature() {
    let env = sign(br#"{"manifest_version":1}"#, "fleet-2026a", &key(1)).to_json();
    let e = verify(&env, &ring(), NOW, none).expect_err("invalid");
    assert!(matches!(e, VerifyError::Manifest(_)), "{e:?}");
    // Unsigned garbage never reaches the manifest parser.
    let env = sign(b"not json", "fleet-2026a", &key(2)).to_json();
    assert!(matches!(
        verify(&env, &ring(), NOW, none),
        Err(VerifyError::WrongKey { .. })
    ));
}

#[test]
fn malformed_envelopes_say_what_is_wrong() {
    let e = verify(b"{}", &ring(), NOW, none).expect_err("empty");
    assert!(matches!(e, VerifyError::Envelope(_)), "{e:?}");
    let mut env: SignedManifest = serde_json::from_slice(&signed(|_| {})).expect("env");
    env.signature = "AAAA".into();
    let e = verify(&env.to_json(), &ring(), NOW, none).expect_err("short");
    assert_eq!(
        e,
        VerifyError::Encoding {
            field: "signature",
            problem: "3 bytes, an Ed25519 signature has 64".into()
        }
    );
    env.signature = "!!".into();
    assert!(matches!(
        verify(&env.to_json(), &ring(), NOW, none),
        Err(VerifyError::Encoding {
            field: "signature",
            ..
        })
    ));
}

#[test]
fn pinned_keys_load_from_config_json() {
    let cfg = format!(
        r#"[{{"key_id":"fleet-2026a","public_key":"{}"}}]"#,
        B64.encode(key(1).verifying_key().as_bytes())
    );
    let pinned: Vec<PinnedKey> = serde_json::from_str(&cfg).expect("config");
    let r = Keyring::from_pinned(&pinned).expect("keys");
    assert!(verify(&signed(|_| {}), &r, NOW, none).is_ok());
    let bad = [PinnedKey {
        key_id: "k".into(),
        public_key: "AAAA".into(),
    }];
    let e = Keyring::from_pinned(&bad).expect_err("short key");
    assert!(e.to_string().contains("pinned key \"k\""), "{e}");
}

proptest! {
    #[test]
    fn any_single_byte_change_is_refused(at in 0usize..10_000, flip in 1u8..=255) {
        let env: SignedManifest = serde_json::from_slice(&signed(|_| {})).expect("env");
        let mut bytes = B64.decode(&env.payload).expect("b64");
        let at = at % bytes.len();
        bytes[at] ^= flip;
        let tampered = SignedManifest { payload: B64.encode(&bytes), ..env };
        prop_assert_eq!(
            verify(&tampered.to_json(), &ring(), NOW, none),
            Err(VerifyError::BadSignature { key_id: "fleet-2026a".into() })
        );
    }

    #[test]
    fn verify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = verify(&bytes, &ring(), NOW, none);
    }
}

#[test]
fn envelope_snapshot() {
    // A compatibility snapshot of the envelope (Ed25519 is deterministic).
    let env = sign(b"{}", "k", &key(1));
    assert_eq!(
        String::from_utf8(env.to_json()).expect("utf8"),
        r#"{"key_id":"k","public_key":"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=","signature":"Q1z4N3LDhSt5Vq2AXvxbv8v7U3ZVMGxTML2/amGKJHaFidFsjYtvwji54+oWbb7AcrLPDoCiF7yMOgZ8kDfQCw==","payload":"e30="}"#
    );
}
