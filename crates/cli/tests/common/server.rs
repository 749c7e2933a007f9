//! Starting `outpost serve` on a free port, and raw HTTP/1.1 against it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{models_dir, outpost, stdout};

/// One server at a time per test binary: two llama.cpp processes computing
/// at once on a 2-core machine slow each other down by up to 100x (OpenMP
/// spin-waits), which would make the timing-dependent tests flaky.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A running `outpost serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    /// None for a second server started under another's turn.
    _turn: Option<MutexGuard<'static, ()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `outpost serve MODELS --slots 2 -c 2048 -t 2 EXTRA` on a free port,
/// once /health answers. A flag in `extra` replaces its default.
pub fn start_models(models: &[&str], extra: &[&str]) -> Server {
    start_with(models, extra, Stdio::null())
}

/// Like [`start_models`], with the server's stderr piped (for tests that
/// read its shutdown messages).
pub fn start_with(models: &[&str], extra: &[&str], stderr: Stdio) -> Server {
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    spawn_server(models, extra, stderr, Some(turn))
}

/// A second server during `first`'s turn (the router tests run a local
/// server and a "cloud"); drop it before `first`.
pub fn start_second(_first: &Server, models: &[&str], extra: &[&str]) -> Server {
    spawn_server(models, extra, Stdio::null(), None)
}

fn spawn_server(
    models: &[&str],
    extra: &[&str],
    stderr: Stdio,
    turn: Option<MutexGuard<'static, ()>>,
) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .arg("serve")
        .args(models)
        .args(["--port", &port.to_string()])
        .args(
            [["--slots", "2"], ["-c", "2048"], ["-t", "2"]]
                .iter()
                .filter(|[flag, _]| !extra.contains(flag))
                .flatten(),
        )
        .args(extra)
        .env("OUTPOST_MODELS_DIR", models_dir())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn outpost serve");
    let s = Server {
        child,
        port,
        _turn: turn,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(port, "GET", "/health", "", None).0 != 200 {
        assert!(Instant::now() < deadline, "outpost serve did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    s
}

/// A raw HTTP/1.1 request; (status, head, body). Status 0: no connection.
pub fn http_full(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    auth: Option<&str>,
) -> (u16, String, String) {
    let auth = auth.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    http_headers(port, method, path, body, &headers)
}

/// A raw HTTP/1.1 request with extra headers; (status, head, body).
pub fn http_headers(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new(), String::new());
    };
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // A server refusing a large body may answer and close before it is all
    // written: read the answer anyway.
    let _ = s.write_all(req.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (status, head.to_string(), body.to_string())
}

/// A response header's value (name matched case-insensitively).
pub fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// A raw HTTP/1.1 request; (status, body).
pub fn http(port: u16, method: &str, path: &str, body: &str, auth: Option<&str>) -> (u16, String) {
    let (status, _, body) = http_full(port, method, path, body, auth);
    (status, body)
}

/// A streaming POST whose response is read line by line; dropping it
/// closes the connection mid-stream.
pub struct Stream {
    pub status: u16,
    reader: BufReader<TcpStream>,
}

impl Stream {
    pub fn open(port: u16, path: &str, body: &str) -> Stream {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).expect("send");
        let mut reader = BufReader::new(s);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).expect("header");
            if h == "\r\n" || h.is_empty() {
                break;
            }
        }
        Stream { status, reader }
    }

    /// The next non-empty line of the (chunked) body that holds JSON or an
    /// SSE event; None at the end.
    pub fn next_line(&mut self) -> Option<String> {
        loop {
            let mut l = String::new();
            if self.reader.read_line(&mut l).ok()? == 0 {
                return None;
            }
            let t = l.trim();
            if t.starts_with('{') || t.starts_with("data:") {
                return Some(t.to_string());
            }
            if t == "0" {
                // The last chunk of a chunked body.
                return None;
            }
        }
    }
}

/// A line `NAME VALUE` of /metrics, as a number (None if absent).
pub fn metric(port: u16, name: &str) -> Option<f64> {
    let (_, body) = http(port, "GET", "/metrics", "", None);
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls `cond` every 20 ms for up to `secs` seconds.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// What `outpost run` answers greedily (40 tokens, context 2048) to the
/// question the client scripts ask: a served model must say the same.
pub fn greedy_run_answer() -> String {
    let o = outpost(&[
        "run",
        "smollm2-135m",
        "Which city is the capital of France?",
        "--temperature",
        "0",
        "-n",
        "40",
        "-q",
        "-c",
        "2048",
    ]);
    stdout(&o).trim_end_matches('\n').to_string()
}
