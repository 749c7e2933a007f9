//! Sealed models through the whole product (#23), as real processes on the
//! real models: `outpost fleet publish --encrypt` → `outpost agent` (key
//! from the fleet, wrapped to the device key; blob opened into memory; the
//! canary run on that) → `outpost serve --store` answers with the same
//! greedy tokens as the plain file. Then every file the agent and the
//! server wrote (store, spool, temp folder) is scanned for the GGUF header
//! and for 64-byte runs of the plaintext. A tampered chunk, a wrong device
//! key, a replayed key answer (recorded from the fleet for another request),
//! an expired one and a revoked device are each refused by name, the
//! installed model kept.

mod common;
#[path = "agent_support/fixture.rs"]
mod fixture;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::server::{http, start_models};
use fixture::{agent_at, free_port, run, temp, text, Fleet};
use outpost_engine::{LoadOptions, Model};
use serde_json::{json, Value};

/// The tests here run models: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static S: Mutex<()> = Mutex::new(());
    S.lock().unwrap_or_else(|p| p.into_inner())
}

/// A release folder for `model` at `version` running the plain `file`,
/// with canaries taken from that file (so the canary passes only when the
/// device runs the same weights).
fn release_dir(root: &Path, model: &str, version: &str, file: &Path) -> PathBuf {
    let dir = root.join(format!("release-{model}-{version}"));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(file, dir.join("model.gguf")).expect("copy");
    let m = Model::load(file, &LoadOptions::default()).expect("load for fingerprints");
    let fingerprints =
        outpost_variants::fingerprint::fingerprints(&m, Some(2)).expect("fingerprints");
    let types: Vec<String> = outpost_engine::gguf::GgufHeader::read(file)
        .expect("header")
        .type_mix()
        .into_iter()
        .map(|(t, _, _)| t)
        .collect();
    let meta = json!({
        "model": model, "version": version, "min_app_version": "0.1.0",
        "variants": [{"file": "model.gguf", "quantization": "Q4", "ggml_types": types,
            "memory_bytes": 400_000_000u64, "min_engine_version": "0.1.0",
            "fingerprints": fingerprints}],
        "classes": {"default": {"variant": "Q4", "n_ctx": 2048, "kv_cache_type": "f16"}}
    });
    std::fs::write(dir.join("release.json"), meta.to_string()).expect("release.json");
    dir
}

/// Where the device key lives in a test: `file` or `kernel-keyring`.
static KEY_STORE: Mutex<&str> = Mutex::new("file");

fn key_store() -> &'static str {
    *KEY_STORE.lock().unwrap_or_else(|p| p.into_inner())
}

/// `outpost agent once` for `store`, with its temp folder set to `tmp`.
fn agent_once(fleet: &Fleet, store: &Path, tmp: &Path) -> (bool, String) {
    let mut c = agent_at(
        &fleet.url,
        &fleet.data,
        store,
        &["--device-key-store", key_store()],
        &[],
    );
    c.env("TMPDIR", tmp);
    let o = run(c);
    (o.status.success(), text(&o))
}

/// The active digest of `model` in `store`.
fn active(store: &Path, model: &str) -> Option<String> {
    let bytes = std::fs::read(store.join("active").join(format!("{model}.json"))).ok()?;
    let v: Value = serde_json::from_slice(&bytes).expect("pointer");
    v["active"].as_str().map(str::to_string)
}

/// `outpost serve --store STORE` with its temp folder set, once healthy.
struct StoreServer {
    child: Child,
    port: u16,
}

impl Drop for StoreServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_store(store: &Path, tmp: &Path) -> StoreServer {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args([
            "serve",
            "--port",
            &port.to_string(),
            "--slots",
            "1",
            "-c",
            "2048",
            "-t",
            "2",
            "--store",
        ])
        .arg(store)
        .args(["--device-key-store", key_store()])
        .env("TMPDIR", tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn outpost serve --store");
    let s = StoreServer { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(port, "GET", "/health", "", None).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "outpost serve --store did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    s
}

/// A proxy in front of the real fleet: content-key requests get the answer
/// the test sets (a recorded or altered grant); everything else passes
/// through. One request per connection.
struct KeyProxy {
    url: String,
    answer: std::sync::Arc<Mutex<Value>>,
}

fn key_proxy(fleet_url: &str) -> KeyProxy {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let answer = std::sync::Arc::new(Mutex::new(Value::Null));
    let (a, upstream) = (answer.clone(), fleet_url.to_string());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().expect("clone"));
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_string(),
                parts.next().unwrap_or("").to_string(),
            );
            let mut headers = Vec::new();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap_or(("", ""));
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    len = v.trim().parse().unwrap_or(0);
                }
                if ["authorization", "range", "content-type"].contains(&k.as_str()) {
                    headers.push((k, v.trim().to_string()));
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            let (status, mut out_headers, out) = if method == "POST" && path == "/v1/content-keys" {
                let v = a.lock().unwrap_or_else(|p| p.into_inner()).clone();
                (
                    200,
                    vec![("content-type".to_string(), "application/json".to_string())],
                    v.to_string().into_bytes(),
                )
            } else {
                let mut req = ureq::request(&method, &format!("{upstream}{path}"));
                for (k, v) in &headers {
                    req = req.set(k, v);
                }
                let resp = match if body.is_empty() {
                    req.call()
                } else {
                    req.send_bytes(&body)
                } {
                    Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
                    Err(_) => continue,
                };
                let hs = ["content-type", "content-range"]
                    .iter()
                    .filter_map(|h| resp.header(h).map(|v| (h.to_string(), v.to_string())))
                    .collect();
                let status = resp.status();
                let mut out = Vec::new();
                let _ = resp.into_reader().read_to_end(&mut out);
                (status, hs, out)
            };
            out_headers.push(("content-length".into(), out.len().to_string()));
            let mut head = format!("HTTP/1.1 {status} X\r\nconnection: close\r\n");
            for (k, v) in out_headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = conn
                .write_all(head.as_bytes())
                .and_then(|()| conn.write_all(&out));
        }
    });
    KeyProxy { url, answer }
}

/// Points the device's identity at `url` (the proxy, or the fleet again).
fn set_fleet_url(store: &Path, url: &str) {
    let p = store.join("agent.json");
    let mut id: Value =
        serde_json::from_slice(&std::fs::read(&p).expect("identity")).expect("json");
    id["fleet_url"] = json!(url);
    std::fs::write(&p, id.to_string()).expect("write identity");
}

/// Greedy text of a completion from the server on `port`.
fn greedy(port: u16, model: &str) -> String {
    let body = json!({"model": model, "prompt": "The lighthouse keeper opened the bottle and read",
        "max_tokens": 32, "temperature": 0})
    .to_string();
    let (status, text) = http(port, "POST", "/v1/completions", &body, None);
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    v["choices"][0]["text"].as_str().expect("text").to_string()
}

/// No file under `dirs` starts with the GGUF header or holds a 64-byte run
/// of `plain` (runs taken every 256 KiB, constant runs skipped); also no
/// GGUF magic followed by its version anywhere inside.
fn scan_for_plaintext(dirs: &[&Path], plain: &[u8]) -> usize {
    let runs: Vec<&[u8]> = (0..plain.len().saturating_sub(64))
        .step_by(256 << 10)
        .map(|at| &plain[at..at + 64])
        .filter(|r| r.iter().any(|&b| b != r[0]))
        .collect();
    assert!(runs.len() > 100, "enough probes");
    let header = &plain[..8];
    let mut files = 0;
    let mut stack: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            stack.extend(
                std::fs::read_dir(&p)
                    .expect("dir")
                    .flatten()
                    .map(|e| e.path()),
            );
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        let bytes = std::fs::read(&p).expect("read");
        files += 1;
        assert!(
            !bytes.starts_with(b"GGUF"),
            "{} starts with the GGUF magic",
            p.display()
        );
        assert!(
            memchr::memmem::find(&bytes, header).is_none(),
            "{} holds the GGUF header",
            p.display()
        );
        for r in &runs {
            assert!(
                memchr::memmem::find(&bytes, r).is_none(),
                "{} holds plaintext",
                p.display()
            );
        }
    }
    files
}

/// Publish sealed → install → serve, compared with the plain file; then
/// the scan. Returns the fleet, store and temp folder for more steps.
fn end_to_end(root: &Path, model: &str, file: &str) -> (Fleet, PathBuf, PathBuf) {
    let plain_path = common::model_path(file);
    let fleet = Fleet::start(&root.join("fleet"), free_port(), &["--seal-releases"]);
    let dir = release_dir(root, model, "1.0.0", &plain_path);
    // The fleet seals by default: a plain publish is refused by name.
    let o = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args([
            "fleet",
            "publish",
            dir.to_str().expect("utf8"),
            "--no-encrypt",
            "--url",
            &fleet.url,
            "--data",
        ])
        .arg(&fleet.data)
        .output()
        .expect("publish");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("seals every release"),
        "{}",
        text(&o)
    );
    let v = fleet.admin(&["publish", dir.to_str().expect("utf8")]);
    let enc = &v["meta"]["variants"][0]["encryption"];
    let plain = std::fs::read(&plain_path).expect("model");
    assert_eq!(
        enc["plaintext_digest"],
        outpost_protocol::Digest::sha256(&plain).to_string(),
        "{v}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).expect("dir").count(),
        2,
        "the sealed scratch folder is gone"
    );
    fleet.admin(&["release", &format!("{model}@1.0.0"), "--channel", "stable"]);

    let store = root.join("store");
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp");
    let (ok, out) = agent_once(&fleet, &store, &tmp);
    assert!(ok && out.contains("installed 1.0.0"), "{out}");
    let sealed_digest = v["meta"]["variants"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    assert_eq!(
        active(&store, model).as_deref(),
        Some(sealed_digest.as_str())
    );
    assert!(
        store
            .join("keys")
            .join(format!("{}.json", &sealed_digest[7..]))
            .exists(),
        "the kept key"
    );

    // The canary ran on the decrypted model and passed (its telemetry
    // reaches the fleet with the next cycle).
    let (ok, out) = agent_once(&fleet, &store, &tmp);
    assert!(ok && out.contains("nothing to do"), "{out}");
    let cohorts = fleet.admin(&["cohorts", "--minutes", "1440"]);
    let c = cohorts
        .as_array()
        .and_then(|a| a.iter().find(|c| c["model_version"] == "1.0.0"))
        .cloned()
        .unwrap_or(Value::Null);
    assert!(
        c["canary_runs"].as_u64() >= Some(1) && c["canary_fails"] == 0,
        "{cohorts}"
    );

    // Served from memory, the same greedy answer as the plain file.
    let want = {
        let s = start_models(&[plain_path.to_str().expect("utf8")], &["--slots", "1"]);
        greedy(s.port, file.trim_end_matches(".gguf"))
    };
    let server = serve_store(&store, &tmp);
    let got = greedy(server.port, model);
    assert_eq!(got, want, "{model}: the sealed install answers differently");
    assert!(!got.trim().is_empty());
    drop(server);

    let files = scan_for_plaintext(&[&store, &tmp], &plain);
    assert!(files >= 5, "scanned {files} files");
    (fleet, store, tmp)
}

#[test]
fn sealed_smollm2_publish_install_serve_and_refusals_keep_the_installed_model() {
    let _s = serial();
    let root = temp("sealed-smollm2");
    let model = "smollm2-135m";
    let (fleet, store, tmp) = end_to_end(&root.0, model, "smollm2-135m.gguf");
    let installed = active(&store, model).expect("installed");
    let plain_path = common::model_path("smollm2-135m.gguf");
    let dir = release_dir(&root.0, model, "1.1.0", &plain_path);

    // A tampered chunk: a blob sealed by the publisher, one byte of chunk
    // 1 flipped before it was hashed, so only the chunk's tag can tell.
    let plain = std::fs::read(&plain_path).expect("model");
    let key = outpost_seal::ContentKey::generate().expect("key");
    let mut sealed = Vec::new();
    let chunk = outpost_seal::stream::DEFAULT_CHUNK;
    outpost_seal::stream::seal(
        &key,
        plain.len() as u64,
        chunk,
        &mut &plain[..],
        &mut sealed,
    )
    .expect("seal");
    sealed[outpost_seal::stream::HEADER_LEN + chunk as usize + 100] ^= 1;
    let digest = outpost_protocol::Digest::sha256(&sealed);
    let token = std::fs::read_to_string(fleet.data.join("admin.token")).expect("token");
    let auth = format!("Bearer {}", token.trim());
    ureq::put(&format!("{}/admin/v1/blobs/{digest}", fleet.url))
        .set("authorization", &auth)
        .send_bytes(&sealed)
        .expect("upload");
    ureq::put(&format!("{}/admin/v1/content-keys/{digest}", fleet.url))
        .set("authorization", &auth)
        .send_json(json!({"key": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.as_bytes())}))
        .expect("key");
    let mut meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("release.json")).expect("meta"))
            .expect("json");
    meta["version"] = json!("1.0.1");
    let v = &mut meta["variants"][0];
    v.as_object_mut().expect("obj").remove("file");
    v["digest"] = json!(digest.to_string());
    v["length"] = json!(sealed.len());
    v["encryption"] = json!({"scheme": "xchacha20poly1305-stream-v1", "chunk_size": chunk,
        "plaintext_digest": outpost_protocol::Digest::sha256(&plain).to_string(), "plaintext_length": plain.len()});
    ureq::post(&format!("{}/admin/v1/releases", fleet.url))
        .set("authorization", &auth)
        .send_json(meta)
        .expect("publish");
    fleet.admin(&["release", &format!("{model}@1.0.1"), "--channel", "stable"]);
    let (_, out) = agent_once(&fleet, &store, &tmp);
    assert!(
        out.contains("rejected (tampered)") && out.contains("chunk 1"),
        "{out}"
    );
    assert_eq!(active(&store, model).as_ref(), Some(&installed));

    // A wrong device key: the grant is wrapped to the registered key.
    let v11 = fleet.admin(&["publish", dir.to_str().expect("utf8")]);
    fleet.admin(&["release", &format!("{model}@1.1.0"), "--channel", "stable"]);
    let key_file = store.join("device-key.json");
    let real = std::fs::read(&key_file).expect("device key");
    std::fs::write(
        &key_file,
        format!("{{\"x25519_secret\":\"{}\"}}", "42".repeat(32)),
    )
    .expect("write");
    let (_, out) = agent_once(&fleet, &store, &tmp);
    assert!(
        out.contains("rejected (key-unwrap)") && out.contains("device key"),
        "{out}"
    );
    assert_eq!(active(&store, model).as_ref(), Some(&installed));
    std::fs::write(&key_file, real).expect("restore");

    // A replayed key answer: one the fleet really sent this device for the
    // same blob, but for another request (its nonce), played back by a
    // man in the middle.
    let id: Value =
        serde_json::from_slice(&std::fs::read(store.join("agent.json")).expect("identity"))
            .expect("json");
    let blob = v11["meta"]["variants"][0]["digest"]
        .as_str()
        .expect("1.1.0's digest");
    let recorded: Value = ureq::post(&format!("{}/v1/content-keys", fleet.url))
        .set(
            "authorization",
            &format!("Bearer {}", id["token"].as_str().expect("token")),
        )
        .send_json(json!({"digest": blob, "nonce": "0123456789abcdef0123456789abcdef"}))
        .expect("a genuine grant")
        .into_json()
        .expect("json");
    let proxy = key_proxy(&fleet.url);
    *proxy.answer.lock().expect("answer") = recorded.clone();
    set_fleet_url(&store, &proxy.url);
    let through_proxy = |store: &Path| {
        let mut c = agent_at(
            &proxy.url,
            &fleet.data,
            store,
            &["--device-key-store", key_store()],
            &[],
        );
        c.env("TMPDIR", &tmp);
        text(&run(c))
    };
    let out = through_proxy(&store);
    assert!(
        out.contains("rejected (key-unwrap)") && out.contains("replayed"),
        "{out}"
    );
    assert_eq!(active(&store, model).as_ref(), Some(&installed));
    // An expired answer (its expiry moved into the past).
    let mut expired = recorded;
    expired["expires_at"] = json!(1_000_000_000u64);
    *proxy.answer.lock().expect("answer") = expired;
    let out = through_proxy(&store);
    assert!(
        out.contains("rejected (key-expired)") && out.contains("1000000000"),
        "{out}"
    );
    assert_eq!(active(&store, model).as_ref(), Some(&installed));
    set_fleet_url(&store, &fleet.url);

    // A revoked device gets no key.
    let id: Value =
        serde_json::from_slice(&std::fs::read(store.join("agent.json")).expect("identity"))
            .expect("json");
    let device = id["device_id"].as_str().expect("id");
    fleet.admin(&["revoke-device", device]);
    let (_, out) = agent_once(&fleet, &store, &tmp);
    assert!(
        out.contains("rejected (key-refused)") && out.contains("revoked"),
        "{out}"
    );
    assert_eq!(active(&store, model).as_ref(), Some(&installed));
    // It still serves what it installed before, from memory.
    let server = serve_store(&store, &tmp);
    assert!(!greedy(server.port, model).trim().is_empty());
    drop(server);
    // Every key request was audited as the device's own: the grants
    // (1.0.0, the tampered 1.0.1, 1.1.0 under the wrong key, the one
    // recorded for the replay) and the refusal, with its reason.
    let audit = fleet.admin(&["audit", "--limit", "100"]);
    let records = audit.as_array().expect("audit");
    let by = |action: &str| {
        records
            .iter()
            .filter(|r| r["action"] == action)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(by("content-key.grant").len(), 4, "{audit}");
    let refused = by("content-key.refuse");
    assert_eq!(refused.len(), 1, "{audit}");
    assert_eq!(refused[0]["actor"], format!("device/{device}"));
    assert!(
        refused[0]["detail"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("revoked"),
        "{audit}"
    );
    scan_for_plaintext(&[&store, &tmp], &plain);
}

#[test]
fn sealed_gemma3_publish_install_serve_with_the_device_key_in_the_kernel_keyring() {
    let _s = serial();
    let root = temp("sealed-gemma3");
    *KEY_STORE.lock().unwrap_or_else(|p| p.into_inner()) = "kernel-keyring";
    let store = root.0.join("store");
    let result =
        std::panic::catch_unwind(|| end_to_end(&root.0, "gemma3-270m", "gemma3-270m.gguf"));
    *KEY_STORE.lock().unwrap_or_else(|p| p.into_inner()) = "file";
    let ring = outpost_agent::device_key::KernelKeyring::new(&store);
    let had_key = ring.forget().expect("the keyring");
    let (_fleet, store, _tmp) = result.unwrap_or_else(|p| std::panic::resume_unwind(p));
    assert!(had_key, "the device key was in the kernel keyring");
    assert!(!store.join("device-key.json").exists(), "and not on disk");
}
