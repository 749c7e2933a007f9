//! Fuzz target: manifest parsing and signed-envelope verification on
//! arbitrary bytes never panic; a parsed manifest round-trips through its
//! own JSON; bytes signed with the pinned key verify exactly when they are a
//! valid manifest naming that key, and then yield that very manifest.
#![no_main]

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use outpost_protocol::signing::{self, Keyring};
use outpost_protocol::{Manifest, Timestamp, VerifyError};

static KEY: OnceLock<(SigningKey, Keyring)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (key, ring) = KEY.get_or_init(|| {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut ring = Keyring::new();
        ring.insert("fleet-2026a", key.verifying_key());
        (key, ring)
    });
    let now = Timestamp::from_unix_seconds(1_800_000_000);

    // As a manifest payload.
    let parsed = Manifest::from_json(data);
    if let Ok(m) = &parsed {
        let again = serde_json::to_vec(m).expect("a manifest serializes");
        assert_eq!(Manifest::from_json(&again).as_ref(), Ok(m), "round trip");
    }

    // As an envelope from anyone: refused or accepted, never a panic.
    let _ = signing::verify(data, ring, now, |_| None);

    // As a payload signed by the pinned key.
    let envelope = signing::sign(data, "fleet-2026a", key).to_json();
    match (signing::verify(&envelope, ring, now, |_| None), parsed) {
        (Ok(v), Ok(m)) => {
            assert_eq!(v.manifest, m);
            assert_eq!(v.payload, data);
        }
        (Ok(_), Err(e)) => panic!("verified a payload that does not parse: {e}"),
        (Err(VerifyError::Manifest(_)), Err(_)) => {}
        (Err(e), Err(_)) => panic!("an invalid payload must fail as a manifest, got {e}"),
        (Err(e), Ok(m)) => assert!(
            matches!(
                e,
                VerifyError::KeyIdMismatch { .. } | VerifyError::Expired { .. }
            ),
            "a valid, correctly signed manifest was refused: {e} ({m:?})"
        ),
    }
});
