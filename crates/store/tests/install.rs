//! The install flow the device agent will drive, through the public API
//! only: accept a signed manifest, download its blob resumably, finalize,
//! activate, roll out a second version, roll back by a newer manifest, GC.

use ed25519_dalek::SigningKey;
use outpost_protocol::signing::{self, Keyring};
use outpost_protocol::{Digest, Timestamp, VerifyError};
use outpost_store::{Pointer, Store, StoreConfig, StoreError};

const NOW: Timestamp = Timestamp::from_unix_seconds(1_800_000_000);

struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn manifest(version: u64, model_version: &str, gguf: &[u8]) -> Vec<u8> {
    format!(
        r#"{{"manifest_version":{version},"key_id":"fleet-1","expires_at":"2030-01-01T00:00:00Z","model":"smollm2-135m","model_version":"{model_version}","device_class":"laptop","variant":{{"digest":"{}","length":{},"quantization":"Q4_K_M"}},"runtime":{{"n_ctx":2048,"kv_cache_type":"q8_0","threads":4}},"requires":{{"min_app_version":"0.1.0","min_engine_version":"0.1.0","ggml_types":["f32","q4_K"]}},"canaries":[{{"prompt":"Hello","position":2,"top":[[1,-0.5],[2,-1.5]]}}],"encryption":null}}"#,
        Digest::sha256(gguf),
        gguf.len()
    )
    .into_bytes()
}

/// Downloads `gguf` in chunks, stopping once after `stop_at` bytes as a
/// dropped connection would, then resuming.
fn download(store: &Store, digest: &Digest, gguf: &[u8], stop_at: usize) -> Digest {
    let mut p = store
        .open_partial(digest, gguf.len() as u64)
        .expect("partial");
    p.append(&gguf[..stop_at]).expect("first part");
    drop(p);
    let mut p = store
        .open_partial(digest, gguf.len() as u64)
        .expect("resume");
    let from = usize::try_from(p.present()).expect("fits");
    assert_eq!(from, stop_at);
    for chunk in gguf[from..].chunks(1000) {
        p.append(chunk).expect("append");
    }
    p.finalize().expect("finalize")
}

#[test]
fn install_update_rollback_and_gc() {
    let dir = Dir(std::env::temp_dir().join(format!("outpost-install-{}", std::process::id())));
    let store = Store::open(&dir.0, StoreConfig::default()).expect("open");
    let key = SigningKey::from_bytes(&[4; 32]);
    let mut ring = Keyring::new();
    ring.insert("fleet-1", key.verifying_key());
    let send = |payload: Vec<u8>| signing::sign(&payload, "fleet-1", &key).to_json();

    let v1: Vec<u8> = (0..5000u32).map(|i| (i % 256) as u8).collect();
    let v2: Vec<u8> = (0..7000u32).map(|i| (i * 3 % 256) as u8).collect();

    // Version 1: accept, download, verify, activate.
    let m1 = store
        .accept_manifest(&send(manifest(1, "a", &v1)), &ring, NOW)
        .expect("manifest 1")
        .manifest;
    let d1 = download(&store, &m1.variant.digest, &v1, 1234);
    store.verify(&d1).expect("verify");
    store.activate(&m1.model, &d1).expect("activate");

    // Version 2 replaces it; version 1 stays as previous.
    let m2 = store
        .accept_manifest(&send(manifest(2, "b", &v2)), &ring, NOW)
        .expect("manifest 2")
        .manifest;
    let d2 = download(&store, &m2.variant.digest, &v2, 0);
    assert_eq!(
        store.activate(&m2.model, &d2).expect("activate"),
        Pointer {
            active: d2,
            previous: Some(d1)
        }
    );

    // A replay of manifest 1 is refused; a rollback is manifest 3 naming v1.
    let e = store
        .accept_manifest(&send(manifest(1, "a", &v1)), &ring, NOW)
        .expect_err("replay");
    assert!(matches!(
        e,
        StoreError::Manifest(VerifyError::OlderVersion { .. })
    ));
    let m3 = store
        .accept_manifest(&send(manifest(3, "a", &v1)), &ring, NOW)
        .expect("rollback manifest")
        .manifest;
    assert!(
        store.contains(&m3.variant.digest),
        "v1 was kept as previous"
    );
    store
        .activate(&m3.model, &m3.variant.digest)
        .expect("activate");

    // GC keeps both versions (active v1, previous v2) and removes strays.
    let stray = store.put(None, &b"stray"[..]).expect("put");
    let report = store.gc(&[]).expect("gc");
    assert_eq!(report.removed, vec![(stray, 5)]);
    assert!(store.contains(&d1) && store.contains(&d2));
}
