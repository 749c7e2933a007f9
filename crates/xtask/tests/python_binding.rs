//! The UniFFI bindings (#24): Python, Kotlin and Swift generated from
//! `crates/ffi/src/api.rs` by this package's `outpost-bindgen`, and the
//! Python one exercised for real through the wheel maturin built
//! (`scripts/build-wheel.sh`), installed into a fresh folder
//! (`crates/ffi/tests/python/test_binding.py`):
//! models, streaming, cancel, guard, and the agent as a library against a
//! real `outpost fleet serve` with a sealed SmolLM2 release; and the same
//! agent, embeddings and route decision through the C ABI as a C caller
//! uses them. Kotlin and Swift: `kotlin_swift_bindings.rs`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{built, root};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(c: &mut Command) -> String {
    common::run_ok(c, "scripts/test.sh")
}

/// Installs the wheel `scripts/build-wheel.sh` built into `site` (pip,
/// offline, no dependencies) and says where.
fn install_wheel(site: &Path) -> PathBuf {
    let wheels = root().join("target/wheels");
    let wheel = std::fs::read_dir(&wheels)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("outpost-") && name.contains("manylinux") && name.ends_with(".whl")
        });
    let wheel = built(
        wheel.unwrap_or_else(|| wheels.join("outpost-*-manylinux*.whl")),
        "run scripts/build-wheel.sh (maturin + auditwheel)",
    );
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-index", "--no-deps", "--target"])
        .arg(site)
        .arg(&wheel));
    site.to_path_buf()
}

#[test]
fn python_drives_models_guard_and_the_agent_through_the_generated_binding() {
    let release = root().join("target/release");
    let outpost = built(
        release.join("outpost"),
        "cargo build --release -p outpost-cli",
    );
    let model = built(
        root().join("models/smollm2-135m.gguf"),
        "run scripts/fetch-models.sh (this test never skips)",
    );
    let dir = std::env::temp_dir().join(format!("outpost-bindings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let site = install_wheel(&dir.join("site"));

    // A real fleet with a sealed release of SmolLM2 (fingerprints are not
    // checked: the library runs no canary).
    let data = dir.join("fleet");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let _fleet = Killed(
        Command::new(&outpost)
            .args(["fleet", "serve", "--port", &port.to_string(), "--data"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("outpost fleet serve"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(&format!("{url}/health")).call().is_err() {
        assert!(Instant::now() < deadline, "the fleet did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Canaries taken from the model itself: the library's in-process
    // canary passes on these, and fails on 1.0.1's, whose every reference
    // distribution is turned upside down (the most likely token made the
    // least).
    let m = outpost_engine::Model::load(&model, &outpost_engine::LoadOptions::default())
        .expect("load for fingerprints");
    let fingerprints = serde_json::to_value(
        outpost_variants::fingerprint::fingerprints(&m, Some(2)).expect("fingerprints"),
    )
    .expect("json");
    drop(m);
    let mut upside_down = fingerprints.clone();
    for f in upside_down.as_array_mut().expect("fingerprints") {
        let top = f["top"].as_array_mut().expect("top");
        let tokens: Vec<serde_json::Value> = top.iter().map(|t| t[0].clone()).rev().collect();
        for (t, token) in top.iter_mut().zip(tokens) {
            t[0] = token;
        }
    }
    let release = |version: &str, fingerprints: &serde_json::Value| {
        let rel = dir.join(format!("release-{version}"));
        std::fs::create_dir_all(&rel).expect("dir");
        std::fs::copy(&model, rel.join("model.gguf")).expect("copy model");
        let meta = serde_json::json!({
            "model": "smollm2-135m", "version": version, "min_app_version": "0.1.0",
            "variants": [{"file": "model.gguf", "quantization": "Q4_1", "ggml_types": ["f32", "q4_1", "q8_0"],
                "memory_bytes": 400_000_000u64, "min_engine_version": "0.1.0",
                "fingerprints": fingerprints}],
            "classes": {"default": {"variant": "Q4_1", "n_ctx": 2048, "kv_cache_type": "f16"}}
        });
        std::fs::write(rel.join("release.json"), meta.to_string()).expect("release.json");
        rel
    };
    let rel = release("1.0.0", &fingerprints);
    let bad = release("1.0.1", &upside_down);
    let fleet_cmd = |args: &[&str]| {
        run(Command::new(&outpost)
            .arg("fleet")
            .args(args)
            .args(["--url", &url, "--data"])
            .arg(&data))
    };
    fleet_cmd(&["publish", rel.to_str().expect("utf8"), "--encrypt"]);
    // The Python device follows beta, where the script later releases the
    // bad 1.0.1; the C caller's fresh device stays on stable's 1.0.0.
    fleet_cmd(&["release", "smollm2-135m@1.0.0", "--channel", "stable"]);
    fleet_cmd(&["release", "smollm2-135m@1.0.0", "--channel", "beta"]);

    // all-MiniLM-L6-v2 converted from its safetensors, for embeddings.
    let minilm = dir.join("minilm.gguf");
    run(Command::new(&outpost)
        .arg("convert")
        .arg(
            built(
                root().join("models/all-minilm-l6-v2/model.safetensors"),
                "run scripts/fetch-models.sh",
            )
            .parent()
            .expect("checkpoint folder"),
        )
        .arg("--out")
        .arg(&minilm));
    let out = run(Command::new("python3")
        .arg(root().join("crates/ffi/tests/python/test_binding.py"))
        .env("PYTHONPATH", &site)
        .env("OUTPOST_WHEEL_SITE", &site)
        .env("OUTPOST_BIN", &outpost)
        .env("OUTPOST_BAD_RELEASE", &bad)
        .env("OUTPOST_MODEL", &model)
        .env("OUTPOST_EMBEDDING_MODEL", &minilm)
        .env("OUTPOST_FLEET_URL", &url)
        .env("OUTPOST_FLEET_DATA", &data)
        .env("OUTPOST_STORE", dir.join("store")));
    eprintln!("{out}");
    assert!(
        out.contains("ok: the sealed install answers like the plain file"),
        "{out}"
    );
    // The fleet counted the two requests the app recorded.
    let cohorts = Command::new(&outpost)
        .args([
            "fleet",
            "cohorts",
            "--minutes",
            "1440",
            "--json",
            "--url",
            &url,
            "--data",
        ])
        .arg(&data)
        .output()
        .expect("outpost fleet cohorts");
    let v: serde_json::Value = serde_json::from_slice(&cohorts.stdout).expect("cohorts json");
    let inferences: u64 = v
        .as_array()
        .expect("cohorts")
        .iter()
        .filter(|c| c["model_version"] == "1.0.0")
        .filter_map(|c| c["inferences"].as_u64())
        .sum();
    assert_eq!(inferences, 2, "{v}");

    // The same agent through the C ABI, as a C app calls it (a second
    // device with its own store).
    c_abi_agent(&url, &data, &dir.join("store-c"));
    c_abi_embed(&minilm);
    c_abi_route();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `outpost_agent_*` end to end: open, check in, status, open the sealed
/// install from memory and generate, record and flush telemetry, and the
/// errors a C caller gets for bad input.
fn c_abi_agent(url: &str, data: &Path, store: &Path) {
    use outpost_ffi::*;
    use std::ffi::{c_char, CStr, CString};
    // SAFETY: pointers returned by the library, read and freed as its
    // header says.
    let take = |p: *mut c_char| -> String {
        assert!(!p.is_null(), "failed: {}", last_error());
        let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        unsafe { outpost_string_free(p) };
        s
    };
    fn last_error() -> String {
        let p = outpost_last_error();
        if p.is_null() {
            return String::new();
        }
        // SAFETY: the thread's last error, NUL-terminated.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
    let settings = serde_json::json!({
        "fleet_url": url,
        "store_dir": store,
        "app_key": std::fs::read_to_string(data.join("app.key")).expect("app key").trim(),
        "pinned_keys": [std::fs::read_to_string(data.join("signing.pub.json")).expect("pin")],
        "device_class": "laptop-16gb",
        "app_version": "1.0.0",
    });
    let cs = |s: &str| CString::new(s).expect("no NUL");
    // SAFETY: NUL-terminated strings and live handles throughout.
    unsafe {
        assert!(outpost_agent_open(cs("{\"fleet_url\": 3}").as_ptr()).is_null());
        assert!(last_error().contains("settings_json"), "{}", last_error());
        let agent = outpost_agent_open(cs(&settings.to_string()).as_ptr());
        assert!(!agent.is_null(), "{}", last_error());
        let bad = outpost_agent_check_in(agent, cs("{\"unmetered\": \"yes\"}").as_ptr());
        assert!(
            bad.is_null() && last_error().contains("conditions_json"),
            "{}",
            last_error()
        );
        let report: serde_json::Value = serde_json::from_str(&take(outpost_agent_check_in(
            agent,
            cs("{\"unmetered\": true, \"battery_pct\": 90}").as_ptr(),
        )))
        .expect("report json");
        assert_eq!(report["changed"], true, "{report}");
        let status: serde_json::Value =
            serde_json::from_str(&take(outpost_agent_status(agent))).expect("status json");
        assert_eq!(status[0]["version"], "1.0.0", "{status}");
        let model = outpost_agent_open_model(agent, cs("smollm2-135m").as_ptr());
        assert!(!model.is_null(), "{}", last_error());
        let o = OutpostGenerateOptions {
            max_tokens: 8,
            greedy: 1,
            threads: 2,
            ..OutpostGenerateOptions::default()
        };
        let rc = outpost_generate(
            model,
            cs("The capital of France is").as_ptr(),
            &o,
            std::ptr::null(),
            None,
            std::ptr::null_mut(),
        );
        assert_eq!(rc, OUTPOST_OK, "{}", last_error());
        outpost_model_free(model);
        assert!(outpost_agent_open_model(agent, cs("no-such-model").as_ptr()).is_null());
        assert!(last_error().contains("no-such-model"), "{}", last_error());
        assert_eq!(
            outpost_agent_record_inference(agent, cs("smollm2-135m").as_ptr(), 30.0, 200.0, 8),
            OUTPOST_OK
        );
        assert!(outpost_agent_flush(agent) >= 1, "{}", last_error());
        outpost_agent_free(agent);
    }
}

/// `outpost_embed` as a C caller uses it: ask the width, then fill a
/// buffer; a buffer too small is refused with the size needed.
fn c_abi_embed(minilm: &Path) {
    use outpost_ffi::*;
    use std::ffi::{CStr, CString};
    let cs = |s: &str| CString::new(s).expect("no NUL");
    let path = cs(minilm.to_str().expect("utf8"));
    let texts = [cs("A cat sits on the mat."), cs("A kitten rests on a rug.")];
    let ptrs: Vec<*const std::ffi::c_char> = texts.iter().map(|t| t.as_ptr()).collect();
    // SAFETY: live handles, NUL-terminated strings, a buffer of the size given.
    unsafe {
        let m = outpost_model_open(path.as_ptr());
        assert!(!m.is_null());
        let dims = outpost_embed(m, ptrs.as_ptr(), 2, std::ptr::null_mut(), 0);
        assert_eq!(dims, 384);
        let mut small = vec![0f32; 10];
        assert_eq!(
            outpost_embed(m, ptrs.as_ptr(), 2, small.as_mut_ptr(), small.len()),
            i64::from(OUTPOST_ERROR)
        );
        let err = CStr::from_ptr(outpost_last_error())
            .to_string_lossy()
            .into_owned();
        assert!(err.contains("768"), "{err}");
        let mut out = vec![0f32; 768];
        assert_eq!(
            outpost_embed(m, ptrs.as_ptr(), 2, out.as_mut_ptr(), out.len()),
            384
        );
        let (a, b) = out.split_at(384);
        let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        assert!(cos > 0.5 && cos < 1.0, "cosine {cos}");
        outpost_model_free(m);
    }
}

/// `outpost_route_decide` as a C caller uses it.
fn c_abi_route() {
    use outpost_ffi::*;
    use std::ffi::{CStr, CString};
    let cs = |s: &str| CString::new(s).expect("no NUL");
    let policy = cs("mode = \"auto\"\n[cloud]\nurl = \"https://cloud.example/v1\"\n");
    // SAFETY: NUL-terminated strings; results freed as the header says.
    unsafe {
        let ask = |request: &str| -> serde_json::Value {
            let p = outpost_route_decide(policy.as_ptr(), cs(request).as_ptr());
            assert!(!p.is_null());
            let d = serde_json::from_str(&CStr::from_ptr(p).to_string_lossy()).expect("json");
            outpost_string_free(p);
            d
        };
        let d = ask(r#"{"text": "What is 2 + 2?", "max_tokens": 8}"#);
        assert_eq!(
            (d["target"].as_str(), d["reason"].as_str()),
            (Some("local"), Some("simple")),
            "{d}"
        );
        // The app says the battery is low: the work moves to the cloud.
        let d = ask(r#"{"text": "What is 2 + 2?", "max_tokens": 8, "battery_low": true}"#);
        assert_eq!(
            (d["target"].as_str(), d["reason"].as_str()),
            (Some("cloud"), Some("battery_low")),
            "{d}"
        );
        let bad = outpost_route_decide(policy.as_ptr(), cs(r#"{"txt": "hi"}"#).as_ptr());
        assert!(bad.is_null());
        let err = CStr::from_ptr(outpost_last_error())
            .to_string_lossy()
            .into_owned();
        assert!(err.contains("request_json") && err.contains("txt"), "{err}");
    }
}
