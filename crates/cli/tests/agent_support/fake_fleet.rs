//! A hand-driven fleet for the attacks a real fleet never makes: it
//! answers check-ins with whatever signed envelope the test sets (forged,
//! older, expired), serves artifact bytes the test chooses, and
//! acknowledges telemetry. One thread, raw HTTP/1.1, one request per
//! connection.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

#[derive(Default)]
pub struct Script {
    /// The `manifest` field of the next check-in answers.
    pub envelope: Value,
    /// Artifact bytes by digest.
    pub blobs: HashMap<String, Vec<u8>>,
}

pub struct FakeFleet {
    pub url: String,
    pub script: Arc<Mutex<Script>>,
}

impl FakeFleet {
    pub fn start() -> FakeFleet {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let script = Arc::new(Mutex::new(Script::default()));
        let s = script.clone();
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
                let mut len = 0usize;
                let mut range = None;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap_or(("", ""));
                    match k.trim().to_ascii_lowercase().as_str() {
                        "content-length" => len = v.trim().parse().unwrap_or(0),
                        "range" => {
                            range = v
                                .trim()
                                .strip_prefix("bytes=")
                                .map(|x| x.trim_end_matches('-').parse::<usize>().unwrap_or(0))
                        }
                        _ => {}
                    }
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                let sc = s.lock().expect("script");
                let (status, ctype, out): (u16, &str, Vec<u8>) = match (method.as_str(), path.as_str()) {
                    ("POST", "/v1/devices/register") => (200, "application/json", json!({"device_id": "dev-fake", "token": "opd_fake", "channel": "stable"}).to_string().into_bytes()),
                    ("POST", "/v1/devices/check-in") => (200, "application/json", json!({
                        "device_id": "dev-fake", "channel": "stable", "check_in_after_s": 60,
                        "models": [{"model": "smollm2-135m", "manifest": sc.envelope, "model_version": "x"}]
                    }).to_string().into_bytes()),
                    ("POST", "/v1/telemetry") => {
                        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        (200, "application/json", json!({"batch_id": v["batch_id"], "duplicate": false, "accepted": v["events"].as_array().map_or(0, |e| e.len())}).to_string().into_bytes())
                    }
                    ("GET", p) if p.starts_with("/v1/artifacts/") => match sc.blobs.get(&p["/v1/artifacts/".len()..]) {
                        Some(b) => {
                            let from = range.unwrap_or(0).min(b.len());
                            let head = format!(
                                "HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {from}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                b.len().saturating_sub(1), b.len(), b.len() - from
                            );
                            let _ = conn.write_all(head.as_bytes());
                            let _ = conn.write_all(&b[from..]);
                            continue;
                        }
                        None => (404, "application/json", b"{\"error\":{\"code\":\"not_found\",\"message\":\"no such blob\"}}".to_vec()),
                    },
                    _ => (404, "application/json", b"{}".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    out.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&out);
            }
        });
        FakeFleet { url, script }
    }
}
