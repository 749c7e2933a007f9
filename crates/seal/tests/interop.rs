//! outpost-seal's formats against independent implementations: libsodium
//! (PyNaCl) opens and makes the chunked XChaCha20-Poly1305 STREAM blobs,
//! pyhpke opens and makes the RFC 9180 key wraps (`interop.py`, pinned in
//! scripts/test.sh). Fails if python3 or those packages are missing.

use std::path::Path;
use std::process::Command;

use outpost_seal::stream::{open, seal};
use outpost_seal::wrap::{unwrap, wrap, DeviceSecret, Grant, WrappedKey};
use outpost_seal::ContentKey;

#[test]
fn libsodium_and_pyhpke_read_and_write_the_same_formats() {
    let dir = std::env::temp_dir().join(format!("outpost-seal-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key = ContentKey::generate().expect("key");
    let plain: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i * 7 % 253) as u8).collect();
    let mut sealed = Vec::new();
    seal(&key, plain.len() as u64, 4096, &mut &plain[..], &mut sealed).expect("seal");
    let device = DeviceSecret::generate().expect("device key");
    let grant = Grant {
        release: "2.0.1".into(),
        digest: format!("sha256:{}", "cd".repeat(32)),
        device_id: "dev-interop".into(),
        expires_at: 1_900_000_000,
        request_nonce: *b"0123456789abcdef",
    };
    let w = wrap(&key, &device.public(), &grant).expect("wrap");
    let put = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).expect("write");
    put("key", key.as_bytes());
    put("plain", &plain);
    put("sealed", &sealed);
    put("device.secret", device.as_bytes());
    put("device.public", &device.public().0);
    put("wrapped.enc", &w.enc);
    put("wrapped.ct", &w.ciphertext);
    put(
        "grant",
        format!(
            "{}\n{}\n{}\n{}\n{}\n",
            grant.release,
            grant.digest,
            grant.device_id,
            grant.expires_at,
            hex(&grant.request_nonce)
        )
        .as_bytes(),
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&dir)
        .output()
        .expect("python3 (scripts/test.sh installs pynacl and pyhpke)");
    assert!(
        out.status.success(),
        "interop.py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| std::fs::read(dir.join(name)).expect("read");
    let mut back = Vec::new();
    open(&key, &mut &read("sealed-by-libsodium")[..], &mut back).expect("open libsodium's blob");
    assert_eq!(back, plain);
    let theirs = WrappedKey {
        enc: read("py.enc").try_into().expect("32-byte enc"),
        ciphertext: read("py.ct"),
    };
    let k = unwrap(&theirs, &device, &grant, 1_800_000_000).expect("open pyhpke's wrap");
    assert_eq!(k.as_bytes(), key.as_bytes());
    let _ = std::fs::remove_dir_all(&dir);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
