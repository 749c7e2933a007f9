//! The reference llama-server (built by scripts/build-reference.sh), run on a
//! free loopback port for the length of a test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::root;

/// Folder with the reference tools; panics with the fix when absent.
pub fn reference_bin_dir() -> PathBuf {
    let dir = match std::env::var_os("OUTPOST_REFERENCE_BIN") {
        Some(d) => PathBuf::from(d),
        None => {
            let out = Command::new("bash")
                .arg(root().join("scripts/build-reference.sh"))
                .arg("--print-dir")
                .output()
                .expect("run scripts/build-reference.sh --print-dir");
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    assert!(
        dir.join("llama-server").is_file() && dir.join(".complete").is_file(),
        "reference llama-server missing in {}: run scripts/build-reference.sh (parity tests never skip)",
        dir.display()
    );
    dir
}

/// The reference llama.cpp commit, as recorded at build time.
pub fn reference_commit() -> String {
    std::fs::read_to_string(reference_bin_dir().join(".complete"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A running llama-server, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn start(model: &Path, extra: &[&str]) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = std::env::temp_dir().join(format!("outpost-ref-server-{port}.log"));
        let child = Command::new(reference_bin_dir().join("llama-server"))
            .arg("-m")
            .arg(model)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "-c",
                "2048",
                "-np",
                "1",
                "-t",
                "1",
            ])
            .args(["--no-webui", "--jinja"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start llama-server");
        let mut s = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = ureq::get(&format!("{}/health", s.base)).call() {
                if r.status() == 200 {
                    return s;
                }
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!(
                    "llama-server exited with {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "llama-server did not become healthy; log {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        ureq::post(&format!("{}{}", self.base, path))
            .send_json(body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
            .into_json()
            .expect("json reply")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
