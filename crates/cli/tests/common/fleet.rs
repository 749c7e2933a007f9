//! A real `outpost fleet serve` process on a free port, for the end-to-end
//! tests: start, stop, restart on the same data, and admin commands.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::MODEL;

/// A running `outpost fleet serve`, killed when dropped.
pub struct Fleet {
    pub child: Child,
    pub url: String,
    pub data: PathBuf,
    pub port: u16,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

impl Fleet {
    pub fn start(data: &Path, port: u16, extra: &[&str]) -> Fleet {
        let child = Command::new(env!("CARGO_BIN_EXE_outpost"))
            .args(["fleet", "serve", "--port", &port.to_string(), "--data"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn outpost fleet serve");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("{url}/health")).call().is_err() {
            assert!(Instant::now() < deadline, "fleet did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Fleet {
            child,
            url,
            data: data.to_path_buf(),
            port,
        }
    }

    /// Kills the fleet process (its URL stays: nothing answers there).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same data folder and port.
    pub fn restart(&mut self, extra: &[&str]) {
        self.stop();
        *self = Fleet::start(&self.data.clone(), self.port, extra);
    }

    /// `outpost fleet ARGS --json`, which must succeed.
    pub fn admin(&self, args: &[&str]) -> Value {
        let o = Command::new(env!("CARGO_BIN_EXE_outpost"))
            .arg("fleet")
            .args(args)
            .args(["--json", "--url", &self.url, "--data"])
            .arg(&self.data)
            .output()
            .expect("run outpost fleet");
        assert!(
            o.status.success(),
            "fleet {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
    }

    pub fn publish(&self, dir: &Path) {
        self.admin(&["publish", dir.to_str().expect("utf8")]);
    }

    pub fn release_to_stable(&self, version: &str) {
        self.admin(&[
            "release",
            &format!("{MODEL}@{version}"),
            "--channel",
            "stable",
        ]);
    }

    /// Telemetry per cohort over the last day, by release.
    pub fn cohort(&self, version: &str) -> Value {
        let v = self.admin(&["cohorts", "--minutes", "1440"]);
        let rows = v.as_array().cloned().unwrap_or_default();
        rows.into_iter()
            .find(|c| c["model_version"] == version)
            .unwrap_or(Value::Null)
    }
}

/// A release folder: release.json and one fake GGUF file.
pub fn release_dir(root: &Path, model: &str, version: &str) -> PathBuf {
    let dir = root.join(format!("release-{version}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut data = b"GGUF".to_vec();
    data.extend(format!("weights of {version} ").repeat(500).bytes());
    std::fs::write(dir.join("model.Q4_0.gguf"), &data).expect("gguf");
    let meta = json!({
        "model": model, "version": version, "min_app_version": "1.0.0",
        "variants": [{"file": "model.Q4_0.gguf", "quantization": "Q4_0", "ggml_types": ["f32", "q4_0"],
            "memory_bytes": 100_000_000u64, "min_engine_version": "0.1.0", "quality": {"kld_mean": 0.04},
            "fingerprints": [{"prompt": "Hello", "position": 2, "top": [[1, -0.5], [2, -1.5]]}]}],
        "classes": {"default": {"variant": "Q4_0", "n_ctx": 1024, "kv_cache_type": "q8_0", "threads": 2}}
    });
    std::fs::write(dir.join("release.json"), meta.to_string()).expect("meta");
    dir
}
